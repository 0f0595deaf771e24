"""An operator between calls takes an online request (a task) in a real browser
(Playwright on Debian's Chromium) against the real web command: a call answered and
ended, 就绪, then a request filed on the web form (``desk.tasks.submit``, channel
"web") offered to her seat; she takes it, reads it, files its category, replies to the
citizen and completes it. Screenshots in var/test-artifacts/."""

from __future__ import annotations

import time

import pytest

from tests.browser import launch, screenshot
from tests.test_browser import sign_in, site  # noqa: F401  (the site fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect


def test_an_operator_between_calls_takes_replies_to_and_completes_a_web_request(site) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from calls.desk import Desk
    from cases.channel_tasks import ChannelTask
    from cases.db import engine_for, session_factory
    from cases.models import Case
    from tests.test_tasks import web_case

    handler = site["handler"]
    sessions = session_factory(engine_for(site["db_url"]))
    desk = Desk(handler, sessions)
    with sessions() as db:
        number = web_case(db, "小区门口出租车拒载，态度恶劣")

    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = sign_in(browser, site, "wang")
        wang.check("#seat-login input[name=skills][value=online]")
        wang.click("#seat-login button[type=submit]")
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")
        expect(wang.locator("#no-tasks")).to_be_visible()

        # A call first: answered, ended, and 就绪 after its wrap-up.
        call = "CAtask0000000000000000000000000001"
        handler.start(call, "+8613900139001", "12345", "twilio", time.time())
        expect(wang.locator("#pop .caller")).to_contain_text("139", timeout=5000)
        assert handler.seat_answered(call, "1001", time.time())
        expect(wang.locator("#seat .state-name")).to_have_text("通话中")
        handler.caller_gone(call)
        expect(wang.locator("#seat .state-name")).to_have_text("话后处理")
        wang.click("#seat button.primary")  # 就绪
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")

        # Between calls: the web request is offered to her seat.
        desk.tasks.submit(number, "web")
        row = wang.locator(f".task-row[data-number='{number}']")
        expect(row).to_have_attribute("data-state", "offered", timeout=10_000)
        screenshot(wang, "tasks-offered")
        row.locator("button.task-take").click()
        expect(wang.locator("#task-description")).to_have_text("小区门口出租车拒载，态度恶劣")
        expect(wang.locator("#task")).to_have_attribute("data-state", "held")
        expect(row).to_have_attribute("data-state", "held")

        form = wang.locator("#task-file-form")
        form.locator("input[name=category_code]").fill("出租车拒载、绕路")
        form.locator("button[type=submit]").click()
        expect(wang.locator("#task-filed")).to_be_visible()

        reply = wang.locator("#task-reply-form")
        reply.locator("textarea[name=reply]").fill(
            "您好，已收到您的反映，已转交通运输部门核查处理。"
        )
        reply.locator("button[type=submit]").click()
        expect(wang.locator("#task-reply-sent")).to_contain_text("已首次答复")
        expect(wang.locator("#task-replied")).to_be_visible()
        screenshot(wang, "tasks-replied")

        wang.click("#task-done")
        expect(wang.locator("#task-completed")).to_contain_text(number)
        expect(wang.locator("#no-tasks")).to_be_visible(timeout=10_000)
        screenshot(wang, "tasks-completed")
        browser.close()

    with sessions() as db:
        task = db.scalars(select(ChannelTask)).one()
        assert task.first_response_by == "wang" and task.completed_by == "wang"
        assert task.first_response_s is not None and task.first_response_s < 180
        case = db.scalar(select(Case).where(Case.number == number))
        assert case is not None and case.status == "dispatched"
        assert case.category is not None and case.category.code == "taxi-complaint"
        assert [e.note for e in case.events if e.action == "reply"] == [
            "您好，已收到您的反映，已转交通运输部门核查处理。"
        ]
