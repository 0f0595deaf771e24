"""The event log (a Redis Stream) and the figures computed from it.

Event types follow Asterisk's queue_log where one exists: ENTERQUEUE, OFFER, CONNECT,
RINGNOANSWER, ABANDON, COMPLETE, EXITWITHTIMEOUT, EXITWITHKEY (left for a callback),
plus SEAT_STATE, SKILL and STICKY_EXPIRED.
Stream ids are Redis server milliseconds, so a window is an XRANGE.

The stream keeps the current and the previous Beijing day. Each transition script's
first event trims older entries (XTRIM MINID, the previous day's start) and sets the
stream to expire at the end of the next day (lua/prelude.lua): one key, so the Lua
scripts stay one atomic step each, and every reader keeps working unchanged. Day keys
with EXPIRE were the other way; they would make each reader (the reaper's call rows and
case sweep, the live hub, figures, the audit) follow keys across midnight, and a window
or a cursor spanning midnight would need two reads. Yesterday stays so that a window,
or a reader catching up, reaches across midnight.

ENTERQUEUE and TURNED_AWAY carry the caller's number whole: the call rows
(cases.cdr) take it from here, and the dialer calls back missed and turned-away callers
from those rows, so a masked number would lose them. Hence the two-day limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from redis import Redis

from queueing.indicators import SERVICE_LEVEL_S, SHORT_ABANDON_S, Counts, Indicators, indicators
from queueing.keys import QueueKeys

_BATCH = 5000


def read_events(
    redis: Redis, keys: QueueKeys, start_ms: int | None = None, end_ms: int | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (stream id, fields) in order, in batches, between two times (inclusive)."""
    lower = "-" if start_ms is None else f"{start_ms}-0"
    upper = "+" if end_ms is None else f"{end_ms}-18446744073709551615"
    while True:
        batch = redis.xrange(keys.events, lower, upper, count=_BATCH) or []
        eid = ""
        for event_id, fields in batch:
            eid = _text(event_id)
            yield eid, {_text(k): _text(v) for k, v in (fields or {}).items()}
        if len(batch) < _BATCH:
            return
        lower = "(" + eid


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class QueueFigures:
    """Figures for a time window of the live stream. The rates are the national
    indicators as defined once in queueing.indicators; the rest are queue counts."""

    offered: int  # calls that entered the queue
    ring_no_answer: int
    completed: int
    indicators: Indicators

    def __getattr__(self, name: str) -> object:  # figures.connection_rate, ...
        return getattr(self.indicators, name)

    def as_dict(self) -> dict[str, object]:
        return {
            "offered": self.offered,
            "ring_no_answer": self.ring_no_answer,
            "completed": self.completed,
            **self.indicators.as_dict(),
        }


def queue_figures(
    redis: Redis, keys: QueueKeys, start_ms: int | None = None, end_ms: int | None = None
) -> QueueFigures:
    c = Counts()
    offered = ring_no_answer = 0
    handed_on: set[str] = set()  # transferred to another seat: answered once, not twice
    for _, event in read_events(redis, keys, start_ms, end_ms):
        kind = event.get("type", "")
        if kind == "TRANSFER":
            handed_on.add(event.get("call", ""))
        elif kind == "CONNECT" and event.get("call", "") in handed_on:
            continue
        if kind == "ENTERQUEUE":
            offered += 1
            c.wanted_person += 1
        elif kind == "TURNED_AWAY":
            c.wanted_person += 1
            c.turned_away += 1
        elif kind == "CONNECT":
            wait = int(event["wait_ms"])
            c.answered += 1
            c.wait_ms_answered += wait
            c.answered_within_15s += wait <= SERVICE_LEVEL_S * 1000
            c.longest_wait_ms = max(c.longest_wait_ms, wait)
        elif kind in ("ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY"):
            wait = int(event.get("wait_ms") or 0)
            c.longest_wait_ms = max(c.longest_wait_ms, wait)
            if kind == "ABANDON":
                c.abandoned += 1
                c.short_abandoned += wait < SHORT_ABANDON_S * 1000
            elif kind == "EXITWITHTIMEOUT":
                c.expired += 1
            else:
                c.callbacks += 1
        elif kind == "RINGNOANSWER":
            ring_no_answer += 1
        elif kind == "COMPLETE":
            c.completed += 1
            c.handle_ms += int(event["talk_ms"])
    return QueueFigures(offered, ring_no_answer, c.completed, indicators(c))
