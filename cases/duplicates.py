"""Duplicate suggestions at filing (并单建议): open cases of the same category at the
same place in the last days, while the operator types.

The same place is the same address once written alike (full-width digits, spaces, the
province, city and district, 附近 or 门口 at the end make no difference), or one
address within the other when the shorter one names a door or a named place (龙昆南路
88号 in 龙昆南路88号海口大厦), never a bare road. For the matters that cover an area
(停水, 停电, 内涝, 施工噪音...) the same grid (网格) is the same place too: the
neighbour's outage is the same outage, the neighbour's pothole is not."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Case, Category

SUGGEST_DAYS = 7  # how far back a repeat of the same matter is looked for
MAX_SUGGESTIONS = 5
OPEN_STATUSES = ("received", "dispatched", "accepted", "in_progress", "returned", "reopened")
# Matters that cover an area: within one grid they are the same matter.
AREA_WIDE = frozenset(
    {
        "water-outage",
        "water-quality",
        "power-outage",
        "waterlogging",
        "construction-noise",
        "air-pollution",
        "gas-leak",
    }
)

_PREFIX = re.compile(r"^(海南省)?(海口市)?(秀英区|龙华区|琼山区|美兰区)?")
_TAIL = re.compile(r"(附近|旁边|旁|对面|门口|前面|后面|一带|这边|那边|这里|那里|处)+$")
_DROP = re.compile(r"[\s\-_,，。.、:：;；()（）#＃]+")
_DOOR = re.compile(r"\d+(号|栋|幢|号楼|单元|弄|巷)")
_PLACE = re.compile(
    r"(小区|花园|大厦|市场|学校|小学|中学|医院|广场|公园|村|苑|城|中心|酒店|商场|公寓)"
)
_CN_DIGITS = {c: str(i) for i, c in enumerate("零一二三四五六七八九")}


def _cn_number(match: re.Match[str]) -> str:
    """一百零八 -> 108, 八十八 -> 88, 十二 -> 12: house numbers as people say them."""
    text = match.group(0)
    total, current = 0, 0
    for char in text:
        if char in _CN_DIGITS:
            current = int(_CN_DIGITS[char])
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        elif char == "百":
            total += current * 100
            current = 0
    return str(total + current)


_CN_RUN = re.compile(r"[零一二三四五六七八九十百]+(?=号|栋|幢|单元|弄|巷)")


def address_key(address: str) -> str:
    """An address as compared: one way of writing it."""
    text = unicodedata.normalize("NFKC", address or "").strip()
    text = _DROP.sub("", text)
    text = _CN_RUN.sub(_cn_number, text)
    text = _PREFIX.sub("", text)
    return _TAIL.sub("", text)


def names_a_place(key: str) -> bool:
    return bool(_DOOR.search(key) or _PLACE.search(key))


def same_place(a: str, b: str) -> bool:
    """Two address keys name the same place."""
    if not a or not b:
        return False
    if a == b:
        return names_a_place(a) or len(a) >= 4
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    at = long_.find(short)
    if at < 0 or len(short) < 4 or not names_a_place(short):
        return False
    # 2号 is not in 12号
    return not (at > 0 and short[0].isdigit() and long_[at - 1].isdigit())


@dataclass(frozen=True)
class Suggestion:
    number: str
    status: str
    category: str
    address: str
    created_at: datetime
    why: str  # address | grid


def is_duplicate(
    category: str,
    address: str,
    grid_id: int | None,
    other_category: str,
    other_address: str,
    other_grid_id: int | None,
) -> str | None:
    """Why the other case is the same matter ("address", "grid"), or None."""
    if not category or category != other_category:
        return None
    if same_place(address_key(address), address_key(other_address)):
        return "address"
    if category in AREA_WIDE and grid_id is not None and grid_id == other_grid_id:
        return "grid"
    return None


def suggest_duplicates(
    db: Session,
    category_code: str,
    address: str,
    now: datetime,
    *,
    grid_id: int | None = None,
    exclude_number: str | None = None,
    days: int = SUGGEST_DAYS,
) -> list[Suggestion]:
    """Open cases of this category at this place (or grid) filed in the last ``days``,
    newest first."""
    if not category_code or not (address.strip() or grid_id is not None):
        return []
    query = (
        select(Case, Category.code)
        .join(Category, Case.category_id == Category.id)
        .where(
            Category.code == category_code,
            Case.status.in_(OPEN_STATUSES),
            Case.merged_into_id.is_(None),
            Case.created_at >= now - timedelta(days=days),
        )
        .order_by(Case.created_at.desc())
        .limit(500)
    )
    found: list[Suggestion] = []
    for case, code in db.execute(query):
        if case.number == exclude_number:
            continue
        why = is_duplicate(category_code, address, grid_id, code, case.address, case.grid_id)
        if why is None:
            continue
        found.append(
            Suggestion(
                case.number,
                case.status,
                case.category.name if case.category else code,
                case.address,
                case.created_at,
                why,
            )
        )
    # The same address before the same grid (newest first within each): five newer
    # cases elsewhere in the grid must not hide the one at this very address.
    return sorted(found, key=lambda s: s.why != "address")[:MAX_SUGGESTIONS]
