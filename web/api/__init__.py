"""The JSON API for operators' tools and admin scripts.

Rate limits (Flask-Limiter, counted in the service's Redis):
- each caller (a token, or a signed-in person) has a budget generous enough for a
  console's heartbeats and clicks all shift, so one runaway script cannot flood the desk;
- failed authentication is limited per address, so tokens cannot be guessed; a
  signed-in browser session is exempt, so a guesser behind the call centre's shared
  address cannot lock its operators out."""

from __future__ import annotations

import hashlib

from flask import current_app, request
from flask_login import current_user

from web.api.routes import bp
from web.limits import client_address, limiter

__all__ = ["bp"]

CALLER_LIMIT = "1200 per minute"
FAILED_AUTH_LIMIT = "60 per minute"


def api_caller() -> str:
    """Who is calling, before the view checks it: a token (by its digest, never the
    token itself), a signed-in person, or else the address."""
    header = request.headers.get("Authorization", "")
    if header:
        return "token:" + hashlib.sha256(header.encode()).hexdigest()[:24]
    if current_user.is_authenticated:
        return f"user:{current_user.get_id()}"
    return "address:" + client_address()


def _caller_limit() -> str:
    return str(current_app.config.get("API_RATE_LIMIT", CALLER_LIMIT))


def _failed_auth_limit() -> str:
    return str(current_app.config.get("API_FAILED_AUTH_LIMIT", FAILED_AUTH_LIMIT))


limiter.limit(_caller_limit, key_func=api_caller, scope="api-caller")(bp)
limiter.limit(
    _failed_auth_limit,
    key_func=client_address,
    scope="api-failed-auth",
    deduct_when=lambda response: response.status_code == 401,
    exempt_when=lambda: bool(current_user.is_authenticated),
)(bp)
