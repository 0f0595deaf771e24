"""The dialer's rules with a controlled clock: calling hours, retry spacing, per-number
limits, opt-out and numbers that must never be dialled."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from calls.dialing import (
    DialerSettings,
    dialable,
    next_attempt,
    next_calling_time,
    number_allowed,
    within_calling_hours,
)

BJ = ZoneInfo("Asia/Shanghai")
RULES = DialerSettings()


@pytest.mark.parametrize(
    ("hour", "minute", "allowed"),
    [(7, 59, False), (8, 0, True), (12, 0, True), (20, 59, True), (21, 0, False), (23, 30, False)],
)
def test_calling_hours_are_eight_to_nine_beijing_time(
    hour: int, minute: int, allowed: bool
) -> None:
    assert within_calling_hours(datetime(2026, 11, 28, hour, minute, tzinfo=BJ), RULES) is allowed


def test_outside_hours_waits_for_the_next_morning_even_from_another_time_zone() -> None:
    late = datetime(2026, 11, 28, 21, 30, tzinfo=BJ)
    assert next_calling_time(late, RULES) == datetime(2026, 11, 29, 8, 0, tzinfo=BJ)
    early_utc = datetime(2026, 11, 28, 22, 0, tzinfo=ZoneInfo("UTC"))  # 06:00 in Beijing
    assert next_calling_time(early_utc, RULES) == datetime(2026, 11, 29, 8, 0, tzinfo=BJ)


def test_three_attempts_spaced_apart_then_finished() -> None:
    first = datetime(2026, 11, 28, 10, 0, tzinfo=BJ)
    second = next_attempt(1, "no-answer", first, RULES)
    assert second == first + timedelta(minutes=30)
    third = next_attempt(2, "busy", second, RULES)
    assert third == second + timedelta(hours=2)
    assert next_attempt(3, "no-answer", third, RULES) is None
    assert next_attempt(1, "satisfied", first, RULES) is None  # answered: done
    late = datetime(2026, 11, 28, 20, 45, tzinfo=BJ)
    assert next_attempt(1, "machine", late, RULES) == datetime(2026, 11, 29, 8, 0, tzinfo=BJ)


def test_per_number_limits_five_a_day_and_three_in_five_minutes() -> None:
    at = datetime(2026, 11, 28, 15, 0, tzinfo=BJ)
    burst = [at - timedelta(minutes=4), at - timedelta(minutes=2), at - timedelta(minutes=1)]
    assert number_allowed(burst, at, RULES) == at + timedelta(minutes=1)
    assert number_allowed(burst[1:], at, RULES) is None
    day = [at - timedelta(hours=h) for h in (20, 15, 10, 5, 1)]
    assert number_allowed(day, at, RULES) == at + timedelta(hours=4)  # the oldest, plus 24 h
    evening = datetime(2026, 11, 28, 20, 50, tzinfo=BJ)
    yesterday = [evening - timedelta(hours=23, minutes=50 - m) for m in range(5)]
    assert number_allowed(yesterday, evening, RULES) == datetime(2026, 11, 29, 8, 0, tzinfo=BJ)
    assert number_allowed(day[1:], at, RULES) is None


def test_opted_out_withheld_and_invalid_numbers_are_never_dialled() -> None:
    assert dialable("+8613800138000", opted_out=True) == "opted-out"
    for number in ("", "anonymous", "12345", "+86abc"):
        assert dialable(number, opted_out=False) == "unreachable"
    assert dialable("+8613800138000", opted_out=False) is None


def test_a_call_may_start_only_if_hours_still_hold_a_moment_later() -> None:
    from calls.dialing import may_dial_at

    assert may_dial_at(datetime(2026, 11, 28, 8, 0, tzinfo=BJ), RULES)
    assert may_dial_at(datetime(2026, 11, 28, 20, 59, 58, tzinfo=BJ), RULES)
    assert not may_dial_at(datetime(2026, 11, 28, 20, 59, 59, 500000, tzinfo=BJ), RULES)
    assert not may_dial_at(datetime(2026, 11, 28, 7, 59, 59, tzinfo=BJ), RULES)


def test_pacing_is_a_sliding_window() -> None:
    from calls.dialing import pace_window

    assert pace_window(DialerSettings(calls_per_s=50)) == (50, 1.0)
    assert pace_window(DialerSettings(calls_per_s=1)) == (1, 1.0)
    assert pace_window(DialerSettings(calls_per_s=0.5)) == (1, 2.0)
