"""zh-CN on every screen: durations, Beijing time, role, status and reason names,
masked numbers, the case trail, error pages and confirmations. Pure tests of the
formatting, then the pages over Flask's client against a real redis-server and SQLite."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from cases.lifecycle import STATUSES
from cases.phones import mask_for_screen, mask_phone
from web.formatting import beijing, trail
from web.i18n import (
    PAUSE_REASONS,
    TEXT,
    duration,
    reason_name,
    role_name,
    status_name,
    translate,
)

ROOT = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")


# -- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "zh", "en"),
    [
        (0, "0秒", "0 s"),
        (45, "45秒", "45 s"),
        (45.4, "45秒", "45 s"),
        (260, "4分20秒", "4 min 20 s"),
        (240, "4分", "4 min"),
        (3 * 3600 + 20 * 60 + 5, "3小时20分", "3 h 20 min"),
        (3600, "1小时", "1 h"),
        (2 * 86400 + 3 * 3600 + 49 * 60, "2天3小时", "2 d 3 h"),
        (86400, "1天", "1 d"),
        (timedelta(days=2, hours=3), "2天3小时", "2 d 3 h"),
        (-75, "−1分15秒", "−1 min 15 s"),
        (None, "—", "—"),
    ],
)
def test_durations_read_as_people_say_them(seconds, zh: str, en: str) -> None:  # type: ignore[no-untyped-def]
    assert duration(seconds, "zh") == zh
    assert duration(seconds, "en") == en


# -- Beijing time ----------------------------------------------------------------------


def test_beijing_time_is_utc_plus_eight_all_year_to_the_minute() -> None:
    winter = datetime(2026, 12, 1, 6, 5, 9, 123456)  # naive UTC, as SQLite gives it back
    assert beijing(winter) == "2026-12-01 14:05"
    assert beijing(winter.replace(tzinfo=UTC)) == "2026-12-01 14:05"
    assert beijing(winter, seconds=True) == "2026-12-01 14:05:09"
    # No daylight saving in China: a July evening in UTC is past midnight in Beijing.
    assert beijing(datetime(2026, 7, 1, 16, 30, tzinfo=UTC)) == "2026-07-02 00:30"
    assert beijing(datetime(2026, 7, 1, 18, 30, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-07-02 00:30"
    )
    assert beijing("2026-12-01T06:05:09.123456+00:00") == "2026-12-01 14:05"
    assert beijing(0) == "1970-01-01 08:00"
    assert beijing(None) == "—"
    shown = beijing(winter.replace(tzinfo=UTC), seconds=True)
    assert "+00:00" not in shown and "." not in shown and "T" not in shown


# -- names -----------------------------------------------------------------------------


def test_every_role_and_case_status_has_a_chinese_name() -> None:
    from web.auth import HOME_FOR_ROLE

    expected = {
        "operator": "话务员",
        "supervisor": "班长",
        "department": "承办单位",
        "admin": "管理员",
        "knowledge_editor": "知识库编辑",
        "grid": "网格员",
        "leader": "值班领导",
        "quality": "质检员",
    }
    for role, zh in expected.items():
        assert role_name(role) == zh
        assert role_name(role, "en") != role and role_name(role, "en").isascii()
    assert set(HOME_FOR_ROLE) <= set(expected)
    for status in STATUSES:
        assert CJK.search(status_name(status)), status
        assert status_name(status, "en") != status


def _queue_reasons() -> set[str]:
    """Every literal reason the queue's Lua writes into a seat's state."""
    calls = re.compile(
        r"(?:set_seat_state|make_available|after_call|logout|release_offer)\(\w+, ([^)]*)\)"
    )
    not_reasons = {"paused", "on_call", "offline", "available", "wrap_up", "offered", "forced"}
    found: set[str] = set()
    for script in (ROOT / "queueing" / "lua").glob("*.lua"):
        for args in calls.findall(script.read_text()):
            found |= set(re.findall(r"'([^']+)'", args)) - not_reasons
    return found


def test_every_reason_the_queue_writes_has_a_chinese_label_and_others_read_as_other() -> None:
    reasons = _queue_reasons()
    for must in ("heartbeat lost", "forced logout", "logout", "no answer", "login"):
        assert must in reasons
    other = translate("reason_other")
    spoken = reasons | set(PAUSE_REASONS) | {"supervisor", "ring no answer", "break", "timeout"}
    spoken |= {"no-answer", "busy"}  # the telephony's own reasons for a missed seat
    for reason in spoken:
        name = reason_name(reason)
        assert CJK.search(name) and name != other or reason == "other", reason
        assert reason_name(reason, "en").isascii()
    assert reason_name("a reason nobody wrote") == "其他"
    assert translate("reason_no answer") == "振铃未接"  # the key the wallboard built
    assert reason_name("") == ""


# -- masking ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("+8613800138501", "138****8501"),
        ("13800138501", "138****8501"),
        ("+8689866668888", "0898-****8888"),
        ("+861012345678", "010-****5678"),
        ("+14158675309", "(415) ***-5309"),
        ("12345", "12345"),
        ("", ""),
    ],
)
def test_numbers_on_screens_are_masked_in_their_national_form(stored: str, shown: str) -> None:
    assert mask_for_screen(stored) == shown


def test_logs_keep_their_own_masking() -> None:
    logged = mask_phone("call from +8613800138501")
    assert "13800138501" not in logged and logged.endswith("8501")


# -- the trail -------------------------------------------------------------------------


def _event(action: str, note: str = "", actor: str = "li", at: datetime | None = None):  # type: ignore[no-untyped-def]
    return SimpleNamespace(
        action=action, note=note, actor=actor, at=at or datetime(2026, 12, 1, 6, 5, 9, 123456)
    )


def test_the_trail_reads_in_words_with_unit_names_and_beijing_time() -> None:
    due = datetime(2026, 12, 1, 6, 35, 0, 654321, tzinfo=UTC)
    events = [
        _event("create", actor="1001"),
        _event("dispatched", "to water-supply, assisted by district-longhua", actor="1001"),
        _event(
            "reminder",
            f"[response] 催办: 80% of the response limit used; due {due.isoformat()}",
            "clock",
        ),
        _event("overdue", f"[response] overdue: due {due.isoformat()}", "clock"),
        _event("accepted", "签收 signed for", "water"),
        _event("returned", "退单: 属供电问题", "water"),
        _event("extension_asked", "延期 5 working days: 需协调", "water"),
        _event("form", "updated: category_code, address"),
        _event("closed", "回访无应答 no response", "survey"),
        _event("something_new", "", "system"),
    ]
    units = {"water-supply": "市水务集团", "district-longhua": "龙华区"}
    rows = trail(events, "zh", units, {"li": "李班长", "water": "水务专员"})
    text = " ".join(f"{r.at} {r.actor} {r.what} {r.detail}" for r in rows)
    assert rows[0].at == "2026-12-01 14:05" and rows[0].actor == "坐席 1001"
    assert rows[1].what == "派单" and rows[1].detail == "派往 市水务集团；协办：龙华区"
    assert "截止 2026-12-01 14:35" in rows[2].detail and rows[2].actor == "系统计时"
    assert rows[3].what == "响应时限已超时"
    assert rows[4].actor == "水务专员" and rows[4].detail == ""
    assert rows[5].detail == "属供电问题"
    assert rows[6].detail == "5 个工作日：需协调"
    assert rows[7].detail == "修改了：诉求类别、地址"
    assert rows[8].detail == "回访无应答"
    assert rows[9].what == "其他记录"
    for english in ("water-supply", "dispatched", "+00:00", "working days", "signed for", "due"):
        assert english not in text, english
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", text)
    en = trail(events[1:2], "en", units)
    assert (en[0].what, en[0].detail) == ("Dispatched", "to 市水务集团；assisted by 龙华区")


# -- pages -----------------------------------------------------------------------------


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.users import add_user
    from tests.test_console import PASSWORD, make_app

    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        add_user(db, "urban", "department", PASSWORD, department_code="urban-management")
        add_user(db, "boss", "admin", PASSWORD, display_name="管理员甲")
    return app


def _signed_in(app, username: str):  # type: ignore[no-untyped-def]
    from tests.test_console import sign_in

    client = app.test_client()
    sign_in(client, username)
    return client


def test_a_missing_page_is_in_chinese_and_in_english_when_chosen(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of

    client = app.test_client()
    r = client.get("/no/such/page")
    page = r.get_data(as_text=True)
    assert r.status_code == 404 and "页面不存在" in page and "Not Found" not in page
    assert '<html lang="zh-CN">' in page
    token = csrf_of(client.get("/login").get_data(as_text=True))
    client.post("/language", data={"lang": "en", "csrf_token": token, "next": "/login"})
    english = client.get("/no/such/page").get_data(as_text=True)
    assert "Not found" in english and "页面不存在" not in english
    api = client.get("/api/no/such/route")  # the API keeps its JSON and slugs
    assert api.status_code == 404 and api.json["error"] == "not-found"


def test_a_forbidden_page_is_in_chinese_with_the_role_named(app) -> None:  # type: ignore[no-untyped-def]
    operator = _signed_in(app, "wang")
    r = operator.get("/console/supervision")
    page = r.get_data(as_text=True)
    assert r.status_code == 403 and "无权访问" in page and "Forbidden" not in page
    assert "王芳 · 话务员" in page and "· operator" not in page
    fragment = operator.get("/console/supervision", headers={"HX-Request": "true"})
    assert fragment.status_code == 403 and "<html" not in fragment.get_data(as_text=True)


def test_api_errors_keep_their_slug_with_a_message_in_the_persons_language(app) -> None:  # type: ignore[no-untyped-def]
    from cases.users import issue_token
    from tests.test_console import csrf_of

    operator = _signed_in(app, "wang")
    token = csrf_of(operator.get("/console/").get_data(as_text=True))
    headers = {"X-CSRFToken": token, "Content-Type": "application/json"}
    r = operator.post("/api/seats/1001/login", data="[1]", headers=headers)
    assert r.status_code == 400 and r.json["error"] == "bad-json"
    assert r.json["message"] == "请求格式有误"
    with app.extensions["hotline"].handler.directory.sessions() as db:
        personal = issue_token(db, "wang")
    script = app.test_client().post(
        "/api/seats/1001/login",
        data="[1]",
        headers={"Authorization": f"Bearer {personal}", "Content-Type": "application/json"},
    )
    assert script.json["error"] == "bad-json" and not CJK.search(script.json["message"])
    operator.post("/language", data={"lang": "en", "csrf_token": token, "next": "/console/"})
    english = operator.post("/api/seats/1001/login", data="[1]", headers=headers)
    assert english.json["error"] == "bad-json" and not CJK.search(english.json["message"])


def test_the_trail_on_a_department_case_page_has_no_slug_and_no_utc(app) -> None:  # type: ignore[no-untyped-def]
    from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch
    from tests.test_portal import post

    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo("call-trail", "+8613800138501", "asterisk", "1001"),
            CaseDraft(description="夜市摊贩占道", category_code="street-vending", dispatch=False),
        )
        dispatch(db, case, "1001")
        db.commit()
        number = case.number
    urban = _signed_in(app, "urban")
    assert post(urban, f"/portal/cases/{number}/sign").status_code == 302
    assert post(urban, f"/portal/cases/{number}/note", {"note": "已联系市民"}).status_code == 302
    page = urban.get(f"/portal/cases/{number}").get_data(as_text=True)
    trail_html = page[page.index('id="trail"') :]
    assert "派往 市综合行政执法局（城管）" in trail_html
    assert "签收" in trail_html and "已联系市民" in trail_html and "坐席 1001" in trail_html
    for english in ("urban-management", "dispatched", "accepted", "+00:00", "signed for"):
        assert english not in trail_html, english
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", trail_html)
    assert "138****8501" in page and "+861" not in page


def test_the_wallboard_names_reasons_masks_callers_and_asks_before_logging_out(app) -> None:  # type: ignore[no-untyped-def]
    q = app.extensions["hotline"].queue
    q.seat_login("1003")
    q.enqueue("call-talk", caller="+8613800138501")
    q.answer("call-talk", "1003")
    q.seat_login("1002")
    q.enqueue("call-missed", caller="+8613900139002")  # rings 1002, which does not pick up
    assert q.no_answer("call-missed", "1002").result
    assert q.seat("1002")["reason"] == "no answer"
    page = _signed_in(app, "li").get("/console/wallboard").get_data(as_text=True)
    row = page[page.index('data-seat="1002"') :]
    row = row[: row.index("</tr>")]
    assert "振铃未接" in row and "reason_" not in page
    assert "138****8501" in page and "+86138" not in page
    assert 'hx-confirm="确定将坐席 1002 强制签出吗？"' in page
    assert "confirm.js" in page


def test_a_seat_logged_out_by_the_heartbeat_shows_a_chinese_reason(app) -> None:  # type: ignore[no-untyped-def]
    from flask import render_template

    from web.console.routes import board_view

    q = app.extensions["hotline"].queue
    q.seat_login("1004")
    q.redis.zadd(q.keys.heartbeats, {"1004": 0})  # its last heartbeat, long ago
    counts, _ = q.tick()
    assert counts["seats_lost"] == 1
    seat = q.seat("1004") | {"id": "1004", "in_state_s": 3725, "caller": "", "calls": 0}
    assert seat["reason"] == "heartbeat lost"
    # The board as the wallboard draws it, with the seat as the queue left it.
    with app.test_request_context("/console/wallboard"):
        board = board_view() | {"seats": [seat | {"aht": None}]}
        html = render_template("_board.html", board=board)
    assert "连接中断，系统签出" in html and "1小时2分" in html and "reason_" not in html


def test_catalogue_errors_are_in_chinese(app) -> None:  # type: ignore[no-untyped-def]
    from cases.models import Category
    from tests.test_portal import post

    with app.extensions["hotline"].handler.directory.sessions() as db:
        code = db.scalars(select(Category.code)).first()
    admin = _signed_in(app, "boss")
    r = post(admin, f"/console/catalogue/{code}", {"handling_days": "0"})
    assert r.status_code == 422 and "办理时限须为 1 至 60 个工作日" in r.get_data(as_text=True)
    r = post(admin, f"/console/catalogue/{code}", {"handling_days": "5", "department": "nope"})
    assert r.status_code == 422 and "没有该承办单位" in r.get_data(as_text=True)


def test_destructive_actions_on_the_supervision_desk_ask_first(app) -> None:  # type: ignore[no-untyped-def]
    from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch
    from tests.test_portal import post

    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo("call-return", "+8613800138000", "asterisk", "1001"),
            CaseDraft(description="摊贩", category_code="street-vending", dispatch=False),
        )
        dispatch(db, case, "1001")
        db.commit()
        number = case.number
    urban = _signed_in(app, "urban")
    assert post(urban, f"/portal/cases/{number}/return", {"reason": "非本单位"}).status_code == 302
    desk = _signed_in(app, "li").get("/console/supervision").get_data(as_text=True)
    assert f'data-confirm="确定将工单 {number} 改派给所选单位吗？"' in desk
    assert f'data-confirm="确定维持原派，将工单 {number} 退回原单位吗？"' in desk


def test_confirm_js_asks_on_submit_for_any_data_confirm_form_or_button() -> None:
    script = (ROOT / "web" / "static" / "confirm.js").read_text()
    assert "window.confirm" in script and "data-confirm" in script
    assert "preventDefault" in script
    base = (ROOT / "web" / "templates" / "base.html").read_text()
    assert "confirm.js" in base and "<script>" not in base  # no inline script


def test_every_text_has_both_languages() -> None:
    for key, pair in TEXT.items():
        assert len(pair) == 2 and all(pair), key
