"""The knowledge base in a real browser (Playwright on Debian's Chromium) against the real
web command, push process and queue: an operator on a call sees suggestions as they
type, finds an article with "/", answers from it, and 知识库直接答复率 moves on the
supervisor's wallboard; and the citizens' view on a phone-sized screen.

Screenshots go to var/test-artifacts/."""

from __future__ import annotations

import time

import pytest

from tests.browser import launch, screenshot
from tests.test_browser import run_jobs, sign_in, site  # noqa: F401  (the fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect


def board_figure(page, wanted: str, within_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """The wallboard's 知识库直接答复率 once it reads ``wanted``: today's figures are
    read from SQL every few seconds, so the page is reloaded until they show it."""
    deadline = time.monotonic() + within_s
    while True:
        shown = page.locator("#fig-kb-rate").inner_text()
        if shown == wanted or time.monotonic() > deadline:
            break
        time.sleep(1)
        page.reload()
    expect(page.locator("#fig-kb-rate")).to_have_text(wanted)


def test_an_operator_answers_from_a_suggested_article_and_the_figure_moves(site) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from cases.db import engine_for, session_factory
    from cases.models import Case, KnowledgeAnswer

    handler = site["handler"]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        supervisor = sign_in(browser, site, "li")
        # The day's only case so far (the fixture's) was dispatched: none from an article.
        board_figure(supervisor, "0.0%")

        operator = sign_in(browser, site, "wang")
        operator.click("#seat-login button[type=submit]")
        expect(operator.locator("#seat .state-name")).to_have_text("空闲")
        expect(operator.locator("#kb-panel")).to_be_visible()
        call = "asterisk-1764400000.7"
        handler.start(call, "13800138001", "12345", "asterisk", time.time())
        form = operator.locator("#case-form")
        expect(form).to_be_visible(timeout=5000)
        assert handler.seat_answered(call, "1001", time.time())

        # Suggestions follow what the operator types.
        form.locator("input[name=category_code]").fill("停水")
        form.locator("textarea[name=description]").fill("家里突然停水了，什么时候来水")
        suggestions = operator.locator("#kb-suggestions")
        expect(suggestions.locator(".kb-hit").first).to_be_visible()
        expect(suggestions).to_contain_text("小区突然停水怎么办")

        # Search is one keystroke away: "/" from anywhere but a text box.
        operator.locator("#pop h2").click()
        operator.keyboard.press("/")
        expect(operator.locator("#kb-q")).to_be_focused()
        operator.keyboard.type("噪音")
        expect(operator.locator("#kb-results")).to_contain_text("夜间建筑施工噪音的投诉")

        # The suggested article in full, then 答复自本条知识 (confirmed).
        suggestions.locator("button.kb-open", has_text="小区突然停水怎么办").click()
        reader = operator.locator("#kb-article .kb-article")
        expect(reader.locator(".kb-body")).to_be_visible()
        screenshot(operator, "kb-console-article")
        reader.locator("#kb-answer button[type=submit]").click()
        expect(operator.locator("#case-filed")).to_be_visible()
        expect(operator.locator("#kb-answered")).to_contain_text("小区突然停水怎么办")
        screenshot(operator, "kb-console-answered")

        handler.caller_gone(call)
        run_jobs(site)  # the hang-up's case job finds the case filed, and leaves it so
        with session_factory(engine_for(site["db_url"]))() as db:
            case = db.scalar(select(Case).where(Case.call_id == call))
            assert case is not None and case.status == "resolved" and case.dispatched_at is None
            assert db.scalar(select(KnowledgeAnswer).where(KnowledgeAnswer.case_id == case.id))

        # Two cases from calls today, one answered from an article.
        board_figure(supervisor, "50.0%")
        expect(supervisor.locator("#fig-first-contact")).to_have_text("50.0%")
        screenshot(supervisor, "kb-wallboard")
        browser.close()


def test_the_public_view_reads_well_on_a_phone(site) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        phone = browser.new_context(
            locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        page = phone.new_page()
        page.goto(site["url"] + "/kb/")
        page.fill("input[name=q]", "停水")
        page.click("main button.primary")
        hits = page.locator("#kb-public-hits .kb-hit")
        expect(hits.first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
        screenshot(page, "kb-public-phone-search")
        hits.first.locator("a").click()
        expect(page.locator("#kb-public-article .kb-body")).to_be_visible()
        size = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('.kb-body')).fontSize)"
        )
        assert size >= 18  # large type for anyone
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "kb-public-phone-article")
        browser.close()


def test_a_unit_proposes_a_change_and_an_editor_approves_it_after_the_diff(site) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory
    from cases.users import add_user
    from tests.test_browser import PASSWORD

    with session_factory(engine_for(site["db_url"]))() as db:
        add_user(db, "kbed", "knowledge_editor", PASSWORD, display_name="钱编辑")
        db.commit()
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        unit = sign_in(browser, site, "supply")
        unit.click("#portal-kb-link")
        row = unit.locator("tr.kb-article-row", has_text="小区突然停水怎么办")
        row.locator("a", has_text="提出修改").click()
        body = unit.locator("textarea[name=body]")
        body.fill(body.input_value() + "夜间抢修可拨打 96166。")
        unit.fill("input[name=review_on]", "2027-12-31")
        unit.fill("textarea[name=note]", "补充夜间抢修电话")
        screenshot(unit, "kb-portal-propose")
        unit.click("#kb-propose button[type=submit]")
        expect(unit.locator("#kb-done")).to_contain_text("已提交审核")
        expect(unit.locator("tr.kb-proposal-row .kb-state").first).to_have_text("待审核")

        editor = sign_in(browser, site, "kbed")  # lands on the review
        proposal = editor.locator(".kb-proposal", has_text="小区突然停水怎么办")
        expect(proposal.locator("ins")).to_have_text("夜间抢修可拨打 96166。")
        screenshot(editor, "kb-review")
        proposal.locator("textarea[name=note]").fill("核实无误")
        proposal.locator("button[value=approve]").click()
        expect(editor.locator("#kb-done")).to_contain_text("已批准发布")

        unit.reload()
        expect(unit.locator("tr.kb-proposal-row .kb-state").first).to_contain_text("已发布")
        expect(unit.locator("tr.kb-proposal-row .kb-note").first).to_contain_text("核实无误")
        screenshot(unit, "kb-portal")
        browser.close()
