"""The web application: Twilio webhooks and the JSON API (operator console, wallboard
and department portal come next). Built by an application factory; nothing is
configured at import time."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, jsonify
from redis import Redis
from rq import Queue as JobQueue
from twilio.request_validator import RequestValidator

from hotline.calls import CallHandler
from hotline.config import Settings, load_settings
from hotline.logs import setup_logging
from hotline.runtime import call_handler, connect_redis
from queueing import CallQueue
from web.twiml import TwimlSettings

log = logging.getLogger("hotline.web")

MAX_BODY_BYTES = 64 * 1024  # Twilio's largest webhook is a few KB


@dataclass
class Services:
    settings: Settings
    redis: Redis
    queue: CallQueue
    jobs: JobQueue
    handler: CallHandler
    validator: RequestValidator | None
    twiml: TwimlSettings


def services() -> Services:
    return current_app.extensions["hotline"]  # type: ignore[no-any-return]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` may hold ``SETTINGS`` (a Settings), ``REDIS`` (a client)
    and Flask keys; without it everything comes from the environment."""
    config = dict(config or {})
    settings: Settings = config.pop("SETTINGS", None) or load_settings()
    redis: Redis = config.pop("REDIS", None) or connect_redis(settings)

    if not config.get("TESTING"):
        # Under gunicorn nothing else configures logging: INFO lines would be dropped
        # and phone numbers would go out unmasked.
        setup_logging(os.environ.get("HOTLINE_LOG_LEVEL", "INFO"))
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_AS_ASCII=False,
    )
    app.config.update(config)
    if not settings.secret_key:
        log.warning("HOTLINE_SECRET_KEY is not set: sessions will not survive a restart")

    queue = CallQueue(redis, settings.queue)
    handler = call_handler(settings, queue)
    app.extensions["hotline"] = Services(
        settings=settings,
        redis=redis,
        queue=queue,
        jobs=handler.jobs,
        handler=handler,
        validator=(
            RequestValidator(settings.twilio_auth_token) if settings.twilio_auth_token else None
        ),
        twiml=TwimlSettings(
            base_url=settings.public_base_url or "",
            voice=settings.twilio_voice,
            language=settings.twilio_language,
            seat_dial=settings.twilio_seat_dial,
            hold_music_url=settings.twilio_hold_music_url
            or (
                f"{settings.public_base_url}/twilio/hold.wav"
                if (settings.var_dir / "sounds" / "hold.wav").exists()
                else None
            ),
            ring_timeout_s=settings.queue.ring_timeout_s,
            queue_name=f"hotline-{settings.queue.name}",
        ),
    )

    from web.api import bp as api_bp
    from web.twilio_hooks import bp as twilio_bp

    app.register_blueprint(twilio_bp)
    app.register_blueprint(api_bp)

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        services().redis.ping()
        return jsonify(status="ok")

    return app
