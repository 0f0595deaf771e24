"""A department clerk's morning on a phone (390x844, Playwright on Debian's Chromium),
against the real web command (gunicorn) over HTTP: the inbox updates live when an
urgent case is dispatched (chime, title badge), sign for, resolve, and the refused
actions on the resolved case; the public lookup fits the phone too.

Screenshots go to var/test-artifacts/ (portal-phone-*.png)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis

from hotline.redis_server import free_port
from tests.browser import CHROMIUM_ARGS, chromium_path, screenshot
from tests.push_rig import start_push, stop, with_push_port
from tests.real_rig import wait_port

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
CITIZEN = "+8613800138000"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def portal_site(redis_server, redis: Redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user

    redis.flushdb()
    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    sessions = session_factory(engine_for(db_url))
    with sessions() as db:
        seed(db)
        add_user(db, "urban", "department", PASSWORD, department_code="urban-management")
        db.commit()
    port = free_port()
    env = with_push_port(  # the live inbox: the real push process, on its own port
        {
            **os.environ,
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_server.url,
            "HOTLINE_SECRET_KEY": "browser-test",
            "HOTLINE_WEB_PORT": str(port),
            "PYTHONPATH": str(ROOT),
        }
    )
    log = open(tmp_path / "web.log", "ab")  # noqa: SIM115
    push = start_push(env, log)
    web = subprocess.Popen(
        [sys.executable, "-m", "hotline.cli", "web", "--workers", "1", "--threads", "8"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port)
        yield {"url": f"http://127.0.0.1:{port}", "sessions": sessions}
    finally:
        web.terminate()
        web.wait(timeout=20)
        stop(push)
        log.close()


def dispatched_case(sessions, call_id: str, description: str, urgency: str = "normal") -> str:  # type: ignore[no-untyped-def]
    from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch

    with sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo(call_id, CITIZEN, "asterisk", "1001"),
            CaseDraft(
                description=description,
                category_code="street-vending",
                district_code="longhua",
                address="海口市龙华区金龙路与玉沙路交叉口东北角人行道",
                urgency=urgency,
                dispatch=False,
            ),
        )
        dispatch(db, case, "1001")
        db.commit()
        return case.number


def fits_the_phone(page) -> None:  # type: ignore[no-untyped-def]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a 390 px phone"


def test_a_clerk_works_the_live_inbox_on_a_phone(portal_site) -> None:  # type: ignore[no-untyped-def]
    site, sessions = portal_site["url"], portal_site["sessions"]
    first = dispatched_case(sessions, "call-1", "夜市摊贩占道经营，影响行人通行")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(),
            args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
        )
        context = browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # the 退单/办结 confirmations
        page.goto(site + "/login")
        page.fill("input[name=username]", "urban")
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        expect(page.locator(f"tr[data-number='{first}']")).to_be_visible()
        title = page.title()
        assert not title.startswith("(")
        fits_the_phone(page)

        # An urgent case is dispatched elsewhere (another process): the open inbox shows
        # it without a reload, chimes once and counts it in the title.
        urgent = dispatched_case(sessions, "call-2", "井盖缺失，有人跌落风险", "urgent")
        row = page.locator(f"tr[data-number='{urgent}']")
        expect(row).to_be_visible(timeout=15_000)
        expect(row).to_contain_text("紧急")
        expect(page).to_have_title(re.compile(r"^\(1\) "))
        expect(row.locator(".countdown")).to_have_text(re.compile(r"\d"))
        assert page.locator("#inbox-body").get_attribute("data-chimes") == "1"
        fits_the_phone(page)
        screenshot(page, "portal-phone-inbox")
        page.evaluate("window.dispatchEvent(new Event('focus'))")  # the clerk looks
        expect(page).to_have_title(title)

        # The case page on the phone: one column, big targets, text 16 px or more.
        row.locator("a").first.click()
        expect(page.locator("#sign")).to_be_visible()
        fits_the_phone(page)
        assert page.locator("#sign").bounding_box()["height"] >= 44
        assert page.locator("#on-site").bounding_box()["height"] >= 44
        size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 16
        screenshot(page, "portal-phone-case")
        page.click("#sign")
        expect(page.locator("#case-status")).to_have_text("已签收")
        page.click("#on-site")
        expect(page.locator("#case-status")).to_have_text("处理中")
        assert page.locator("#resolve-form").get_attribute("data-confirm").startswith("确定办结")
        page.fill("#resolve-form textarea[name=reply]", "已设置围挡并更换井盖")
        page.click("#resolve-form button")
        expect(page.locator(f"tr[data-number='{urgent}']")).to_have_count(0)

        # The resolved case is final: no actions offered, and a forged one is refused.
        page.goto(f"{site}/portal/cases/{urgent}")
        expect(page.locator("#case-final")).to_be_visible()
        expect(page.locator("#note-form")).to_have_count(0)
        fits_the_phone(page)
        screenshot(page, "portal-phone-resolved")
        token = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']")
        refused = page.request.post(
            f"{site}/portal/cases/{urgent}/note", form={"note": "补充", "csrf_token": token}
        )
        assert refused.status == 422 and "已办结，不能再添加进展" in refused.text()

        # The citizens' lookup on a phone.
        citizen = browser.new_context(locale="zh-CN", viewport=PHONE, is_mobile=True)
        lookup = citizen.new_page()
        lookup.goto(site + "/lookup")
        lookup.fill("input[name=number]", first)
        lookup.fill("input[name=phone]", "13800138000")
        lookup.click("main button.primary")
        expect(lookup.locator("#lookup-result")).to_be_visible()
        fits_the_phone(lookup)
        screenshot(lookup, "portal-phone-lookup")
        browser.close()
