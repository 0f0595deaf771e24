"""The event log (a Redis Stream) and the figures computed from it.

Event types follow Asterisk's queue_log where one exists: ENTERQUEUE, OFFER, CONNECT,
RINGNOANSWER, ABANDON, COMPLETE, EXITWITHTIMEOUT, EXITWITHKEY (left for a callback),
plus SEAT_STATE, SKILL and STICKY_EXPIRED.
Stream ids are Redis server milliseconds, so a window is an XRANGE.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

from redis import Redis

from queueing.keys import QueueKeys

_BATCH = 5000


def read_events(
    redis: Redis, keys: QueueKeys, start_ms: int | None = None, end_ms: int | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (stream id, fields) in order, in batches, between two times (inclusive)."""
    lower = "-" if start_ms is None else f"{start_ms}-0"
    upper = "+" if end_ms is None else f"{end_ms}-18446744073709551615"
    while True:
        batch = redis.xrange(keys.events, lower, upper, count=_BATCH)
        for event_id, fields in batch:
            eid = event_id.decode() if isinstance(event_id, bytes) else event_id
            yield (
                eid,
                {
                    (k.decode() if isinstance(k, bytes) else k): (
                        v.decode() if isinstance(v, bytes) else v
                    )
                    for k, v in fields.items()
                },
            )
        if len(batch) < _BATCH:
            return
        lower = "(" + eid


@dataclass(frozen=True)
class QueueFigures:
    """Figures for a time window.

    connection_rate is answered / (answered + abandoned + expired): of the callers who
    stopped waiting in the window, the share who reached a person. Callers who chose a
    callback kept a promise and are counted apart. Service levels use the same
    denominator, as is usual for call centres.
    """

    offered: int  # calls that entered the queue
    answered: int
    abandoned: int
    expired: int
    callbacks: int
    ring_no_answer: int
    completed: int
    connection_rate: float | None
    service_level_15s: float | None
    service_level_30s: float | None
    avg_wait_s: float | None  # of answered calls
    longest_wait_s: float | None  # of answered and abandoned calls
    avg_handle_s: float | None  # talk time of completed calls

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def queue_figures(
    redis: Redis, keys: QueueKeys, start_ms: int | None = None, end_ms: int | None = None
) -> QueueFigures:
    counts = dict.fromkeys(
        (
            "ENTERQUEUE",
            "CONNECT",
            "ABANDON",
            "EXITWITHTIMEOUT",
            "EXITWITHKEY",
            "RINGNOANSWER",
            "COMPLETE",
        ),
        0,
    )
    answered_waits: list[int] = []
    longest = 0
    talk_total = 0
    within_15 = within_30 = 0
    for _, event in read_events(redis, keys, start_ms, end_ms):
        kind = event.get("type", "")
        if kind not in counts:
            continue
        counts[kind] += 1
        if kind == "CONNECT":
            wait = int(event["wait_ms"])
            answered_waits.append(wait)
            within_15 += wait <= 15_000
            within_30 += wait <= 30_000
            longest = max(longest, wait)
        elif kind in ("ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY"):
            longest = max(longest, int(event["wait_ms"]))
        elif kind == "COMPLETE":
            talk_total += int(event["talk_ms"])
    answered = counts["CONNECT"]
    ended_waiting = answered + counts["ABANDON"] + counts["EXITWITHTIMEOUT"]
    return QueueFigures(
        offered=counts["ENTERQUEUE"],
        answered=answered,
        abandoned=counts["ABANDON"],
        expired=counts["EXITWITHTIMEOUT"],
        callbacks=counts["EXITWITHKEY"],
        ring_no_answer=counts["RINGNOANSWER"],
        completed=counts["COMPLETE"],
        connection_rate=_ratio(answered, ended_waiting),
        service_level_15s=_ratio(within_15, ended_waiting),
        service_level_30s=_ratio(within_30, ended_waiting),
        avg_wait_s=round(sum(answered_waits) / answered / 1000, 2) if answered else None,
        longest_wait_s=round(longest / 1000, 2) if ended_waiting else None,
        avg_handle_s=(
            round(talk_total / counts["COMPLETE"] / 1000, 2) if counts["COMPLETE"] else None
        ),
    )
