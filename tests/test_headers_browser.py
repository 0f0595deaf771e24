"""The Content-Security-Policy in a real browser (Playwright on Debian's Chromium), served
by the web command: every surface works under it (htmx swaps, the event streams, the
charts) and the browser refuses nothing on any page."""

from __future__ import annotations

import time

import pytest

from tests.browser import launch
from tests.test_browser import sign_in, site  # noqa: F401  (site: the served app)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

# Records what the policy refused, before any of the page's own scripts run.
RECORD_VIOLATIONS = """
window.__refused = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__refused.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def watch(page):  # type: ignore[no-untyped-def]
    """The page, recording refusals from its events and from the console's words."""
    page.add_init_script(RECORD_VIOLATIONS)
    page.refused = []
    page.on(
        "console",
        lambda message: (
            page.refused.append(message.text)
            if "Content Security Policy" in message.text or "Refused to" in message.text
            else None
        ),
    )
    return page


def refused(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [*page.refused, *page.evaluate("window.__refused || []")]


def flooded_road(site) -> None:  # type: ignore[no-untyped-def]
    """A case dispatched to the water authority (water-affairs), for its portal, and
    signed for there at once, so the rankings have a rate to chart."""
    from cases.db import engine_for, session_factory
    from cases.dispatch import sign_for
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    with session_factory(engine_for(site["db_url"]))() as db:
        case = create_case_for_call(
            db,
            CallInfo("flooded-road-call", "+8613900139000", "asterisk", "1001"),
            CaseDraft(description="道路积水", category_code="waterlogging", dispatch=True),
        )
        db.flush()
        sign_for(db, case, "water", case.department_id)
        db.commit()


def visit(page, url: str) -> None:  # type: ignore[no-untyped-def]
    response = page.goto(url)
    assert response is not None and response.ok, url
    assert "script-src 'self'" in response.headers.get("content-security-policy", ""), url


def test_every_surface_works_under_the_policy_and_nothing_is_refused(site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    handler = site["handler"]
    with sync_api.sync_playwright() as p:
        browser = launch(p)

        visitor = watch(browser.new_page(locale="zh-CN"))
        visit(visitor, site["url"] + "/login")
        visit(visitor, site["url"] + "/lookup")
        expect(visitor.locator("main form")).to_be_visible()

        operator = watch(sign_in(browser, site, "wang").context.new_page())
        visit(operator, site["url"] + "/console/")
        operator.click("#seat-login button[type=submit]")  # htmx swaps the seat in
        expect(operator.locator("#seat .state-name")).to_have_text("空闲")
        handler.start("asterisk-1764300000.9", "13800138000", "12345", "asterisk", time.time())
        expect(operator.locator("#pop .pop .caller")).to_have_text("138 0013 8000")  # the stream

        flooded_road(site)  # for the rankings' bars and the portal
        supervisor = watch(sign_in(browser, site, "li").context.new_page())
        visit(supervisor, site["url"] + "/console/wallboard")
        expect(supervisor.locator("#hourly-chart svg")).to_be_visible()  # ECharts drew
        expect(supervisor.locator("tr.seat-row[data-seat='1001']")).to_be_visible()
        visit(supervisor, site["url"] + "/console/rankings")
        chart = supervisor.locator("#rankings-chart")
        expect(chart.locator("svg")).to_be_visible()
        drawn = chart.locator("svg text").count()
        chart.hover()  # the tooltip is drawn in the chart, not as styled HTML
        expect(chart.locator("svg text")).not_to_have_count(drawn)
        visit(supervisor, site["url"] + "/console/supervision")

        department = watch(sign_in(browser, site, "water").context.new_page())
        visit(department, site["url"] + "/portal/")
        expect(department.locator("main")).to_contain_text("积水")
        department.locator("main a[href*='/portal/cases/']").first.click()
        expect(department.locator("main")).to_contain_text("积水")

        for page in (visitor, operator, supervisor, department):
            assert refused(page) == [], page.url
        browser.close()
