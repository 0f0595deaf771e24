"""Every route, as every kind of caller, with malformed input: no answer is a 5xx.

Each rule of ``app.url_map`` and each of its methods is called as a visitor, an
operator, a supervisor, an admin, a department clerk, a bearer of the API token and
(for the webhooks) Twilio, with path parameters, query arguments, form fields and
JSON bodies replaced by what an attacker sends: huge and negative numbers, NUL bytes,
lone surrogates (raw invalid UTF-8 and JSON ``"\\ud800"``), ``../``, 10k-character
strings, dates at the ends of the calendar, wrong JSON types, deep nesting. The
inputs are sampled (seeded, so a failure repeats), not the full cross-product; on
SQLite and on PostgreSQL, whose text and integer types refuse more.

Live streams (SSE) are read for their first chunk only, then closed."""

from __future__ import annotations

import json
import os
import random
import re
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from hotline.config import load_settings
from hotline.webapp import create_app
from tests.test_console import API_TOKEN, PASSWORD, csrf_of, sign_in
from tests.twilio_peer import AUTH_TOKEN, PUBLIC_BASE

ROOT = Path(__file__).resolve().parents[1]
BROWSER_ROLES = {
    "operator": "wang",
    "supervisor": "li",
    "admin": "root",
    "department": "water",
}
ROLES = ("anonymous", *BROWSER_ROLES, "bearer", "twilio")

INVALID_UTF8 = "%ED%A0%80"  # a lone surrogate's bytes, percent-encoded as sent
HUGE = "9" * 30  # past 2**63
LONG = "x" * 10_000
BAD_PATH = ["-1", HUGE, "工单😀", "a%00b", "..%2F..%2Fetc", LONG, INVALID_UTF8, "%20"]
BAD_VALUES = [
    "a\x00b",
    HUGE,
    "-" + HUGE,
    "-1",
    "0",
    "",
    " ",
    "0001-01-01",
    "9999-12-31",
    "2024-02-30",
    "../../etc/passwd",
    "工单😀\u202e",
    LONG,
    "[]",
    "{}",
    "true",
    "null",
    "1e309",
    "NaN",
]
BAD_JSON_BODIES = [
    "[]",
    '"text"',
    "42",
    "null",
    "{",
    "{'single': 1}",
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    '{"description": "\\ud800"}',
    '{"\\udfff": "key"}',
    '{"seat": "a\\u0000b", "state": "paused"}',
    '{"case": {"description": "\\ud800\\u0000"}}',
]
# Where a redirect may go (a ``next``): header injection, a backslash browsers read as
# '/', another site. Sent with every other field a plain word, so the action is done and
# its redirect reached; to the sign-in with the right password, from a fresh browser.
NEXT_LIKE_NAMES = ("next", "back", "return_to", "redirect", "url")
NEXT_LIKE_VALUES = ["/\r\nX: 1", "/console/\r\nX: 1", "/\\evil.com", "/\t/evil.com", "//evil.com"]
JSON_VALUES: list[Any] = [
    None,
    True,
    -1,
    10**30,
    1e308,
    [],
    {},
    ["a", {"b": None}],
    "\ud800",
    "a\x00b",
    LONG,
    "0001-01-01",
]


def field_names() -> list[str]:
    """Every name the web code reads from a form or query (so new routes are covered)."""
    names: set[str] = {"page", "since", "until", "start", "end", "q", "seat", "call"}
    pattern = re.compile(r"""\.get(?:list)?\(\s*["']([A-Za-z_]+)["']""")
    for source in (ROOT / "web").rglob("*.py"):
        names.update(pattern.findall(source.read_text()))
    from web.console.routes import FORM_FIELDS

    names.update(FORM_FIELDS)
    return sorted(names)


@pytest.fixture
def fuzz_app(empty_db_url: str, redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    """The web app on a fresh database of each kind, with a user of every role, an
    answered call with its case, and a department's case to act on."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.service import CallInfo, CaseDraft, create_case_for_call
    from cases.users import add_user

    upgrade(empty_db_url)
    with session_factory(engine_for(empty_db_url))() as s:
        seed(s)
        s.commit()
        add_user(s, "wang", "operator", PASSWORD, display_name="王芳", seat="1001")
        add_user(s, "li", "supervisor", PASSWORD, display_name="李班长")
        add_user(s, "root", "admin", PASSWORD, display_name="管理员")
        add_user(s, "water", "department", PASSWORD, department_code="water-affairs")
        add_user(s, "victim", "operator", PASSWORD, display_name="受试")
        case = create_case_for_call(
            s,
            CallInfo("c-fuzz", "+8613800000009", "asterisk", "1001"),
            CaseDraft(description="积水", category_code="waterlogging", dispatch=True),
        )
        number = case.number
        s.commit()
    settings = load_settings(
        {
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": empty_db_url,
            "REDIS_URL": redis_server.url,
            "HOTLINE_API_TOKEN": API_TOKEN,
            "HOTLINE_SECRET_KEY": "test",
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PUBLIC_BASE_URL": PUBLIC_BASE,
        }
    )
    # Rate limits would answer most of these with 429 and hide the routes behind them.
    app = create_app(
        {"SETTINGS": settings, "REDIS": redis, "TESTING": True, "RATELIMIT_ENABLED": False}
    )
    app.config.update(FUZZ_CASE=number, FUZZ_CALL="c-fuzz", FUZZ_SEAT="1001")
    return app


def valid_path_value(name: str, app) -> str:  # type: ignore[no-untyped-def]
    """A real value for a path parameter, so that the other inputs reach the view."""
    return {
        "call": app.config["FUZZ_CALL"],
        "seat": app.config["FUZZ_SEAT"],
        "number": app.config["FUZZ_CASE"],
        "username": "victim",
        "code": "water-affairs",
        "action": "note",
        "kind": "return_visit",
        "request_id": "1",
        "filename": "app.css",
    }.get(name, "x")


def live_call(app, operator: Caller, n: int) -> None:  # type: ignore[no-untyped-def]
    """Before each route: the operator at a seat of their own, talking on a new call, so
    the console's and the API's call routes reach the form and the queue."""
    from calls.desk import Actor

    svc = app.extensions["hotline"]
    seat, call = str(3000 + n), f"c-live-{n}"
    app.config.update(FUZZ_SEAT=seat, FUZZ_CALL=call)
    try:
        for other in svc.queue.status()["seats"]:  # calls go to this seat alone
            if other.get("state") == "available":
                svc.queue.seat_state(str(other["id"]), "paused", "other")
        svc.desk.login_seat(Actor("wang", "operator"), seat, ["mandarin"])
        svc.handler.start(call, "+8613700137001", "12345", "asterisk", time.time())
        offered = svc.queue.seat(seat).get("call") or call  # maybe one still waiting
        svc.queue.answer(offered, seat)
        app.config["FUZZ_CALL"] = offered
    except Exception:  # an earlier input left the queue otherwise: no live call this time
        pass
    if operator.still_signed_in():
        with operator.client.session_transaction() as session:
            session["seat"] = seat


class Caller:
    """One kind of caller with its own client (and session, and CSRF token)."""

    def __init__(self, app, role: str) -> None:  # type: ignore[no-untyped-def]
        self.app, self.role = app, role
        self.client = app.test_client()
        self.headers: dict[str, str] = {}
        self.csrf = ""
        if role in BROWSER_ROLES:
            self.sign_in()
        elif role == "bearer":
            self.headers = {"Authorization": f"Bearer {API_TOKEN}"}
        elif role == "anonymous":  # a visitor's forms carry a token too (/lookup, /login)
            self.csrf = csrf_of(self.client.get("/login").get_data(as_text=True))

    def sign_in(self) -> None:
        self.client = self.app.test_client()
        r = sign_in(self.client, BROWSER_ROLES[self.role])
        assert r.status_code == 302, (self.role, r.status_code)
        self.csrf = csrf_of(self.client.get("/login?next=/").get_data(as_text=True))
        self.headers = {"X-CSRFToken": self.csrf}

    def still_signed_in(self) -> bool:
        if self.role not in BROWSER_ROLES:
            return True
        with self.client.session_transaction() as session:
            return "_user_id" in session


def request_once(caller: Caller, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
    """The status of one request, or 500 with the traceback's tail when it raised.
    A live stream is read for its first chunk and closed."""
    headers = {**caller.headers, **kwargs.pop("headers", {})}
    if caller.role == "twilio" and path.startswith("/twilio/"):
        form = kwargs.get("data")
        if isinstance(form, dict):
            validator = RequestValidator(AUTH_TOKEN)
            headers["X-Twilio-Signature"] = validator.compute_signature(PUBLIC_BASE + path, form)
    try:
        response = caller.client.open(path, method=method, headers=headers, **kwargs)
        try:
            if response.mimetype == "text/event-stream":
                next(iter(response.response), None)
            else:
                response.get_data()
        finally:
            response.close()
    except Exception:
        return 500, traceback.format_exc(limit=-3)
    return response.status_code, ""


def with_csrf(caller: Caller, form: dict[str, str]) -> dict[str, str]:
    return {**form, "csrf_token": caller.csrf} if caller.csrf else form


def inputs(rule, method: str, app, names: list[str], rng: random.Random):  # type: ignore[no-untyped-def]
    """(label, path, request kwargs) for one rule and method: a sample of bad inputs."""
    params = sorted(rule.arguments)
    valid = {p: valid_path_value(p, app) for p in params}

    def path_with(values: dict[str, str], query: str = "") -> str:
        path = rule.rule
        for name, value in values.items():
            path = re.sub(rf"<(?:[a-z]+:)?{name}>", value, path)
        return path + (f"?{query}" if query else "")

    yield "probe", path_with(valid), {}
    # Path parameters: each bad value in turn for one parameter, the others real.
    for param in params:
        for bad in rng.sample(BAD_PATH, k=min(5, len(BAD_PATH))):
            yield f"path {param}={bad[:20]!r}", path_with({**valid, param: bad}), {}
    few = rng.sample(names, k=min(5, len(names)))  # for 10k-character values

    def every(bad: str) -> dict[str, str]:
        return {n: bad for n in (few if bad == LONG else names)}

    def mixed() -> dict[str, str]:
        return {n: rng.choice([v for v in BAD_VALUES if v != LONG]) for n in names}

    def short(values: dict[str, str]) -> str:
        return repr({k: v[:12] for k, v in values.items()})[:400]

    # Query arguments (every method reads them): every name one bad value, or mixed.
    for bad in rng.sample(BAD_VALUES, k=6):
        yield f"query *={bad[:20]!r}", path_with(valid, urlencode(every(bad))), {}
    for _ in range(3):
        values = mixed()
        yield f"query {short(values)}", path_with(valid, urlencode(values)), {}
    raw = "&".join(f"{n}={INVALID_UTF8}" for n in names)
    yield "query *=invalid UTF-8", path_with(valid, raw), {}
    next_like = [n for n in names if n in NEXT_LIKE_NAMES]
    for bad in NEXT_LIKE_VALUES:
        yield (
            f"query next-like={bad!r}",
            path_with(valid, urlencode(dict.fromkeys(next_like, bad))),
            {},
        )
    if method == "GET":
        return
    for bad in NEXT_LIKE_VALUES:
        values = {n: bad if n in NEXT_LIKE_NAMES else "x" for n in names}
        yield f"form next-like={bad!r}", path_with(valid), {"data": values}
    if rule.endpoint == "auth.login":
        for bad in NEXT_LIKE_VALUES:
            form = {"username": "victim", "password": PASSWORD}
            yield (
                f"sign-in next={bad!r}",
                path_with(valid, urlencode({"next": bad})),
                {"data": form, "fresh_browser": True},
            )
    # Form fields.
    for bad in rng.sample(BAD_VALUES, k=6):
        yield f"form *={bad[:20]!r}", path_with(valid), {"data": every(bad)}
    for _ in range(4):
        values = mixed()
        yield f"form {short(values)}", path_with(valid), {"data": values}
    body = "&".join(f"{n}={INVALID_UTF8}" for n in names).encode() + b"&raw=\xed\xa0\x80"
    yield (
        "form *=invalid UTF-8",
        path_with(valid),
        {"data": body, "content_type": "application/x-www-form-urlencoded"},
    )
    yield "form empty", path_with(valid), {"data": {}}
    # JSON bodies.
    for text in rng.sample(BAD_JSON_BODIES, k=5):
        yield (
            f"json {text[:30]!r}",
            path_with(valid),
            {"data": text, "content_type": "application/json"},
        )
    for value in rng.sample(JSON_VALUES, k=4):
        document = json.dumps({n: value for n in (few if value == LONG else names)})
        yield (
            f"json *={str(value)[:20]!r}",
            path_with(valid),
            {"data": document, "content_type": "application/json"},
        )


# Visited last: they end the caller's session or change who may sign in.
LAST = ("auth.logout", "console.admin_user_active", "console.admin_user_password")


def test_no_route_answers_5xx_to_malformed_input(fuzz_app) -> None:  # type: ignore[no-untyped-def]
    app = fuzz_app
    names = field_names()
    rng = random.Random(int(os.environ.get("HOTLINE_FUZZ_SEED", "17")))  # another seed finds more
    callers = {role: Caller(app, role) for role in ROLES}
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint in LAST, r.endpoint, r.rule))
    failures: list[tuple[str, str, str]] = []
    sent = 0
    for n, rule in enumerate(rules):
        if not callers["operator"].still_signed_in():
            callers["operator"].sign_in()
        live_call(app, callers["operator"], n)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            (_, probe, _), *cases = inputs(rule, method, app, names, rng)
            for role in ROLES:
                caller = callers[role]
                if not caller.still_signed_in():
                    caller.sign_in()
                # A caller the route turns away sees only a few of the inputs.
                form = {"data": with_csrf(caller, {})} if method != "GET" else {}
                status, trace = request_once(caller, method, probe, **form)
                chosen = (
                    cases
                    if status not in (302, 401, 403)
                    else rng.sample(cases, k=min(4, len(cases)))
                )
                if status >= 500:
                    failures.append((f"{method} {rule.rule}", f"as {role}: probe", trace))
                for label, path, kwargs in chosen:
                    sender = caller
                    if kwargs.get("fresh_browser"):  # signs in: not as this caller
                        if role != "anonymous":
                            continue  # once is enough
                        sender = Caller(app, "anonymous")
                        kwargs = {k: v for k, v in kwargs.items() if k != "fresh_browser"}
                    if "data" in kwargs and isinstance(kwargs["data"], dict):
                        kwargs = {**kwargs, "data": with_csrf(sender, kwargs["data"])}
                    status, trace = request_once(sender, method, path, **kwargs)
                    sent += 1
                    if status >= 500:
                        failures.append((f"{method} {rule.rule}", f"as {role}: {label}", trace))
    # One line per cause (route, method, the exception's last line), with an input.
    causes: dict[tuple[str, str], str] = {}
    for where, label, trace in failures:
        causes.setdefault((where, (trace.strip().splitlines() or ["5xx"])[-1]), label)
    assert not causes, f"{len(failures)} of {sent} requests answered 5xx:\n" + "\n".join(
        f"{where}: {label}\n    {cause}" for (where, cause), label in causes.items()
    )
