"""Counters kept in Redis, in the queue's ``counts`` hash, by whichever process sees
the event: calls offered, answered and abandoned (folded from the queue's event stream
by the reaper, with the stream cursor in the same hash), case timers fired (the
reaper) and outbound attempts by result (the dialer). Counted once across processes
and hosts, and kept across restarts; calls.metrics reports them at /metrics. No
Prometheus here: the processes that count need not load it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import cast

from redis import Redis
from redis.exceptions import WatchError

from queueing.indicators import SHORT_ABANDON_S
from queueing.keys import QueueKeys

CURSOR = "stream_cursor"  # the last event of the stream counted
REAPER_AT = "reaper_at_ms"  # when the reaper last counted (its clock, ms)
# Seconds a caller waited before an operator answered: the histogram's upper bounds.
WAIT_BUCKETS = (5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0)
# Event types of the stream and the counter each one adds to.
CALL_EVENTS = {
    "ENTERQUEUE": "offered",
    "TURNED_AWAY": "turned_away",
    "CONNECT": "answered",
    "ABANDON": "abandoned",
    "EXITWITHKEY": "left_for_callback",
    "EXITWITHTIMEOUT": "expired",
    "RINGNOANSWER": "ring_no_answer",
    "COMPLETE": "completed",
}
CLOCK_RESULTS = ("reminder", "overdue", "stale")
DIAL_RESULTS = (
    "satisfied",
    "unsatisfied",
    "no_response",
    "transfer",
    "connected",
    "no-answer",
    "busy",
    "failed",
    "congestion",
    "machine",
    "canceled",
)


def _wait_bucket(wait_s: float) -> str:
    for bound in WAIT_BUCKETS:
        if wait_s <= bound:
            return f"wait_le:{bound:g}"
    return "wait_le:inf"


def tally_events(events: Iterable[Mapping[str, str]]) -> Counter[str]:
    """The counter increments for a batch of stream events (pure)."""
    tally: Counter[str] = Counter()
    for event in events:
        name = CALL_EVENTS.get(event.get("type", ""))
        if name is None:
            continue
        tally[f"calls:{name}"] += 1
        wait_ms = int(event.get("wait_ms") or 0)
        if name == "answered":
            tally[_wait_bucket(wait_ms / 1000)] += 1
            tally["wait_sum_ms"] += wait_ms
        elif name == "abandoned" and wait_ms < SHORT_ABANDON_S * 1000:
            tally["calls:abandoned_short"] += 1
    return tally


Entries = list[tuple[bytes, dict[bytes, bytes]]]  # a stream range, as redis-py returns it


def count_queue_events(redis: Redis, keys: QueueKeys, batch: int = 5000) -> int:
    """Fold the events since the cursor into the counts (the reaper, every few seconds).
    The first time, counting starts at the stream's end: history is in the call rows.
    The cursor and the counts change in one transaction, watched, so a second reaper
    (a standby) never counts an event twice. Returns how many events it read."""
    for _ in range(3):
        try:
            with redis.pipeline(transaction=True) as pipe:
                pipe.watch(keys.counts)
                cursor = cast(bytes | None, pipe.hget(keys.counts, CURSOR))
                if cursor is None:
                    last = cast(Entries, pipe.xrevrange(keys.events, count=1))
                    pipe.multi()
                    pipe.hset(keys.counts, CURSOR, _text(last[0][0]) if last else "0-0")
                    pipe.hset(keys.counts, REAPER_AT, int(time.time() * 1000))
                    pipe.execute()
                    return 0
                raw = cast(Entries, pipe.xrange(keys.events, "(" + _text(cursor), "+", count=batch))
                events = [{_text(k): _text(v) for k, v in fields.items()} for _, fields in raw]
                pipe.multi()
                for field, n in tally_events(events).items():
                    pipe.hincrby(keys.counts, field, n)
                if raw:
                    pipe.hset(keys.counts, CURSOR, _text(raw[-1][0]))
                pipe.hset(keys.counts, REAPER_AT, int(time.time() * 1000))
                pipe.execute()
                return len(raw)
        except WatchError:
            continue  # a timer or a dial result was counted meanwhile: read again
    return 0


def count_clock_timers(redis: Redis, keys: QueueKeys, fired: Mapping[str, int]) -> None:
    """The timers one sweep fired, by result (reminder, overdue, stale)."""
    pipe = redis.pipeline(transaction=True)
    for result, n in fired.items():
        if n and result in CLOCK_RESULTS:
            pipe.hincrby(keys.counts, f"clock:{result}", n)
    if pipe.command_stack:
        pipe.execute()


def count_dial_attempt(redis: Redis, keys: QueueKeys, result: str) -> None:
    """One outbound attempt ended with ``result`` (an unknown result counts as other)."""
    redis.hincrby(keys.counts, f"dial:{result if result in DIAL_RESULTS else 'other'}", 1)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
