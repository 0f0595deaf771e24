"""Sessions in a real browser (Playwright on Debian's Chromium, the real `hotline web`):
a session cookie copied into another browser dies with 退出, and a user an admin
disables is out of the page they have open at once, for good, and told why."""

from __future__ import annotations

import re

import pytest

from tests.browser import launch, screenshot
from tests.test_browser import PASSWORD, sign_in, site  # noqa: F401  (the fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect
SIGN_IN_PAGE = re.compile(r"/login")


def add_admin(site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from cases.db import engine_for, session_factory
    from cases.users import add_user

    with session_factory(engine_for(site["db_url"]))() as db:
        add_user(db, "root", "admin", PASSWORD, display_name="张管理")


def test_a_copied_cookie_is_sent_to_sign_in_once_the_owner_signs_out(site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        operator = sign_in(browser, site, "wang")
        expect(operator.locator("#seat-login")).to_be_visible()
        stolen = browser.new_context(locale="zh-CN")
        stolen.add_cookies(operator.context.cookies())
        thief = stolen.new_page()
        thief.goto(site["url"] + "/console/")
        expect(thief.locator("#seat-login")).to_be_visible()  # the copy works, for now
        operator.get_by_role("button", name="退出").click()
        expect(operator).to_have_url(SIGN_IN_PAGE)
        thief.reload()
        expect(thief).to_have_url(SIGN_IN_PAGE)
        expect(thief.locator("input[name=username]")).to_be_visible()
        browser.close()


def test_a_disabled_users_open_page_goes_to_sign_in(site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    add_admin(site)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        operator = sign_in(browser, site, "wang")
        operator.click("#seat-login button[type=submit]")  # at work, on their usual seat
        expect(operator.locator("#seat .state-name")).to_have_text("空闲")
        other_tab = browser.new_context(locale="zh-CN")  # another window, same session
        other_tab.add_cookies(operator.context.cookies())
        admin = sign_in(browser, site, "root")
        admin.goto(site["url"] + "/console/admin/users")
        admin.locator('tr[data-user="wang"] button', has_text="停用").click()  # confirms
        expect(admin.locator('tr[data-user="wang"]')).to_contain_text("已停用")
        # The console's next request (its live stream or heartbeat) is refused and the
        # page goes to the sign-in form by itself; a reload would too.
        expect(operator).to_have_url(SIGN_IN_PAGE, timeout=30_000)
        # ...which says why, there and on the next visit, in either language.
        ended = operator.locator("#session-ended")
        expect(ended).to_have_text("您的账号已被停用，请联系管理员")
        screenshot(operator, "sessions-signed-out-disabled")
        operator.goto(site["url"] + "/console/")
        expect(operator).to_have_url(SIGN_IN_PAGE)
        expect(ended).to_have_text("您的账号已被停用，请联系管理员")
        operator.get_by_role("button", name="English").click()
        expect(ended).to_have_text("Your account has been disabled; ask an administrator")
        # Enabled again, wang signs in afresh: no window of the old session comes back.
        admin.locator('tr[data-user="wang"] button', has_text="启用").click()
        expect(admin.locator('tr[data-user="wang"]')).not_to_contain_text("已停用")
        page = other_tab.new_page()
        page.goto(site["url"] + "/console/")
        expect(page).to_have_url(SIGN_IN_PAGE)
        browser.close()
