"""All configuration, read from environment variables in one place.

Nothing here runs at import time: call :func:`load_settings` (the CLI and the app
factories do) so tests and tools can pass their own environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cases.phones import PhoneSettings

PRIORITY_CLASSES = ("vulnerable", "repeat", "normal")
DEFAULT_SKILLS = ("mandarin", "hainanese", "english")


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
    # The stream is a live buffer (about a day at Hangzhou's record volume): call detail
    # rows in SQL keep the history, written by the reaper every few seconds.
    events_maxlen: int = 1_000_000
    default_handle_s: float = 240.0  # estimate before any call has been handled

    @property
    def ring_timeout_s(self) -> int:
        """How long an adapter rings a seat: under the offer lease, so the telephony's
        no-answer arrives before the reaper takes the call back (Twilio's minimum is 5)."""
        return max(5, int(self.offer_timeout_s) - 2)

    @property
    def aging_bound_s(self) -> float:
        return max(self.priority_bonus_s.values())


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    redis_url: str | None  # None: run a private redis-server under var_dir
    database_url: str
    queue: QueueSettings
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # Who may open FastAGI sessions: addresses, networks or host names. Loopback only
    # unless configured (compose names the Asterisk container).
    agi_allow: tuple[str, ...] = ("127.0.0.0/8", "::1")
    agi_read_timeout_s: float = 60.0
    agi_max_sessions: int = 512
    redis_max_connections: int = 256  # per process; threads wait for a free one
    phones: PhoneSettings = PhoneSettings()
    secret_key: str | None = None
    api_token: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    public_base_url: str | None = None
    twilio_caller_id: str | None = None  # the number outbound calls come from
    # How a seat is dialled: "client" (<Client>seat</Client>), "sip:sip:{seat}@pbx.example"
    # (<Sip>), or "number:+86898{seat}" (<Number>).
    twilio_seat_dial: str = "client"
    twilio_voice: str = "Polly.Zhiyu"
    twilio_language: str = "cmn-CN"
    # A short clip (5-10 s): waiting callers notice their offer when it ends.
    twilio_hold_music_url: str | None = None
    # Asterisk
    seat_dial_pattern: str = "PJSIP/{seat}"
    asterisk_sounds: str | None = None  # the prompts folder as Asterisk sees it
    ami_host: str | None = None
    ami_port: int = 5038
    ami_username: str = "hotline"
    ami_secret: str | None = None


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
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


def _dial_pattern(value: str) -> str:
    if "{seat}" not in value or any(c in value for c in ',"\n'):
        raise ConfigError(f"SEAT_DIAL_PATTERN needs {{seat}} and no commas or quotes: {value!r}")
    return value


def _seat_dial(value: str) -> str:
    kind, _, template = value.partition(":")
    if kind == "client" and not template:
        return value
    if kind in ("sip", "number") and "{seat}" in template:
        return value
    raise ConfigError(
        "TWILIO_SEAT_DIAL must be 'client', 'sip:<uri with {seat}>' or "
        f"'number:<number with {{seat}}>', got {value!r}"
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    var_dir = Path(env.get("HOTLINE_VAR_DIR", "var")).resolve()
    skills = tuple(
        s.strip()
        for s in env.get("HOTLINE_SKILLS", ",".join(DEFAULT_SKILLS)).split(",")
        if s.strip()
    )
    if not skills:
        raise ConfigError("HOTLINE_SKILLS must name at least one skill")
    queue = QueueSettings(
        name=env.get("HOTLINE_QUEUE", "main"),
        skills=skills,
        priority_bonus_s=_bonuses(env),
        # Twilio rings a seat for at least 5 s, and for the lease minus 2 s.
        offer_timeout_s=_number(env, "HOTLINE_OFFER_TIMEOUT_S", 20.0, minimum=8),
        offer_start_s=_number(env, "HOTLINE_OFFER_START_S", 30.0, minimum=5),
        wrapup_s=_number(env, "HOTLINE_WRAPUP_S", 30.0),
        seat_heartbeat_ttl_s=_number(env, "HOTLINE_SEAT_TTL_S", 30.0, minimum=1),
        sticky_s=_number(env, "HOTLINE_STICKY_S", 30.0),
        max_wait_s=_number(env, "HOTLINE_MAX_WAIT_S", 4 * 3600.0, minimum=60),
        max_talk_s=_number(env, "HOTLINE_MAX_TALK_S", 7200.0, minimum=60),
        closed_after_s=_number(env, "HOTLINE_CLOSED_AFTER_S", 300.0),
    )
    allow = tuple(
        a.strip() for a in env.get("HOTLINE_AGI_ALLOW", "127.0.0.0/8,::1").split(",") if a.strip()
    )
    return Settings(
        var_dir=var_dir,
        redis_url=env.get("REDIS_URL") or None,
        database_url=env.get("DATABASE_URL") or f"sqlite:///{var_dir / 'hotline.db'}",
        queue=queue,
        web_host=env.get("HOTLINE_WEB_HOST", "127.0.0.1"),
        web_port=int(_number(env, "HOTLINE_WEB_PORT", 8000, minimum=1)),
        agi_host=env.get("HOTLINE_AGI_HOST", "127.0.0.1"),
        agi_port=int(_number(env, "HOTLINE_AGI_PORT", 4573, minimum=1)),
        agi_allow=allow,
        agi_read_timeout_s=_number(env, "HOTLINE_AGI_READ_TIMEOUT_S", 60.0, minimum=1),
        agi_max_sessions=int(_number(env, "HOTLINE_AGI_MAX_SESSIONS", 512, minimum=1)),
        phones=PhoneSettings(
            region=(env.get("HOTLINE_PHONE_REGION") or "CN").upper(),
            area_code=(env.get("HOTLINE_AREA_CODE") or "0898").lstrip("0"),
        ),
        redis_max_connections=int(_number(env, "HOTLINE_REDIS_MAX_CONNECTIONS", 256, minimum=8)),
        secret_key=env.get("HOTLINE_SECRET_KEY") or None,
        api_token=env.get("HOTLINE_API_TOKEN") or None,
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
        public_base_url=(env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
        twilio_caller_id=env.get("TWILIO_CALLER_ID") or None,
        twilio_seat_dial=_seat_dial(env.get("TWILIO_SEAT_DIAL") or "client"),
        twilio_voice=env.get("TWILIO_VOICE") or "Polly.Zhiyu",
        twilio_language=env.get("TWILIO_LANGUAGE") or "cmn-CN",
        twilio_hold_music_url=env.get("TWILIO_HOLD_MUSIC_URL") or None,
        seat_dial_pattern=_dial_pattern(env.get("SEAT_DIAL_PATTERN") or "PJSIP/{seat}"),
        asterisk_sounds=env.get("HOTLINE_ASTERISK_SOUNDS") or None,
        ami_host=env.get("ASTERISK_AMI_HOST") or None,
        ami_port=int(_number(env, "ASTERISK_AMI_PORT", 5038, minimum=1)),
        ami_username=env.get("ASTERISK_AMI_USERNAME") or "hotline",
        ami_secret=env.get("ASTERISK_AMI_SECRET") or None,
    )
