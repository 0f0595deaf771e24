"""The knowledge base's screens over Flask's client, against a real redis-server and
SQLite seeded with the shipped articles: the console's panel (suggestions, search, an
article in full, 答复自本条知识 through the desk), the two figures on the wallboard and
the rankings page, the department portal's proposals, the review (diff, approve,
reject, self-approval refused, history) and the citizens' public view (only published
articles in force; rate-limited). Each role is refused what is not its own, and every
form needs its CSRF token."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from cases import knowledge
from cases.models import (
    ActionLog,
    Case,
    KnowledgeAnswer,
    KnowledgeArticle,
    KnowledgeVersion,
)
from tests.test_console import PASSWORD, csrf_of, make_app, sign_in

STALE = knowledge.ArticleDraft(
    title="二〇二五年春节期间停水安排",
    body="春节期间计划停水的安排已经结束，本条仅供查阅。",
    category_code="water-outage",
    valid_from=date(2025, 1, 1),
    valid_until=date(2025, 2, 28),
)


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.users import add_user

    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        add_user(db, "zhao", "operator", PASSWORD, display_name="赵敏", seat="1002")
        add_user(db, "kbed", "knowledge_editor", PASSWORD, display_name="钱编辑")
        add_user(db, "boss", "admin", PASSWORD, display_name="孙管理员")
        add_user(db, "supply", "department", PASSWORD, department_code="water-supply")
        knowledge.import_published(db, [STALE], "test")
        db.commit()
    return app


def db_of(app):  # type: ignore[no-untyped-def]
    return app.extensions["hotline"].handler.directory.sessions()


def article_id(app, title: str) -> int:  # type: ignore[no-untyped-def]
    with db_of(app) as db:
        found = db.scalar(select(KnowledgeArticle.id).where(KnowledgeArticle.title == title))
    assert found is not None, title
    return found


def signed_in(app, username: str, page: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert sign_in(client, username).status_code == 302
    html = client.get(page).get_data(as_text=True)
    return client, {"X-CSRFToken": csrf_of(html)}, csrf_of(html)


def on_a_call(app, client, headers, call: str, seat: str = "1001") -> None:  # type: ignore[no-untyped-def]
    handler = app.extensions["hotline"].handler
    r = client.post(
        "/console/seat/login", data={"seat": seat, "skills": "mandarin"}, headers=headers
    )
    assert r.status_code == 204
    handler.start(call, "13800000021", "12345", "asterisk", 0.0)
    assert handler.seat_answered(call, seat, 1.0)


# -- the console ------------------------------------------------------------------------


def test_the_operator_gets_suggestions_searches_reads_and_answers_from_an_article(app) -> None:  # type: ignore[no-untyped-def]
    client, headers, _ = signed_in(app, "wang", "/console/")
    on_a_call(app, client, headers, "c-kb")
    page = client.get("/console/").get_data(as_text=True)
    assert 'id="kb-panel"' in page and 'aria-keyshortcuts="/"' in page
    assert "kb.js" in page and "<script>" not in page  # CSP: no inline script

    # Suggestions from the category typed in the form and the words of the description.
    suggested = client.get(
        "/console/kb/suggest",
        query_string={"category_code": "停水", "description": "家里突然停水了"},
    ).get_data(as_text=True)
    assert "小区突然停水怎么办" in suggested
    assert "二〇二五年春节期间停水安排" not in suggested  # expired: never suggested
    # Search one keystroke away: a two-character word, and flagged articles with flags.
    found = client.get("/console/kb/search", query_string={"q": "噪音"}).get_data(as_text=True)
    assert "夜间建筑施工噪音的投诉" in found
    stale = client.get("/console/kb/search", query_string={"q": "春节 停水"}).get_data(as_text=True)
    assert "二〇二五年春节期间停水安排" in stale and "已过期" in stale

    water = article_id(app, "小区突然停水怎么办")
    reader = client.get(f"/console/kb/articles/{water}", query_string={"call": "c-kb"})
    html = reader.get_data(as_text=True)
    with db_of(app) as db:
        body = db.get(KnowledgeArticle, water).body
    assert body in html  # the whole answer, to read out
    assert "答复自本条知识" in html and 'hx-include="#case-form"' in html
    assert "water-outage" not in html.replace("hx-", "")  # names, never codes
    expired = client.get(
        f"/console/kb/articles/{article_id(app, STALE.title)}", query_string={"call": "c-kb"}
    ).get_data(as_text=True)
    assert "答复自本条知识" not in expired and "不能用于答复" in expired

    form = {"article_id": str(water), "description": "询问停水原因", "category_code": ""}
    assert client.post("/console/calls/c-kb/kb-answer", data=form).status_code == 400  # CSRF
    other, other_headers, _ = signed_in(app, "zhao", "/console/")
    assert (
        other.post("/console/calls/c-kb/kb-answer", data=form, headers=other_headers).status_code
        == 404
    )
    refused = client.post(
        "/console/calls/c-kb/kb-answer",
        data=form | {"article_id": str(article_id(app, STALE.title))},
        headers=headers,
    )
    assert refused.status_code == 409 and "已过期" in refused.get_data(as_text=True)

    r = client.post("/console/calls/c-kb/kb-answer", data=form, headers=headers)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'id="case-filed"' in html and 'id="kb-answered"' in html
    assert "小区突然停水怎么办" in html and 'hx-swap-oob="true"' in html
    with db_of(app) as db:
        case = db.scalar(select(Case).where(Case.call_id == "c-kb"))
        assert case.status == "resolved" and case.dispatched_at is None  # 直接答复
        assert case.category.code == "water-outage" and case.description == "询问停水原因"
        answer = db.scalar(select(KnowledgeAnswer).where(KnowledgeAnswer.case_id == case.id))
        assert answer.article_id == water and answer.answered_by == "wang"
        assert db.get(KnowledgeArticle, water).answered_count == 1
        actions = set(db.scalars(select(ActionLog.action).where(ActionLog.actor == "wang")))
        assert {"answered-from-article", "kb-answered"} <= actions

    # Both figures move on the wallboard: one case from a call, answered from an article.
    supervisor, _, _ = signed_in(app, "li", "/console/wallboard")
    board = supervisor.get("/console/wallboard").get_data(as_text=True)
    assert "知识库直接答复率" in board and "一次办结率" in board
    assert '<dd id="fig-kb-rate">100.0%</dd>' in board
    assert '<dd id="fig-first-contact">100.0%</dd>' in board
    rankings = supervisor.get("/console/rankings").get_data(as_text=True)
    assert '<dd id="fig-kb-rate">100.0%</dd>' in rankings


def test_a_dispatched_case_cannot_be_marked_as_answered_from_an_article(app) -> None:  # type: ignore[no-untyped-def]
    client, headers, _ = signed_in(app, "wang", "/console/")
    on_a_call(app, client, headers, "c-sent")
    r = client.post(
        "/console/calls/c-sent/case",
        data={"category_code": "停水", "description": "停水三天", "outcome": "dispatch"},
        headers=headers,
    )
    assert "已派单" in r.get_data(as_text=True)
    water = article_id(app, "小区突然停水怎么办")
    r = client.post(
        "/console/calls/c-sent/kb-answer", data={"article_id": str(water)}, headers=headers
    )
    assert r.status_code == 409 and "已派单或已处理" in r.get_data(as_text=True)
    with db_of(app) as db:
        assert db.scalar(select(KnowledgeAnswer.id)) is None


def test_an_operator_cannot_open_the_review_nor_decide(app) -> None:  # type: ignore[no-untyped-def]
    client, headers, _ = signed_in(app, "wang", "/console/")
    assert client.get("/console/kb/review").status_code == 403
    assert (
        client.post(
            "/console/kb/versions/1/decide", data={"action": "approve"}, headers=headers
        ).status_code
        == 403
    )
    department, _, _ = signed_in(app, "water", "/portal/")
    assert department.get("/console/kb/search?q=停水").status_code == 403


# -- the portal and the review ----------------------------------------------------------


def test_a_unit_proposes_for_its_own_articles_and_an_editor_decides(app) -> None:  # type: ignore[no-untyped-def]
    supply, _, token = signed_in(app, "supply", "/portal/kb")
    page = supply.get("/portal/kb").get_data(as_text=True)
    assert "小区突然停水怎么办" in page  # their unit's article
    assert "夜间建筑施工噪音的投诉" not in page  # another unit's
    water = article_id(app, "小区突然停水怎么办")
    noise = article_id(app, "夜间建筑施工噪音的投诉")
    assert supply.get(f"/portal/kb/{noise}/change").status_code == 404  # not theirs
    assert (
        supply.post(
            f"/portal/kb/{noise}/change",
            data={
                "csrf_token": token,
                "title": "x",
                "body": "y",
                "category_code": "construction-noise",
            },
        ).status_code
        == 404
    )

    form = supply.get(f"/portal/kb/{water}/change").get_data(as_text=True)
    assert "小区突然停水怎么办" in form and 'name="review_on"' in form
    with db_of(app) as db:
        old_body = db.get(KnowledgeArticle, water).body
    change = {
        "title": "小区突然停水怎么办",
        "body": old_body + "夜间抢修可拨打 96166。",
        "category_code": "water-outage",
        "district_code": "",
        "valid_from": "2026-01-01",
        "valid_until": "",
        "review_on": "2027-12-31",
        "note": "补充夜间抢修电话",
    }
    assert supply.post(f"/portal/kb/{water}/change", data=change).status_code == 400  # CSRF
    bad = supply.post(
        f"/portal/kb/{water}/change",
        data=change | {"csrf_token": token, "valid_until": "2025-01-01"},
    )
    assert bad.status_code == 422 and "失效日期不能早于生效日期" in bad.get_data(as_text=True)
    r = supply.post(f"/portal/kb/{water}/change", data=change | {"csrf_token": token})
    assert r.status_code == 303
    new = {
        "title": "二次供水水箱清洗时间查询",
        "body": "二次供水水箱每半年清洗一次，清洗前物业会张贴通知。",
        "category_code": "water-outage",
        "district_code": "longhua",
        "valid_from": "",
        "valid_until": "",
        "review_on": "",
        "note": "",
        "csrf_token": token,
    }
    assert supply.post("/portal/kb/new", data=new).status_code == 303
    page = supply.get("/portal/kb").get_data(as_text=True)
    assert "已提交审核" in page and page.count("待审核") >= 2

    # An operator cannot decide; an editor sees the change against the published text.
    editor, _, editor_token = signed_in(app, "kbed", "/console/kb/review")
    review = editor.get("/console/kb/review").get_data(as_text=True)
    assert "<ins>夜间抢修可拨打 96166。</ins>" in review and "补充夜间抢修电话" in review
    assert "二次供水水箱清洗时间查询" in review and "新条目" in review
    with db_of(app) as db:
        change_id = db.scalar(
            select(KnowledgeVersion.id).where(
                KnowledgeVersion.article_id == water, KnowledgeVersion.state == "proposed"
            )
        )
        new_id = db.scalar(
            select(KnowledgeVersion.id).where(KnowledgeVersion.title == new["title"])
        )
    decide = f"/console/kb/versions/{change_id}/decide"
    assert editor.post(decide, data={"action": "approve"}).status_code == 400  # CSRF
    r = editor.post(
        decide, data={"action": "approve", "note": "核实无误", "csrf_token": editor_token}
    )
    assert r.status_code == 303
    assert "已批准发布" in editor.get("/console/kb/review").get_data(as_text=True)
    empty = editor.post(
        f"/console/kb/versions/{new_id}/decide",
        data={"action": "reject", "note": "", "csrf_token": editor_token},
        follow_redirects=True,
    )
    assert "请填写原因" in empty.get_data(as_text=True)
    editor.post(
        f"/console/kb/versions/{new_id}/decide",
        data={"action": "reject", "note": "请写明各区清洗周期", "csrf_token": editor_token},
    )
    with db_of(app) as db:
        assert db.get(KnowledgeArticle, water).body.endswith("夜间抢修可拨打 96166。")
    page = supply.get("/portal/kb").get_data(as_text=True)
    assert "请写明各区清洗周期" in page and "已退回" in page  # the reviewer's note

    # The history: who wrote and who approved each version, by name.
    history = editor.get(f"/console/kb/articles/{water}/history").get_data(as_text=True)
    assert "钱编辑" in history and "supply" in history and "已被新版替代" in history


def test_nobody_approves_their_own_proposal(app) -> None:  # type: ignore[no-untyped-def]
    water = article_id(app, "小区突然停水怎么办")
    with db_of(app) as db:
        item = db.get(KnowledgeArticle, water)
        draft = knowledge.ArticleDraft(
            title=item.title, body=item.body + "（编辑补充）", category_code="water-outage"
        )
        version = knowledge.propose(db, knowledge.Editor("kbed", "knowledge_editor"), draft, water)
        db.commit()
        version_id = version.id
    editor, _, token = signed_in(app, "kbed", "/console/kb/review")
    r = editor.post(
        f"/console/kb/versions/{version_id}/decide",
        data={"action": "approve", "csrf_token": token},
        follow_redirects=True,
    )
    assert "不能审核自己提交的修改" in r.get_data(as_text=True)
    admin, _, admin_token = signed_in(app, "boss", "/console/kb/review")
    assert "知识库审核" in admin.get("/console/admin/users").get_data(as_text=True)  # in the nav
    admin.post(
        f"/console/kb/versions/{version_id}/decide",
        data={"action": "approve", "csrf_token": admin_token},
    )
    with db_of(app) as db:
        assert db.get(KnowledgeVersion, version_id).decided_by == "boss"


def test_a_knowledge_editor_lands_on_the_review_and_sees_flagged_articles(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    r = sign_in(client, "kbed")
    assert r.headers["Location"].endswith("/console/kb/review")
    page = client.get("/console/kb/review").get_data(as_text=True)
    assert "需要处理的知识" in page and STALE.title in page and "已过期" in page
    assert client.get("/console/").status_code == 403


# -- the citizens' view -----------------------------------------------------------------


def test_the_public_reads_only_published_articles_in_force(app) -> None:  # type: ignore[no-untyped-def]
    # A unit's proposal of a new article, never approved.
    supply, _, token = signed_in(app, "supply", "/portal/kb")
    supply.post(
        "/portal/kb/new",
        data={
            "title": "停水补偿标准草稿",
            "body": "尚未审核的停水补偿内容",
            "category_code": "water-outage",
            "csrf_token": token,
        },
    )
    draft_id = article_id(app, "停水补偿标准草稿")
    citizen = app.test_client()  # nobody signed in
    page = citizen.get("/kb/", query_string={"q": "停水"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "小区突然停水怎么办" in html
    assert "停水补偿标准草稿" not in html and STALE.title not in html
    assert citizen.get(f"/kb/{draft_id}").status_code == 404
    assert citizen.get(f"/kb/{article_id(app, STALE.title)}").status_code == 404
    water = article_id(app, "小区突然停水怎么办")
    one = citizen.get(f"/kb/{water}").get_data(as_text=True)
    assert "小区突然停水怎么办" in one and "12345" in one
    # An article past its review date is held back too, until an editor looks at it.
    with db_of(app) as db:
        db.get(KnowledgeArticle, water).review_on = date.today() - timedelta(days=2)
        db.commit()
    assert citizen.get(f"/kb/{water}").status_code == 404


def test_the_public_view_is_rate_limited_per_address(app) -> None:  # type: ignore[no-untyped-def]
    citizen = app.test_client()
    codes = [citizen.get("/kb/", query_string={"q": "噪音"}).status_code for _ in range(61)]
    assert codes[:60] == [200] * 60 and codes[60] == 429
    slow = citizen.get("/kb/?q=噪音")
    assert slow.status_code == 429 and "查询太频繁" in slow.get_data(as_text=True)
    assert "Retry-After" in slow.headers
