"""Online, SMS and Open311 requests (tasks) on the operator's console, in the centre
between calls: the seat's offered and held tasks (redrawn when the seat's stream says
``task``), and the task in hand: read it, take it, set its category and unit (the call
form's rules), reply to the citizen (the first response, due within 3 minutes) and
complete it. Every action goes through the desk (calls.tasks.TaskDesk).

The list's and the detail's clocks are one: each shows the task's deadline (``due_ms``,
the queue's Redis clock) in Beijing time, and the console's script counts down to it
from the Redis clock's ``now``, so both say the same."""

from __future__ import annotations

from typing import Any

from flask import make_response, render_template, request

from calls.desk import DeskError
from cases.service import InvalidForm
from web.auth import desk_actor, language, roles_required
from web.console.catalogue import catalogue, category_code_for
from web.console.routes import OPERATORS, SUPERVISORS, bp, form_error, my_seat
from web.context import services
from web.formatting import beijing

CHANGED = "tasks-changed"  # tells the console's list to redraw


def _tasks(seat: str) -> list[dict[str, object]]:
    tasks = services().desk.tasks.for_seat(desk_actor(), seat)
    for task in tasks:  # the deadline as the operator reads it: 14:05:09, Beijing
        task["due_at"] = beijing(int(str(task["due_ms"])) / 1000, seconds=True)[-8:]
    return tasks


def _redis_now_ms() -> int:
    """The queue's clock, which set the deadlines: the console's clocks count from it."""
    seconds, micros = services().redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _detail(number: str, status: int = 200, **extra: Any) -> Any:
    seat = my_seat()
    task = None
    if seat:
        task = next((t for t in _tasks(seat) if t["number"] == number), None)
    page = render_template(
        "_task_detail.html",
        task=task,
        number=number,
        values=extra.pop("values", {}),
        now_ms=_redis_now_ms(),
        **extra,
        **catalogue(),
    )
    response = make_response(page, status)
    response.headers["HX-Trigger"] = CHANGED
    return response


def _refused(number: str, exc: DeskError) -> Any:
    # The console swaps 409 and 422 answers only: a refusal is read inline.
    status = exc.status if exc.status in (409, 422) else 409
    # A reply refused keeps its text in the form, to send again.
    kept = {"reply": request.form.get("reply", "")}
    return _detail(number, status, refused=exc.words(language()), values=kept)


@bp.get("/tasks")
@roles_required(*OPERATORS, *SUPERVISORS)
def task_list() -> Any:
    seat = my_seat()
    tasks = _tasks(seat) if seat else []
    handed_on = services().desk.tasks.handed_on(desk_actor(), seat) if seat else ""
    return render_template(
        "_task_list.html", tasks=tasks, seat=seat, handed_on=handed_on, now_ms=_redis_now_ms()
    )


@bp.get("/tasks/<number>")
@roles_required(*OPERATORS, *SUPERVISORS)
def task_detail(number: str) -> Any:
    return _detail(number)


@bp.post("/tasks/<number>/draft")
@roles_required(*OPERATORS, *SUPERVISORS)
def task_draft(number: str) -> Any:
    """The reply being written, saved by the console's script as the operator types (no
    redraw: 204). A request no longer the seat's (handed on) is refused with a 409,
    after which the console redraws its list and says so."""
    seat = my_seat()
    try:
        if not seat:
            raise DeskError("no-seat", 409)
        services().desk.tasks.save_draft(desk_actor(), seat, number, request.form.get("reply", ""))
    except DeskError as exc:
        status = exc.status if exc.status in (404, 409, 422) else 409
        return make_response(exc.words(language()), status)
    return make_response("", 204)


@bp.post("/tasks/<number>/<action>")
@roles_required(*OPERATORS, *SUPERVISORS)
def task_action(number: str, action: str) -> Any:
    seat = my_seat()
    if not seat:
        return _refused(number, DeskError("no-seat", 409))
    desk, actor = services().desk, desk_actor()
    values: dict[str, str] = {}
    try:
        if action == "take":
            desk.tasks.take(actor, seat, number)
        elif action == "release":
            desk.tasks.release(actor, seat, number)
            return _detail(number, gone="released")
        elif action == "reply":
            values["reply"] = request.form.get("reply", "")
            first = desk.tasks.reply(actor, seat, number, values["reply"])
            return _detail(number, replied="first" if first else "again")
        elif action == "file":
            values = {k: request.form.get(k, "") for k in ("category_code", "department_code")}
            values["reply"] = request.form.get("reply", "")  # the reply box, redrawn as it was
            outcome = request.form.get("outcome", "dispatch")
            form: dict[str, object] = {
                "category_code": category_code_for(values["category_code"]),
                "department_code": values["department_code"],
                "resolved_on_phone": outcome == "resolved",
                "dispatch": outcome == "dispatch",
            }
            case = desk.tasks.file(actor, seat, number, form)
            # What the save did, said plainly: a dispatch that found no unit waits
            # for a dispatcher (待派单), and the operator may still choose one here.
            if case.status == "dispatched" and case.department is not None:
                return _detail(number, filed="dispatched", filed_unit=case.department.name)
            if case.status in ("resolved", "closed"):
                return _detail(number, filed="resolved")
            if outcome == "dispatch" and case.status == "received":
                return _detail(number, filed="needs-dispatch", values=values)
            return _detail(number, filed="saved")
        elif action == "done":
            desk.tasks.complete(actor, seat, number)
            return _detail(number, gone="done")
        else:
            return _refused(number, DeskError("bad-argument", 400, {"detail": action}))
    except InvalidForm as exc:
        return _detail(number, 422, error=form_error(exc), values=values)
    except DeskError as exc:
        return _refused(number, exc)
    return _detail(number)
