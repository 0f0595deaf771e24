"""The duty leader's screens (领导值班): the page of the day, instructions (批示) on its
cases, and the monthly roster (kept by supervisors and admins, read by leaders)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from calls.desk import DeskError
from cases import duty
from cases.dispatch import CaseRefused
from cases.models import User
from cases.service import utcnow
from web.auth import desk_actor, language, roles_required
from web.context import services

bp = Blueprint("duty", __name__, url_prefix="/duty")

DUTY_READERS = ("leader", "supervisor", "admin")
ROSTER_KEEPERS = ("supervisor", "admin")
CASE_NUMBER = re.compile(r"[0-9A-Za-z-]{1,32}")


def sessions():  # type: ignore[no-untyped-def]
    return services().desk.sessions


def _names(db, usernames: set[str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rows = db.execute(select(User.username, User.display_name).where(User.username.in_(usernames)))
    return {u: n or u for u, n in rows}


def _waited(since: datetime) -> float:
    """Seconds from a stored moment (naive UTC on SQLite) until now."""
    aware = since if since.tzinfo else since.replace(tzinfo=UTC)
    return max(0.0, (utcnow() - aware).total_seconds())


@bp.get("/")
@roles_required(*DUTY_READERS)
def today(error: str | None = None) -> Any:
    # After an instruction the page says so; only a case number is echoed back.
    asked = request.args.get("done", "")
    done = asked if CASE_NUMBER.fullmatch(asked) else None
    with sessions()() as db:
        page = duty.day_page(db)
        names = _names(db, {page.leader} if page.leader else set())
        return render_template(
            "duty_today.html",
            page=page,
            leader_name=names.get(page.leader or "", ""),
            may_instruct=current_user.role == duty.LEADER_ROLE
            and page.leader == current_user.username,
            error=error,
            done=done,
            waited=_waited,
            lateness=duty.lateness,
        )


@bp.post("/cases/<number>/instruct")
@roles_required(duty.LEADER_ROLE)
def instruct(number: str) -> Any:
    try:
        services().desk.duty.instruct(desk_actor(), number, request.form.get("text", ""))
    except DeskError as exc:
        if exc.status == 404:
            abort(404)
        return today(error=exc.words(language())), exc.status
    except CaseRefused as exc:
        return today(error=exc.words(language())), 422
    return redirect(url_for("duty.today", done=number) + "#duty-head")


def _month() -> tuple[int, int]:
    """?month=YYYY-MM; default: this Beijing month."""
    raw = request.args.get("month") or request.form.get("month") or ""
    if not raw:
        today_ = duty.beijing_day()
        return today_.year, today_.month
    try:
        year, month = (int(p) for p in raw.split("-"))
    except ValueError:
        abort(400, "month is YYYY-MM")
    if not (2000 <= year <= 2100 and 1 <= month <= 12):
        abort(400, "month is YYYY-MM, between 2000 and 2100")
    return year, month


@bp.get("/roster")
@roles_required(*DUTY_READERS)
def roster(error: str | None = None) -> Any:
    year, month = _month()
    with sessions()() as db:
        assigned = duty.roster(db, year, month)
        people = duty.leaders(db)
        names = {u.username: u.display_name or u.username for u in people}
        names.update(_names(db, set(assigned.values()) - set(names)))
        first = date(year, month, 1)
        before = date(year - (month == 1), 12 if month == 1 else month - 1, 1)
        after = date(year + (month == 12), 1 if month == 12 else month + 1, 1)
        return render_template(
            "duty_roster.html",
            month=f"{year}-{month:02d}",
            first=first,
            before=f"{before:%Y-%m}",
            after=f"{after:%Y-%m}",
            days=duty.month_days(year, month),
            assigned=assigned,
            leaders=people,
            names=names,
            today=duty.beijing_day(),
            editable=current_user.role in ROSTER_KEEPERS,
            error=error,
        )


@bp.post("/roster")
@roles_required(*ROSTER_KEEPERS)
def roster_save() -> Any:
    year, month = _month()
    assignments = {
        day: request.form.get(f"day-{day.isoformat()}", "").strip()
        for day in duty.month_days(year, month)
        if f"day-{day.isoformat()}" in request.form
    }
    try:
        services().desk.duty.set_roster(desk_actor(), year, month, assignments)
    except CaseRefused as exc:
        return roster(error=exc.words(language())), 422
    return redirect(url_for("duty.roster", month=f"{year}-{month:02d}"))
