"""The department portal (zh-CN): the unit's inbox, urgent first then by deadline, with a live
countdown, and the case page with sign for (签收), on site, progress notes, resolve with
a reply (答复), return a wrong dispatch (退单) and ask for an extension (延期).

A department user sees only the cases dispatched to their unit (lead or assisting):
any other case number is a 404, as if it did not exist.

The inbox is live: ``/portal/events``, served by the push process (push/), tells the
page when the unit's inbox changed (a case dispatched to it or away, or a state
change), and the page fetches the table again (``/portal/rows``). The push process
learns of changes from SQL alone (``inbox_version``), with one cheap indexed query
every 2 s per unit however many clerks have it open, so every writer of a case (the
console, the supervisors' desk, the jobs, the return-visit bots) is seen without being
told."""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import case as when
from sqlalchemy import func, or_, select, union_all
from sqlalchemy.orm import selectinload

from calls.desk import DEPARTMENT_ACTIONS, DeskError
from cases.dispatch import (
    CaseRefused,
    pending_extension,
)
from cases.lifecycle import IllegalTransition
from cases.models import Case, CaseAssist, Department
from cases.service import CaseError
from web.auth import desk_actor, language, roles_required
from web.context import services
from web.i18n import translate

log = logging.getLogger("hotline.web.portal")
bp = Blueprint("portal", __name__, url_prefix="/portal")

INBOX_STATUSES = ("dispatched", "accepted", "in_progress")
PAGE = 100
MAX_PAGE = 10_000  # past it a page number overflows the database


def sessions():  # type: ignore[no-untyped-def]
    return services().desk.sessions


def my_unit() -> int | None:
    return current_user.department_id  # type: ignore[no-any-return]


def unit_filter(unit: int | None):  # type: ignore[no-untyped-def]
    assisted = select(CaseAssist.case_id).where(CaseAssist.department_id == unit)
    return or_(Case.department_id == unit, Case.id.in_(assisted))


def deadline_of(case: Case):  # type: ignore[no-untyped-def]
    if case.status not in INBOX_STATUSES:  # resolved, returned: no clock runs for the unit
        return None
    return case.respond_by if case.status == "dispatched" else case.handle_by


def inbox_rows(db, unit: int | None, page: int) -> tuple[list[dict[str, Any]], bool]:  # type: ignore[no-untyped-def]
    next_deadline = when((Case.status == "dispatched", Case.respond_by), else_=Case.handle_by)
    query = (
        select(Case)
        .where(unit_filter(unit), Case.status.in_(INBOX_STATUSES))
        .order_by((Case.urgency == "urgent").desc(), next_deadline.asc(), Case.id)
    )
    cases = db.scalars(
        query.options(selectinload(Case.category)).offset((page - 1) * PAGE).limit(PAGE + 1)
    ).all()
    rows = [
        {
            "number": c.number,
            "status": c.status,
            "category": c.category.name if c.category else "",
            "urgency": c.urgency,
            "address": c.address,
            "deadline": deadline_of(c),
            "lead": c.department_id == unit,
            "overdue": c.response_overdue or c.handling_overdue,
            "supervised": bool(c.supervised_note),
        }
        for c in cases[:PAGE]
    ]
    return rows, len(cases) > PAGE


def inbox_version(db, unit: int | None) -> str:  # type: ignore[no-untyped-def]
    """What the unit's inbox looks like, in one word: how many cases and when the newest
    change was. A case dispatched to the unit, or changed, moves the newest change; one
    that leaves (re-dispatched away, resolved, returned) lowers the count. One statement,
    two index lookups (ix_case_unit_status, ix_case_assist_unit): cheap every 2 s."""
    if unit is None:
        return "none"
    led = select(Case.updated_at).where(Case.department_id == unit, Case.status.in_(INBOX_STATUSES))
    assisted = (
        select(Case.updated_at)
        .join(CaseAssist, CaseAssist.case_id == Case.id)
        .where(CaseAssist.department_id == unit, Case.status.in_(INBOX_STATUSES))
    )
    both = union_all(led, assisted).subquery()
    count, newest = db.execute(select(func.count(), func.max(both.c.updated_at))).one()
    return f"{count}:{newest or 0}"


@bp.get("/")
@roles_required("department")
def inbox() -> Any:
    page = min(MAX_PAGE, max(1, request.args.get("page", 1, type=int) or 1))
    unit = my_unit()
    with sessions()() as db:
        department = db.get(Department, unit) if unit else None
        version = inbox_version(db, unit)
        rows, more = inbox_rows(db, unit, page)
    return render_template(
        "portal_inbox.html",
        rows=rows,
        department=department,
        page=page,
        more=more,
        version=version,
    )


@bp.get("/rows")
@roles_required("department")
def inbox_fragment() -> Any:
    """The inbox table alone, fetched again by the page when its stream says so."""
    page = min(MAX_PAGE, max(1, request.args.get("page", 1, type=int) or 1))
    with sessions()() as db:
        rows, more = inbox_rows(db, my_unit(), page)
    return render_template("_portal_inbox.html", rows=rows, page=page, more=more)


def load_case(db, number: str) -> Case:  # type: ignore[no-untyped-def]
    """The case if it is dispatched to the user's unit, else 404 (no hint it exists)."""
    case = db.scalar(select(Case).where(Case.number == number, unit_filter(my_unit())))
    if case is None:
        abort(404)
    return case  # type: ignore[no-any-return]


@bp.get("/cases/<number>")
@roles_required("department")
def case_page(number: str, error: str | None = None) -> Any:
    with sessions()() as db:
        case = load_case(db, number)
        return render_template(
            "portal_case.html",
            case=case,
            events=list(case.events),
            lead=case.department_id == my_unit(),
            deadline=deadline_of(case),
            extension_pending=pending_extension(db, case) is not None,
            error=error,
        )


def refusal_words(exc: Exception) -> str:
    """The refusal in the reader's language; never an English slug on a zh screen."""
    lang = language()
    if isinstance(exc, CaseRefused):
        return exc.words(lang)
    if isinstance(exc, IllegalTransition):  # the rules in cases.dispatch come first
        return (
            "工单当前状态不允许此操作" if lang == "zh" else "The case's status does not allow this"
        )
    return str(exc)


@bp.post("/cases/<number>/<action>")
@roles_required("department")
def act(number: str, action: str) -> Any:
    if action not in DEPARTMENT_ACTIONS:
        abort(404)
    form = request.form
    text = form.get({"note": "note", "resolve": "reply"}.get(action, "reason"), "")
    try:
        services().desk.cases.department_act(
            desk_actor(), number, action, text=text, days=form.get("days", 0, type=int) or 0
        )
    except DeskError as exc:
        abort(exc.status)
    except (CaseError, IllegalTransition) as exc:
        return case_page(number, error=refusal_words(exc)), 422
    # Said on the page the clerk lands on: a returned or resolved case leaves the inbox.
    flash(translate("portal_done_" + action.replace("-", "_"), language(), number=number))
    if action in ("resolve", "return"):
        return redirect(url_for("portal.inbox"))
    return redirect(url_for("portal.case_page", number=number))
