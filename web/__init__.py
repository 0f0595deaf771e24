"""The web application: one blueprint package per surface (Twilio webhooks, the JSON
API; the operator console and the department portal come next). Built by an
application factory from parts the composition root (hotline.webapp) makes; nothing is
configured at import time."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify
from twilio.request_validator import RequestValidator
from werkzeug.routing import IntegerConverter, Map

from calls import CallHandler
from calls.outbound import OutboundHandler
from web.context import Services, services
from web.settings import WebSettings

log = logging.getLogger("hotline.web")

__all__ = ["Services", "create_app", "services"]

MAX_BODY_BYTES = 64 * 1024  # Twilio's largest webhook is a few KB
MIN_SECRET_KEY_CHARS = 32


class RowIdConverter(IntegerConverter):
    """Flask's int converter, bounded to the ids the database's columns can hold."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def local_time(moment: datetime) -> str:
    """A stored time as Beijing time, to the minute."""
    from web.formatting import beijing

    return beijing(moment)


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
    # Every <int:...> in a path is a row id: 32-bit on PostgreSQL. A larger one is a 404
    # here, not a database error (20 digits overflow even SQLite's 64-bit INTEGER).
    app.url_map.converters["int"] = RowIdConverter
    if not settings.secret_key:
        log.warning("HOTLINE_SECRET_KEY is not set: sessions will not survive a restart")
    elif len(settings.secret_key) < MIN_SECRET_KEY_CHARS:
        # Whoever guesses the key can forge a session cookie (a supervisor's, say).
        log.warning(
            "HOTLINE_SECRET_KEY has %d characters: use at least %d random ones "
            "(scripts/secret-key makes 64)",
            len(settings.secret_key),
            MIN_SECRET_KEY_CHARS,
        )

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

    from web import formatting
    from web.api import bp as api_bp
    from web.auth import csrf, init_auth
    from web.console import bp as console_bp
    from web.duty import bp as duty_bp
    from web.edge import init_edge
    from web.grid import bp as grid_bp
    from web.headers import init_headers
    from web.limits import init_limits
    from web.metrics import init_metrics
    from web.open311 import bp as open311_bp
    from web.portal import bp as portal_bp
    from web.portal.lookup import bp as lookup_bp
    from web.portal.public_kb import bp as kb_public_bp
    from web.push_links import init_push_links
    from web.report import bp as report_bp
    from web.reports import bp as reports_bp
    from web.sms import bp as sms_bp
    from web.twilio import bp as twilio_bp

    init_limits(app, handler.redis, settings.trusted_proxy_hops)
    init_auth(app, secure_cookies=settings.secure_cookies)
    init_headers(app)
    init_push_links(app)  # the live streams are served by the push process
    csrf.exempt(twilio_bp)  # signed by Twilio instead
    csrf.exempt(sms_bp)  # the SMS webhook: signed by the provider instead
    csrf.exempt(api_bp)  # checks CSRF itself when a browser session calls it
    csrf.exempt(open311_bp)  # API keys, no cookies: nothing for a forged form to ride on
    app.register_blueprint(twilio_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(open311_bp)
    app.register_blueprint(console_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(lookup_bp)
    app.register_blueprint(kb_public_bp)
    app.register_blueprint(grid_bp)  # the grid workers' phone page (issue 20)
    app.register_blueprint(duty_bp)  # the duty leader's page and the roster
    app.register_blueprint(reports_bp)  # the daily, weekly and monthly reports
    app.register_blueprint(sms_bp)  # SMS in (issue 21)
    app.register_blueprint(report_bp)  # the citizens' web form
    formatting.register(app)
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["epoch_ms"] = epoch_ms
    app.jinja_env.globals["now_ms"] = lambda: int(time.time() * 1000)

    install_error_pages(app)
    init_edge(app)  # NUL bytes, lone surrogates, non-object JSON: 400 first
    init_metrics(app)  # /metrics (not public) and webhook timings

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        services().redis.ping()
        return jsonify(status="ok")

    return app


PAGE_ERRORS = (400, 403, 404, 405, 409, 422, 429, 500)


def _browser_session() -> bool:
    """A person's signed-in browser session (not a token, not a visitor)."""
    from flask import request
    from flask_login import current_user

    return "Authorization" not in request.headers and bool(current_user.is_authenticated)


def install_error_pages(app: Flask) -> None:
    """Error pages in the reader's language (zh-CN unless they chose English), a bare
    notice for htmx swaps; /api keeps its JSON and slugs, with the message in the
    signed-in person's language; Twilio gets the plain status."""
    from flask import Response, render_template, request
    from flask_wtf.csrf import CSRFError
    from werkzeug.exceptions import HTTPException, InternalServerError

    from web.api.routes import http_error
    from web.auth import language
    from web.i18n import TEXT, translate

    def page_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        if request.path.startswith("/api/"):
            return http_error(exc)
        if request.path.startswith("/twilio/"):
            return exc
        if request.path.startswith("/open311/"):
            from web.open311.routes import http_error as open311_error

            return open311_error(exc)
        if code >= 500:
            log.error("%s %s answered %s", request.method, request.path, code)
        lang = language()
        known = f"http_{code}" in TEXT
        title = translate(f"http_{code}" if known else "http_other", lang)
        text = (
            translate("http_400_csrf" if isinstance(exc, CSRFError) else f"http_{code}_text", lang)
            if known
            else ""
        )
        # Our own English detail (abort(409, "log in to a seat first")) only for English.
        default = type(exc).description
        detail = exc.description if lang == "en" and exc.description != default else ""
        template = "_error.html" if request.headers.get("HX-Request") else "error.html"
        html = render_template(template, code=code, title=title, text=text, detail=detail)
        return html, code

    for code in PAGE_ERRORS:
        app.register_error_handler(code, page_error)

    @app.errorhandler(InternalServerError)
    def server_error(exc: InternalServerError) -> Any:
        return page_error(exc)

    @app.after_request
    def api_message_in_language(response: Response) -> Response:
        if (
            response.status_code < 400
            or not request.path.startswith("/api/")
            or not response.is_json
            or not _browser_session()
        ):
            return response
        data = response.get_json(silent=True)
        if not isinstance(data, dict) or not isinstance(data.get("error"), str):
            return response
        lang, key = language(), "err_" + data["error"]
        if (lang == "zh") == _has_chinese(str(data.get("message", ""))):
            return response  # already in the person's language (the desk's own words)
        if key not in TEXT:
            key = f"http_{response.status_code}"
        data["message"] = translate(key if key in TEXT else "http_other", lang)
        response.set_data(json.dumps(data, ensure_ascii=False))
        return response


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)
