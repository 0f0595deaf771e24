"""A ``next`` from a query or a form sends the browser only to a path on this site: CR
and LF (which no header can hold: a 500 after the action was done), other control
characters, a backslash (``/\\evil.com`` is ``//evil.com`` to a browser) and other
sites go to the page's default instead. On SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.test_console import PASSWORD, csrf_of
from tests.test_edge_input import web_app
from web.redirects import safe_next

REFUSED = [
    "/\r\nX: 1",
    "/a\r\nX: 1",
    "/console/\r\nX: 1",
    "/console/\nSet-Cookie: a=b",
    "/console/\x00",
    "/console/\t/evil.com",
    "/console/\x7f",
    "/\\evil.com",
    "/console/\\..\\\\evil.com",
    "//evil.com",
    "https://evil.com/console/",
    "javascript:alert(1)",
    "",
]


@pytest.mark.parametrize("target", REFUSED)
def test_a_next_that_is_not_a_plain_path_here_is_refused(target: str) -> None:
    assert safe_next(target) is None
    assert safe_next(target, under="/console/") is None


def test_a_path_here_is_kept() -> None:
    assert safe_next("/console/cases?q=%E5%BC%A0&page=2") == "/console/cases?q=%E5%BC%A0&page=2"
    assert safe_next("/console/cases/工单") == "/console/cases/工单"
    assert safe_next("/portal/", under="/console/") is None


@pytest.fixture
def app(empty_db_url: str, redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    return web_app(empty_db_url, redis_server, redis, tmp_path)


def test_sign_in_with_cr_lf_in_next_goes_home(app) -> None:  # type: ignore[no-untyped-def]
    for target in ("/%0d%0aX:1", "/console/%0AX:%201", "/%5Cevil.com", "/%09/evil.com"):
        client = app.test_client()
        token = csrf_of(client.get("/login").get_data(as_text=True))
        r = client.post(
            f"/login?next={target}",
            data={"username": "wang", "password": PASSWORD, "csrf_token": token},
        )
        assert r.status_code == 302, target
        assert r.headers["Location"] == "/console/", target
        assert "X" not in r.headers


def test_language_with_cr_lf_in_next_goes_home(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = csrf_of(client.get("/login").get_data(as_text=True))
    for target in ("/a\r\nX: 1", "/\\evil.com", "/login"):
        r = client.post("/language", data={"lang": "en", "next": target, "csrf_token": token})
        assert r.status_code == 302, target
        expected = "/login" if target == "/login" else "/"
        assert r.headers["Location"] == expected, target


def test_supervising_with_cr_lf_in_next_returns_to_the_desk(app) -> None:  # type: ignore[no-untyped-def]
    from cases.models import Case
    from cases.service import CallInfo, CaseDraft, create_case_for_call
    from tests.test_console import sign_in

    with app.extensions["hotline"].desk.sessions() as db:
        number = create_case_for_call(
            db,
            CallInfo("c-next", "+8613800000009", "asterisk", "1001"),
            CaseDraft(description="积水", category_code="waterlogging", dispatch=True),
        ).number
        db.commit()
    li = app.test_client()
    sign_in(li, "li")
    token = csrf_of(li.get("/console/supervision").get_data(as_text=True))
    for target in ("/console/\r\nX: 1", "/console/\\\\evil.com", f"/console/cases/{number}"):
        r = li.post(
            f"/console/cases/{number}/supervise",
            data={"note": "请今天内回复", "next": target, "csrf_token": token},
        )
        assert r.status_code == 302, target
        expected = target if target.endswith(number) else "/console/supervision"
        assert r.headers["Location"] == expected, target
    with app.extensions["hotline"].desk.sessions() as db:
        assert (
            db.scalar(select(Case.supervised_note).where(Case.number == number)) == "请今天内回复"
        )
