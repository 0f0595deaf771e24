"""Sign-in, roles, CSRF and the console's and wallboard's server side, over real HTTP
semantics (Flask's client) against a real redis-server and SQLite."""

from __future__ import annotations

import re

import pytest

from hotline.config import load_settings
from hotline.webapp import create_app

API_TOKEN = "shared-admin-token"
PASSWORD = "correct horse battery"


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    return make_app(redis_server, redis, tmp_path)


def make_app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    """The web app on a fresh SQLite file with an operator, a supervisor and a
    department user."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user

    db_url = f"sqlite:///{tmp_path / 'web.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as s:
        seed(s)
        s.commit()
        add_user(s, "wang", "operator", PASSWORD, display_name="王芳", seat="1001")
        add_user(s, "li", "supervisor", PASSWORD, display_name="李班长")
        add_user(s, "water", "department", PASSWORD, department_code="water-affairs")
    settings = load_settings(
        {
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_server.url,
            "HOTLINE_API_TOKEN": API_TOKEN,
            "HOTLINE_WRAPUP_S": "30",
            "HOTLINE_SECRET_KEY": "test",
        }
    )
    return create_app({"SETTINGS": settings, "REDIS": redis, "TESTING": True})


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def test_the_root_sends_a_visitor_to_sign_in_and_each_role_home(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert client.get("/").headers["Location"].endswith("/login")
    assert client.get("/console/").status_code == 302
    r = sign_in(client, "wang")
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/")
    page = client.get("/console/").get_data(as_text=True)
    assert "坐席工作台" in page and 'value="1001"' in page  # zh-CN first, their usual seat
    r = sign_in(app.test_client(), "li")
    assert r.headers["Location"].endswith("/console/wallboard")


def test_a_wrong_password_is_refused_and_the_form_needs_its_csrf_token(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert sign_in(client, "wang", "wrong password!").status_code == 401
    assert sign_in(client, "nobody").status_code == 401
    no_token = client.post("/login", data={"username": "wang", "password": PASSWORD})
    assert no_token.status_code == 400  # CSRF


def test_each_role_sees_only_its_own_pages(app) -> None:  # type: ignore[no-untyped-def]
    department = app.test_client()
    sign_in(department, "water")
    assert department.get("/console/").status_code == 403
    assert department.get("/console/wallboard").status_code == 403
    assert department.get("/portal/").status_code == 200
    operator = app.test_client()
    sign_in(operator, "wang")
    assert operator.get("/console/wallboard").status_code == 403
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    assert supervisor.get("/console/wallboard").status_code == 200
    assert supervisor.get("/console/").status_code == 403


def test_session_cookies_are_http_only_and_same_site(app) -> None:  # type: ignore[no-untyped-def]
    r = sign_in(app.test_client(), "wang")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_an_open_redirect_after_sign_in_is_refused(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = csrf_of(client.get("/login").get_data(as_text=True))
    r = client.post(
        "/login?next=//evil.example/x",
        data={"username": "wang", "password": PASSWORD, "csrf_token": token},
    )
    assert r.headers["Location"].endswith("/console/")


def test_the_api_takes_a_session_with_csrf_or_a_personal_token(app) -> None:  # type: ignore[no-untyped-def]
    from cases.users import issue_token

    client = app.test_client()
    assert client.get("/api/queue").status_code == 401
    sign_in(client, "wang")
    page = client.get("/console/").get_data(as_text=True)
    assert client.post("/api/seats/1001/login", json={}).status_code == 400  # no CSRF header
    r = client.post("/api/seats/1001/login", json={}, headers={"X-CSRFToken": csrf_of(page)})
    assert r.status_code == 200
    with app.extensions["hotline"].handler.directory.sessions() as db:
        personal = issue_token(db, "wang")
        department_token = issue_token(db, "water")
    bearer = {"Authorization": f"Bearer {personal}"}
    assert app.test_client().get("/api/queue", headers=bearer).status_code == 200
    refused = app.test_client().get(
        "/api/queue", headers={"Authorization": f"Bearer {department_token}"}
    )
    assert refused.status_code == 403 and refused.json["error"] == "forbidden-role"
    shared = {"Authorization": f"Bearer {API_TOKEN}"}
    assert app.test_client().get("/api/queue", headers=shared).status_code == 200


def test_the_console_logs_in_a_seat_pauses_after_the_call_and_extends_wrap_up(app, queue) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    sign_in(client, "wang")
    headers = {"X-CSRFToken": csrf_of(client.get("/console/").get_data(as_text=True))}
    assert client.post("/console/seat/login", data={"seat": "1001"}).status_code == 400
    r = client.post(
        "/console/seat/login", data={"seat": "1001", "skills": "mandarin"}, headers=headers
    )
    assert r.status_code == 204
    q = app.extensions["hotline"].queue
    assert q.seat("1001")["state"] == "available"
    q.enqueue("c1")
    q.answer("c1", "1001")
    r = client.post(
        "/console/seat/state",
        data={"state": "paused", "reason": "lunch", "after_call": "1"},
        headers=headers,
    )
    assert "本通话后将小休" in r.get_data(as_text=True)
    q.complete("c1")
    r = client.post("/console/seat/extend", headers=headers)
    assert "话后处理剩余" in r.get_data(as_text=True)
    assert int(q.seat("1001")["wrapup_until"]) - int(q.seat("1001")["now"]) > 50_000
    bad = client.post(
        "/console/seat/state", data={"state": "paused", "reason": "nap"}, headers=headers
    )
    assert "请选择小休原因" in bad.get_data(as_text=True)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        from sqlalchemy import select

        from cases.models import ActionLog

        actions = db.scalars(select(ActionLog.action).where(ActionLog.actor == "wang")).all()
    assert {"signed-in", "seat-login", "seat-paused"} <= set(actions)


def test_a_supervisor_pauses_a_seat_and_it_is_recorded(app) -> None:  # type: ignore[no-untyped-def]
    q = app.extensions["hotline"].queue
    q.seat_login("1002")
    client = app.test_client()
    sign_in(client, "li")
    headers = {"X-CSRFToken": csrf_of(client.get("/console/wallboard").get_data(as_text=True))}
    r = client.post("/console/seats/1002/action", data={"action": "pause"}, headers=headers)
    assert r.status_code == 200
    assert (q.seat("1002")["state"], q.seat("1002")["reason"]) == ("paused", "supervisor")
    assert "班长置忙" in r.get_data(as_text=True)


def test_the_console_attaches_a_repeat_callers_call_to_their_open_case(app) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from cases.models import CaseEvent
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    handler = app.extensions["hotline"].handler
    with handler.directory.sessions() as db:
        open_case = create_case_for_call(
            db, CallInfo("earlier", "+8613800000009", "asterisk", "1002"), CaseDraft()
        ).number
    client = app.test_client()
    sign_in(client, "wang")
    headers = {"X-CSRFToken": csrf_of(client.get("/console/").get_data(as_text=True))}
    client.post("/console/seat/login", data={"seat": "1001", "skills": "mandarin"}, headers=headers)
    handler.start("c-repeat", "13800000009", "12345", "asterisk", 0.0)
    handler.seat_answered("c-repeat", "1001", 1.0)
    pop = client.get("/console/calls/c-repeat/pop").get_data(as_text=True)
    assert f'<option value="{open_case}"' in pop  # offered for attaching
    r = client.post(
        "/console/calls/c-repeat/case",
        data={"attach_to": open_case, "description": "第三次来电催办"},
        headers=headers,
    )
    assert r.status_code == 200 and f"已并入工单 {open_case}" in r.get_data(as_text=True)
    with handler.directory.sessions() as db:
        event = db.scalar(select(CaseEvent).where(CaseEvent.call_id == "c-repeat"))
        assert (event.action, event.actor, event.case.number) == ("urged", "wang", open_case)


def test_the_operator_dispatches_to_the_suggested_or_a_chosen_unit(app) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from cases.models import Case

    handler = app.extensions["hotline"].handler
    client = app.test_client()
    sign_in(client, "wang")
    headers = {"X-CSRFToken": csrf_of(client.get("/console/").get_data(as_text=True))}
    # The category as the operator types it (Chinese, or pinyin initials) or picks it.
    for typed in ("停电", "power-outage"):
        options = client.get(f"/console/suggest?category_code={typed}&district_code=meilan")
        html = options.get_data(as_text=True)
        suggested = html.split('<optgroup label="建议承办单位">')[1].split("</optgroup>")[0]
        # The catalogue's unit first, starred, and chosen for the operator.
        assert suggested.strip().startswith('<option value="power-supply" selected>★')
    client.post("/console/seat/login", data={"seat": "1001", "skills": "mandarin"}, headers=headers)
    handler.start("c-dispatch", "13800000010", "12345", "asterisk", 0.0)
    handler.seat_answered("c-dispatch", "1001", 1.0)
    r = client.post(
        "/console/calls/c-dispatch/case",
        data={
            "category_code": "停电",
            "district_code": "meilan",
            "department_code": "district-meilan",
            "description": "小区停电，电梯困人",
            "outcome": "dispatch",
        },
        headers=headers,
    )
    assert r.status_code == 200 and "已派单" in r.get_data(as_text=True)
    assert r.headers["HX-Trigger"] == "case-filed"  # the 待补录 list redraws at once
    assert 'hx-trigger="every 30s, case-filed from:body"' in client.get("/console/").get_data(
        as_text=True
    )
    with handler.directory.sessions() as db:
        case = db.scalar(select(Case).where(Case.call_id == "c-dispatch"))
        assert (case.status, case.department.code) == ("dispatched", "district-meilan")
        assert case.respond_by is not None and case.handle_by is not None
    assert handler.redis.zcard(handler.queue.keys.clocks) == 4  # its clocks are set


def test_a_short_secret_key_is_warned_about(redis_server, redis, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level("WARNING", logger="hotline.web"):
        make_app(redis_server, redis, tmp_path)  # its key is "test"
    assert "HOTLINE_SECRET_KEY has 4 characters: use at least 32" in caplog.text


def test_a_district_matter_suggests_its_own_districts_government_never_anothers(app) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from cases.models import Case, Category, Department, District
    from cases.service import utcnow

    handler = app.extensions["hotline"].handler
    with handler.directory.sessions() as db:  # last month's street lights went to 琼山区
        lights = db.scalar(select(Category).where(Category.code == "street-lights"))
        qiongshan = db.scalar(select(District).where(District.code == "qiongshan"))
        government = db.scalar(select(Department).where(Department.code == "district-qiongshan"))
        for n in range(3):
            db.add(
                Case(
                    number=f"H-LIGHTS-{n}",
                    caller_phone="+8613800000000",
                    description="路灯不亮",
                    status="dispatched",
                    category_id=lights.id,
                    district_id=qiongshan.id,
                    department_id=government.id,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                    dispatched_at=utcnow(),
                )
            )
        db.commit()
    client = app.test_client()
    sign_in(client, "wang")

    def suggested(query: str) -> str:
        html = client.get(f"/console/suggest?category_code=street-lights{query}")
        text = html.get_data(as_text=True)
        if '<optgroup label="建议承办单位">' not in text:
            return ""
        return text.split('<optgroup label="建议承办单位">')[1].split("</optgroup>")[0]

    in_meilan = suggested("&district_code=meilan")
    assert in_meilan.strip().startswith('<option value="district-meilan" selected>')
    assert "district-qiongshan" not in in_meilan
    assert "district-qiongshan" not in suggested("")  # no district yet: ask, do not guess
    assert "district-qiongshan" in suggested("&district_code=qiongshan")
