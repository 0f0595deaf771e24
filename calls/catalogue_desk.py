"""An admin's changes to the dispatch catalogue, each in one transaction and in the
action log with what the category's terms were before."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cases.catalogue import CatalogueError, CategoryTerms, change_category
from cases.users import log_action

if TYPE_CHECKING:
    from calls.desk import Actor, Desk

CATALOGUE_ROLES = ("admin",)


class CatalogueDesk:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def change(self, actor: Actor, code: str, terms: CategoryTerms) -> bool:
        """New terms for a category; returns whether anything changed. Refusals:
        forbidden (403), no-such-category (404), bad-days or no-unit (422)."""
        from calls.desk import DeskError

        if actor.role not in CATALOGUE_ROLES:
            raise DeskError("forbidden", 403)
        with self.desk.sessions() as db:
            try:
                before, after = change_category(db, code, terms)
            except CatalogueError as exc:
                status = 404 if exc.code == "no-category" else 422
                raise DeskError(f"catalogue-{exc.code}", status, {"detail": exc.detail}) from None
            if before == after:
                return False
            detail = f"{before.described()} -> {after.described()}"
            log_action(db, actor.username, "catalogue-changed", code, detail)
            db.commit()
        return True
