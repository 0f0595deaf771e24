"""Call detail records: the queue's event stream folded into one SQL row per call.

calls.figures.record_calls() reads the stream from the cursor committed last time, and
record_events() merges what it reads into the rows of those calls (a call's events
may arrive over several runs) and commits the rows with the new cursor in one
transaction. Running it again, or after a crash at any point, writes the same rows.
Figures for any window (an hour, a day, a month) come from these rows; the Redis stream
is only a short live buffer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.models import CallRecord, Case, StreamCursor

CURSOR = "cdr"
_FIELDS = (
    "caller",
    "skill",
    "priority",
    "queued_at",
    "offered_at",
    "answered_at",
    "ended_at",
    "outcome",
    "seat",
    "operator",
    "wait_ms",
    "talk_ms",
    "wrapup_ms",
    "transfer_kind",
    "transferred_to",
)


def _at(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _count(value: object) -> int:
    """A folded row's count (an int the fold put there; absent is 0)."""
    return value if isinstance(value, int) else 0


def fold(events: list[tuple[str, dict[str, str]]]) -> dict[str, dict[str, object]]:
    """What each event says about its call, merged per call id (later events win)."""
    rows: dict[str, dict[str, object]] = {}
    completed_at: dict[str, tuple[str, int]] = {}  # seat -> (call, completion ms)

    def row(call: str) -> dict[str, object]:
        return rows.setdefault(call, {"ring_no_answers": 0})

    for _, e in events:
        kind, ts = e.get("type", ""), e.get("ts", "0")
        call = e.get("call")
        if kind == "SEAT_STATE":
            seat = e.get("seat", "")
            if seat in completed_at and e.get("state") != "wrap_up":
                done_call, done_ms = completed_at.pop(seat)
                row(done_call)["wrapup_ms"] = int(ts) - done_ms
            continue
        if not call:
            continue
        r = row(call)
        if kind == "ENTERQUEUE":
            r.update(queued_at=_at(ts), skill=e.get("skill"), priority=e.get("priority"))
            if e.get("caller"):
                r["caller"] = e["caller"]
        elif kind == "OFFER":
            r.setdefault("offered_at", _at(ts))
        elif kind == "RINGNOANSWER":
            r["ring_no_answers"] = _count(r["ring_no_answers"]) + 1
        elif kind == "CONNECT":
            r.update(
                answered_at=_at(ts),
                seat=e.get("seat"),
                wait_ms=int(e["wait_ms"]),
                outcome="answered",
            )
            if e.get("operator"):
                r["operator"] = e["operator"]
        elif kind == "COMPLETE":
            r.update(
                ended_at=_at(ts), talk_ms=int(e["talk_ms"]), seat=e.get("seat"), outcome="answered"
            )
            if e.get("seat"):
                completed_at[e["seat"]] = (call, int(ts))
        elif kind in ("ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY"):
            outcome = {
                "ABANDON": "abandoned",
                "EXITWITHTIMEOUT": "expired",
                "EXITWITHKEY": "callback",
            }[kind]
            r.update(ended_at=_at(ts), outcome=outcome)
            if e.get("wait_ms"):
                r["wait_ms"] = int(e["wait_ms"])
        elif kind == "TRANSFER":  # handed on by its operator: out (an emergency line), skill, seat
            r.update(
                transfer_kind="emergency" if e.get("kind") == "out" else e.get("kind"),
                transferred_to=e.get("to"),
            )
        elif kind == "TURNED_AWAY":
            r.update(
                ended_at=_at(ts),
                queued_at=_at(ts),
                outcome="turned_away",
                wait_ms=0,
                caller=e.get("caller", ""),
            )
    return rows


def _merge(session: Session, folded: dict[str, dict[str, object]]) -> None:
    existing = {
        r.call_id: r
        for r in session.scalars(select(CallRecord).where(CallRecord.call_id.in_(list(folded))))
    }
    for call_id, values in folded.items():
        record = existing.get(call_id)
        if record is None:
            record = CallRecord(call_id=call_id, caller="", ring_no_answers=0)
            session.add(record)
        for name in _FIELDS:
            value = values.get(name)
            if value is not None and not (name == "outcome" and record.outcome == "answered"):
                setattr(record, name, value)
        record.ring_no_answers = (record.ring_no_answers or 0) + _count(
            values.get("ring_no_answers")
        )


def stream_cursor(session: Session) -> str | None:
    """The id of the last stream event folded into rows (None: none yet)."""
    cursor = session.get(StreamCursor, CURSOR)
    return cursor.last_id if cursor else None


def record_events(session: Session, events: list[tuple[str, dict[str, str]]]) -> int:
    """Fold stream events read after ``stream_cursor`` into call rows, and move the
    cursor past them, in one commit. Returns how many events it folded."""
    if not events:
        return 0
    cursor = session.get(StreamCursor, CURSOR)
    # ring_no_answers is a count: a re-read batch (after a crash) must not add twice, so
    # the cursor and the rows commit together, and a batch is read once.
    _merge(session, fold(events))
    if cursor is None:
        session.add(StreamCursor(name=CURSOR, last_id=events[-1][0]))
    else:
        cursor.last_id = events[-1][0]
    session.commit()
    return len(events)


def attach_case_numbers(session: Session, since: datetime) -> None:
    """Rows of answered calls get their case number once the case exists."""
    rows = session.scalars(
        select(CallRecord).where(
            CallRecord.case_number.is_(None),
            CallRecord.outcome == "answered",
            CallRecord.queued_at >= since,
        )
    ).all()
    if not rows:
        return
    numbers = dict(
        session.execute(
            select(Case.call_id, Case.number).where(Case.call_id.in_([r.call_id for r in rows]))
        ).all()
    )
    for r in rows:
        r.case_number = numbers.get(r.call_id)
    session.commit()


def counts(
    session: Session,
    start: datetime,
    end: datetime,
    service_level_s: float,
    short_abandon_s: float,
) -> dict[str, int]:
    """The counts behind the national indicators for calls that entered the queue (or
    were turned away) in [start, end), from the call rows (calls.figures defines the
    indicators and their thresholds)."""
    # Rows hold UTC; SQLite keeps no offset, so the window is compared in UTC too.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    window = (
        CallRecord.direction == "inbound",
        CallRecord.queued_at >= start,
        CallRecord.queued_at < end,
    )
    c = SimpleNamespace()
    by_outcome = dict(
        session.execute(
            select(CallRecord.outcome, func.count()).where(*window).group_by(CallRecord.outcome)
        ).all()
    )
    c.wanted_person = sum(n for o, n in by_outcome.items() if o is not None)
    c.answered = by_outcome.get("answered", 0)
    c.abandoned = by_outcome.get("abandoned", 0)
    c.callbacks = by_outcome.get("callback", 0)
    c.expired = by_outcome.get("expired", 0)
    c.turned_away = by_outcome.get("turned_away", 0)
    c.short_abandoned = (
        session.scalar(
            select(func.count()).where(
                *window,
                CallRecord.outcome == "abandoned",
                CallRecord.wait_ms < short_abandon_s * 1000,
            )
        )
        or 0
    )
    c.answered_within_15s = (
        session.scalar(
            select(func.count()).where(
                *window,
                CallRecord.outcome == "answered",
                CallRecord.wait_ms <= service_level_s * 1000,
            )
        )
        or 0
    )
    c.wait_ms_answered = (
        session.scalar(
            select(func.coalesce(func.sum(CallRecord.wait_ms), 0)).where(
                *window, CallRecord.outcome == "answered"
            )
        )
        or 0
    )
    c.completed, handle_ms = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(CallRecord.talk_ms + func.coalesce(CallRecord.wrapup_ms, 0)), 0),
        ).where(*window, CallRecord.talk_ms.is_not(None))
    ).one()
    c.handle_ms = handle_ms or 0
    c.longest_wait_ms = (
        session.scalar(select(func.coalesce(func.max(CallRecord.wait_ms), 0)).where(*window)) or 0
    )
    return {name: int(value or 0) for name, value in vars(c).items()}


def day_start(now: datetime | None = None) -> datetime:
    """Midnight of today in the hotline's time zone (Beijing), as an aware datetime."""
    from cases.service import HOTLINE_TZ

    local = (now or datetime.now(UTC)).astimezone(HOTLINE_TZ)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def operator_day(session: Session, since: datetime, operator: str) -> tuple[int, float | None]:
    """One operator's calls answered since ``since`` (at whichever seat) and their
    average handle time (talk plus wrap-up, seconds)."""
    n, avg = session.execute(
        select(
            func.count(),
            func.avg(func.coalesce(CallRecord.talk_ms, 0) + func.coalesce(CallRecord.wrapup_ms, 0)),
        ).where(
            CallRecord.outcome == "answered",
            CallRecord.queued_at >= since.astimezone(UTC),
            CallRecord.operator == operator,
        )
    ).one()
    return int(n), (round(float(avg) / 1000, 1) if avg is not None else None)


def seat_day(session: Session, since: datetime) -> dict[str, tuple[int, float | None]]:
    """Per seat: calls answered since ``since`` and their average handle time (talk plus
    wrap-up, seconds)."""
    rows = session.execute(
        select(
            CallRecord.seat,
            func.count(),
            func.avg(func.coalesce(CallRecord.talk_ms, 0) + func.coalesce(CallRecord.wrapup_ms, 0)),
        )
        .where(
            CallRecord.outcome == "answered",
            CallRecord.queued_at >= since.astimezone(UTC),
            CallRecord.seat.is_not(None),
        )
        .group_by(CallRecord.seat)
    ).all()
    return {
        seat: (int(n), round(float(avg) / 1000, 1) if avg is not None else None)
        for seat, n, avg in rows
    }


def hourly(session: Session, since: datetime, hours: int = 24) -> list[dict[str, int]]:
    """Offered, answered and abandoned calls per hour from ``since`` (local hours)."""
    start = since.astimezone(UTC)
    rows = session.execute(
        select(CallRecord.queued_at, CallRecord.outcome).where(
            CallRecord.direction == "inbound",
            CallRecord.queued_at >= start,
            CallRecord.outcome.is_not(None),
        )
    ).all()
    buckets = [{"hour": h, "offered": 0, "answered": 0, "abandoned": 0} for h in range(hours)]
    for queued_at, outcome in rows:
        assert queued_at is not None  # the query's filter
        at = queued_at if queued_at.tzinfo else queued_at.replace(tzinfo=UTC)
        hour = int((at - start).total_seconds() // 3600)
        if 0 <= hour < hours:
            buckets[hour]["offered"] += 1
            if outcome in ("answered", "abandoned"):
                buckets[hour][outcome] += 1
    return buckets


def outbound_figures(session: Session, since: datetime) -> dict[str, float | int | None]:
    """The callback bots' figures for items planned since ``since``:

    - callback completion rate: call-backs that reached the citizen, of those finished;
    - time to call back: median seconds from the citizen's call to the attempt that
      reached them;
    - return-visit reach rate: return visits that reached a person, of those finished;
    - 满意率: satisfied of the answered return visits (see cases.dispatch)."""
    from cases.models import OutboundItem

    start = since.astimezone(UTC)
    items = session.scalars(select(OutboundItem).where(OutboundItem.created_at >= start)).all()
    finished = [i for i in items if i.status in ("done", "gave_up", "unreachable")]
    callbacks = [i for i in finished if i.kind == "callback"]
    visits = [i for i in finished if i.kind == "return_visit"]
    reached_callbacks = [i for i in callbacks if i.status == "done"]
    waits = []
    for item in reached_callbacks:
        origin = session.get(CallRecord, item.call_id) if item.call_id else None
        if origin is not None and origin.queued_at is not None and item.last_attempt_at is not None:
            began = (
                origin.queued_at
                if origin.queued_at.tzinfo
                else origin.queued_at.replace(tzinfo=UTC)
            )
            reached = (
                item.last_attempt_at
                if item.last_attempt_at.tzinfo
                else item.last_attempt_at.replace(tzinfo=UTC)
            )
            waits.append((reached - began).total_seconds())
    waits.sort()
    answered = [i for i in visits if i.last_result in ("satisfied", "unsatisfied")]
    return {
        "callbacks_finished": len(callbacks),
        "callback_completion_rate": round(len(reached_callbacks) / len(callbacks), 4)
        if callbacks
        else None,
        "time_to_call_back_s": round(waits[len(waits) // 2]) if waits else None,
        "return_visits_finished": len(visits),
        "return_visit_reach_rate": (
            round(sum(i.status == "done" for i in visits) / len(visits), 4) if visits else None
        ),
        "satisfaction_rate": (
            round(sum(i.last_result == "satisfied" for i in answered) / len(answered), 4)
            if answered
            else None
        ),
    }
