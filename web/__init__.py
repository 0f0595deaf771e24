"""The web application: one blueprint package per surface (Twilio webhooks, the JSON
API; the operator console and the department portal come next). Built by an
application factory from parts the composition root (hotline.webapp) makes; nothing is
configured at import time."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify
from twilio.request_validator import RequestValidator

from calls import CallHandler
from web.context import Services, services
from web.settings import WebSettings

log = logging.getLogger("hotline.web")

__all__ = ["Services", "create_app", "services"]

MAX_BODY_BYTES = 64 * 1024  # Twilio's largest webhook is a few KB


def create_app(
    settings: WebSettings, handler: CallHandler, config: Mapping[str, Any] | None = None
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
    )

    from cases.phones import mask_phone
    from web.api import bp as api_bp
    from web.auth import csrf, init_auth
    from web.console import bp as console_bp
    from web.twilio import bp as twilio_bp

    init_auth(app, secure_cookies=settings.secure_cookies)
    csrf.exempt(twilio_bp)  # signed by Twilio instead
    csrf.exempt(api_bp)  # checks CSRF itself when a browser session calls it
    app.register_blueprint(twilio_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(console_bp)
    app.jinja_env.filters["mask_phone"] = mask_phone

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
