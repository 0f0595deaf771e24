"""The case page and case search, for operators and supervisors: read the whole case
before 督办 or 改派. Operators see the caller's number masked; a supervisor may reveal
it, and that is recorded in the action log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

from flask import abort, redirect, render_template, render_template_string, request, url_for
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from calls.citizen_requests import CHANNELS as CITIZEN_CHANNELS
from calls.desk import PLAYBACK_ROLES, DeskError
from calls.recordings import recordings_of_case
from cases.lifecycle import STATUSES
from cases.models import (
    CallRecord,
    Case,
    CaseAssist,
    ExtensionRequest,
    OutboundItem,
    OverdueRecord,
    User,
)
from cases.open311 import CHANNEL as OPEN311_CHANNEL
from cases.open311 import is_sensitive
from cases.search import MAX_PAGE, CaseQuery, search_cases
from web.auth import desk_actor, roles_required
from web.console.catalogue import catalogue
from web.console.recordings import availability, playback_audit
from web.console.routes import OPERATORS, SUPERVISORS, bp, sessions
from web.context import services
from web.i18n import TEXT

READERS = (*OPERATORS, *SUPERVISORS, "quality")  # quality staff read, never act
MAX_QUERY = 100
NOT_CALL_CHANNELS = (*CITIZEN_CHANNELS, OPEN311_CHANNEL)  # written requests: no call made them
# A case's clocks run only while it is with a unit.
RESPONSE_RUNS = ("dispatched",)
HANDLING_RUNS = ("dispatched", "accepted", "in_progress")
# 督办 for a case still being worked on; (re-)dispatch where the lifecycle allows it.
SUPERVISABLE = ("received", "dispatched", "accepted", "in_progress", "returned", "reopened")
# A supervisor may also move a case its unit is working on (改派): the unit's missed
# limits are charged to it first (cases.dispatch.dispatch_to).
DISPATCHABLE = ("received", "returned", "reopened", "dispatched", "accepted", "in_progress")


def _date(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        abort(400)
    if not 2000 <= day.year <= 2100:  # the line's own lifetime; 0001 or 9999 overflows
        abort(400)
    return day


def _query() -> CaseQuery:
    """The search as asked; a malformed page, date or status is a 400, not a 500."""
    raw_page = request.args.get("page", "1").strip() or "1"
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= MAX_PAGE:
        abort(400)
    status = request.args.get("status", "").strip() or None
    if status is not None and status not in STATUSES:
        abort(400)
    return CaseQuery(
        text=request.args.get("q", "").strip()[:MAX_QUERY],
        status=status,
        unit=request.args.get("unit", "").strip() or None,
        since=_date("since"),
        until=_date("until"),
        page=int(raw_page),
    )


@bp.get("/cases")
@roles_required(*READERS)
def case_search() -> Any:
    query = _query()
    with sessions()() as db:
        found = search_cases(db, query, services().handler.phones)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "case_search.html",
        query=query,
        found=found,
        args=args,
        statuses=STATUSES,
        units=catalogue()["units"],
    )


def _countdown(deadline: datetime | None, runs: bool, now: datetime) -> float | None:
    """Seconds left (negative: late) while that clock runs; None when it does not."""
    if deadline is None or not runs:
        return None
    aware = deadline if deadline.tzinfo else deadline.replace(tzinfo=UTC)
    return (aware - now).total_seconds()


def _linked_calls(case: Case, rows: Sequence[CallRecord]) -> list[Any]:
    """The case's calls: their detail rows, and the call that made it while its row is
    not written yet (the reaper folds the event stream into rows a little later), so a
    recorded call's case never says it has no call."""
    listed: list[Any] = list(rows)
    made_by_a_call = case.call_id and case.channel not in NOT_CALL_CHANNELS
    if made_by_a_call and all(r.call_id != case.call_id for r in rows):
        pending = SimpleNamespace(
            call_id=case.call_id, direction="inbound", outcome="unwritten",
            queued_at=case.created_at, offered_at=None, answered_at=None,
            seat=case.operator_seat, wait_ms=None, talk_ms=None,
        )
        listed.insert(0, pending)
    return listed


def _case_view(number: str, revealed: bool = False) -> Any:
    now = datetime.now(UTC)
    with sessions()() as db:
        case = db.scalar(
            select(Case)
            .where(Case.number == number)
            .options(
                selectinload(Case.category),
                selectinload(Case.department),
                selectinload(Case.district),
                selectinload(Case.merged_into),
            )
        )
        if case is None:
            abort(404)
        assisting = [
            a.department
            for a in db.scalars(
                select(CaseAssist)
                .where(CaseAssist.case_id == case.id)
                .options(selectinload(CaseAssist.department))
            )
        ]
        events = list(case.events)
        # The case's recordings name calls too: a return visit's, linked by case number.
        recorded = recordings_of_case(db, case)
        call_ids = {case.call_id} | {e.call_id for e in events} | {r.call_id for r in recorded}
        call_ids.discard(None)
        calls = _linked_calls(case, db.scalars(
            select(CallRecord)
            .where(or_(CallRecord.call_id.in_(call_ids), CallRecord.case_number == case.number))
            .order_by(CallRecord.queued_at)
        ).all())
        overdue = db.scalars(
            select(OverdueRecord)
            .where(OverdueRecord.case_id == case.id)
            .options(selectinload(OverdueRecord.department))
            .order_by(OverdueRecord.due_at)
        ).all()
        extensions = db.scalars(
            select(ExtensionRequest)
            .where(ExtensionRequest.case_id == case.id)
            .order_by(ExtensionRequest.requested_at)
        ).all()
        visit = db.scalar(
            select(OutboundItem).where(
                OutboundItem.case_id == case.id, OutboundItem.kind == "return_visit"
            )
        )
        merged_in = db.scalars(
            select(Case.number).where(Case.merged_into_id == case.id).order_by(Case.id)
        ).all()
        named = {r.person for r in overdue} | {case.accepted_by or ""}
        people = {
            user: name
            for user, name in db.execute(
                select(User.username, User.display_name).where(User.username.in_(named))
            )
            if name
        }
        supervises = desk_actor().supervises
        # Recordings: supervisors, admins and quality staff only; playing one is audited.
        recordings = recorded if desk_actor().role in PLAYBACK_ROLES else []
        playbacks = playback_audit(db, recordings)
        return render_template(
            "case_page.html",
            case=case,
            events=events,
            assisting=assisting,
            calls=calls,
            overdue=overdue,
            extensions=extensions,
            visit=visit,
            merged_in=merged_in,
            people=people,
            respond_left=_countdown(case.respond_by, case.status in RESPONSE_RUNS, now),
            handle_left=_countdown(case.handle_by, case.status in HANDLING_RUNS, now),
            supervises=supervises,
            revealed=revealed and supervises,
            can_supervise=supervises and case.status in SUPERVISABLE,
            can_dispatch=supervises and case.status in DISPATCHABLE,
            open311_channel=OPEN311_CHANNEL,
            open311_sensitive=case.category is not None and is_sensitive(case.category),
            units=catalogue()["units"],
            text_keys=TEXT,
            recordings=recordings,
            available=availability(recordings),
            playbacks=playbacks,
        )


@bp.get("/cases/<number>")
@roles_required(*READERS)
def case_page(number: str) -> Any:
    return _case_view(number)


@bp.post("/cases/<number>/reveal")
@roles_required(*SUPERVISORS)
def reveal_phone(number: str) -> Any:
    """A supervisor sees the caller's whole number (to call them, or to check a
    complaint); the desk records who did it, on which case, in the action log."""
    try:
        phone = services().desk.admin.reveal_phone(desk_actor(), number)
    except DeskError as exc:
        abort(exc.status)
    if request.headers.get("HX-Request"):
        return render_template_string(
            '<span id="caller-phone" class="revealed">{{ phone }}</span>', phone=phone
        )
    return _case_view(number, revealed=True)


@bp.post("/cases/<number>/public")
@roles_required(*SUPERVISORS)
def set_case_public(number: str) -> Any:
    """A supervisor lists a phone, SMS or web case on Open311 (public=1), or takes it
    off (public=0): the desk puts it on the case's trail and in the action log."""
    wanted = request.form.get("public") == "1"
    try:
        services().desk.admin.set_case_public(desk_actor(), number, wanted)
    except DeskError as exc:
        abort(exc.status)
    return redirect(url_for("console.case_page", number=number, _anchor="open311-public"))
