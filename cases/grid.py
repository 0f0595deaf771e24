"""The grid (网格化): district → street or town (街道/镇) → community or village (社区/村)
→ grid (网格), the grid workers (users with the ``grid`` role) of each grid, and the
address table that says which grid an address lies in.

The address table is editable data, not code: a road's house-number range (海秀东路
1-99 号), a whole road, or a named place (万绿园) → a grid. ``grid_for_address`` and
``street_of_address`` read it; the hot-topic detector and the duplicate suggestions
call them too.

A case of a category the catalogue marks as grid work (``Category.grid_work``) whose
address lies in a grid is dispatched to that grid (``route_to_grid``): its lead unit is
the district government the grid belongs to (the clocks, the accountability and the
rankings are the district's), and the grid holds it (``GridCase``) until a grid worker
resolves it or escalates it to a department."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from cases.models import Base, Case, Category, Department, District, User
from cases.units import district_named_in

SEED_FILE = Path(__file__).with_name("data") / "grid_seed.json"


class GridStreet(Base):
    """A street office (街道) or a town (镇) of a district."""

    __tablename__ = "grid_street"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(48), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="street")  # street | town
    district_id: Mapped[int] = mapped_column(ForeignKey("district.id"), index=True)
    district: Mapped[District] = relationship()


class GridCommunity(Base):
    """A community (社区) or a village (村) of a street or town."""

    __tablename__ = "grid_community"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(48), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="community")  # community | village
    street_id: Mapped[int] = mapped_column(ForeignKey("grid_street.id"), index=True)
    street: Mapped[GridStreet] = relationship()


class Grid(Base):
    """A grid (网格): a few hundred households that its grid workers know."""

    __tablename__ = "grid"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(48), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    community_id: Mapped[int] = mapped_column(ForeignKey("grid_community.id"), index=True)
    community: Mapped[GridCommunity] = relationship()

    @property
    def street(self) -> GridStreet:
        return self.community.street

    @property
    def full_name(self) -> str:
        """龙华区 金贸街道 国贸社区 第1网格"""
        street = self.community.street
        return f"{street.district.name} {street.name} {self.community.name} {self.name}"


class GridMember(Base):
    """A grid worker (a user with the ``grid`` role) and a grid they work."""

    __tablename__ = "grid_member"
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True, index=True)


class GridAddress(Base):
    """One line of the address table: a road (with an optional house-number range) or a
    named place, and the grid it lies in."""

    __tablename__ = "grid_address"
    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # road | place
    name: Mapped[str] = mapped_column(String(64), index=True)  # 海秀东路, 万绿园
    number_from: Mapped[int | None] = mapped_column(Integer)  # house numbers, inclusive
    number_to: Mapped[int | None] = mapped_column(Integer)
    grid: Mapped[Grid] = relationship()


class GridCase(Base):
    """A case sent to a grid: the grid holds it while its lead unit is still the grid's
    district government and it was not escalated. Where the grid worker stood when they
    reported on site is kept here (the trail says it in words)."""

    __tablename__ = "grid_case"
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id"), index=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    on_site_lat: Mapped[float | None] = mapped_column(Float)
    on_site_lon: Mapped[float | None] = mapped_column(Float)
    on_site_accuracy_m: Mapped[float | None] = mapped_column(Float)
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_to: Mapped[str | None] = mapped_column(String(48))  # the department's code
    case: Mapped[Case] = relationship()
    grid: Mapped[Grid] = relationship()


# -- the address table ------------------------------------------------------------------

# 海秀东路12号, 国贸路 3-5 号, 滨海大道105号之一: the road, then its house number.
_ROAD_NUMBER = re.compile(r"([\u4e00-\u9fff]{1,20}?(?:大道|路|街|巷|道|里))\s*(\d{1,5})\s*号?")
_ROAD = re.compile(r"[\u4e00-\u9fff]{1,20}?(?:大道|路|街|巷|道|里)")
# Not a bare 海南 or 海口: 海南大学 and 海口湾 are places.
_CITY_PREFIX = re.compile(r"^(?:海南省)?(?:海口市)?")


@dataclass(frozen=True)
class _Line:
    kind: str
    name: str
    grid_id: int
    number_from: int | None
    number_to: int | None


class AddressIndex:
    """The address table in memory: places by name (longest name first), roads by name."""

    def __init__(self, rows: list[GridAddress], streets: dict[str, int]) -> None:
        self.lines = [_Line(r.kind, r.name, r.grid_id, r.number_from, r.number_to) for r in rows]
        self.places: list[tuple[str, int]] = sorted(
            ((r.name, r.grid_id) for r in self.lines if r.kind == "place"),
            key=lambda p: -len(p[0]),
        )
        self.roads: dict[str, list[_Line]] = {}
        for line in self.lines:
            if line.kind == "road":
                self.roads.setdefault(line.name, []).append(line)
        self.road_names = sorted(self.roads, key=len, reverse=True)
        self.streets = streets  # street or town name -> its id

    def grid_id_for(self, address: str) -> int | None:
        text = _CITY_PREFIX.sub("", "".join(address.split()))
        if not text:
            return None
        for name, grid_id in self.places:
            if name in text:
                return grid_id
        numbered: set[str] = set()
        for match in _ROAD_NUMBER.finditer(text):
            road = self._road_named(match.group(1))
            if road is None:
                continue
            numbered.add(road)
            found = self._road(road, int(match.group(2)))
            if found is not None:
                return found
        for name in self.road_names:  # a road named without a number
            if name in text and name not in numbered:
                found = self._road(name, None)
                if found is not None:
                    return found
        return None

    def _road_named(self, text: str) -> str | None:
        """The known road ``text`` ends with (龙华区国贸路: 国贸路), longest first."""
        if text in self.roads:
            return text
        return next((n for n in self.road_names if text.endswith(n)), None)

    def _road(self, name: str, number: int | None) -> int | None:
        """The grid of the road's line for the number; a number outside every range
        of the road finds only a line for the whole road."""
        lines = self.roads[name]
        if number is not None:
            for line in lines:
                if (
                    line.number_from is not None
                    and line.number_to is not None
                    and line.number_from <= number <= line.number_to
                ):
                    return line.grid_id
        whole = [line for line in lines if line.number_from is None]
        if whole:
            return whole[0].grid_id
        if number is not None:
            return None
        # A road known only by ranges, and no number said: one grid only, or none.
        grids = {line.grid_id for line in lines}
        return grids.pop() if len(grids) == 1 else None


_cache_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int], AddressIndex]] = {}


def address_index(db: Session) -> AddressIndex:
    """The address table, read again whenever a line was added or removed (the editing
    functions below replace a line rather than change it in place)."""
    version = db.execute(select(func.count(GridAddress.id), func.max(GridAddress.id))).one()
    key = str(db.get_bind().engine.url)
    stamp = (int(version[0] or 0), int(version[1] or 0))
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    rows = list(db.scalars(select(GridAddress)))
    streets = {name: id_ for id_, name in db.execute(select(GridStreet.id, GridStreet.name))}
    index = AddressIndex(rows, streets)
    with _cache_lock:
        _cache[key] = (stamp, index)
    return index


def grid_for_address(db: Session, address: str) -> Grid | None:
    """The grid the address lies in, by the address table; None when it does not say."""
    grid_id = address_index(db).grid_id_for(address or "")
    return db.get(Grid, grid_id) if grid_id is not None else None


def district_of_address(db: Session, address: str) -> District | None:
    """The district of a citizen's written address: the grid's, where the address table
    knows the street (more precise than what the text says), else the one district the
    text names (cases.units.district_named_in)."""
    grid = grid_for_address(db, address) if address else None
    if grid is not None:
        return grid.community.street.district
    return district_named_in(db, address)


def street_of_address(db: Session, address: str) -> str | None:
    """The street or town (街道/镇) of the address: its grid's, else one the address
    names itself (龙华区金贸街道...); None when neither says."""
    grid = grid_for_address(db, address)
    if grid is not None:
        return grid.community.street.name
    text = "".join((address or "").split())
    index = address_index(db)
    named = [name for name in index.streets if name in text]
    return max(named, key=len) if named else None


def add_address(
    db: Session,
    grid_code: str,
    name: str,
    number_from: int | None = None,
    number_to: int | None = None,
    kind: str | None = None,
) -> GridAddress:
    """A line of the address table; ``kind`` is guessed from the name (路, 街... a road)."""
    grid = db.scalar(select(Grid).where(Grid.code == grid_code))
    if grid is None:
        raise ValueError(f"no grid {grid_code!r}")
    name = "".join(name.split())
    if not name or len(name) > 64:
        raise ValueError("an address line names a road or a place of 1-64 characters")
    kind = kind or ("road" if _ROAD.fullmatch(name) else "place")
    if kind not in ("road", "place"):
        raise ValueError("kind is road or place")
    if (number_from is None) != (number_to is None) or (
        number_from is not None and number_to is not None and not 0 < number_from <= number_to
    ):
        raise ValueError("a house-number range is two numbers, the first not above the second")
    line = GridAddress(
        grid_id=grid.id, kind=kind, name=name, number_from=number_from, number_to=number_to
    )
    db.add(line)
    db.flush()
    return line


def remove_address(db: Session, line_id: int) -> bool:
    line = db.get(GridAddress, line_id)
    if line is None:
        return False
    db.delete(line)
    db.flush()
    return True


def address_suggestions(db: Session, text: str, limit: int = 8) -> list[dict[str, str]]:
    """Lines of the address table that the operator's text names or starts, as the
    console's address field suggests them: the address and its grid."""
    text = _CITY_PREFIX.sub("", "".join(text.split()))
    if not text:
        return []
    road = _ROAD_NUMBER.search(text)
    number = int(road.group(2)) if road else None
    stem = road.group(1) if road else text
    index = address_index(db)
    found: list[tuple[int, str, int]] = []  # (rank, address, grid id)
    for line in index.lines:
        if line.name in stem or stem in line.name:
            ranged = line.number_from is not None and line.number_to is not None
            if number is not None and ranged and not line.number_from <= number <= line.number_to:  # type: ignore[operator]
                continue
            if line.kind == "road" and number is not None:
                value = f"{line.name}{number}号"
            elif ranged:
                value = f"{line.name}{line.number_from}-{line.number_to}号"
            else:
                value = line.name
            found.append((0 if line.name.startswith(stem) else 1, value, line.grid_id))
    hints: list[dict[str, str]] = []
    seen: set[str] = set()
    for _, value, grid_id in sorted(found, key=lambda f: (f[0], len(f[1]), f[1])):
        grid = db.get(Grid, grid_id)
        if value in seen or grid is None:
            continue
        seen.add(value)
        hints.append({"address": value, "grid": grid.full_name, "grid_code": grid.code})
        if len(hints) >= limit:
            break
    return hints


# -- grid workers -----------------------------------------------------------------------


def grids_of(db: Session, username: str) -> list[Grid]:
    return list(
        db.scalars(
            select(Grid)
            .join(GridMember, GridMember.grid_id == Grid.id)
            .join(User, User.id == GridMember.user_id)
            .where(User.username == username)
            .order_by(Grid.code)
        )
    )


def assign_worker(db: Session, username: str, grid_code: str) -> GridMember:
    """Make a user with the ``grid`` role a worker of the grid (idempotent)."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None or user.role != "grid":
        raise ValueError(f"{username!r} is not a grid worker (role grid)")
    grid = db.scalar(select(Grid).where(Grid.code == grid_code))
    if grid is None:
        raise ValueError(f"no grid {grid_code!r}")
    member = db.get(GridMember, (grid.id, user.id))
    if member is None:
        member = GridMember(grid_id=grid.id, user_id=user.id)
        db.add(member)
        db.flush()
    return member


def district_unit(db: Session, grid: Grid) -> Department | None:
    """The district government a grid belongs to: the lead unit of the grid's cases."""
    return db.scalar(
        select(Department).where(
            Department.kind == "district",
            Department.district_id == grid.community.street.district_id,
        )
    )


# -- dispatch to a grid -----------------------------------------------------------------


def locate(db: Session, case: Case) -> Grid | None:
    """Set the case's grid from its address (kept when the address does not say)."""
    grid = grid_for_address(db, case.address) if case.address else None
    if grid is not None:
        case.grid_id = grid.id
        if case.district_id is None:
            case.district_id = grid.community.street.district_id
    return grid


def route_to_grid(db: Session, case: Case, actor: str) -> bool:
    """Dispatch a grid-work case to the grid of its address (same clocks as any unit);
    False when the case is not grid work, its address names no grid, or the operator
    chose a unit other than the catalogue's."""
    grid = locate(db, case)
    category = case.category
    if grid is None or category is None or not category.grid_work:
        return False
    if case.department_id is not None and case.department_id != category.department_id:
        return False  # the operator chose the unit: theirs
    return send_to_grid(db, case, grid, actor)


def send_to_grid(db: Session, case: Case, grid: Grid, actor: str) -> bool:
    """Dispatch the case to the grid: its lead unit is the grid's district government,
    and the grid holds it. False if that district has no government unit."""
    from cases.service import _record, transition, utcnow

    unit = district_unit(db, grid)
    if unit is None:
        return False
    case.department, case.grid_id = unit, grid.id
    held = db.get(GridCase, case.id)
    if held is None:
        db.add(GridCase(case_id=case.id, grid_id=grid.id, sent_at=utcnow()))
    else:
        held.grid_id, held.sent_at = grid.id, utcnow()
        held.escalated_at = held.escalated_to = None
    transition(db, case, "dispatched", actor, f"to {unit.code}")
    _record(case, actor, "grid_sent", case.status, case.status, grid.full_name)
    return True


def held_by_grid(db: Session, case: Case) -> GridCase | None:
    """The grid's hold of the case, while the grid has it: sent there, not escalated,
    and not re-dispatched by a supervisor to another unit since."""
    held = db.get(GridCase, case.id)
    if held is None or held.escalated_at is not None:
        return None
    unit = district_unit(db, held.grid)
    if unit is None or case.department_id != unit.id:
        return None
    return held


def note_on_site(
    db: Session,
    case: Case,
    held: GridCase,
    actor: str,
    lat: float | None,
    lon: float | None,
    accuracy_m: float | None,
) -> None:
    """Keep where the grid worker stood, in the hold and in the trail."""
    from cases.service import _record

    if lat is None or lon is None:
        return
    held.on_site_lat, held.on_site_lon, held.on_site_accuracy_m = lat, lon, accuracy_m
    accuracy = f" ±{accuracy_m:.0f} m" if accuracy_m is not None else ""
    _record(
        case, actor, "grid_located", case.status, case.status, f"{lat:.5f}, {lon:.5f}{accuracy}"
    )


def mark_escalated(db: Session, case: Case, held: GridCase, actor: str, to: str) -> None:
    from cases.service import _record, utcnow

    held.escalated_at, held.escalated_to = utcnow(), to
    _record(case, actor, "grid_escalated", case.status, case.status, to)


# -- seeding ----------------------------------------------------------------------------


def seed_grid(db: Session, path: Path = SEED_FILE) -> dict[str, int]:
    """Haikou's streets and towns, communities, grids and address table, and the grid
    work marks of the catalogue, added when missing (never overwritten: the address
    table and the marks only on the first run, so administrators' edits survive)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    per_community = int(data.get("grids_per_community", 2))
    added = {"streets": 0, "communities": 0, "grids": 0, "addresses": 0}
    districts = {d.code: d for d in db.scalars(select(District))}
    streets = {s.code: s for s in db.scalars(select(GridStreet))}
    communities = {c.code: c for c in db.scalars(select(GridCommunity))}
    grids = {g.code: g for g in db.scalars(select(Grid))}
    first_time = not grids
    by_path: dict[tuple[str, str, str, int], Grid] = {}
    for district_code, street_rows in data["districts"].items():
        district = districts.get(district_code)
        if district is None:
            continue
        for s_index, street_row in enumerate(street_rows, 1):
            s_code = f"{district_code}-s{s_index:02d}"
            street = streets.get(s_code)
            if street is None:
                kind = "town" if street_row["name"].endswith("镇") else "street"
                street = GridStreet(
                    code=s_code, name=street_row["name"], kind=kind, district_id=district.id
                )
                db.add(street)
                streets[s_code] = street
                added["streets"] += 1
                db.flush()
            for c_index, c_name in enumerate(street_row["communities"], 1):
                c_code = f"{s_code}-c{c_index:02d}"
                community = communities.get(c_code)
                if community is None:
                    kind = "village" if c_name.endswith("村") else "community"
                    community = GridCommunity(
                        code=c_code, name=c_name, kind=kind, street_id=street.id
                    )
                    db.add(community)
                    communities[c_code] = community
                    added["communities"] += 1
                    db.flush()
                for number in range(1, per_community + 1):
                    g_code = f"{c_code}-g{number}"
                    if g_code not in grids:
                        grids[g_code] = Grid(
                            code=g_code, name=f"第{number}网格", community_id=community.id
                        )
                        db.add(grids[g_code])
                        added["grids"] += 1
                    by_path[(district_code, street_row["name"], c_name, number)] = grids[g_code]
    db.flush()
    if first_time:
        for row in data["addresses"]:
            district_code, street_name, community_name, number = row["grid"]
            grid = by_path.get((district_code, street_name, community_name, int(number)))
            if grid is None:
                continue  # a district this database does not have
            db.add(
                GridAddress(
                    grid_id=grid.id,
                    kind="road" if "road" in row else "place",
                    name=row.get("road") or row["place"],
                    number_from=row.get("from"),
                    number_to=row.get("to"),
                )
            )
            added["addresses"] += 1
        codes = data["grid_work_categories"]
        for category in db.scalars(select(Category).where(Category.code.in_(codes))):
            category.grid_work = True
        db.flush()
    return {k: v for k, v in added.items() if v}
