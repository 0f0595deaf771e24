"""A request a citizen writes (an SMS, the web form) becomes a case like a call's: one
case per message or form (its id is the case's call id, so a retry files it once),
received and not dispatched, for an operator to categorise. The caller queues it for
the operators (``desk.tasks.submit``) after the commit."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from calls.filing import storable_text
from cases.grid import district_of_address
from cases.models import Case
from cases.photos import CasePhoto, store_photo
from cases.service import CallInfo, CaseDraft, create_case_for_call

CHANNELS = ("sms", "web")
CITIZEN = "citizen"  # who added a citizen's photo, on the case's trail


def file_request(
    session: Session,
    channel: str,
    ref: str,
    phone: str,
    what: str,
    where: str = "",
    photo: bytes | None = None,
    photos_dir: Path | None = None,
    photo_max_bytes: int | None = None,
) -> Case:
    """The case for request ``ref`` of ``channel`` (idempotent), with an optional photo
    kept beside it (cases.photos; checked by the form already). Commits."""
    if channel not in CHANNELS:
        raise ValueError(f"channel is one of {CHANNELS}, not {channel!r}")
    info = CallInfo(call_id=f"{channel}:{ref}"[:128], caller_phone=phone, channel=channel)
    address = storable_text(where, 500).strip()
    district = district_of_address(session, address)
    draft = CaseDraft(
        description=storable_text(what, 4000).strip(),
        address=address,
        district_code=district.code if district else None,
        dispatch=False,  # the operator chooses the category, then dispatches
    )
    case = create_case_for_call(session, info, draft)
    has_photo = session.scalar(select(CasePhoto.id).where(CasePhoto.case_id == case.id))
    if photo is not None and photos_dir is not None and has_photo is None:
        limit = {"max_bytes": photo_max_bytes} if photo_max_bytes else {}
        store_photo(session, case, photo, CITIZEN, photos_dir, note="市民网上反映", **limit)
        session.commit()
    return case
