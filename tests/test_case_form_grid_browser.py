"""The operator's case form when the address lies in a grid and the category is grid
work (Playwright on Debian's Chromium, against the real web command over HTTP): the
form names the grid as where the case goes, with its district government as the lead
unit and its district filled in, and waits for a finished house number before naming
any grid ("国贸路8" may still become 国贸路88号 or 国贸路812号)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tests.browser import launch, screenshot
from tests.test_browser import run_jobs, sign_in, site  # noqa: F401  (the real web command)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

GUOMAO_1 = "longhua-s03-c01-g1"  # 龙华区 金贸街道 国贸社区 第1网格
GRID_LINE = "所在网格：龙华区 金贸街道 国贸社区 第1网格（网格事项，将派往该网格）"


def test_the_case_form_says_the_case_goes_to_the_grid_once_the_number_is_finished(
    site,  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory
    from cases.grid import GridCase
    from cases.models import Case

    with sync_api.sync_playwright() as p:
        browser = launch(p)
        handler = site["handler"]
        operator = sign_in(browser, site, "wang")
        operator.click("#seat-login button[type=submit]")
        expect(operator.locator("#seat .state-name")).to_have_text("空闲")
        call = "asterisk-form-grid.1"
        handler.start(call, "13900139000", "12345", "asterisk", time.time())
        expect(operator.locator("#pop .pop .caller")).to_have_text("139 0013 9000")
        assert handler.seat_answered(call, "1001", time.time())
        handler.caller_gone(call)
        run_jobs(site)
        form = operator.locator("#case-form")
        unit = form.locator("select[name=department_code]")
        district = form.locator("select[name=district_code]")
        line = operator.locator("#address-grid")
        form.locator("input[name=category_code]").fill("排水管道堵塞")
        form.locator("input[name=category_code]").dispatch_event("change")
        expect(unit).to_have_value("water-affairs")  # the catalogue's unit, until the address

        # A number still being typed: candidates are suggested, but no grid is named.
        address = form.locator("input[name=address]")
        address.press_sequentially("国贸路8", delay=30)
        expect(operator.locator("#address-hints option").first).to_be_attached()
        operator.wait_for_timeout(600)  # the field's pause and the table's answer
        expect(line).to_have_text("")
        expect(unit).to_have_value("water-affairs")
        expect(district).to_have_value("")

        # 号 finishes it: the line, the lead unit and the district all say the grid.
        address.press_sequentially("8号", delay=30)
        expect(line).to_have_text(GRID_LINE)
        expect(unit).to_have_value("")
        expect(unit.locator("option:checked")).to_have_text(
            "★ 网格：龙华区 金贸街道 国贸社区 第1网格（龙华区人民政府主办）"
        )
        expect(district).to_have_value("longhua")
        screenshot(operator, "case-form-grid")

        # Without 号, leaving the field finishes the number as typed.
        address.fill("")
        address.press_sequentially("国贸路88", delay=30)
        operator.wait_for_timeout(600)
        expect(line).to_have_text("")
        form.locator("textarea[name=description]").click()
        expect(line).to_have_text(GRID_LINE)
        expect(unit).to_have_value("")
        form.locator("textarea[name=description]").fill("小区门口下水道堵了，污水漫到路面")
        form.locator("button[type=submit]").click()
        expect(operator.locator("#case-filed")).to_contain_text("已提交")
        browser.close()

    with session_factory(engine_for(site["db_url"]))() as db:
        filed = db.scalar(select(Case).where(Case.call_id == call))
        assert filed.status == "dispatched" and filed.department.code == "district-longhua"
        assert filed.district is not None and filed.district.code == "longhua"
        assert db.get(GridCase, filed.id).grid.code == GUOMAO_1
