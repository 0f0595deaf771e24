"""Where the case form's case goes when its address lies in a grid and its category is
grid work (cases.grid.route_to_grid): the form names the grid and its district
government as the lead, and the grid's district, instead of the catalogue's unit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.grid import district_unit, grid_for_address
from cases.models import Category

# "国贸路1" may still become 国贸路128号: a number at the end is not finished until
# the operator leaves the field (the form's address_complete) or writes 号.
_TYPING_NUMBER = re.compile(r"\d\s*$")


@dataclass(frozen=True)
class GridRoute:
    grid: str  # 龙华区 金贸街道 国贸社区 第1网格
    unit: str  # the district government, the case's lead unit
    catalogue_unit: str  # the category's unit, which the grid stands in for
    district_code: str


def address_complete(address: str, operator_done: str | None) -> bool:
    return bool(address.strip()) and (operator_done == "1" or not _TYPING_NUMBER.search(address))


def grid_route(
    db: Session, category_code: str | None, address: str, operator_done: str | None
) -> GridRoute | None:
    """The grid the case would go to, as the table decides; None when it would not."""
    if not category_code or not address_complete(address, operator_done):
        return None
    category = db.scalar(select(Category).where(Category.code == category_code))
    if category is None or not category.grid_work:
        return None
    grid = grid_for_address(db, address)
    unit = district_unit(db, grid) if grid is not None else None
    if grid is None or unit is None:
        return None
    return GridRoute(
        grid=grid.full_name,
        unit=unit.name,
        catalogue_unit=category.department.code if category.department else "",
        district_code=grid.street.district.code,
    )
