"""The administrator's and supervisors' record-keeping actions: users, units, the
opt-out register (谢绝回访), units' duty phones, listing a case on Open311, and
revealing a caller's whole number. Each checks who may act, writes its action log line
in the same session, and turns the record's refusal into a DeskError.

Users and units: cases.users and cases.units commit inside each function, so their log
line is a second commit in that session; their refusals carry the record's own code as
``details["refused"]``, which the admin screens word beside the field it is about."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from cases import duty_numbers
from cases import units as unit_record
from cases import users as user_record
from cases.models import Case, add_opt_out, remove_opt_out
from cases.open311 import set_public
from cases.phones import InvalidPhone, mask_for_screen, normalise
from cases.users import log_action

if TYPE_CHECKING:
    from calls.desk import Actor, Desk, DeskError

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


def _refused(kind: str, refused: str, **details: object) -> DeskError:
    """A user or unit record's refusal (422, as the admin screens answer it)."""
    from calls.desk import DeskError

    code = refused if refused in ("no-unit", "no-user") else f"{kind}-{refused}"
    return DeskError(code, 422, {"refused": refused, **details})


class AdminDesk:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    # -- users ----------------------------------------------------------------------

    def add_user(
        self,
        actor: Actor,
        username: str,
        role: str,
        password: str,
        *,
        display_name: str = "",
        seat: str | None = None,
        department_code: str | None = None,
    ) -> None:
        """A new user (cases.users.add_user writes its user-added line itself).
        Refusals: forbidden (403); the record's refusals (422)."""
        _check_role(actor, ADMIN_ROLES)
        with self.desk.sessions() as db:
            try:
                user_record.add_user(
                    db,
                    username,
                    role,
                    password,
                    display_name=display_name,
                    seat=seat,
                    department_code=department_code,
                    by=actor.username,
                )
            except user_record.UserError as exc:
                raise _refused("user", exc.code, user=username) from None

    def set_user_active(self, actor: Actor, username: str, active: bool) -> None:
        """Enable or disable a user (their token goes with it; the surface ends their
        sessions and seats). Refusals: forbidden (403); no-user, user-last-admin,
        user-self-disable (422)."""
        _check_role(actor, ADMIN_ROLES)
        with self.desk.sessions() as db:
            try:
                user_record.set_active(db, username, active, by=actor.username)
            except user_record.UserError as exc:
                raise _refused("user", exc.code, user=username) from None
            action = "user-enabled" if active else "user-disabled"
            log_action(db, actor.username, action, username)
            db.commit()

    def reset_password(self, actor: Actor, username: str, password: str) -> None:
        """A new password chosen by the admin. Refusals: forbidden (403); no-user and
        the password rules (422)."""
        _check_role(actor, ADMIN_ROLES)
        with self.desk.sessions() as db:
            try:
                user_record.set_password(db, username, password)
            except user_record.UserError as exc:
                raise _refused("user", exc.code, user=username) from None
            log_action(db, actor.username, "password-reset", username)
            db.commit()

    def revoke_token(self, actor: Actor, username: str) -> bool:
        """The user's personal API token stops working; False (and no log line) if
        they had none. Refusals: forbidden (403), no-user (422)."""
        _check_role(actor, ADMIN_ROLES)
        with self.desk.sessions() as db:
            try:
                had = user_record.revoke_tokens(db, username)
            except user_record.UserError as exc:
                raise _refused("user", exc.code, user=username) from None
            if had:
                log_action(db, actor.username, "token-revoked", username)
                db.commit()
        return had

    # -- units ------------------------------------------------------------------------

    def add_unit(self, actor: Actor, code: str, name: str, kind: str, district: str) -> str:
        """A new unit; returns its name as stored. Refusals: forbidden (403); the
        record's refusals (422)."""
        _check_role(actor, ADMIN_ROLES)
        with self.desk.sessions() as db:
            try:
                unit = unit_record.add_unit(db, code, name, kind, district)
            except unit_record.UnitError as exc:
                raise _refused("unit", exc.code, code=code) from None
            stored = unit.name
            log_action(db, actor.username, "unit-added", code, f"{kind}: {stored}")
            db.commit()
        return stored

    def rename_unit(self, actor: Actor, code: str, name: str) -> tuple[str, str]:
        """A unit's new name; returns (before, now), logged only if it changed.
        Refusals: forbidden (403); no-unit, unit-no-name, unit-name-long (422)."""
        _check_role(actor, ADMIN_ROLES)
        with self.desk.sessions() as db:
            try:
                unit, before = unit_record.rename_unit(db, code, name)
            except unit_record.UnitError as exc:
                raise _refused("unit", exc.code, code=code) from None
            now = unit.name
            if now != before:
                log_action(db, actor.username, "unit-renamed", code, f"{before} -> {now}")
                db.commit()
        return before, now

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
