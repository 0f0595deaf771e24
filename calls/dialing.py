"""The outbound dialer's rules, as pure functions of time: when a number may be called,
when to try again, and when to give up. Configurable; facts in the field notes
(national 12345 rules): calling hours 08:00-21:00 Beijing time, at most three attempts
spaced apart, at most 5 calls to one number in 24 hours and 3 in 5 minutes, the
opt-out register (谢绝回访) always honoured, withheld or invalid numbers never dialled.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

# Results after which a number is tried again later; any other result ends the item.
RETRYABLE = ("no-answer", "busy", "failed", "congestion", "machine")


@dataclass(frozen=True)
class DialerSettings:
    timezone: str = "Asia/Shanghai"
    first_call: time = time(8, 0)
    last_call: time = time(21, 0)  # no call starts at or after this
    max_attempts: int = 3
    retry_after: tuple[timedelta, ...] = (timedelta(minutes=30), timedelta(hours=2))
    per_number_day: int = 5  # calls to one number in 24 h
    per_number_burst: int = 3  # calls to one number in 5 min
    burst_window: timedelta = timedelta(minutes=5)
    max_concurrent: int = 10
    calls_per_s: float = 1.0  # Twilio's default for one caller id
    # A call is started only if calling hours still hold this much later: the time the
    # request takes to reach the carrier never carries a call past closing.
    dial_margin: timedelta = timedelta(seconds=1)
    # A return visit whose calls all failed is asked by SMS (calls.sms), which settles
    # it; without SMS the last failed call settles it as unreachable.
    sms_fallback: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DialerSettings:
        env = os.environ if env is None else env
        hours = env.get("HOTLINE_CALLING_HOURS", "08:00-21:00")
        first, _, last = hours.partition("-")
        return cls(
            first_call=time.fromisoformat(first.strip()),
            last_call=time.fromisoformat(last.strip()),
            max_attempts=int(env.get("HOTLINE_DIAL_MAX_ATTEMPTS", "3")),
            max_concurrent=int(env.get("HOTLINE_DIAL_MAX_CONCURRENT", "10")),
            calls_per_s=float(env.get("HOTLINE_DIAL_CALLS_PER_S", "1")),
            sms_fallback=env.get("HOTLINE_SMS_PROVIDER", "").strip().lower()
            not in ("", "none", "off"),
        )


def _local(at: datetime, settings: DialerSettings) -> datetime:
    return at.astimezone(ZoneInfo(settings.timezone))


def within_calling_hours(at: datetime, settings: DialerSettings) -> bool:
    local = _local(at, settings).time()
    return settings.first_call <= local < settings.last_call


def may_dial_at(at: datetime, settings: DialerSettings) -> bool:
    """Whether a call may start at ``at``: inside calling hours, with the margin."""
    return within_calling_hours(at, settings) and within_calling_hours(
        at + settings.dial_margin, settings
    )


def pace_window(settings: DialerSettings) -> tuple[int, float]:
    """The pacing rule as a sliding window: at most ``n`` call starts in any ``s``
    seconds (50 a second: 50 in 1 s; one every 2 s: 1 in 2 s)."""
    if settings.calls_per_s >= 1:
        return int(settings.calls_per_s), 1.0
    return 1, 1.0 / settings.calls_per_s


def next_calling_time(at: datetime, settings: DialerSettings) -> datetime:
    """``at`` itself if calls are allowed then, else the next morning's first minute."""
    if within_calling_hours(at, settings):
        return at
    local = _local(at, settings)
    day = local.date() if local.time() < settings.first_call else local.date() + timedelta(days=1)
    opening = datetime.combine(day, settings.first_call, tzinfo=local.tzinfo)
    return opening.astimezone(at.tzinfo)


def next_attempt(
    attempts: int, last_result: str, last_at: datetime, settings: DialerSettings
) -> datetime | None:
    """When to try again after ``attempts`` calls, the last one ending with
    ``last_result`` at ``last_at``; None when the item is finished."""
    if last_result not in RETRYABLE or attempts >= settings.max_attempts:
        return None
    spacing = settings.retry_after[min(attempts, len(settings.retry_after)) - 1]
    return next_calling_time(last_at + spacing, settings)


def number_allowed(
    recent_calls: Iterable[datetime], at: datetime, settings: DialerSettings
) -> datetime | None:
    """None if the number may be called at ``at``; else the earliest moment it may,
    given the times of its earlier calls (the per-number limits)."""
    calls = sorted(c for c in recent_calls if c > at - timedelta(hours=24))
    waits: list[datetime] = []
    if len(calls) >= settings.per_number_day:
        waits.append(calls[-settings.per_number_day] + timedelta(hours=24))
    in_burst = [c for c in calls if c > at - settings.burst_window]
    if len(in_burst) >= settings.per_number_burst:
        waits.append(in_burst[-settings.per_number_burst] + settings.burst_window)
    if not waits:
        return None
    return next_calling_time(max(waits), settings)


def dialable(number: str, opted_out: bool) -> str | None:
    """Why a number must not be dialled (None: it may be): opt-out, or not a number."""
    if opted_out:
        return "opted-out"
    if not number.startswith("+") or not number[1:].isdigit() or len(number) < 8:
        return "unreachable"  # withheld, anonymous, invalid: recorded, never dialled
    return None
