"""The department portal's knowledge base (本单位知识): a unit's staff see their unit's
articles, propose a change to one or a new article (title, answer, category, district,
validity dates, review date), and follow their proposals to the reviewer's decision
and note. Only their own unit's: the form has no unit to choose, and another unit's
article is not found; cases.knowledge refuses it besides."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from calls.desk import DeskError
from cases import knowledge
from cases.models import Category, Department, District, KnowledgeArticle, KnowledgeVersion
from web.auth import desk_actor, language, roles_required
from web.context import services
from web.i18n import TEXT, translate
from web.portal.routes import bp, my_unit, sessions

PROPOSALS_SHOWN = 50


class BadDate(ValueError):
    pass


def t(key: str, **values: object) -> str:
    return translate(key, language(), **values)


def refusal(code: str) -> str:
    key = f"kb_err_{code}"
    return t(key) if key in TEXT else t("kb_err_invalid")


def typed_date(name: str) -> date | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadDate(name) from None


def choices(db: Any) -> dict[str, Any]:
    return {
        "categories": db.execute(select(Category.code, Category.name).order_by(Category.id)).all(),
        "districts": db.execute(select(District.code, District.name).order_by(District.id)).all(),
    }


def own_article(db: Any, article_id: int) -> KnowledgeArticle:
    """The unit's own article; another unit's is not found, as if it did not exist."""
    item = db.get(
        KnowledgeArticle,
        article_id,
        options=[selectinload(KnowledgeArticle.category), selectinload(KnowledgeArticle.district)],
    )
    if item is None or item.department_id != my_unit():
        abort(404)
    return item  # type: ignore[no-any-return]


@bp.get("/kb")
@roles_required("department")
def kb_home() -> Any:
    unit = my_unit()
    with sessions()() as db:
        department = db.get(Department, unit) if unit else None
        articles = db.scalars(
            select(KnowledgeArticle)
            .where(KnowledgeArticle.department_id == (unit or -1))
            .options(selectinload(KnowledgeArticle.category))
            .order_by(KnowledgeArticle.status != "published", KnowledgeArticle.title)
        ).all()
        proposals = db.scalars(
            select(KnowledgeVersion)
            .where(
                or_(
                    KnowledgeVersion.department_id == (unit or -1),
                    KnowledgeVersion.written_by == current_user.username,
                ),
                KnowledgeVersion.written_by != knowledge.SEED_AUTHOR,
            )
            .order_by(KnowledgeVersion.written_at.desc(), KnowledgeVersion.id.desc())
            .limit(PROPOSALS_SHOWN)
        ).all()
        rows = [
            {"a": a, "flags": knowledge.flags(a), "category": a.category.name} for a in articles
        ]
    return render_template(
        "portal_kb.html",
        department=department,
        articles=rows,
        proposals=proposals,
        me=current_user.username,
    )


def form_page(
    article_id: int | None, values: dict[str, Any], error: str | None = None, status: int = 200
) -> Any:
    with sessions()() as db:
        item = own_article(db, article_id) if article_id else None
        page = choices(db) | {
            "article": {"id": item.id, "title": item.title} if item else None,
            "values": values,
            "error": error,
        }
    return render_template("portal_kb_form.html", **page), status


@bp.get("/kb/new")
@roles_required("department")
def kb_new() -> Any:
    return form_page(None, {})


@bp.get("/kb/<int:article_id>/change")
@roles_required("department")
def kb_change(article_id: int) -> Any:
    with sessions()() as db:
        item = own_article(db, article_id)
        values = {
            "title": item.title,
            "body": item.body,
            "category_code": item.category.code,
            "district_code": item.district.code if item.district else "",
            "valid_from": item.valid_from.isoformat(),
            "valid_until": item.valid_until.isoformat() if item.valid_until else "",
            "review_on": item.review_on.isoformat() if item.review_on else "",
        }
    return form_page(article_id, values)


@bp.post("/kb/new", defaults={"article_id": None})
@bp.post("/kb/<int:article_id>/change")
@roles_required("department")
def kb_propose(article_id: int | None) -> Any:
    """A proposal for the reviewers, always for the clerk's own unit (the desk's rule)."""
    values = {k: request.form.get(k, "") for k in FORM_FIELDS}
    try:
        draft = knowledge.ArticleDraft(
            title=values["title"][:200],
            body=values["body"][:20000],
            category_code=values["category_code"],
            district_code=values["district_code"] or None,
            valid_from=typed_date("valid_from"),
            valid_until=typed_date("valid_until"),
            review_on=typed_date("review_on"),
        )
        services().desk.knowledge.propose(
            desk_actor(), draft, article_id, note=values["note"][:2000]
        )
    except BadDate:
        return form_page(article_id, values, refusal("bad-date"), 422)
    except knowledge.KnowledgeError as exc:
        return form_page(article_id, values, refusal(exc.code), 422)
    except DeskError as exc:
        abort(exc.status)
    flash(t("kb_proposal_sent"))
    return redirect(url_for("portal.kb_home"), 303)


FORM_FIELDS = (
    "title",
    "body",
    "category_code",
    "district_code",
    "valid_from",
    "valid_until",
    "review_on",
    "note",
)


@bp.post("/kb/versions/<int:version_id>/withdraw")
@roles_required("department")
def kb_withdraw(version_id: int) -> Any:
    try:
        services().desk.knowledge.withdraw(desk_actor(), version_id)
    except knowledge.KnowledgeError as exc:
        flash(refusal(exc.code), "error")
        return redirect(url_for("portal.kb_home"), 303)
    flash(t("kb_withdrawn"))
    return redirect(url_for("portal.kb_home"), 303)
