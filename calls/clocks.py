"""The dispatch clocks' timers: one Redis sorted set, member ``"<case id>:<timer>"``,
score the due time in ms, swept by the reaper every second: no keyspace events, exact
to the second, and rebuilt from SQL (``reconcile``) so a lost Redis loses no deadline.
What a timer means and does is the record's business (``cases.clocks``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import cast

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cases.clocks import HANDLING_RUNNING, TIMERS, due_times, fire
from cases.models import Case
from queueing.keys import QueueKeys

log = logging.getLogger("hotline.clocks")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


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
        due = cast(list[bytes], redis.zrangebyscore(keys.clocks, "-inf", _ms(now), 0, batch))
        members = [m.decode() for m in due]
        if not members:
            return counts
        by_case: dict[int, list[str]] = {}
        for member in members:
            case_part, _, timer = member.partition(":")
            if case_part.isdigit() and timer in TIMERS:
                by_case.setdefault(int(case_part), []).append(timer)
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
