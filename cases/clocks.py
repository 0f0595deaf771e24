"""The dispatch clocks: the 30-minute response rule and the handling limit.

Deadlines are columns of the case (``respond_by``, ``handle_by``: the record); this
module says when each timer is due and what firing it does, in SQL. The timers
themselves live in Redis (``calls.clocks``), rebuilt from these records.

Timers of a case: a reminder (催办) to the unit at 80 % of each limit, then overdue at
100 %: the flag is set (and never cleared: it freezes), an accountability record names
the unit and the person who signed for the case, and the case joins the supervisors'
overdue list. Firing is idempotent and checks the case first: a timer whose case has
moved on (signed for, resolved) does nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from cases.models import Case, OverdueRecord
from cases.service import _record

log = logging.getLogger("hotline.clocks")

TIMERS = ("response_reminder", "response_due", "handling_reminder", "handling_due")
REMINDER_SHARE = 0.8
RESPONSE_RUNNING = ("dispatched",)  # until signed for (or "on site")
HANDLING_RUNNING = ("dispatched", "accepted", "in_progress", "returned")


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def due_times(case: Case) -> dict[str, datetime]:
    """The timers the case should have now, by its status and deadlines."""
    due: dict[str, datetime] = {}
    start = _aware(case.dispatched_at)
    respond_by, handle_by = _aware(case.respond_by), _aware(case.handle_by)
    if start is None:
        return due
    on_site = _aware(case.on_site_at)
    responded = on_site is not None and on_site >= start
    if case.status in RESPONSE_RUNNING and respond_by and not responded:
        due["response_reminder"] = start + (respond_by - start) * REMINDER_SHARE
        due["response_due"] = respond_by
    if case.status in HANDLING_RUNNING and handle_by:
        due["handling_reminder"] = start + (handle_by - start) * REMINDER_SHARE
        due["handling_due"] = handle_by
    return due


def _already(case: Case, action: str, note_tag: str) -> bool:
    return any(e.action == action and e.note.startswith(note_tag) for e in case.events)


def fire(session: Session, case: Case, timer: str, now: datetime) -> str | None:
    """Carry out one due timer; returns what it did, or None if the case moved on."""
    due = due_times(case)
    if timer not in due or due[timer] > now + timedelta(seconds=1):
        return None  # signed for, resolved, extended: nothing to do
    kind = timer.split("_")[0]  # response | handling
    if timer.endswith("reminder"):
        tag = f"[{kind}]"
        if _already(case, "reminder", tag):
            return None
        limit = due[f"{kind}_due"]
        note = f"{tag} 催办: 80% of the {kind} limit used; due {limit.isoformat()}"
        _record(case, "clock", "reminder", case.status, case.status, note, at=now)
        return "reminder"
    return "overdue" if mark_overdue(session, case, kind, due[timer], now) else None


def charge_missed_deadlines(session: Session, case: Case, now: datetime) -> None:
    """Before a case leaves its unit (a re-dispatch): every running limit it has missed
    is recorded against that unit now, whatever the sweep has noticed yet."""
    due = due_times(case)
    for kind in ("response", "handling"):
        at = due.get(f"{kind}_due")
        if at is not None and now > at:
            mark_overdue(session, case, kind, at, now)


def mark_overdue(session: Session, case: Case, kind: str, due_at: datetime, now: datetime) -> bool:
    """Set the frozen flag and write the accountability record, once per dispatch and
    kind (the flags start afresh when a case is dispatched again). False if it was
    marked already."""
    flag = f"{kind}_overdue"
    if getattr(case, flag):
        return False
    setattr(case, flag, True)
    session.add(
        OverdueRecord(
            case_id=case.id,
            department_id=case.department_id,
            person=case.accepted_by or "",
            kind=kind,
            due_at=due_at,
            noticed_at=now,
            late_s=max(0, int((now - due_at).total_seconds())),
        )
    )
    note = f"[{kind}] overdue: due {due_at.isoformat()}"
    _record(case, "clock", "overdue", case.status, case.status, note, at=now)
    return True
