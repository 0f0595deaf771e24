"""The knowledge reviewer's note has its own column (kb_article_version.review_note):
approving or rejecting no longer appends to the writer's note; the review page shows
both, and the last reviewer's note beside the next proposal; migration 0015 moves an
old rejection's note out of the writer's note, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select, text

from cases import knowledge
from cases.db import engine_for
from cases.models import KnowledgeVersion
from tests.test_knowledge_screens import app, article_id, db_of, signed_in  # noqa: F401


def test_the_review_page_shows_the_writers_and_the_reviewers_notes_apart(app) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    water = article_id(app, "小区突然停水怎么办")
    with db_of(app) as db:
        item = db.get(knowledge.KnowledgeArticle, water)
        supply = knowledge.Editor("supply", "department", item.department_id)
        draft = knowledge.ArticleDraft(
            title=item.title, body=item.body + "夜间可拨 96166。", category_code="water-outage"
        )
        first = knowledge.propose(db, supply, draft, water, note="补充夜间抢修电话")
        db.commit()
        first_id = first.id
    editor, _, token = signed_in(app, "kbed", "/console/kb/review")
    decide = f"/console/kb/versions/{first_id}/decide"
    rejection = {"action": "reject", "note": "请注明号码归属", "csrf_token": token}
    r = editor.post(decide, data=rejection)
    assert r.status_code == 303
    with db_of(app) as db:
        rejected = db.get(KnowledgeVersion, first_id)
        assert rejected.note == "补充夜间抢修电话"
        assert rejected.review_note == "请注明号码归属"
        rejected_number = rejected.number
        again = knowledge.propose(db, supply, draft, water, note="已注明：供水公司96166")
        db.commit()
        again_id = again.id

    page = editor.get("/console/kb/review").get_data(as_text=True)
    proposal = page.split(f'id="proposal-{again_id}"', 1)[1].split("</form>", 1)[0]
    assert "修改说明：已注明：供水公司96166" in proposal
    assert f"上次审核意见（第 {rejected_number} 版，已退回）：请注明号码归属" in proposal
    decided = page.split('id="kb-decided"', 1)[1].split("</section>", 1)[0]
    row = decided.split(f'data-version="{first_id}"', 1)[1].split("</tr>", 1)[0]
    assert '<p class="kb-writer-note">补充夜间抢修电话</p>' in row
    assert '<p class="kb-reviewer-note">请注明号码归属</p>' in row and "钱编辑" in row

    r = editor.post(
        f"/console/kb/versions/{again_id}/decide",
        data={"action": "approve", "note": "核实无误", "csrf_token": token},
    )
    assert r.status_code == 303
    with db_of(app) as db:
        approved = db.get(KnowledgeVersion, again_id)
        assert (approved.note, approved.review_note) == ("已注明：供水公司96166", "核实无误")
    history = editor.get(f"/console/kb/articles/{water}/history").get_data(as_text=True)
    assert "修改说明：已注明：供水公司96166" in history and "审核意见：核实无误" in history
    assert "审核意见：请注明号码归属" in history


def test_migration_0015_moves_an_old_rejections_note_to_the_reviewers_column(
    empty_db_url: str,
) -> None:
    from alembic import command

    from cases.db import alembic_config

    command.upgrade(alembic_config(empty_db_url), "0014")
    engine = engine_for(empty_db_url)
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO department (id, code, name, kind)"
                " VALUES (1, 'water', '水务局', 'department')"
            )
        )
        db.execute(
            text(
                "INSERT INTO category (id, code, name, department_id, urgent, handling_days)"
                " VALUES (1, 'water-outage', '停水', 1, false, 3)"
            )
        )
        db.execute(
            text(
                "INSERT INTO kb_article (id, title, body, category_id, department_id, valid_from,"
                " status, version, answered_count, created_at, updated_at) VALUES"
                " (7, '停水', '正文', 1, 1, '2026-01-01', 'published', 1, 0,"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        for number, state, note in (
            (1, "published", "首版\n核实无误"),  # an approval's note: never audited
            (2, "rejected", "施工延期\n延期通知仍有效"),
            (3, "rejected", "请再看看"),  # the writer's note only: the audit differs
            (4, "rejected", "只有审核意见"),
        ):
            db.execute(
                text(
                    "INSERT INTO kb_article_version (article_id, number, title, body,"
                    " category_id, department_id, valid_from, state, written_by, written_at,"
                    " decided_by, decided_at, note) VALUES (7, :n, '停水', '正文', 1, 1,"
                    " '2026-01-01', :s, 'clerk', CURRENT_TIMESTAMP, 'kbed', CURRENT_TIMESTAMP,"
                    " :note)"
                ),
                {"n": number, "s": state, "note": note},
            )
        for detail in ("v2: 延期通知仍有效", "v3: 另一条意见", "v4: 只有审核意见"):
            db.execute(
                text(
                    "INSERT INTO action_log (at, actor, action, target, detail) VALUES"
                    " (CURRENT_TIMESTAMP, 'kbed', 'kb-rejected', 'kb:7', :d)"
                ),
                {"d": detail},
            )
    command.upgrade(alembic_config(empty_db_url), "0015")
    with engine.connect() as db:
        rows = db.execute(
            select(
                KnowledgeVersion.number, KnowledgeVersion.note, KnowledgeVersion.review_note
            ).order_by(KnowledgeVersion.number)
        ).all()
    assert [tuple(r) for r in rows] == [
        (1, "首版\n核实无误", ""),
        (2, "施工延期", "延期通知仍有效"),
        (3, "请再看看", ""),
        (4, "", "只有审核意见"),
    ]
    command.downgrade(alembic_config(empty_db_url), "0014")
    with engine.connect() as db:
        notes = db.execute(text("SELECT note FROM kb_article_version ORDER BY number")).scalars()
        assert list(notes)[1] == "施工延期\n延期通知仍有效"
    engine.dispose()
