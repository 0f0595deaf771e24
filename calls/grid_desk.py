"""The grid workers' desk (网格员): the cases their grids hold, taken on site with the
phone's location, photos, resolved with a reply or escalated to a department, and
patrol reports (巡查上报) of problems they find themselves.

Who may act: a user with the ``grid`` role, on a case a grid of theirs holds
(``cases.grid.held_by_grid``); any other case does not exist for them (404), as a
department's clerk meets cases of other units. Each action runs in one transaction
and re-arms the case's clocks after its commit, as ``CaseDesk`` does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from calls.casework import arm_clocks
from cases import dispatch as work
from cases.grid import (
    Grid,
    GridCase,
    district_unit,
    grid_for_address,
    grids_of,
    held_by_grid,
    mark_escalated,
    note_on_site,
    send_to_grid,
)
from cases.models import Case, Category, Department
from cases.photos import CasePhoto, store_photo
from cases.service import _record, dispatch, next_case_number, transition, utcnow

if TYPE_CHECKING:
    from calls.desk import Actor, Desk

GRID_ACTIONS = ("sign", "on-site", "note", "resolve", "escalate")
ACTIVE = ("dispatched", "accepted", "in_progress")
PATROL_CHANNEL = "patrol"


@dataclass(frozen=True)
class GridCaseRow:
    """A case on the grid worker's list."""

    number: str
    status: str
    category: str
    address: str
    description: str
    urgency: str
    grid: str
    deadline: datetime | None
    overdue: bool
    on_site: bool


def deadline_of(case: Case) -> datetime | None:
    if case.status not in ACTIVE:
        return None
    return case.respond_by if case.status == "dispatched" else case.handle_by


def _location(lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
    """A location the phone could have given, or none."""
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return lat, lon


class GridDesk:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def _worker(self, actor: Actor) -> None:
        from calls.desk import DeskError

        if actor.role != "grid":
            raise DeskError("forbidden", 403)

    def held_case(self, db: Session, actor: Actor, number: str) -> tuple[Case, GridCase]:
        """The case and its grid's hold, if a grid of the actor's holds it; else 404."""
        from calls.desk import DeskError

        self._worker(actor)
        case = db.scalar(select(Case).where(Case.number == number))
        held = held_by_grid(db, case) if case is not None else None
        mine = {g.id for g in grids_of(db, actor.username)}
        if case is None or held is None or held.grid_id not in mine:
            raise DeskError("no-such-case", 404)
        return case, held

    @contextmanager
    def _held(self, actor: Actor, number: str) -> Iterator[tuple[Session, Case, GridCase]]:
        with self.desk.sessions() as db:
            case, held = self.held_case(db, actor, number)
            yield db, case, held
            db.commit()
            arm_clocks(self.desk.queue, case)

    def grids(self, actor: Actor) -> list[Grid]:
        self._worker(actor)
        with self.desk.sessions() as db:
            found = grids_of(db, actor.username)
            for grid in found:
                _ = grid.full_name  # loaded while the session is open
            db.expunge_all()
            return found

    def my_cases(self, actor: Actor) -> list[GridCaseRow]:
        """The open cases the actor's grids hold: urgent first, then by deadline."""
        self._worker(actor)
        rows: list[GridCaseRow] = []
        with self.desk.sessions() as db:
            grid_ids = [g.id for g in grids_of(db, actor.username)]
            if not grid_ids:
                return []
            candidates = db.scalars(
                select(Case)
                .join(GridCase, GridCase.case_id == Case.id)
                .where(
                    GridCase.grid_id.in_(grid_ids),
                    GridCase.escalated_at.is_(None),
                    Case.status.in_(ACTIVE),
                )
                .limit(500)
            )
            for case in candidates:
                held = held_by_grid(db, case)
                if held is None:
                    continue
                rows.append(
                    GridCaseRow(
                        number=case.number,
                        status=case.status,
                        category=case.category.name if case.category else "",
                        address=case.address,
                        description=case.description,
                        urgency=case.urgency,
                        grid=held.grid.full_name,
                        deadline=deadline_of(case),
                        overdue=case.response_overdue or case.handling_overdue,
                        on_site=case.on_site_at is not None,
                    )
                )
        far = datetime.max

        def order(row: GridCaseRow) -> tuple[bool, datetime, str]:
            deadline = row.deadline.replace(tzinfo=None) if row.deadline else far
            return (row.urgency != "urgent", deadline, row.number)

        return sorted(rows, key=order)

    def escalation_units(self, actor: Actor, number: str) -> tuple[list[Department], str]:
        """The units a case may be escalated to (never the unit it is with: that is
        the grid's own district government), and the one to suggest: the catalogue's
        unit for its category when that is another unit, else none (the worker
        chooses)."""
        with self.desk.sessions() as db:
            case, held = self.held_case(db, actor, number)
            units = list(
                db.scalars(
                    select(Department)
                    .where(Department.kind == "department")
                    .order_by(Department.name)
                )
            )
            district = district_unit(db, held.grid)
            if district is not None:
                units.insert(0, district)
            units = [u for u in units if u.id != case.department_id]
            category = case.category
            catalogue_unit = category.department if category is not None else None
            suggested = (
                catalogue_unit.code
                if catalogue_unit is not None and catalogue_unit in units
                else ""
            )
            db.expunge_all()
            return units, suggested

    def handed_on(self, actor: Actor, number: str) -> str | None:
        """The name of the unit a case of the actor's grids went to when it is no
        longer theirs (escalated, or re-dispatched elsewhere), for a page that says
        so instead of "no such page"; None for any case they never held."""
        self._worker(actor)
        with self.desk.sessions() as db:
            case = db.scalar(select(Case).where(Case.number == number))
            held = db.get(GridCase, case.id) if case is not None else None
            mine = {g.id for g in grids_of(db, actor.username)}
            if case is None or held is None or held.grid_id not in mine:
                return None
            if held_by_grid(db, case) is not None:
                return None
            return case.department.name if case.department is not None else ""

    def act(
        self,
        actor: Actor,
        number: str,
        action: str,
        *,
        text: str = "",
        lat: float | None = None,
        lon: float | None = None,
        accuracy_m: float | None = None,
        to: str = "",
    ) -> Case:
        """签收, 到场 (with where the phone was), a progress note, 办结 with a reply to
        the citizen, or 上报 to a department (``to``) with a reason."""
        from calls.desk import DeskError

        if action not in GRID_ACTIONS:
            raise DeskError("bad-argument", 400, {"detail": "action"})
        with self._held(actor, number) as (db, case, held):
            unit = case.department_id
            who = actor.username
            if action == "sign":
                work.sign_for(db, case, who, unit)
            elif action == "on-site":
                if case.status == "dispatched":  # being there is signing for it
                    work.sign_for(db, case, who, unit)
                work.on_site(db, case, who, unit)
                lat, lon = _location(lat, lon)
                accuracy = accuracy_m if accuracy_m is not None and accuracy_m >= 0 else None
                note_on_site(db, case, held, who, lat, lon, accuracy)
            elif action == "note":
                work.add_note(db, case, who, unit, text)
            elif action == "resolve":
                work.resolve(db, case, who, unit, text)
                if case.channel == PATROL_CHANNEL:  # nobody called: no return visit
                    transition(db, case, "closed", who, "巡查上报，无来电市民，不回访")
            else:
                self._escalate(db, case, held, who, to, text)
        return case

    def _escalate(
        self, db: Session, case: Case, held: GridCase, who: str, to: str, reason: str
    ) -> None:
        work.check_active(case, "return")  # a finished case is escalated no more
        if not reason.strip():
            raise work.CaseRefused(
                "escalate-reason-empty",
                "上报须说明网格无法处理的原因",
                "Escalating needs a reason the grid cannot handle it",
            )
        if not to:
            raise work.CaseRefused("escalate-unit", "请选择上报的部门", "Choose a department")
        work.dispatch_to(db, case, who, to, reason="网格上报: " + reason.strip()[:480])
        mark_escalated(db, case, held, who, to)

    def add_photo(
        self, actor: Actor, number: str, data: bytes, photos_dir: Path, note: str = ""
    ) -> CasePhoto:
        """A photo of a case the actor's grid holds (PhotoRefused: too large, not an
        image)."""
        with self._held(actor, number) as (db, case, _):
            work.check_active(case, "note")
            photo = store_photo(db, case, data, actor.username, photos_dir, note=note)
            db.flush()
            db.expunge(photo)
        return photo

    def patrol(
        self,
        actor: Actor,
        *,
        category_code: str,
        address: str,
        description: str,
        grid_code: str = "",
        lat: float | None = None,
        lon: float | None = None,
        photo: bytes | None = None,
        photos_dir: Path | None = None,
        solved_reply: str = "",
    ) -> Case:
        """巡查上报: a problem the grid worker found becomes a case of its own source
        (channel ``patrol``). Solved on the spot (``solved_reply``), it is resolved and
        closed at once; grid work goes to the grid of the address (else the worker's
        own); anything else to the catalogue's unit."""
        from calls.desk import DeskError

        self._worker(actor)
        description, address = description.strip()[:4000], address.strip()[:500]
        if not description:
            raise work.CaseRefused("patrol-description", "请描述发现的问题", "Describe the problem")
        if photo and photos_dir is not None:
            from cases.photos import check_photo

            check_photo(photo)  # refused before any case is made
        with self.desk.sessions() as db:
            mine = grids_of(db, actor.username)
            if not mine:
                raise DeskError("forbidden", 403)
            own = next((g for g in mine if g.code == grid_code), mine[0])
            category = db.scalar(select(Category).where(Category.code == category_code))
            if category is None:
                raise work.CaseRefused("patrol-category", "请选择问题类别", "Choose a category")
            grid = grid_for_address(db, address) or own
            now = utcnow()
            case = Case(
                number=next_case_number(db, now),
                caller_phone="",
                channel=PATROL_CHANNEL,
                category=category,
                district_id=grid.community.street.district_id,
                grid_id=grid.id,
                address=address or grid.full_name,
                description=description,
                urgency="urgent" if category.urgent else "normal",
                status="received",
                created_at=now,
                updated_at=now,
            )
            db.add(case)
            lat, lon = _location(lat, lon)
            where = f"{lat:.5f}, {lon:.5f}" if lat is not None and lon is not None else ""
            _record(case, actor.username, "create", None, "received")
            _record(case, actor.username, "patrol", "received", "received", where.strip())
            db.flush()
            if photo and photos_dir is not None:
                store_photo(db, case, photo, actor.username, photos_dir)
            if solved_reply.strip():
                case.reply = solved_reply.strip()[:4000]
                transition(db, case, "resolved", actor.username, "当场处理: " + case.reply)
                transition(db, case, "closed", actor.username, "巡查上报，无来电市民，不回访")
            elif category.grid_work:
                send_to_grid(db, case, grid, actor.username)
                if grid.id in {g.id for g in mine}:
                    # Their own report on their own grid: signed for as it is filed,
                    # so no 30-minute sign-for clock runs against themselves.
                    work.sign_for(db, case, actor.username, case.department_id)
            else:
                dispatch(db, case, actor.username)
            db.commit()
            arm_clocks(self.desk.queue, case)
            return case
