"""Call detail rows from the queue's event stream, and the national indicators over
them: the stream is read here (Redis), the rows are the record's (cases.cdr), and the
indicators are defined once (queueing.indicators)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.cdr import counts, record_events, stream_cursor
from cases.channel_tasks import ChannelTask
from cases.models import Case, KnowledgeAnswer
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


@dataclass(frozen=True)
class CaseFigures:
    """What became of the cases taken on calls in a period: 知识库直接答复率 (answered
    from a knowledge base article) and 一次办结率 (closed on the call, never dispatched)."""

    cases: int
    answered_from_article: int
    closed_on_call: int
    knowledge_answer_rate: float | None  # 知识库直接答复率
    first_contact_rate: float | None  # 一次办结率

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def case_figures(session: Session, start: datetime, end: datetime) -> CaseFigures:
    """The two figures over cases made from calls in [start, end): a case answered from
    an article counts in both; one resolved on the phone without an article only in
    一次办结率. Cases made on the web or the API are not the desk's, and not counted."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)  # rows hold UTC
    window = (Case.call_id.is_not(None), Case.created_at >= start, Case.created_at < end)
    cases = session.scalar(select(func.count()).select_from(Case).where(*window)) or 0
    closed = (
        session.scalar(
            select(func.count())
            .select_from(Case)
            .where(*window, Case.dispatched_at.is_(None), Case.resolved_at.is_not(None))
        )
        or 0
    )
    from_article = (
        session.scalar(
            select(func.count())
            .select_from(KnowledgeAnswer)
            .join(Case, Case.id == KnowledgeAnswer.case_id)
            .where(*window)
        )
        or 0
    )
    return CaseFigures(
        cases=cases,
        answered_from_article=from_article,
        closed_on_call=closed,
        knowledge_answer_rate=round(from_article / cases, 4) if cases else None,
        first_contact_rate=round(closed / cases, 4) if cases else None,
    )


@dataclass(frozen=True)
class TaskFigures:
    """Online, SMS and Open311 requests in a period: 网络诉求首次响应率, the share
    answered within 3 minutes, over those answered or already past 3 minutes."""

    tasks: int
    answered_in_time: int
    late: int  # answered late, or unanswered past 3 minutes
    first_response_rate: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "tasks": self.tasks,
            "answered_in_time": self.answered_in_time,
            "late": self.late,
            "first_response_rate": self.first_response_rate,
        }


FIRST_RESPONSE_S = 180  # GB/T 33358: online requests answered within 3 minutes


def task_figures(
    session: Session, start: datetime, end: datetime, now: datetime | None = None
) -> TaskFigures:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    now = now or datetime.now(UTC)
    window = (ChannelTask.submitted_at >= start, ChannelTask.submitted_at < end)
    total = session.scalar(select(func.count()).select_from(ChannelTask).where(*window)) or 0
    in_time = (
        session.scalar(
            select(func.count())
            .select_from(ChannelTask)
            .where(*window, ChannelTask.first_response_s <= FIRST_RESPONSE_S)
        )
        or 0
    )
    late = (
        session.scalar(
            select(func.count())
            .select_from(ChannelTask)
            .where(
                *window,
                (ChannelTask.first_response_s > FIRST_RESPONSE_S)
                | (
                    ChannelTask.first_response_at.is_(None)
                    & (ChannelTask.submitted_at < now - timedelta(seconds=FIRST_RESPONSE_S))
                ),
            )
        )
        or 0
    )
    counted = in_time + late
    return TaskFigures(
        tasks=total,
        answered_in_time=in_time,
        late=late,
        first_response_rate=round(in_time / counted, 4) if counted else None,
    )
