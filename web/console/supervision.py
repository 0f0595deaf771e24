"""The supervisors' dispatch desk: overdue cases, returns to review (改派 or uphold),
extensions to decide, cases waiting for a unit, 督办; and the units' rankings."""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import datetime, timedelta
from typing import Any

from flask import Response, abort, redirect, render_template, request, url_for
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from calls.desk import DeskError
from calls.figures import case_figures
from cases import rankings as ranking
from cases.catalogue import CategoryTerms
from cases.dispatch import CaseRefused
from cases.lifecycle import IllegalTransition
from cases.models import Case, Category, Department, ExtensionRequest
from cases.service import HOTLINE_TZ, CaseError, blank_cases, utcnow
from web.auth import desk_actor, language, roles_required
from web.console.admin import _forget_catalogue
from web.console.routes import SUPERVISORS, bp, sessions
from web.context import services
from web.i18n import translate
from web.redirects import safe_next

log = logging.getLogger("hotline.web.supervision")
LIST_LIMIT = 200


def units(db) -> list[Department]:  # type: ignore[no-untyped-def]
    return list(db.scalars(select(Department).order_by(Department.kind, Department.code)))


@bp.get("/supervision")
@roles_required(*SUPERVISORS)
def supervision(error: str | None = None) -> Any:
    with sessions()() as db:
        overdue = db.scalars(
            select(Case)
            .where(
                or_(Case.response_overdue, Case.handling_overdue),
                Case.status.in_(("dispatched", "accepted", "in_progress", "returned")),
            )
            .options(selectinload(Case.department), selectinload(Case.category))
            .order_by(Case.dispatched_at)
            .limit(LIST_LIMIT)
        ).all()
        returned = db.scalars(
            select(Case)
            .where(Case.status == "returned")
            .options(selectinload(Case.department), selectinload(Case.events))
            .order_by(Case.updated_at)
            .limit(LIST_LIMIT)
        ).all()
        # The last return's event: the page words it as the trail does (who, when, the
        # unit's reason without its 退单 tag).
        returns = {c.id: [e for e in c.events if e.to_status == "returned"][-1:] for c in returned}
        extensions = db.scalars(
            select(ExtensionRequest)
            .where(ExtensionRequest.status == "pending")
            .options(selectinload(ExtensionRequest.case))
            .order_by(ExtensionRequest.requested_at)
            .limit(LIST_LIMIT)
        ).all()
        unfiled = blank_cases(db, utcnow() - timedelta(days=7))
        waiting = db.scalars(
            select(Case)
            .where(Case.status.in_(("received", "reopened")), Case.description != "")
            .order_by(Case.created_at)
            .limit(LIST_LIMIT)
        ).all()
        return render_template(
            "supervision.html",
            overdue=overdue,
            returned=returned,
            returns=returns,
            extensions=extensions,
            waiting=waiting,
            unfiled=unfiled,
            units=units(db),
            error=error,
        )


def _refused(exc: Exception) -> str:
    if isinstance(exc, DeskError):
        return exc.words(language())
    if isinstance(exc, CaseRefused):
        return exc.words(language())
    return str(exc)


CASE_REFUSALS = (DeskError, CaseError, IllegalTransition)


@bp.post("/cases/<number>/dispatch")
@roles_required(*SUPERVISORS)
def supervisor_dispatch(number: str) -> Any:
    """Dispatch, re-dispatch a return (改派), or uphold it, with who did it."""
    try:
        services().desk.cases.dispatch(
            desk_actor(),
            number,
            request.form.get("lead", ""),
            [c for c in request.form.getlist("assisting") if c],
            uphold=bool(request.form.get("uphold")),
            reason=request.form.get("reason", ""),
        )
    except CASE_REFUSALS as exc:
        return supervision(error=f"{number}: {_refused(exc)}"), 422
    return redirect(_back())


@bp.post("/extensions/<int:request_id>")
@roles_required(*SUPERVISORS)
def extension_decision(request_id: int) -> Any:
    if request_id > 2**31:  # no such row; a bigger number overflows the database's ints
        abort(404)
    approve = request.form.get("decision") == "approve"
    try:
        services().desk.cases.decide_extension(desk_actor(), request_id, approve)
    except CASE_REFUSALS as exc:
        return supervision(error=_refused(exc)), 422
    return redirect(_back())


@bp.post("/cases/<number>/supervise")
@roles_required(*SUPERVISORS)
def supervise_case(number: str) -> Any:
    try:
        services().desk.cases.supervise(desk_actor(), number, request.form.get("note", ""))
    except CASE_REFUSALS as exc:
        return supervision(error=_refused(exc)), 422
    return redirect(_back())


@bp.post("/merge")
@roles_required(*SUPERVISORS)
def merge_cases() -> Any:
    """并单: one case (a repeat request about the same matter) into an open one."""
    duplicate = request.form.get("case", "").strip()
    target = request.form.get("into", "").strip()
    try:
        services().desk.cases.merge(desk_actor(), duplicate, target)
    except CASE_REFUSALS as exc:
        return supervision(error=_refused(exc)), 422
    return redirect(_back())


def _back() -> str:
    """Where a supervisor's action returns to: the page they acted from (a case page
    or the supervision desk), never another site."""
    return safe_next(request.form.get("next"), under="/console/") or url_for("console.supervision")


# -- the dispatch catalogue -----------------------------------------------------------


@bp.get("/catalogue")
@roles_required("admin")
def catalogue_page(error: str | None = None, kept: dict[str, Any] | None = None) -> Any:
    """The catalogue; after a refusal, the refused row keeps what was typed, with the
    error beside it (and named at the top); after a save, the row says so."""
    saved = None if kept else request.args.get("saved", "")[:48]
    with sessions()() as db:
        categories = db.scalars(
            select(Category).options(selectinload(Category.department)).order_by(Category.code)
        ).all()
        return render_template(
            "catalogue.html",
            categories=categories,
            units=units(db),
            error=error,
            kept=kept,
            saved=saved,
            unchanged=request.args.get("unchanged") == "1",
        )


@bp.post("/catalogue/<code>")
@roles_required("admin")
def catalogue_change(code: str) -> Any:
    """An admin changes a category's lead unit, handling limit, urgency or whether an
    Open311 request goes straight to its unit (the desk logs it with the terms before)."""
    typed_days = request.form.get("handling_days", "")[:8]
    terms = CategoryTerms(
        unit_code=request.form.get("department", "")[:48],
        handling_days=request.form.get("handling_days", type=int) or 0,
        urgent=request.form.get("urgent") == "1",
        open311_direct=request.form.get("open311_direct") == "1",
    )
    try:
        changed = services().desk.catalogue.change(desk_actor(), code, terms)
    except DeskError as exc:
        if exc.status == 404:
            abort(404)
        kept = {
            "code": code,
            "name": _category_name(code),
            "unit_code": terms.unit_code,
            "days": typed_days,
            "urgent": terms.urgent,
            "open311_direct": terms.open311_direct,
        }
        return catalogue_page(error=exc.words(language()), kept=kept), exc.status
    if changed:  # the case form's catalogue names each category's lead unit
        _forget_catalogue()
    page = url_for("console.catalogue_page", saved=code, unchanged=None if changed else "1")
    return redirect(f"{page}#row-{code}")


def _category_name(code: str) -> str:
    with sessions()() as db:
        return db.scalar(select(Category.name).where(Category.code == code)) or code


# -- rankings -------------------------------------------------------------------------


def period() -> tuple[datetime, datetime]:
    """?start=YYYY-MM-DD&end=YYYY-MM-DD (Beijing days, end inclusive); default: this month."""
    today = datetime.now(HOTLINE_TZ).date()
    try:
        start = datetime.fromisoformat(
            request.args.get("start") or today.replace(day=1).isoformat()
        )
        end = datetime.fromisoformat(request.args.get("end") or today.isoformat())
    except ValueError:
        abort(400, "start and end are dates, YYYY-MM-DD")
    if not (2000 <= start.year <= 2100 and 2000 <= end.year <= 2100) or end < start:
        abort(400, "start and end are dates between 2000 and 2100, start first")
    return start.replace(tzinfo=HOTLINE_TZ), end.replace(tzinfo=HOTLINE_TZ) + timedelta(days=1)


# The CSV's columns and headings, in the reader's language: what a person reads (the
# unit's name, not its internal code).
CSV_HEADINGS = {
    "unit": "unit",
    "received": "received_n",
    "signed_in_time": "signed_in_time",
    "resolved_in_time": "resolved_in_time",
    "returned": "returned_n",
    "overdue": "overdue_n",
    "satisfaction": "satisfaction",
}

# A cell a spreadsheet would run as a formula (OWASP, CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: a string starting like a formula
    gets a leading single quote. Numbers stay numbers, negative ones included."""
    if value is None:
        return ""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_START)
        and not PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


@bp.get("/rankings")
@roles_required(*SUPERVISORS)
def rankings_page() -> Any:
    start, end = period()
    with sessions()() as db:
        table = ranking.rankings(db, start, end)
        people = ranking.overdue_people(db, start, end)
        case_counts = case_figures(db, start, end)
    if request.args.get("format") == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([translate(heading, language()) for heading in CSV_HEADINGS.values()])
        for r in table:
            writer.writerow([csv_cell(r[k]) for k in CSV_HEADINGS])
        name = f"rankings-{start.date()}-{(end - timedelta(days=1)).date()}.csv"
        return Response(
            "\ufeff" + buffer.getvalue(),  # a BOM, so spreadsheet programs read the Chinese
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return render_template(
        "rankings.html",
        table=table,
        people=people,
        start=start.date(),
        end=(end - timedelta(days=1)).date(),
        overdue_records=sum(p["overdue"] for p in people),
        cases=case_counts,
    )
