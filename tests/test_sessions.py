"""Sign-in hardened (issue 17, findings 1-3): server-side sessions that 退出, disabling
and a password reset end for good, with idle and absolute limits; password rules fit
for 等保 2.0; throttled sign-in that costs one scrypt whoever asks; and a web that
refuses to run several workers without a shared secret key. Over Flask's client against
a real redis-server and SQLite, and the real `hotline web` command."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from cases.models import ActionLog
from cases.users import (
    NOBODY_HASH,
    UserError,
    add_user,
    check_sign_in,
    issue_token,
    set_active,
)
from hotline.redis_server import free_port
from tests.test_admin import post, sign_in, signed_in
from tests.test_console import PASSWORD, make_app
from web.auth.sessions import PREFIX

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    """The console's test app (operator wang, supervisor li, department water) and an
    admin, root."""
    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].desk.sessions() as s:
        add_user(s, "root", "admin", PASSWORD, display_name="张管理")
    return app


def sessions(app):  # type: ignore[no-untyped-def]
    return app.extensions["hotline"].desk.sessions


def logged(app, action: str) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    with sessions(app)() as db:
        rows = db.execute(
            select(ActionLog.actor, ActionLog.target, ActionLog.detail)
            .where(ActionLog.action == action)
            .order_by(ActionLog.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def copied(app, client):  # type: ignore[no-untyped-def]
    """A second browser holding a copy of the first one's session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def signed_out(response) -> bool:  # type: ignore[no-untyped-def]
    return response.status_code == 302 and "/login" in response.headers["Location"]


def session_record_key(client) -> str:  # type: ignore[no-untyped-def]
    """Where the server keeps the client's session (a test moves its clocks)."""
    with client.session_transaction() as cookie:
        sid = cookie["sid"]
    return f"{PREFIX}:{hashlib.sha256(sid.encode()).hexdigest()}"


def move_back(redis, client, field: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    key = session_record_key(client)
    redis.hset(key, field, float(redis.hget(key, field)) - seconds)


# -- finding 1: sessions ---------------------------------------------------------------


def test_a_cookie_copied_before_signing_out_is_dead_afterwards(app) -> None:  # type: ignore[no-untyped-def]
    wang = signed_in(app, "wang")
    thief = copied(app, wang)
    assert thief.get("/console/").status_code == 200  # the copy works while wang is in
    assert post(wang, "/logout").status_code == 302
    assert signed_out(wang.get("/console/"))
    assert signed_out(thief.get("/console/"))
    # An htmx button on the copied page is sent to sign in too, not served.
    r = thief.post("/console/heartbeat", headers={"HX-Request": "true"})
    assert r.status_code in (400, 401)


def test_a_session_ends_after_the_idle_limit_and_a_request_moves_it_on(app, redis) -> None:  # type: ignore[no-untyped-def]
    idle = app.extensions["hotline"].settings.session_idle_s
    assert idle == 2 * 3600  # the default: a quiet spell, not a lunch break
    wang = signed_in(app, "wang")
    move_back(redis, wang, "seen", idle - 60)  # quiet for a while, then a request
    move_back(redis, wang, "started", idle - 60)
    assert wang.get("/console/").status_code == 200
    move_back(redis, wang, "seen", idle - 30)  # the request above started the clock again
    assert wang.get("/console/").status_code == 200
    move_back(redis, wang, "seen", idle + 1)
    assert signed_out(wang.get("/console/"))
    assert logged(app, "session-expired") == [("wang", "", "idle")]


def test_a_session_ends_after_the_absolute_limit_however_busy(app, redis) -> None:  # type: ignore[no-untyped-def]
    absolute = app.extensions["hotline"].settings.session_absolute_s
    assert absolute == 12 * 3600  # a shift
    li = signed_in(app, "li")
    move_back(redis, li, "started", absolute - 60)
    assert li.get("/console/wallboard").status_code == 200
    move_back(redis, li, "started", 61)
    assert signed_out(li.get("/console/wallboard"))
    assert logged(app, "session-expired") == [("li", "", "absolute")]
    signed_in(app, "li")  # signing in again starts a new one


def test_the_limits_are_configured(redis_server, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hotline.config import load_settings

    settings = load_settings(
        {"HOTLINE_SESSION_IDLE_S": "600", "HOTLINE_SESSION_ABSOLUTE_S": "3600"}
    )
    assert (settings.session_idle_s, settings.session_absolute_s) == (600, 3600)


def test_a_disabled_user_is_out_at_once_and_enabling_does_not_revive_old_sessions(app) -> None:  # type: ignore[no-untyped-def]
    wang = signed_in(app, "wang")
    other_tab = signed_in(app, "wang")
    thief = copied(app, wang)
    with sessions(app)() as db:
        token = issue_token(db, "wang")
    bearer = {"Authorization": f"Bearer {token}"}
    admin = signed_in(app, "root")
    assert post(admin, "/console/admin/users/wang/active", active="0").status_code == 302
    assert app.test_client().get("/api/queue", headers=bearer).status_code == 401
    for client in (wang, other_tab, thief):
        assert signed_out(client.get("/console/"))
    assert post(admin, "/console/admin/users/wang/active", active="1").status_code == 302
    for client in (wang, other_tab, thief):
        assert signed_out(client.get("/console/"))  # re-enabled: signs in afresh
    signed_in(app, "wang")


def test_a_disabled_users_session_ends_even_when_disabled_outside_the_screens(app) -> None:  # type: ignore[no-untyped-def]
    wang = signed_in(app, "wang")
    with sessions(app)() as db:
        set_active(db, "wang", False, by="root")
    assert signed_out(wang.get("/console/"))
    with sessions(app)() as db:
        set_active(db, "wang", True, by="root")
    assert signed_out(wang.get("/console/"))  # ended at the refused request, for good


def test_a_password_reset_ends_the_users_other_sessions(app) -> None:  # type: ignore[no-untyped-def]
    wang = signed_in(app, "wang")
    root = signed_in(app, "root")
    root_elsewhere = signed_in(app, "root")
    new = "Hainan sea breeze 7"
    r = post(root, "/console/admin/users/wang/password", password=new, password2=new)
    assert r.status_code == 302
    assert signed_out(wang.get("/console/"))
    # An admin resetting their own password stays signed in where they did it.
    r = post(root, "/console/admin/users/root/password", password=new, password2=new)
    assert r.status_code == 302
    assert root.get("/console/admin/users").status_code == 200
    assert signed_out(root_elsewhere.get("/console/admin/users"))


def ended_notice(client, lang: str = "zh") -> str:  # type: ignore[no-untyped-def]
    """What the sign-in page, where an ended session lands, says about why."""
    from tests.test_console import csrf_of

    page = client.get("/login")
    if lang == "en":
        client.post("/language", data={"lang": "en", "csrf_token": csrf_of(page.text)})
        page = client.get("/login")
    found = re.search(r'<p class="notice" role="status" id="session-ended">([^<]*)</p>', page.text)
    return found.group(1) if found else ""


def test_the_sign_in_page_says_why_a_session_was_ended(app, redis) -> None:  # type: ignore[no-untyped-def]
    settings = app.extensions["hotline"].settings
    wang, li, water = signed_in(app, "wang"), signed_in(app, "li"), signed_in(app, "water")
    root = signed_in(app, "root")
    assert ended_notice(wang) == ""  # a live session: nothing to explain
    # Disabled by an admin: the next page (a plain link) goes to sign in, which says so.
    assert post(root, "/console/admin/users/wang/active", active="0").status_code == 302
    assert signed_out(wang.get("/console/"))
    assert ended_notice(wang) == "您的账号已被停用，请联系管理员"
    assert ended_notice(wang, "en") == "Your account has been disabled; ask an administrator"
    # A password reset; an htmx button on the open console is sent to the same page.
    new = "Hainan sea breeze 7"
    post(root, "/console/admin/users/water/password", password=new, password2=new)
    r = water.get("/portal/rows", headers={"HX-Request": "true"})
    assert r.status_code == 401 and r.headers["HX-Redirect"].startswith("/login")
    assert ended_notice(water) == "密码已被重置，请重新登录"
    # The idle limit, and the absolute limit (its hours from the settings).
    move_back(redis, li, "seen", settings.session_idle_s + 1)
    assert signed_out(li.get("/console/wallboard"))
    assert ended_notice(li) == "长时间未操作，已自动退出，请重新登录"
    li = signed_in(app, "li")
    assert ended_notice(li) == ""  # signing in again clears the note
    move_back(redis, li, "started", settings.session_absolute_s + 1)
    assert signed_out(li.get("/console/wallboard"))
    assert ended_notice(li) == "已达到单次登录时长上限（12 小时），请重新登录"
    # 退出 is the user's own doing: nothing to explain.
    post(root, "/logout")
    assert ended_notice(root) == ""


def test_a_session_ended_while_nobody_looked_still_says_why_the_next_morning(app, redis) -> None:  # type: ignore[no-untyped-def]
    """The record outlives its idle limit (it would vanish with it otherwise)."""
    idle = app.extensions["hotline"].settings.session_idle_s
    wang = signed_in(app, "wang")
    assert redis.ttl(session_record_key(wang)) > idle + 12 * 3600
    move_back(redis, wang, "seen", idle + 14 * 3600)  # went home, back next morning
    assert signed_out(wang.get("/console/"))
    assert ended_notice(wang) == "长时间未操作，已自动退出，请重新登录"
    assert logged(app, "session-expired") == [("wang", "", "idle")]


def test_a_live_stream_stops_when_its_session_is_signed_out(app) -> None:  # type: ignore[no-untyped-def]
    from web.auth import still_active

    wang = signed_in(app, "wang")
    thief = copied(app, wang)
    cookie = wang.get_cookie("session").value
    with app.test_request_context("/console/events", headers={"Cookie": f"session={cookie}"}):
        assert still_active("wang")
        post(thief, "/logout")  # signed out from the copy: the same session
        assert not still_active("wang")


# -- finding 1: password rules ---------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("woaini1314", "password-common"),
        ("Password123!", "password-common"),
        ("admin123456", "password-common"),
        ("5201314520", "password-kinds"),
        ("13800138000", "password-kinds"),  # a phone number
        ("aaaaaaaaa1", "password-pattern"),
        ("abcabcabc!", "password-pattern"),
        ("a1b2c3d4e5", "password-pattern"),
        ("1qaz2wsx3edc", "password-pattern"),
        ("qwerty12345", "password-common"),
        ("zhaoliu-2024", "password-username"),
        ("zhang123456", "password-pattern"),  # a name in pinyin and easy digits
        ("lixiaoming1990", "password-pattern"),  # and a year
        ("zhoujielun19880312", "password-pattern"),  # and a birthday
        ("Wuzhishan2026", "password-pattern"),
    ],
)
def test_weak_passwords_are_refused(app, password: str, code: str) -> None:  # type: ignore[no-untyped-def]
    with sessions(app)() as db, pytest.raises(UserError) as refused:
        add_user(db, "zhaoliu", "operator", password)
    assert refused.value.code == code


def test_the_admin_screen_says_why_a_password_is_refused_and_passphrases_pass(app) -> None:  # type: ignore[no-untyped-def]
    admin = signed_in(app, "root")
    r = post(
        admin, "/console/admin/users/wang/password", password="woaini1314", password2="woaini1314"
    )
    assert r.status_code == 422 and "该密码过于常见" in r.text
    r = post(
        admin, "/console/admin/users/wang/password", password="wang-and-co", password2="wang-and-co"
    )
    assert r.status_code == 422 and "密码不能包含用户名" in r.text
    with sessions(app)() as db:
        for n, password in enumerate(
            (PASSWORD, "a new one, typed twice", "Hainan#Sea-2024", "bench password 12345")
        ):
            add_user(db, f"user{n}", "operator", password)


# -- finding 2: sign-in ------------------------------------------------------------------


def test_wrong_passwords_for_one_user_are_throttled_and_recorded(app) -> None:  # type: ignore[no-untyped-def]
    for _ in range(8):
        assert sign_in(app, "wang")[1] == 302  # right ones are not counted
    for _ in range(5):
        assert sign_in(app, "wang", "not the password")[1] == 401
    assert sign_in(app, "wang")[1] == 429  # the right password, too late
    assert sign_in(app, "wang")[1] == 429
    assert sign_in(app, "li")[1] == 302  # the others are not kept out
    assert logged(app, "sign-in-throttled") == [("wang", "127.0.0.1", "user")]  # once
    assert len(logged(app, "sign-in-failed")) == 5


def test_the_sign_in_page_warns_before_the_throttle_whether_or_not_the_user_exists(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of

    for name in ("wang", "nobody-here"):
        client = app.test_client()
        token = csrf_of(client.get("/login").text)
        form = {"username": name, "password": "not the password", "csrf_token": token}
        said = [client.post("/login", data=form).text for _ in range(5)]
        assert all("用户名或密码不正确" in text for text in said)
        assert not any("再错" in text for text in said[:2])  # two slips say nothing more
        assert "再错 2 次将暂停登录 15 分钟" in said[2]
        assert "再错 1 次将暂停登录 15 分钟" in said[3]
        assert "登录已暂停 15 分钟" in said[4]
        assert client.post("/login", data=form).status_code == 429
    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    client.post("/language", data={"lang": "en", "csrf_token": token})
    form = {"username": "li", "password": "not the password", "csrf_token": token}
    said = [client.post("/login", data=form).text for _ in range(3)]
    assert "2 more wrong tries and sign-in pauses for 15 minutes" in said[2]


def test_a_stranger_elsewhere_cannot_lock_an_operator_out_with_a_few_guesses(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of

    stranger = app.test_client()
    elsewhere = {"REMOTE_ADDR": "10.9.8.7"}
    token = csrf_of(stranger.get("/login", environ_overrides=elsewhere).text)
    guess = {"username": "wang", "password": "not the password", "csrf_token": token}
    answers = [
        stranger.post("/login", data=guess, environ_overrides=elsewhere).status_code
        for _ in range(7)
    ]
    assert answers == [401] * 5 + [429] * 2  # the stranger is stopped
    assert sign_in(app, "wang")[1] == 302  # wang at their own desk is not
    assert logged(app, "sign-in-throttled") == [("wang", "10.9.8.7", "user")]


def test_strangers_on_many_addresses_cannot_keep_an_operator_from_their_desk(app) -> None:  # type: ignore[no-untyped-def]
    """Thirty failures from everywhere hold the account, except at an address the
    operator signed in from before."""
    from tests.test_console import csrf_of

    assert sign_in(app, "wang")[1] == 302  # yesterday, at the desk (127.0.0.1)
    for n in range(7):
        stranger = app.test_client()
        there = {"REMOTE_ADDR": f"10.9.8.{n}"}
        token = csrf_of(stranger.get("/login", environ_overrides=there).text)
        guess = {"username": "wang", "password": "not the password", "csrf_token": token}
        for _ in range(5):
            stranger.post("/login", data=guess, environ_overrides=there)
    assert sign_in(app, "wang")[1] == 302  # at the desk: in
    laptop = app.test_client()
    new_place = {"REMOTE_ADDR": "10.1.1.1"}
    token = csrf_of(laptop.get("/login", environ_overrides=new_place).text)
    form = {"username": "wang", "password": PASSWORD, "csrf_token": token}
    assert laptop.post("/login", data=form, environ_overrides=new_place).status_code == 429


def test_the_throttle_page_is_in_chinese_with_english_a_click_away(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of

    client = app.test_client()
    token = csrf_of(client.get("/login").text)
    form = {"username": "wang", "password": "not the password", "csrf_token": token}
    for _ in range(5):
        assert client.post("/login", data=form).status_code == 401
    r = client.post("/login", data=form)
    assert r.status_code == 429 and "登录失败次数过多，请 15 分钟后再试" in r.text
    assert int(r.headers["Retry-After"]) <= 15 * 60  # a bounded lock-out
    client.post("/language", data={"lang": "en", "csrf_token": token})
    r = client.post("/login", data=form)
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text


def test_failures_from_one_address_are_throttled_across_user_names(app) -> None:  # type: ignore[no-untyped-def]
    for n in range(20):
        assert sign_in(app, f"guess{n}", "not the password")[1] == 401
    assert sign_in(app, "wang")[1] == 429
    assert ("guess19", "127.0.0.1", "address") not in logged(app, "sign-in-throttled")
    assert [row[2] for row in logged(app, "sign-in-throttled")] == ["address"]


def test_signing_in_costs_one_scrypt_whoever_asks(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import hashlib as hashing

    from werkzeug.security import generate_password_hash

    # The stand-in hash for unknown users costs what a real one does.
    assert generate_password_hash("x").split("$")[0] == NOBODY_HASH.split("$")[0]

    real = hashing.scrypt
    calls: list[int] = []

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashing, "scrypt", counted)
    with sessions(app)() as db:
        set_active(db, "li", False, by="root")
        for username, password in (
            ("nobody", PASSWORD),
            ("wang", "not the password"),
            ("wang", PASSWORD),
            ("li", PASSWORD),  # disabled
        ):
            calls.clear()
            check_sign_in(db, username, password)
            assert len(calls) == 1, username
    for username in ("nobody", "wang"):  # the whole sign-in, over HTTP
        calls.clear()
        sign_in(app, username, "not the password")
        assert len(calls) == 1, username


# -- finding 3: the secret key ---------------------------------------------------------


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "HOTLINE_VAR_DIR": str(tmp_path),
        "HOTLINE_WEB_PORT": str(free_port()),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("HOTLINE_SECRET_KEY", None)
    return env


def test_a_multi_process_web_refuses_to_start_without_a_shared_secret_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    web = subprocess.run(
        [sys.executable, "-m", "hotline.cli", "web", "--workers", "2"],
        env=_environment(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert web.returncode != 0
    assert "HOTLINE_SECRET_KEY" in web.stderr and "scripts/run" in web.stderr


def test_scripts_run_makes_the_key_once_and_keeps_it_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = _environment(tmp_path / "var")
    first = subprocess.run(
        ["bash", str(ROOT / "scripts" / "secret-key")], env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 64 and first.stdout.strip() == key
    again = subprocess.run(
        ["bash", str(ROOT / "scripts" / "secret-key")], env=env, capture_output=True, text=True
    )
    assert again.stdout.strip() == key  # the same key on every start
    run = (ROOT / "scripts" / "run").read_text()
    assert "scripts/secret-key" in run and "HOTLINE_SECRET_KEY" in run
