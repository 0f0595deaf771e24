"""What the web application needs to know, built by the composition root (hotline/)
from its configuration, so that web/ never reads the process-wide settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the blueprint package imports web.context, which imports this
    from web.twilio.twiml import TwimlSettings


@dataclass(frozen=True)
class WebSettings:
    sounds_dir: Path  # rendered prompts and the hold clip
    twiml: TwimlSettings
    secret_key: str | None = None
    api_token: str | None = None  # the shared token for admin scripts
    twilio_auth_token: str | None = None
    public_base_url: str | None = None
    trusted_proxy_hops: int = 0  # how many reverse proxies set X-Forwarded-For
    # A sign-in ends after this long without a request (an open console's heartbeat and
    # live streams count), and this long after signing in whatever the activity.
    session_idle_s: int = 2 * 3600
    session_absolute_s: int = 12 * 3600
    # /metrics: served with this bearer token, or to these networks without it.
    metrics_token: str | None = None
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    @property
    def secure_cookies(self) -> bool:
        return bool(self.public_base_url and self.public_base_url.startswith("https://"))
