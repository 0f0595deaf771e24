"""Working days on China's calendar (the ``chinese-calendar`` package): public holidays
are not working days, and the weekend days swapped for them (调休) are.

The package covers the years the State Council has published. For a later year the
plain rule (Monday to Friday) is used, and said once in the log, so a limit is never
refused for want of next year's calendar."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from functools import cache

import chinese_calendar

from cases.service import HOTLINE_TZ

log = logging.getLogger("hotline.workdays")


@cache
def _warn_unpublished(year: int) -> None:
    log.warning("no published holiday calendar for %d: counting Monday to Friday", year)


def is_workday(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        _warn_unpublished(day.year)
        return day.weekday() < 5


def add_workdays(start: datetime, days: int) -> datetime:
    """The moment ``days`` working days after ``start``, at the same local time of day.
    Starting on a rest day, counting begins with the next working day."""
    local = start.astimezone(HOTLINE_TZ)
    day, counted = local.date(), 0
    while counted < days:
        day += timedelta(days=1)
        if is_workday(day):
            counted += 1
    end = datetime.combine(day, local.timetz())
    return end.astimezone(start.tzinfo or HOTLINE_TZ)
