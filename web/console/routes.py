"""The operator console (one screen for the whole call) and the supervisor wallboard.

Pages are server-rendered; htmx posts the operator's actions. The live streams are
the push process's (push/): it signals ``pop``, ``seat`` and ``board``, and the page
fetches the fragment from here (the pop, the seat panel, the board), so no open screen
holds a web thread."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
    session,
)
from markupsafe import escape
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from calls.desk import PAUSE_REASONS, DeskError, call_outcome
from calls.figures import case_figures, figures, task_figures
from cases.cdr import day_start, hourly, operator_day, outbound_figures, seat_day
from cases.lifecycle import OPEN_STATUSES
from cases.models import (
    CallbackRequest,
    Case,
    CitizenRegister,
    OutboundItem,
)
from cases.service import DispatchedAlready, InvalidForm, blank_cases
from cases.topics import current_hot_topics
from queueing.settings import TASK_SKILL
from web.auth import desk_actor, language, roles_required
from web.console.board import BETWEEN, MARK, Drawing, SeatRows, Wallboard, is_stuck, masked
from web.console.catalogue import catalogue, category_code_for, category_name, named_allowed
from web.context import services

log = logging.getLogger("hotline.web.console")
bp = Blueprint("console", __name__, url_prefix="/console")
bp.add_app_template_filter(category_name, "category_name")  # the case forms' box

OPERATORS = ("operator", "admin")
SUPERVISORS = ("supervisor", "admin")
SLOW_FIGURES_S = 5.0  # today's figures and the chart come from SQL, refreshed this often


def sessions():  # type: ignore[no-untyped-def]
    return services().desk.sessions


def my_seat() -> str | None:
    return session.get("seat")


def require_seat() -> str:
    seat = my_seat()
    if not seat:
        raise DeskError("no-seat", 409)
    return seat


@bp.errorhandler(DeskError)
def desk_refused(exc: DeskError) -> Any:
    """A refused action: the seat panel with the reason, in the operator's language. A
    seat that was logged out under the operator reloads the console, which says why."""
    if exc.code == "seat-logged-out":
        return Response(status=exc.status, headers={"HX-Refresh": "true"})
    if request.headers.get("HX-Request") and request.path.startswith("/console/seat"):
        return render_template(
            "_seat.html", seat=seat_view(my_seat()), reasons=PAUSE_REASONS,
            error=exc.words(language()),
        ), exc.status
    return render_template(
        "error.html", code=exc.status, title=exc.words(language()), text="", detail=""
    ), (
        exc.status
    )


# -- what the screens show ------------------------------------------------------------


def seat_view(seat: str | None) -> dict[str, Any]:
    if not seat:
        return {"id": None, "state": "offline"}
    data: dict[str, Any] = dict(services().queue.seat(seat))
    data["id"] = seat
    return data


def pop_view(call_id: str, wait_ms: int | None = None) -> dict[str, Any] | None:
    """Everything the operator should see when a call is offered to them."""
    svc = services()
    record_ = svc.queue.call(call_id)
    if not record_:
        return None
    flow = svc.handler.load(call_id)
    outcome = call_outcome(record_)
    caller = (flow.caller if flow else "") or record_.get("caller", "")
    entered = int(record_.get("entered") or 0)
    view: dict[str, Any] = {
        "call": call_id,
        "outcome": outcome,  # ringing, on_call, talked, missed
        "caller": caller,
        "priority": record_.get("priority", "normal"),
        "skill": record_.get("skill", "mandarin"),
        "hotline": flow.hotline if flow else None,
        "pressed": flow.pressed if flow else "",
        "waited_s": round((wait_ms if wait_ms is not None else 0) / 1000)
        if wait_ms is not None
        else (round(time.time() - entered / 1000) if entered else None),
        "callback": bool(flow and flow.outbound_kind),
        "callback_of": datetime.fromtimestamp(flow.callback_of, UTC)
        if flow and flow.callback_of
        else None,
        "name": "",
        "vulnerable": record_.get("priority") == "vulnerable",
        "cases": [],
        "open_cases": [],
    }
    if caller:
        try:
            with sessions()() as db:
                person = db.scalar(select(CitizenRegister).where(CitizenRegister.phone == caller))
                if person is not None:
                    view["name"] = person.name
                    view["vulnerable"] = view["vulnerable"] or person.vulnerable
                view["cases"] = [
                    {
                        "number": c.number,
                        "status": c.status,
                        "category": c.category.name if c.category else "",
                        "created": c.created_at,
                        "description": c.description[:80],
                        "call": c.call_id,
                    }
                    for c in db.scalars(
                        select(Case)
                        .where(Case.caller_phone == caller)
                        .order_by(Case.created_at.desc())
                        .limit(5)
                    )
                ]
        except SQLAlchemyError:
            log.exception("screen pop for %s without case history", call_id)
    view["open_cases"] = [
        c for c in view["cases"] if c["status"] in OPEN_STATUSES and c["call"] != call_id
    ]
    return view


def to_complete(seat: str | None) -> list[dict[str, Any]]:
    """Cases of this seat's calls in the last day whose form never came (待补录), with
    the call to open its form again while the call's record lives."""
    if not seat:
        return []
    try:
        with sessions()() as db:
            since = datetime.now(UTC) - timedelta(days=1)
            return [
                {"number": c.number, "call": c.call_id, "created": c.created_at}
                for c in blank_cases(db, since, seat)
            ]
    except SQLAlchemyError:
        return []


def my_day(seat: str | None) -> tuple[int, float | None]:
    """The signed-in operator's own day: their calls at any seat, not the seat's."""
    try:
        with sessions()() as db:
            return operator_day(db, day_start(), desk_actor().username)
    except SQLAlchemyError:
        return 0, None


# -- the console ----------------------------------------------------------------------


@bp.get("/")
@roles_required(*OPERATORS)
def console() -> Any:
    seat = my_seat()
    current = seat_view(seat)
    stranded = None
    if seat and current.get("state") == "offline":
        # Logged out under the operator (heartbeat lost, a supervisor): say why, and
        # offer to log in again with the same seat and skills.
        stranded = DeskError(
            "seat-logged-out", 409, {"seat": seat, **services().desk.logout_words(current)}
        ).words(language())
        session.pop("seat", None)
        current = {"id": None, "state": "offline", "skills": current.get("skills", "")}
        seat = None
    call = (
        current.get("call") if current.get("state") in ("offered", "on_call", "wrap_up") else None
    )
    return render_template(
        "console.html",
        seat=current,
        pop=pop_view(call) if call else None,
        reasons=PAUSE_REASONS,
        skills=(*services().queue.settings.skills, TASK_SKILL),  # tasks between calls
        default_seat=my_seat() or seat or _stranded_seat(stranded) or _user_seat(),
        stranded=stranded,
        day=my_day(seat),
        unfiled=to_complete(seat),
        **catalogue(),
    )


def _stranded_seat(stranded: str | None) -> str | None:
    return request.args.get("seat") if stranded else None


def _user_seat() -> str:
    """The seat to offer: the one this person still holds (their sign-in ended while
    it was logged in), else their usual one."""
    from flask_login import current_user

    held = services().desk.seats_of(current_user.username)
    return held[0] if held else current_user.seat or ""


@bp.get("/seat")
@roles_required(*OPERATORS)
def seat_panel() -> Any:
    return render_template("_seat.html", seat=seat_view(my_seat()), reasons=PAUSE_REASONS)


@bp.get("/my-day")
@roles_required(*OPERATORS)
def my_day_panel() -> Any:
    seat = my_seat()
    return render_template("_my_day.html", day=my_day(seat), unfiled=to_complete(seat))


@bp.post("/seat/login")
@roles_required(*OPERATORS)
def seat_login() -> Any:
    seat = request.form.get("seat", "").strip()
    try:
        services().desk.login_seat(
            desk_actor(), seat, request.form.getlist("skills"), previous=my_seat()
        )
    except DeskError as exc:
        return render_template(
            "_seat.html", seat=seat_view(None), error=exc.words(language())
        ), exc.status
    session["seat"] = seat
    return Response(status=204, headers={"HX-Refresh": "true"})


@bp.post("/seat/logout")
@roles_required(*OPERATORS)
def seat_logout() -> Any:
    seat = require_seat()
    services().desk.logout_seat(desk_actor(), seat)
    session.pop("seat", None)
    return Response(status=204, headers={"HX-Refresh": "true"})


@bp.post("/seat/state")
@roles_required(*OPERATORS)
def seat_state() -> Any:
    seat = require_seat()
    after_call = bool(request.form.get("after_call"))
    wanted = request.form.get("state", "") or ("paused" if after_call else "")
    services().desk.set_seat_state(
        desk_actor(), seat, wanted, request.form.get("reason", ""), after_call=after_call
    )
    return render_template("_seat.html", seat=seat_view(seat), reasons=PAUSE_REASONS)


@bp.post("/seat/extend")
@roles_required(*OPERATORS)
def seat_extend() -> Any:
    seat = require_seat()
    services().desk.extend_wrapup(desk_actor(), seat)
    return render_template("_seat.html", seat=seat_view(seat), reasons=PAUSE_REASONS)


@bp.post("/heartbeat")
@roles_required(*OPERATORS)
def heartbeat() -> Any:
    """Every 10 s from the console. A seat logged out meanwhile answers 409 with a
    reload, and the console says why (never a 500)."""
    seat = my_seat()
    if seat:
        services().desk.heartbeat(desk_actor(), seat)
    return Response(status=204)


@bp.get("/suggest")
@roles_required(*OPERATORS, *SUPERVISORS)
def suggest() -> Any:
    """Units for the case form: the catalogue's lead unit for the category (chosen by
    default), then where past cases of that category and district went, then every
    unit, city departments first, in pinyin order."""
    from cases.dispatch import suggest_units
    from web.console.grid_route import grid_route

    category = category_code_for(request.args.get("category_code", "")) or None
    district = request.args.get("district_code") or None
    values = dict(request.args)
    with sessions()() as db:
        suggested = [
            {"code": u.code, "name": u.name} for u in suggest_units(db, category, district)
        ]
        to_grid = grid_route(
            db, category, values.get("address", ""), values.get("address_complete")
        )
    if to_grid is not None:  # the grid stands in for the catalogue's unit, in its district
        suggested = [u for u in suggested if u["code"] != to_grid.catalogue_unit]
        if values.get("department_code") in ("", to_grid.catalogue_unit, None):
            values["department_code"] = ""
        values["district_code"] = to_grid.district_code
    return render_template(
        "_unit_options.html",
        suggested=suggested,
        units=catalogue()["units"],
        values=values,
        grid_route=to_grid,
        districts=catalogue()["districts"],
    )


@bp.get("/calls/<call>/pop")
@roles_required(*OPERATORS, *SUPERVISORS)
def pop(call: str) -> Any:
    services().desk.call(desk_actor(), call)  # the seat's operator's, or a supervisor's
    view = pop_view(call)
    if view is None:
        abort(404)
    return render_template("_pop.html", pop=view, **catalogue())


@bp.get("/calls/<call>/status")
@roles_required(*OPERATORS, *SUPERVISORS)
def call_status(call: str) -> Any:
    """The pop's line saying where the call stands, redrawn on every seat event: a
    caller who hung up while the phone rang is shown as 未接通, and the form goes."""
    record_ = services().desk.call(desk_actor(), call)
    return render_template("_call_status.html", call=call, outcome=call_outcome(record_))


@bp.get("/calls/<call>/left-unfiled")
@roles_required(*OPERATORS)
def left_unfiled(call: str) -> Any:
    """The centre once the operator is ready again with the ended call's form unfiled:
    its case waits under 待补录 (the list redrawn with it), and the form is one click
    away, the draft typed so far kept in the browser."""
    record_ = services().desk.call(desk_actor(), call)
    flow = services().handler.load(call)
    caller = (flow.caller if flow else "") or record_.get("caller", "")
    number, at = None, None
    try:
        with sessions()() as db:
            case = db.scalar(select(Case).where(Case.call_id == call))
            if case is not None:
                number, at = case.number, case.created_at
    except SQLAlchemyError:
        log.exception("no case number for the unfiled form of %s", call)
    entered = int(record_.get("entered") or 0)
    seat = my_seat()
    return render_template(
        "_left_unfiled.html",
        call=call,
        caller=caller,
        at=entered / 1000 if entered else at,
        number=number,
        day=my_day(seat),
        unfiled=to_complete(seat),
    )


FORM_FIELDS = (
    "description",
    "address",
    "caller_name",
    "category_code",
    "district_code",
    "urgency",
    "attach_to",
    "department_code",
)


def form_from_request() -> dict[str, object]:
    f = request.form
    outcome = f.get("outcome", "dispatch")
    form: dict[str, object] = {name: f.get(name, "") for name in FORM_FIELDS}
    form["category_code"] = category_code_for(str(form["category_code"]))
    form["resolved_on_phone"] = outcome == "resolved"
    form["dispatch"] = outcome == "dispatch"
    return form


def form_error(exc: InvalidForm) -> dict[str, Any]:
    """The refusal in the operator's words: the field, and what is allowed by name."""
    if isinstance(exc, DispatchedAlready):
        message = DeskError("redispatch-needs-supervisor", 422, {"unit": exc.unit_name})
        return {"field": exc.field, "message": message.words(language()), "allowed": []}
    return {
        "field": exc.field,
        "message": "",
        "allowed": named_allowed(exc.field, [str(a) for a in exc.allowed]),
    }


CASE_FILED = "case-filed"  # tells the console's 今日 panel (待补录) to redraw


@bp.post("/calls/<call>/case")
@roles_required(*OPERATORS, *SUPERVISORS)
def case_form(call: str) -> Any:
    """The operator's form: filed into the call's case now (made now if the hang-up has
    not made it yet), under the same rule as the API; kept for a retry if SQL is down.
    Only the seat's operator (or a supervisor) files it, and only for an answered
    call."""
    desk, actor = services().desk, desk_actor()
    desk.call(actor, call)  # another operator's call is a 404
    popped = pop_view(call)
    page = {
        "call": call,
        "values": dict(request.form.items()),
        "open_cases": popped["open_cases"] if popped else [],
    }
    try:
        case = desk.file_form(actor, call, form_from_request())
    except InvalidForm as exc:
        return render_template(
            "_case_form.html", error=form_error(exc), **page, **catalogue()
        ), 422
    except DeskError as exc:
        return render_template(
            "_case_form.html", refused=exc.words(language()), **page, **catalogue()
        ), exc.status
    if case is None:
        return render_template("_case_form.html", kept=True, **page, **catalogue())
    filed = render_template("_case_form.html", filed=case, **page, **catalogue())
    # The 待补录 list leaves this call at once, not at its next 30 s refresh.
    return Response(filed, headers={"HX-Trigger": CASE_FILED})


# -- the wallboard --------------------------------------------------------------------


class BoardCache:
    """Today's SQL figures and chart, shared by every wallboard of this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at = 0.0
        self.value: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        with self.lock:
            if time.monotonic() - self.at < SLOW_FIGURES_S and self.value:
                return self.value
            start = day_start()
            try:
                with sessions()() as db:
                    end = datetime.now(UTC).replace(year=start.year + 1)
                    self.value = {
                        "figures": figures(db, start, end),
                        "cases": case_figures(db, start, end),
                        "tasks": task_figures(db, start, end),
                        "hourly": hourly(db, start),
                        "by_seat": seat_day(db, start),
                        "satisfaction": _satisfaction(db, start),
                        "hot_topics": current_hot_topics(db, datetime.now(UTC)),
                        "outbound": outbound_figures(db, start),
                        "callbacks_pending": (
                            db.scalar(
                                select(func.count(CallbackRequest.id)).where(
                                    CallbackRequest.status == "pending"
                                )
                            )
                            or 0
                        )
                        + (
                            db.scalar(
                                select(func.count(OutboundItem.id)).where(
                                    OutboundItem.kind == "callback",
                                    OutboundItem.status.in_(("pending", "dialing")),
                                )
                            )
                            or 0
                        ),
                    }
            except SQLAlchemyError:
                log.exception("wallboard figures unavailable")
            self.at = time.monotonic()
            return self.value


def _satisfaction(db, since: datetime) -> float | None:  # type: ignore[no-untyped-def]
    """满意率 today: satisfied of the return visits answered (cases closed or reopened
    since midnight with an answer)."""
    rows = dict(
        db.execute(
            select(Case.satisfaction, func.count())
            .where(Case.satisfaction.in_(("satisfied", "unsatisfied")), Case.updated_at >= since)
            .group_by(Case.satisfaction)
        ).all()
    )
    asked = rows.get("satisfied", 0) + rows.get("unsatisfied", 0)
    return round(rows.get("satisfied", 0) / asked, 4) if asked else None


def board_cache() -> BoardCache:
    ext = current_app.extensions
    if "hotline_board" not in ext:
        ext["hotline_board"] = BoardCache()
    return ext["hotline_board"]  # type: ignore[no-any-return]


SEAT_STATES = ("available", "offered", "on_call", "wrap_up", "paused", "offline")


def wallboard_drawer() -> Wallboard:
    ext = current_app.extensions
    if "hotline_wallboard" not in ext:
        ext["hotline_wallboard"] = Wallboard(services().redis, services().queue.keys)
    return ext["hotline_wallboard"]  # type: ignore[no-any-return]


def seat_rows() -> SeatRows:
    return current_app.extensions.setdefault("hotline_seat_rows", SeatRows())  # type: ignore[no-any-return]


def board_view() -> dict[str, Any]:
    live = wallboard_drawer().snapshot()
    waiting: dict[tuple[str, str], dict[str, Any]] = {}
    for c in live.calls:
        if c["state"] != "waiting":
            continue
        key = (c["skill"], c["priority"])
        row = waiting.setdefault(
            key, {"skill": key[0], "priority": key[1], "count": 0, "longest_s": 0.0}
        )
        row["count"] += 1
        row["longest_s"] = max(row["longest_s"], c["wait_s"])
    callers = {c["id"]: c["caller"] for c in live.calls}
    def draw_rows(changed: list[dict[str, Any]]) -> str:
        return render_template("_seat_rows.html", seats=changed, in_state=MARK, between=BETWEEN)

    slow = board_cache().get()
    by_seat = slow.get("by_seat", {})
    seats = []
    counts = dict.fromkeys(SEAT_STATES, 0)
    for s in live.seats:
        n, aht = by_seat.get(s["id"], (0, None))
        caller = callers.get(s["call"], "")
        # Only the masked number reaches the template: the drawing is shared and kept.
        shown = masked(caller) if caller else ""
        seats.append(s | {"caller_masked": shown, "calls": n, "aht": aht, "stuck": is_stuck(s)})
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    rows = seat_rows().rows(seats, language(), draw_rows)
    return {
        "waiting": sorted(waiting.values(), key=lambda r: (r["skill"], r["priority"])),
        # At a glance: every waiting caller, the longest wait, the stuck seats longest first.
        "waiting_total": sum(row["count"] for row in waiting.values()),
        "longest_wait_s": max((row["longest_s"] for row in waiting.values()), default=None),
        "stuck": sorted((s for s in seats if s["stuck"]), key=lambda s: -s["in_state_s"]),
        "seats": [seat | {"row": row} for seat, row in zip(seats, rows, strict=True)],
        "seat_counts": [(state, n) for state, n in counts.items() if n],
        "figures": slow.get("figures"),
        "hourly": slow.get("hourly", []),
        "callbacks_pending": slow.get("callbacks_pending", 0),
        "satisfaction": slow.get("satisfaction"),
        "cases": slow.get("cases"),
        "task_figures": slow.get("tasks"),
        "tasks": wallboard_drawer().tasks(),
        "outbound": slow.get("outbound") or {},
        "hot_topics": slow.get("hot_topics") or [],
    }


def newest_event() -> str:
    newest = services().redis.xrevrange(services().queue.keys.events, count=1)
    if not newest:
        return "0-0"
    entry_id = newest[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def shared_board(lang: str, seen: str) -> Drawing:
    """The rendered board, shared by every wallboard of every web process: a drawing
    made after the queue event a wallboard was woken for (``seen``, its stream id) and
    under a second old is reused, so twenty wallboards on any number of processes cost
    one snapshot and one render a second (web/console/board.py)."""

    def draw() -> Drawing:
        drawn_after = newest_event()  # before the snapshot: it shows at least this
        board = board_view()
        html = render_template("_board.html", board=board, reasons=PAUSE_REASONS)
        return Drawing(time.time(), drawn_after, html, json.dumps(board["hourly"]))

    return wallboard_drawer().drawing(lang, seen, draw)


@bp.get("/wallboard")
@roles_required(*SUPERVISORS)
def wallboard() -> Any:
    return render_template("wallboard.html", board=board_view(), reasons=PAUSE_REASONS)


@bp.get("/wallboard/board")
@roles_required(*SUPERVISORS)
def board_fragment() -> Any:
    """The board, fetched by a wallboard when the push process says ``board``; the
    hourly chart's figures ride along for the page's chart."""
    drawing = shared_board(language(), request.args.get("seen", "")[:40])
    return Response(
        drawing.html + f'\n<div hidden data-hourly-now="{escape(drawing.chart)}"'
        f' data-drawn="{drawing.at:.3f}"></div>',
        mimetype="text/html",
    )


@bp.post("/seats/<seat>/action")
@roles_required(*SUPERVISORS)
def supervise_seat(seat: str) -> Any:
    """A supervisor pauses a seat (after its call if it is busy), logs it out, or ends a
    stuck wrap-up. Recorded with who did it."""
    error = None
    try:
        services().desk.supervise_seat(desk_actor(), seat, request.form.get("action", ""))
    except DeskError as exc:
        error = exc.words(language())
    board = board_view()
    return render_template("_board.html", board=board, reasons=PAUSE_REASONS, error=error)
