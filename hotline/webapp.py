"""The web process, composed: settings from the environment, Redis, the call handler,
then web.create_app. Gunicorn runs ``hotline.webapp:create_app()``."""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from redis import Redis

from calls.sms import SmsSettings
from hotline.config import Settings, load_settings
from hotline.logs import setup_logging
from hotline.runtime import call_handler, connect_redis, outbound_handler
from queueing import CallQueue
from web import create_app as create_web_app
from web.settings import WebSettings
from web.twilio.twiml import TwimlSettings


def web_settings(settings: Settings) -> WebSettings:
    sounds = settings.var_dir / "sounds"
    return WebSettings(
        sounds_dir=sounds,
        secret_key=settings.secret_key,
        api_token=settings.api_token,
        twilio_auth_token=settings.twilio_auth_token,
        public_base_url=settings.public_base_url,
        trusted_proxy_hops=settings.trusted_proxy_hops,
        session_idle_s=settings.session_idle_s,
        session_absolute_s=settings.session_absolute_s,
        metrics_token=settings.metrics_token,
        metrics_allow=settings.metrics_allow,
        twiml=TwimlSettings(
            base_url=settings.public_base_url or "",
            voice=settings.twilio_voice,
            language=settings.twilio_language,
            seat_dial=settings.twilio_seat_dial,
            hold_music_url=settings.twilio_hold_music_url
            or (
                f"{settings.public_base_url}/twilio/hold.wav"
                if (sounds / "hold.wav").exists()
                else None
            ),
            ring_timeout_s=settings.queue.ring_timeout_s,
            queue_name=f"hotline-{settings.queue.name}",
        ),
    )


def create_app(config: Mapping[str, Any] | None = None, only: str | None = None) -> Flask:
    """``config`` may hold ``SETTINGS`` (a Settings), ``REDIS`` (a client) and Flask
    keys; without it everything comes from the environment. ``only="twilio"`` serves
    Twilio's webhooks alone (``hotline web --only twilio``)."""
    config = dict(config or {})
    settings: Settings = config.pop("SETTINGS", None) or load_settings()
    redis: Redis = config.pop("REDIS", None) or connect_redis(settings)
    if not config.get("TESTING"):
        # Under gunicorn nothing else configures logging: INFO lines would be dropped
        # and phone numbers would go out unmasked.
        setup_logging(os.environ.get("HOTLINE_LOG_LEVEL", "INFO"))
    handler = call_handler(settings, CallQueue(redis, settings.queue))
    outbound = outbound_handler(settings, handler)
    app = create_web_app(web_settings(settings), handler, config, outbound)
    app.extensions["hotline_settings"] = settings  # the whole configuration, for tools
    app.extensions["hotline_sms"] = SmsSettings.from_env()  # calls.sms: docs/sms.md
    if only == "twilio":
        serve_webhooks_only(app)
    elif only is not None:
        raise ValueError(f"only={only!r}: the web serves everything or only 'twilio'")
    if not app.testing:
        warm_up(app)
    return app


# What a webhook process answers: Twilio's webhooks, its health check and its metrics.
WEBHOOK_PATHS = ("/twilio/",)
WEBHOOK_PROCESS_EXTRAS = frozenset({"/healthz", "/metrics"})


def serve_webhooks_only(app: Flask) -> None:
    """Behind the proxy, Twilio's webhooks have gunicorn processes of their own, so a
    page or fragment render never holds the interpreter a webhook waits for. A page the
    proxy sends here by mistake is a plain 404, before the app does any work for it,
    instead of quietly sharing these processes again."""
    inner = app.wsgi_app
    body = b"not served here: this process answers Twilio's webhooks only\n"

    def webhooks_only(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(WEBHOOK_PATHS) or path in WEBHOOK_PROCESS_EXTRAS:
            return inner(environ, start_response)
        start_response(
            "404 NOT FOUND",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    app.wsgi_app = webhooks_only  # type: ignore[method-assign]


def warm_up(app: Flask) -> None:
    """Before a gunicorn worker takes requests: compile every template now (a fresh
    worker's first burst paid for it in many threads at once: pops and webhooks took
    up to 400 ms in bench/push_bench.py), then move what start-up built out of the
    collector's way, so its full passes during a burst walk only what requests made."""
    for name in app.jinja_env.list_templates(extensions=("html",)):
        app.jinja_env.get_template(name)
    gc.collect()
    gc.freeze()
