"""Input checked at the edge, before any view runs: text that no database can keep is
refused with 400 before anything is stored or looked up.

- NUL bytes (PostgreSQL refuses them in text; a job retrying a stored form with one
  would fail forever) and lone surrogates (not UTF-8) in the path, the query, a form
  or a JSON body;
- a JSON body that is not an object, not JSON, or nested too deeply to read;
- control characters (C0 but tab and line breaks) in an Open311 POST's form, which
  the requests' XML could not carry.

Werkzeug never hands a view a lone surrogate from a form or query, but JSON's
``"\\ud800"`` does. Twilio's webhooks are checked too: Twilio never sends either, so a
400 there is a forgery or a broken proxy.

A form body that is not UTF-8 is refused as well, before it is parsed: werkzeug would
silently empty a urlencoded one and decode a multipart one's text with U+FFFD
replacement characters, which would be stored. (Percent-encoded invalid UTF-8 stays
as its ``%ED..`` text, which is valid text.) Multipart file parts may be binary: such
a body passes when no text field came out with a replacement character.

Pages answer with the zh-CN error page (English one click away), /api with its JSON
error ``bad-text`` or ``bad-json``, Twilio with the bare status."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, jsonify, render_template, request

from web.auth import language
from web.i18n import translate

MAX_JSON_DEPTH = 32  # a case form is two deep; past this nobody typed it
# A Chinese SMS gateway pushes its uplink texts as JSON (a list), signed (web.sms).
JSON_WEBHOOKS = ("/sms/gateway/",)


class BadInput(ValueError):
    """Input refused at the edge: ``slug`` for the API, ``key`` for the page."""

    def __init__(self, slug: str, message: str) -> None:
        super().__init__(message)
        self.slug, self.message = slug, message


def text_problem(value: str) -> str | None:
    """Why this text cannot be stored, or None."""
    if "\x00" in value:
        return "text may not contain NUL bytes"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text must be valid Unicode (no lone surrogates)"
    return None


# Control characters (C0, but tab and line breaks) have no place in a request, and an
# Open311 answer in XML could not carry them.
_CONTROL = frozenset(chr(c) for c in range(32)) - {"\t", "\n", "\r"}


def _check_no_controls(values: Iterable[str]) -> None:
    for value in values:
        if not _CONTROL.isdisjoint(value):
            raise BadInput("bad-text", "text may not contain control characters")


def check_text(value: object) -> None:
    """Every string in a JSON value (keys too), iteratively: raises BadInput."""
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadInput("bad-json", "the body is nested too deeply")
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise BadInput("bad-text", problem)
        elif isinstance(item, dict):
            pending.extend((k, depth + 1) for k in item)
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            pending.extend((v, depth + 1) for v in item)


def _check_strings(values: Iterable[str]) -> None:
    for value in values:
        problem = text_problem(value)
        if problem:
            raise BadInput("bad-text", problem)


def _check_form_bytes() -> None:
    """A form body's bytes are UTF-8, but for a multipart form's file parts."""
    body = request.get_data(cache=True)  # werkzeug parses the form from this copy
    try:
        body.decode("utf-8")
        return
    except UnicodeDecodeError:
        pass
    if request.mimetype == "multipart/form-data" and request.files:
        texts = (text for key, values in request.form.lists() for text in (key, *values))
        if not any("\ufffd" in text for text in texts):
            return  # the bytes that are not UTF-8 were a file's
    raise BadInput("bad-text", "a form must be UTF-8 text")


def check_request() -> None:
    """The request's path parameters, query, form and JSON body; raises BadInput."""
    _check_strings(str(v) for v in (request.view_args or {}).values())
    for key, values in request.args.lists():
        _check_strings([key, *values])
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        _check_form_bytes()
        for key, values in request.form.lists():
            _check_strings([key, *values])
            if request.path.startswith("/open311/") and request.method == "POST":
                _check_no_controls([key, *values])
    if request.is_json and request.get_data(cache=True):
        if request.path.startswith(JSON_WEBHOOKS):
            # Their view makes each text storable itself (calls.sms.storable): half an
            # emoji in one signed text must not cost the push its other texts.
            try:
                request.get_json(silent=True)
            except RecursionError:
                raise BadInput("bad-json", "the body is nested too deeply") from None
            return
        if not request.path.startswith("/api/"):
            # Pages take forms; Flask-WTF would read a JSON body as one, any shape.
            raise BadInput("bad-json", "this address takes a form, not JSON")
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nested thousands deep
            raise BadInput("bad-json", "the body is nested too deeply") from None
        if not isinstance(data, dict):
            raise BadInput("bad-json", "the body must be a JSON object")
        check_text(data)


def refuse(exc: BadInput) -> Any:
    if request.path.startswith(("/api/", *JSON_WEBHOOKS)):
        return jsonify(error=exc.slug, message=exc.message), 400
    if request.path.startswith("/twilio/"):
        return "", 400
    if request.path.startswith("/open311/"):
        from web.open311.render import errors

        return errors("xml" if request.path.endswith(".xml") else "json", 400, exc.message)
    lang = language()
    title = translate("http_400", lang)
    text = translate("bad_input_text" if exc.slug == "bad-text" else "http_400_text", lang)
    template = "_error.html" if request.headers.get("HX-Request") else "error.html"
    return render_template(template, code=400, title=title, text=text, detail=""), 400


def init_edge(app: Flask) -> None:
    """Check every request before its view (and before CSRF, sign-in or any limit)."""

    def check() -> Any:
        try:
            check_request()
        except BadInput as exc:
            return refuse(exc)
        return None

    app.before_request_funcs.setdefault(None, []).insert(0, check)
