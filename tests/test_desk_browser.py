"""An operator's shift at the desk, in a real browser (Playwright on Debian's Chromium)
against the real web command: two operators contending for one seat, a seat forced out
by a supervisor and the operator told why and logged in again, a caller who hangs up
while the phone rings, and signing out freeing the seat. Screenshots in
var/test-artifacts/."""

from __future__ import annotations

import time

import pytest

from tests.browser import launch, screenshot
from tests.test_browser import PASSWORD, sign_in, site  # noqa: F401  (the site fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect


def add_operator(site, username: str) -> None:  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory
    from cases.users import add_user

    with session_factory(engine_for(site["db_url"]))() as db:
        add_user(db, username, "operator", PASSWORD, display_name="赵敏", seat="1001")
        db.commit()


def test_an_operators_shift_owned_seat_forced_out_and_back_missed_call_sign_out(site) -> None:  # type: ignore[no-untyped-def]
    handler = site["handler"]
    queue = handler.queue
    add_operator(site, "zhao")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = sign_in(browser, site, "wang")
        wang.click("#seat-login button[type=submit]")  # seat 1001
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")
        assert queue.seat("1001")["owner"] == "wang"

        # A second operator cannot take the seat from under her.
        zhao = sign_in(browser, site, "zhao")
        zhao.click("#seat-login button[type=submit]")  # their usual seat is 1001 too
        expect(zhao.locator("#seat-login-error")).to_contain_text("正由 wang 使用")
        screenshot(zhao, "desk-seat-taken")
        assert queue.seat("1001")["owner"] == "wang"

        # The supervisor forces her out (confirming); her console says so by itself.
        li = sign_in(browser, site, "li")
        row = li.locator("tr.seat-row[data-seat='1001']")
        row.locator("button.danger").click()
        expect(row).to_have_count(0)
        expect(wang.locator("#seat-stranded")).to_contain_text(
            "班长 li 已将您的坐席签出", timeout=20_000
        )
        expect(wang.locator("#seat-login input[name=seat]")).to_have_value("1001")
        screenshot(wang, "desk-forced-out")
        wang.click("#seat-login button[type=submit]")
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")

        # A caller hangs up while her phone rings: the pop says so, and no form stays.
        call = "CAdesk0000000000000000000000000001"
        handler.start(call, "+8613900139000", "12345", "twilio", time.time())
        expect(wang.locator("#pop .caller")).to_be_visible(timeout=5000)
        handler.caller_gone(call)
        expect(wang.locator("#call-status")).to_contain_text("未接通", timeout=5000)
        expect(wang.locator("#case-form")).to_have_count(0)
        screenshot(wang, "desk-missed-call")

        # Another operator cannot open her call's pop.
        response = zhao.goto(site["url"] + f"/console/calls/{call}/pop")
        assert response is not None and response.status == 404

        # Signing out frees the seat: no call rings an empty desk.
        wang.click("header form[action$='/logout'] button")
        expect(wang.locator("input[name=username]")).to_be_visible()
        assert queue.seat("1001")["state"] == "offline"
        browser.close()
