"""The operator's call controls beside the pop: 紧急转办 to an emergency line (one
button per line, a short note, a confirmation), and a transfer to another skill or a
named seat. Every action goes through the desk (calls.desk), which checks that the
call is the operator's (or a supervisor acts) and moves it (calls.transfers)."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from calls.desk import DeskError
from calls.transfers import EMERGENCY_LINES
from web.auth import desk_actor, language, roles_required
from web.console.routes import OPERATORS, SUPERVISORS, bp, my_seat
from web.context import services
from web.telephony import emergency_lines, telephony


def refused(call: str, exc: DeskError, **extra: Any) -> tuple[str, int]:
    """The refusal inline, in the operator's words. The console swaps 409 and 422
    answers only (static/console.js), so a telephony that failed (502: the caller did
    not move) is answered 409 here: the operator must read it to tell the caller."""
    shown = None if exc.status in (400, 403, 404) else call  # not a call of theirs
    view = controls_view(shown, error=exc.words(language()), **extra)
    return render_template("_call_controls.html", **view), 409 if exc.status >= 500 else exc.status


def controls_view(call: str | None, **extra: Any) -> dict[str, Any]:
    lines = [
        {"line": line, "name": EMERGENCY_LINES.get(line, ("", ""))[0 if language() == "zh" else 1]}
        for line in emergency_lines()
    ]
    held = bool(call and services().queue.call(call).get("held_at"))
    skills = services().queue.settings.skills
    return {"call": call, "held": held, "lines": lines, "skills": skills, **extra}


def current_call() -> str | None:
    """The call the operator's seat is talking on, if any."""
    seats = services().desk.seats_of(desk_actor().username)
    seat = my_seat() or (seats[0] if seats else None)
    if not seat:
        return None
    record = services().queue.seat(seat)
    return record.get("call") or None if record.get("state") == "on_call" else None


@bp.get("/call-controls")
@roles_required(*OPERATORS)
def call_controls() -> Any:
    return render_template("_call_controls.html", **controls_view(current_call()))


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
