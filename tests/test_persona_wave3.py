"""What people hit on day one, found by walking the screens in a real browser
(Playwright on Debian's Chromium) against the real web command:

- an operator sets a request's category and outcome before writing a reply, or after
  the reply was sent (its box empty again): the save goes through, not silently
  halted by the empty reply box it carries along;
- a citizen who leaves out a digit of their mobile is asked for the number again, not
  filed with a number nobody can call back or text.

Screenshots in var/test-artifacts/ (persona3-*.png)."""

from __future__ import annotations

from sqlalchemy import select

from tests.browser import CHROMIUM_ARGS, chromium_path, launch, screenshot
from tests.test_browser import site  # noqa: F401  (the site fixture)
from tests.test_console_tasks_browser import DESK, _desk, _operator, _request, _take, sync_api
from tests.test_webform_browser import PHONE, form_site  # noqa: F401  (a fixture)

expect = sync_api.expect


def test_a_request_is_categorised_with_its_reply_box_empty(site) -> None:  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory
    from cases.models import Case

    desk = _desk(site)
    number = _request(site, "小区门口垃圾三天没人清运，气味很大，请尽快处理")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = _operator(browser, site, DESK)
        desk.tasks.submit(number, "web")
        _take(wang, number)
        # Categorised first, nothing typed in the reply box yet.
        form = wang.locator("#task-file-form")
        form.locator("input[name=category_code]").fill("ljqy")
        form.locator("input[name=outcome][value=keep]").check()
        form.locator("button[type=submit]").click()
        expect(wang.locator("#task-filed")).to_be_visible(timeout=5000)
        expect(form.locator("input[name=category_code]")).to_have_value("垃圾清运")
        screenshot(wang, "persona3-task-categorised-before-reply")

        # Replied (the box is empty again), then the outcome changed and saved.
        wang.locator("#task-reply-form textarea[name=reply]").fill("您好，已通知环卫部门今天清运。")
        wang.locator("#task-reply-form button[type=submit]").click()
        expect(wang.locator("#task-reply-sent")).to_be_visible()
        expect(wang.locator("#task-reply-form textarea[name=reply]")).to_have_value("")
        form.locator("input[name=outcome][value=resolved]").check()
        form.locator("button[type=submit]").click()
        expect(wang.locator("#task-filed")).to_be_visible(timeout=5000)
        screenshot(wang, "persona3-task-resolved-after-reply")
        browser.close()
    with session_factory(engine_for(site["db_url"]))() as db:
        case = db.scalars(select(Case).where(Case.number == number)).one()
        assert case.category is not None and case.category.name == "垃圾清运"


def test_a_mobile_short_of_a_digit_is_asked_for_again(form_site) -> None:  # type: ignore[no-untyped-def]
    from cases.models import Case

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        page = context.new_page()
        page.goto(form_site["url"] + "/report")
        page.fill("#report-what", "小区停水两天了，老人在家没水喝")
        for typed in ("138 0013 800", "1380013"):  # ten digits; seven
            page.fill("#report-phone", typed)
            page.click("main button.primary")
            expect(page.locator("h1")).to_have_text("网上反映")
            expect(page.locator("main .error")).to_have_text(
                "请填写正确的手机号，我们会把工单号发给您"
            )
            expect(page.locator("#report-what")).to_have_value("小区停水两天了，老人在家没水喝")
        screenshot(page, "persona3-webform-phone-short")
        # A landline still files (it cannot be texted; the done page says so).
        page.fill("#report-phone", "0898-6666 8888")
        page.click("main button.primary")
        expect(page.locator("h1")).to_have_text("已收到您的反映")
        browser.close()
    with form_site["sessions"]() as db:
        phones = db.scalars(select(Case.caller_phone)).all()
    assert phones == ["+8689866668888"]
