"""A request a citizen writes (an SMS, the web form) becomes a case like a call's: one
case per message or form (its id is the case's call id, so a retry files it once),
received and not dispatched, for an operator to categorise. The caller queues it for
the operators (``desk.tasks.submit``) after the commit."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from calls.filing import storable_text
from cases.models import Case
from cases.service import CallInfo, CaseDraft, create_case_for_call
from cases.sms import CasePhoto

CHANNELS = ("sms", "web")


def file_request(
    session: Session,
    channel: str,
    ref: str,
    phone: str,
    what: str,
    where: str = "",
    photo: tuple[str, bytes] | None = None,
) -> Case:
    """The case for request ``ref`` of ``channel`` (idempotent), with an optional photo
    (content type, bytes) kept beside it. Commits."""
    if channel not in CHANNELS:
        raise ValueError(f"channel is one of {CHANNELS}, not {channel!r}")
    info = CallInfo(call_id=f"{channel}:{ref}"[:128], caller_phone=phone, channel=channel)
    draft = CaseDraft(
        description=storable_text(what, 4000).strip(),
        address=storable_text(where, 500).strip(),
        dispatch=False,  # the operator chooses the category, then dispatches
    )
    case = create_case_for_call(session, info, draft)
    has_photo = session.scalar(select(CasePhoto.id).where(CasePhoto.case_id == case.id))
    if photo is not None and has_photo is None:
        session.add(
            CasePhoto(
                case_id=case.id,
                content_type=photo[0],
                data=photo[1],
                created_at=datetime.now(UTC),
            )
        )
        session.commit()
    return case
