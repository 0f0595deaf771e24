"""Changes to the knowledge base made by people: a unit's staff propose a new article or
a change to one of their unit's own, and withdraw their proposals; an admin or a
knowledge editor approves (publishes) or rejects a proposal with a note. Each is one
transaction, audited by cases.knowledge (kb-proposed, kb-withdrawn, kb-published,
kb-rejected). The domain's refusals (KnowledgeError) pass through for the screens to
word, and leave nothing written (the session closes uncommitted); who may act at all
is refused here (DeskError forbidden, 403)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cases import knowledge
from cases.models import Department, KnowledgeArticle

if TYPE_CHECKING:
    from calls.desk import Actor, Desk

PROPOSER_ROLES = ("department",)
REVIEWER_ROLES = tuple(sorted(knowledge.REVIEWERS))


def editor_of(actor: Actor) -> knowledge.Editor:
    return knowledge.Editor(actor.username, actor.role, actor.department_id)


class KnowledgeDesk:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    @staticmethod
    def _allow(actor: Actor, roles: tuple[str, ...]) -> None:
        from calls.desk import DeskError

        if actor.role not in roles:
            raise DeskError("forbidden", 403)

    def propose(
        self,
        actor: Actor,
        draft: knowledge.ArticleDraft,
        article_id: int | None = None,
        note: str = "",
    ) -> int:
        """A proposal for the reviewers, always for the actor's own unit (the draft's
        unit is ignored); a change only to the unit's own article, another unit's is
        not found (kb-no-article, 404). Returns the new version's id."""
        from calls.desk import DeskError

        self._allow(actor, PROPOSER_ROLES)
        with self.desk.sessions() as db:
            if article_id is not None:
                item = db.get(KnowledgeArticle, article_id)
                if item is None or item.department_id != actor.department_id:
                    raise DeskError("kb-no-article", 404)
            unit = db.get(Department, actor.department_id) if actor.department_id else None
            draft = replace(draft, unit_code=unit.code if unit else "")
            version = knowledge.propose(db, editor_of(actor), draft, article_id, note=note)
            version_id = version.id
            db.commit()
        return version_id

    def withdraw(self, actor: Actor, version_id: int) -> None:
        """The writer takes back their draft or proposal."""
        self._allow(actor, PROPOSER_ROLES)
        with self.desk.sessions() as db:
            knowledge.withdraw(db, editor_of(actor), version_id)
            db.commit()

    def approve(self, actor: Actor, version_id: int, note: str = "") -> str:
        """Publish a proposal (never one's own); returns the article's title."""
        self._allow(actor, REVIEWER_ROLES)
        with self.desk.sessions() as db:
            title = knowledge.approve(db, editor_of(actor), version_id, note).title
            db.commit()
        return title

    def reject(self, actor: Actor, version_id: int, note: str) -> str:
        """Refuse a proposal, saying why; returns the proposal's title."""
        self._allow(actor, REVIEWER_ROLES)
        with self.desk.sessions() as db:
            title = knowledge.reject(db, editor_of(actor), version_id, note).title
            db.commit()
        return title
