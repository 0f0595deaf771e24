"""Units' duty phones (值班电话) on the admin's units page: set, change or clear one
(E.164, checked by cases.duty_numbers); each change is in the action log with who made
it. The operators' transfer directory (the call controls) lists them."""

from __future__ import annotations

from typing import Any

from flask import request

from calls.desk import DeskError
from web.auth import desk_actor, language, roles_required
from web.console.admin import ADMIN, admin_units, done
from web.console.routes import bp
from web.context import services


@bp.post("/admin/units/<code>/duty-phone")
@roles_required(ADMIN)
def admin_unit_duty_phone(code: str) -> Any:
    raw = request.form.get("duty_phone", "")[:64]
    try:
        unit = services().desk.admin.set_duty_phone(desk_actor(), code, raw)
    except DeskError as exc:
        return admin_units(error=exc.words(language()), status=exc.status, refused_duty_phone=code)
    if unit.now:
        return done("console.admin_units", "done_duty_phone_set", unit=unit.unit_name)
    return done("console.admin_units", "done_duty_phone_cleared", unit=unit.unit_name)
