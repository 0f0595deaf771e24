"""A grid worker's round on a phone (390x844, Playwright on Debian's Chromium, the
phone's location granted), against the real web command (gunicorn) over HTTP: an
operator files a blocked drain at 国贸路88号 (the address field names its grid) and it is
dispatched to the grid of the address, through the real queue and case job; the grid
worker sees it with its countdown, reports on site with the phone's location, adds a
photo, and resolves it; the supervisor's case page shows the photo. Then a patrol
report (巡查上报) with a photo becomes a case of its own source.

Screenshots go to var/test-artifacts/ (grid-phone-*.png)."""

from __future__ import annotations

import re
import struct
import time
import zlib

import pytest
from sqlalchemy import select

from tests.browser import launch, screenshot
from tests.test_browser import PASSWORD, run_jobs, sign_in, site  # noqa: F401  (the real web command)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

PHONE = {"width": 390, "height": 844}
GUOMAO_1 = "longhua-s03-c01-g1"  # 龙华区 金贸街道 国贸社区 第1网格
WHERE = {"latitude": 20.0301, "longitude": 110.3302, "accuracy": 15}


def png(width: int = 64, height: int = 48) -> bytes:
    """A real PNG (an orange picture), as a phone's camera might give a small one."""
    rows = b"".join(b"\x00" + b"\xf0\x80\x20" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def fits_the_phone(page) -> None:  # type: ignore[no-untyped-def]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a 390 px phone"


def tall_enough(page, selector: str) -> None:  # type: ignore[no-untyped-def]
    box = page.locator(selector).first.bounding_box()
    assert box is not None and box["height"] >= 48, f"{selector} is too small to tap"


def test_a_grid_worker_takes_a_case_on_site_with_a_photo_resolves_it_and_reports_a_patrol(
    site,  # noqa: F811
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory
    from cases.grid import GridCase, assign_worker
    from cases.models import Case
    from cases.photos import CasePhoto
    from cases.users import add_user

    sessions = session_factory(engine_for(site["db_url"]))
    with sessions() as db:
        add_user(db, "zhou", "grid", PASSWORD, display_name="周网格员")
        assign_worker(db, "zhou", GUOMAO_1)
        db.commit()
    photo = tmp_path / "drain.png"
    photo.write_bytes(png())

    with sync_api.sync_playwright() as p:
        browser = launch(p)

        # The operator files a blocked drain; the address field names its grid.
        handler = site["handler"]
        operator = sign_in(browser, site, "wang")
        operator.click("#seat-login button[type=submit]")
        expect(operator.locator("#seat .state-name")).to_have_text("空闲")
        call = "asterisk-grid.1"
        handler.start(call, "13900139000", "12345", "asterisk", time.time())
        expect(operator.locator("#pop .pop .caller")).to_have_text("139 0013 9000")
        assert handler.seat_answered(call, "1001", time.time())
        handler.caller_gone(call)
        run_jobs(site)
        form = operator.locator("#case-form")
        form.locator("input[name=category_code]").fill("排水管道堵塞")
        form.locator("input[name=category_code]").dispatch_event("change")
        expect(form.locator("select[name=department_code]")).to_have_value("water-affairs")
        form.locator("textarea[name=description]").fill("小区门口下水道堵了，污水漫到路面")
        form.locator("input[name=address]").press_sequentially("龙华区国贸路88号", delay=30)
        expect(operator.locator("#address-grid")).to_have_text(
            "所在网格：龙华区 金贸街道 国贸社区 第1网格（网格事项，将派往该网格）"
        )
        options = operator.locator("#address-hints option")
        expect(options).to_have_count(1)
        assert options.first.get_attribute("value") == "国贸路88号"
        screenshot(operator, "grid-console-address")
        form.locator("button[type=submit]").click()
        expect(operator.locator("#case-filed")).to_contain_text("已提交")
        with sessions() as db:
            filed = db.scalar(select(Case).where(Case.call_id == call))
            number = filed.number
            assert filed.status == "dispatched" and filed.department.code == "district-longhua"
            assert db.get(GridCase, filed.id).grid.code == GUOMAO_1

        context = browser.new_context(
            locale="zh-CN",
            viewport=PHONE,
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            geolocation=WHERE,
            permissions=["geolocation"],
        )
        phone = context.new_page()
        phone.on("dialog", lambda dialog: dialog.accept())  # 办结: the worker says yes
        phone.goto(site["url"] + "/login")
        phone.fill("input[name=username]", "zhou")
        phone.fill("input[name=password]", PASSWORD)
        phone.click("main button[type=submit]")

        # Home is the list of the grid's cases, each with its countdown.
        card = phone.locator(f"a[data-number='{number}']")
        expect(card).to_be_visible()
        expect(card).to_contain_text("排水管道堵塞")
        expect(card).to_contain_text("国贸路88号")
        expect(card.locator(".countdown")).to_have_text(re.compile(r"\d+分"))
        tall_enough(phone, "#patrol-link")
        fits_the_phone(phone)
        screenshot(phone, "grid-phone-cases")

        # On site, with where the phone is.
        card.click()
        expect(phone.locator("#on-site")).to_be_visible()
        tall_enough(phone, "#on-site")
        tall_enough(phone, "#resolve")
        assert phone.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 16
        fits_the_phone(phone)
        screenshot(phone, "grid-phone-case")
        phone.click("#on-site")
        expect(phone.locator("#case-status")).to_have_text("处理中")
        expect(phone.locator("#on-site-at")).to_be_visible()
        expect(phone.locator("#on-site")).to_have_count(0)

        # A photo: shown on the page once it is up.
        phone.set_input_files("#photo-form input[type=file]", str(photo))
        phone.click("#upload")
        image = phone.locator("#photos img.case-photo")
        expect(image).to_have_count(1)
        phone.wait_for_function("document.querySelector('#photos img.case-photo').naturalWidth > 0")
        fits_the_phone(phone)
        screenshot(phone, "grid-phone-on-site")

        # Resolved with a reply: off the list.
        phone.fill("#resolve-form textarea[name=reply]", "已联系环卫疏通，路面已冲洗干净")
        phone.click("#resolve")
        expect(phone.locator("#no-cases")).to_be_visible()

        with sessions() as db:
            done = db.scalar(select(Case).where(Case.number == number))
            held = db.get(GridCase, done.id)
            assert done.status == "resolved" and done.accepted_by == "zhou"
            assert done.reply == "已联系环卫疏通，路面已冲洗干净"
            assert (round(held.on_site_lat, 4), round(held.on_site_lon, 4)) == (20.0301, 110.3302)
            assert len(db.scalars(select(CasePhoto).where(CasePhoto.case_id == done.id)).all()) == 1

        # The supervisor's case page shows the photo.
        supervisor = sign_in(browser, site, "li")
        supervisor.goto(f"{site['url']}/console/cases/{number}")
        shown = supervisor.locator("#case-photos img.case-photo")
        expect(shown).to_have_count(1)
        supervisor.wait_for_function("document.querySelector('#case-photos img').naturalWidth > 0")
        screenshot(supervisor, "grid-console-case-photo")

        # A patrol report: a problem the worker found becomes a case, on their list.
        phone.click("#patrol-link")
        expect(phone.locator("#patrol-form")).to_be_visible()
        expect(phone.locator("#patrol-form .location-status")).to_contain_text("已获取位置")
        phone.select_option("#patrol-form select[name=category_code]", "garbage-collection")
        phone.fill("#patrol-form textarea[name=description]", "国贸路口绿化带堆放装修垃圾")
        phone.fill("#patrol-form input[name=address]", "国贸路20号")
        phone.set_input_files("#patrol-form input[type=file]", str(photo))
        tall_enough(phone, "#patrol-submit")
        fits_the_phone(phone)
        screenshot(phone, "grid-phone-patrol")
        phone.click("#patrol-submit")
        filed = phone.locator("#patrol-filed")
        expect(filed).to_contain_text("已上报，工单号")
        patrol_number = re.search(r"12345-\d{8}-\d{6}", filed.inner_text()).group(0)  # type: ignore[union-attr]
        expect(phone.locator(f"a[data-number='{patrol_number}']")).to_contain_text("垃圾清运")
        fits_the_phone(phone)
        screenshot(phone, "grid-phone-patrol-filed")
        browser.close()

    with sessions() as db:
        patrol = db.scalar(select(Case).where(Case.number == patrol_number))
        # Their own report on their own grid: signed for by them as it was filed.
        assert (patrol.channel, patrol.status, patrol.accepted_by) == ("patrol", "accepted", "zhou")
        assert patrol.department.code == "district-longhua"
        assert [e.note for e in patrol.events if e.action == "patrol"] == ["20.03010, 110.33020"]
        assert len(db.scalars(select(CasePhoto).where(CasePhoto.case_id == patrol.id)).all()) == 1


# A photo drawn again on the phone waits here until the test lets it go, so the
# buttons can be seen waiting (the real createImageBitmap, only held back).
HOLD_SHRINK = """
(() => {
  const real = window.createImageBitmap.bind(window);
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  window.releaseShrink = () => release();
  window.createImageBitmap = (file) => gate.then(() => real(file));
})();
"""


def at_least(page, selector: str, px: float) -> None:  # type: ignore[no-untyped-def]
    box = page.locator(selector).first.bounding_box()
    assert box is not None and box["width"] >= px and box["height"] >= px, (selector, box)


def font_px(page, selector: str) -> float:  # type: ignore[no-untyped-def]
    return float(
        page.evaluate(
            f"parseFloat(getComputedStyle(document.querySelector({selector!r})).fontSize)"
        )
    )


def test_the_phone_page_keeps_what_was_typed_and_reads_at_arms_length(
    site,  # noqa: F811
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from cases.db import engine_for, session_factory
    from cases.grid import assign_worker
    from cases.models import Case
    from cases.photos import CasePhoto
    from cases.users import add_user
    from tests.test_grid import file_case

    sessions = session_factory(engine_for(site["db_url"]))
    with sessions() as db:
        add_user(db, "zhou", "grid", PASSWORD, display_name="周网格员")
        assign_worker(db, "zhou", GUOMAO_1)
        late = file_case(db, "garbage-collection", "国贸路66号", urgency="urgent")
        late.respond_by = late.dispatched_at - timedelta(days=3, minutes=5)  # type: ignore[operator]
        drain = file_case(db, "drain-blockage", "国贸路88号")
        db.commit()
        late_number, number = late.number, drain.number
    large = tmp_path / "large.png"
    large.write_bytes(png(2400, 1800))  # wider than 1600 px: drawn again on the phone
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * (24 * 1024))  # 6 MB, no picture

    with sync_api.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        context.add_init_script(HOLD_SHRINK)
        phone = context.new_page()
        phone.on("dialog", lambda dialog: dialog.accept())

        def sign_in_here() -> None:
            phone.fill("input[name=username]", "zhou")
            phone.fill("input[name=password]", PASSWORD)
            phone.click("main button[type=submit]")

        phone.goto(site["url"] + "/login")
        sign_in_here()

        # A late case reads 已超时3天, not −3天; the header and badge are big enough.
        card = phone.locator(f"a[data-number='{late_number}']")
        expect(card.locator(".countdown")).to_have_text(re.compile(r"^已超时3天"))
        at_least(phone, "header.top form[action$='/logout'] button", 44)
        assert font_px(phone, ".grid-case .badge") >= 16
        fits_the_phone(phone)
        screenshot(phone, "grid-phone-late")

        # The case page: its heading link is a thumb's size, the trail's dates whole.
        phone.goto(f"{site['url']}/grid/cases/{number}")
        at_least(phone, "header.top .where a", 44)
        assert font_px(phone, "#trail td") >= 16
        lines = phone.evaluate(
            """() => [...document.querySelectorAll('#trail tbody tr td:first-child')].map((td) => {
                 const range = document.createRange(); range.selectNodeContents(td);
                 return range.getClientRects().length; })"""
        )
        assert lines and all(n == 1 for n in lines), lines
        fits_the_phone(phone)

        # A large photo: both buttons wait while the phone makes it smaller.
        phone.fill("#resolve-form textarea[name=reply]", "已联系环卫疏通，路面已冲洗干净")
        phone.set_input_files("#photo-form input[type=file]", str(large))
        expect(phone.locator("#upload")).to_be_disabled()
        expect(phone.locator("#resolve")).to_be_disabled()
        expect(phone.locator("#photo-form .chosen")).to_have_text("正在压缩照片，请稍候…")
        screenshot(phone, "grid-phone-shrinking")
        phone.evaluate("window.releaseShrink()")
        expect(phone.locator("#upload")).to_be_enabled()
        expect(phone.locator("#photo-form .chosen")).to_have_text("已选择照片：large.png")
        # One the phone cannot draw and over the limit: said here, nothing sent.
        phone.set_input_files("#photo-form input[type=file]", str(broken))
        expect(phone.locator("#photo-form .chosen")).to_have_text(
            "照片超过5 MB，请重新拍摄或选择较小的照片"
        )
        screenshot(phone, "grid-phone-too-large")
        phone.set_input_files("#photo-form input[type=file]", str(large))
        expect(phone.locator("#upload")).to_be_enabled()
        phone.click("#upload")
        expect(phone.locator("#photos img.case-photo")).to_have_count(1)
        # The reply typed before the photo went up is still there.
        expect(phone.locator("#resolve-form textarea[name=reply]")).to_have_value(
            "已联系环卫疏通，路面已冲洗干净"
        )

        # The sign-in ends while the page is open: 办结 asks to sign in again and
        # comes back to the case with the reply as typed.
        context.clear_cookies()
        phone.click("#resolve")
        expect(phone.locator("input[name=username]")).to_be_visible()
        sign_in_here()
        expect(phone).to_have_url(re.compile(f"/grid/cases/{number}$"))
        expect(phone.locator("#resolve-form textarea[name=reply]")).to_have_value(
            "已联系环卫疏通，路面已冲洗干净"
        )

        # A second photo chosen and not uploaded goes with 办结.
        phone.set_input_files("#photo-form input[type=file]", str(large))
        phone.evaluate("window.releaseShrink()")
        expect(phone.locator("#resolve")).to_be_enabled()
        expect(phone.locator("#photo-form .chosen")).to_have_text("已选择照片：large.png")
        phone.click("#resolve")
        expect(phone.locator("#case-done")).to_have_text(f"工单 {number} 已办结")
        fits_the_phone(phone)
        screenshot(phone, "grid-phone-resolved")

        # English: no text key on screen.
        phone.click("header.top form[action$='/language'] button")
        phone.goto(f"{site['url']}/grid/cases/{late_number}")
        expect(phone.locator("#countdown")).to_have_text(re.compile(r"^3 days overdue"))
        phone.set_input_files("#photo-form input[type=file]", str(large))
        phone.evaluate("window.releaseShrink()")
        expect(phone.locator("#photo-form .chosen")).to_have_text("Photo chosen: large.png")
        assert "grid_" not in phone.locator("body").inner_text()
        screenshot(phone, "grid-phone-en")
        browser.close()

    with sessions() as db:
        done = db.scalar(select(Case).where(Case.number == number))
        assert done.status == "resolved" and done.reply == "已联系环卫疏通，路面已冲洗干净"
        kept = db.scalars(select(CasePhoto).where(CasePhoto.case_id == done.id)).all()
        assert [p.content_type for p in kept] == ["image/jpeg", "image/jpeg"]  # made smaller
