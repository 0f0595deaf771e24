"""Call detail rows from the event stream, and the figures from them, on SQLite and
PostgreSQL with a real Redis."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from redis import Redis

from calls.figures import figures, record_calls
from cases.models import CallRecord
from queueing import CallQueue
from queueing.indicators import Counts, indicators


def run_day(queue: CallQueue) -> None:
    """A small day with every outcome."""
    queue.seat_login("s1")
    queue.enqueue("answered-fast", caller="+8613800000001")  # offered to s1 at once
    queue.ringing("answered-fast", "s1")
    queue.answer("answered-fast", "s1")
    queue.enqueue("waits", caller="+8613800000002")
    queue.enqueue("gives-up-at-once", caller="+8613800000003")
    queue.hangup("gives-up-at-once")  # a short abandon: under 5 s
    queue.enqueue("callback", caller="+8613800000004")
    queue.leave("callback", "long_wait")
    queue.complete("answered-fast")  # s1 takes "waits"
    queue.answer("waits", "s1")
    queue.complete("waits", by="caller")
    queue.turned_away("closed-1", "+8613800000005", "closed")


def test_rows_and_figures_from_the_stream(redis: Redis, queue: CallQueue, session) -> None:  # type: ignore[no-untyped-def]
    run_day(queue)
    assert record_calls(session, redis, queue.keys, batch=3) > 0  # small batches on purpose
    while record_calls(session, redis, queue.keys, batch=3):
        pass
    rows = {r.call_id: r for r in session.query(CallRecord)}
    assert rows["answered-fast"].outcome == "answered" and rows["answered-fast"].seat == "s1"
    assert rows["answered-fast"].talk_ms is not None and rows["answered-fast"].caller
    assert rows["gives-up-at-once"].outcome == "abandoned"
    assert rows["callback"].outcome == "callback"
    assert rows["closed-1"].outcome == "turned_away"
    day = figures(session, datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(1))
    assert day.wanted_person == 5 and day.answered == 2 and day.short_abandoned == 1
    assert day.turned_away == 1 and day.callbacks == 1
    assert day.connection_rate == round(2 / 4, 4)  # 5 wanted a person, 1 short abandon
    assert day.answered_within_15s_rate == 1.0


def test_running_it_again_writes_the_same_rows(redis: Redis, queue: CallQueue, session) -> None:  # type: ignore[no-untyped-def]
    run_day(queue)
    while record_calls(session, redis, queue.keys):
        pass
    before = {
        (r.call_id, r.outcome, r.ring_no_answers, r.talk_ms) for r in session.query(CallRecord)
    }
    assert record_calls(session, redis, queue.keys) == 0  # nothing new since the cursor
    queue.enqueue("later", caller="+8613800000009")
    queue.hangup("later")
    while record_calls(session, redis, queue.keys):
        pass
    after = {
        (r.call_id, r.outcome, r.ring_no_answers, r.talk_ms) for r in session.query(CallRecord)
    }
    assert before < after and len(after - before) == 1


def test_indicators_have_one_definition() -> None:
    c = Counts(
        wanted_person=100,
        answered=90,
        answered_within_15s=81,
        short_abandoned=4,
        abandoned=8,
        turned_away=2,
        completed=90,
        wait_ms_answered=900_000,
        handle_ms=90 * 240_000,
    )
    i = indicators(c)
    assert i.connection_rate == round(90 / 96, 4)
    assert i.answered_within_15s_rate == 0.9 and i.avg_wait_s == 10.0 and i.avg_handle_s == 240.0
    assert indicators(Counts()).connection_rate is None


def test_a_ring_no_answer_is_counted_once(redis: Redis, queue: CallQueue, session) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("s1")
    queue.enqueue("c1", caller="+8613800000001")
    queue.no_answer("c1", "s1", "timeout")
    time.sleep(0.01)
    while record_calls(session, redis, queue.keys, batch=1):
        pass
    assert session.get(CallRecord, "c1").ring_no_answers == 1
