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
        expect(zhao.locator("#seat-login-error")).to_contain_text("正由 王芳 使用")  # her name
        screenshot(zhao, "desk-seat-taken")
        assert queue.seat("1001")["owner"] == "wang"

        # The supervisor forces her out (confirming); her console says so by itself.
        li = sign_in(browser, site, "li")
        row = li.locator("tr.seat-row[data-seat='1001']")
        row.locator("button.danger").click()
        expect(row).to_have_count(0)
        expect(wang.locator("#seat-stranded")).to_contain_text(
            "您的坐席已签出：班长 李班长 将其签出", timeout=20_000
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

        # A call she talks on; she asks to pause for a meeting after it. The live panel
        # redraws while she picks, and her choice stays; 就绪 at the end of the wrap-up
        # starts the pause she asked for.
        talk = "CAdesk0000000000000000000000000002"
        handler.start(talk, "+8613900139002", "12345", "twilio", time.time())
        expect(wang.locator("#pop .caller")).to_contain_text("139", timeout=5000)
        assert handler.seat_answered(talk, "1001", time.time())
        expect(wang.locator("#seat .state-name")).to_have_text("通话中")
        wang.select_option("#seat select[name=reason]", "meeting")
        queue.pause_after_call("1001", "")  # a seat event: the panel is redrawn under her
        wang.wait_for_timeout(1500)
        expect(wang.locator("#seat select[name=reason]")).to_have_value("meeting")
        wang.click("#seat form.pause button")
        expect(wang.locator("#seat .notice")).to_contain_text("会议")
        handler.caller_gone(talk)
        expect(wang.locator("#seat .state-name")).to_have_text("话后处理")
        wang.click("#seat button.primary")  # 就绪
        expect(wang.locator("#seat .state-name")).to_have_text("小休")
        expect(wang.locator("#seat .reason")).to_have_text("会议")

        # Another operator cannot open her call's pop.
        response = zhao.goto(site["url"] + f"/console/calls/{call}/pop")
        assert response is not None and response.status == 404

        # Signing out frees the seat: no call rings an empty desk.
        wang.click("header form[action$='/logout'] button")
        expect(wang.locator("input[name=username]")).to_be_visible()
        assert queue.seat("1001")["state"] == "offline"
        browser.close()


def test_a_supervisors_shift_search_supervise_redispatch_and_rankings_after_a_return(site) -> None:  # type: ignore[no-untyped-def]
    """A unit returns a case it should not have had; the supervisor finds the case by
    the citizen's phone, reads it, supervises it (督办), re-dispatches it (改派) to the
    right unit, and the rankings charge the return to the unit that returned it."""
    from sqlalchemy import select

    from cases.db import engine_for, session_factory
    from cases.dispatch import dispatch_to, return_case
    from cases.models import Case, Department
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    sessions = session_factory(engine_for(site["db_url"]))
    with sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo("call-drain", "+8613700137000", "twilio", "1001"),
            CaseDraft(
                description="金盘路下水道堵塞，污水漫到路面",
                address="龙华区金盘路 12 号",
                category_code="water-outage",
                district_code="longhua",
                dispatch=False,
            ),
        )
        dispatch_to(db, case, "wang", "water-supply")
        supply = db.scalar(select(Department).where(Department.code == "water-supply"))
        return_case(db, case, "supply", supply.id, "属排水问题，非供水")
        db.commit()
        number = case.number

    with sync_api.sync_playwright() as p:
        browser = launch(p)
        li = sign_in(browser, site, "li")
        li.goto(site["url"] + "/console/cases?q=137-0013-7000")  # the phone as it was said
        hit = li.locator(f"tr.case-hit[data-number='{number}']")
        expect(hit).to_be_visible()
        expect(hit).to_contain_text("137****7000")
        hit.locator("a").click()
        expect(li.locator("main")).to_contain_text("属排水问题，非供水")  # the return's reason
        li.fill("#supervise-form input[name=note]", "请今日内派至排水单位")
        li.click("#supervise-form button")
        expect(li.locator("main")).to_contain_text("请今日内派至排水单位")
        li.locator("#dispatch-form select[name=lead]").select_option("water-affairs")
        li.click("#dispatch-form button")
        expect(li.locator("main")).to_contain_text("主办单位市水务局")
        screenshot(li, "desk-supervisor-case-page")
        with sessions() as db:
            case = db.scalar(select(Case).where(Case.number == number))
            assert (case.status, case.department.code) == ("dispatched", "water-affairs")
            assert case.supervised_note == "请今日内派至排水单位"

        li.goto(site["url"] + "/console/rankings")
        returned_by = li.locator("#rankings tr[data-code='water-supply'] td").nth(4)
        expect(returned_by).to_have_text("1")  # charged to the unit that returned it
        received_by = li.locator("#rankings tr[data-code='water-affairs'] td").nth(1)
        expect(received_by).to_have_text("1")
        screenshot(li, "desk-rankings-after-a-return")
        browser.close()


def test_consoles_recover_by_themselves_when_the_web_process_restarts(site) -> None:  # type: ignore[no-untyped-def]
    """The web process goes away under an open console and comes back: the operator is
    told at once, the seat stays hers, and the console works again without a click."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys

    from tests.real_rig import wait_port
    from tests.test_browser import ROOT

    queue = site["handler"].queue
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = sign_in(browser, site, "wang")
        wang.click("#seat-login button[type=submit]")
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")

        # No goodbye, as a crash or a redeploy looks to the browser: the workers too,
        # which would otherwise keep serving the console's kept-alive connection.
        workers = subprocess.run(
            ["pgrep", "-P", str(site["web"].pid)], capture_output=True, text=True
        ).stdout.split()
        site["web"].kill()
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(worker), signal.SIGKILL)
        site["web"].wait(timeout=10)
        expect(wang.locator("#connection-lost")).to_be_visible(timeout=20_000)
        screenshot(wang, "desk-connection-lost")

        port = int(site["env"]["HOTLINE_WEB_PORT"])
        with open(os.devnull, "wb") as quiet:
            site["web"] = subprocess.Popen(
                [sys.executable, "-m", "hotline.cli", "web", "--workers", "1", "--threads", "32"],
                cwd=ROOT,
                env=site["env"],
                stdout=quiet,
                stderr=subprocess.STDOUT,
            )
        wait_port(port)
        expect(wang.locator("#connection-lost")).to_be_hidden(timeout=20_000)
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")
        assert queue.seat("1001")["state"] == "available"  # within the heartbeat's grace
        # A call offered now pops on the same page, over the reconnected stream.
        call = "CArestart000000000000000000000000001"
        site["handler"].start(call, "+8613900139001", "12345", "twilio", time.time())
        expect(wang.locator("#pop .caller")).to_be_visible(timeout=10_000)
        browser.close()


def test_a_pop_drawn_before_the_caller_hung_up_still_says_so(site) -> None:  # type: ignore[no-untyped-def]
    """The pop's fragment is drawn while the phone rings, the caller hangs up, and the
    seat's signal reaches the page before the fragment does: the status must not stay
    振铃中 (the signal found no status line to refresh)."""
    handler = site["handler"]
    call = "CAdesk0000000000000000000000000002"
    held: list = []
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = sign_in(browser, site, "wang")
        wang.click("#seat-login button[type=submit]")
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")

        def hold_the_pop(route) -> None:  # type: ignore[no-untyped-def]
            held.append((route, route.fetch()))  # drawn now, while it rings

        wang.route(f"**/console/calls/{call}/pop*", hold_the_pop)
        handler.start(call, "+8613900139000", "12345", "twilio", time.time())
        deadline = time.monotonic() + 20
        while not held and time.monotonic() < deadline:
            wang.wait_for_timeout(50)
        assert held, "the console never asked for the pop"
        handler.caller_gone(call)
        # The seat's signal arrives (the seat panel redraws) before the pop does.
        expect(wang.locator("#seat .state-name")).not_to_have_text("振铃中", timeout=10_000)
        route, response = held[0]
        route.fulfill(response=response)
        expect(wang.locator("#call-status")).to_contain_text("未接通", timeout=10_000)
        screenshot(wang, "desk-pop-after-hang-up")
