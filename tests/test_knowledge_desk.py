"""The knowledge base's desk called directly (real redis-server, SQLite seeded with the
shipped articles): a unit proposes and withdraws only as a unit's staff and only for its
own unit's articles, a reviewer approves or rejects, each in one audited transaction; a
role that may not act is refused 403, and a domain refusal leaves nothing written."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select

from calls.desk import Actor, DeskError
from cases import knowledge
from cases.models import ActionLog, Department, KnowledgeArticle, KnowledgeVersion
from tests.test_console import PASSWORD, make_app

WATER = knowledge.ArticleDraft(
    title="停水期间的临时供水点",
    body="计划停水期间，各社区设临时供水点，请留意社区通知。",
    category_code="water-outage",
    unit_code="water-supply",
    valid_from=date(2026, 1, 1),
)


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.users import add_user

    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].desk.sessions() as db:
        add_user(db, "kbed", "knowledge_editor", PASSWORD)
        add_user(db, "supply", "department", PASSWORD, department_code="water-supply")
        knowledge.import_published(db, [WATER], "test")
        db.commit()
    return app


def desk_of(app):  # type: ignore[no-untyped-def]
    return app.extensions["hotline"].desk


def unit_id(app, code: str) -> int:  # type: ignore[no-untyped-def]
    with desk_of(app).sessions() as db:
        found = db.scalar(select(Department.id).where(Department.code == code))
    assert found is not None, code
    return int(found)


def water_article(app) -> int:  # type: ignore[no-untyped-def]
    with desk_of(app).sessions() as db:
        found = db.scalar(select(KnowledgeArticle.id).where(KnowledgeArticle.title == WATER.title))
    assert found is not None
    return int(found)


def supply(app) -> Actor:  # type: ignore[no-untyped-def]
    return Actor("supply", "department", unit_id(app, "water-supply"))


EDITOR = Actor("kbed", "knowledge_editor")


def change(title: str) -> knowledge.ArticleDraft:
    return knowledge.ArticleDraft(
        title=title, body="供水点改设在社区服务中心门口。", category_code="water-outage"
    )


def logged(app, action: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with desk_of(app).sessions() as db:
        rows = db.execute(
            select(ActionLog.actor, ActionLog.target).where(ActionLog.action == action)
        ).all()
    return [(a, t) for a, t in rows]


def version(app, version_id: int) -> KnowledgeVersion:  # type: ignore[no-untyped-def]
    with desk_of(app).sessions() as db:
        found = db.get(KnowledgeVersion, version_id)
        assert found is not None
        db.expunge(found)
    return found  # type: ignore[no-any-return]


def test_a_unit_proposes_a_change_to_its_own_article_for_its_own_unit(app) -> None:  # type: ignore[no-untyped-def]
    desk, article = desk_of(app).knowledge, water_article(app)
    for who in (Actor("wang", "operator"), EDITOR, Actor("boss", "admin")):
        with pytest.raises(DeskError) as refused:
            desk.propose(who, change("不该写入"), article)
        assert refused.value.status == 403
    # Another unit's clerk does not find the article at all.
    other = Actor("water", "department", unit_id(app, "water-affairs"))
    with pytest.raises(DeskError) as refused:
        desk.propose(other, change("别人的知识"), article)
    assert (refused.value.code, refused.value.status) == ("kb-no-article", 404)
    # The draft's unit is not the clerk's to choose: it is always their own.
    draft = replace(change("停水期间临时供水点调整"), unit_code="water-affairs")
    version_id = desk.propose(supply(app), draft, article, note="地点变了")
    proposal = version(app, version_id)
    assert (proposal.state, proposal.written_by, proposal.note) == (
        "proposed",
        "supply",
        "地点变了",
    )
    assert proposal.department_id == unit_id(app, "water-supply")
    assert logged(app, "kb-proposed") == [("supply", f"kb:{article}")]
    # A second open proposal is the domain's refusal, and writes nothing.
    with pytest.raises(knowledge.KnowledgeError) as domain:
        desk.propose(supply(app), change("又一次修改"), article)
    assert domain.value.code == "open-proposal"
    assert logged(app, "kb-proposed") == [("supply", f"kb:{article}")]


def test_only_the_writer_withdraws_a_proposal(app) -> None:  # type: ignore[no-untyped-def]
    desk = desk_of(app).knowledge
    version_id = desk.propose(supply(app), change("新的供水点安排"))
    with pytest.raises(DeskError) as refused:
        desk.withdraw(EDITOR, version_id)
    assert refused.value.status == 403
    colleague = Actor("supply2", "department", unit_id(app, "water-supply"))
    with pytest.raises(knowledge.KnowledgeError) as domain:
        desk.withdraw(colleague, version_id)
    assert domain.value.code == "not-yours"
    assert version(app, version_id).state == "proposed"
    desk.withdraw(supply(app), version_id)
    assert version(app, version_id).state == "withdrawn"
    assert [a for a, _ in logged(app, "kb-withdrawn")] == ["supply"]


def test_a_reviewer_approves_a_proposal_and_it_is_published(app) -> None:  # type: ignore[no-untyped-def]
    desk, article = desk_of(app).knowledge, water_article(app)
    version_id = desk.propose(supply(app), change("停水期间临时供水点调整"), article)
    for who in (supply(app), Actor("li", "supervisor")):
        with pytest.raises(DeskError) as refused:
            desk.approve(who, version_id, "")
        assert refused.value.status == 403
    assert version(app, version_id).state == "proposed"
    assert desk.approve(EDITOR, version_id, "核实无误") == "停水期间临时供水点调整"
    approved = version(app, version_id)
    assert (approved.state, approved.decided_by, approved.review_note) == (
        "published",
        "kbed",
        "核实无误",
    )
    with desk_of(app).sessions() as db:
        item = db.get(KnowledgeArticle, article)
        assert item is not None
        assert (item.title, item.status) == ("停水期间临时供水点调整", "published")
    assert logged(app, "kb-published") == [("kbed", f"kb:{article}")]


def test_a_reviewer_rejects_a_proposal_with_a_note(app) -> None:  # type: ignore[no-untyped-def]
    desk, article = desk_of(app).knowledge, water_article(app)
    version_id = desk.propose(supply(app), change("不准确的修改"), article)
    with pytest.raises(DeskError) as refused:
        desk.reject(Actor("wang", "operator"), version_id, "不对")
    assert refused.value.status == 403
    with pytest.raises(knowledge.KnowledgeError) as domain:
        desk.reject(EDITOR, version_id, "  ")
    assert domain.value.code == "needs-note"
    assert version(app, version_id).state == "proposed"
    assert desk.reject(Actor("boss", "admin"), version_id, "地点不对") == "不准确的修改"
    rejected = version(app, version_id)
    assert (rejected.state, rejected.decided_by, rejected.review_note) == (
        "rejected",
        "boss",
        "地点不对",
    )
    assert logged(app, "kb-rejected") == [("boss", f"kb:{article}")]
