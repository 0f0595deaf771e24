"""Call detail rows from the queue's event stream, and the national indicators over
them: the stream is read here (Redis), the rows are the record's (cases.cdr), and the
indicators are defined once (queueing.indicators)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from redis import Redis
from sqlalchemy.orm import Session

from cases.cdr import counts, record_events, stream_cursor
from queueing.indicators import SERVICE_LEVEL_S, SHORT_ABANDON_S, Counts, Indicators, indicators
from queueing.keys import QueueKeys


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def record_calls(session: Session, redis: Redis, keys: QueueKeys, batch: int = 5000) -> int:
    """Fold the stream since the last committed cursor into call rows. Returns how many
    events it read; call until it returns 0 to catch up. A batch is read once and
    committed with its cursor, so a re-run after a crash never counts twice."""
    last = stream_cursor(session)
    raw = cast(
        list[tuple[bytes, dict[bytes, bytes]]],
        redis.xrange(keys.events, "(" + last if last else "-", "+", count=batch),
    )
    events = [(_text(eid), {_text(k): _text(v) for k, v in fields.items()}) for eid, fields in raw]
    return record_events(session, events)


def figures(session: Session, start: datetime, end: datetime) -> Indicators:
    """The indicators for calls that entered the queue (or were turned away) in
    [start, end), from the call rows."""
    return indicators(Counts(**counts(session, start, end, SERVICE_LEVEL_S, SHORT_ABANDON_S)))
