"""Units' duty phones (值班电话) on the admin's units page: set, change or clear one
(E.164, checked by cases.duty_numbers); each change is in the action log with who made
it. The operators' transfer directory (the call controls) lists them."""

from __future__ import annotations

from typing import Any

from flask import request

from cases import duty_numbers
from web.auth import desk_actor, roles_required
from web.console.admin import ADMIN, admin_units, done, refusal
from web.console.routes import bp
from web.context import services


@bp.post("/admin/units/<code>/duty-phone")
@roles_required(ADMIN)
def admin_unit_duty_phone(code: str) -> Any:
    raw = request.form.get("duty_phone", "")[:64]
    with services().desk.sessions() as db:
        try:
            unit, before = duty_numbers.set_duty_phone(db, code, raw, services().handler.phones)
        except duty_numbers.DutyNumberError as exc:
            db.rollback()
            return admin_units(error=refusal("unit", exc.code, code=code), status=422)
        db.commit()
        name, now = unit.name, unit.duty_phone
    if now != before:
        services().desk.record(
            desk_actor(), "unit-duty-phone", code, f"{before or '—'} -> {now or '—'}"
        )
    if now:
        return done("console.admin_units", "done_duty_phone_set", unit=name)
    return done("console.admin_units", "done_duty_phone_cleared", unit=name)
