"""Finding cases for operators and supervisors: by case number (whole, or its trailing
digits), by the caller's phone in any form (13800138000, 138-0013-8000, +86..., the
last four digits), by words of the address or the description; filtered by status,
unit (lead or assisting) and Beijing dates; newest first, a page at a time.

SQL only (``LIKE`` for words; a word index comes later). The screens format what
this returns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import Session

from cases.lifecycle import STATUSES
from cases.models import Case, CaseAssist, Category, Department
from cases.phones import DEFAULT, InvalidPhone, PhoneSettings, normalise

BEIJING = ZoneInfo("Asia/Shanghai")
PAGE_SIZE = 20
MAX_PAGE = 500  # 10,000 rows back: further than anyone pages; narrow the search instead
MAX_TERMS = 8
_NUMBER = re.compile(r"12345-\d{8}-\d{6}")
_NUMERIC = re.compile(r"[\d\s\-+().]+")


@dataclass(frozen=True)
class CaseQuery:
    """What was asked. ``since``/``until`` are Beijing dates, both included."""

    text: str = ""
    status: str | None = None
    unit: str | None = None  # a unit's code: cases it leads or assists
    since: date | None = None
    until: date | None = None
    page: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.page <= MAX_PAGE:
            raise ValueError(f"page is 1 to {MAX_PAGE}")
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"no such status: {self.status!r}")


@dataclass(frozen=True)
class CaseHit:
    number: str
    created_at: datetime
    category: str
    unit: str
    status: str
    caller_phone: str
    urgency: str
    address: str
    description: str
    overdue: bool
    supervised: bool


@dataclass(frozen=True)
class CasePage:
    hits: list[CaseHit]
    page: int
    more: bool


def beijing_day_start(day: date) -> datetime:
    """Midnight of a Beijing day, in UTC (the database keeps UTC)."""
    return datetime.combine(day, time(), BEIJING).astimezone(UTC)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _numeric_match(text: str, phones: PhoneSettings) -> ColumnElement[bool]:
    """A number typed alone: a case number or its tail, or a phone number or its tail."""
    digits = _digits(text)
    found: list[ColumnElement[bool]] = []
    if _NUMBER.fullmatch(text.strip()):
        return Case.number == text.strip()
    if len(digits) == 19 and digits.startswith("12345"):  # a case number typed without dashes
        found.append(Case.number == f"{digits[:5]}-{digits[5:13]}-{digits[13:]}")
    if len(digits) >= 3:
        found.append(Case.number.endswith(digits, autoescape=True))
        if "-" in text:  # 20261127-000123: the tail as written
            found.append(Case.number.endswith(text.strip(), autoescape=True))
    try:
        phone = normalise(text, phones)
    except InvalidPhone:
        phone = ""
    if phone.startswith("+"):
        found.append(Case.caller_phone == phone)
    if len(digits) >= 4:  # the last digits of a number (the tail a caller reads out)
        found.append(Case.caller_phone.endswith(digits, autoescape=True))
    return or_(*found) if found else false()


def _word_match(word: str) -> ColumnElement[bool]:
    return or_(
        Case.address.icontains(word, autoescape=True),
        Case.description.icontains(word, autoescape=True),
        Case.caller_name.icontains(word, autoescape=True),
        Case.number == word,
    )


def text_condition(text: str, phones: PhoneSettings = DEFAULT) -> ColumnElement[bool] | None:
    """The free-text part: a number alone (digits with spaces, dashes, a plus) is
    matched as a case or phone number; otherwise every word must appear in the address,
    the description or the caller's name (a number among words also as above)."""
    text = text.strip()
    if not text:
        return None
    if _NUMERIC.fullmatch(text) and _digits(text):
        return _numeric_match(text, phones)
    words = text.split()[:MAX_TERMS]
    return and_(
        *(
            or_(_word_match(w), _numeric_match(w, phones))
            if _NUMERIC.fullmatch(w) and len(_digits(w)) >= 4
            else _word_match(w)
            for w in words
        )
    )


def search_cases(session: Session, query: CaseQuery, phones: PhoneSettings = DEFAULT) -> CasePage:
    """One page of cases matching the query, newest first."""
    conditions: list[ColumnElement[bool]] = []
    text = text_condition(query.text, phones)
    if text is not None:
        conditions.append(text)
    if query.status:
        conditions.append(Case.status == query.status)
    if query.unit:
        unit_id = select(Department.id).where(Department.code == query.unit).scalar_subquery()
        assisted = select(CaseAssist.case_id).where(CaseAssist.department_id == unit_id)
        conditions.append(or_(Case.department_id == unit_id, Case.id.in_(assisted)))
    if query.since:
        conditions.append(Case.created_at >= beijing_day_start(query.since))
    if query.until:
        conditions.append(Case.created_at < beijing_day_start(query.until + timedelta(days=1)))
    statement = (
        select(
            Case.number,
            Case.created_at,
            Category.name,
            Department.name,
            Case.status,
            Case.caller_phone,
            Case.urgency,
            Case.address,
            Case.description,
            Case.response_overdue,
            Case.handling_overdue,
            Case.supervised_note,
        )
        .outerjoin(Category, Category.id == Case.category_id)
        .outerjoin(Department, Department.id == Case.department_id)
        .where(*conditions)
        .order_by(Case.created_at.desc(), Case.id.desc())
        .offset((query.page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
    )
    rows = session.execute(statement).all()
    hits = [
        CaseHit(
            number=r[0],
            created_at=r[1] if r[1].tzinfo else r[1].replace(tzinfo=UTC),
            category=r[2] or "",
            unit=r[3] or "",
            status=r[4],
            caller_phone=r[5] or "",
            urgency=r[6] or "normal",
            address=r[7] or "",
            description=(r[8] or "")[:80],
            overdue=bool(r[9] or r[10]),
            supervised=bool(r[11]),
        )
        for r in rows[:PAGE_SIZE]
    ]
    return CasePage(hits, query.page, len(rows) > PAGE_SIZE)
