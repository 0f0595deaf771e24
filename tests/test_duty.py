"""The duty leader's day over HTTP: a supervisor puts a leader on today's roster, the
leader lands on the page of the day, writes an instruction (批示) on an urgent case not
yet signed for, and the unit reads it on its case page, with the leader's name."""

from __future__ import annotations

import re

from tests.test_console import PASSWORD, sign_in


def make_app(redis_server, redis, tmp_path, db_url: str):  # type: ignore[no-untyped-def]
    """The web app on ``db_url`` (SQLite, then PostgreSQL) with a supervisor and the
    water units' users."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user
    from hotline.config import load_settings
    from hotline.webapp import create_app

    upgrade(db_url)
    with session_factory(engine_for(db_url))() as s:
        seed(s)
        s.commit()
        add_user(s, "li", "supervisor", PASSWORD, display_name="李班长")
        add_user(s, "water", "department", PASSWORD, department_code="water-affairs")
    settings = load_settings(
        {
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_server.url,
            "HOTLINE_SECRET_KEY": "test",
        }
    )
    return create_app({"SETTINGS": settings, "REDIS": redis, "TESTING": True})


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def test_todays_duty_leader_instructs_and_the_unit_reads_it(  # type: ignore[no-untyped-def]
    redis_server, redis, tmp_path, empty_db_url
) -> None:
    from cases.duty import beijing_day
    from cases.service import CallInfo, CaseDraft, create_case_for_call
    from cases.users import add_user

    app = make_app(redis_server, redis, tmp_path, empty_db_url)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        add_user(db, "zhang", "leader", PASSWORD, display_name="张区长")
        case = create_case_for_call(
            db,
            CallInfo("c9", "+8613800000009", "asterisk", "1001"),
            CaseDraft(
                description="积水", category_code="waterlogging", dispatch=True, urgency="urgent"
            ),
        )
        db.commit()
        number = case.number
    li = app.test_client()
    sign_in(li, "li")
    d = beijing_day()
    page = li.get(f"/duty/roster?month={d:%Y-%m}").get_data(as_text=True)
    tok = li_tok = csrf(page)
    r = li.post(
        "/duty/roster",
        data={"csrf_token": tok, "month": f"{d:%Y-%m}", f"day-{d.isoformat()}": "zhang"},
    )
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    z = app.test_client()
    assert sign_in(z, "zhang").headers["Location"].endswith("/duty/")  # a leader's home
    page = z.get("/duty/").get_data(as_text=True)
    assert "张区长" in page and f'id="urgent-{number}"' in page  # urgent, not signed for
    tok = csrf(page)
    r = z.post(f"/duty/cases/{number}/instruct", data={"csrf_token": tok, "text": "请立即处置"})
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    page = z.get(r.headers["Location"]).get_data(as_text=True)
    assert "请立即处置" in page
    assert f"已对工单 {number} 作出批示" in page  # the leader is told it went through
    assert 'id="duty-done"' not in z.get("/duty/?done=<b>x</b>").get_data(as_text=True)
    w = app.test_client()
    sign_in(w, "water")
    p = w.get(f"/portal/cases/{number}").get_data(as_text=True)
    assert "领导批示（张区长" in p and "请立即处置" in p
    # A supervisor reads the day, but only the leader on duty writes instructions.
    assert li.post(f"/duty/cases/{number}/instruct", data={"csrf_token": li_tok}).status_code == 403


def test_the_day_says_how_long_past_its_limit_an_overdue_case_is(  # type: ignore[no-untyped-def]
    redis_server, redis, tmp_path, empty_db_url
) -> None:
    from datetime import timedelta

    from cases.service import CallInfo, CaseDraft, create_case_for_call, utcnow
    from cases.users import add_user

    app = make_app(redis_server, redis, tmp_path, empty_db_url)
    numbers = []
    with app.extensions["hotline"].handler.directory.sessions() as db:
        add_user(db, "zhang", "leader", PASSWORD, display_name="张区长")
        for n in range(3):
            case = create_case_for_call(
                db,
                CallInfo(f"late-{n}", "+8613800000009", "asterisk", "1001"),
                CaseDraft(description="积水", category_code="waterlogging", dispatch=True),
            )
            numbers.append(case.number)
            now = utcnow()
            if n == 0:  # nobody has signed for it, 2 h 15 min past the 30 minutes
                case.respond_by = now - timedelta(hours=2, minutes=15, seconds=20)
                case.response_overdue = True
            elif n == 1:  # signed for an hour late
                case.respond_by = now - timedelta(hours=3)
                case.accepted_at = now - timedelta(hours=2)
                case.status = "accepted"
                case.response_overdue = True
            else:  # being handled, a day and three hours past its limit
                case.status = "in_progress"
                case.handle_by = now - timedelta(days=1, hours=3, minutes=1)
                case.handling_overdue = True
        db.commit()
    z = app.test_client()
    sign_in(z, "zhang")
    page = z.get("/duty/").get_data(as_text=True)

    def card(number: str) -> str:
        found = re.search(rf'<article[^>]*id="overdue-{number}".*?</article>', page, re.S)
        assert found, number
        return found.group(0)

    assert "响应已超时2小时15分" in card(numbers[0])
    assert "签收时已超时1小时" in card(numbers[1])
    assert "办理已超时1天3小时" in card(numbers[2])
    assert "−" not in page  # a countdown past zero is said in words, never "−2小时"
    z.post("/language", data={"lang": "en", "csrf_token": csrf(page)})
    page = z.get("/duty/").get_data(as_text=True)
    assert "Response 2 h 15 min overdue" in card(numbers[0])
    assert "Handling 1 d 3 h overdue" in card(numbers[2])
