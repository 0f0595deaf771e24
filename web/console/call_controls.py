"""The operator's call controls beside the pop: 紧急转办 to an emergency line (one
button per line, a short note, a confirmation), a transfer to another skill or a
named seat, hold, and a consult transfer to a unit's duty phone from the directory
(咨询转接, then complete, three-way or cancel). Every action goes through the desk
(calls.desk), which checks that the call is the operator's (or a supervisor acts) and
moves it (calls.transfers, calls.consult)."""

from __future__ import annotations

import logging
from typing import Any

from flask import render_template, request
from sqlalchemy.exc import SQLAlchemyError

from calls.desk import DeskError
from calls.transfers import EMERGENCY_LINES
from cases.duty_numbers import DutyEntry, directory
from web.auth import desk_actor, language, roles_required
from web.console.routes import OPERATORS, SUPERVISORS, bp, my_seat
from web.context import services
from web.telephony import emergency_lines, telephony

log = logging.getLogger("hotline.web.call_controls")


def refused(call: str, exc: DeskError, **extra: Any) -> tuple[str, int]:
    """The refusal inline, in the operator's words. The console swaps 409 and 422
    answers only (static/console.js), so a telephony that failed (502: the caller did
    not move) is answered 409 here: the operator must read it to tell the caller."""
    shown = None if exc.status in (400, 403, 404) else call  # not a call of theirs
    view = controls_view(shown, error=exc.words(language()), **extra)
    return render_template("_call_controls.html", **view), 409 if exc.status >= 500 else exc.status


def unit_directory() -> list[DutyEntry]:
    """Units with a duty phone, for the transfer directory; none while SQL is down (the
    emergency buttons must still be drawn)."""
    try:
        with services().desk.sessions() as db:
            return directory(db, services().handler.phones)
    except SQLAlchemyError:
        log.exception("the transfer directory is unavailable")
        return []


def controls_view(call: str | None, **extra: Any) -> dict[str, Any]:
    lines = [
        {"line": line, "name": EMERGENCY_LINES.get(line, ("", ""))[0 if language() == "zh" else 1]}
        for line in emergency_lines()
    ]
    held = bool(call and services().queue.call(call).get("held_at"))
    skills = services().queue.settings.skills
    units = unit_directory() if call else []
    record = services().queue.call(call) if call else {}
    consult = record.get("consult", "")
    code = record.get("consult_unit", "")
    consulted = next((u for u in units if u.code == code), None)
    return {
        "call": call,
        "held": held and not consult,
        "lines": lines,
        "skills": skills,
        "directory": units,
        "consult": consult,
        "consult_unit": {"name": consulted.name, "shown": consulted.shown}
        if consulted
        else {"name": code, "shown": ""},
        **extra,
    }


def seat_and_record() -> tuple[str | None, dict[str, str]]:
    """The operator's seat and its record (its call, on a call or in wrap-up)."""
    seats = services().desk.seats_of(desk_actor().username)
    seat = my_seat() or (seats[0] if seats else None)
    return seat, services().queue.seat(seat) if seat else {}


@bp.get("/call-controls")
@roles_required(*OPERATORS)
def call_controls() -> Any:
    """Redrawn on every seat event: the controls while on a call; in the wrap-up after
    a transfer, what became of the call (the seat event must not wipe that out)."""
    seat, record = seat_and_record()
    call = record.get("call") or None
    if record.get("state") == "on_call":
        return render_template("_call_controls.html", **controls_view(call))
    done: dict[str, Any] = {}
    if call and record.get("state") == "wrap_up":
        handed = services().queue.call(call)
        if handed.get("transferred_from") == seat:
            kind = handed.get("transfer_kind")
            done = {"done_line": handed.get("transferred_to")} if kind == "out" else {}
            if kind == "unit":
                done = {"done_unit": unit_name(handed.get("transferred_to", ""))}
            done = done or {"done_other": True}
    return render_template("_call_controls.html", **controls_view(None, **done))


@bp.post("/calls/<call>/emergency")
@roles_required(*OPERATORS, *SUPERVISORS)
def emergency_transfer(call: str) -> Any:
    line = request.form.get("line", "")
    note = request.form.get("note", "")
    try:
        services().desk.transfer_emergency(
            desk_actor(), call, line, note, telephony(), emergency_lines()
        )
    except DeskError as exc:
        return refused(call, exc, note=note)
    return render_template("_call_controls.html", **controls_view(None, done_line=line))


@bp.post("/calls/<call>/transfer")
@roles_required(*OPERATORS, *SUPERVISORS)
def transfer(call: str) -> Any:
    kind = request.form.get("kind", "")
    target = request.form.get("seat" if kind == "seat" else "skill", "").strip()
    try:
        services().desk.transfer_call(desk_actor(), call, kind, target, telephony())
    except DeskError as exc:
        return refused(call, exc)
    return render_template("_call_controls.html", **controls_view(None, done_other=True))


def unit_name(code: str) -> str:
    return next((u.name for u in unit_directory() if u.code == code), code)


@bp.post("/calls/<call>/consult")
@roles_required(*OPERATORS, *SUPERVISORS)
def consult(call: str) -> Any:
    """咨询转接: ring a unit's duty phone while the caller holds (start), then hand the
    caller over (complete), talk all three (threeway; leave later), or go back to the
    caller (cancel). calls.consult does each step through the desk."""
    step = request.form.get("step", "")
    unit = request.form.get("unit", "").strip()[:48]
    try:
        result = services().desk.consults.step(desk_actor(), call, step, telephony(), unit)
    except DeskError as exc:
        return refused(call, exc)
    if result == "transferred":
        code = services().queue.call(call).get("transferred_to", "")
        return render_template(
            "_call_controls.html", **controls_view(None, done_unit=unit_name(code))
        )
    return render_template("_call_controls.html", **controls_view(call))


@bp.post("/calls/<call>/hold")
@roles_required(*OPERATORS, *SUPERVISORS)
def hold(call: str) -> Any:
    """保持 (music for the caller) and 恢复通话 (the seat's phone rings to take them back)."""
    on = request.form.get("action") == "hold"
    try:
        services().desk.hold_call(desk_actor(), call, on, telephony())
    except DeskError as exc:
        return refused(call, exc)
    return render_template("_call_controls.html", **controls_view(call))
