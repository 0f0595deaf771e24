"""The leaders' reports: their periods, the Beijing-style three rates (三率), and the
kept report files. calls.reports assembles the figures and writes the workbooks.

Periods are Beijing time: a day, an ISO week (Monday to Sunday) or a calendar month,
each ``[start, end)``, compared with the period before it.

The three rates (响应率, 解决率, 满意率), for a unit and for the whole city, are built
from the units' rankings (cases.rankings), which count each fact once and charge it to
the unit that held the case:

- 响应率 response_rate = signed for in time / the basis. Basis ``due`` (the default):
  dispatches whose response limit has passed or that were signed for; ``received``:
  every dispatch of the period (one not yet due counts as not responded).
- 解决率 resolution_rate = resolved in time / the basis, the same two choices.
- 满意率 satisfaction_rate = satisfied / answered return visits.
- 综合得分 score = 100 × the weighted mean of the rates that exist (a rate with no
  case yet drops out and the others' weights are scaled up). Default weights, as
  Beijing's 接诉即办 assessment: 响应率 0.1, 解决率 0.45, 满意率 0.45.

Configured by the environment (``RateSettings.from_env``):
HOTLINE_RATE_WEIGHTS="0.1,0.45,0.45", HOTLINE_RESPONSE_RATE_BASIS=due|received,
HOTLINE_RESOLUTION_RATE_BASIS=due|received.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from cases.models import Base
from cases.service import HOTLINE_TZ

KINDS = ("daily", "weekly", "monthly")
BASES = ("due", "received")
DEFAULT_WEIGHTS = (0.1, 0.45, 0.45)


class KeptReport(Base):
    """A generated report workbook, kept under the reports directory."""

    __tablename__ = "kept_report"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # daily | weekly | monthly
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    file_name: Mapped[str] = mapped_column(String(128))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    generated_by: Mapped[str] = mapped_column(String(64), default="system")

    __table_args__ = (Index("ux_kept_report_period", "kind", "period_start", unique=True),)


# -- periods ----------------------------------------------------------------------------


def period(kind: str, day: date) -> tuple[datetime, datetime]:
    """The Beijing day, ISO week or month that holds ``day``, as ``[start, end)``."""
    if kind == "daily":
        first, last = day, day + timedelta(days=1)
    elif kind == "weekly":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=7)
    elif kind == "monthly":
        first = day.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"a report is daily, weekly or monthly, not {kind!r}")
    return _midnight(first), _midnight(last)


def previous(kind: str, start: datetime) -> tuple[datetime, datetime]:
    """The period before the one starting at ``start``."""
    return period(kind, start.astimezone(HOTLINE_TZ).date() - timedelta(days=1))


def last_complete(kind: str, now: datetime) -> tuple[datetime, datetime]:
    """The newest period of the kind that has ended by ``now``."""
    return previous(kind, period(kind, now.astimezone(HOTLINE_TZ).date())[0])


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=HOTLINE_TZ)


def days_of(start: datetime, end: datetime) -> list[date]:
    first, last = start.astimezone(HOTLINE_TZ).date(), end.astimezone(HOTLINE_TZ).date()
    return [first + timedelta(days=n) for n in range((last - first).days)]


# -- the three rates --------------------------------------------------------------------


@dataclass(frozen=True)
class RateSettings:
    weights: tuple[float, float, float] = DEFAULT_WEIGHTS  # response, resolution, satisfaction
    response_basis: str = "due"
    resolution_basis: str = "due"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RateSettings:
        """The settings the module docstring names; anything malformed falls back to the
        default rather than stopping a report."""
        env = os.environ if env is None else env
        weights = DEFAULT_WEIGHTS
        raw = env.get("HOTLINE_RATE_WEIGHTS", "")
        try:
            parsed = tuple(float(w) for w in raw.split(","))
            if len(parsed) == 3 and all(w >= 0 for w in parsed) and sum(parsed) > 0:
                weights = parsed  # type: ignore[assignment]
        except ValueError:
            pass
        response = env.get("HOTLINE_RESPONSE_RATE_BASIS", "due")
        resolution = env.get("HOTLINE_RESOLUTION_RATE_BASIS", "due")
        return cls(
            weights=weights,
            response_basis=response if response in BASES else "due",
            resolution_basis=resolution if resolution in BASES else "due",
        )


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def three_rates(row: Mapping[str, Any], settings: RateSettings) -> dict[str, Any]:
    """The three rates and the score for one rankings row (a unit, or the city's sum
    from ``city_totals``), with their counts."""
    received = int(row["received"])
    response_whole = received if settings.response_basis == "received" else row["responses_due"]
    resolution_whole = received if settings.resolution_basis == "received" else row["handlings_due"]
    rates = {
        "response_rate": _share(row["signed_n"], response_whole),
        "resolution_rate": _share(row["resolved_n"], resolution_whole),
        "satisfaction_rate": _share(row["satisfied_n"], row["visits_n"]),
    }
    present = [
        (w, r) for w, r in zip(settings.weights, rates.values(), strict=True) if r is not None
    ]
    weight = sum(w for w, _ in present)
    score = round(100 * sum(w * r for w, r in present) / weight, 2) if weight else None
    return {
        **rates,
        "score": score,
        "signed": row["signed_n"],
        "response_basis": response_whole,
        "resolved": row["resolved_n"],
        "resolution_basis": resolution_whole,
        "satisfied": row["satisfied_n"],
        "visits": row["visits_n"],
    }


def city_totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The units' counts added up: the city as one rankings row."""
    keys = (
        "received",
        "responses_due",
        "handlings_due",
        "signed_n",
        "resolved_n",
        "satisfied_n",
        "visits_n",
        "returned",
        "overdue",
    )
    total = dict.fromkeys(keys, 0)
    for row in rows:
        for key in keys:
            total[key] += int(row.get(key) or 0)
    return total


# -- kept reports -----------------------------------------------------------------------


def file_name_for(kind: str, start: datetime) -> str:
    """12345-日报-20260501.xlsx and so on: what a leader sees in their downloads."""
    word = {"daily": "日报", "weekly": "周报", "monthly": "月报"}[kind]
    return f"12345-{word}-{start.astimezone(HOTLINE_TZ):%Y%m%d}.xlsx"


def kept(session: Session, kind: str, start: datetime) -> KeptReport | None:
    """The kept report of that period. Rows hold UTC (SQLite keeps no offset)."""
    at = start.astimezone(UTC)
    return session.scalar(
        select(KeptReport).where(KeptReport.kind == kind, KeptReport.period_start == at)
    )


def kept_reports(session: Session, limit: int = 200) -> list[KeptReport]:
    """The kept reports, newest period first."""
    return list(
        session.scalars(
            select(KeptReport)
            .order_by(KeptReport.period_start.desc(), KeptReport.kind)
            .limit(limit)
        )
    )
