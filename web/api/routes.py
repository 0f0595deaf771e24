"""JSON API for the operator side (the console uses it; so do the tests).

For a signed-in user's session, a personal token (`hotline user token NAME`), or the
shared HOTLINE_API_TOKEN kept for admin scripts. Errors are
JSON: {"error": slug, "message": text}, 400 for bad input, 401/403 for auth, 404 for
unknown ids, 409 for a refused transition."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from calls.desk import Actor, DeskError
from cases.service import InvalidForm
from cases.users import user_for_token
from queueing import QueueError, Transition
from queueing.keys import check_id
from web.auth import csrf, language
from web.context import services
from web.edge import BadInput, check_text

log = logging.getLogger("hotline.api")
bp = Blueprint("api", __name__, url_prefix="/api")

_STATUS_FOR_CODE = {
    "no-such-call": 404,
    "unknown-skill": 400,
    "bad-argument": 400,
    "unknown-priority": 400,
}


class ApiError(Exception):
    def __init__(self, status: int, slug: str, message: str) -> None:
        super().__init__(message)
        self.status, self.slug, self.message = status, slug, message


@bp.errorhandler(ApiError)
def api_error(exc: ApiError) -> Any:
    return jsonify(error=exc.slug, message=exc.message), exc.status


@bp.errorhandler(DeskError)
def desk_error(exc: DeskError) -> Any:
    return jsonify(error=exc.code, message=exc.words(language())), exc.status


@bp.errorhandler(QueueError)
def queue_error(exc: QueueError) -> Any:
    return jsonify(error=exc.code, message=str(exc)), _STATUS_FOR_CODE.get(exc.code, 409)


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def api_not_found(exc: HTTPException) -> Any:
    """Unknown routes and methods under /api answer in JSON too."""
    if request.path.startswith(bp.url_prefix or "/api"):
        return http_error(exc)
    return exc


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Any:
    return jsonify(
        error=(exc.name or "error").lower().replace(" ", "-"), message=exc.description
    ), exc.code


API_ROLES = ("operator", "supervisor", "admin")


def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """A signed-in user's browser session (with its CSRF token), that user's personal
    token, or the shared HOTLINE_API_TOKEN (admin scripts): who it is goes to
    ``g.api_actor`` for the audit trail."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, given = header.partition(" ")
            given = given.strip()
            if scheme != "Bearer" or not given:
                raise ApiError(401, "bad-token", "use 'Authorization: Bearer <token>'")
            shared = services().settings.api_token
            if shared and hmac.compare_digest(given.encode(), shared.encode()):
                g.api_actor = "api-token"
                g.desk_actor = Actor("api-token", "admin")
                return view(*args, **kwargs)
            with services().desk.sessions() as db:
                user = user_for_token(db, given)
                found = (user.username, user.role) if user is not None else None
            if found is None:
                raise ApiError(
                    401, "bad-token", "a valid 'Authorization: Bearer <token>' is required"
                )
            username, role = found
        elif current_user.is_authenticated:
            try:
                csrf.protect()
            except CSRFError as exc:
                raise ApiError(400, "csrf", f"{exc.description}: send X-CSRFToken") from None
            username, role = current_user.username, current_user.role
        else:
            raise ApiError(401, "bad-token", "sign in, or send 'Authorization: Bearer <token>'")
        if role not in API_ROLES:
            raise ApiError(403, "forbidden-role", f"the {role} role cannot use the call API")
        g.api_actor = username
        g.desk_actor = Actor(username, role)
        return view(*args, **kwargs)

    return wrapper


def body() -> dict[str, Any]:
    """The JSON object sent. web.edge has refused anything else before the view ran;
    checked again here so the API holds without the edge (and for mypy)."""
    if not request.data:
        return {}
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested thousands deep: not a form anybody typed
        raise ApiError(400, "bad-json", "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad-json", "the body must be a JSON object")
    try:
        check_text(data)
    except BadInput as exc:
        raise ApiError(400, exc.slug, exc.message) from None
    return data


def text(data: dict[str, Any], name: str, default: str = "", limit: int = 200) -> str:
    value = data.get(name, default)
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError(400, "bad-field", f"{name!r} must be a string of at most {limit} chars")
    return value


def ident(kind: str, value: str) -> str:
    try:
        return check_id(kind, value)
    except ValueError as exc:
        raise ApiError(400, f"bad-{kind}-id", str(exc)) from None


def transition_json(t: Transition) -> Any:
    return jsonify(
        result=t.result, offers=[{"call": o.call_id, "seat": o.seat_id} for o in t.offers]
    )


@bp.get("/queue")
@token_required
def queue_status() -> Any:
    return jsonify(services().queue.status())


def actor() -> Actor:
    return g.desk_actor  # type: ignore[no-any-return]


@bp.post("/seats/<seat>/login")
@token_required
def seat_login(seat: str) -> Any:
    data = body()
    skills = data.get("skills", [])
    if not isinstance(skills, list) or not all(isinstance(s, str) for s in skills):
        raise ApiError(400, "bad-field", "'skills' must be a list of strings")
    return transition_json(services().desk.login_seat(actor(), seat, skills))


@bp.post("/seats/<seat>/logout")
@token_required
def seat_logout(seat: str) -> Any:
    return transition_json(services().desk.logout_seat(actor(), seat))


@bp.post("/seats/<seat>/state")
@token_required
def seat_state(seat: str) -> Any:
    data = body()
    state = text(data, "state")
    if state not in ("available", "paused"):
        raise ApiError(400, "bad-field", "'state' must be 'available' or 'paused'")
    reason = text(data, "reason") or ("other" if state == "paused" else "")
    return transition_json(services().desk.set_seat_state(actor(), seat, state, reason))


@bp.post("/seats/<seat>/heartbeat")
@token_required
def seat_heartbeat(seat: str) -> Any:
    services().desk.heartbeat(actor(), seat)
    return jsonify(result="alive")


@bp.post("/calls/<call>/answer")
@token_required
def call_answer(call: str) -> Any:
    data = body()
    seat = ident("seat", text(data, "seat", limit=128))
    transition, _ = services().desk.answer(actor(), ident("call", call), seat)
    return transition_json(transition)


def file_case_form(call: str, form: dict[str, Any]) -> Any:
    """File the operator's form into the call's case now; a form that names unknown
    codes is refused with what is allowed. If SQL is unavailable the form is kept and
    filed by a retried job: nothing the operator typed is lost."""
    try:
        case = services().desk.file_form(actor(), call, form)
    except InvalidForm as exc:
        return jsonify(
            error="invalid-form",
            field=exc.field,
            value=exc.value,
            allowed=exc.allowed,
            message=str(exc),
        ), 422
    if case is None:
        return jsonify(result="form-kept", message="saved; it will be filed shortly"), 202
    return jsonify(result="filed", case=case.number, status=case.status), 200


@bp.post("/calls/<call>/case")
@token_required
def call_case_form(call: str) -> Any:
    """The operator's case form, during the call or after it, as often as they like."""
    return file_case_form(ident("call", call), body())


@bp.post("/calls/<call>/complete")
@token_required
def call_complete(call: str) -> Any:
    """The operator has hung up, on a phone whose telephony cannot say so itself (the
    simulator). Asterisk and Twilio report the end of a conversation; for their calls
    this only files the form, so a seat is never put into wrap-up mid-conversation."""
    data = body()
    form = data.get("case")
    if form is not None and not isinstance(form, dict):
        raise ApiError(400, "bad-field", "'case' must be an object")
    call = ident("call", call)
    desk = services().desk
    desk.call(actor(), call)
    filed = file_case_form(call, form) if form else None
    if filed is not None and filed[1] == 422:
        return filed
    result = desk.complete(actor(), call)
    if result == "telephony-reports":
        return jsonify(result="form-filed", message="the telephony reports the hang-up"), 200
    return jsonify(result="completed")
