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
