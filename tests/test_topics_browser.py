"""Duplicate suggestions and hot topics in a real browser (Playwright on Debian's
Chromium), served by the real web command over HTTP, with calls through the real flow
and queue and the hot-topic scan run as a job by a real RQ worker.

Screenshots go to var/test-artifacts/."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.browser import launch, screenshot
from tests.test_browser import run_jobs, sign_in, site  # noqa: F401  (the fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect


def _sessions(site):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory

    return session_factory(engine_for(site["db_url"]))


def _open_case(site, phone: str, category: str, address: str, at: datetime | None = None) -> str:  # type: ignore[no-untyped-def]
    from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch

    with _sessions(site)() as db:
        case = create_case_for_call(
            db,
            CallInfo(f"seeded-{phone}-{time.time_ns()}", phone, "asterisk", "1003"),
            CaseDraft(description="反映问题", category_code=category, address=address),
        )
        if at is not None:
            case.created_at = at
        dispatch(db, case, "1003")
        db.commit()
        return case.number


def test_a_duplicate_is_suggested_while_typing_and_accepted_at_filing(site) -> None:  # type: ignore[no-untyped-def]
    from cases.models import Case, OutboundItem

    open_number = _open_case(site, "+8613900000001", "street-lights", "海府路10号")
    _open_case(site, "+8613900000002", "street-lights", "海府路12号")  # next door: not it
    handler = site["handler"]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        operator = sign_in(browser, site, "wang")
        operator.click("#seat-login button[type=submit]")
        expect(operator.locator("#seat .state-name")).to_have_text("空闲")
        call = "asterisk-1764300000.7"
        handler.start(call, "13700137000", "12345", "asterisk", time.time())
        expect(operator.locator("#pop .pop .caller")).to_have_text("137 0013 7000", timeout=5000)
        assert handler.seat_answered(call, "1001", time.time())

        form = operator.locator("#case-form")
        form.locator("input[name=category_code]").fill("路灯不亮")
        form.locator("input[name=category_code]").dispatch_event("change")
        form.locator("textarea[name=description]").fill("海府路路灯又坏了，晚上很黑")
        form.locator("input[name=address]").fill("海口市美兰区海府路 10 号附近")
        suggestion = operator.locator(f"#duplicates-list .duplicate[data-number='{open_number}']")
        expect(suggestion).to_be_visible(timeout=5000)
        expect(operator.locator("#duplicates-list .duplicate")).to_have_count(1)
        expect(suggestion).to_contain_text("同一地址")
        screenshot(operator, "duplicate-suggested")
        suggestion.locator("button.merge-into").click()
        expect(operator.locator("#case-filed")).to_contain_text(f"并入工单 {open_number}")
        screenshot(operator, "duplicate-merged")
        browser.close()

    with _sessions(site)() as db:
        own = db.scalar(select(Case).where(Case.call_id == call))
        assert own is not None and own.status == "closed"
        assert own.merged_into is not None and own.merged_into.number == open_number
        assert own.description == "海府路路灯又坏了，晚上很黑"
        assert own.dispatched_at is None  # never sent to a unit of its own
        target = own.merged_into
        assert any(e.action == "merged_in" for e in target.events)
        # Resolved: the merged caller is planned for a return visit as well.
        from calls.dialer import plan_work
        from cases.dispatch import resolve, sign_for

        sign_for(db, target, "unit", target.department_id)
        resolve(db, target, "unit", target.department_id, "已修复")
        db.commit()
        plan_work(db, handler_dialer(site), datetime.now(UTC))
        phones = set(db.scalars(select(OutboundItem.phone)))
        assert {"+8613900000001", "+8613700137000"} <= phones


def handler_dialer(site):  # type: ignore[no-untyped-def]
    from calls.dialer import Dialer
    from calls.dialing import DialerSettings

    handler = site["handler"]

    class Nowhere:
        def originate(self, call_id: str, phone: str, kind: str) -> None:
            raise AssertionError("nothing is dialled here")

    return Dialer(
        handler.queue.redis, handler.queue.keys, _sessions(site), Nowhere(), DialerSettings()
    )


def test_a_hot_topic_appears_on_the_wallboard_when_a_burst_of_cases_arrives(site) -> None:  # type: ignore[no-untyped-def]
    from calls.hot_topics import JOB_ID

    now = datetime.now(UTC)
    # Three weeks of the usual: a water cut on this street every other day.
    for day in range(1, 22, 2):
        _open_case(
            site,
            f"+86139100000{day:02d}",
            "water-outage",
            "龙华区金贸街道玉沙路1号",
            at=now - timedelta(days=day, hours=5),
        )
    handler = site["handler"]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        supervisor = sign_in(browser, site, "li")
        expect(supervisor.locator("#nobody-waiting")).to_be_visible()
        expect(supervisor.locator("#hot-topics")).to_have_count(0)

        # A burst: eight callers from the same street have no water, within minutes.
        for n in range(8):
            _open_case(site, f"+861380000{n:04d}", "water-outage", f"龙华区金贸街道玉沙路{n + 3}号")
        handler.jobs.enqueue("calls.hot_topics.scan", job_id=JOB_ID, result_ttl=0)
        run_jobs(site)  # the worker's scan, as the reaper enqueues it each minute

        topic = supervisor.locator("#hot-topics .hot-topic")
        expect(topic).to_have_count(1, timeout=20_000)  # the board redraws by itself
        expect(topic.locator(".hot-title")).to_have_text("金贸街道 · 停水")
        expect(topic.locator(".hot-count")).to_have_text("8")
        expect(topic.locator(".hot-unit")).to_have_text("海口市供水公司")
        screenshot(supervisor, "wallboard-hot-topic")

        # The special-topics page lists it too.
        supervisor.goto(site["url"] + "/console/topics")
        expect(supervisor.locator("#hot-topics .hot-topic")).to_have_count(1)
        browser.close()
