"""The case page and case search for operators and supervisors: the search itself
(cases.search) on SQLite and PostgreSQL for each way of asking, then the pages over
Flask's client by role, a supervisor's reveal of a number recorded in the action log,
bad parameters answered 400 (never 500), and one screenshot in a real browser."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from cases.models import ActionLog, Case, CaseAssist, Department, OverdueRecord
from cases.search import MAX_PAGE, PAGE_SIZE, CaseQuery, search_cases
from cases.service import CallInfo, CaseDraft, create_case_for_call
from tests.test_console import PASSWORD, csrf_of, make_app, sign_in

_calls = itertools.count()


def add_case(
    db,  # type: ignore[no-untyped-def]
    phone: str = "+8613800138000",
    *,
    address: str = "",
    description: str = "",
    category: str = "water-outage",
    created: datetime | None = None,
    dispatch: bool = True,
    name: str = "",
) -> Case:
    case = create_case_for_call(
        db,
        CallInfo(f"search-call-{next(_calls)}", phone, "asterisk", "1001"),
        CaseDraft(
            description=description,
            address=address,
            caller_name=name,
            category_code=category,
            district_code="longhua",
            dispatch=dispatch,
        ),
    )
    if created is not None:
        case.created_at = created
        db.commit()
    return case


def numbers(db, **asked: object) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.number for h in search_cases(db, CaseQuery(**asked)).hits]  # type: ignore[arg-type]


@pytest.fixture
def three(session):  # type: ignore[no-untyped-def]
    """Three cases a day apart, oldest first: two from one citizen, one from another."""
    base = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    a = add_case(
        session,
        address="龙华区金贸西路 8 号",
        description="小区停水两天",
        created=base,
        name="张阿姨",
    )
    b = add_case(
        session,
        "+8613900139000",
        address="美兰区海甸岛 100% 花园",
        description="路灯不亮",
        category="street-lights",
        created=base + timedelta(days=1),
        dispatch=False,
    )
    c = add_case(
        session,
        address="龙华区滨海大道",
        description="停水无通知",
        created=base + timedelta(days=2),
    )
    return session, a.number, b.number, c.number


def test_by_case_number_whole_without_dashes_or_its_trailing_digits(three) -> None:  # type: ignore[no-untyped-def]
    db, a, b, c = three
    assert numbers(db, text=b) == [b]
    assert numbers(db, text=b.replace("-", "")) == [b]
    assert numbers(db, text=b[-6:]) == [b]
    assert numbers(db, text=b.split("-", 1)[1]) == [b]  # 20260302-000002 as written
    assert numbers(db, text="12345-20991231-000001") == []


@pytest.mark.parametrize(
    "typed",
    [
        "13800138000",
        "138-0013-8000",
        "138 0013 8000",
        "+86 138 0013 8000",
        "008613800138000",
        "8000",
    ],
)
def test_by_phone_in_any_form_or_its_last_four_digits(three, typed: str) -> None:  # type: ignore[no-untyped-def]
    db, a, b, c = three
    assert numbers(db, text=typed) == [c, a]  # newest first


def test_by_words_of_the_address_and_description_every_word_must_match(three) -> None:  # type: ignore[no-untyped-def]
    db, a, b, c = three
    assert numbers(db, text="停水") == [c, a]
    assert numbers(db, text="龙华区") == [c, a]
    assert numbers(db, text="金贸 停水") == [a]
    assert numbers(db, text="海甸岛 停水") == []
    assert numbers(db, text="张阿姨") == [a]
    assert numbers(db, text="路灯") == [b]
    # LIKE's wildcards are words like any other, not patterns
    assert numbers(db, text="100%") == [b]
    assert numbers(db, text="%") == [b]
    assert numbers(db, text="_") == []


def test_filters_status_unit_and_beijing_dates(three) -> None:  # type: ignore[no-untyped-def]
    db, a, b, c = three
    assert numbers(db) == [c, b, a]
    assert numbers(db, status="received") == [b]
    assert numbers(db, status="dispatched", text="停水") == [c, a]
    assert numbers(db, unit="water-supply") == [c, a]
    assert numbers(db, unit="no-such-unit") == []
    # an assisting unit finds the cases it assists
    power = db.scalar(select(Department).where(Department.code == "power-supply"))
    case_a = db.scalar(select(Case).where(Case.number == a))
    db.add(CaseAssist(case_id=case_a.id, department_id=power.id))
    db.commit()
    assert numbers(db, unit="power-supply") == [a]
    # 2026-03-01 02:00 UTC is 10:00 on 1 March in Beijing
    assert numbers(db, since=date(2026, 3, 2)) == [c, b]
    assert numbers(db, until=date(2026, 3, 1)) == [a]
    assert numbers(db, since=date(2026, 3, 2), until=date(2026, 3, 2)) == [b]
    assert numbers(db, since=date(2026, 3, 5), until=date(2026, 3, 1)) == []


def test_a_beijing_day_starts_at_midnight_in_beijing_not_utc(session) -> None:  # type: ignore[no-untyped-def]
    late = add_case(session, created=datetime(2026, 4, 1, 16, 30, tzinfo=UTC))  # 00:30 on 2 April
    assert numbers(session, since=date(2026, 4, 2), until=date(2026, 4, 2)) == [late.number]
    assert numbers(session, until=date(2026, 4, 1)) == []


def test_pages_newest_first_and_out_of_range_pages_are_refused(session) -> None:  # type: ignore[no-untyped-def]
    start = datetime(2026, 5, 1, tzinfo=UTC)
    made = [
        add_case(session, created=start + timedelta(minutes=i)).number for i in range(PAGE_SIZE + 2)
    ]
    first = search_cases(session, CaseQuery())
    second = search_cases(session, CaseQuery(page=2))
    assert [h.number for h in first.hits] == made[::-1][:PAGE_SIZE] and first.more
    assert [h.number for h in second.hits] == made[::-1][PAGE_SIZE:] and not second.more
    assert search_cases(session, CaseQuery(page=MAX_PAGE)).hits == []
    for page in (0, -1, MAX_PAGE + 1):
        with pytest.raises(ValueError):
            CaseQuery(page=page)
    with pytest.raises(ValueError):
        CaseQuery(status="dispatched-ish")


def test_a_hit_carries_names_badges_and_the_stored_number(three) -> None:  # type: ignore[no-untyped-def]
    db, a, b, c = three
    case = db.scalar(select(Case).where(Case.number == a))
    case.handling_overdue = True
    case.supervised_note = "请尽快处理"
    db.commit()
    hit = search_cases(db, CaseQuery(text=a)).hits[0]
    assert (hit.category, hit.unit, hit.status) == ("停水", "海口市供水公司", "dispatched")
    assert hit.overdue and hit.supervised and hit.caller_phone == "+8613800138000"
    assert hit.created_at.tzinfo is not None


# -- the pages --------------------------------------------------------------------------


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    return make_app(redis_server, redis, tmp_path)


def sessions(app):  # type: ignore[no-untyped-def]
    return app.extensions["hotline"].desk.sessions


@pytest.fixture
def a_case(app) -> str:  # type: ignore[no-untyped-def]
    with sessions(app)() as db:
        case = add_case(db, address="龙华区金贸西路 8 号", description="小区停水两天")
        unit = case.department
        db.add(
            OverdueRecord(
                case_id=case.id,
                department_id=unit.id if unit else None,
                person="water",
                kind="response",
                due_at=datetime(2026, 3, 1, 2, 30, tzinfo=UTC),
                noticed_at=datetime(2026, 3, 1, 2, 31, tzinfo=UTC),
                late_s=3 * 3600,
            )
        )
        case.response_overdue = True
        db.commit()
        return case.number


def test_department_staff_cannot_open_the_case_page_or_search(app, a_case) -> None:  # type: ignore[no-untyped-def]
    water = app.test_client()
    sign_in(water, "water")
    assert water.get("/console/cases?q=停水").status_code == 403
    assert water.get(f"/console/cases/{a_case}").status_code == 403


def test_an_operator_finds_a_case_and_reads_it_with_the_number_masked(app, a_case) -> None:  # type: ignore[no-untyped-def]
    wang = app.test_client()
    sign_in(wang, "wang")
    page = wang.get("/console/cases", query_string={"q": "138-0013-8000"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert a_case in html and "138****8000" in html and "+8613800138000" not in html
    assert "已超时" in html and "停水" in html  # the badge, the category's name
    html = wang.get(f"/console/cases/{a_case}").get_data(as_text=True)
    assert "138****8000" in html and "13800138000" not in html
    assert "显示完整号码" not in html  # revealing is a supervisor's
    assert "龙华区金贸西路" in html and "小区停水两天" in html
    assert "超时责任记录" in html and "3小时" in html  # the accountability record
    assert 'id="trail"' in html and "派单" in html
    assert "supervise-form" not in html and "dispatch-form" not in html
    assert wang.post(f"/console/cases/{a_case}/reveal").status_code in (400, 403)


def test_a_missing_case_is_a_chinese_404_page(app) -> None:  # type: ignore[no-untyped-def]
    li = app.test_client()
    sign_in(li, "li")
    r = li.get("/console/cases/12345-20990101-000001")
    assert r.status_code == 404
    assert "页面不存在" in r.get_data(as_text=True)


def test_a_supervisor_reveals_the_number_and_it_is_recorded(app, a_case) -> None:  # type: ignore[no-untyped-def]
    li = app.test_client()
    sign_in(li, "li")
    page = li.get(f"/console/cases/{a_case}").get_data(as_text=True)
    assert "显示完整号码" in page and "+8613800138000" not in page
    r = li.post(
        f"/console/cases/{a_case}/reveal",
        data={"csrf_token": csrf_of(page)},
        headers={"HX-Request": "true", "X-CSRFToken": csrf_of(page)},
    )
    assert r.status_code == 200 and "+8613800138000" in r.get_data(as_text=True)
    r = li.post(f"/console/cases/{a_case}/reveal", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 200 and "+8613800138000" in r.get_data(as_text=True)
    with sessions(app)() as db:
        logged = db.scalars(select(ActionLog).where(ActionLog.action == "phone-revealed")).all()
        assert [(x.actor, x.target) for x in logged] == [("li", a_case), ("li", a_case)]
    assert li.post(f"/console/cases/{a_case}/reveal").status_code == 400  # no CSRF token


def test_a_supervisor_supervises_from_the_case_page_and_comes_back_to_it(app, a_case) -> None:  # type: ignore[no-untyped-def]
    li = app.test_client()
    sign_in(li, "li")
    page = li.get(f"/console/cases/{a_case}").get_data(as_text=True)
    assert 'id="supervise-form"' in page and "data-confirm" in page
    assert "dispatch-form" in page  # 改派 of a case its unit is working on
    r = li.post(
        f"/console/cases/{a_case}/supervise",
        data={
            "csrf_token": csrf_of(page),
            "note": "请今天内回复市民",
            "next": f"/console/cases/{a_case}",
        },
    )
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/console/cases/{a_case}")
    page = li.get(f"/console/cases/{a_case}").get_data(as_text=True)
    assert "请今天内回复市民" in page
    # the supervision desk links its cases here
    desk = li.get("/console/supervision").get_data(as_text=True)
    assert f'href="/console/cases/{a_case}"' in desk


def test_a_returned_case_offers_redispatch_with_units_and_a_confirmation(app, a_case) -> None:  # type: ignore[no-untyped-def]
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == a_case))
        case.status = "returned"
        db.commit()
    li = app.test_client()
    sign_in(li, "li")
    page = li.get(f"/console/cases/{a_case}").get_data(as_text=True)
    assert 'id="dispatch-form"' in page and 'name="lead"' in page and 'name="assisting"' in page
    assert "改派" in page and "维持原派" in page and "确定将工单" in page
    r = li.post(
        f"/console/cases/{a_case}/dispatch",
        data={
            "csrf_token": csrf_of(page),
            "lead": "power-supply",
            "next": f"/console/cases/{a_case}",
        },
    )
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/console/cases/{a_case}")
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == a_case))
        assert (case.status, case.department.code) == ("dispatched", "power-supply")


@pytest.mark.parametrize(
    "args",
    [
        {"page": "abc"},
        {"page": "-1"},
        {"page": "0"},
        {"page": "99999999999999999999999"},
        {"since": "2026-13-45"},
        {"until": "yesterday"},
        {"status": "bogus"},
    ],
)
def test_bad_parameters_are_a_400_not_a_500(app, a_case, args) -> None:  # type: ignore[no-untyped-def]
    wang = app.test_client()
    sign_in(wang, "wang")
    r = wang.get("/console/cases", query_string=args)
    assert r.status_code == 400
    assert "请求有误" in r.get_data(as_text=True)


def test_a_page_past_the_end_or_an_empty_range_is_an_empty_list(app, a_case) -> None:  # type: ignore[no-untyped-def]
    wang = app.test_client()
    sign_in(wang, "wang")
    for args in ({"page": "7"}, {"since": "2099-01-01"}, {"q": "不存在的地址"}):
        r = wang.get("/console/cases", query_string=args)
        assert r.status_code == 200
        html = r.get_data(as_text=True)
        assert "没有符合条件的工单" in html and a_case not in html


def test_the_header_has_a_search_box_for_operators_and_supervisors_only(app) -> None:  # type: ignore[no-untyped-def]
    wang, water = app.test_client(), app.test_client()
    sign_in(wang, "wang")
    sign_in(water, "water")
    assert 'class="nav-search"' in wang.get("/console/").get_data(as_text=True)
    assert 'class="nav-search"' not in water.get("/portal/").get_data(as_text=True)


def test_the_case_page_reads_in_english_one_click_away(app, a_case) -> None:  # type: ignore[no-untyped-def]
    li = app.test_client()
    sign_in(li, "li")
    page = li.get(f"/console/cases/{a_case}").get_data(as_text=True)
    li.post("/language", data={"lang": "en", "csrf_token": csrf_of(page), "next": "/"})
    html = li.get(f"/console/cases/{a_case}").get_data(as_text=True)
    assert "Accountability records" in html and "Show the full number" in html


# -- in a real browser --------------------------------------------------------------------


@pytest.fixture
def served(app):  # type: ignore[no-untyped-def]
    """The app over real HTTP on a loopback port, in a thread."""
    from tests.served import served_app

    with served_app(app) as url:
        yield url


def test_the_case_page_in_a_browser_as_a_supervisor_reads_it(app, served) -> None:  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from tests.browser import launch, screenshot

    with sessions(app)() as db:
        case = add_case(
            db,
            address="龙华区金贸西路 8 号 椰树小区 3 栋",
            description="小区自昨晚起停水，老人家中无水做饭，物业称不清楚原因。",
            name="张阿姨",
        )
        db.add(
            OverdueRecord(
                case_id=case.id,
                department_id=case.department_id,
                person="water",
                kind="response",
                due_at=case.respond_by or datetime.now(UTC),
                noticed_at=datetime.now(UTC),
                late_s=45 * 60,
            )
        )
        case.response_overdue = True
        case.supervised_note = "请今天内回复市民"
        db.commit()
        number = case.number
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # confirmations: the person says yes
        page.goto(served + "/login?next=/console/cases")  # not the wallboard's live stream
        page.fill("input[name=username]", "li")
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.fill("header .nav-search input", "8000")
        page.press("header .nav-search input", "Enter")
        page.click(f"#case-results a:has-text('{number}')")
        sync_api.expect(page.locator("#caller-phone")).to_have_text("138****8000")
        page.click("#reveal")
        sync_api.expect(page.locator("#caller-phone")).to_have_text("+8613800138000")
        sync_api.expect(page.locator("#supervise-form")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, f"the page scrolls sideways: {width}px"
        screenshot(page, "case-page")
        page.set_viewport_size({"width": 820, "height": 1180})  # a tablet held upright
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 820, f"the page scrolls sideways on a tablet: {width}px"
        screenshot(page, "case-page-tablet")
        browser.close()
    with sessions(app)() as db:
        assert (
            db.scalar(select(ActionLog.actor).where(ActionLog.action == "phone-revealed")) == "li"
        )
