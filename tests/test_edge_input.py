"""Input checked at the edge (web.edge): NUL bytes and lone surrogates are a 400 before
anything is stored, on SQLite and on PostgreSQL (which refuses NUL in text); and a case
job files what it can of a stored form that the edge never saw, instead of failing on
every retry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select

from hotline.config import load_settings
from hotline.webapp import create_app
from tests.test_console import API_TOKEN, PASSWORD, csrf_of, sign_in
from tests.twilio_peer import AUTH_TOKEN, PUBLIC_BASE, TwilioSigner, sid

BEARER = {"Authorization": f"Bearer {API_TOKEN}"}


def web_app(db_url: str, redis_server, redis: Redis, tmp_path: Path, **config):  # type: ignore[no-untyped-def]
    """The web app on ``db_url`` (migrated and seeded here), with an operator, a
    supervisor, an admin and a department clerk; signed Twilio webhooks accepted."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user

    upgrade(db_url)
    with session_factory(engine_for(db_url))() as s:
        seed(s)
        s.commit()
        add_user(s, "wang", "operator", PASSWORD, display_name="王芳", seat="1001")
        add_user(s, "li", "supervisor", PASSWORD, display_name="李班长")
        add_user(s, "root", "admin", PASSWORD, display_name="管理员")
        add_user(s, "water", "department", PASSWORD, department_code="water-affairs")
        s.commit()
    settings = load_settings(
        {
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_server.url,
            "HOTLINE_API_TOKEN": API_TOKEN,
            "HOTLINE_SECRET_KEY": "test",
            "HOTLINE_WRAPUP_S": "0",
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PUBLIC_BASE_URL": PUBLIC_BASE,
        }
    )
    return create_app({"SETTINGS": settings, "REDIS": redis, "TESTING": True, **config})


@pytest.fixture
def app(empty_db_url: str, redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    return web_app(empty_db_url, redis_server, redis, tmp_path)


def answered_call(app, call_id: str = "c-edge") -> str:  # type: ignore[no-untyped-def]
    """A call answered at seat 1001 and talking."""
    svc = app.extensions["hotline"]
    svc.queue.seat_login("1001", ["mandarin"])
    svc.handler.start(call_id, "+8613800000001", "12345", "asterisk", 0.0)
    svc.queue.answer(call_id, "1001")
    return call_id


def run_jobs(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The queued RQ jobs, run as a worker runs them (they read the environment)."""
    from rq import Queue, SimpleWorker

    settings = app.extensions["hotline_settings"]
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(settings.var_dir))
    redis = app.extensions["hotline"].redis
    SimpleWorker([Queue("hotline", connection=redis)], connection=redis).work(
        burst=True, logging_level="WARNING"
    )


def case_of(app, call_id: str):  # type: ignore[no-untyped-def]
    from cases.service import case_for_call

    with app.extensions["hotline"].desk.sessions() as db:
        case = case_for_call(db, call_id)
        if case is None:
            return None
        return {
            "description": case.description,
            "address": case.address,
            "caller_name": case.caller_name,
            "category": case.category.code if case.category else None,
        }


def test_nul_bytes_at_sign_in_and_the_lookup_are_a_zh_cn_400(app) -> None:  # type: ignore[no-untyped-def]
    visitor = app.test_client()
    token = csrf_of(visitor.get("/login").get_data(as_text=True))
    for path, form in (
        ("/login", {"username": "wang\x00", "password": PASSWORD}),
        ("/login", {"username": "wang", "password": "pass\x00word"}),
        ("/lookup", {"number": "20260101\x00", "phone": "13800000001"}),
        ("/lookup", {"number": "2026", "phone": "138\x00"}),
    ):
        r = visitor.post(path, data={**form, "csrf_token": token})
        assert r.status_code == 400, (path, form)
        assert "无法保存的字符" in r.get_data(as_text=True)
    assert visitor.get("/lookup?number=%00").status_code == 400
    with app.extensions["hotline"].desk.sessions() as db:
        from cases.models import ActionLog

        # Nothing was tried, so nothing was recorded: only the fixture's own users
        # and the seeded knowledge base.
        assert set(db.scalars(select(ActionLog.action))) == {"user-added", "kb-imported"}


def test_an_api_form_with_nul_is_refused_before_it_is_kept(app, redis) -> None:  # type: ignore[no-untyped-def]
    call = answered_call(app)
    api = app.test_client()
    keys = app.extensions["hotline"].queue.keys
    for body in (
        {"description": "漏水\x00", "category_code": "water-outage"},
        {"address": "\ud800"},
        {"description": "ok", "\x00": "key"},
    ):
        r = api.post(
            f"/api/calls/{call}/case",
            data=json.dumps(body),  # ASCII escapes: \u0000 and \ud800 as a client sends them
            content_type="application/json",
            headers=BEARER,
        )
        assert (r.status_code, r.json["error"]) == (400, "bad-text"), body
    assert redis.get(keys.case_draft(call)) is None
    assert case_of(app, call) is None
    r = api.post(
        f"/api/calls/{call}/case", data="[1]", content_type="application/json", headers=BEARER
    )
    assert (r.status_code, r.json["error"]) == (400, "bad-json")
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    r = api.post(
        f"/api/calls/{call}/case", data=deep, content_type="application/json", headers=BEARER
    )
    assert (r.status_code, r.json["error"]) == (400, "bad-json")


def test_the_console_refuses_nul_in_forms_paths_and_queries(app, redis) -> None:  # type: ignore[no-untyped-def]
    call = answered_call(app)
    client = app.test_client()
    sign_in(client, "wang")
    headers = {"X-CSRFToken": csrf_of(client.get("/console/").get_data(as_text=True))}
    r = client.post(
        f"/console/calls/{call}/case",
        data={"description": "停水\x00", "outcome": "dispatch"},
        headers={**headers, "HX-Request": "true"},
    )
    assert r.status_code == 400 and "无法保存的字符" in r.get_data(as_text=True)
    assert redis.get(app.extensions["hotline"].queue.keys.case_draft(call)) is None
    assert client.get("/console/calls/c%00x/pop").status_code == 400
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    assert supervisor.get("/console/cases?q=%00").status_code == 400
    # Invalid UTF-8 never reaches a view as a surrogate: it stays its %-text, no error.
    assert supervisor.get("/console/cases?q=%ED%A0%80").status_code == 200


def multipart(fields: dict[str, bytes], files: dict[str, bytes] | None = None) -> bytes:
    """A multipart/form-data body (boundary B) of raw bytes, as a client may send it."""
    parts = [
        b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (name.encode(), value)
        for name, value in fields.items()
    ]
    parts += [
        b'--B\r\nContent-Disposition: form-data; name="%s"; filename="%s.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n%s\r\n"
        % (name.encode(), name.encode(), data)
        for name, data in (files or {}).items()
    ]
    return b"".join(parts) + b"--B--\r\n"


NOT_UTF8 = [b"multi\xff\xfepart", b"multi\xed\xa0\x80part"]  # a lone surrogate's bytes


def test_form_bodies_that_are_not_utf8_are_refused_before_anything_is_kept(app, redis) -> None:  # type: ignore[no-untyped-def]
    """Multipart text that werkzeug would decode with U+FFFD, and raw bytes in a
    urlencoded body (which werkzeug would drop), on the case form and on a page form."""
    from calls.desk import Actor
    from cases.models import Case
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    call = "c-bytes"
    svc.handler.start(call, "+8613800000001", "12345", "asterisk", 0.0)
    svc.queue.answer(call, "1001")  # at wang's seat
    operator = app.test_client()
    sign_in(operator, "wang")
    token = csrf_of(operator.get("/console/").get_data(as_text=True))
    with app.extensions["hotline"].desk.sessions() as db:
        number = create_case_for_call(
            db,
            CallInfo("c-other", "+8613800000009", "asterisk", "1001"),
            CaseDraft(description="积水", category_code="waterlogging", dispatch=True),
        ).number
        db.commit()
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    li_token = csrf_of(supervisor.get("/console/supervision").get_data(as_text=True))
    case_form = f"/console/calls/{call}/case"
    supervise = f"/console/cases/{number}/supervise"
    for bad in NOT_UTF8:
        for client, path, field, csrf in (
            (operator, case_form, "description", token),
            (supervisor, supervise, "note", li_token),
        ):
            fields = {"csrf_token": csrf.encode(), field: bad, "outcome": b"dispatch"}
            r = client.post(
                path, data=multipart(fields), content_type="multipart/form-data; boundary=B"
            )
            assert r.status_code == 400, (path, bad)
            assert "无法保存的字符" in r.get_data(as_text=True)
            urlencoded = b"&".join(k.encode() + b"=" + v for k, v in fields.items())
            r = client.post(path, data=urlencoded, content_type="application/x-www-form-urlencoded")
            assert r.status_code == 400, (path, bad)
            assert "无法保存的字符" in r.get_data(as_text=True)
    assert redis.get(app.extensions["hotline"].queue.keys.case_draft(call)) is None
    with app.extensions["hotline"].desk.sessions() as db:
        assert db.scalar(select(Case.supervised_note).where(Case.number == number)) is None
    # A binary file part is not text: beside valid text fields it passes the edge.
    fields = {"csrf_token": li_token.encode(), "note": "请回复".encode()}
    r = supervisor.post(
        supervise,
        data=multipart(fields, files={"photo": b"\xff\xd8\xff\xe0\x00"}),
        content_type="multipart/form-data; boundary=B",
    )
    assert r.status_code == 302
    with app.extensions["hotline"].desk.sessions() as db:
        assert db.scalar(select(Case.supervised_note).where(Case.number == number)) == "请回复"


def test_a_signed_twilio_webhook_with_nul_is_a_bare_400(app) -> None:  # type: ignore[no-untyped-def]
    twilio = TwilioSigner(app.test_client())
    r = twilio.post(
        "/twilio/voice",
        {"CallSid": sid(1), "From": "+86138\x00", "To": "+8612345", "CallStatus": "ringing"},
    )
    assert r.status_code == 400 and r.get_data() == b""
    ok = twilio.post(
        "/twilio/voice",
        {"CallSid": sid(2), "From": "+8613800000002", "To": "+8612345", "CallStatus": "ringing"},
    )
    assert ok.status_code == 200


def test_a_stored_form_the_edge_never_saw_still_gets_its_case(app, redis, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A draft with NUL, a lone surrogate and an over-long name, kept in Redis by a
    path that bypassed the web (an older release, a script): the case job files what
    it can on the first try, on PostgreSQL too."""
    from calls.filing import submit_draft

    call = answered_call(app, "c-stored")
    svc = app.extensions["hotline"]
    stored = {
        "description": "水管\x00爆裂\ud800",
        "address": "龙华路1号",
        "caller_name": "张" * 100,
        "category_code": "water-outage",
        "district_code": "no\x00such",
        "dispatch": True,
        "seat": "1001",
    }
    raw = json.dumps(stored)  # \u0000 and \ud800 escaped, as JSON keeps them
    keys = svc.queue.keys
    submit_draft(redis, keys, call, {})
    redis.set(keys.case_draft(call), raw)
    svc.handler.operator_completes(call)  # the hang-up: its case job is queued
    run_jobs(app, monkeypatch)
    case = case_of(app, call)
    assert case is not None
    assert case["description"] == "水管爆裂?"
    assert case["address"] == "龙华路1号"
    assert case["caller_name"] == "张" * 64
    assert case["category"] == "water-outage"
    # A later form, kept for a retry after the case job finished, is filed too.
    svc.handler.submit_case_form(call, {"description": "又\x00漏了", "seat": "1001"})
    run_jobs(app, monkeypatch)
    assert case_of(app, call)["description"] == "又漏了"
    from rq import Queue

    assert Queue("hotline", connection=redis).failed_job_registry.count == 0


def test_dispatch_without_a_lead_unit_is_a_zh_cn_refusal(app) -> None:  # type: ignore[no-untyped-def]
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    with app.extensions["hotline"].desk.sessions() as db:
        number = create_case_for_call(
            db, CallInfo("c-wait", "+8613800000003", "asterisk", "1001"), CaseDraft(dispatch=False)
        ).number
        db.commit()
    client = app.test_client()
    sign_in(client, "li")
    token = csrf_of(client.get("/console/supervision").get_data(as_text=True))
    r = client.post(f"/console/cases/{number}/dispatch", data={"lead": "", "csrf_token": token})
    assert r.status_code == 422 and "请选择承办单位" in r.get_data(as_text=True)


def test_out_of_range_numbers_and_dates_are_4xx_on_each_database(app) -> None:  # type: ignore[no-untyped-def]
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    token = csrf_of(supervisor.get("/console/supervision").get_data(as_text=True))
    huge = "9" * 30
    for path in (
        f"/console/cases?page={huge}",
        "/console/cases?page=-1",
        "/console/cases?since=0001-01-01&until=9999-12-31",
        "/console/rankings?start=0001-01-01&end=9999-12-31",
    ):
        assert supervisor.get(path).status_code == 400, path
    assert supervisor.get(f"/console/cases/{huge}").status_code == 404
    r = supervisor.post(f"/console/extensions/{huge}", data={"csrf_token": token})
    assert r.status_code == 404
    clerk = app.test_client()
    sign_in(clerk, "water")
    assert clerk.get(f"/portal/?page={huge}").status_code == 200
    operator = app.test_client()
    sign_in(operator, "wang")
    assert operator.get(f"/console/calls/{'x' * 10_000}/pop").status_code in (400, 404)


def test_a_refused_value_is_bad_data_and_an_absent_database_is_not(empty_db_url: str) -> None:
    """The case job falls back to a case without the form only for data no retry can
    write; a database that is away fails the job, which RQ retries."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from calls.casework import is_bad_data
    from hotline.redis_server import free_port

    def refusal(url: str, value: str) -> Exception:
        engine = create_engine(url)
        try:
            with engine.connect() as db:
                db.execute(text("SELECT CAST(:v AS VARCHAR(4))"), {"v": value})
        except (SQLAlchemyError, UnicodeError) as exc:
            return exc
        finally:
            engine.dispose()
        raise AssertionError(f"{value!r} was written")

    if empty_db_url.startswith("postgresql"):
        assert is_bad_data(refusal(empty_db_url, "a\x00b"))
        assert is_bad_data(refusal(empty_db_url, "\ud800"))
        away = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"
        assert not is_bad_data(refusal(away, "ok"))
    else:
        assert not is_bad_data(refusal("sqlite:////nonexistent/dir/x.db", "ok"))
