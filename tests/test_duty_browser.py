"""The duty leader's day in a real browser (Playwright on Debian's Chromium) against the
real web command (gunicorn) over HTTP: a supervisor puts a district head on today's
roster from the wallboard's link; the leader signs in on a phone (390x844), lands on
the page of the day, sees an urgent case nobody has signed for and writes a 批示; the
unit reads it on its portal case page with the leader's name, and the console's trail
keeps it as 领导批示.

Screenshots go to var/test-artifacts/ (duty-*.png)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.browser import launch, screenshot
from tests.test_browser import PASSWORD, sign_in, site  # noqa: F401  (the real web command)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

PHONE = {"width": 390, "height": 844}
INSTRUCTION = "请供水公司立即派人排查，今晚十点前恢复供水并回报"


def fits_the_phone(page) -> None:  # type: ignore[no-untyped-def]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a 390 px phone"


def test_a_supervisor_rosters_a_leader_who_instructs_an_urgent_case_the_unit_reads_it(
    site,  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory
    from cases.duty import beijing_day
    from cases.service import CallInfo, CaseDraft, create_case_for_call, utcnow
    from cases.topics import current_hot_topics, scan_hot_topics
    from cases.users import add_user

    with session_factory(engine_for(site["db_url"]))() as db:
        add_user(db, "zhang", "leader", PASSWORD, display_name="张区长")
        case = create_case_for_call(
            db,
            CallInfo("outage-call", "+8613800138001", "asterisk", "1001"),
            CaseDraft(
                description="龙华区金贸街道整栋楼停水一天，住户有老人和婴儿",
                category_code="water-outage",
                address="海口市龙华区金贸西路 8 号",
                dispatch=True,
                urgency="urgent",
            ),
        )
        number = case.number
        assert case.department.code == "water-supply"
        # Three quiet weeks on this street, then neighbours call about the same outage
        # within minutes: the detector raises a hot topic.
        now = utcnow()
        for n in range(26):
            if n < 21:  # history, now and then
                at = now - timedelta(days=21 - n, hours=3)
            else:
                at = now - timedelta(minutes=2 * (26 - n))
            earlier = create_case_for_call(
                db,
                # each neighbour from their own phone: one caller is never a hot topic
                CallInfo(f"neighbour-{n}", f"+86138001381{n:02d}", "asterisk", "1001"),
                CaseDraft(
                    description="金贸西路停水",
                    category_code="water-outage",
                    address=f"海口市龙华区金贸西路 {10 + n} 号",
                    dispatch=False,  # still with the operators: not on the units' lists
                ),
            )
            earlier.created_at = at
        db.commit()
        raised = scan_hot_topics(db, utcnow(), street_of=lambda address: "金贸街道")
        db.commit()
        assert current_hot_topics(db, utcnow()), raised
    today = beijing_day()

    with sync_api.sync_playwright() as p:
        browser = launch(p)

        # The supervisor goes from the wallboard to the roster and puts 张区长 on today.
        supervisor = sign_in(browser, site, "li")
        supervisor.click("a#nav-duty-roster")
        expect(supervisor.locator("#roster")).to_be_visible()
        supervisor.select_option(f"select[name='day-{today.isoformat()}']", "zhang")
        supervisor.click("#roster-save")
        expect(supervisor.locator(f"select[name='day-{today.isoformat()}']")).to_have_value("zhang")
        screenshot(supervisor, "duty-roster")
        for arrow in ("#month-before", "#month-after"):  # a thumb's size, on a desk too
            box = supervisor.locator(arrow).bounding_box()
            assert box and box["width"] >= 44 and box["height"] >= 44, (arrow, box)
        supervisor.click("a#nav-reports")  # the reports are one click from the roster too
        expect(supervisor.locator("h2").first).to_be_visible()

        # The leader signs in on their phone and lands on the page of the day.
        context = browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        phone = context.new_page()
        phone.goto(site["url"] + "/login")
        phone.fill("input[name=username]", "zhang")
        phone.fill("input[name=password]", PASSWORD)
        phone.click("main button[type=submit]")
        expect(phone.locator("#duty-leader")).to_have_text("张区长")
        hot = phone.locator("#hot-topics .hot-topic")
        expect(hot).to_contain_text("停水")
        expect(hot).to_contain_text("建议牵头单位：海口市供水公司")
        urgent = phone.locator(f"#urgent-{number}")
        expect(phone.locator("#urgent-unsigned article")).to_have_count(1)
        expect(urgent).to_be_visible()
        expect(urgent).to_contain_text("停水")
        expect(urgent).to_contain_text("未签收")  # and for how long, in Beijing time
        expect(urgent).to_contain_text("海口市供水公司")
        expect(phone.locator("a#nav-reports")).to_be_visible()
        fits_the_phone(phone)
        screenshot(phone, "duty-phone-day")

        urgent.locator("details.instruct summary").click()
        urgent.locator("textarea[name=text]").fill(INSTRUCTION)
        urgent.locator("button.primary").click()
        expect(phone.locator("#duty-done")).to_contain_text(number)
        expect(phone.locator(f"#urgent-{number} .instruction")).to_contain_text(INSTRUCTION)
        expect(phone.locator(f"#urgent-{number} .instruction")).to_contain_text("张区长")
        expect(phone.locator("#instructed-today")).to_contain_text(INSTRUCTION)
        fits_the_phone(phone)
        screenshot(phone, "duty-phone-instructed")
        phone.click("a#nav-reports")  # the reports, on the same phone
        expect(phone.locator("a#nav-duty")).to_be_visible()
        phone.goto(f"{site['url']}/reports/?kind=daily&day={today.isoformat()}")  # with cases
        expect(phone.locator("#units-table tr[data-code='water-supply']")).to_contain_text(
            "海口市供水公司"
        )
        expect(phone.locator("#chart-rates")).to_have_count(0)  # no rate yet: no empty bars
        fits_the_phone(phone)
        screenshot(phone, "duty-phone-reports")
        phone.click("a#nav-duty-roster")
        expect(phone.locator(f"tr[data-day='{today.isoformat()}']")).to_contain_text("张区长")
        fits_the_phone(phone)
        screenshot(phone, "duty-phone-roster")
        phone.click("a#nav-duty")
        phone.click("header button:has-text('English')")  # English is one click away
        expect(phone.locator("#urgent-unsigned h2")).to_contain_text("Urgent cases not signed for")
        expect(phone.locator(f"#urgent-{number}")).to_contain_text("not signed for in")
        fits_the_phone(phone)
        screenshot(phone, "duty-phone-day-en")

        # The unit reads it on its case page, with the leader's name.
        department = sign_in(browser, site, "supply")
        department.goto(f"{site['url']}/portal/cases/{number}")
        shown = department.locator(".instruction")
        expect(shown).to_contain_text("领导批示（张区长")
        expect(shown).to_contain_text(INSTRUCTION)
        screenshot(department, "duty-portal-instruction")

        # The console's trail keeps it.
        supervisor.goto(f"{site['url']}/console/cases/{number}")
        row = supervisor.locator("#trail tr.trail-row", has_text="领导批示")
        expect(row).to_contain_text("张区长")
        expect(row).to_contain_text(INSTRUCTION)
        browser.close()
