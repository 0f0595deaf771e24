"""紧急转办 from the console in a real browser (Playwright on Debian's Chromium), served
by the real web command: the operator writes the note, presses 119, confirms, and the
caller's Twilio call is updated to dial 119 (a local HTTP server stands in for
Twilio's API). Screenshots go to var/test-artifacts/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest

from tests.browser import launch, screenshot
from tests.test_browser import sign_in, site  # noqa: F401
from tests.test_consult import ACCOUNT as CONSULT_ACCOUNT
from tests.test_consult import OPERATOR_LEG
from tests.test_consult import TwilioApi as ConsultApi
from tests.test_transfers import ACCOUNT, TwilioApi, twilio_api  # noqa: F401
from tests.twilio_peer import AUTH_TOKEN, PUBLIC_BASE, http_peer, sid

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


@pytest.fixture
def consult_twilio(monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Twilio configured for the site, its API a stand-in that knows conferences, and a
    number to ring units from."""
    ConsultApi.received = []
    with http_peer(ConsultApi) as url:
        for key, value in {
            "TWILIO_ACCOUNT_SID": CONSULT_ACCOUNT,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PUBLIC_BASE_URL": PUBLIC_BASE,
            "TWILIO_API_BASE_URL": url,
            "TWILIO_CALLER_ID": "+8689812345",
        }.items():
            monkeypatch.setenv(key, value)
        yield


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
    dial = ElementTree.fromstring(form["Twiml"][0]).find("Dial")
    assert dial is not None and dial.text == "119"
    assert "/twilio/emergency-dial" in dial.get("action", "")  # a busy line is tried again
    record = handler.queue.call(call)
    assert record["state"] == "ended" and record["outcome"] == "transferred"
    assert handler.queue.seat("1001")["state"] == "wrap_up"


def test_a_consult_becomes_a_three_way_call_from_the_console(  # type: ignore[no-untyped-def]
    consult_twilio,
    site,  # noqa: F811
) -> None:
    """咨询转接 from the directory, then 三方通话, then 退出三方通话 (confirmed): each
    step's panel in Chinese, and the Twilio requests that move the legs."""
    from cases.db import engine_for, session_factory
    from cases.duty_numbers import set_duty_phone

    engine = engine_for(site["db_url"])
    with session_factory(engine)() as db:
        set_duty_phone(db, "water-affairs", "0898-66661234")
        db.commit()
    engine.dispose()
    handler = site["handler"]
    call = sid(4343)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        operator = sign_in(browser, site, "wang")
        asked: list[str] = []

        def answer(dialog) -> None:  # type: ignore[no-untyped-def]
            asked.append(dialog.message)
            dialog.accept()

        operator.on("dialog", answer)
        operator.click("#seat-login button[type=submit]")
        expect(operator.locator("#seat .state-name")).to_have_text("空闲")
        handler.start(call, "+8613800138001", "+8612345", "twilio", time.time())
        expect(operator.locator("#pop .pop .caller")).to_have_text("138 0013 8001")
        assert handler.seat_answered(call, "1001", time.time())
        controls = operator.locator("#call-controls")
        form = controls.locator("#consult-transfer")
        form.locator("select[name=unit]").select_option("water-affairs")
        form.locator("button[value=start]").click()
        expect(controls.locator("#consulting")).to_contain_text("正在与 市水务局（0898 6666 1234）")
        expect(controls.locator("#emergency-transfer")).to_have_count(0)
        screenshot(operator, "console-consult")
        controls.locator("button[value=threeway]").click()
        expect(controls.locator("#threeway")).to_contain_text("三方通话中：来电人、市水务局和您")
        controls.locator("button[value=leave]").click()
        expect(operator.locator("#xfer-done")).to_contain_text("已转接 市水务局")
        assert asked == ["确定退出吗？来电人将与 市水务局 继续通话。"]
        browser.close()

    paths = [path for path, _ in ConsultApi.received]
    assert paths[0].endswith(f"/Calls/{call}.json")
    assert paths[1].endswith(f"/Conferences/hotline-{call}-consult/Participants.json")
    assert paths[-1].endswith(f"/Calls/{OPERATOR_LEG}.json")
    record = handler.queue.call(call)
    assert record["outcome"] == "transferred" and record["transfer_kind"] == "unit"
