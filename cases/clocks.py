"""The dispatch clocks: the 30-minute response rule and the handling limit.

Deadlines are columns of the case (``respond_by``, ``handle_by``: the record). Their
timers live in one Redis sorted set, member ``"<case id>:<timer>"``, score the due
time in ms, swept by the reaper every second: no keyspace events, exact to the
second, and rebuilt from SQL (``reconcile``) so a lost Redis loses no deadline.

Timers of a case: a reminder (催办) to the unit at 80 % of each limit, then overdue at
100 %: the flag is set (and never cleared: it freezes), an accountability record names
the unit and the person who signed for the case, and the case joins the supervisors'
overdue list. Firing is idempotent and checks the case first: a timer whose case has
moved on (signed for, resolved) does nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cases.models import Case, OverdueRecord
from cases.service import _record
from queueing.keys import QueueKeys

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


def sync_case(redis: Redis, keys: QueueKeys, case: Case) -> None:
    """Make the case's timers in Redis what its record says (after any change)."""
    due = due_times(case)
    pipe = redis.pipeline(transaction=True)
    stale = [f"{case.id}:{t}" for t in TIMERS if t not in due]
    if stale:
        pipe.zrem(keys.clocks, *stale)
    if due:
        pipe.zadd(keys.clocks, {f"{case.id}:{t}": _ms(at) for t, at in due.items()})
    pipe.execute()


def reconcile(
    session: Session,
    redis: Redis,
    keys: QueueKeys,
    since: datetime | None,
    after_id: int = 0,
    limit: int | None = None,
) -> tuple[int, int]:
    """Re-arm the timers of the cases changed since ``since`` (every open case if None),
    in id order from ``after_id``, at most ``limit`` of them: the backstop for a
    transition whose caller could not reach Redis, and for a Redis that lost its data.
    Batches keep a caller's other work going (the reaper's queue sweep). Returns the
    last id looked at and how many; fewer than ``limit`` means the pass is done."""
    query = select(Case).where(Case.id > after_id).order_by(Case.id)
    if since is None:
        query = query.where(Case.dispatched_at.is_not(None), Case.status.in_(HANDLING_RUNNING))
    else:
        query = query.where(Case.updated_at >= since)
    if limit is not None:
        query = query.limit(limit)
    last, n = after_id, 0
    for case in session.scalars(query.execution_options(yield_per=1000)):
        sync_case(redis, keys, case)
        last, n = case.id, n + 1
    return last, n


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


def mark_overdue(session: Session, case: Case, kind: str, due_at: datetime, now: datetime) -> bool:
    """Set the frozen flag and write the accountability record, once per case and kind.
    False if it was marked already."""
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


def sweep(
    sessions: sessionmaker,  # type: ignore[type-arg]
    redis: Redis,
    keys: QueueKeys,
    now: datetime | None = None,
    batch: int = 500,
) -> dict[str, int]:
    """Fire every timer due by ``now`` (Redis's clock if None). A timer leaves the set
    only after its work is committed, so a crash fires it again (idempotently)."""
    if now is None:
        seconds, micros = redis.time()
        now = datetime.fromtimestamp(seconds + micros / 1e6, UTC)
    counts = {"reminder": 0, "overdue": 0, "stale": 0}
    while True:
        members = [m.decode() for m in redis.zrangebyscore(keys.clocks, "-inf", _ms(now), 0, batch)]
        if not members:
            return counts
        by_case: dict[int, list[str]] = {}
        for member in members:
            case_id, _, timer = member.partition(":")
            if case_id.isdigit() and timer in TIMERS:
                by_case.setdefault(int(case_id), []).append(timer)
        with sessions() as session:
            cases = {
                c.id: c for c in session.scalars(select(Case).where(Case.id.in_(list(by_case))))
            }
            for case_id, timers in by_case.items():
                case = cases.get(case_id)
                for timer in sorted(timers, key=TIMERS.index):
                    done = fire(session, case, timer, now) if case is not None else None
                    counts[done or "stale"] += 1
            session.commit()
        redis.zrem(keys.clocks, *members)
        if len(members) < batch:
            return counts
