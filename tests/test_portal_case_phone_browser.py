"""A department clerk opens a case on a phone (390x844, Playwright on Debian's Chromium,
the real web command): what the case is about and its clock come first, then the
actions, then the trail. Screenshot: var/test-artifacts/portal-case-phone-order.png."""

from __future__ import annotations

import pytest

from tests.browser import launch, phone_page, screenshot
from tests.test_browser import PASSWORD, site  # noqa: F401  (the fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect


def dispatched_with_a_long_trail(db_url: str) -> str:
    """A case dispatched to the water bureau, urged by repeat calls: a trail of a screen."""
    from cases.db import engine_for, session_factory
    from cases.models import CaseEvent
    from cases.service import CallInfo, CaseDraft, create_case_for_call, utcnow

    with session_factory(engine_for(db_url))() as db:
        case = create_case_for_call(
            db,
            CallInfo("phone-order-call", "+8613900139000", "asterisk", "1001"),
            CaseDraft(
                description="小区门口排水管道堵塞，污水漫到人行道",
                category_code="drain-blockage",
                district_code="longhua",
                dispatch=True,
            ),
        )
        for n in range(8):
            case.events.append(
                CaseEvent(
                    at=utcnow(),
                    actor="1002",
                    action="urged",
                    from_status=case.status,
                    to_status=case.status,
                    note=f"催办 urged by call c{n}: 第{n + 1}次来电催问，污水越来越多",
                )
            )
        db.commit()
        return case.number


def test_a_clerk_on_a_phone_sees_the_case_and_its_clock_before_the_trail(site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    number = dispatched_with_a_long_trail(site["db_url"])
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = phone_page(browser)
        page.goto(site["url"] + "/login")
        page.fill("input[name=username]", "water")
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.goto(site["url"] + f"/portal/cases/{number}")
        description = page.locator("section.card h2", has_text="诉求内容")
        clock = page.locator(".countdown[data-deadline]")
        sign = page.locator("#sign")
        trail = page.locator("#trail")
        expect(clock).not_to_be_empty()  # portal.js counts down
        screenshot(page, "portal-case-phone-order")
        box = {
            name: el.bounding_box()
            for name, el in (
                ("description", description),
                ("clock", clock),
                ("sign", sign),
                ("trail", trail),
            )
        }
        assert all(box.values()), box
        # The case and its clock, then the actions, then the trail.
        assert box["clock"]["y"] + box["clock"]["height"] <= box["description"]["y"], box
        assert box["description"]["y"] < box["sign"]["y"] < box["trail"]["y"], box
        # The clock is on the first screen, without scrolling.
        assert box["clock"]["y"] + box["clock"]["height"] <= 844, box
        expect(clock).to_be_in_viewport()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        browser.close()
