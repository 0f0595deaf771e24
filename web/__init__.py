"""The web application: one blueprint package per surface (Twilio webhooks, the JSON
API; the operator console and the department portal come next). Built by an
application factory from parts the composition root (hotline.webapp) makes; nothing is
configured at import time."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify
from twilio.request_validator import RequestValidator

from calls import CallHandler
from calls.outbound import OutboundHandler
from web.context import Services, services
from web.settings import WebSettings

log = logging.getLogger("hotline.web")

__all__ = ["Services", "create_app", "services"]

MAX_BODY_BYTES = 64 * 1024  # Twilio's largest webhook is a few KB


def local_time(moment: datetime) -> str:
    """A stored time as Beijing time, to the minute."""
    from cases.service import HOTLINE_TZ

    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(HOTLINE_TZ).strftime("%Y-%m-%d %H:%M")


def epoch_ms(moment: datetime) -> int:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def create_app(
    settings: WebSettings,
    handler: CallHandler,
    config: Mapping[str, Any] | None = None,
    outbound: OutboundHandler | None = None,
) -> Flask:
    """Build the app around a call handler (its queue, Redis and job queue)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_AS_ASCII=False,
    )
    app.config.update(config or {})
    if not settings.secret_key:
        log.warning("HOTLINE_SECRET_KEY is not set: sessions will not survive a restart")

    app.extensions["hotline"] = Services(
        settings=settings,
        redis=handler.redis,
        queue=handler.queue,
        jobs=handler.jobs,
        handler=handler,
        validator=(
            RequestValidator(settings.twilio_auth_token) if settings.twilio_auth_token else None
        ),
        outbound=outbound,
    )

    from cases.phones import mask_phone
    from web.api import bp as api_bp
    from web.auth import csrf, init_auth
    from web.console import bp as console_bp
    from web.portal import bp as portal_bp
    from web.portal.lookup import bp as lookup_bp
    from web.twilio import bp as twilio_bp

    init_auth(app, secure_cookies=settings.secure_cookies)
    csrf.exempt(twilio_bp)  # signed by Twilio instead
    csrf.exempt(api_bp)  # checks CSRF itself when a browser session calls it
    app.register_blueprint(twilio_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(console_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(lookup_bp)
    app.jinja_env.filters["mask_phone"] = mask_phone
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["epoch_ms"] = epoch_ms
    app.jinja_env.globals["now_ms"] = lambda: int(time.time() * 1000)

    @app.errorhandler(403)
    @app.errorhandler(409)
    def page_error(exc):  # type: ignore[no-untyped-def]
        from flask import render_template, request

        if request.path.startswith(("/api/", "/twilio/")):
            return exc
        return render_template("error.html", code=exc.code, message=exc.description), exc.code

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        services().redis.ping()
        return jsonify(status="ok")

    return app
