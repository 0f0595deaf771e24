"""The desk's rules over the web's real routes (Flask's client, a real redis-server and
SQLite): seats owned by one person, one seat a person, sign-out freeing every seat,
live streams that stop serving someone who no longer owns the seat, and bad input
answered with a clear 4xx."""

from __future__ import annotations

import queue
import threading
import time

import pytest
from sqlalchemy import select

from calls.desk import Actor, DeskError
from tests.test_browser import site  # noqa: F401  (a real gunicorn, for streams)
from tests.test_console import PASSWORD, csrf_of, make_app, sign_in


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.users import add_user, issue_token

    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].desk.sessions() as db:
        add_user(db, "zhao", "operator", PASSWORD, display_name="赵敏", seat="1002")
        db.commit()
        app.config["ZHAO_TOKEN"] = issue_token(db, "zhao")
        db.commit()
    return app


def signed_in(app, username: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    sign_in(client, username)
    headers = {"X-CSRFToken": csrf_of(client.get("/console/").get_data(as_text=True))}
    return client, headers


def test_one_person_holds_one_seat_and_signing_out_anywhere_frees_it(app) -> None:  # type: ignore[no-untyped-def]
    q = app.extensions["hotline"].queue
    token = {"Authorization": f"Bearer {app.config['ZHAO_TOKEN']}"}
    api = app.test_client()
    for seat in ("1005", "1006", "1007"):
        assert api.post(f"/api/seats/{seat}/login", headers=token, json={}).status_code == 200
    # Each login moved the person: the seats before it are free for others.
    assert [q.seat(s)["state"] for s in ("1005", "1006", "1007")] == [
        "offline",
        "offline",
        "available",
    ]
    # Signing out in a browser that never held the seat still frees it.
    browser, headers = signed_in(app, "zhao")
    browser.post("/logout", headers=headers)
    assert q.seat("1007")["state"] == "offline"


def test_a_seat_taken_over_stops_streaming_to_its_former_owner(site) -> None:  # type: ignore[no-untyped-def]
    """wang's console stream, opened before she signed out elsewhere, must not carry
    the next operator's screen pops (with the caller's number) on that seat."""
    import requests

    from cases.db import engine_for, session_factory
    from cases.users import add_user

    with session_factory(engine_for(site["db_url"]))() as db:
        add_user(db, "zhao", "operator", PASSWORD, seat="1002")
        db.commit()
    url, handler = site["url"], site["handler"]
    wang = requests.Session()
    token = csrf_of(wang.get(url + "/login", timeout=10).text)
    wang.post(url + "/login", data={"csrf_token": token, "username": "wang", "password": PASSWORD})
    token = csrf_of(wang.get(url + "/console/", timeout=10).text)
    r = wang.post(
        url + "/console/seat/login", data={"seat": "1001"}, headers={"X-CSRFToken": token}
    )
    assert r.status_code == 204
    stream = wang.get(site["push_url"] + "/console/events", stream=True, timeout=30)
    chunks: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        try:
            for line in stream.iter_lines(decode_unicode=True):
                chunks.put(line)
        except requests.RequestException:
            pass
        chunks.put(None)  # the stream ended

    threading.Thread(target=read, daemon=True).start()
    assert chunks.get(timeout=10).startswith("retry")
    desk = handler_desk(handler)
    desk.sign_out(Actor("wang", "operator"))  # from another browser
    desk.login_seat(Actor("zhao", "operator"), "1001", ["mandarin"])
    handler.start("c-after", "+8613700137001", "12345", "asterisk", time.time())
    seen = []
    while True:
        line = chunks.get(timeout=25)
        if line is None:
            break
        seen.append(line)
    text = "\n".join(seen)
    assert "13700137001" not in text and "event: pop" not in text
    stream.close()


def handler_desk(handler):  # type: ignore[no-untyped-def]
    from calls.desk import Desk

    return Desk(handler, handler.directory.sessions)


def test_bad_input_is_a_clear_refusal_not_a_server_error(app) -> None:  # type: ignore[no-untyped-def]
    li, headers = signed_in(app, "li")
    for path in (
        "/console/cases?since=0001-01-01",
        "/console/cases?until=9999-12-31",
        "/console/rankings?start=0001-01-01&end=0001-01-01",
        "/console/rankings?start=9999-12-31&end=9999-12-31",
    ):
        assert li.get(path).status_code == 400, path
    huge = "/console/extensions/99999999999999999999999"
    assert li.post(huge, headers=headers).status_code == 404
    water, _ = signed_in(app, "water")
    assert water.get("/portal/?page=99999999999999999999999").status_code == 200
    assert water.get("/portal/rows?page=99999999999999999999999").status_code == 200
    token = {"Authorization": "Bearer shared-admin-token"}
    api = app.test_client()
    for body in (
        '{"description": "\\ud800"}',
        '{"category_code": "\\ud800"}',
        '{"description": "a\\u0000b"}',
        '{"case": {"description": "\\udfff"}}',
    ):
        r = api.post(
            "/api/calls/c-none/case", headers=token, data=body, content_type="application/json"
        )
        assert (r.status_code, r.json["error"]) == (400, "bad-text"), body


def test_a_redispatch_withdraws_the_old_units_extension_request(app) -> None:  # type: ignore[no-untyped-def]
    from cases.dispatch import dispatch_to, request_extension, sign_for
    from cases.models import Department, ExtensionRequest
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    desk = app.extensions["hotline"].desk
    with desk.sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo("c-ext", "+8613800138000", "asterisk", "1001"),
            CaseDraft(description="水管爆裂", category_code="water-outage", dispatch=False),
        )
        dispatch_to(db, case, "li", "water-supply")
        supply = db.scalar(select(Department.id).where(Department.code == "water-supply"))
        sign_for(db, case, "supply", supply)
        request_extension(db, case, "supply", supply, 5, "需更换主管道")
        db.commit()
        number = case.number
    desk.cases.dispatch(Actor("li", "supervisor"), number, "water-affairs")
    with desk.sessions() as db:
        ask = db.scalar(select(ExtensionRequest))
        assert ask.status == "withdrawn"
    with pytest.raises(DeskError):
        desk.cases.decide_extension(Actor("li", "supervisor"), 999_999, True)


def test_a_dispatched_cases_urgency_is_not_the_forms_to_change(app) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["hotline"]
    token = {"Authorization": "Bearer shared-admin-token"}
    api = app.test_client()
    svc.queue.seat_login("1001")
    svc.handler.start("c-urgent", "+8613800138001", "12345", "asterisk", 0.0)
    svc.handler.seat_answered("c-urgent", "1001", 1.0)
    form = {"description": "路灯不亮", "category_code": "street-lights", "district_code": "longhua"}
    assert api.post("/api/calls/c-urgent/case", headers=token, json=form).status_code == 200
    r = api.post("/api/calls/c-urgent/case", headers=token, json={**form, "urgency": "urgent"})
    assert (r.status_code, r.json["field"]) == (422, "urgency")


def test_an_answered_call_without_a_form_waits_to_be_completed(app) -> None:  # type: ignore[no-untyped-def]
    """The blank case an unfiled call leaves is listed for its operator (who can open
    the call's form again) and on the supervisors' desk, not lost."""
    from calls.casework import file_form
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    svc = app.extensions["hotline"]
    wang, headers = signed_in(app, "wang")
    wang.post("/console/seat/login", data={"seat": "1001"}, headers=headers)
    svc.handler.start("c-blank", "+8613800138011", "12345", "asterisk", 0.0)
    svc.handler.seat_answered("c-blank", "1001", 1.0)
    with svc.desk.sessions() as db:
        number = create_case_for_call(
            db, CallInfo("c-blank", "+8613800138011", "asterisk", "1001"), CaseDraft()
        ).number
        db.commit()
    panel = wang.get("/console/my-day").get_data(as_text=True)
    assert "待补录工单" in panel and number in panel and "/console/calls/c-blank/pop" in panel
    li, _ = signed_in(app, "li")
    desk = li.get("/console/supervision").get_data(as_text=True)
    assert 'id="unfiled"' in desk and number in desk
    # Completed from the pop, it leaves both lists.
    file_form(svc.queue, svc.desk.sessions, "c-blank", {"description": "路灯不亮"}, "wang")
    assert number not in wang.get("/console/my-day").get_data(as_text=True)


def test_a_disabled_account_is_told_so_only_with_its_password(app) -> None:  # type: ignore[no-untyped-def]
    from cases.users import set_active

    with app.extensions["hotline"].desk.sessions() as db:
        set_active(db, "zhao", False, by="admin")
        db.commit()
    client = app.test_client()
    right = sign_in(client, "zhao").get_data(as_text=True)
    assert "账号已停用" in right
    wrong = sign_in(app.test_client(), "zhao", "not the password").get_data(as_text=True)
    assert "账号已停用" not in wrong and "用户名或密码不正确" in wrong


def test_a_redispatch_reads_as_such_in_the_trail() -> None:
    from types import SimpleNamespace

    from web.formatting import trail

    def event(action: str, old: str | None, note: str):  # type: ignore[no-untyped-def]
        return SimpleNamespace(at=None, actor="li", action=action, from_status=old, note=note)

    rows = trail(
        [event("dispatched", "received", "to water-supply"), event("dispatched", "returned",
                                                                     "to water-affairs")],
        units={"water-supply": "供水公司", "water-affairs": "水务局"},
    )
    assert [(r.what, r.detail) for r in rows] == [
        ("派单", "派往 供水公司"),
        ("改派", "派往 水务局"),
    ]


def test_the_operators_own_day_follows_them_not_the_seat(app) -> None:  # type: ignore[no-untyped-def]
    """A call 赵敏 took at seat 1001 is hers, not 王芳's when 王芳 sits there later."""
    from calls.reaper import Reaper

    svc = app.extensions["hotline"]
    zhao = Actor("zhao", "operator")
    svc.desk.login_seat(zhao, "1001", ["mandarin"])
    svc.queue.enqueue("c-zhao", caller="+8613800138021")
    svc.queue.answer("c-zhao", "1001")
    svc.queue.complete("c-zhao")
    svc.desk.sign_out(zhao)
    Reaper(svc.handler).record_call_rows()
    wang, headers = signed_in(app, "wang")
    wang.post("/console/seat/login", data={"seat": "1001"}, headers=headers)
    assert '<dd id="my-calls">0</dd>' in wang.get("/console/my-day").get_data(as_text=True)
    zhao_client, headers = signed_in(app, "zhao")
    zhao_client.post("/console/seat/login", data={"seat": "1002"}, headers=headers)
    assert '<dd id="my-calls">1</dd>' in zhao_client.get("/console/my-day").get_data(as_text=True)


def test_a_supervisor_says_why_a_case_moves(app) -> None:  # type: ignore[no-untyped-def]
    from cases.models import Case, CaseEvent
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    desk = app.extensions["hotline"].desk
    with desk.sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo("c-move", "+8613800138031", "asterisk", "1001"),
            CaseDraft(description="井盖缺失", category_code="water-outage", dispatch=True),
        )
        db.commit()
        number = case.number
    li, headers = signed_in(app, "li")
    r = li.post(
        f"/console/cases/{number}/dispatch",
        data={"lead": "water-affairs", "reason": "属排水设施", "next": f"/console/cases/{number}"},
        headers=headers,
    )
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/console/cases/{number}")
    page = li.get(f"/console/cases/{number}").get_data(as_text=True)
    assert "改派原因" in page and "属排水设施" in page
    with desk.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        assert case.department.code == "water-affairs"
        events = db.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))
        actions = [e.action for e in events]
        assert actions[-2:] == ["dispatched", "dispatch_reason"]


def test_a_forced_out_operator_is_told_which_supervisor_by_name(app) -> None:  # type: ignore[no-untyped-def]
    desk = app.extensions["hotline"].desk
    console, headers = signed_in(app, "wang")
    r = console.post("/console/seat/login", data={"seat": "1001"}, headers=headers)
    assert r.status_code < 400
    desk.logout_seat(Actor("li", "supervisor"), "1001")
    with pytest.raises(DeskError) as refused:
        desk.heartbeat(Actor("wang", "operator"), "1001")
    assert refused.value.words() == "您的坐席已签出：班长 李班长 将其签出。"
    assert refused.value.words("en") == "Your seat was logged out: supervisor 李班长 logged it out."
    page = console.get("/console/").get_data(as_text=True)
    assert "您的坐席已签出：班长 李班长 将其签出。" in page and "班长 li " not in page
