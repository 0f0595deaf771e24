"""Units' duty phones (值班电话): the number an operator rings to consult a department
or a district government before handing a caller on (calls.consult). Admins set them
(web/console/duty_numbers.py); the operator's transfer directory lists the units that
have one. Stored in E.164, checked with phonenumbers: a short service code (96166) or a
number that cannot exist is refused, since the trunk must be able to dial it from here."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Department
from cases.phones import DEFAULT, InvalidPhone, PhoneSettings, national_form, normalise


class DutyNumberError(ValueError):
    """A refused duty phone or unit; ``code`` names the refusal for the screens."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DutyEntry:
    """A line of the transfer directory."""

    code: str
    name: str
    kind: str  # department | district
    phone: str  # E.164
    shown: str  # as an operator reads it: 0898 6666 1234


def duty_number(raw: str, phones: PhoneSettings = DEFAULT) -> str | None:
    """The E.164 form of a duty phone as an admin typed it (0898-66661234, 66661234,
    +86 138 0013 8000); None for an empty box (the unit has none)."""
    if not (raw or "").strip():
        return None
    try:
        number = normalise(raw, phones)
    except InvalidPhone:
        raise DutyNumberError(f"not a phone number: {raw!r}", "bad-duty-phone") from None
    if not number.startswith("+"):
        raise DutyNumberError(f"a full number, not a short code: {raw!r}", "short-duty-phone")
    if not phonenumbers.is_valid_number(phonenumbers.parse(number)):
        raise DutyNumberError(f"no such number: {raw!r}", "bad-duty-phone")
    return number


def set_duty_phone(
    session: Session, code: str, raw: str, phones: PhoneSettings = DEFAULT
) -> tuple[Department, str | None]:
    """Set (or clear, with an empty ``raw``) a unit's duty phone; returns the unit and
    the number it had. The caller commits."""
    unit = session.scalar(select(Department).where(Department.code == code))
    if unit is None:
        raise DutyNumberError(f"no unit {code!r}", "no-unit")
    before = unit.duty_phone
    unit.duty_phone = duty_number(raw, phones)
    session.flush()
    return unit, before


def directory(session: Session, phones: PhoneSettings = DEFAULT) -> list[DutyEntry]:
    """Units with a duty phone: city departments first, then district governments, each
    by name."""
    units = session.scalars(
        select(Department)
        .where(Department.duty_phone.is_not(None), Department.duty_phone != "")
        .order_by(Department.kind, Department.name)
    )
    return [
        DutyEntry(u.code, u.name, u.kind, u.duty_phone or "", national_form(u.duty_phone, phones))
        for u in units
    ]


def duty_entry(session: Session, code: str, phones: PhoneSettings = DEFAULT) -> DutyEntry:
    """One unit's directory line; refused when the unit is unknown or has no duty phone."""
    unit = session.scalar(select(Department).where(Department.code == code))
    if unit is None:
        raise DutyNumberError(f"no unit {code!r}", "no-unit")
    if not unit.duty_phone:
        raise DutyNumberError(f"{code} has no duty phone", "no-duty-phone")
    return DutyEntry(
        unit.code, unit.name, unit.kind, unit.duty_phone, national_form(unit.duty_phone, phones)
    )
