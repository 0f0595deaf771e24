"""The duty leaders' actions (领导值班): instructions (批示) on cases, the monthly roster
that supervisors keep, and a report written on request. The rules are the record's
(cases.duty); this checks who may act and records the action."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from cases import duty
from cases.models import Case
from cases.reports import KINDS, KeptReport

if TYPE_CHECKING:
    from calls.desk import Actor, Desk

# Who keeps the roster, and who reads the reports.
ROSTER_ROLES = frozenset({"supervisor", "admin"})
REPORT_ROLES = frozenset({"leader", "supervisor", "admin"})


class DutyDesk:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def instruct(self, actor: Actor, number: str, text: str, now: datetime | None = None) -> Case:
        """批示 on a case by today's duty leader; the unit sees it, the trail keeps it."""
        from calls.desk import DeskError

        if actor.role != duty.LEADER_ROLE:
            raise DeskError("forbidden", 403)
        with self.desk.sessions() as db:
            case = db.scalar(select(Case).where(Case.number == number))
            if case is None:
                raise DeskError("no-such-case", 404)
            duty.instruct(db, case, actor.username, text, now=now)
            db.commit()  # updated_at moves: the unit's open inbox redraws
        return case

    def set_roster(self, actor: Actor, year: int, month: int, assignments: dict[date, str]) -> int:
        """A supervisor or admin puts leaders on the month's days; recorded with who."""
        from calls.desk import DeskError

        if actor.role not in ROSTER_ROLES:
            raise DeskError("forbidden", 403)
        with self.desk.sessions() as db:
            changed = duty.set_roster(db, year, month, assignments, actor.username)
            db.commit()
        if changed:
            self.desk.record(actor, "roster-changed", f"{year}-{month:02d}", f"{changed} days")
        return changed

    def generate_report(self, actor: Actor, kind: str, day: date, directory: Path) -> KeptReport:
        """Write and keep a period's workbook now, instead of waiting for the worker."""
        from calls.desk import DeskError
        from calls.reports import generate
        from cases.reports import period

        if actor.role not in ROSTER_ROLES:
            raise DeskError("forbidden", 403)
        if kind not in KINDS:
            raise DeskError("bad-argument", 400, {"detail": "kind"})
        with self.desk.sessions() as db:
            row = generate(db, kind, period(kind, day)[0], directory, by=actor.username)
            db.expunge(row)
        self.desk.record(actor, "report-generated", row.file_name)
        return row
