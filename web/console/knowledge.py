"""The knowledge base (知识库) in the operator console: suggestions beside the pop from
the case's category and the words of its description, search one keystroke away ("/"),
an article's answer in full, and 答复自本条知识, which files the call's case as
answered on the phone (直接答复) through the desk and links the article.

The panel is the operator's own include (``_kb_panel.html``); its fragments are drawn
here and fetched by htmx and ``static/kb.js`` (no inline script: the CSP forbids it)."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request
from sqlalchemy.orm import selectinload

from calls.desk import DeskError
from cases import knowledge
from cases.models import KnowledgeArticle
from cases.service import InvalidForm
from web.auth import desk_actor, language, roles_required
from web.console.catalogue import catalogue, category_code_for
from web.console.routes import (
    OPERATORS,
    SUPERVISORS,
    bp,
    form_error,
    form_from_request,
    pop_view,
    sessions,
)
from web.context import services

SUGGESTIONS = 5
RESULTS = 8
PREVIEW_CHARS = 60


def hit_rows(hits: list[knowledge.ArticleHit]) -> list[dict[str, Any]]:
    return [
        {
            "id": h.id,
            "title": h.title,
            "preview": h.body[:PREVIEW_CHARS] + ("…" if len(h.body) > PREVIEW_CHARS else ""),
            "category": h.category,
            "unit": h.unit,
            "district": h.district,
            "answered": h.answered_count,
            "flags": h.flags,
        }
        for h in hits
    ]


@bp.get("/kb/suggest")
@roles_required(*OPERATORS, *SUPERVISORS)
def kb_suggest() -> Any:
    """Articles for the call beside the pop: from the category typed in the case form
    (its name, code or pinyin) and the words of the description."""
    category = category_code_for(request.args.get("category_code", "")[:64]) or None
    description = request.args.get("description", "")[: knowledge.MAX_QUERY * 4]
    with sessions()() as db:
        try:
            hits = knowledge.suggest(db, category, description, SUGGESTIONS)
        except knowledge.KnowledgeError:  # a category the catalogue does not know (yet)
            hits = knowledge.suggest(db, None, description, SUGGESTIONS)
    return render_template(
        "_kb_hits.html", hits=hit_rows(hits), kind="suggest", asked=bool(category or description)
    )


@bp.get("/kb/search")
@roles_required(*OPERATORS, *SUPERVISORS)
def kb_search() -> Any:
    """Search as the operator types: flagged articles are shown with their flags."""
    query = request.args.get("q", "").strip()[: knowledge.MAX_QUERY]
    hits: list[knowledge.ArticleHit] = []
    if query:
        with sessions()() as db:
            hits = knowledge.search(db, query, limit=RESULTS)
    return render_template("_kb_hits.html", hits=hit_rows(hits), kind="search", asked=bool(query))


def article_view(db: Any, article_id: int) -> dict[str, Any]:
    item = db.get(
        KnowledgeArticle,
        article_id,
        options=[
            selectinload(KnowledgeArticle.category),
            selectinload(KnowledgeArticle.department),
            selectinload(KnowledgeArticle.district),
        ],
    )
    if item is None or item.status != "published":
        abort(404)
    return {
        "id": item.id,
        "title": item.title,
        "body": item.body,
        "category": item.category.name,
        "category_code": item.category.code,
        "unit": item.department.name,
        "district": item.district.name if item.district else "",
        "valid_from": item.valid_from,
        "valid_until": item.valid_until,
        "review_on": item.review_on,
        "version": item.version,
        "answered": item.answered_count,
        "flags": knowledge.flags(item),
    }


@bp.get("/kb/articles/<int:article_id>")
@roles_required(*OPERATORS, *SUPERVISORS)
def kb_article(article_id: int) -> Any:
    """An article's answer in full, with 答复自本条知识 when a call is on the pop."""
    call = request.args.get("call", "")[:128] or None
    with sessions()() as db:
        view = article_view(db, article_id)
    return render_template("_kb_article.html", a=view, call=call)


@bp.post("/calls/<call>/kb-answer")
@roles_required(*OPERATORS, *SUPERVISORS)
def kb_answer(call: str) -> Any:
    """答复自本条知识: the case form as typed, filed as answered on the phone with the
    article linked (the desk checks who may, and that the case is not dispatched). The
    case form comes back filed; the panel says which article answered."""
    desk, actor = services().desk, desk_actor()
    desk.call(actor, call)  # another operator's call is a 404
    article_id = request.form.get("article_id", type=int) or 0
    popped = pop_view(call)
    values = dict(request.form.items()) | {"outcome": "resolved"}
    page = {
        "call": call,
        "values": values,
        "open_cases": popped["open_cases"] if popped else [],
        **catalogue(),
    }
    form = form_from_request()
    try:
        case = desk.answer_from_article(actor, call, article_id, form)
    except InvalidForm as exc:
        return render_template("_kb_answered.html", error=form_error(exc), **page), 422
    except DeskError as exc:
        return render_template("_kb_answered.html", refused=exc.words(language()), **page), 409
    with sessions()() as db:
        view = article_view(db, article_id)
    page["values"] = values | {"category_code": values.get("category_code") or view["category"]}
    return render_template("_kb_answered.html", filed=case, answered=view, **page)
