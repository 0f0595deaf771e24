"""The responsible units (city departments and district governments) as an
administrator keeps them: added with a code and a Chinese name, renamed. SQL only; the
caller records who did it."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Department, District

UNIT_CODE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")  # water-affairs, district-xiuying
UNIT_KINDS = ("department", "district")
MAX_NAME = 128


class UnitError(ValueError):
    """A refused change; ``code`` names it for the screens."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise UnitError("a unit needs a name", "no-name")
    if len(name) > MAX_NAME:
        raise UnitError(f"a unit's name has at most {MAX_NAME} characters", "name-long")
    return name


def list_units(session: Session) -> list[Department]:
    """City departments first, then district governments, each by code."""
    return list(session.scalars(select(Department).order_by(Department.kind, Department.code)))


def list_districts(session: Session) -> list[District]:
    return list(session.scalars(select(District).order_by(District.code)))


def district_named_in(session: Session, address: str) -> District | None:
    """The one district whose full name (美兰区) the address gives, so that a written
    request for a district's matter (a street light) reaches its government without
    waiting for a dispatcher. None when it names none, or more than one."""
    named = [d for d in list_districts(session) if d.name and d.name in address]
    return named[0] if len(named) == 1 else None


def add_unit(
    session: Session, code: str, name: str, kind: str, district_code: str = ""
) -> Department:
    """A new unit. A district government names the district it governs, so that cases
    there with no lead department reach it."""
    code = code.strip().lower()
    if not UNIT_CODE.match(code) or len(code) > 48:
        raise UnitError("a unit code is a-z 0-9 words joined by -, at most 48", "bad-code")
    if kind not in UNIT_KINDS:
        raise UnitError(f"kind is one of {', '.join(UNIT_KINDS)}", "bad-kind")
    name = _name(name)
    if session.scalar(select(Department.id).where(Department.code == code)) is not None:
        raise UnitError(f"unit {code!r} exists", "exists")
    district = None
    if kind == "district":
        district = session.scalar(select(District).where(District.code == district_code))
        if district is None:
            raise UnitError("a district government names its district", "no-district")
        taken = session.scalar(
            select(Department.code).where(
                Department.kind == "district", Department.district_id == district.id
            )
        )
        if taken is not None:
            raise UnitError(f"{district_code!r} already has its government", "district-taken")
    unit = Department(
        code=code, name=name, kind=kind, district_id=district.id if district else None
    )
    session.add(unit)
    session.commit()
    return unit


def rename_unit(session: Session, code: str, name: str) -> tuple[Department, str]:
    """A unit's new Chinese name; returns the unit and its name before."""
    unit = session.scalar(select(Department).where(Department.code == code))
    if unit is None:
        raise UnitError(f"no unit {code!r}", "no-unit")
    before, unit.name = unit.name, _name(name)
    session.commit()
    return unit, before
