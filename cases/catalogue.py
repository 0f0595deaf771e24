"""The dispatch catalogue (派单目录) as an admin edits it: each category's lead unit
(none: the government of the district where it happened), its handling limit in
working days, whether it is urgent, and whether an Open311 request in it goes straight
to its unit."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Category, Department

MIN_DAYS, MAX_DAYS = 1, 60


class CatalogueError(ValueError):
    """A change refused: ``code`` is no-category, bad-days or no-unit."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class CategoryTerms:
    unit_code: str  # '' for the district's government
    handling_days: int
    urgent: bool
    open311_direct: bool

    def described(self) -> str:
        unit = self.unit_code or "district"
        return (
            f"unit {unit}, {self.handling_days} days, urgent {int(self.urgent)}, "
            f"open311 direct {int(self.open311_direct)}"
        )


def terms_of(category: Category) -> CategoryTerms:
    unit = category.department.code if category.department else ""
    return CategoryTerms(unit, category.handling_days, category.urgent, category.open311_direct)


def change_category(
    session: Session, code: str, terms: CategoryTerms
) -> tuple[CategoryTerms, CategoryTerms]:
    """Give category ``code`` new terms; returns them before and after (equal when
    nothing changed). The caller commits."""
    category = session.scalar(select(Category).where(Category.code == code))
    if category is None:
        raise CatalogueError("no-category", code)
    if not MIN_DAYS <= terms.handling_days <= MAX_DAYS:
        raise CatalogueError("bad-days", str(terms.handling_days))
    unit = None
    if terms.unit_code:
        unit = session.scalar(select(Department).where(Department.code == terms.unit_code))
        if unit is None:
            raise CatalogueError("no-unit", terms.unit_code)
    before = terms_of(category)
    category.department = unit
    category.handling_days = terms.handling_days
    category.urgent = terms.urgent
    category.open311_direct = terms.open311_direct
    return before, terms_of(category)
