"""紧急转办 from the console in a real browser (Playwright on Debian's Chromium), served
by the real web command: the operator writes the note, presses 119, confirms, and the
caller's Twilio call is updated to dial 119 (a local HTTP server stands in for
Twilio's API). Screenshots go to var/test-artifacts/."""

from __future__ import annotations

import time

import pytest

from tests.browser import launch, screenshot
from tests.test_browser import sign_in, site  # noqa: F401
from tests.test_transfers import ACCOUNT, TwilioApi, twilio_api  # noqa: F401
from tests.twilio_peer import AUTH_TOKEN, PUBLIC_BASE, sid

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect


@pytest.fixture
def twilio_env(monkeypatch, twilio_api: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Twilio configured for the web the site fixture starts (it reads the environment)."""
    for key, value in {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "TWILIO_API_BASE_URL": twilio_api,
    }.items():
        monkeypatch.setenv(key, value)


def test_an_emergency_transfer_from_the_console(twilio_env, site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    handler = site["handler"]
    call = sid(119)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        operator = sign_in(browser, site, "wang")
        asked: list[str] = []
        operator.on("dialog", lambda dialog: asked.append(dialog.message))
        operator.click("#seat-login button[type=submit]")  # their usual seat, 1001
        expect(operator.locator("#seat .state-name")).to_have_text("空闲")
        expect(operator.locator("#call-controls")).to_contain_text("当前没有通话")

        handler.start(call, "+8613800138000", "+8612345", "twilio", time.time())
        expect(operator.locator("#pop .pop .caller")).to_have_text("138 0013 8000")
        assert handler.seat_answered(call, "1001", time.time())
        controls = operator.locator("#call-controls")
        expect(controls.locator("button[data-line='119']")).to_have_text("119 火警")

        controls.locator("textarea[name=note]").fill("美兰区海甸岛某小区3栋起火，有老人被困")
        screenshot(operator, "console-call-controls")
        controls.locator("button[data-line='119']").click()  # the confirmation is accepted
        expect(operator.locator("#xfer-done")).to_contain_text("已转接 119")
        assert asked == ["确定将来电人转接到 119（火警）吗？转接后您的通话将结束。"]
        # The case is filed as the emergency transfer: the pop stops offering its form.
        expect(operator.locator("#case-form")).to_have_count(0)
        expect(operator.locator("#case-form-gone").first).to_contain_text("已按紧急转办登记")
        screenshot(operator, "console-emergency-transfer")
        browser.close()

    [(path, form)] = TwilioApi.received
    assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}.json"
    assert "<Dial>119</Dial>" in form["Twiml"][0]
    record = handler.queue.call(call)
    assert record["state"] == "ended" and record["outcome"] == "transferred"
    assert handler.queue.seat("1001")["state"] == "wrap_up"
