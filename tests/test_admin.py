"""The administrator's screens (/console/admin/): users, seats, units and the opt-out
register, over Flask's client against a real redis-server and SQLite; the record
functions on SQLite and PostgreSQL; one screenshot of the users page in Chromium."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select

from calls.desk import Actor
from cases.models import ActionLog, Department, OptOut, User
from cases.users import (
    UserError,
    add_user,
    authenticate,
    issue_token,
    revoke_tokens,
    set_active,
    set_password,
    user_for_token,
)
from tests.test_console import PASSWORD, csrf_of, make_app

NEW_PASSWORD = "a new one, typed twice"


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    """The console's test app (an operator, a supervisor, a department user) and an
    admin."""
    redis.flushdb()
    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].desk.sessions() as s:
        add_user(s, "root", "admin", PASSWORD, display_name="张管理")
    return app


def sign_in(app, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = csrf_of(client.get("/login").get_data(as_text=True))
    r = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    return client, r.status_code


def signed_in(app, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    client, status = sign_in(app, username, password)
    assert status == 302, f"{username} could not sign in"
    return client


def post(client, path: str, **form: str):  # type: ignore[no-untyped-def]
    """A form posted with the session's CSRF token (taken from the sign-in page, which
    every role may open, so that reading it consumes no notice meant for a later page)."""
    token = csrf_of(client.get("/login").text)
    return client.post(path, data={**form, "csrf_token": token})


def sessions(app):  # type: ignore[no-untyped-def]
    return app.extensions["hotline"].desk.sessions


def logged(app, action: str, target: str) -> list[str]:
    """Who the action log says did the action on the target."""
    with sessions(app)() as db:
        return list(
            db.scalars(
                select(ActionLog.actor).where(
                    ActionLog.action == action, ActionLog.target == target
                )
            )
        )


def user(app, username: str) -> User:  # type: ignore[no-untyped-def]
    with sessions(app)() as db:
        found = db.scalar(select(User).where(User.username == username))
        assert found is not None
        db.expunge(found)
        return found


# -- who may open the screens ---------------------------------------------------------


@pytest.mark.parametrize("username", ["wang", "li", "water"])
def test_only_an_admin_opens_the_admin_screens(app, username: str) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(app, username)
    for page in ("users", "seats", "units", "optout"):
        assert client.get(f"/console/admin/{page}").status_code == 403
    assert post(client, "/console/admin/users/wang/active", active="0").status_code == 403
    assert user(app, "wang").active
    home = client.get("/", follow_redirects=True)
    assert home.status_code == 200 and "系统管理" not in home.text  # no link to them


def test_the_admin_sees_the_screens_in_chinese_linked_from_the_header(app) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(app, "root")
    assert client.get("/console/admin/").headers["Location"].endswith("/console/admin/users")
    page = client.get("/console/admin/users").text
    assert "用户管理" in page and 'href="/console/admin/"' in page  # the header's link
    row = re.search(r'<tr data-user="wang".*?</tr>', page, re.S)
    assert row and "王芳" in row[0] and "话务员" in row[0] and "1001" in row[0]
    assert "在用" in row[0] and "从未登录" in row[0] and ">operator<" not in row[0]
    root = re.search(r'<tr data-user="root".*?</tr>', page, re.S)
    assert root and "管理员" in root[0] and "从未登录" not in root[0]  # root signed in just now
    water = re.search(r'<tr data-user="water".*?</tr>', page, re.S)
    assert water and "市水务局" in water[0] and "承办单位" in water[0]
    assert 'data-confirm="确定停用' in page
    assert 'href="/console/catalogue"' in client.get("/console/admin/units").text
    english = signed_in(app, "root")
    token = csrf_of(english.get("/console/admin/users").text)
    english.post("/language", data={"lang": "en", "csrf_token": token})
    assert "Operator" in english.get("/console/admin/users").text


# -- users ----------------------------------------------------------------------------


def test_an_admin_adds_users_with_the_password_rules_in_chinese(app) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(app, "root")
    form = {
        "username": "zhao", "display_name": "赵敏", "role": "operator", "seat": "1002",
        "password": PASSWORD, "password2": PASSWORD,
    }
    r = post(client, "/console/admin/users", **{**form, "password2": "something else!"})
    assert r.status_code == 422 and "两次输入的密码不一致" in r.text
    r = post(client, "/console/admin/users", **{**form, "password": "short", "password2": "short"})
    assert r.status_code == 422 and "密码至少 10 位" in r.text
    r = post(client, "/console/admin/users", **{**form, "role": "department"})
    assert r.status_code == 422 and "承办单位用户须选择所属单位" in r.text
    r = post(client, "/console/admin/users", **{**form, "username": "wang"})
    assert r.status_code == 422 and "用户名 wang 已存在" in r.text
    r = post(client, "/console/admin/users", **{**form, "seat": "10 02"})
    assert r.status_code == 422 and "坐席号" in r.text
    r = post(client, "/console/admin/users", **form)
    assert r.status_code == 302
    assert "已新增用户 zhao" in client.get("/console/admin/users").text
    added = user(app, "zhao")
    assert (added.role, added.seat, added.display_name) == ("operator", "1002", "赵敏")
    assert logged(app, "user-added", "zhao") == ["root"]
    signed_in(app, "zhao")  # the new user can sign in
    r = post(
        client, "/console/admin/users", username="gas", role="department",
        department="no-such-unit", password=PASSWORD, password2=PASSWORD,
    )
    assert r.status_code == 422 and "没有该单位" in r.text
    r = post(
        client, "/console/admin/users", username="water2", role="department",
        department="water-affairs", seat="1003", password=PASSWORD, password2=PASSWORD,
    )
    assert r.status_code == 302
    clerk = user(app, "water2")
    assert clerk.department_id is not None and clerk.seat is None  # a seat is for operators


def test_a_disabled_user_is_out_at_once_session_token_and_seat(app) -> None:  # type: ignore[no-untyped-def]
    desk = app.extensions["hotline"].desk
    wang = signed_in(app, "wang")
    assert wang.get("/console/").status_code == 200
    with sessions(app)() as db:
        token = issue_token(db, "wang")
    bearer = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/queue", headers=bearer).status_code == 200
    desk.login_seat(Actor("wang", "operator"), "1001", [])
    admin = signed_in(app, "root")
    r = post(admin, "/console/admin/users/wang/active", active="0")
    assert r.status_code == 302
    assert "已停用 wang" in admin.get("/console/admin/users").text
    refused = wang.get("/console/")
    assert refused.status_code == 302 and "/login" in refused.headers["Location"]
    assert app.test_client().get("/api/queue", headers=bearer).status_code == 401
    assert sign_in(app, "wang")[1] == 401
    assert desk.seat("1001")["state"] == "offline"  # nobody left ringing
    assert logged(app, "user-disabled", "wang") == ["root"]
    assert logged(app, "supervisor-logout", "1001") == ["root"]
    row = re.search(r'<tr data-user="wang".*?</tr>', admin.get("/console/admin/users").text, re.S)
    assert row and "已停用" in row[0] and "启用" in row[0]
    # Enabled again: the same password works; the old token stays revoked.
    assert post(admin, "/console/admin/users/wang/active", active="1").status_code == 302
    assert logged(app, "user-enabled", "wang") == ["root"]
    assert app.test_client().get("/api/queue", headers=bearer).status_code == 401
    signed_in(app, "wang")


def test_no_admin_disables_themselves_nor_the_last_admin(app) -> None:  # type: ignore[no-untyped-def]
    root = signed_in(app, "root")
    r = post(root, "/console/admin/users/root/active", active="0")
    assert r.status_code == 422 and "root 是最后一个在用的管理员，不能停用" in r.text
    assert user(app, "root").active
    with sessions(app)() as db:
        add_user(db, "zhou", "admin", PASSWORD, display_name="周管理")
    r = post(root, "/console/admin/users/root/active", active="0")
    assert r.status_code == 422 and "不能停用自己的账号" in r.text
    assert post(root, "/console/admin/users/zhou/active", active="0").status_code == 302
    assert not user(app, "zhou").active
    assert logged(app, "user-disabled", "root") == []
    r = post(root, "/console/admin/users/nobody/active", active="0")
    assert r.status_code == 422 and "找不到用户 nobody" in r.text


def test_a_reset_password_replaces_the_old_one(app) -> None:  # type: ignore[no-untyped-def]
    admin = signed_in(app, "root")
    r = post(
        admin, "/console/admin/users/wang/password", password="too short", password2="too short"
    )
    assert r.status_code == 422 and "密码至少 10 位" in r.text
    r = post(
        admin, "/console/admin/users/wang/password", password=NEW_PASSWORD, password2=PASSWORD
    )
    assert r.status_code == 422 and "两次输入的密码不一致" in r.text
    r = post(
        admin, "/console/admin/users/wang/password", password=NEW_PASSWORD, password2=NEW_PASSWORD
    )
    assert r.status_code == 302
    assert "请当面或电话告知本人" in admin.get("/console/admin/users").text
    assert sign_in(app, "wang", PASSWORD)[1] == 401
    signed_in(app, "wang", NEW_PASSWORD)
    assert logged(app, "password-reset", "wang") == ["root"]


def test_revoking_a_token_stops_it(app) -> None:  # type: ignore[no-untyped-def]
    with sessions(app)() as db:
        token = issue_token(db, "wang")
    bearer = {"Authorization": f"Bearer {token}"}
    admin = signed_in(app, "root")
    assert "吊销令牌" in admin.get("/console/admin/users").text
    assert post(admin, "/console/admin/users/wang/revoke").status_code == 302
    assert "已吊销 wang 的接口令牌" in admin.get("/console/admin/users").text
    assert app.test_client().get("/api/queue", headers=bearer).status_code == 401
    assert logged(app, "token-revoked", "wang") == ["root"]
    assert post(admin, "/console/admin/users/wang/revoke").status_code == 302
    assert "wang 没有接口令牌" in admin.get("/console/admin/users").text
    assert logged(app, "token-revoked", "wang") == ["root"]  # nothing to record twice
    assert user(app, "wang").active  # the user can still sign in


# -- seats ----------------------------------------------------------------------------


def test_the_seats_page_shows_owners_and_forces_a_logout(app) -> None:  # type: ignore[no-untyped-def]
    desk = app.extensions["hotline"].desk
    desk.login_seat(Actor("li", "supervisor"), "2001", [])
    admin = signed_in(app, "root")
    page = admin.get("/console/admin/seats").text
    seat = re.search(r'<tr data-seat="2001".*?</tr>', page, re.S)
    assert seat and "李班长" in seat[0] and "空闲" in seat[0] and "强制签出" in seat[0]
    assert 'data-confirm="确定将坐席 2001 强制签出吗？"' in seat[0]
    usual = re.search(r'<tr data-seat="1001".*?</tr>', page, re.S)
    assert usual and "王芳" in usual[0] and "未签入" in usual[0] and "强制签出" not in usual[0]
    r = post(admin, "/console/admin/seats/2001/logout")
    assert r.status_code == 302
    assert desk.seat("2001")["state"] == "offline"
    assert "坐席 2001 已强制签出" in admin.get("/console/admin/seats").text
    assert logged(app, "supervisor-logout", "2001") == ["root"]
    r = post(admin, "/console/admin/seats/2001/logout")
    assert r.status_code == 409 and "坐席未签入" in r.text


# -- units ----------------------------------------------------------------------------


def test_an_admin_adds_and_renames_a_unit(app) -> None:  # type: ignore[no-untyped-def]
    console = signed_in(app, "wang")
    assert "市政务服务和数据管理局" not in console.get("/console/suggest").text  # cached now
    admin = signed_in(app, "root")
    page = admin.get("/console/admin/units").text
    assert "市直部门" in page and "区人民政府" in page and "water-affairs" in page
    r = post(admin, "/console/admin/units", code="Bad Code", name="某局", kind="department")
    assert r.status_code == 422 and "单位代码为小写字母和数字" in r.text
    r = post(admin, "/console/admin/units", code="water-affairs", name="某局", kind="department")
    assert r.status_code == 422 and "单位代码 water-affairs 已存在" in r.text
    r = post(admin, "/console/admin/units", code="xiuying-gov", name="秀英", kind="district",
             district="xiuying")
    assert r.status_code == 422 and "该区已有区人民政府" in r.text
    r = post(admin, "/console/admin/units", code="data-bureau", name="市大数据管理局",
             kind="department")
    assert r.status_code == 302
    assert "已新增单位 市大数据管理局" in admin.get("/console/admin/units").text
    assert logged(app, "unit-added", "data-bureau") == ["root"]
    r = post(admin, "/console/admin/units/data-bureau/rename", name="  ")
    assert r.status_code == 422 and "请填写单位名称" in r.text
    r = post(admin, "/console/admin/units/data-bureau/rename", name="市政务服务和数据管理局")
    assert r.status_code == 302
    with sessions(app)() as db:
        unit = db.scalar(select(Department).where(Department.code == "data-bureau"))
        assert unit is not None and unit.name == "市政务服务和数据管理局"
        assert unit.kind == "department"
    assert logged(app, "unit-renamed", "data-bureau") == ["root"]
    # The case form's unit list knows the new name now, not in a minute.
    assert "市政务服务和数据管理局" in console.get("/console/suggest").text


# -- the opt-out register -------------------------------------------------------------


def test_the_opt_out_register_takes_any_form_of_a_number(app) -> None:  # type: ignore[no-untyped-def]
    admin = signed_in(app, "root")
    assert "登记为空" in admin.get("/console/admin/optout").text
    r = post(admin, "/console/admin/optout", phone="12345", note="")
    assert r.status_code == 422 and "不是有效的市民电话号码" in r.text
    r = post(admin, "/console/admin/optout", phone="138 0013 8501", note="本人来电要求不再回访")
    assert r.status_code == 302
    page = admin.get("/console/admin/optout").text
    assert "已登记 138****8501" in page and "本人来电要求不再回访" in page and "张管理" in page
    assert "+8613800138501" not in page.replace('value="+8613800138501"', "")  # masked on screen
    with sessions(app)() as db:
        assert list(db.scalars(select(OptOut.phone))) == ["+8613800138501"]
    assert logged(app, "optout-added", "+8613800138501") == ["root"]
    r = post(admin, "/console/admin/optout", phone="008613800138501")
    assert r.status_code == 302
    assert "138****8501 已在登记中" in admin.get("/console/admin/optout").text
    assert 'data-confirm="确定将 138****8501 移出谢绝回访登记吗' in admin.get(
        "/console/admin/optout"
    ).text
    r = post(admin, "/console/admin/optout/remove", phone="+8613800138501")
    assert r.status_code == 302
    assert "已移除 138****8501" in admin.get("/console/admin/optout").text
    with sessions(app)() as db:
        assert list(db.scalars(select(OptOut.phone))) == []
    assert logged(app, "optout-removed", "+8613800138501") == ["root"]
    r = post(admin, "/console/admin/optout/remove", phone="13800138501")
    assert r.status_code == 404 and "138****8501 不在登记中" in r.text


# -- the record functions, on SQLite and PostgreSQL -----------------------------------


def test_the_user_record_functions(session) -> None:  # type: ignore[no-untyped-def]
    from cases.seed import seed

    seed(session)
    add_user(session, "root", "admin", PASSWORD)
    add_user(session, "wang", "operator", PASSWORD, by="root")
    with pytest.raises(UserError) as refused:
        set_active(session, "root", False, by="cli")
    assert refused.value.code == "last-admin"
    set_active(session, "wang", False, by="root")
    assert authenticate(session, "wang", PASSWORD) is None
    set_active(session, "wang", True, by="root")
    token = issue_token(session, "wang")
    assert user_for_token(session, token) is not None
    assert revoke_tokens(session, "wang") is True
    assert user_for_token(session, token) is None
    assert revoke_tokens(session, "wang") is False
    with pytest.raises(UserError) as short:
        set_password(session, "wang", "short")
    assert short.value.code == "password-short"
    set_password(session, "wang", NEW_PASSWORD)
    assert authenticate(session, "wang", PASSWORD) is None
    assert authenticate(session, "wang", NEW_PASSWORD) is not None
    actors = session.execute(
        select(ActionLog.actor, ActionLog.target).where(ActionLog.action == "user-added")
    ).all()
    assert sorted(actors) == [("root", "wang"), ("system", "root")]


# -- what it looks like ---------------------------------------------------------------


def test_the_users_page_in_chromium(app) -> None:  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from werkzeug.serving import make_server

    from tests.browser import launch, screenshot

    with sessions(app)() as db:
        issue_token(db, "wang")
        set_active(db, "li", False, by="root")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    site = f"http://127.0.0.1:{server.server_port}"
    try:
        with sync_api.sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 800})
            page.goto(site + "/login")
            page.fill("input[name=username]", "root")
            page.fill("input[name=password]", PASSWORD)
            page.click("main button[type=submit]")
            page.click("header a[href='/console/admin/']")
            sync_api.expect(page.locator("tr[data-user='wang']")).to_contain_text("话务员")
            asked: list[str] = []

            def dismiss(dialog) -> None:  # type: ignore[no-untyped-def]
                asked.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", dismiss)
            page.click("tr[data-user='wang'] button:has-text('停用')")
            assert asked and asked[0].startswith("确定停用 王芳 吗")
            assert user(app, "wang").active  # cancelled: nothing was sent
            screenshot(page, "admin-users")
            browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)


# -- as an admin uses it (the persona review) --------------------------------------------

RULES = (
    "密码要求：至少 10 位；包含大写字母、小写字母、数字、符号中的至少两类；"
    "不能包含用户名；不能是常见密码或连续、重复的字符"
)


def _reset_panel(html: str, username: str) -> str:
    row = html.split(f'<tr data-user="{username}"', 1)[1].split("</tr>", 1)[0]
    return row.split('<details class="reset"', 1)[1].split("</details>", 1)[0]


def _add_form(html: str) -> str:
    return html.split('id="add-user"', 1)[1]


def test_password_rules_are_stated_before_submitting_and_a_refusal_beside_its_field(app) -> None:  # type: ignore[no-untyped-def]
    admin = signed_in(app, "root")
    page = admin.get("/console/admin/users").text
    assert RULES in _add_form(page) and RULES in _reset_panel(page, "wang")
    admin.post("/language", data={"lang": "en", "csrf_token": csrf_of(page)})
    assert "Password rules: at least 10 characters" in admin.get("/console/admin/users").text
    admin.post("/language", data={"lang": "zh", "csrf_token": csrf_of(page)})
    # Adding a user: the refusal sits in the password's label, the typed name is kept.
    weak = "qwerty12345"
    form = {"username": "zhao", "role": "operator", "password": weak, "password2": weak}
    r = post(admin, "/console/admin/users", **form)
    assert r.status_code == 422 and 'id="admin-error"' not in r.text
    beside = re.search(
        r'<input type="password" name="password"[^>]*aria-describedby="add-password-rules"> '
        r'<span class="field-error" role="alert" id="field-error">([^<]+)</span></label>',
        _add_form(r.text),
    )
    assert beside and beside.group(1) == "该密码过于常见，容易被猜中，请换一个"
    assert 'value="zhao"' in _add_form(r.text)
    taken = {**form, "username": "wang", "password": PASSWORD, "password2": PASSWORD}
    r = post(admin, "/console/admin/users", **taken)
    name_taken = r'name="username"[^>]*> <span class="field-error"[^>]*>用户名 wang 已存在'
    assert re.search(name_taken, r.text)
    # A refused reset names whose password, stays open in that user's row only.
    has_name = "wang2026abc"
    r = post(admin, "/console/admin/users/wang/password", password=has_name, password2=has_name)
    assert r.status_code == 422
    panel = _reset_panel(r.text, "wang")
    assert panel.startswith(" open>")
    assert "未能重置 wang 的密码：密码不能包含用户名" in panel
    assert not _reset_panel(r.text, "li").startswith(" open>")
    assert "field-error" not in _add_form(r.text)
