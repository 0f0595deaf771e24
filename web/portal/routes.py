"""The department portal (zh-CN): the unit's inbox sorted by deadline with a live
countdown, and the case page with sign for (签收), on site, progress notes, resolve with
a reply (答复), return a wrong dispatch (退单) and ask for an extension (延期).

A department user sees only the cases dispatched to their unit (lead or assisting):
any other case number is a 404, as if it did not exist."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import case as when
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from cases.clocks import sync_case
from cases.dispatch import (
    NotYours,
    add_note,
    on_site,
    request_extension,
    resolve,
    return_case,
    sign_for,
)
from cases.lifecycle import IllegalTransition
from cases.models import Case, CaseAssist, Department
from cases.service import CaseError
from web.auth import roles_required
from web.context import services

log = logging.getLogger("hotline.web.portal")
bp = Blueprint("portal", __name__, url_prefix="/portal")

INBOX_STATUSES = ("dispatched", "accepted", "in_progress")
PAGE = 100


def sessions():  # type: ignore[no-untyped-def]
    return services().handler.directory.sessions  # type: ignore[union-attr]


def my_unit() -> int | None:
    return current_user.department_id  # type: ignore[no-any-return]


def unit_filter(unit: int | None):  # type: ignore[no-untyped-def]
    assisted = select(CaseAssist.case_id).where(CaseAssist.department_id == unit)
    return or_(Case.department_id == unit, Case.id.in_(assisted))


def deadline_of(case: Case):  # type: ignore[no-untyped-def]
    return case.respond_by if case.status == "dispatched" else case.handle_by


@bp.get("/")
@roles_required("department")
def inbox() -> Any:
    page = max(1, request.args.get("page", 1, type=int) or 1)
    unit = my_unit()
    next_deadline = when((Case.status == "dispatched", Case.respond_by), else_=Case.handle_by)
    with sessions()() as db:
        department = db.get(Department, unit) if unit else None
        query = (
            select(Case)
            .where(unit_filter(unit), Case.status.in_(INBOX_STATUSES))
            .order_by(next_deadline.asc(), Case.id)
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
    return render_template(
        "portal_inbox.html",
        rows=rows,
        department=department,
        page=page,
        more=len(cases) > PAGE,
    )


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
            error=error,
        )


ACTIONS = {"sign", "on-site", "note", "resolve", "return", "extend"}


@bp.post("/cases/<number>/<action>")
@roles_required("department")
def act(number: str, action: str) -> Any:
    if action not in ACTIONS:
        abort(404)
    svc = services()
    actor, unit, form = current_user.username, my_unit(), request.form
    with sessions()() as db:
        case = load_case(db, number)
        try:
            if action == "sign":
                sign_for(db, case, actor, unit)
            elif action == "on-site":
                on_site(db, case, actor, unit)
            elif action == "note":
                add_note(db, case, actor, unit, form.get("note", ""))
            elif action == "resolve":
                resolve(db, case, actor, unit, form.get("reply", ""))
            elif action == "return":
                return_case(db, case, actor, unit, form.get("reason", ""))
            else:
                request_extension(
                    db,
                    case,
                    actor,
                    unit,
                    form.get("days", 0, type=int) or 0,
                    form.get("reason", ""),
                )
            db.commit()
        except (CaseError, IllegalTransition, NotYours) as exc:
            db.rollback()
            return case_page(number, error=str(exc)), 422
        try:
            sync_case(svc.redis, svc.queue.keys, case)
        except Exception:  # the reaper's reconciliation re-arms it from SQL
            log.exception("clocks of %s left to the reconciliation", number)
    if action in ("resolve", "return"):
        return redirect(url_for("portal.inbox"))
    return redirect(url_for("portal.case_page", number=number))
