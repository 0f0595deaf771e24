"""The citizens' lookup (查询工单进度), anonymous: the case number and the caller's
phone as a Chinese IME types them, limits that stop walking the sequential numbers
without letting strangers lock a citizen out, budgets per citizen behind a reverse
proxy, and nothing of another citizen's on a merged (并单) request. Flask's client
against a real redis-server and SQLite."""

from __future__ import annotations

import re
from itertools import count

import pytest
from sqlalchemy import select

from cases.dispatch import resolve, sign_for
from cases.models import Case
from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch
from hotline.config import load_settings
from hotline.webapp import create_app
from tests.test_console import PASSWORD, csrf_of, make_app, sign_in
from tests.test_portal import post
from tests.test_portal_browser import portal_site  # noqa: F401  (the fixture)

CITIZEN = "+8613800138000"
_calls = count(1)


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.users import add_user

    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        add_user(db, "urban", "department", PASSWORD, department_code="urban-management")
    return app


def file_case(app, phone: str = CITIZEN, **draft: str) -> str:  # type: ignore[no-untyped-def]
    """A dispatched case, as an operator files it from a call; its number."""
    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo(f"call-lookup-{next(_calls)}", phone, "asterisk", "1001"),
            CaseDraft(
                description=draft.get("description", "夜市摊贩占道"),
                address=draft.get("address", ""),
                caller_name=draft.get("caller_name", ""),
                category_code="street-vending",
                district_code="longhua",
                dispatch=False,
            ),
        )
        dispatch(db, case, "1001")
        db.commit()
        return case.number


class Visitor:
    """One browser at one address (REMOTE_ADDR as the socket peer, or the proxy's)."""

    def __init__(self, app, address: str, forwarded_for: str | None = None) -> None:  # type: ignore[no-untyped-def]
        self.client = app.test_client()
        self.client.environ_base["REMOTE_ADDR"] = address
        self.forwarded_for = forwarded_for
        self.token = csrf_of(self.client.get("/lookup").get_data(as_text=True))

    def look_up(self, number: str, phone: str, forwarded_for: str | None = None):  # type: ignore[no-untyped-def]
        via = forwarded_for or self.forwarded_for
        return self.client.post(
            "/lookup",
            data={"number": number, "phone": phone, "csrf_token": self.token},
            headers={"X-Forwarded-For": via} if via else {},
        )


def full_width(text: str) -> str:
    """As a Chinese IME in full-width mode types it: ０-９, －, ＋."""
    return text.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789-+"})


def page_text(response) -> str:  # type: ignore[no-untyped-def]
    """The page without its CSRF token (a per-request value) nor what was typed into
    the boxes (put back after a miss)."""
    html = re.sub(r'name="csrf_token" value="[^"]*"', "", response.get_data(as_text=True))
    html = re.sub(r'"X-CSRFToken": "[^"]*"', "", html)  # signed with the second
    return re.sub(r'(name="(?:number|phone)"[^>]*) value="[^"]*"', r"\1", html)


def typed_values(response) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """What the page's two boxes hold."""
    html = response.get_data(as_text=True)
    found = [
        re.search(rf'<input name="{name}"[^>]* value="([^"]*)"', html)
        for name in ("number", "phone")
    ]
    return found[0].group(1) if found[0] else "", found[1].group(1) if found[1] else ""


def test_the_case_number_and_phone_are_found_as_a_chinese_ime_types_them(app) -> None:  # type: ignore[no-untyped-def]
    number = file_case(app)
    typed = [
        (full_width(number), full_width("138-0013-8000")),
        (number.replace("-", " "), "＋８６ １３８ ００１３ ８０００"),
        (number.replace("-", "—"), "0086 138 0013 8000"),
        (number.replace("-", ""), "+86-138-0013-8000"),
        ("  " + number + " ", full_width("8000")),  # the last four digits
        (number[6:], "8000"),  # without the leading 12345
    ]
    for i, (case_number, phone) in enumerate(typed):
        found = Visitor(app, f"10.0.1.{i}").look_up(case_number, phone)
        assert found.status_code == 200, (case_number, phone)
        assert f"{number} · 已派单" in found.get_data(as_text=True)


def test_the_last_four_digits_find_the_case_and_a_wrong_phone_reads_as_an_unknown_number(
    app,
) -> None:  # type: ignore[no-untyped-def]
    number = file_case(app)
    unknown = number[:-6] + f"{int(number[-6:]) + 1:06d}"  # the next one of the day
    visitor = Visitor(app, "10.0.2.1")
    assert visitor.look_up(number, "8000").status_code == 200
    wrong_phone = visitor.look_up(number, "13900139000")
    wrong_four = visitor.look_up(number, "9000")
    no_such_case = visitor.look_up(unknown, "13800138000")
    assert wrong_phone.status_code == wrong_four.status_code == no_such_case.status_code == 404
    assert page_text(wrong_phone) == page_text(wrong_four) == page_text(no_such_case)
    assert "未找到对应的工单。请核对工单编号和来电号码" in page_text(wrong_phone)
    assert "夜市" not in page_text(wrong_phone) and number not in page_text(wrong_phone)


def test_strangers_trying_phones_do_not_lock_the_citizen_out(app) -> None:  # type: ignore[no-untyped-def]
    number = file_case(app)
    # 20 wrong tries on the citizen's case number, from 4 addresses.
    tries = [
        Visitor(app, f"10.0.3.{a}").look_up(number, f"{1000 + a * 10 + i}")
        for a in range(4)
        for i in range(5)
    ]
    assert {t.status_code for t in tries} == {404}
    assert Visitor(app, "10.0.3.200").look_up(number, "8000").status_code == 200
    # One stranger's address is stopped on this case after five wrong last-fours.
    stranger = Visitor(app, "10.0.3.0")
    stopped = stranger.look_up(number, "1234")
    assert stopped.status_code == 429 and "完整的来电号码" in stopped.get_data(as_text=True)
    # Strangers from many addresses use up the case's last-four budget for a while...
    for a in range(4, 8):
        for i in range(5):
            Visitor(app, f"10.0.3.{a}").look_up(number, f"{2000 + a * 10 + i}")
    citizen = Visitor(app, "10.0.3.201")
    assert citizen.look_up(number, "8000").status_code == 429
    # ...but the citizen who types the whole number still gets through.
    found = citizen.look_up(number, "138 0013 8000")
    assert found.status_code == 200 and number in found.get_data(as_text=True)


def test_too_many_lookups_from_one_address_are_refused_in_chinese_with_retry_after(app) -> None:  # type: ignore[no-untyped-def]
    number = file_case(app)
    visitor = Visitor(app, "10.0.4.1")
    answers = [visitor.look_up(number, f"139001{i:05d}").status_code for i in range(10)]
    assert set(answers) == {404}
    refused = visitor.look_up(number, "13800138000")  # the right phone, but too many tries
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    html = refused.get_data(as_text=True)
    assert 'lang="zh-CN"' in html and "查询过于频繁，请 1 分钟后再试，或拨打 12345 查询" in html
    assert visitor.client.get("/lookup").status_code == 200  # the form itself is not limited
    assert Visitor(app, "10.0.4.2").look_up(number, "13800138000").status_code == 200


def proxied_app(redis_server, redis, tmp_path, hops: int):  # type: ignore[no-untyped-def]
    """The console tests' app with HOTLINE_TRUSTED_PROXY_HOPS set."""
    make_app(redis_server, redis, tmp_path)  # its database, seeded
    settings = load_settings(
        {
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
            "REDIS_URL": redis_server.url,
            "HOTLINE_SECRET_KEY": "test",
            "HOTLINE_TRUSTED_PROXY_HOPS": str(hops),
        }
    )
    return create_app({"SETTINGS": settings, "REDIS": redis, "TESTING": True})


def test_behind_a_trusted_proxy_each_citizen_has_their_own_budget(
    redis_server, redis, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    app = proxied_app(redis_server, redis, tmp_path, hops=1)
    number = file_case(app)
    proxy = "127.0.0.1"  # every request arrives from the reverse proxy
    first = Visitor(app, proxy, forwarded_for="203.0.113.7")
    answers = [first.look_up(number, f"139001{i:05d}").status_code for i in range(11)]
    assert answers[:10] == [404] * 10 and answers[10] == 429
    second = Visitor(app, proxy, forwarded_for="198.51.100.23")
    assert second.look_up(number, "13800138000").status_code == 200


def test_without_a_trusted_proxy_a_forwarded_for_header_is_ignored(
    redis_server, redis, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    app = proxied_app(redis_server, redis, tmp_path, hops=0)
    number = file_case(app)
    visitor = Visitor(app, "10.0.5.1")
    answers = [
        visitor.look_up(number, f"139001{i:05d}", forwarded_for=f"192.0.2.{i}").status_code
        for i in range(11)
    ]
    assert answers[:10] == [404] * 10 and answers[10] == 429


def test_a_merged_request_shows_its_own_number_and_shared_progress_only(app) -> None:  # type: ignore[no-untyped-def]
    other = file_case(
        app,
        caller_name="张三丰",
        address="龙华区金贸西路8号",
        description="金贸西路夜市摊贩占道，张三丰反映",
    )
    mine = file_case(app, phone="+8613900000003", description="夜市占道又来了")
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    assert post(supervisor, "/console/merge", {"case": mine, "into": other}).status_code == 302
    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == other))
        sign_for(db, case, "urban", case.department_id)
        resolve(
            db, case, "urban", case.department_id, "已电话告知张三丰先生（13800138000），摊贩已清理"
        )
        db.commit()
    page = Visitor(app, "10.0.6.1").look_up(mine, "8613900000003")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"{mine} · 已办结" in html  # its own number, the shared status
    assert "您的诉求已与其他市民反映的同一问题合并办理" in html
    assert "市综合行政执法局" in html  # the unit working on the matter
    steps = re.findall(r"<li>\d{4}-\d\d-\d\d \d\d:\d\d ([^<]+)</li>", html)
    # own 受理 and 派单, the merge in plain words (never the desk's 并单), then shared
    assert steps == ["受理", "派单", "与其他市民反映的同一问题合并办理", "签收", "办结"]
    assert "并单" not in html
    for private in (
        other,
        "张三丰",
        "13800138000",
        "138 0013 8000",
        "138****8000",
        "金贸西路",
        "摊贩已清理",
    ):
        assert private not in html, private
    assert "请致电12345" in html  # the reply exists, and is not shown
    # The other citizen still sees their own case, reply included.
    theirs = Visitor(app, "10.0.6.2").look_up(other, "8000").get_data(as_text=True)
    assert "摊贩已清理" in theirs and mine not in theirs and "合并办理" not in theirs


def test_a_departments_trail_masks_the_merged_citizens_number(app) -> None:  # type: ignore[no-untyped-def]
    open_case = file_case(app)
    repeat = file_case(app, phone="+8613900000003")
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    assert (
        post(supervisor, "/console/merge", {"case": repeat, "into": open_case}).status_code == 302
    )
    urban = app.test_client()
    sign_in(urban, "urban")
    for lang in ("zh", "en"):
        with urban.session_transaction() as chosen:
            chosen["lang"] = lang
        html = urban.get(f"/portal/cases/{open_case}").get_data(as_text=True)
        trail = html[html.index('id="trail"') :]
        assert f"{repeat}（139****0003）" in trail
        assert "13900000003" not in html and "139 0000 0003" not in html
    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == open_case))
        # The trail is kept for the units to read: no full number in it at all.
        assert not [e.note for e in case.events if "13900000003" in e.note]


# -- as citizens use it (the persona review) ---------------------------------------------


def test_a_miss_keeps_what_was_typed_and_says_what_to_check(app) -> None:  # type: ignore[no-untyped-def]
    number = file_case(app)
    visitor = Visitor(app, "10.0.7.1")
    missed = visitor.look_up(number, "139 0013 9000")  # one digit group wrong
    assert missed.status_code == 404
    assert typed_values(missed) == (number, "139 0013 9000")
    html = missed.get_data(as_text=True)
    assert "未找到对应的工单。请核对工单编号和来电号码（完整号码或后四位）后再试。" in html
    # Phones show a digit pad for both boxes, and may fill in the phone.
    assert re.search(r'<input name="number"[^>]* inputmode="tel"', html)
    assert re.search(r'<input name="phone"[^>]* inputmode="tel" autocomplete="tel"', html)
    # The case number typed as digits only, from the digit pad, is found.
    found = visitor.look_up(number.replace("-", ""), "13800138000")
    assert found.status_code == 200 and typed_values(found) == ("", "")


def test_a_refusal_says_how_long_to_wait_and_that_12345_answers(app) -> None:  # type: ignore[no-untyped-def]
    from web.portal.lookup import wait_words

    assert [wait_words(s, "zh") for s in (20, 61, 59 * 60, 3599, 3601, 5400)] == [
        "1 分钟", "1 分钟", "59 分钟", "1 小时", "1 小时", "2 小时",
    ]
    assert [wait_words(s, "en") for s in (61, 600, 3601, 7200)] == [
        "1 minute", "10 minutes", "1 hour", "2 hours",
    ]
    number = file_case(app)
    # Five wrong last-fours from one address: this case is refused there for an hour.
    stranger = Visitor(app, "10.0.8.1")
    for i in range(5):
        assert stranger.look_up(number, f"{1000 + i}").status_code == 404
    refused = stranger.look_up(number, "1234")
    assert refused.status_code == 429 and 3000 < int(refused.headers["Retry-After"]) <= 3601
    assert "请 1 小时后再试" in refused.text and "或拨打 12345 查询" in refused.text
    assert typed_values(refused) == (number, "1234")
    stranger.client.post("/language", data={"lang": "en", "csrf_token": stranger.token})
    refused = stranger.look_up(number, "1234")
    assert "try again in 1 hour" in refused.text and "call 12345" in refused.text
    # Ten lookups a minute from one address: a minute.
    busy = Visitor(app, "10.0.8.2")
    for i in range(10):
        busy.look_up(number, f"139001{i:05d}")
    refused = busy.look_up(number, "13800138000")
    assert refused.status_code == 429 and "请 1 分钟后再试，或拨打 12345 查询" in refused.text
    busy.client.post("/language", data={"lang": "en", "csrf_token": busy.token})
    assert "try again in 1 minute, or call 12345" in busy.look_up(number, "13800138000").text


def test_head_answers_like_get_and_the_site_has_an_icon(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    for path in ("/lookup", "/login"):
        assert client.head(path).status_code == client.get(path).status_code == 200, path
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype in ("image/vnd.microsoft.icon", "image/x-icon")
    assert icon.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert icon.cache_control.max_age and icon.cache_control.max_age >= 24 * 3600
    assert "no-store" not in icon.headers.get("Cache-Control", "")
    assert client.head("/favicon.ico").status_code == 200


def test_staff_sign_in_points_citizens_to_the_lookup(app) -> None:  # type: ignore[no-untyped-def]
    page = app.test_client().get("/login").text
    assert re.search(r'<a href="/lookup" id="citizen-lookup">市民查询工单进度</a>', page)


def test_the_lookup_is_large_print_on_a_phone(portal_site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from tests.browser import CHROMIUM_ARGS, chromium_path, screenshot
    from tests.test_portal_browser import PHONE, dispatched_case

    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    number = dispatched_case(portal_site["sessions"], "call-big-1", "路灯不亮")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        ).new_page()
        page.goto(portal_site["url"] + "/lookup")
        page.fill("input[name=number]", number)
        page.fill("input[name=phone]", "13900139000")
        page.click("main button.primary")
        sync_api.expect(page.locator("#lookup-none")).to_be_visible()
        sizes = page.evaluate(
            """() => {
              const px = (sel, prop) =>
                parseFloat(getComputedStyle(document.querySelector(sel))[prop]);
              return {body: px('#lookup-none', 'fontSize'), hint: px('main .muted', 'fontSize'),
                      heading: px('main h1', 'fontSize'),
                      button: px('main button.primary', 'height'),
                      box: px('input[name=number]', 'height')};
            }"""
        )
        assert sizes["body"] >= 18 and sizes["hint"] >= 18, sizes
        assert sizes["heading"] >= 22 and sizes["button"] >= 48 and sizes["box"] >= 48, sizes
        assert page.input_value("input[name=number]") == number  # kept after the miss
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "lookup-phone-miss")
        browser.close()
