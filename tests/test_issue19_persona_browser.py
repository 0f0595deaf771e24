"""Issue 19's operator tools tried as the people who use them, in a real browser
(Playwright on Debian's Chromium) against the real web command: an operator on a
1366×768 laptop (knowledge, 119, hold, 暂停录音), a citizen on a phone (/kb/), and a
supervisor playing a recording. Screenshots go to var/test-artifacts/."""

from __future__ import annotations

import time
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.browser import launch, screenshot
from tests.test_browser import PASSWORD, run_jobs, site  # noqa: F401  (the fixture)
from tests.test_transfers import twilio_api  # noqa: F401
from tests.test_transfers_browser import twilio_env  # noqa: F401  (Twilio for the site)
from tests.twilio_peer import sid

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

LAPTOP = {"width": 1366, "height": 768}


def sign_in_on(browser, site, username: str, viewport: dict[str, int]):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN", viewport=viewport)
    page = context.new_page()
    page.goto(site["url"] + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    return page


def add_recording(site, call: str, seconds: int | None = None) -> None:  # type: ignore[no-untyped-def]
    """A recording row for ``call`` (and its file when ``seconds`` is given), as the
    recording callback and the fetch job leave them."""
    from cases.db import engine_for, session_factory
    from cases.models import CallRecording

    file_name = None
    if seconds is not None:
        folder = Path(site["env"]["HOTLINE_VAR_DIR"]) / "recordings"
        folder.mkdir(parents=True, exist_ok=True)
        file_name = f"{call}.wav"
        with wave.open(str(folder / file_name), "wb") as audio:
            audio.setnchannels(1)
            audio.setsampwidth(2)
            audio.setframerate(8000)
            audio.writeframes(b"\0\0" * 8000 * seconds)
    with session_factory(engine_for(site["db_url"]))() as db:
        db.add(
            CallRecording(
                sid=f"RE{call[-30:]}",
                call_id=call,
                provider="twilio",
                file_name=file_name,
                status="done" if seconds else "recording",
                started_at=datetime.now(UTC),
                duration_s=seconds,
            )
        )
        db.commit()


def on_a_call(browser, site, call: str):  # type: ignore[no-untyped-def]
    """王芳 on her laptop, signed in to her seat and talking to a Twilio caller whose
    conversation is being recorded."""
    handler = site["handler"]
    operator = sign_in_on(browser, site, "wang", LAPTOP)
    operator.on("dialog", lambda dialog: dialog.accept())
    operator.click("#seat-login button[type=submit]")
    expect(operator.locator("#seat .state-name")).to_have_text("空闲")
    handler.start(call, "+8613800138000", "+8612345", "twilio", time.time())
    add_recording(site, call)
    expect(operator.locator("#case-form")).to_be_visible(timeout=5000)
    assert handler.seat_answered(call, "1001", time.time())
    expect(operator.locator("#recording-on")).to_be_visible()
    return operator


def test_a_paused_recording_stays_in_view_until_resumed(twilio_env, site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    call = sid(201)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        operator = on_a_call(browser, site, call)
        operator.locator("#recording-pause button[value=pause]").click()
        paused = operator.locator("#recording-paused")
        expect(paused).to_contain_text("恢复录音")  # it says how to resume
        # Back at the pop (where she types what the citizen says), the pause and its
        # resume button are still on screen: the left column's foot is not.
        operator.evaluate("window.scrollTo(0, 0)")
        expect(paused).to_be_in_viewport()
        expect(operator.locator("#recording-pause button[value=resume]")).to_be_in_viewport()
        # ...and it covers none of the emergency buttons, should a fire be reported now.
        for line in ("110", "119", "120", "122"):
            button = operator.locator(f"button[data-line='{line}']")
            assert button.evaluate(
                "b => { const r = b.getBoundingClientRect();"
                " return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === b; }"
            ), f"the {line} button is covered"
        screenshot(operator, "issue19-recording-paused")
        operator.locator("#recording-pause button[value=resume]").click()
        expect(operator.locator("#recording-on")).to_be_visible()

        site["handler"].caller_gone(call)  # no call: no empty recording card
        expect(operator.locator("#xfer-no-call, #call-controls .muted").first).to_be_visible()
        expect(operator.locator("#recording-controls")).to_be_hidden()
        browser.close()


def test_a_citizen_on_a_phone_can_call_12345_without_scrolling_past_the_answers(site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        phone = browser.new_context(
            locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        page = phone.new_page()
        page.goto(site["url"] + "/kb/")
        for words, answer in (("噪音", "夜间建筑施工噪音的投诉"), ("办身份证", "身份证补办和换领")):
            page.fill("input[name=q]", words)
            page.click("main button.primary")
            expect(page.locator("#kb-public-hits")).to_contain_text(answer)
            # Twenty answers run to several screens: the number is on the first one.
            call = page.locator("a[href='tel:12345']").first
            expect(call).to_be_in_viewport()
            expect(call).to_contain_text("拨打 12345")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "issue19-kb-public-phone-call")
        page.locator("#kb-public-hits a", has_text="身份证补办和换领").click()
        body = page.locator("#kb-public-article .kb-body")
        expect(body).to_contain_text("派出所")
        assert float(body.evaluate("b => parseFloat(getComputedStyle(b).fontSize)")) >= 18
        expect(page.locator("a[href='tel:12345']")).to_be_in_viewport()
        browser.close()


def test_a_supervisor_sees_whose_call_a_recording_is_and_its_length(site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from sqlalchemy import select

    from cases.db import engine_for, session_factory
    from cases.models import ActionLog, CallRecord, CallRecording, Case

    add_recording(site, "earlier-call", seconds=133)
    with session_factory(engine_for(site["db_url"]))() as db:
        case = db.scalars(select(Case).where(Case.call_id == "earlier-call")).one()
        db.scalars(select(CallRecording)).one().case_id = case.id
        db.add(
            CallRecord(
                call_id="earlier-call",
                direction="inbound",
                caller="+8613800138000",
                queued_at=datetime.now(UTC),
                outcome="answered",
                seat="1003",
                talk_ms=133_000,
                case_number=case.number,
            )
        )
        number = case.number
        db.commit()
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        supervisor = sign_in_on(browser, site, "li", LAPTOP)
        supervisor.goto(site["url"] + f"/console/cases/{number}")
        recordings = supervisor.locator("#case-recordings")
        expect(recordings).to_contain_text("每次播放都会记录播放人和时间")
        line = recordings.locator("li.recording")
        expect(line.locator(".recording-call")).to_have_text("呼入 · 坐席 1003")
        expect(line).to_contain_text("2分13秒")
        screenshot(supervisor, "issue19-case-recording")
        audio = line.locator("audio").get_attribute("src")
        assert supervisor.request.get(site["url"] + str(audio)).ok  # the player's request
        browser.close()
    with session_factory(engine_for(site["db_url"]))() as db:
        assert db.scalar(select(ActionLog).where(ActionLog.action == "recording-play"))
