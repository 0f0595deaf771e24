"""Issue 21's browser test, end to end on the real processes (gunicorn web, the push
process, the reaper and the dialer running the SMS outbox), with Twilio's Messages API
stood in for by a local HTTP server: a citizen files a request from a phone-sized
viewport (390x844, the texted code read from the stand-in); an operator at 1366x768
who has just finished a call takes it as a task, replies, files and completes it; the
citizen's phone is texted the reply.

Screenshots in var/test-artifacts/ (channels-*.png)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select

from hotline.config import load_settings
from hotline.redis_server import free_port
from hotline.runtime import call_handler, call_queue
from tests.browser import launch, screenshot
from tests.conftest import wait_until
from tests.push_rig import start_push, stop, with_push_port
from tests.real_rig import wait_port
from tests.test_browser import PASSWORD
from tests.test_sms import ACCOUNT, HOTLINE_NUMBER, MessagesApi
from tests.twilio_peer import AUTH_TOKEN, http_peer

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

ROOT = Path(__file__).resolve().parents[1]
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1366, "height": 768}
CITIZEN = "+8613800138000"
REPLY = "您好，已收到您反映的小区门口积水问题，已转水务部门今天前往疏通，请注意出行安全。"


@pytest.fixture
def channels_site(redis_server, redis: Redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user

    redis.flushdb()
    MessagesApi.sent = []
    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    sessions = session_factory(engine_for(db_url))
    with sessions() as db:
        seed(db)
        add_user(db, "wang", "operator", PASSWORD, display_name="王芳", seat="1001")
        db.commit()
    port = free_port()
    log = open(tmp_path / "processes.log", "ab")  # noqa: SIM115
    processes: list[subprocess.Popen[bytes]] = []
    with http_peer(MessagesApi) as api:
        env = with_push_port(
            {
                **os.environ,
                "HOTLINE_VAR_DIR": str(tmp_path),
                "DATABASE_URL": db_url,
                "REDIS_URL": redis_server.url,
                "HOTLINE_SECRET_KEY": "browser-test-" + "x" * 32,
                "HOTLINE_WEB_PORT": str(port),
                "HOTLINE_WRAPUP_S": "120",
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                "TWILIO_ACCOUNT_SID": ACCOUNT,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_API_BASE_URL": api,
                "HOTLINE_SMS_PROVIDER": "twilio",
                "HOTLINE_SMS_FROM": HOTLINE_NUMBER,
                "PYTHONPATH": str(ROOT),
            }
        )
        push = start_push(env, log)
        try:
            for command in (
                ["web", "--workers", "1", "--threads", "16"],
                ["reaper"],  # offers waiting tasks to seats that become free
                ["dialer"],  # sends the SMS outbox (no voice: no caller id set)
            ):
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "hotline.cli", *command],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            wait_port(port)
            settings = load_settings(env)
            yield {
                "url": f"http://127.0.0.1:{port}",
                "sessions": sessions,
                "handler": call_handler(settings, call_queue(settings)),
            }
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=20)
            stop(push)
            log.close()


def texts_to(phone: str) -> list[str]:
    return [m["Body"] for m in MessagesApi.sent if m.get("To") == phone]


def test_a_phone_request_taken_between_calls_is_answered_by_text(channels_site) -> None:  # type: ignore[no-untyped-def]
    from cases.channel_tasks import ChannelTask
    from cases.models import Case

    site, handler = channels_site["url"], channels_site["handler"]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        desk = browser.new_context(locale="zh-CN", viewport=DESK)
        wang = desk.new_page()
        wang.on("dialog", lambda dialog: dialog.accept())  # 就绪 with the call unfiled: yes
        wang.goto(site + "/login")
        wang.fill("input[name=username]", "wang")
        wang.fill("input[name=password]", PASSWORD)
        wang.click("main button[type=submit]")
        wang.check("#seat-login input[name=skills][value=online]")
        wang.click("#seat-login button[type=submit]")
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")

        # The operator is on a call, then writing it up, when the request comes in.
        call = "CAchannels00000000000000000000001"
        handler.start(call, "+8613900139001", "12345", "twilio", time.time())
        expect(wang.locator("#pop .caller")).to_contain_text("139", timeout=5000)
        assert handler.seat_answered(call, "1001", time.time())
        expect(wang.locator("#seat .state-name")).to_have_text("通话中")
        handler.caller_gone(call)
        expect(wang.locator("#seat .state-name")).to_have_text("话后处理")

        # The citizen, on a phone.
        phone = browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        citizen = phone.new_page()
        citizen.goto(site + "/report")
        citizen.fill("#report-what", "幸福小区3栋门口一下雨就积水，老人出门要趟水")
        citizen.fill("#report-where", "龙华区金龙路幸福小区3栋")
        citizen.fill("#report-phone", "138 0013 8000")
        citizen.click("main button.primary")
        expect(citizen.locator("h1")).to_have_text("输入短信验证码")
        [code_text] = texts_to(CITIZEN)
        code = re.search(r"验证码是 (\d{6})", code_text).group(1)  # type: ignore[union-attr]
        citizen.fill("#report-code", code)
        citizen.click("main button.primary")
        expect(citizen.locator("h1")).to_have_text("已收到您的反映")
        number = citizen.locator("#report-number").inner_text().replace("\n", "").strip()
        assert citizen.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(citizen, "channels-citizen-filed")

        # Between calls: 就绪, and the request is offered to her seat.
        expect(wang.locator(f".task-row[data-number='{number}']")).to_have_count(0)
        wang.click("#seat button.primary")  # 就绪
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")
        row = wang.locator(f".task-row[data-number='{number}']")
        expect(row).to_have_attribute("data-state", "offered", timeout=15_000)
        row.locator("button.task-take").click()
        expect(wang.locator("#task-description")).to_have_text(
            "幸福小区3栋门口一下雨就积水，老人出门要趟水"
        )

        reply = wang.locator("#task-reply-form")
        reply.locator("textarea[name=reply]").fill(REPLY)
        reply.locator("button[type=submit]").click()
        expect(wang.locator("#task-reply-sent")).to_contain_text("已首次答复")
        form = wang.locator("#task-file-form")
        form.locator("input[name=category_code]").fill("道路积水、内涝")
        form.locator("button[type=submit]").click()
        expect(wang.locator("#task-filed")).to_be_visible()
        screenshot(wang, "channels-operator-replied")
        wang.click("#task-done")
        expect(wang.locator("#task-completed")).to_contain_text(number)

        # The citizen's phone gets the reply, by the dialer's outbox.
        wait_until(lambda: any(REPLY in t for t in texts_to(CITIZEN)), 20, "the reply texted")
        browser.close()

    [texted] = [t for t in texts_to(CITIZEN) if REPLY in t]
    assert number in texted and "退订" in texted
    with channels_site["sessions"]() as db:
        task = db.scalars(select(ChannelTask)).one()
        assert task.channel == "web" and task.first_response_by == "wang"
        assert task.completed_by == "wang" and (task.first_response_s or 0) < 180
        case = db.scalar(select(Case).where(Case.number == number))
        assert case is not None and case.caller_phone == CITIZEN
        assert case.category is not None and case.status == "dispatched"
