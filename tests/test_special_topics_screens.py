"""The supervisors' special-topic (专题) screens as a supervisor uses them: categories
ticked by their Chinese names (grouped by unit), cases added by the digits case search
accepts, and a case table with headers, Beijing times and status names. Over HTTP on
the real app, then in a real browser (Chromium) at 1366×768.

Screenshots go to var/test-artifacts/."""

from __future__ import annotations

import html
import itertools
import re
from datetime import UTC, datetime

import pytest

from cases.service import CallInfo, CaseDraft, create_case_for_call
from tests.browser import launch, screenshot
from tests.test_browser import PASSWORD, site  # noqa: F401  (the fixture)

ids = itertools.count(1)


def _filed(db, category: str, address: str, description: str, phone: str = ""):  # type: ignore[no-untyped-def]
    n = next(ids)
    return create_case_for_call(
        db,
        CallInfo(f"st-call-{n}", phone or f"+86139{n:08d}", "asterisk", "1001"),
        CaseDraft(description=description, category_code=category, address=address),
    )


@pytest.fixture
def supervisor_app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory
    from tests.test_console import make_app

    app = make_app(redis_server, redis, tmp_path)
    return app, session_factory(engine_for(f"sqlite:///{tmp_path / 'web.db'}"))


def _signed_in(app):  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of, sign_in

    client = app.test_client()
    sign_in(client, "li")
    page = client.get("/console/topics").get_data(as_text=True)
    return client, csrf_of(page)


def _open_topic(client, token: str, **fields) -> int:  # type: ignore[no-untyped-def]
    opened = client.post("/console/topics", data={"csrf_token": token, **fields})
    assert opened.status_code == 302, opened.get_data(as_text=True)
    return int(opened.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def test_categories_are_ticked_by_name_grouped_by_unit_and_shown_by_name(supervisor_app) -> None:  # type: ignore[no-untyped-def]
    app, sessions = supervisor_app
    with sessions() as db:
        fallen = _filed(db, "fallen-trees", "海府路1号", "大树倒了")
        flooded = _filed(db, "waterlogging", "海府路2号", "路上积水")
        lights = _filed(db, "street-lights", "海府路3号", "路灯不亮")
        db.commit()
    client, token = _signed_in(app)
    form = client.get("/console/topics").get_data(as_text=True)
    assert "fallen-trees waterlogging" not in form  # no codes to type
    # 道路积水、内涝 is one choice, though its name holds the list separator.
    assert re.search(r'value="waterlogging"[^>]*> 道路积水、内涝', form)
    groups = re.findall(r'<div class="category-group">\s*<h3>([^<]+)</h3>', form)
    assert "海口市供水公司" in groups and "未指定单位" == groups[-1]  # grouped by unit

    topic_id = _open_topic(
        client, token, name="台风“摩羯”", category=["fallen-trees", "waterlogging"]
    )
    page = client.get(f"/console/topics/{topic_id}").get_data(as_text=True)
    rules = re.search(r'<dd id="rule-categories">([^<]*)</dd>', page)
    assert rules and html.unescape(rules.group(1)) == "树木倒伏；道路积水、内涝"
    assert "fallen-trees" not in page and "waterlogging" not in page
    assert fallen.number in page and flooded.number in page and lights.number not in page

    # A name sent instead of a code (a script, an older form) is translated too.
    by_name = _open_topic(client, token, name="停水", category=["停水"])
    page = client.get(f"/console/topics/{by_name}").get_data(as_text=True)
    assert '<dd id="rule-categories">停水</dd>' in page

    refused = client.post(
        "/console/topics",
        data={"name": "x", "category": ["fallen-trees", "no-such"], "csrf_token": token},
    )
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "没有这些类别：no-such" in text
    assert re.search(r'value="fallen-trees" checked', text)  # the ticks are kept


def test_a_case_is_added_by_the_digits_case_search_accepts(supervisor_app) -> None:  # type: ignore[no-untyped-def]
    from cases.models import Case

    app, sessions = supervisor_app
    with sessions() as db:
        first = _filed(db, "street-lights", "海府路1号", "路灯不亮", phone="+8613900777777")
        second = _filed(db, "street-lights", "海府路2号", "路灯不亮")
        db.commit()
        first_number, second_number = first.number, second.number
    client, token = _signed_in(app)
    topic_id = _open_topic(client, token, name="路灯", words="没有这个词")
    add = f"/console/topics/{topic_id}/cases"

    assert (
        client.post(add, data={"number": second_number[-6:], "csrf_token": token}).status_code
        == 302
    )
    no_dashes = first_number.replace("-", "")
    assert client.post(add, data={"number": no_dashes, "csrf_token": token}).status_code == 302
    page = client.get(f"/console/topics/{topic_id}").get_data(as_text=True)
    assert second_number in page and first_number in page

    # The caller's phone tail finds the case in case search, but is no case number.
    phone_tail = client.post(add, data={"number": "777777", "csrf_token": token})
    assert phone_tail.status_code == 422 and "找不到工单 777777" in phone_tail.get_data(
        as_text=True
    )

    # Two cases with the same tail on different days: ask for more digits.
    with sessions() as db:
        other_day = _filed(db, "street-lights", "海府路3号", "路灯不亮")
        other_day.number = "12345-20250101-" + first_number[-6:]
        db.commit()
    several = client.post(add, data={"number": first_number[-6:], "csrf_token": token})
    text = several.get_data(as_text=True)
    assert several.status_code == 422 and "有多个工单以" in text and "12345-20250101-" in text
    with sessions() as db:
        assert db.get(Case, other_day.id) is not None


def test_the_case_table_has_headers_beijing_times_and_status_names(supervisor_app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of
    from web.i18n import status_name

    app, sessions = supervisor_app
    with sessions() as db:
        case = _filed(db, "fallen-trees", "海府路1号", "大树倒了")
        case.created_at = datetime(2026, 11, 30, 17, 5, tzinfo=UTC)  # 01:05 the next day
        db.commit()
        status = case.status
    client, token = _signed_in(app)
    topic_id = _open_topic(client, token, name="倒树", category=["fallen-trees"])
    page = client.get(f"/console/topics/{topic_id}").get_data(as_text=True)
    headers = re.findall(r"<th>([^<]+)</th>", page.split('id="topic-cases-table"', 1)[1])
    assert headers == [
        "工单编号",
        "诉求类别",
        "地址",
        "承办单位",
        "状态",
        "受理时间",
        "超期",
        "归集方式",
        "操作",
    ]
    row = page.split(f'data-number="{case.number}"', 1)[1].split("</tr>", 1)[0]
    assert "2026-12-01 01:05" in row  # Beijing time, not UTC
    assert f"<td>{status_name(status)}</td>" in row and f"<td>{status}</td>" not in row

    client.post("/language", data={"lang": "en", "csrf_token": csrf_of(page)})
    english = client.get(f"/console/topics/{topic_id}").get_data(as_text=True)
    headers = re.findall(r"<th>([^<]+)</th>", english.split('id="topic-cases-table"', 1)[1])
    assert headers[:6] == ["Case number", "Category", "Address", "Handling unit", "State", "Filed"]
    assert "Fallen trees" in english or "树木倒伏" in english


def test_a_supervisor_ticks_categories_and_adds_a_case_by_its_tail_in_chromium(site) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from cases.db import engine_for, session_factory

    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    expect = sync_api.expect
    with session_factory(engine_for(site["db_url"]))() as db:
        fallen = _filed(db, "fallen-trees", "龙华区金贸街道玉沙路1号", "大树倒了")
        outage = _filed(db, "water-outage", "龙华区金贸街道玉沙路2号", "停水了")
        db.commit()
        fallen_number, outage_number = fallen.number, outage.number
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 768})
        page = context.new_page()
        page.goto(site["url"] + "/login")
        page.fill("input[name=username]", "li")
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.goto(site["url"] + "/console/topics")
        page.fill("input[name=name]", "台风“摩羯”")
        categories = page.locator("#topic-categories")
        for name in ("树木倒伏", "道路积水、内涝"):
            box = categories.get_by_label(name, exact=True)
            box.scroll_into_view_if_needed()
            box.check()
        screenshot(page, "special-topic-categories-ticked")
        page.click("#open-special-topic button[type=submit]")
        expect(page.locator("#rule-categories")).to_have_text(
            "道路积水、内涝；树木倒伏"
        )  # form order
        expect(page.locator(f'tr.topic-case[data-number="{fallen_number}"]')).to_have_count(1)

        page.fill("input[name=number]", outage_number[-6:])
        page.click("#topic-case-list button:has-text('加入')")
        row = page.locator(f'tr.topic-case[data-number="{outage_number}"]')
        expect(row).to_contain_text("手工加入")
        expect(page.locator("#topic-cases-table thead th").first).to_have_text("工单编号")
        table = page.locator("#topic-cases-table")
        box = table.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1366  # no sideways scrolling
        screenshot(page, "special-topic-page")
        browser.close()
