"""What people hit on day one, found by walking the screens in a real browser
(Playwright on Debian's Chromium) against the real web command:

- an operator sets a request's category and outcome before writing a reply, or after
  the reply was sent (its box empty again): the save goes through, not silently
  halted by the empty reply box it carries along;
- a citizen who leaves out a digit of their mobile is asked for the number again, not
  filed with a number nobody can call back or text.
- category text that names no category ("ljql") is one short line beside the box,
  what was typed kept, not a list of every category above the form;
- 就绪 with the ended call's form unfiled: the form leaves the centre, which says its
  case (caller masked, time) waits under 待补录; reopened, the draft reads 停水, not "ts";
- a file that is no photo: the error says to choose the photo again, the rest kept;
- a recorded call's case lists its call before the call's detail row is written, and a
  recorded return visit's call.

Screenshots in var/test-artifacts/ (persona3-*.png)."""

from __future__ import annotations

import time

from sqlalchemy import select

from tests.browser import launch, phone_page, screenshot
from tests.test_browser import site  # noqa: F401  (the site fixture)
from tests.test_console_tasks_browser import DESK, _desk, _operator, _request, _take, sync_api
from tests.test_webform_browser import form_site  # noqa: F401  (a fixture)

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
        browser = launch(p)
        page = phone_page(browser)
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


def _answered_call(site, operator, call: str) -> None:  # type: ignore[no-untyped-def]
    """A call offered to the operator's free seat, answered, the caller gone, its case
    made at hang-up by a real worker: the seat is in wrap-up with the form to file."""
    from tests.test_browser import run_jobs

    handler = site["handler"]
    handler.start(call, "13800138000", "12345", "asterisk", time.time())
    expect(operator.locator("#pop .caller")).to_have_text("138 0013 8000", timeout=5000)
    assert handler.seat_answered(call, "1001", time.time())
    expect(operator.locator("#seat .state-name")).to_have_text("通话中")
    handler.caller_gone(call)
    expect(operator.locator("#seat .countdown-left")).to_be_visible()
    run_jobs(site)


def test_category_initials_that_name_nothing_are_said_beside_the_box(site) -> None:  # type: ignore[no-untyped-def]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = _operator(browser, site, DESK, online=False)
        _answered_call(site, wang, "asterisk-1764400000.1")
        form = wang.locator("#case-form")
        form.locator("textarea[name=description]").fill("小区垃圾三天没人清运")
        form.locator("input[name=address]").fill("海口市龙华区金贸西路 8 号")
        form.locator("input[name=category_code]").fill("ljql")
        form.locator("button[type=submit]").click()
        # One short line beside the box, not a list of every category.
        said = wang.locator("#case-form #category-error")
        expect(said).to_have_text("没有找到“ljql”对应的诉求类别，请从列表中选择")
        expect(wang.locator("#case-form")).not_to_contain_text("可选值")
        box = wang.locator("#case-form input[name=category_code]")
        unit = wang.locator("#case-form select[name=department_code]")
        assert said.bounding_box()["y"] < unit.bounding_box()["y"]  # type: ignore[index]
        # Everything typed is kept, and the box still offers the list.
        expect(box).to_have_value("ljql")
        expect(form.locator("textarea[name=description]")).to_have_value("小区垃圾三天没人清运")
        expect(form.locator("input[name=address]")).to_have_value("海口市龙华区金贸西路 8 号")
        expect(box).to_have_attribute("list", "categories")
        expect(wang.locator("#categories option[value='垃圾清运']")).to_have_count(1)
        screenshot(wang, "persona3-category-matches-nothing")
        box.fill("ljqy")
        form.locator("button[type=submit]").click()
        expect(wang.locator("#case-filed")).to_contain_text("已提交")
        expect(box).to_have_value("垃圾清运")
        expect(wang.locator("#category-error")).to_have_count(0)
        browser.close()


def test_an_unfiled_form_goes_to_be_completed_when_the_operator_is_ready(site) -> None:  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory
    from cases.models import Case

    call = "asterisk-1764400000.2"
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = _operator(browser, site, DESK, online=False)
        _answered_call(site, wang, call)
        with session_factory(engine_for(site["db_url"]))() as db:
            number = db.scalars(select(Case.number).where(Case.call_id == call)).one()
        form = wang.locator("#case-form")
        form.locator("input[name=category_code]").fill("ts")
        form.locator("textarea[name=description]").fill("金贸街道停水两天")
        wang.click("#seat button.primary")  # 就绪, the warning accepted
        expect(wang.locator("#seat .state-name")).to_have_text("空闲")
        # The ended call's form leaves the centre, saying where its case waits.
        expect(wang.locator("#case-form")).to_have_count(0)
        left = wang.locator("#pop #left-unfiled")
        expect(left).to_contain_text(number)
        expect(left).to_contain_text("138****8000")
        expect(left).to_contain_text("待补录")
        expect(left).not_to_contain_text("ts")
        expect(wang.locator("#my-day .to-complete")).to_contain_text(number)  # at once
        screenshot(wang, "persona3-unfiled-after-ready")
        # Opened again, the form shows what was typed, the category by its name.
        left.locator("a, button").first.click()
        form = wang.locator("#case-form")
        expect(form.locator("textarea[name=description]")).to_have_value("金贸街道停水两天")
        expect(form.locator("input[name=category_code]")).to_have_value("停水")
        screenshot(wang, "persona3-unfiled-reopened")
        form.locator("button[type=submit]").click()
        expect(wang.locator("#case-filed")).to_contain_text(number)
        # Filed: it leaves 待补录 now, not at the panel's next 30 s refresh.
        expect(wang.locator("#my-day")).not_to_contain_text(number, timeout=5000)
        browser.close()
    with session_factory(engine_for(site["db_url"]))() as db:
        case = db.scalars(select(Case).where(Case.call_id == call)).one()
        assert case.category is not None and case.category.name == "停水"


def test_a_file_that_is_no_photo_asks_for_the_photo_again_and_keeps_the_rest(form_site) -> None:  # type: ignore[no-untyped-def]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = phone_page(browser)
        page.goto(form_site["url"] + "/report")
        page.fill("#report-what", "路边井盖缺失，晚上很危险")
        page.fill("#report-where", "龙华区金贸西路 8 号门口")
        page.fill("#report-phone", "138 0013 8000")
        notes = {"name": "井盖.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo at all"}
        page.set_input_files("#report-photo", notes)
        page.click("main button.primary")
        expect(page.locator("h1")).to_have_text("网上反映")
        # The box comes back empty (no browser keeps a file across pages): said so.
        expect(page.locator("main .error")).to_have_text(
            "只能上传照片（JPG、PNG 或 WEBP），请重新选择照片，其他内容已保留"
        )
        expect(page.locator("#report-photo")).to_have_value("")
        expect(page.locator("#report-what")).to_have_value("路边井盖缺失，晚上很危险")
        expect(page.locator("#report-where")).to_have_value("龙华区金贸西路 8 号门口")
        expect(page.locator("#report-phone")).to_have_value("138 0013 8000")
        screenshot(page, "persona3-webform-not-a-photo")
        browser.close()


def test_a_recorded_call_is_listed_on_its_case_page(site) -> None:  # type: ignore[no-untyped-def]
    """The supervisor opens a recorded call's case at once: its call is listed (its
    detail row is written later, from the event stream, by the reaper), and a return
    visit's recorded call (linked to the case by its number) too."""
    from datetime import UTC, datetime

    from calls.recordings import note_recording
    from cases.db import engine_for, session_factory
    from cases.models import CallRecord, Case
    from tests.test_browser import sign_in

    call, visit = "asterisk-1764400000.3", "asterisk-1764400000.4"
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        wang = _operator(browser, site, DESK, online=False)
        _answered_call(site, wang, call)
        sessions = session_factory(engine_for(site["db_url"]))
        with sessions() as db:
            note_recording(db, call, call, "asterisk", status="done", duration_s=95)
            number = db.scalars(select(Case.number).where(Case.call_id == call)).one()
            db.commit()
        li = sign_in(browser, site, "li")
        li.goto(site["url"] + f"/console/cases/{number}")
        calls = li.locator("#case-calls")
        expect(calls.locator("tr.call-row")).to_have_count(1)
        expect(calls.locator("tr.call-row")).to_contain_text("呼入")
        expect(calls.locator("tr.call-row")).to_contain_text("1001")
        expect(li.locator("#case-recordings .recording-call")).to_have_text("呼入 · 坐席 1001")
        screenshot(li, "persona3-case-page-call-before-its-row")

        # Its return visit, recorded: the dialer's row, the recording by case number.
        with sessions() as db:
            db.add(
                CallRecord(
                    call_id=visit,
                    direction="outbound",
                    caller="+8613800138000",
                    skill="return_visit",
                    queued_at=datetime.now(UTC),
                    outcome="satisfied",
                )
            )
            note_recording(db, visit, visit, "asterisk", status="done", case_number=number)
            db.commit()
        li.reload()
        expect(calls.locator("tr.call-row")).to_have_count(2)
        expect(calls.locator("tr.call-row").nth(1)).to_contain_text("呼出")
        expect(calls.locator("tr.call-row").nth(1)).to_contain_text("满意")
        screenshot(li, "persona3-case-page-return-visit")
        browser.close()
