"""The queue's own settings, read from the environment here so that the queue (and
the jobs and adapters built on it) never need the composition root's configuration."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

PRIORITY_CLASSES = ("vulnerable", "repeat", "normal")
DEFAULT_SKILLS = ("mandarin", "hainanese", "english")
# The skill of seats that take online, SMS and Open311 requests (queueing.tasks) between
# calls; no call asks for it.
TASK_SKILL = "online"


class ConfigError(ValueError):
    """An environment variable has a value we cannot use."""


@dataclass(frozen=True)
class QueueSettings:
    name: str = "main"
    skills: tuple[str, ...] = DEFAULT_SKILLS
    # A priority call is placed as if it had arrived this many seconds earlier, so an
    # ordinary call is never overtaken by a call that arrived more than the largest
    # bonus after it: that is the aging bound.
    priority_bonus_s: Mapping[str, float] = field(
        default_factory=lambda: {"vulnerable": 120.0, "repeat": 60.0, "normal": 0.0}
    )
    offer_timeout_s: float = 20.0  # ring-no-answer, counted from the moment the seat rings
    # How long an offered call may take to start ringing its seat: the longest prompt
    # (a repeat caller's case-status sentence, about 20 s) plays out first.
    offer_start_s: float = 30.0
    wrapup_s: float = 30.0
    seat_heartbeat_ttl_s: float = 30.0
    sticky_s: float = 30.0  # how long a repeat caller waits for their own operator
    max_wait_s: float = 4 * 3600.0  # a waiting call older than this is stale (lost adapter)
    # A conversation longer than this is taken to be a lost hang-up (fail-safe): the
    # call is completed and the seat freed.
    max_talk_s: float = 7200.0
    # Nobody logged in for this long: the centre is closed, and callers are told so and
    # called back. Shorter lapses (a console outage, a shift change) keep them waiting.
    closed_after_s: float = 300.0
    # The stream is a live buffer of today and yesterday (lua/prelude.lua trims older
    # days), capped at this length too: two days at Hangzhou's record 87,000 calls, at
    # about 7-10 entries a call (bench/day_replay.py: events_per_call) and about 92
    # bytes an entry (about 180 MB). Call detail rows in SQL keep the history, written
    # by the reaper every few seconds.
    events_maxlen: int = 2_000_000
    default_handle_s: float = 240.0  # estimate before any call has been handled

    @property
    def ring_timeout_s(self) -> int:
        """How long an adapter rings a seat: under the offer lease, so the telephony's
        no-answer arrives before the reaper takes the call back (Twilio's minimum is 5)."""
        return max(5, int(self.offer_timeout_s) - 2)

    @property
    def aging_bound_s(self) -> float:
        return max(self.priority_bonus_s.values())


def env_number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bonuses(env: Mapping[str, str]) -> dict[str, float]:
    bonuses = {"vulnerable": 120.0, "repeat": 60.0, "normal": 0.0}
    raw = env.get("HOTLINE_PRIORITY_BONUS_S", "").strip()
    if not raw:
        return bonuses
    for part in raw.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in PRIORITY_CLASSES:
            raise ConfigError(
                f"HOTLINE_PRIORITY_BONUS_S must look like 'vulnerable=120,repeat=60', got {raw!r}"
            )
        try:
            bonuses[name] = float(value)
        except ValueError:
            raise ConfigError(f"HOTLINE_PRIORITY_BONUS_S: {value!r} is not a number") from None
    return bonuses


def load_queue_settings(environ: Mapping[str, str] | None = None) -> QueueSettings:
    env = os.environ if environ is None else environ
    skills = tuple(
        s.strip()
        for s in env.get("HOTLINE_SKILLS", ",".join(DEFAULT_SKILLS)).split(",")
        if s.strip()
    )
    if not skills:
        raise ConfigError("HOTLINE_SKILLS must name at least one skill")
    return QueueSettings(
        name=env.get("HOTLINE_QUEUE", "main"),
        skills=skills,
        priority_bonus_s=_bonuses(env),
        # Twilio rings a seat for at least 5 s, and for the lease minus 2 s.
        offer_timeout_s=env_number(env, "HOTLINE_OFFER_TIMEOUT_S", 20.0, minimum=8),
        offer_start_s=env_number(env, "HOTLINE_OFFER_START_S", 30.0, minimum=5),
        wrapup_s=env_number(env, "HOTLINE_WRAPUP_S", 30.0),
        seat_heartbeat_ttl_s=env_number(env, "HOTLINE_SEAT_TTL_S", 30.0, minimum=1),
        sticky_s=env_number(env, "HOTLINE_STICKY_S", 30.0),
        max_wait_s=env_number(env, "HOTLINE_MAX_WAIT_S", 4 * 3600.0, minimum=60),
        max_talk_s=env_number(env, "HOTLINE_MAX_TALK_S", 7200.0, minimum=60),
        closed_after_s=env_number(env, "HOTLINE_CLOSED_AFTER_S", 300.0),
        events_maxlen=int(env_number(env, "HOTLINE_EVENTS_MAXLEN", 2_000_000, minimum=10_000)),
    )
