"""Hot topics (热点): spikes of one category on one street, or of one keyword, against
the same hours of past weeks. The detector fills this module (issue 20); the duty
leader's page, the wallboard and the reports read ``current_hot_topics``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class HotTopic:
    """One raised hot topic, as screens and reports show it."""

    id: int
    title: str  # e.g. 龙华区 金贸街道 · 停水
    raised_at: datetime
    case_count: int
    baseline: float
    suggested_unit: str = ""  # the lead unit's name, for a screen
    case_numbers: tuple[str, ...] = field(default_factory=tuple)


def current_hot_topics(db: Session, now: datetime) -> list[HotTopic]:
    """The hot topics open at ``now``, newest first."""
    return []


@dataclass(frozen=True)
class SpecialTopicFigures:
    """One special topic (专题) over a period, as the reports and screens show it."""

    id: int
    name: str  # e.g. 台风“摩羯”
    cases: int
    resolved: int
    overdue: int
    satisfied: int
    rated: int  # return visits with an answer; satisfaction = satisfied / rated


def special_topic_figures(db: Session, start: datetime, end: datetime) -> list[SpecialTopicFigures]:
    """Each special topic open during [start, end) with its figures for the period."""
    return []
