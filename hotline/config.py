"""All configuration, read from environment variables in one place.

Nothing here runs at import time: call :func:`load_settings` (the CLI and the app
factories do) so tests and tools can pass their own environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cases.db import database_url_from_env
from cases.phones import PhoneSettings
from queueing.settings import (  # noqa: F401  (re-exported)
    DEFAULT_SKILLS,
    PRIORITY_CLASSES,
    ConfigError,
    QueueSettings,
    env_number,
    load_queue_settings,
)


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
    # GET /metrics of the FastAGI server, on the AGI host; 0: not served.
    agi_metrics_port: int = 0
    # Who may open FastAGI sessions: addresses, networks or host names (re-resolved).
    # Default: the Asterisk ASTERISK_AMI_HOST names, else this machine only.
    agi_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    agi_read_timeout_s: float = 60.0
    agi_env_timeout_s: float = 10.0  # the AGI environment, from the connection
    # When set, AGI URLs must carry it (agi://host:4573/SECRET/inbound).
    agi_secret: str | None = field(default=None, repr=False)
    agi_max_sessions: int = 512
    # RQ workers the run command starts: two, so a crashed one never stops case filing
    # and a record day's ~100 cases a minute at peak have room.
    workers: int = 2
    # One active reaper and one active dialer among several (calls.lease): the lease's
    # time to live. A standby takes over within it after the holder dies.
    lease_ttl_s: float = 6.0
    redis_max_connections: int = 256  # per process; threads wait for a free one
    # Redis Sentinel (high availability): when set, REDIS_URL is not used. Each a
    # (host, port) of a sentinel; the primary is asked of them by service name.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "hotline"
    redis_password: str | None = None  # the data nodes' (requirepass / ACL default user)
    redis_sentinel_password: str | None = None  # the sentinels' own, if they have one
    phones: PhoneSettings = PhoneSettings()
    secret_key: str | None = None
    api_token: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    public_base_url: str | None = None
    trusted_proxy_hops: int = 0  # reverse proxies in front of the web (X-Forwarded-For)
    # Sign-in sessions: idle, then absolute limit. Two hours idle covers a quiet spell
    # with the page closed (an open console's heartbeat keeps it alive); twelve hours is
    # the longest shift, after which everyone signs in again.
    session_idle_s: int = 2 * 3600
    session_absolute_s: int = 12 * 3600
    # GET /metrics: with this bearer token from anywhere, or without it from these
    # networks (a Prometheus on the same host or the service's private network).
    metrics_token: str | None = field(default=None, repr=False)
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
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
    # Seats whose phones register on another Asterisk box: (seat-id prefix, pattern),
    # e.g. ("3", "PJSIP/{seat}@box-b") dials seat 3001 over the trunk to box B.
    seat_dial_by_prefix: tuple[tuple[str, str], ...] = ()
    asterisk_sounds: str | None = None  # the prompts folder as Asterisk sees it
    ami_host: str | None = None
    ami_port: int = 5038
    ami_username: str = "hotline"
    ami_secret: str | None = None
    # How the dialer reaches a citizen through the carrier trunk ({number}: national digits)
    asterisk_outbound_dial: str = "PJSIP/{number}@trunk"
    # 紧急转办: the console's emergency lines and the number each is dialled at through
    # the trunk (Asterisk) or by Twilio. HOTLINE_EMERGENCY_LINES="110=110,119=0898119".
    emergency_lines: tuple[tuple[str, str], ...] = (
        ("110", "110"),
        ("119", "119"),
        ("120", "120"),
        ("122", "122"),
    )
    twilio_api_base_url: str | None = None  # another Twilio API host (tests: a local peer)
    # Conversations' recordings (calls.recordings): where the files live (Asterisk's
    # MixMonitor writes there, so on another box it is a shared volume), and how long
    # they are kept before the retention job deletes them (about six months).
    recordings_dir: Path | None = None  # None: var_dir / "recordings"
    recording_retention_days: int = 183


def _dial_pattern(value: str) -> str:
    if "{seat}" not in value or any(c in value for c in ',"\n'):
        raise ConfigError(f"SEAT_DIAL_PATTERN needs {{seat}} and no commas or quotes: {value!r}")
    return value


def _emergency_lines(value: str) -> tuple[tuple[str, str], ...]:
    """HOTLINE_EMERGENCY_LINES: "LINE=NUMBER,..." (digits; a number may start with +)."""
    lines = []
    for item in value.split(","):
        line, sep, number = item.strip().partition("=")
        if not sep or not re.fullmatch(r"[0-9]{2,6}", line) or not re.fullmatch(
            r"\+?[0-9]{2,20}", number
        ):
            raise ConfigError(
                f"HOTLINE_EMERGENCY_LINES needs LINE=NUMBER items (digits), got {item!r}"
            )
        lines.append((line, number))
    return tuple(lines)


def _dial_by_prefix(value: str) -> tuple[tuple[str, str], ...]:
    """SEAT_DIAL_BY_PREFIX: "PREFIX=PATTERN ..." (whitespace-separated)."""
    routes = []
    for item in value.split():
        prefix, sep, pattern = item.partition("=")
        if not sep or not re.fullmatch(r"[0-9A-Za-z_-]{1,32}", prefix):
            raise ConfigError(
                f"SEAT_DIAL_BY_PREFIX needs PREFIX=PATTERN items (seat-id prefix), got {item!r}"
            )
        routes.append((prefix, _dial_pattern(pattern)))
    return tuple(routes)


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


def _networks(name: str, value: str | None) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR networks; unset: loopback."""
    if not value or not value.strip():
        return ("127.0.0.0/8", "::1/128")
    networks = tuple(n.strip() for n in value.split(",") if n.strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {network!r} is not an address or network") from None
    return networks


def _agi_allow(env: Mapping[str, str]) -> tuple[str, ...]:
    """HOTLINE_AGI_ALLOW; else the Asterisk that ASTERISK_AMI_HOST names; else this
    machine (the single-box default, Asterisk beside the service)."""
    raw = env.get("HOTLINE_AGI_ALLOW") or env.get("ASTERISK_AMI_HOST") or "127.0.0.1,::1"
    return tuple(a.strip() for a in raw.split(",") if a.strip())


def _agi_secret(value: str) -> str | None:
    # It travels in the AGI URL's path and the dialplan: URL-safe characters only.
    if not value:
        return None
    if not re.fullmatch(r"[A-Za-z0-9._~-]{16,128}", value):
        raise ConfigError(
            "HOTLINE_AGI_SECRET needs 16-128 letters, digits or . _ ~ - "
            "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    return value


def _sentinels(value: str) -> tuple[tuple[str, int], ...]:
    """REDIS_SENTINELS: "host:port,host:port" ("[::1]:26379" for IPv6)."""
    nodes = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REDIS_SENTINELS needs host:port items, got {item!r}")
        nodes.append((host, int(port)))
    return tuple(nodes)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    var_dir = Path(env.get("HOTLINE_VAR_DIR", "var")).resolve()
    queue = load_queue_settings(env)
    return Settings(
        var_dir=var_dir,
        redis_url=env.get("REDIS_URL") or None,
        database_url=database_url_from_env(env),
        queue=queue,
        web_host=env.get("HOTLINE_WEB_HOST", "127.0.0.1"),
        web_port=int(env_number(env, "HOTLINE_WEB_PORT", 8000, minimum=1)),
        agi_host=env.get("HOTLINE_AGI_HOST", "127.0.0.1"),
        agi_port=int(env_number(env, "HOTLINE_AGI_PORT", 4573, minimum=1)),
        agi_metrics_port=int(env_number(env, "HOTLINE_AGI_METRICS_PORT", 0, minimum=0)),
        agi_allow=_agi_allow(env),
        agi_read_timeout_s=env_number(env, "HOTLINE_AGI_READ_TIMEOUT_S", 60.0, minimum=1),
        agi_env_timeout_s=env_number(env, "HOTLINE_AGI_ENV_TIMEOUT_S", 10.0, minimum=1),
        agi_secret=_agi_secret(env.get("HOTLINE_AGI_SECRET") or ""),
        workers=int(env_number(env, "HOTLINE_WORKERS", 2, minimum=1)),
        lease_ttl_s=env_number(env, "HOTLINE_LEASE_TTL_S", 6.0, minimum=1),
        agi_max_sessions=int(env_number(env, "HOTLINE_AGI_MAX_SESSIONS", 512, minimum=1)),
        phones=PhoneSettings(
            region=(env.get("HOTLINE_PHONE_REGION") or "CN").upper(),
            area_code=(env.get("HOTLINE_AREA_CODE") or "0898").lstrip("0"),
        ),
        redis_max_connections=int(env_number(env, "HOTLINE_REDIS_MAX_CONNECTIONS", 256, minimum=8)),
        redis_sentinels=_sentinels(env.get("REDIS_SENTINELS") or ""),
        redis_sentinel_master=env.get("REDIS_SENTINEL_MASTER") or "hotline",
        redis_password=env.get("REDIS_PASSWORD") or None,
        redis_sentinel_password=env.get("REDIS_SENTINEL_PASSWORD") or None,
        secret_key=env.get("HOTLINE_SECRET_KEY") or None,
        api_token=env.get("HOTLINE_API_TOKEN") or None,
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
        public_base_url=(env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
        trusted_proxy_hops=int(env_number(env, "HOTLINE_TRUSTED_PROXY_HOPS", 0, minimum=0)),
        session_idle_s=int(env_number(env, "HOTLINE_SESSION_IDLE_S", 2 * 3600, minimum=60)),
        session_absolute_s=int(
            env_number(env, "HOTLINE_SESSION_ABSOLUTE_S", 12 * 3600, minimum=60)
        ),
        metrics_token=env.get("HOTLINE_METRICS_TOKEN") or None,
        metrics_allow=_networks("HOTLINE_METRICS_ALLOW", env.get("HOTLINE_METRICS_ALLOW")),
        twilio_caller_id=env.get("TWILIO_CALLER_ID") or None,
        twilio_seat_dial=_seat_dial(env.get("TWILIO_SEAT_DIAL") or "client"),
        twilio_voice=env.get("TWILIO_VOICE") or "Polly.Zhiyu",
        twilio_language=env.get("TWILIO_LANGUAGE") or "cmn-CN",
        twilio_hold_music_url=env.get("TWILIO_HOLD_MUSIC_URL") or None,
        seat_dial_pattern=_dial_pattern(env.get("SEAT_DIAL_PATTERN") or "PJSIP/{seat}"),
        seat_dial_by_prefix=_dial_by_prefix(env.get("SEAT_DIAL_BY_PREFIX") or ""),
        asterisk_sounds=env.get("HOTLINE_ASTERISK_SOUNDS") or None,
        ami_host=env.get("ASTERISK_AMI_HOST") or None,
        ami_port=int(env_number(env, "ASTERISK_AMI_PORT", 5038, minimum=1)),
        ami_username=env.get("ASTERISK_AMI_USERNAME") or "hotline",
        ami_secret=env.get("ASTERISK_AMI_SECRET") or None,
        asterisk_outbound_dial=env.get("ASTERISK_OUTBOUND_DIAL") or "PJSIP/{number}@trunk",
        emergency_lines=_emergency_lines(
            env.get("HOTLINE_EMERGENCY_LINES") or "110=110,119=119,120=120,122=122"
        ),
        twilio_api_base_url=env.get("TWILIO_API_BASE_URL") or None,
        recordings_dir=Path(env.get("HOTLINE_RECORDINGS_DIR") or var_dir / "recordings").resolve(),
        recording_retention_days=int(
            env_number(env, "HOTLINE_RECORDING_RETENTION_DAYS", 183, minimum=1)
        ),
    )
