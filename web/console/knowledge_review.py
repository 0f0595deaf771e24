"""The knowledge base's review (知识库审核), for admins and knowledge editors: open
proposals with what they change against the published version, approve or reject with
a note (never one's own proposal: cases.knowledge refuses it), the articles that need an
editor (expired, not yet valid, past their review date), and each article's version
history with who wrote and who approved each version."""

from __future__ import annotations

import difflib
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from cases import knowledge
from cases.models import Category, Department, District, KnowledgeVersion, User
from web.auth import desk_actor, language, roles_required
from web.console.routes import bp, sessions
from web.context import services
from web.i18n import TEXT, translate

REVIEWERS = tuple(sorted(knowledge.REVIEWERS))
DIFF_FIELDS = ("title", "body", "category", "unit", "district", "valid_from", "valid_until")


def t(key: str, **values: object) -> str:
    return translate(key, language(), **values)


def refusal(exc: knowledge.KnowledgeError) -> str:
    key = f"kb_err_{exc.code}"
    return t(key) if key in TEXT else t("kb_err_invalid")


def names(db: Any) -> dict[str, dict[int, str]]:
    return {
        "category": dict(db.execute(select(Category.id, Category.name)).all()),
        "unit": dict(db.execute(select(Department.id, Department.name)).all()),
        "district": dict(db.execute(select(District.id, District.name)).all()),
    }


def people(db: Any, usernames: set[str]) -> dict[str, str]:
    """Who wrote and decided, by the names people know them by."""
    rows = db.execute(
        select(User.username, User.display_name).where(User.username.in_(usernames))
    ).all()
    return {u: d or u for u, d in rows}


def fields_of(version: KnowledgeVersion | None, known: dict[str, dict[int, str]]) -> dict[str, str]:
    if version is None:
        return dict.fromkeys(DIFF_FIELDS, "")
    return {
        "title": version.title,
        "body": version.body,
        "category": known["category"].get(version.category_id, ""),
        "unit": known["unit"].get(version.department_id, ""),
        "district": known["district"].get(version.district_id or 0, "") or t("kb_citywide"),
        "valid_from": str(version.valid_from or ""),
        "valid_until": str(version.valid_until or ""),
    }


def char_diff(before: str, after: str) -> list[tuple[str, str]]:
    """(kind, text) pieces, kind one of same, del, ins: Chinese has no lines or spaces
    to diff by, so characters are compared."""
    pieces: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(("same", before[i1:i2]))
            continue
        if i2 > i1:
            pieces.append(("del", before[i1:i2]))
        if j2 > j1:
            pieces.append(("ins", after[j1:j2]))
    return pieces


def last_review(db: Any, version: KnowledgeVersion) -> KnowledgeVersion | None:
    """The article's latest earlier version a reviewer wrote a note on: why the last
    proposal was rejected is what the reviewer of the next one needs first."""
    return db.scalar(
        select(KnowledgeVersion)
        .where(
            KnowledgeVersion.article_id == version.article_id,
            KnowledgeVersion.number < version.number,
            KnowledgeVersion.review_note != "",
        )
        .order_by(KnowledgeVersion.number.desc())
        .limit(1)
    )


def recently_decided(db: Any, limit: int = 20) -> list[KnowledgeVersion]:
    return list(
        db.scalars(
            select(KnowledgeVersion)
            .where(KnowledgeVersion.decided_at.is_not(None))
            .order_by(KnowledgeVersion.decided_at.desc(), KnowledgeVersion.id.desc())
            .limit(limit)
        )
    )


def proposal_view(
    db: Any, version: KnowledgeVersion, known: dict[str, dict[int, str]]
) -> dict[str, Any]:
    published = db.scalar(
        select(KnowledgeVersion).where(
            KnowledgeVersion.article_id == version.article_id,
            KnowledgeVersion.state == "published",
        )
    )
    before, after = fields_of(published, known), fields_of(version, known)
    return {
        "version": version,
        "new": published is None,
        "last_review": last_review(db, version),
        "rows": [
            {
                "field": name,
                "changed": before[name] != after[name],
                "before": before[name],
                "after": after[name],
                "pieces": char_diff(before[name], after[name]),
            }
            for name in DIFF_FIELDS
        ],
    }


@bp.get("/kb/review")
@roles_required(*REVIEWERS)
def kb_review() -> Any:
    query = request.args.get("q", "").strip()[: knowledge.MAX_QUERY]
    editor = knowledge.editor_for(current_user)
    with sessions()() as db:
        known = names(db)
        proposals = [
            proposal_view(db, v, known)
            for v in knowledge.open_proposals(db, editor)
            if v.state == "proposed"
        ]
        flagged = [
            {
                "id": a.id,
                "title": a.title,
                "unit": known["unit"].get(a.department_id, ""),
                "valid_until": a.valid_until,
                "review_on": a.review_on,
                "flags": knowledge.flags(a),
            }
            for a in knowledge.flagged(db)
        ]
        found = knowledge.search(db, query, limit=20) if query else []
        decided = recently_decided(db)
        who = people(
            db,
            {p["version"].written_by for p in proposals}
            | {v.written_by for v in decided}
            | {v.decided_by for v in decided if v.decided_by},
        )
    return render_template(
        "kb_review.html",
        proposals=proposals,
        flagged=flagged,
        found=found,
        decided=decided,
        query=query,
        who=who,
        me=current_user.username,
    )


@bp.post("/kb/versions/<int:version_id>/decide")
@roles_required(*REVIEWERS)
def kb_decide(version_id: int) -> Any:
    """Approve (publish) or reject, with the reviewer's note; the desk audits it."""
    note = request.form.get("note", "")[:2000]
    approving = request.form.get("action") == "approve"
    kb_desk = services().desk.knowledge
    decide = kb_desk.approve if approving else kb_desk.reject
    try:
        title = decide(desk_actor(), version_id, note)
    except knowledge.KnowledgeError as exc:
        flash(refusal(exc), "error")
        return redirect(url_for("console.kb_review") + f"#proposal-{version_id}"), 303
    flash(t("kb_approved" if approving else "kb_rejected", title=title))
    return redirect(url_for("console.kb_review"), 303)


@bp.get("/kb/articles/<int:article_id>/history")
@roles_required(*REVIEWERS)
def kb_history(article_id: int) -> Any:
    with sessions()() as db:
        try:
            item = knowledge.article(db, article_id)
        except knowledge.KnowledgeError:
            return render_template(
                "error.html", code=404, title=t("kb_err_no-article"), text="", detail=""
            ), 404
        known = names(db)
        versions = knowledge.history(db, article_id)
        who = people(
            db, {v.written_by for v in versions} | {v.decided_by for v in versions if v.decided_by}
        )
        rows = [{"v": v, "fields": fields_of(v, known)} for v in versions]
        title, status, current = item.title, item.status, item.version
    return render_template(
        "kb_history.html",
        article_id=article_id,
        title=title,
        status=status,
        current=current,
        rows=rows,
        who=who,
    )
