"""RQ jobs: thin, take a call id, idempotent. Details come from the call's live state
in Redis (flow state, queue record, the operator's draft); results go to SQL."""

from __future__ import annotations

import json
import logging
from dataclasses import fields

from cases.db import engine_for, session_factory
from cases.service import CallInfo, CaseDraft, create_case_for_call, record_callback
from hotline.config import load_settings
from hotline.runtime import call_queue

log = logging.getLogger("hotline.jobs")


def _context():  # type: ignore[no-untyped-def]
    settings = load_settings()
    return call_queue(settings), session_factory(engine_for(settings.database_url))


def _json(queue, key: str) -> dict:  # type: ignore[no-untyped-def]
    raw = queue.redis.get(key)
    return json.loads(raw) if raw else {}


def create_case(call_id: str) -> str:
    """Create the case for an answered call (exactly once). Returns its number."""
    queue, sessions = _context()
    flow = _json(queue, queue.keys.flow(call_id))
    draft_data = _json(queue, queue.keys.case_draft(call_id))
    known = {f.name for f in fields(CaseDraft)}
    draft = CaseDraft(**{k: v for k, v in draft_data.items() if k in known})
    call = queue.call(call_id)
    info = CallInfo(
        call_id=call_id,
        caller_phone=flow.get("caller") or call.get("caller", ""),
        channel=flow.get("channel", "phone"),
        operator_seat=call.get("seat") or draft_data.get("seat"),
        source_hotline=flow.get("hotline"),
        category_code=flow.get("category_code"),
        department_code=flow.get("department_code"),
    )
    with sessions() as session:
        case = create_case_for_call(session, info, draft)
        log.info("case %s for call %s (%s)", case.number, call_id, case.status)
        return case.number


def record_callback_request(call_id: str, reason: str) -> int:
    """Record that the caller of this call wants to be called back."""
    queue, sessions = _context()
    flow = _json(queue, queue.keys.flow(call_id))
    with sessions() as session:
        request = record_callback(
            session, call_id, flow.get("caller", ""), reason, flow.get("hotline")
        )
        return request.id
