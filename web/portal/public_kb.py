"""The citizens' view of the knowledge base (政策问答): no sign-in, read only, large type
on a phone. Only published articles in force are found or shown: never a draft, a
proposal, a retired article, nor one expired, not yet valid or past its review date
(those may no longer be true). Searches are limited per address, like the lookup, and
counted in the service's Redis (web.limits)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, render_template, request
from flask_limiter import RateLimitExceeded
from sqlalchemy.orm import selectinload

from cases import knowledge
from cases.models import KnowledgeArticle
from web.auth import language
from web.context import services
from web.limits import limiter
from web.portal.lookup import wait_words

bp = Blueprint("kb_public", __name__, url_prefix="/kb")

READS_PER_ADDRESS = "60 per minute"  # a person reads a handful; a scraper is slowed
RESULTS = 20
PREVIEW_CHARS = 80


@bp.errorhandler(RateLimitExceeded)
def too_many(exc: RateLimitExceeded) -> Any:
    breached = limiter.current_limit
    seconds = breached.reset_at - time.time() if breached else exc.limit.limit.get_expiry()
    return render_template(
        "kb_public.html",
        hits=[],
        query=request.args.get("q", "")[:100],
        slow=wait_words(seconds, language()),
    ), 429


@bp.get("/")
@limiter.limit(READS_PER_ADDRESS, scope="kb-public")
def search() -> Any:
    query = request.args.get("q", "").strip()[: knowledge.MAX_QUERY]
    hits: list[dict[str, Any]] = []
    if query:
        with services().desk.sessions() as db:
            found = knowledge.search(db, query, limit=RESULTS, usable_only=True)
        hits = [
            {
                "id": h.id,
                "title": h.title,
                "preview": h.body[:PREVIEW_CHARS] + ("…" if len(h.body) > PREVIEW_CHARS else ""),
                "unit": h.unit,
            }
            for h in found
        ]
    return render_template("kb_public.html", hits=hits, query=query, asked=bool(query))


@bp.get("/<int:article_id>")
@limiter.limit(READS_PER_ADDRESS, scope="kb-public")
def article(article_id: int) -> Any:
    with services().desk.sessions() as db:
        item = db.get(
            KnowledgeArticle,
            article_id,
            options=[
                selectinload(KnowledgeArticle.department),
                selectinload(KnowledgeArticle.district),
            ],
        )
        if item is None or item.status != "published" or knowledge.flags(item):
            abort(404)
        view = {
            "id": item.id,
            "title": item.title,
            "body": item.body,
            "unit": item.department.name,
            "district": item.district.name if item.district else "",
            "updated": item.updated_at,
        }
    return render_template("kb_public_article.html", a=view, query=request.args.get("q", "")[:100])
