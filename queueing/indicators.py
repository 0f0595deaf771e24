"""The figures supervisors are measured on, defined once (pure: counts in, ratios out).
Live windows (queueing.events, from the Redis stream) and any period (cases.cdr, from
the call detail rows in SQL) count the same things and pass them here.

Definitions, after the national indicators for 12345 lines (GB/T 33358-2016, and the
rates cities report):

- wanted_person: calls that asked for a person: every call that entered the queue, and
  every call turned away because the centre was closed.
- short_abandoned: callers who hung up within SHORT_ABANDON_S of entering the queue
  (a misdial, a change of mind): left out of the connection rate's denominator and
  reported on their own, as is usual for call centres.
- 人工接通率 connection_rate = answered / (wanted_person - short_abandoned). A caller who
  chose a callback, waited past the maximum, or was turned away counts as not answered.
- 人工应答及时率 answered_within_15s_rate = answered within SERVICE_LEVEL_S / answered.
- avg_wait_s: of answered calls, queue entry to answer.
- avg_handle_s (AHT): talk plus wrap-up of completed calls (wrap-up where known).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SHORT_ABANDON_S = 5.0
SERVICE_LEVEL_S = 15.0


@dataclass
class Counts:
    wanted_person: int = 0
    answered: int = 0
    answered_within_15s: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    callbacks: int = 0
    expired: int = 0
    turned_away: int = 0
    completed: int = 0
    wait_ms_answered: int = 0
    handle_ms: int = 0
    longest_wait_ms: int = 0


@dataclass(frozen=True)
class Indicators:
    wanted_person: int
    answered: int
    abandoned: int
    short_abandoned: int
    callbacks: int
    expired: int
    turned_away: int
    connection_rate: float | None  # 人工接通率
    answered_within_15s_rate: float | None  # 人工应答及时率
    avg_wait_s: float | None
    avg_handle_s: float | None
    longest_wait_s: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator > 0 else None


def indicators(c: Counts) -> Indicators:
    return Indicators(
        wanted_person=c.wanted_person,
        answered=c.answered,
        abandoned=c.abandoned,
        short_abandoned=c.short_abandoned,
        callbacks=c.callbacks,
        expired=c.expired,
        turned_away=c.turned_away,
        connection_rate=_ratio(c.answered, c.wanted_person - c.short_abandoned),
        answered_within_15s_rate=_ratio(c.answered_within_15s, c.answered),
        avg_wait_s=round(c.wait_ms_answered / c.answered / 1000, 2) if c.answered else None,
        avg_handle_s=round(c.handle_ms / c.completed / 1000, 2) if c.completed else None,
        longest_wait_s=round(c.longest_wait_ms / 1000, 2) if c.wanted_person else None,
    )
