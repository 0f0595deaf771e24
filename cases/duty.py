"""Duty leaders (领导值班): the monthly roster of leaders on duty, their page of the day,
and their instructions (批示) on cases.

District heads and bureau chiefs (users with the ``leader`` role) take the platform's
duty by the day; supervisors and admins keep the roster a month at a time. The leader
on duty today sees the day's overdue, supervised (督办) and urgent-but-unsigned cases
and the hot topics, and writes instructions on cases. An instruction is a case event
(``instructed``, its note the words): the unit reads it on its case page, the trail
keeps it. Days are Beijing days.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Date, DateTime, Index, String, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, selectinload

from cases.dispatch import CaseRefused
from cases.models import Base, Case, CaseEvent, User
from cases.service import HOTLINE_TZ, _record, utcnow
from cases.topics import HotTopic, current_hot_topics

LEADER_ROLE = "leader"
INSTRUCTION_MAX_CHARS = 2000
INSTRUCTED = "instructed"  # the case event's action
OPEN = ("dispatched", "accepted", "in_progress", "returned", "received", "reopened")
LIST_LIMIT = 200


class DutyShift(Base):
    """One Beijing day of the roster: the leader on duty, and who put them there."""

    __tablename__ = "duty_roster"
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    assigned_by: Mapped[str] = mapped_column(String(64), default="")
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# The page of the day lists today's instructions without reading the whole trail table.
Index("ix_case_event_action_at", CaseEvent.action, CaseEvent.at)


def beijing_day(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(HOTLINE_TZ).date()


def month_days(year: int, month: int) -> list[date]:
    return [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]


def leaders(session: Session) -> list[User]:
    """The active leaders, by name: who may be put on the roster."""
    return list(
        session.scalars(
            select(User)
            .where(User.role == LEADER_ROLE, User.active.is_(True))
            .order_by(User.username)
        )
    )


def roster(session: Session, year: int, month: int) -> dict[date, str]:
    """The month's roster: day -> leader's user name (days with nobody are absent)."""
    days = month_days(year, month)
    rows = session.scalars(
        select(DutyShift).where(DutyShift.day >= days[0], DutyShift.day <= days[-1])
    )
    return {row.day: row.username for row in rows}


def set_roster(
    session: Session, year: int, month: int, assignments: dict[date, str], by: str
) -> int:
    """Put the month's roster as ``assignments`` says (day -> user name, "" for nobody);
    days not named keep their leader. Returns how many days changed. Refuses a day
    outside the month and anyone who is not an active leader."""
    allowed = {u.username for u in leaders(session)}
    days = set(month_days(year, month))
    existing = {
        row.day: row
        for row in session.scalars(
            select(DutyShift).where(DutyShift.day >= min(days), DutyShift.day <= max(days))
        )
    }
    changed = 0
    for day, username in sorted(assignments.items()):
        if day not in days:
            raise CaseRefused("roster-day", f"{day} 不在本月", f"{day} is not in this month")
        row = existing.get(day)
        kept_as_is = row is not None and row.username == username
        if username and username not in allowed and not kept_as_is:
            raise CaseRefused(
                "roster-not-leader",
                f"{username} 不是在岗的值班领导",
                f"{username} is not an active leader",
            )
        if row is not None and not username:
            session.delete(row)
            changed += 1
        elif row is None and username:
            session.add(DutyShift(day=day, username=username, assigned_by=by, assigned_at=utcnow()))
            changed += 1
        elif row is not None and row.username != username:
            row.username, row.assigned_by, row.assigned_at = username, by, utcnow()
            changed += 1
    session.flush()
    return changed


def on_duty(session: Session, day: date) -> str | None:
    """The user name of the leader on duty that Beijing day, if the roster names one."""
    return session.scalar(select(DutyShift.username).where(DutyShift.day == day))


class NotOnDuty(CaseRefused):
    def __init__(self) -> None:
        super().__init__(
            "not-on-duty",
            "今天不是您值班，只有当日值班领导可以批示",
            "You are not on duty today: only today's duty leader may write instructions",
        )


def instruct(
    session: Session, case: Case, leader: str, text: str, now: datetime | None = None
) -> Case:
    """批示: the duty leader's instruction on a case, which the unit sees on its case page
    and the trail keeps. Only the leader the roster names for today may write one."""
    now = now or utcnow()
    if on_duty(session, beijing_day(now)) != leader:
        raise NotOnDuty()
    words = text.strip()
    if not words:
        raise CaseRefused("instruction-empty", "请填写批示内容", "Write the instruction")
    if len(words) > INSTRUCTION_MAX_CHARS:
        raise CaseRefused(
            "instruction-too-long",
            f"批示最多 {INSTRUCTION_MAX_CHARS} 字",
            f"An instruction is at most {INSTRUCTION_MAX_CHARS} characters",
        )
    _record(case, leader, INSTRUCTED, case.status, case.status, words, at=now)
    case.updated_at = now
    return case


def instructions(case: Case) -> list[CaseEvent]:
    """A case's instructions, oldest first (from its loaded trail)."""
    return [e for e in case.events if e.action == INSTRUCTED]


@dataclass(frozen=True)
class Lateness:
    """How far a case ran past one of its limits: ``running`` while the limit is still
    unmet (the time grows), otherwise how late it was met."""

    kind: str  # response | handling
    seconds: float
    running: bool


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite: naive UTC


def lateness(case: Case, now: datetime | None = None) -> list[Lateness]:
    """The overdue case's missed limits, by how much: what the leader asks first."""
    now = now or utcnow()
    late = []
    respond_by, handle_by = _aware(case.respond_by), _aware(case.handle_by)
    if case.response_overdue and respond_by is not None:
        answered = [
            m
            for m in (_aware(case.accepted_at), _aware(case.on_site_at))
            if m is not None and m > respond_by
        ]
        if case.status == "dispatched" and not answered:
            late.append(Lateness("response", (now - respond_by).total_seconds(), True))
        elif answered:
            late.append(Lateness("response", (min(answered) - respond_by).total_seconds(), False))
    if case.handling_overdue and handle_by is not None and now > handle_by:
        late.append(Lateness("handling", (now - handle_by).total_seconds(), True))
    return late


@dataclass
class DutyDay:
    """The duty leader's page of the day."""

    day: date
    leader: str | None  # on duty, by user name
    overdue: list[Case]
    supervised: list[Case]
    urgent_unsigned: list[Case]
    hot_topics: list[HotTopic]
    instructed_today: list[CaseEvent]


def day_page(session: Session, now: datetime | None = None) -> DutyDay:
    now = now or utcnow()
    day = beijing_day(now)
    start = datetime.combine(day, datetime.min.time(), HOTLINE_TZ).astimezone(UTC)

    def cases(*where: object) -> list[Case]:
        return list(
            session.scalars(
                select(Case)
                .where(*where)  # type: ignore[arg-type]
                .options(
                    selectinload(Case.department),
                    selectinload(Case.category),
                    selectinload(Case.events),
                )
                .order_by(Case.dispatched_at, Case.id)
                .limit(LIST_LIMIT)
            )
        )

    return DutyDay(
        day=day,
        leader=on_duty(session, day),
        overdue=cases(
            or_(Case.response_overdue, Case.handling_overdue),
            Case.status.in_(("dispatched", "accepted", "in_progress", "returned")),
        ),
        supervised=cases(Case.supervised_note.is_not(None), Case.status.in_(OPEN)),
        urgent_unsigned=cases(
            Case.urgency == "urgent", Case.status == "dispatched", Case.accepted_at.is_(None)
        ),
        hot_topics=current_hot_topics(session, now),
        instructed_today=list(
            session.scalars(
                select(CaseEvent)
                .where(
                    CaseEvent.action == INSTRUCTED,
                    CaseEvent.at >= start,
                    CaseEvent.at < start + timedelta(days=1),
                )
                .options(selectinload(CaseEvent.case))
                .order_by(CaseEvent.id.desc())
                .limit(LIST_LIMIT)
            )
        ),
    )
