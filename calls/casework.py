"""Casework: the case jobs, filing the operator's form, and arming a case's clocks.

RQ jobs are thin, take a call id and are idempotent. Details come from the call's live
state in Redis (flow state, queue record, the operator's draft); results go to SQL.
Whoever commits a change to a case calls ``arm_clocks`` after the commit: the one
after-commit hook, so the Redis timers follow the record (and the reaper's
reconciliation catches a Redis that was down)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace

from redis.exceptions import RedisError
from rq import get_current_job
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from calls.clocks import sync_case
from calls.filing import mark_filed, read_draft, storable_form, storable_text
from cases.db import database_url_from_env, engine_for, session_factory
from cases.models import Case
from cases.service import (
    FORM_TEXT_LIMITS,
    CallInfo,
    CaseDraft,
    InvalidForm,
    apply_form,
    case_for_call,
    create_case_for_call,
    parse_form,
    record_callback,
    urge_case,
    urged_case_for_call,
)
from queueing import CallQueue, load_queue_settings
from queueing.keys import DRAFT_TTL_S

log = logging.getLogger("hotline.casework")
CODE_LIMIT = 48  # a category's or unit's code


def is_bad_data(exc: Exception) -> bool:
    """What stored data can do to a write, where retrying never helps: a value the
    database refuses (too long for its column; a NUL on PostgreSQL) or one the driver
    cannot send. A database that is away is not this: that job is retried."""
    if isinstance(exc, DataError | UnicodeError):  # a lone surrogate is not even sent
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _context():  # type: ignore[no-untyped-def]
    """The job's queue (on the Redis its worker takes jobs from) and case database, from
    the worker's environment."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("casework jobs run inside an RQ worker")
    queue = CallQueue(job.connection, load_queue_settings())
    return queue, session_factory(engine_for(database_url_from_env(os.environ)))


def _json(queue, key: str) -> dict:  # type: ignore[no-untyped-def]
    raw = queue.redis.get(key)
    return json.loads(raw) if raw else {}


def call_info(queue, call_id: str, seat: str | None = None) -> CallInfo:  # type: ignore[no-untyped-def]
    """What the call's live state says, as text that fits the case's columns."""
    flow = _json(queue, queue.keys.flow(call_id))
    call = queue.call(call_id)

    def fit(value: object, column: str | int) -> str | None:
        if not value:
            return None
        limit = column if isinstance(column, int) else _column_length(column)
        return storable_text(str(value), limit)

    return CallInfo(
        call_id=call_id,
        caller_phone=fit(flow.get("caller") or call.get("caller"), "caller_phone") or "",
        channel=fit(flow.get("channel"), "channel") or "phone",
        operator_seat=fit(call.get("seat") or seat, "operator_seat"),
        source_hotline=fit(flow.get("hotline"), "source_hotline"),
        category_code=fit(flow.get("category_code"), CODE_LIMIT),
        department_code=fit(flow.get("department_code"), CODE_LIMIT),
    )


def _column_length(name: str) -> int | None:
    return getattr(Case.__table__.c[name].type, "length", None)


def fileable(session, call_id: str, data: dict[str, object]) -> tuple[dict[str, object], CaseDraft]:  # type: ignore[no-untyped-def]
    """A stored form, as much of it as can be filed: text the database keeps, and each
    field the form's rules refuse dropped (named in the log, its value not)."""
    data = storable_form(data, FORM_TEXT_LIMITS)
    while data:
        try:
            return data, parse_form(session, data)
        except InvalidForm as exc:
            name = str(exc.value) if exc.field == "field" else exc.field
            if name not in data:
                break
            log.warning("stored form for %s: %s dropped, it cannot be filed", call_id, name)
            data = {k: v for k, v in data.items() if k != name}
    return {}, CaseDraft(dispatch=False)


def file_form(queue, sessions, call_id: str, data: dict[str, object], actor: str):  # type: ignore[no-untyped-def]
    """The operator's form, at any moment of the call or after it: checked (InvalidForm
    names what is allowed), kept in Redis first, then written into the call's case,
    which is made now if the hang-up has not made it yet; or, for a repeat caller, the
    call attached to their open case as an urging (催办). Idempotent."""
    with sessions() as session:
        draft = parse_form(session, data)
        queue.redis.set(
            queue.keys.case_draft(call_id), json.dumps(data, ensure_ascii=False), ex=DRAFT_TTL_S
        )
        info = call_info(queue, call_id, str(data.get("seat") or "") or None)
        if draft.attach_to:
            return urge_case(session, info, draft, actor)
        urged = urged_case_for_call(session, call_id)
        if urged is not None:  # attached already: a later form adds to that case
            return urged
        case = case_for_call(session, call_id) or create_case_for_call(session, info, draft)
        case = apply_form(session, case, draft, actor)
        arm_clocks(queue, case)
        return case


def arm_clocks(queue: CallQueue, case: Case) -> None:
    """After a committed change to a case: make its clocks in Redis what the record
    says. If Redis fails now, the reaper's reconciliation sets them from SQL within a
    minute, so this never fails the change itself."""
    try:
        sync_case(queue.redis, queue.keys, case)
    except RedisError:
        log.warning("clocks of case %s left to the reconciliation", case.number)


def create_case(call_id: str) -> str:
    """Create the case for an answered call (exactly once), right after the hang-up,
    with the newest form the operator has sent, including forms that arrive while this
    job waits or runs (calls.filing). Without a form it waits in 'received'; a form
    after this job is filed by file_stored_form. Returns the case number."""
    queue, sessions = _context()
    while True:
        version, data = read_draft(queue.redis, queue.keys, call_id)
        with sessions() as session:
            try:
                case = _file_case(queue, session, call_id, data)
            except (StatementError, UnicodeError) as exc:
                if not is_bad_data(exc):
                    raise  # the database is away: the job is retried
                # Never a case job failing on every retry: the call gets its case,
                # and the operator completes the form from 待补录.
                log.exception("form for %s cannot be written; its case is made without it", call_id)
                session.rollback()
                case = _file_case(queue, session, call_id, {})
            arm_clocks(queue, case)
        if mark_filed(queue.redis, queue.keys, call_id, version):
            log.info("case %s for call %s (%s)", case.number, call_id, case.status)
            return case.number


def _file_case(queue, session, call_id: str, data: dict[str, object]) -> Case:  # type: ignore[no-untyped-def]
    data, draft = fileable(session, call_id, data) if data else ({}, CaseDraft(dispatch=False))
    info = call_info(queue, call_id, str(data.get("seat") or "") or None)
    actor = info.operator_seat or "system"
    urged = urged_case_for_call(session, call_id)
    if draft.attach_to:
        try:
            return urge_case(session, info, draft, actor)
        except InvalidForm:  # the open case was closed meanwhile: a case of its own
            log.warning("call %s: cannot attach to %s; a new case", call_id, draft.attach_to)
            return create_case_for_call(session, info, replace(draft, attach_to=None))
    if urged is not None:
        return urged
    case = create_case_for_call(session, info, draft)
    if data:
        apply_form(session, case, draft, actor)
    return case


def file_stored_form(call_id: str) -> str:
    """Retry of a form the web request could not write to SQL (it is kept in Redis):
    as much of it as can be filed; a form that cannot be written at all leaves the case
    as it is (the job does not fail on every retry for it)."""
    queue, sessions = _context()
    stored = _json(queue, queue.keys.case_draft(call_id))
    with sessions() as session:
        data, _ = fileable(session, call_id, stored)
    actor = str(data.get("seat") or "system")
    try:
        case = file_form(queue, sessions, call_id, data, actor)
    except (StatementError, UnicodeError) as exc:
        if not is_bad_data(exc):
            raise  # the database is away: the job is retried
        log.exception("stored form for %s cannot be written; the case stays as it is", call_id)
        with sessions() as session:
            case = case_for_call(session, call_id) or create_case_for_call(
                session, call_info(queue, call_id), CaseDraft(dispatch=False)
            )
    except InvalidForm:  # a dispatched case's unit or category: the supervisor's to change
        log.warning("stored form for %s refused by its case; the case stays as it is", call_id)
        with sessions() as session:
            case = case_for_call(session, call_id) or create_case_for_call(
                session, call_info(queue, call_id), CaseDraft(dispatch=False)
            )
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
