"""The console and the wallboard in a real browser (Playwright on Debian's Chromium),
served by the real web command (gunicorn) over HTTP, with a call arriving through the
real flow and queue and its case job run by a real RQ worker.

Screenshots go to var/test-artifacts/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis

from hotline.config import load_settings
from hotline.redis_server import free_port
from hotline.runtime import call_handler, call_queue
from tests.browser import launch, screenshot
from tests.push_rig import start_push, stop, with_push_port
from tests.real_rig import wait_port

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
CITIZEN = "+8613800138000"


@pytest.fixture
def site(redis_server, redis: Redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.service import CallInfo, CaseDraft, create_case_for_call
    from cases.users import add_user

    redis.flushdb()
    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as db:
        seed(db)
        add_user(db, "wang", "operator", PASSWORD, display_name="王芳", seat="1001")
        add_user(db, "li", "supervisor", PASSWORD, display_name="李班长")
        add_user(db, "water", "department", PASSWORD, department_code="water-affairs")
        add_user(db, "supply", "department", PASSWORD, department_code="water-supply")
        add_user(db, "power", "department", PASSWORD, department_code="power-supply")
        create_case_for_call(
            db,
            CallInfo("earlier-call", CITIZEN, "asterisk", "1003"),
            CaseDraft(description="路灯不亮", category_code="street-lights", dispatch=True),
        )
        db.commit()
    port = free_port()
    env = with_push_port(  # the live streams: the real push process, on its own port
        {
            **os.environ,
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_server.url,
            "HOTLINE_SECRET_KEY": "browser-test",
            "HOTLINE_WEB_PORT": str(port),
            "HOTLINE_WRAPUP_S": "120",
            "PYTHONPATH": str(ROOT),
        }
    )
    log = open(tmp_path / "web.log", "ab")  # noqa: SIM115
    push = start_push(env, log)
    web = subprocess.Popen(
        [sys.executable, "-m", "hotline.cli", "web", "--workers", "1", "--threads", "32"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port)
        settings = load_settings(env)
        queue = call_queue(settings)
        running = {
            "url": f"http://127.0.0.1:{port}",
            "env": env,
            "handler": call_handler(settings, queue),
            "db_url": db_url,
            "web": web,  # a test may restart it
            "push_url": f"http://127.0.0.1:{env['HOTLINE_PUSH_PORT']}",
        }
        yield running
    finally:
        running_web = running["web"] if "running" in locals() else web
        running_web.terminate()
        running_web.wait(timeout=20)
        stop(push)
        log.close()


def sign_in(browser, site, username: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN", viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # confirmations: the person says yes
    page.goto(site["url"] + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    return page


def run_jobs(site) -> None:  # type: ignore[no-untyped-def]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "--burst",
            "--url",
            site["env"]["REDIS_URL"],
            "hotline",
        ],
        cwd=ROOT,
        env=site["env"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_a_call_from_queue_to_case_in_the_console_and_on_the_wallboard(site) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from cases.db import engine_for, session_factory
    from cases.models import Case

    handler = site["handler"]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        operator = sign_in(browser, site, "wang")
        expect(operator.locator("#seat-login")).to_be_visible()
        operator.click("#seat-login button[type=submit]")  # their usual seat, 1001
        expect(operator.locator("#seat .state-name")).to_have_text("空闲")
        # Paused for a meeting, so the next call has to wait.
        operator.select_option("#seat select[name=reason]", "meeting")
        operator.click("#seat form.pause button")
        expect(operator.locator("#seat .reason")).to_have_text("会议")

        supervisor = sign_in(browser, site, "li")
        expect(supervisor.locator("#nobody-waiting")).to_be_visible()
        expect(supervisor.locator("tr.seat-row[data-seat='1001'] .seat-state")).to_have_text("小休")

        # A citizen calls; the flow queues them at once (no key needed).
        call = "asterisk-1764300000.1"
        handler.start(call, "13800138000", "12345", "asterisk", time.time())
        expect(supervisor.locator(".waiting-count")).to_have_text("1")  # no reload
        screenshot(supervisor, "wallboard-waiting")

        operator.click("#seat button.primary")  # ready: the waiting call is offered
        pop = operator.locator("#pop .pop")
        expect(pop.locator(".caller")).to_have_text("138 0013 8000", timeout=5000)  # to read back
        expect(pop.locator(".case-row .status")).to_have_text("已受理")  # their open case
        assert "路灯不亮" in pop.locator(".cases").inner_text()

        # The phone is picked up, they talk, the caller hangs up.
        assert handler.seat_answered(call, "1001", time.time())
        expect(supervisor.locator("tr.seat-row[data-seat='1001'] .seat-state")).to_have_text(
            "通话中"
        )
        expect(supervisor.locator("#nobody-waiting")).to_be_visible()
        # Wang's sign-in is lost mid-call (the cookie gone): signing in again and logging
        # in to 1001 brings the live call and its form back, the seat as it was.
        login_at = handler.queue.seat("1001")["login_at"]
        operator.context.clear_cookies()
        operator.reload()
        operator.fill("input[name=username]", "wang")
        operator.fill("input[name=password]", PASSWORD)
        operator.click("main button[type=submit]")
        operator.click("#seat-login button[type=submit]")
        expect(operator.locator("#seat .state-name")).to_have_text("通话中")
        expect(pop.locator(".caller")).to_have_text("138 0013 8000")
        expect(operator.locator("#case-form")).to_be_visible()
        assert handler.queue.seat("1001")["login_at"] == login_at
        handler.caller_gone(call)
        expect(operator.locator("#seat .countdown-left")).to_be_visible()
        # Time left in words, as every duration on a screen (1分59秒), not 1:59.
        expect(operator.locator("#seat .countdown-left")).to_have_text(re.compile(r"^\d+[分秒]"))
        expect(operator.locator("#seat .timer")).to_have_text(re.compile(r"^ · \d+[分秒]"))
        run_jobs(site)  # the case is made at hang-up, waiting for the form

        # The operator writes the form after the hang-up; a reload keeps the draft.
        form = operator.locator("#case-form")
        form.locator("input[name=category_code]").fill("停水")  # as the operator types it
        form.locator("textarea[name=description]").fill("龙华区金贸街道停水两天，老人家中无水")
        form.locator("input[name=address]").fill("海口市龙华区金贸西路 8 号")
        operator.reload()
        form = operator.locator("#case-form")
        expect(form.locator("textarea[name=description]")).to_have_value(
            "龙华区金贸街道停水两天，老人家中无水"
        )
        form.locator("input[name=category_code]").fill("no-such-category")
        form.locator("button[type=submit]").click()
        expect(operator.locator("#category-error")).to_contain_text("诉求类别")  # beside the box
        form = operator.locator("#case-form")
        form.locator("input[name=category_code]").fill("ts")  # pinyin initials: 停水
        form.locator("button[type=submit]").click()
        expect(operator.locator("#case-filed")).to_contain_text("已提交")
        screenshot(operator, "console-case-filed")

        with session_factory(engine_for(site["db_url"]))() as db:
            case = db.scalar(select(Case).where(Case.call_id == call))
            assert case is not None
            assert case.description == "龙华区金贸街道停水两天，老人家中无水"
            assert case.category.code == "water-outage" and case.status == "dispatched"
            assert any(ev.actor == "wang" for ev in case.events)

        # The supervisor pauses a seat from the wallboard.
        handler.queue.seat_login("1002")
        row = supervisor.locator("tr.seat-row[data-seat='1002']")
        expect(row).to_be_visible()
        row.locator("button", has_text="小休").click()
        expect(row.locator(".seat-reason")).to_have_text("班长置忙")
        assert handler.queue.seat("1002")["reason"] == "supervisor"
        screenshot(supervisor, "wallboard")

        # A department's staff cannot open the console.
        department = sign_in(browser, site, "water")
        response = department.goto(site["url"] + "/console/")
        assert response is not None and response.status == 403
        browser.close()


def test_dispatch_sign_resolve_return_redispatch_and_overdue_in_the_browser(site) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from calls import clocks
    from cases.db import engine_for, session_factory
    from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch

    handler = site["handler"]
    sessions = session_factory(engine_for(site["db_url"]))
    numbers = []
    with sessions() as db:
        for n, category in enumerate(("water-outage", "water-outage", "power-outage")):
            case = create_case_for_call(
                db,
                CallInfo(f"portal-{n}", CITIZEN, "asterisk", "1001"),
                CaseDraft(
                    description=f"第{n}件",
                    category_code=category,
                    district_code="longhua",
                    dispatch=False,
                ),
            )
            dispatch(db, case, "wang")
            numbers.append(case.number)
        db.commit()
    resolved, returned, late = numbers
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        supply = sign_in(browser, site, "supply")
        rows = supply.locator("#inbox .inbox-row")
        expect(rows).to_have_count(2)  # its two cases, not the power company's
        expect(supply.locator(f"tr[data-number='{late}']")).to_have_count(0)
        screenshot(supply, "portal-inbox")
        supply.click(f"text={resolved}")
        supply.click("#sign")
        expect(supply.locator("#case-status")).to_have_text("已签收")
        supply.fill("#resolve-form textarea[name=reply]", "已恢复供水，并回访确认")
        supply.click("#resolve-form button")
        expect(supply.locator(f"tr[data-number='{resolved}']")).to_have_count(0)
        supply.click(f"text={returned}")
        supply.fill("#return-form input[name=reason]", "属排水问题，非供水")
        supply.click("#return-form button")
        response = supply.goto(site["url"] + f"/portal/cases/{late}")
        assert response is not None and response.status == 404

        # The power company's case runs out of time.
        with sessions() as db:
            case = db.scalar(select_case(late))
            clocks.sync_case(handler.redis, handler.queue.keys, case)
        clocks.sweep(
            sessions, handler.redis, handler.queue.keys, datetime.now(UTC) + timedelta(minutes=31)
        )

        supervisor = sign_in(browser, site, "li")
        supervisor.goto(site["url"] + "/console/supervision")
        expect(supervisor.locator(f"#overdue tr[data-number='{late}']")).to_be_visible()
        row = supervisor.locator(f"#returned tr[data-number='{returned}']")
        expect(row).to_contain_text("属排水问题")
        row.locator("select[name=lead]").select_option("water-affairs")
        row.locator("button", has_text="改派").click()
        expect(supervisor.locator(f"#returned tr[data-number='{returned}']")).to_have_count(0)
        screenshot(supervisor, "supervision")

        affairs = sign_in(browser, site, "water")
        expect(affairs.locator(f"tr[data-number='{returned}']")).to_be_visible()
        browser.close()


def select_case(number: str):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from cases.models import Case

    return select(Case).where(Case.number == number)
