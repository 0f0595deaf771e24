"""The administrator's and supervisors' record-keeping actions: the opt-out register
(谢绝回访), units' duty phones, listing a case on Open311, and revealing a caller's
whole number. Each checks who may act, runs in one transaction with its action log
line, and turns the record's refusal into a DeskError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from cases import duty_numbers
from cases.models import Case, add_opt_out, remove_opt_out
from cases.open311 import set_public
from cases.phones import InvalidPhone, mask_for_screen, normalise
from cases.users import log_action

if TYPE_CHECKING:
    from calls.desk import Actor, Desk

# As the screens' roles_required say: the admin screens, and a case's supervisors.
ADMIN_ROLES = frozenset({"admin"})
CASE_SUPERVISOR_ROLES = frozenset({"supervisor", "admin"})
NOTE_LOGGED_CHARS = 200
RAW_SHOWN_CHARS = 40  # of a refused number, said back to the person


@dataclass(frozen=True)
class OptOutAdded:
    phone: str  # E.164
    new: bool  # False: it was on the register already


@dataclass(frozen=True)
class DutyPhoneSet:
    unit_name: str
    before: str | None
    now: str | None


def _check_role(actor: Actor, roles: frozenset[str]) -> None:
    from calls.desk import DeskError

    if actor.role not in roles:
        raise DeskError("forbidden", 403)


class AdminDesk:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    # -- the opt-out register (谢绝回访) ----------------------------------------------

    def add_opt_out(self, actor: Actor, raw_phone: str, note: str = "") -> OptOutAdded:
        """Put a number on the register (any form of it); a new entry is logged with
        its note. Refusals: forbidden (403), optout-bad-phone (422)."""
        from calls.desk import DeskError

        _check_role(actor, ADMIN_ROLES)
        with self.desk.sessions() as db:
            try:
                entry, new = add_opt_out(
                    db, raw_phone, actor.username, note, phones=self.desk.handler.phones
                )
            except InvalidPhone:
                raise DeskError(
                    "optout-bad-phone", 422, {"phone": raw_phone[:RAW_SHOWN_CHARS]}
                ) from None
            phone = entry.phone
            if new:
                log_action(db, actor.username, "optout-added", phone, note[:NOTE_LOGGED_CHARS])
            db.commit()
        return OptOutAdded(phone, new)

    def remove_opt_out(self, actor: Actor, raw_phone: str) -> str:
        """Take a number off the register; returns it (E.164). Refusals: forbidden
        (403), optout-bad-phone (422), optout-absent (404, the number masked)."""
        from calls.desk import DeskError

        _check_role(actor, ADMIN_ROLES)
        phones = self.desk.handler.phones
        refused = DeskError("optout-bad-phone", 422, {"phone": raw_phone[:RAW_SHOWN_CHARS]})
        try:
            phone = normalise(raw_phone, phones)
        except InvalidPhone:
            raise refused from None
        with self.desk.sessions() as db:
            try:
                removed = remove_opt_out(db, phone, phones=phones)
            except InvalidPhone:
                raise refused from None
            if not removed:
                raise DeskError("optout-absent", 404, {"phone": mask_for_screen(phone)})
            log_action(db, actor.username, "optout-removed", phone)
            db.commit()
        return phone

    # -- units' duty phones (值班电话) -------------------------------------------------

    def set_duty_phone(self, actor: Actor, code: str, raw_phone: str) -> DutyPhoneSet:
        """Set, change or clear (empty ``raw_phone``) a unit's duty phone; a change is
        logged with the number before. Refusals: forbidden (403); no-unit,
        unit-bad-duty-phone, unit-short-duty-phone (422, as the units page answers)."""
        from calls.desk import DeskError

        _check_role(actor, ADMIN_ROLES)
        with self.desk.sessions() as db:
            try:
                unit, before = duty_numbers.set_duty_phone(
                    db, code, raw_phone, self.desk.handler.phones
                )
            except duty_numbers.DutyNumberError as exc:
                refusal = exc.code if exc.code == "no-unit" else f"unit-{exc.code}"
                raise DeskError(refusal, 422, {"code": code}) from None
            now = unit.duty_phone
            if now != before:
                detail = f"{before or '—'} -> {now or '—'}"
                log_action(db, actor.username, "unit-duty-phone", code, detail)
            result = DutyPhoneSet(unit.name, before, now)
            db.commit()
        return result

    # -- a case's caller and listing ----------------------------------------------------

    def set_case_public(self, actor: Actor, number: str, public: bool) -> bool:
        """List a phone, SMS or web case on Open311, or take it off (on its trail and
        in the action log); returns whether anything changed. Refusals: forbidden
        (403), no-such-case (404)."""
        from calls.desk import DeskError

        _check_role(actor, CASE_SUPERVISOR_ROLES)
        with self.desk.sessions() as db:
            case = db.scalar(select(Case).where(Case.number == number))
            if case is None:
                raise DeskError("no-such-case", 404)
            changed = set_public(db, case, public, actor.username)
            if changed:
                action = "open311-public" if public else "open311-private"
                log_action(db, actor.username, action, number)
            db.commit()
        return changed

    def reveal_phone(self, actor: Actor, number: str) -> str:
        """A case's caller's whole number, for a supervisor; who saw it, on which case,
        goes into the action log. Refusals: forbidden (403), no-such-case (404: no
        such case, or no number on it)."""
        from calls.desk import DeskError

        _check_role(actor, CASE_SUPERVISOR_ROLES)
        with self.desk.sessions() as db:
            phone = db.scalar(select(Case.caller_phone).where(Case.number == number))
            if phone is None:
                raise DeskError("no-such-case", 404)
            log_action(db, actor.username, "phone-revealed", number)
            db.commit()
        return phone
