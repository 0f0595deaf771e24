"""A citizen files a request from a phone (390x844, Playwright on Debian's Chromium)
against the real web command (gunicorn) over HTTP, with SMS on Twilio (a local HTTP
server standing in for its Messages API): the form in large type, the code texted to
the phone given (read from the stand-in), the case number and the lookup link; the
case is of channel web, uncategorised, with its photo.

Screenshots go to var/test-artifacts/ (webform-phone-*.png)."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select

from hotline.redis_server import free_port
from tests.browser import CHROMIUM_ARGS, chromium_path, screenshot
from tests.real_rig import wait_port
from tests.test_sms import ACCOUNT, HOTLINE_NUMBER, MessagesApi
from tests.twilio_peer import AUTH_TOKEN, http_peer

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

ROOT = Path(__file__).resolve().parents[1]
PHONE = {"width": 390, "height": 844}


def tiny_png() -> bytes:
    """A real 2x2 PNG: what a phone's gallery could give."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def form_site(redis_server, redis: Redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed

    redis.flushdb()
    MessagesApi.sent = []
    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    sessions = session_factory(engine_for(db_url))
    with sessions() as db:
        seed(db)
        db.commit()
    port = free_port()
    with http_peer(MessagesApi) as api:
        env = {
            **os.environ,
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_server.url,
            "HOTLINE_SECRET_KEY": "browser-test-" + "x" * 32,
            "HOTLINE_WEB_PORT": str(port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": api,
            "HOTLINE_SMS_PROVIDER": "twilio",
            "HOTLINE_SMS_FROM": HOTLINE_NUMBER,
            "PYTHONPATH": str(ROOT),
        }
        log = open(tmp_path / "web.log", "ab")  # noqa: SIM115
        web = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "web", "--workers", "1", "--threads", "8"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_port(port)
            yield {"url": f"http://127.0.0.1:{port}", "sessions": sessions, "tmp": tmp_path}
        finally:
            web.terminate()
            web.wait(timeout=20)
            log.close()


def fits_the_phone(page) -> None:  # type: ignore[no-untyped-def]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a 390 px phone"


def font_px(page, selector: str) -> float:  # type: ignore[no-untyped-def]
    size = page.eval_on_selector(selector, "e => getComputedStyle(e).fontSize")
    return float(size.removesuffix("px"))


def test_a_citizen_files_a_request_from_a_phone_with_a_texted_code(form_site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cases.models import Case
    from cases.photos import CasePhoto

    site = form_site["url"]
    photo = tmp_path / "jinggai.png"
    photo.write_bytes(tiny_png())
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        page = context.new_page()
        page.goto(site + "/report")
        expect(page.locator("h1")).to_have_text("网上反映")
        # Large type for an elderly reader: boxes and the button at 20 px and more.
        for selector in ("#report-what", "#report-phone", "main button.primary"):
            assert font_px(page, selector) >= 20, selector
        assert page.locator("select").count() == 0  # no category to choose
        fits_the_phone(page)
        screenshot(page, "webform-phone-empty")

        page.click("main button.primary")  # nothing typed: the browser asks for it first
        expect(page.locator("#report-what")).to_be_focused()
        page.fill("#report-what", "幸福小区3栋楼下的井盖丢了，晚上很危险")
        page.fill("#report-where", "龙华区金龙路幸福小区3栋")
        page.fill("#report-phone", "138 0013 8000")
        page.set_input_files("#report-photo", str(photo))
        screenshot(page, "webform-phone-filled")
        page.click("main button.primary")

        expect(page.locator("h1")).to_have_text("输入短信验证码")
        expect(page.locator("main")).to_contain_text("138****8000")
        (text,) = MessagesApi.sent
        assert text["To"] == "+8613800138000" and text["From"] == HOTLINE_NUMBER
        code = re.search(r"验证码是 (\d{6})", text["Body"]).group(1)  # type: ignore[union-attr]
        fits_the_phone(page)
        screenshot(page, "webform-phone-code")

        wrong = "000000" if code != "000000" else "111111"
        page.fill("#report-code", wrong)
        page.click("main button.primary")
        expect(page.locator("main .error")).to_contain_text("验证码不对")
        page.fill("#report-code", code)
        page.click("main button.primary")

        expect(page.locator("h1")).to_have_text("已收到您的反映")
        number = page.locator("#report-number").inner_text().strip()
        assert re.fullmatch(r"12345-\d{8}-\d{6}", number)
        assert font_px(page, "#report-number") >= 24
        fits_the_phone(page)
        screenshot(page, "webform-phone-done")

        page.click("#report-lookup")
        expect(page.locator("h1")).to_have_text("工单查询")
        browser.close()

    with form_site["sessions"]() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        assert case is not None and case.channel == "web"
        assert case.caller_phone == "+8613800138000"
        assert case.address == "龙华区金龙路幸福小区3栋" and "井盖" in case.description
        assert case.category_id is None and case.status == "received"  # the operator's
        (kept,) = db.scalars(select(CasePhoto).where(CasePhoto.case_id == case.id))
        assert kept.content_type == "image/png"
        assert (form_site["tmp"] / "photos" / kept.file_name).read_bytes() == tiny_png()


def noise_png(side: int) -> bytes:
    """A PNG of random pixels, side x side: over 3 MB from 1100 px, as a phone's photo."""
    raw = b"".join(b"\x00" + os.urandom(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 0))
        + chunk(b"IEND", b"")
    )


ZOOMED = {"width": 260, "height": 563}  # a 390 x 844 phone at 150% zoom


def file_and_confirm(page, site: str, photo: Path | None = None) -> str:  # type: ignore[no-untyped-def]
    """The form filled and sent, the texted code typed: the case number shown."""
    page.goto(site + "/report")
    page.fill("#report-what", "小区停水两天了，老人在家没水喝")
    page.fill("#report-phone", "138 0013 8000")
    if photo is not None:
        page.set_input_files("#report-photo", str(photo))
    page.click("main button.primary")  # waits while a photo is made smaller
    expect(page.locator("h1")).to_have_text("输入短信验证码")
    code = re.search(r"验证码是 (\d{6})", MessagesApi.sent[-1]["Body"]).group(1)  # type: ignore[union-attr]
    page.fill("#report-code", code)
    page.click("main button.primary")
    expect(page.locator("h1")).to_have_text("已收到您的反映")
    return page.locator("#report-number").inner_text().replace("\n", "").strip()  # type: ignore[no-any-return]


def test_a_photo_over_3_mb_is_made_smaller_in_the_browser_and_sent(form_site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cases.models import Case
    from cases.photos import CasePhoto

    photo = tmp_path / "big.png"
    photo.write_bytes(noise_png(1400))
    assert photo.stat().st_size > 5 * 1024 * 1024
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        number = file_and_confirm(context.new_page(), form_site["url"], photo)
        browser.close()
    with form_site["sessions"]() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        assert case is not None
        (kept,) = db.scalars(select(CasePhoto).where(CasePhoto.case_id == case.id))
        assert kept.content_type == "image/jpeg" and kept.size_bytes <= 3 * 1024 * 1024


def test_at_150_percent_zoom_the_done_page_never_scrolls_sideways(form_site) -> None:  # type: ignore[no-untyped-def]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(
            locale="zh-CN", viewport=ZOOMED, device_scale_factor=3, is_mobile=True, has_touch=True
        )
        page = context.new_page()
        number = file_and_confirm(page, form_site["url"])
        assert re.fullmatch(r"12345-\d{8}-\d{6}", number)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= ZOOMED["width"], f"the done page is {width} px wide at 150% zoom"
        box = page.eval_on_selector("#report-number", "e => [e.scrollWidth, e.clientWidth]")
        assert box[0] <= box[1], f"the case number runs out of its box: {box}"
        screenshot(page, "webform-zoomed-done")
        page.click("#report-lookup")  # the lookup page has the number, asks for the phone
        expect(page.locator("input[name=number]")).to_have_value(number)
        expect(page.locator("input[name=phone]")).to_have_value("")
        screenshot(page, "webform-zoomed-lookup")
        browser.close()


def test_a_citizen_who_left_the_code_page_comes_back_and_confirms(form_site) -> None:  # type: ignore[no-untyped-def]
    """The code page closed half way (the tab shut): /report later shows the pending
    request with the code box, and the texted code still files it."""
    site = form_site["url"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        first = context.new_page()
        first.goto(site + "/report")
        first.fill("#report-what", "小区停水，老人在家没水喝")
        first.fill("#report-phone", "137 0013 7000")
        first.click("main button.primary")
        expect(first.locator("h1")).to_have_text("输入短信验证码")
        first.close()
        page = context.new_page()
        page.goto(site + "/report")
        expect(page.locator("h1")).to_have_text("您有一份待确认的诉求")
        expect(page.locator("main")).to_contain_text("137****7000")
        fits_the_phone(page)
        screenshot(page, "webform-phone-came-back")
        code = re.search(r"验证码是 (\d{6})", MessagesApi.sent[-1]["Body"]).group(1)  # type: ignore[union-attr]
        page.fill("#report-code", code)
        page.click("main button.primary")
        expect(page.locator("h1")).to_have_text("已收到您的反映")
        page.goto(site + "/report")  # filed: an empty form again
        expect(page.locator("h1")).to_have_text("网上反映")
        expect(page.locator("#report-what")).to_have_value("")
        browser.close()


def test_without_script_a_photo_too_large_shows_the_form_again_in_chinese(
    form_site, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A browser that cannot make the photo smaller (script off) sends it whole to the
    real web command: the form again, in Chinese, with what was typed."""
    photo = tmp_path / "big.png"
    photo.write_bytes(noise_png(1400))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(
            locale="zh-CN", viewport=PHONE, java_script_enabled=False, is_mobile=True
        )
        page = context.new_page()
        page.goto(form_site["url"] + "/report")
        page.fill("#report-what", "小区停水两天了，老人在家没水喝")
        page.fill("#report-phone", "138 0013 8000")
        page.set_input_files("#report-photo", str(photo))
        page.click("main button.primary")
        expect(page.locator("#report-error")).to_have_text(
            "照片太大，请换一张较小的照片，或不附照片提交"
        )
        expect(page.locator("#report-what")).to_have_value("小区停水两天了，老人在家没水喝")
        expect(page.locator("#report-phone")).to_have_value("138 0013 8000")
        fits_the_phone(page)
        screenshot(page, "webform-phone-photo-too-large")
        browser.close()
