"""The department portal, the supervisors' dispatch desk, rankings and the citizens'
lookup, over Flask's client against a real redis-server and SQLite."""

from __future__ import annotations

import os
import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import unquote_plus

import pytest
from sqlalchemy import select

from cases.models import Case, ExtensionRequest, OverdueRecord
from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch
from tests.test_console import PASSWORD, csrf_of, make_app, sign_in


@pytest.fixture
def people(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.users import add_user

    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        add_user(db, "urban", "department", PASSWORD, department_code="urban-management")
        add_user(db, "power", "department", PASSWORD, department_code="power-supply")
    return app


def new_case(
    app, category: str = "street-vending", phone: str = "+8613800138000", dispatched: bool = True
) -> str:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo(f"call-{datetime.now().timestamp()}", phone, "asterisk", "1001"),
            CaseDraft(
                description="夜市摊贩占道",
                category_code=category,
                district_code="longhua",
                dispatch=False,
            ),
        )
        if dispatched:
            dispatch(db, case, "1001")
        db.commit()
        return case.number


def post(client, url: str, data: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    page = client.get("/login").get_data(as_text=True)
    return client.post(url, data={**(data or {}), "csrf_token": csrf_of(page)})


def test_a_unit_signs_for_and_resolves_its_case_and_sees_no_other_units(people) -> None:  # type: ignore[no-untyped-def]
    app = people
    mine, theirs = new_case(app), new_case(app, category="power-outage")
    urban = app.test_client()
    sign_in(urban, "urban")
    inbox = urban.get("/portal/").get_data(as_text=True)
    assert mine in inbox and theirs not in inbox
    header = re.search(r"<header.*?</header>", inbox, re.S)
    assert header and "市综合行政执法局（城管） · 承办单位" in header[0]  # the unit, not "urban"
    assert "urban ·" not in header[0]
    assert urban.get(f"/portal/cases/{theirs}").status_code == 404
    assert post(urban, f"/portal/cases/{theirs}/sign").status_code == 404
    assert post(urban, f"/portal/cases/{mine}/sign").status_code == 302
    assert post(urban, f"/portal/cases/{mine}/resolve", {"reply": ""}).status_code == 422
    assert post(urban, f"/portal/cases/{mine}/resolve", {"reply": "已清理摊贩"}).status_code == 302
    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == mine))
        assert (case.status, case.accepted_by, case.reply) == ("resolved", "urban", "已清理摊贩")
        assert [e.actor for e in case.events][-2:] == ["urban", "urban"]
    keys = app.extensions["hotline"].queue.keys
    timers = app.extensions["hotline"].redis.zrange(keys.clocks, 0, -1)
    assert not [t for t in timers if t.decode().startswith(f"{case.id}:")]  # clocks stopped


def test_a_returned_dispatch_is_re_dispatched_by_a_supervisor(people) -> None:  # type: ignore[no-untyped-def]
    app = people
    number = new_case(app)
    urban = app.test_client()
    sign_in(urban, "urban")
    assert (
        post(urban, f"/portal/cases/{number}/return", {"reason": "属供电问题"}).status_code == 302
    )
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    desk = supervisor.get("/console/supervision").get_data(as_text=True)
    assert number in desk and "属供电问题" in desk
    r = post(
        supervisor,
        f"/console/cases/{number}/dispatch",
        {"lead": "power-supply", "assisting": "district-longhua"},
    )
    assert r.status_code == 302
    power = app.test_client()
    sign_in(power, "power")
    assert number in power.get("/portal/").get_data(as_text=True)
    longhua_sees = app.test_client()
    from cases.users import add_user

    with app.extensions["hotline"].handler.directory.sessions() as db:
        add_user(db, "longhua", "department", PASSWORD, department_code="district-longhua")
    sign_in(longhua_sees, "longhua")
    assert "协办" in longhua_sees.get("/portal/").get_data(as_text=True)  # assisting unit
    assert post(longhua_sees, f"/portal/cases/{number}/sign").status_code == 422  # not the lead
    # Not listed any more (the inbox page's message says it was returned).
    assert number not in urban.get("/portal/rows").get_data(as_text=True)


def test_extensions_are_asked_by_the_unit_and_decided_by_a_supervisor(people) -> None:  # type: ignore[no-untyped-def]
    app = people
    number = new_case(app)
    urban = app.test_client()
    sign_in(urban, "urban")
    post(urban, f"/portal/cases/{number}/sign")
    assert (
        post(
            urban, f"/portal/cases/{number}/extend", {"days": "5", "reason": "需协调多部门"}
        ).status_code
        == 302
    )
    with app.extensions["hotline"].handler.directory.sessions() as db:
        ask = db.scalar(select(ExtensionRequest))
        before = ask.case.handle_by
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    assert (
        post(supervisor, f"/console/extensions/{ask.id}", {"decision": "approve"}).status_code
        == 302
    )
    with app.extensions["hotline"].handler.directory.sessions() as db:
        ask = db.get(ExtensionRequest, ask.id)
        assert ask.status == "approved" and ask.decided_by == "li"
        assert ask.case.handle_by.replace(tzinfo=UTC) > before.replace(tzinfo=UTC) + timedelta(
            days=4
        )


def test_a_units_account_made_without_a_name_is_shown_by_its_units_name(people) -> None:  # type: ignore[no-untyped-def]
    """ "urban" was added with no --name: the trail and the extension row say which
    unit did it, never the login."""
    app = people
    number = new_case(app)
    urban = app.test_client()
    sign_in(urban, "urban")
    post(urban, f"/portal/cases/{number}/sign")
    post(urban, f"/portal/cases/{number}/extend", {"days": "5", "reason": "需协调多部门"})
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    page = supervisor.get(f"/console/cases/{number}").get_data(as_text=True)
    text = re.sub(r"<[^>]+>", " ", page)
    assert ">urban<" not in page.replace(" ", "") and " urban " not in text
    assert re.search(r"<td>市综合行政执法局（城管）</td>\s*<td>5", page.replace("\n", ""))
    desk = supervisor.get("/console/supervision").get_data(as_text=True).replace("\n", "")
    assert re.search(r"</a></td><td>市综合行政执法局（城管）</td><td>5", desk)


def test_an_overdue_case_is_on_the_supervisors_list_and_in_the_rankings(people) -> None:  # type: ignore[no-untyped-def]
    from calls import clocks

    app = people
    number = new_case(app)
    svc = app.extensions["hotline"]
    with svc.handler.directory.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        clocks.sync_case(svc.redis, svc.queue.keys, case)
    later = datetime.now(UTC) + timedelta(minutes=31)
    assert (
        clocks.sweep(svc.handler.directory.sessions, svc.redis, svc.queue.keys, later)["overdue"]
        == 1
    )
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    desk = supervisor.get("/console/supervision").get_data(as_text=True)
    assert f'class="overdue-row" data-number="{number}"' in desk
    assert (
        post(supervisor, f"/console/cases/{number}/supervise", {"note": "请今日内处理"}).status_code
        == 302
    )
    urban = app.test_client()
    sign_in(urban, "urban")
    assert "请今日内处理" in urban.get(f"/portal/cases/{number}").get_data(as_text=True)
    # The period runs to the Beijing day the case went overdue (31 minutes from now may
    # be tomorrow there), from this month's first.
    beijing = timezone(timedelta(hours=8))
    days = f"start={datetime.now(beijing):%Y-%m-01}&end={later.astimezone(beijing):%Y-%m-%d}"
    rankings = supervisor.get(f"/console/rankings?{days}").get_data(as_text=True)
    assert "市综合行政执法局（城管）" in rankings
    csv = supervisor.get(f"/console/rankings?format=csv&{days}")
    assert csv.mimetype == "text/csv"
    lines = csv.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("单位,受理量,按时签收率") and any(  # names, not codes
        line.startswith("市综合行政执法局（城管）,") and line.endswith(",1,") for line in lines
    )
    assert "urban-management" not in csv.get_data(as_text=True)
    with svc.handler.directory.sessions() as db:
        assert db.scalar(select(OverdueRecord.kind)) == "response"
    operator = app.test_client()
    sign_in(operator, "wang")
    assert operator.get("/console/supervision").status_code == 403
    assert urban.get("/console/rankings").status_code == 403


def test_a_citizen_looks_up_their_case_with_its_phone_only(people) -> None:  # type: ignore[no-untyped-def]
    app = people
    number = new_case(app)
    citizen = app.test_client()
    page = citizen.get("/lookup").get_data(as_text=True)
    token = csrf_of(page)
    found = citizen.post(
        "/lookup", data={"number": number, "phone": "138 0013 8000", "csrf_token": token}
    )
    assert found.status_code == 200 and "派单" in found.get_data(as_text=True)
    wrong = citizen.post(
        "/lookup", data={"number": number, "phone": "13900000000", "csrf_token": token}
    )
    assert wrong.status_code == 404 and "夜市" not in wrong.get_data(as_text=True)
    statuses = [
        citizen.post(
            "/lookup", data={"number": number, "phone": "13900000000", "csrf_token": token}
        ).status_code
        for _ in range(12)
    ]
    assert statuses[-1] == 429  # limited per address


def test_a_repeat_request_is_merged_and_its_caller_follows_the_open_case(people) -> None:  # type: ignore[no-untyped-def]
    app = people
    first = new_case(app)
    second = new_case(app, phone="+8613900000003", dispatched=False)
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    assert post(supervisor, "/console/merge", {"case": second, "into": first}).status_code == 302
    assert post(supervisor, "/console/merge", {"case": first, "into": first}).status_code == 422
    with app.extensions["hotline"].handler.directory.sessions() as db:
        merged = db.scalar(select(Case).where(Case.number == second))
        assert merged.status == "closed" and merged.merged_into.number == first
        assert merged.merged_into.events[-1].action == "merged_in"
    citizen = app.test_client()
    token = csrf_of(citizen.get("/lookup").get_data(as_text=True))
    page = citizen.post(
        "/lookup", data={"number": second, "phone": "13900000003", "csrf_token": token}
    )
    html = page.get_data(as_text=True)  # its own number, never the other citizen's case
    assert page.status_code == 200 and "您的诉求已与其他市民反映的同一问题合并办理" in html
    assert second in html and first not in html


def test_an_admin_edits_the_dispatch_catalogue_and_it_is_audited(people) -> None:  # type: ignore[no-untyped-def]
    from cases.models import ActionLog, Category
    from cases.users import add_user

    app = people
    with app.extensions["hotline"].handler.directory.sessions() as db:
        add_user(db, "root", "admin", PASSWORD)
    admin = app.test_client()
    sign_in(admin, "root")
    assert 'id="cat-street-vending"' in admin.get("/console/catalogue").get_data(as_text=True)
    r = post(
        admin,
        "/console/catalogue/street-vending",
        {"department": "district-longhua", "handling_days": "5"},
    )
    assert r.status_code == 302
    assert (
        post(admin, "/console/catalogue/street-vending", {"handling_days": "0"}).status_code == 422
    )
    refused = post(
        admin, "/console/catalogue/street-vending", {"handling_days": "0", "urgent": "1"}
    ).get_data(as_text=True)
    # The error beside the refused row, which keeps what was typed.
    assert '<a href="#row-street-vending">占道经营、流动摊贩</a>：办理时限' in refused
    row = refused.split('id="row-street-vending"', 1)[1].split("</tr>", 1)[0]
    assert "办理时限须为 1 至 60 个工作日" in row and 'value="0"' in row
    assert 'name="urgent" form="cat-street-vending" value="1" checked' in row
    unknown = post(
        admin, "/console/catalogue/street-vending", {"department": "nobody", "handling_days": "5"}
    )
    assert unknown.status_code == 422 and "没有该承办单位：nobody" in unknown.get_data(as_text=True)
    # Street lights go to the district's government: Open311 requests straight to it.
    page = admin.get("/console/catalogue").get_data(as_text=True)
    assert "Open311 诉求直派" in page and 'name="open311_direct"' in page
    assert "市民网上表单和短信仍由话务员处理" in page  # said on the page, not in a tooltip
    lights = {"department": "", "handling_days": "13", "open311_direct": "1"}
    saved = post(admin, "/console/catalogue/street-lights", lights)
    assert saved.status_code == 302 and saved.location.endswith("#row-street-lights")
    shown = admin.get(saved.location).get_data(as_text=True)
    row = shown.split('id="row-street-lights"', 1)[1].split("</tr>", 1)[0]
    assert "已保存" in row
    assert post(admin, "/console/catalogue/no-such-thing", lights).status_code == 404
    with app.extensions["hotline"].handler.directory.sessions() as db:
        category = db.scalar(select(Category).where(Category.code == "street-vending"))
        assert (category.department.code, category.handling_days) == ("district-longhua", 5)
        assert not category.open311_direct
        log = db.scalar(select(ActionLog).where(ActionLog.action == "catalogue-changed"))
        assert log.actor == "root" and "urban-management" in log.detail
        lit = db.scalar(select(Category).where(Category.code == "street-lights"))
        assert lit.open311_direct and lit.department is None
        logged = db.scalars(select(ActionLog).where(ActionLog.target == "street-lights")).all()
        assert [entry.detail.endswith("open311 direct 1") for entry in logged] == [True]
    # Saving the same terms again changes nothing and logs nothing.
    assert post(admin, "/console/catalogue/street-lights", lights).status_code == 302
    with app.extensions["hotline"].handler.directory.sessions() as db:
        assert (
            len(db.scalars(select(ActionLog).where(ActionLog.target == "street-lights")).all()) == 1
        )
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    assert supervisor.get("/console/catalogue").status_code == 403
    assert post(supervisor, "/console/catalogue/street-lights", lights).status_code == 403


def test_rankings_show_the_satisfaction_of_answered_return_visits(people) -> None:  # type: ignore[no-untyped-def]
    from cases.dispatch import apply_return_visit, resolve, sign_for

    app = people
    numbers = [new_case(app) for _ in range(3)]
    with app.extensions["hotline"].handler.directory.sessions() as db:
        for number, answer in zip(
            numbers, ("satisfied", "unsatisfied", "no_response"), strict=True
        ):
            case = db.scalar(select(Case).where(Case.number == number))
            sign_for(db, case, "urban", case.department_id)
            resolve(db, case, "urban", case.department_id, "已处理")
            apply_return_visit(db, case, answer)
        db.commit()
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    lines = supervisor.get("/console/rankings?format=csv").get_data(as_text=True).splitlines()
    urban = next(line for line in lines if line.startswith("市综合行政执法局"))
    assert urban.endswith(",0.5")  # one satisfied of two answers; no response is not an answer


# -- the department's rules, the live inbox (issue 16) ---------------------------------


def case_row(app, number: str) -> Case:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        db.expunge(case)
        return case


def trail_of(app, number: str) -> list[str]:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        return [e.action for e in case.events]


def test_a_resolved_case_is_final_for_the_unit(people) -> None:  # type: ignore[no-untyped-def]
    from cases.dispatch import CaseRefused, add_note

    app = people
    number = new_case(app)
    urban = app.test_client()
    sign_in(urban, "urban")
    post(urban, f"/portal/cases/{number}/sign")
    assert post(urban, f"/portal/cases/{number}/resolve", {"reply": "已清理"}).status_code == 302
    page = urban.get(f"/portal/cases/{number}").get_data(as_text=True)
    assert 'id="note-form"' not in page and 'id="resolve-form"' not in page
    before = trail_of(app, number)
    for action, data in (
        ("note", {"note": "补充"}),
        ("on-site", {}),
        ("extend", {"days": "3", "reason": "再看看"}),
        ("return", {"reason": "不归我们"}),
        ("resolve", {"reply": "再次办结"}),
    ):
        r = post(urban, f"/portal/cases/{number}/{action}", data)
        assert r.status_code == 422, action
        assert "已办结，不能再" in r.get_data(as_text=True), action
    assert trail_of(app, number) == before  # nothing was recorded
    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        with pytest.raises(CaseRefused) as refused:
            add_note(db, case, "urban", case.department_id, "x")
        assert refused.value.code == "case-final"
        assert "resolved" in refused.value.words("en")
    # English one click away, and no English slug on the zh screen.
    post(urban, "/language", {"lang": "en", "next": f"/portal/cases/{number}"})
    r = post(urban, f"/portal/cases/{number}/note", {"note": "again"})
    assert r.status_code == 422 and "is resolved" in r.get_data(as_text=True)


def test_one_extension_request_is_pending_at_a_time(people) -> None:  # type: ignore[no-untyped-def]
    app = people
    number = new_case(app)
    urban = app.test_client()
    sign_in(urban, "urban")
    post(urban, f"/portal/cases/{number}/sign")
    ask = {"days": "5", "reason": "需协调多部门"}
    assert post(urban, f"/portal/cases/{number}/extend", ask).status_code == 302
    page = urban.get(f"/portal/cases/{number}").get_data(as_text=True)
    assert 'id="extension-pending"' in page and 'id="extend-form"' not in page
    again = post(urban, f"/portal/cases/{number}/extend", ask)
    assert again.status_code == 422 and "等待班长审批" in again.get_data(as_text=True)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        asks = db.scalars(select(ExtensionRequest)).all()
        assert [a.status for a in asks] == ["pending"]
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    post(supervisor, f"/console/extensions/{asks[0].id}", {"decision": "refuse"})
    assert post(urban, f"/portal/cases/{number}/extend", ask).status_code == 302  # decided


def test_work_on_a_signed_case_puts_it_in_progress(people) -> None:  # type: ignore[no-untyped-def]
    from web.i18n import translate

    app = people
    noted, urgent = new_case(app), new_case(app, phone="+8613900000009")
    urban = app.test_client()
    sign_in(urban, "urban")
    # A note before signing for leaves it to sign for; after, work has started.
    post(urban, f"/portal/cases/{noted}/note", {"note": "已联系市民"})
    assert case_row(app, noted).status == "dispatched"
    post(urban, f"/portal/cases/{noted}/sign")
    assert case_row(app, noted).status == "accepted"
    post(urban, f"/portal/cases/{noted}/note", {"note": "已到现场查看"})
    assert case_row(app, noted).status == "in_progress"
    inbox = urban.get("/portal/").get_data(as_text=True)
    assert translate("status_in_progress", "zh") in inbox
    # A wrong dispatch can still be returned once work started; the rest is as before.
    assert post(urban, f"/portal/cases/{noted}/resolve", {"reply": "已处理"}).status_code == 302
    assert case_row(app, noted).status == "resolved"
    # An urgent case: on site after signing for starts the work too, once.
    with app.extensions["hotline"].handler.directory.sessions() as db:
        db.scalar(select(Case).where(Case.number == urgent)).urgency = "urgent"
        db.commit()
    post(urban, f"/portal/cases/{urgent}/sign")
    assert post(urban, f"/portal/cases/{urgent}/on-site").status_code == 302
    assert case_row(app, urgent).status == "in_progress"
    assert post(urban, f"/portal/cases/{urgent}/on-site").status_code == 422  # once
    assert (
        post(urban, f"/portal/cases/{urgent}/return", {"reason": "属燃气公司"}).status_code == 302
    )
    assert case_row(app, urgent).status == "returned"


def test_the_confirmations_are_on_return_and_resolve(people) -> None:  # type: ignore[no-untyped-def]
    app = people
    number = new_case(app)
    urban = app.test_client()
    sign_in(urban, "urban")
    page = urban.get(f"/portal/cases/{number}").get_data(as_text=True)
    # Before signing for it, the unit may return it but not resolve it.
    assert 'data-confirm="确定退单吗？' in page and 'id="resolve-form"' not in page
    assert "签收后可办结" in page
    post(urban, f"/portal/cases/{number}/sign", {})
    page = urban.get(f"/portal/cases/{number}").get_data(as_text=True)
    assert 'data-confirm="确定退单吗？' in page and 'data-confirm="确定办结吗？' in page
    post(urban, "/language", {"lang": "en", "next": "/portal/"})
    page = urban.get(f"/portal/cases/{number}").get_data(as_text=True)
    assert 'data-confirm="Return this dispatch?' in page


@pytest.fixture
def served(people, tmp_path):  # type: ignore[no-untyped-def]
    """The app over real HTTP (a threaded werkzeug server), with the real push process
    for its event stream; pages link the stream on the push process's port."""
    from werkzeug.serving import make_server

    from tests.push_rig import start_push, stop, with_push_port

    settings = people.extensions["hotline_settings"]
    env = with_push_port(
        {
            **os.environ,
            "HOTLINE_VAR_DIR": str(settings.var_dir),
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "HOTLINE_SECRET_KEY": settings.secret_key,
        }
    )
    people.config["PUSH_PUBLIC_PORT"] = env["HOTLINE_PUSH_PUBLIC_PORT"]
    log = open(tmp_path / "push.log", "ab")  # noqa: SIM115
    push = start_push(env, log)
    server = make_server("127.0.0.1", 0, people, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield people, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        stop(push)
        log.close()


def http_sign_in(base: str, username: str):  # type: ignore[no-untyped-def]
    import requests

    web = requests.Session()
    token = csrf_of(web.get(base + "/login", timeout=5).text)
    r = web.post(
        base + "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        timeout=5,
    )
    assert r.ok
    return web


def first_inbox_event(web, stream_url: str, since: str, then) -> str:  # type: ignore[no-untyped-def]
    """Open the inbox stream (the push process's) at ``since``, do ``then``, and return
    the id of the first ``inbox`` event (a read times out after 10 s: a poll is every
    2 s)."""
    with web.get(stream_url, params={"since": since}, stream=True, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        then()
        event_id = None
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("id: "):
                event_id = line[4:]
            if line == "event: inbox":
                assert event_id is not None
                return event_id
    raise AssertionError("the stream ended without an inbox event")


def test_the_inbox_stream_tells_the_page_when_a_case_arrives_or_leaves(served) -> None:  # type: ignore[no-untyped-def]
    from cases.models import Department
    from web.portal.routes import inbox_version

    app, base = served
    svc = app.extensions["hotline"]
    urban = http_sign_in(base, "urban")
    page = urban.get(base + "/portal/", timeout=5).text
    stream_url, since = re.search(r'sse-connect="([^"?]+)\?since=([^"]+)"', page).groups()
    since = unquote_plus(since)
    assert stream_url.endswith("/portal/events") and not stream_url.startswith(base)
    with svc.handler.directory.sessions() as db:
        unit = db.scalar(select(Department.id).where(Department.code == "urban-management"))
        assert inbox_version(db, unit) == since
        new_case(app, category="power-outage")  # another unit's case changes nothing here
        assert inbox_version(db, unit) == since

    # A case dispatched to the unit: the open stream says so within a poll or two.
    numbers: list[str] = []
    version = first_inbox_event(urban, stream_url, since, lambda: numbers.append(new_case(app)))
    assert version != since
    rows = urban.get(base + "/portal/rows", timeout=5).text
    assert numbers[0] in rows and "<html" not in rows

    # Returned (退单): it leaves the inbox; the stream, resumed from its id, says so.
    def give_back() -> None:
        client = app.test_client()
        sign_in(client, "urban")
        post(client, f"/portal/cases/{numbers[0]}/return", {"reason": "属供电"})

    version = first_inbox_event(urban, stream_url, version, give_back)
    assert numbers[0] not in urban.get(base + "/portal/rows", timeout=5).text

    # Re-dispatched by a supervisor to another lead, with this unit assisting (协办).
    def redispatch() -> None:
        supervisor = app.test_client()
        sign_in(supervisor, "li")
        r = post(
            supervisor,
            f"/console/cases/{numbers[0]}/dispatch",
            {"lead": "power-supply", "assisting": "urban-management"},
        )
        assert r.status_code == 302

    first_inbox_event(urban, stream_url, version, redispatch)
    rows = urban.get(base + "/portal/rows", timeout=5).text
    assert numbers[0] in rows and "协办" in rows


# -- as a clerk and a supervisor use it (the persona review) -----------------------------


def test_the_inbox_says_each_deadline_once_and_lists_urgent_cases_first(people) -> None:  # type: ignore[no-untyped-def]
    app = people
    normal, urgent = new_case(app), new_case(app)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        later = db.scalar(select(Case).where(Case.number == urgent))
        assert later is not None
        later.urgency = "urgent"  # urgent, yet due after the normal one
        later.respond_by = later.respond_by + timedelta(hours=1)
        db.commit()
    urban = app.test_client()
    sign_in(urban, "urban")
    for page in (urban.get("/portal/").text, urban.get("/portal/rows").text):
        rows = re.findall(r'<tr class="inbox-row[^"]*" data-number="([^"]+)"', page)
        assert rows == [urgent, normal]  # urgency first, then the deadline
        for row in page.split('<tr class="inbox-row')[1:]:
            assert row.split("</tr>")[0].count("响应（签收）时限") == 1


def test_a_ranking_with_nothing_due_says_so_instead_of_an_empty_chart(people) -> None:  # type: ignore[no-untyped-def]
    app = people
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    page = supervisor.get("/console/rankings").text
    assert 'id="rankings-chart-empty">暂无数据</p>' in page and 'id="rankings-chart"' not in page
    new_case(app)  # received, but nothing due yet: still no rate to draw
    page = supervisor.get("/console/rankings").text
    assert "市综合行政执法局（城管）" in page and "暂无数据" in page
    with app.extensions["hotline"].handler.directory.sessions() as db:
        for case in db.scalars(select(Case)):
            case.respond_by = datetime.now(UTC) - timedelta(minutes=1)  # now overdue
        db.commit()
    page = supervisor.get("/console/rankings").text
    assert 'id="rankings-chart"' in page and "暂无数据" not in page
