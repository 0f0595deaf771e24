"""JSON API for the operator side (the console uses it; so do the tests).

Behind a bearer token (HOTLINE_API_TOKEN) until operator logins arrive. Errors are
JSON: {"error": slug, "message": text}, 400 for bad input, 401/403 for auth, 404 for
unknown ids, 409 for a refused transition."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException

from ivr import events as e
from queueing import QueueError, Transition
from queueing.keys import check_id
from web import services

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


@bp.errorhandler(QueueError)
def queue_error(exc: QueueError) -> Any:
    return jsonify(error=exc.code, message=str(exc)), _STATUS_FOR_CODE.get(exc.code, 409)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Any:
    return jsonify(
        error=(exc.name or "error").lower().replace(" ", "-"), message=exc.description
    ), exc.code


def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected = services().settings.api_token
        if not expected:
            raise ApiError(403, "api-disabled", "HOTLINE_API_TOKEN is not configured")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "bad-token", "a valid 'Authorization: Bearer <token>' is required")
        return view(*args, **kwargs)

    return wrapper


def body() -> dict[str, Any]:
    if not request.data:
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "bad-json", "the body must be a JSON object")
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


@bp.post("/seats/<seat>/login")
@token_required
def seat_login(seat: str) -> Any:
    data = body()
    skills = data.get("skills", [])
    if not isinstance(skills, list) or not all(isinstance(s, str) for s in skills):
        raise ApiError(400, "bad-field", "'skills' must be a list of strings")
    return transition_json(services().queue.seat_login(ident("seat", seat), skills))


@bp.post("/seats/<seat>/logout")
@token_required
def seat_logout(seat: str) -> Any:
    return transition_json(services().queue.seat_logout(ident("seat", seat)))


@bp.post("/seats/<seat>/state")
@token_required
def seat_state(seat: str) -> Any:
    data = body()
    state = text(data, "state")
    if state not in ("available", "paused"):
        raise ApiError(400, "bad-field", "'state' must be 'available' or 'paused'")
    t = services().queue.seat_state(ident("seat", seat), state, text(data, "reason"))
    return transition_json(t)


@bp.post("/seats/<seat>/heartbeat")
@token_required
def seat_heartbeat(seat: str) -> Any:
    services().queue.heartbeat(ident("seat", seat))
    return jsonify(result="alive")


@bp.post("/calls/<call>/answer")
@token_required
def call_answer(call: str) -> Any:
    data = body()
    seat = ident("seat", text(data, "seat", limit=128))
    svc = services()
    t = svc.queue.answer(ident("call", call), seat)
    svc.handler.handle(call, e.SeatConnected(seat, at=time.time()))
    return transition_json(t)


@bp.post("/calls/<call>/complete")
@token_required
def call_complete(call: str) -> Any:
    data = body()
    form = data.get("case", {})
    if not isinstance(form, dict):
        raise ApiError(400, "bad-field", "'case' must be an object")
    svc = services()
    call = ident("call", call)
    state = svc.queue.call(call).get("state")
    if state is None:
        raise QueueError("no-such-call")
    if state not in ("on_call", "ended"):  # ended: the caller hung up first; file the form
        raise QueueError("not-connected")
    svc.handler.operator_completes(call, form)
    return jsonify(result="completed")
