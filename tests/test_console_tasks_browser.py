"""The console's online-request (task) panel in a real browser (Playwright on Debian's
Chromium) against the real web command and push process (the ``site`` fixture):

- between calls the request in hand is worked in the centre; a call that pops takes
  the centre, the requests shrinking to a count above it, a reply being written kept;
- the list's and the detail's clocks say the same (the deadline in Beijing time, the
  time left in 2分30秒 words) and tick;
- the list is redrawn from the seat's live stream, not polled;
- the case form's category box shows the category's name after filing or merging,
  never what was typed to find it ("ts" for 停水);
- the reply being written is saved to the request as the operator types; handed on, it
  opens the next operator's reply box, and the console it left sends no more of it.

Screenshots in var/test-artifacts/ (console-tasks-*.png) at 1366x768, 1920x1080 and
a 390x844 phone."""

from __future__ import annotations

import re
import time
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.browser import launch, screenshot
from tests.test_browser import PASSWORD, site  # noqa: F401  (the site fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

DESK = {"width": 1366, "height": 768}
WIDE = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}


def _sessions(site):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory

    return session_factory(engine_for(site["db_url"]))


def _desk(site):  # type: ignore[no-untyped-def]
    from calls.desk import Desk

    return Desk(site["handler"], _sessions(site))


def _request(site, text: str) -> str:  # type: ignore[no-untyped-def]
    from tests.test_tasks import web_case

    with _sessions(site)() as db:
        return web_case(db, text)


def _operator(browser, site, viewport, online: bool = True, username: str = "wang"):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN", viewport=viewport)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(site["url"] + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    if online:
        page.check("#seat-login input[name=skills][value=online]")
    page.click("#seat-login button[type=submit]")
    expect(page.locator("#seat .state-name")).to_have_text("空闲")
    return page


def _box(page, selector: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box


def _take(page, number: str) -> None:  # type: ignore[no-untyped-def]
    row = page.locator(f".task-row[data-number='{number}']")
    expect(row).to_have_attribute("data-state", "offered", timeout=10_000)
    row.locator("button.task-take").click()
    expect(page.locator("#task")).to_have_attribute("data-state", "held")


def test_the_request_in_hand_is_worked_in_the_centre_and_a_call_takes_it_over(site) -> None:  # type: ignore[no-untyped-def]
    handler, desk = site["handler"], _desk(site)
    number = _request(site, "小区门口出租车拒载，态度恶劣，希望有关部门管一管")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = _operator(browser, site, DESK)
        desk.tasks.submit(number, "web")
        _take(wang, number)
        draft = "您好，已收到您的反映，正在核实。"
        wang.locator("#task-reply-form textarea[name=reply]").fill(draft)

        # Between calls the request is in the centre column, beside the seat's column,
        # its text and reply box on the first screen.
        seat, tasks, pop = _box(wang, "#seat"), _box(wang, "#tasks-card"), _box(wang, "#pop")
        assert tasks["x"] >= seat["x"] + seat["width"]
        assert abs(tasks["x"] - pop["x"]) < 2 and tasks["y"] < pop["y"]
        assert _box(wang, "#task-description")["y"] < DESK["height"]
        assert _box(wang, "#task-reply-form textarea")["y"] < DESK["height"]
        screenshot(wang, "console-tasks-centre-1366")

        # A call pops: it takes the centre; the requests are a count above it.
        call = "CAconsoletasks000000000000000001"
        handler.start(call, "+8613900139001", "12345", "twilio", time.time())
        expect(wang.locator("#pop .caller")).to_contain_text("139", timeout=5000)
        expect(wang.locator("#task-detail")).to_be_hidden()
        expect(wang.locator(".task-row")).to_be_hidden()
        expect(wang.locator("#task-count")).to_be_visible()
        expect(wang.locator("#task-count")).to_have_text("1")
        count, caller = _box(wang, "#task-count"), _box(wang, "#pop .caller")
        assert count["y"] < caller["y"] < DESK["height"]
        assert _box(wang, "#pop")["y"] < 160  # the pop starts at the top of the centre
        screenshot(wang, "console-tasks-call-1366")
        assert handler.seat_answered(call, "1001", time.time())
        expect(wang.locator("#seat .state-name")).to_have_text("通话中")
        expect(wang.locator("#task-detail")).to_be_hidden()

        # The call ends and the operator is ready: the request is back, the reply kept.
        handler.caller_gone(call)
        expect(wang.locator("#seat .state-name")).to_have_text("话后处理")
        wang.click("#seat button.primary")  # 就绪 (the unfiled form: confirmed)
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")
        expect(wang.locator("#task-description")).to_be_visible()
        expect(wang.locator("#task-reply-form textarea[name=reply]")).to_have_value(draft)
        assert _box(wang, "#tasks-card")["y"] < _box(wang, "#pop")["y"]

        # A wide desk and a phone-sized window: the same, with no sideways scrolling.
        for name, viewport in (("1920", WIDE), ("phone", PHONE)):
            page = wang.context.new_page()  # the same operator, signed in
            page.set_viewport_size(viewport)
            page.goto(site["url"] + "/console/")
            page.locator(f".task-row[data-number='{number}'] button.task-open").click()
            expect(page.locator("#task-description")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            screenshot(page, f"console-tasks-centre-{name}")
            page.close()
        browser.close()


def test_the_list_and_the_detail_show_one_ticking_clock_in_beijing_time(site) -> None:  # type: ignore[no-untyped-def]
    from cases.channel_tasks import ChannelTask

    desk = _desk(site)
    number = _request(site, "幸福小区3栋门口一下雨就积水")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = _operator(browser, site, DESK)
        desk.tasks.submit(number, "web")
        _take(wang, number)
        row_clock = wang.locator(f".task-row[data-number='{number}'] .task-clock")
        detail_clock = wang.locator("#task-due .task-clock")
        expect(row_clock).to_be_visible()
        expect(detail_clock).to_be_visible()

        with _sessions(site)() as db:
            submitted = db.scalars(select(ChannelTask)).one().submitted_at
        due = (submitted.replace(tzinfo=UTC) + timedelta(minutes=3)).astimezone(
            ZoneInfo("Asia/Shanghai")
        )
        words = re.compile(r"^(\d{2}:\d{2}:\d{2})前须首次答复，还剩(\d+分)?(\d+秒)?$")
        seen: set[str] = set()
        for _ in range(3):
            # Both read in one go, in the same tick, once no redraw is under way (a row
            # just swapped in shows the server's words until the next tick).
            wang.wait_for_function(
                "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
            )
            texts = wang.evaluate(
                "() => [...document.querySelectorAll('.task-clock')].map(e => e.textContent)"
            )
            assert len(texts) == 2 and texts[0] == texts[1], texts
            matched = words.match(texts[0])
            assert matched, texts[0]
            # The deadline to the second, give or take the second it was stored in.
            at = matched.group(1)
            assert abs(_seconds(at) - _seconds(due.strftime("%H:%M:%S"))) <= 1, (at, due)
            seen.add(texts[0])
            wang.wait_for_timeout(1100)
        assert len(seen) > 1, seen  # it ticks
        screenshot(wang, "console-tasks-clocks")
        browser.close()


def _seconds(hms: str) -> int:
    h, m, s = (int(x) for x in hms.split(":"))
    return h * 3600 + m * 60 + s


def test_a_new_request_appears_from_the_stream_without_polling(site) -> None:  # type: ignore[no-untyped-def]
    desk = _desk(site)
    number = _request(site, "路口红绿灯坏了，车辆乱行")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = _operator(browser, site, DESK)
        expect(wang.locator("#no-tasks")).to_be_visible()
        asked: list[str] = []
        wang.on(
            "request",
            lambda r: (
                asked.append(r.url.split("?")[0].rsplit("/console", 1)[-1])
                if "/console/" in r.url
                else None
            ),
        )
        # The stream open (however long a loaded machine takes), and the redraw that
        # its opening asks for sent and answered.
        expect(wang.locator("body")).to_have_attribute("data-stream", "open", timeout=30_000)
        wang.wait_for_timeout(1500)
        asked.clear()
        # Idle: nothing changes, so nothing is fetched (it was every 3 s).
        wang.wait_for_timeout(7000)
        assert "/tasks" not in asked, asked
        # A request offered to the seat: the stream says so and the list is redrawn,
        # the seat's own panel left alone.
        desk.tasks.submit(number, "web")
        row = wang.locator(f".task-row[data-number='{number}']")
        expect(row).to_have_attribute("data-state", "offered", timeout=10_000)
        assert "/tasks" in asked, asked
        assert "/seat" not in asked, asked
        browser.close()


def test_the_category_box_shows_the_name_after_filing_and_after_merging(site) -> None:  # type: ignore[no-untyped-def]
    from cases.models import Case
    from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch

    with _sessions(site)() as db:
        open_case = create_case_for_call(
            db,
            CallInfo("seeded-open", "+8613900000001", "asterisk", "1003"),
            CaseDraft(description="路灯不亮", category_code="street-lights", address="海府路10号"),
        )
        dispatch(db, open_case, "1003")
        db.commit()
        open_number = open_case.number
    handler = site["handler"]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = _operator(browser, site, DESK, online=False)
        # Pinyin initials, as operators type them: 停水 filed, 路灯不亮 merged (停水 is
        # urgent: never merged).
        steps = (("ts", "停水", False), ("ldbl", "路灯不亮", True))
        for n, (typed, name, merge) in enumerate(steps):
            call = f"asterisk-1764300000.{n + 1}"
            handler.start(call, f"1370013700{n}", "12345", "asterisk", time.time())
            pop = wang.locator(f"#pop .pop[data-call='{call}']")
            expect(pop.locator(".caller")).to_contain_text("137", timeout=5000)
            assert handler.seat_answered(call, "1001", time.time())
            form = wang.locator("#case-form")
            form.locator("input[name=category_code]").fill(typed)
            form.locator("input[name=category_code]").dispatch_event("change")
            form.locator("textarea[name=description]").fill(f"海府路{name}")
            form.locator("input[name=address]").fill("海口市美兰区海府路 10 号附近")
            if merge:
                suggestion = wang.locator(
                    f"#duplicates-list .duplicate[data-number='{open_number}'] button.merge-into"
                )
                expect(suggestion).to_be_visible(timeout=5000)
                suggestion.click()
                expect(wang.locator("#case-filed")).to_contain_text(f"并入工单 {open_number}")
            else:
                form.locator("button[type=submit]").click()
                expect(wang.locator("#case-filed")).to_contain_text("已提交")
            expect(wang.locator("#case-form input[name=category_code]")).to_have_value(name)
            screenshot(wang, f"console-tasks-category-{'merged' if merge else 'filed'}")
            handler.caller_gone(call)
            expect(wang.locator("#seat .state-name")).to_have_text("话后处理")
            wang.click("#seat button.primary")  # 就绪
            expect(wang.locator("#seat .state-name")).to_have_text("空闲")
        browser.close()

    with _sessions(site)() as db:
        filed = db.scalars(select(Case).where(Case.call_id.like("asterisk-1764300000.%"))).all()
        assert sorted(c.category.code for c in filed) == ["street-lights", "water-outage"]


def test_the_reply_being_written_is_saved_and_goes_on_with_a_handed_on_request(site) -> None:  # type: ignore[no-untyped-def]
    from cases.users import add_user

    with _sessions(site)() as db:
        add_user(db, "zhao", "operator", PASSWORD, display_name="赵敏", seat="1002")
        db.commit()
    desk = _desk(site)
    tasks = desk.tasks.queue
    number = _request(site, "楼道灯坏了一个月，晚上回家很不安全")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = _operator(browser, site, DESK)
        desk.tasks.submit(number, "web")
        _take(wang, number)
        drafts: list[int] = []  # the answers to wang's draft saves
        wang.on("response", lambda r: drafts.append(r.status) if r.url.endswith("/draft") else None)
        # She types (no leaving the box, no sending): the console saves it as she goes.
        begun = "您好，您反映的楼道灯问题已记录，"
        box = wang.locator("#task-reply-form textarea[name=reply]")
        with wang.expect_response(lambda r: r.url.endswith("/draft"), timeout=15_000) as saved:
            box.press_sequentially(begun, delay=20)
        assert saved.value.status == 204
        assert tasks.task(number)["draft"] == begun and tasks.task(number)["drafted_by"] == "wang"

        zhao = _operator(browser, site, DESK, username="zhao")
        wang.wait_for_timeout(200)
        assert drafts and all(status == 204 for status in drafts)
        drafts.clear()
        # She writes on, then walks away: her last save was over half the request's time
        # ago (as if 100 s), and the sweep hands it on with what she had saved.
        box.press_sequentially("正在", delay=20)
        then = int(time.time() * 1000) - 100_000
        tasks.redis.hset(tasks.keys.task(number), mapping={"taken_at": then, "drafted_at": then})
        tasks.redis.hset(tasks.keys.seat("1001"), "since", then)
        tasks.tick()
        assert tasks.task(number)["seat"] == "1002"

        # Her console says so, and what she typed since is not sent over zhao's draft.
        expect(wang.locator("#task-handed-on")).to_contain_text(number, timeout=10_000)
        expect(wang.locator("#task-not-here")).to_be_visible()
        screenshot(wang, "console-tasks-handed-on-from")

        # The next operator's reply box starts with it, and says who began it.
        _take(zhao, number)
        expect(zhao.locator("#task-reply-form textarea[name=reply]")).to_have_value(begun)
        expect(zhao.locator("#task-draft-from")).to_contain_text("王芳")
        screenshot(zhao, "console-tasks-handed-on-draft")
        wang.wait_for_timeout(6000)  # past her console's next save
        assert drafts == []  # none sent after the hand-on: not even one refused
        assert tasks.task(number)["draft"] == begun

        zhao_box = zhao.locator("#task-reply-form textarea[name=reply]")
        zhao_box.press_sequentially("已通知物业今日维修。", delay=20)
        zhao.locator("#task-reply-form button[type=submit]").click()
        expect(zhao.locator("#task-reply-sent")).to_be_visible()
        expect(zhao.locator("#task-reply-form textarea[name=reply]")).to_have_value("")
        assert "draft" not in tasks.task(number)
        browser.close()
