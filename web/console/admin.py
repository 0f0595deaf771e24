"""The administrator's screens: users (add, disable or enable, reset the password,
revoke the API token), seats (who holds them; 强制签出), units (add, rename) and the
opt-out register (谢绝回访). Every change is recorded in the action log with who made
it; refusals are said in the reader's language."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from calls.desk import DeskError
from cases import units as unit_record
from cases import users as user_record
from cases.models import ROLES, User, list_opt_outs
from cases.phones import mask_for_screen
from queueing.keys import check_id
from web.auth import desk_actor, end_sessions, language, roles_required
from web.console.routes import bp
from web.context import services
from web.i18n import TEXT, translate

log = logging.getLogger("hotline.web.admin")
ADMIN = "admin"


def t(key: str, **values: object) -> str:
    return translate(key, language(), **values)


def done(page: str, key: str, **values: object) -> Any:
    """After a change: back to the page, saying what happened (post, redirect, get)."""
    flash(t(key, **values))
    return redirect(url_for(page))


def refusal(prefix: str, refused: str, **values: object) -> str:
    key = f"{prefix}_err_{refused}"
    return t(key, **values) if key in TEXT else t(f"{prefix}_err_invalid")


def _forget_catalogue() -> None:
    """The case form's cached units (web.console.catalogue) are read again at once."""
    current_app.extensions.get("hotline_catalogue", {}).clear()


@bp.get("/admin/")
@roles_required(ADMIN)
def admin_home() -> Any:
    return redirect(url_for("console.admin_users"))


# -- users ----------------------------------------------------------------------------


# The field a refusal is about, shown beside it (a password rule: the password box).
FIELD_OF_REFUSAL = {
    "bad-username": "username",
    "exists": "username",
    "bad-role": "role",
    "needs-unit": "department",
    "no-unit": "department",
    "bad-seat": "seat",
    "password-mismatch": "password2",
}
ADD_FORM = ""  # the add-user form's name in ``refused_in``; else the user whose row it is


@bp.get("/admin/users")
@roles_required(ADMIN)
def admin_users(
    error: str | None = None,
    status: int = 200,
    refused_in: str | None = None,
    refused_field: str = "",
) -> Any:
    """The users, their actions, and the add-user form; a refusal is said beside the
    field it is about, in the form it came from (a reset's row stays open)."""
    with services().desk.sessions() as db:
        people = user_record.list_users(db)
        page = render_template(
            "admin_users.html",
            people=people,
            signed_in=user_record.last_sign_ins(db),
            units=unit_record.list_units(db),
            roles=ROLES,
            min_password=user_record.MIN_PASSWORD,
            form=request.form if error and refused_in == ADD_FORM else {},
            error=error,
            refused_in=refused_in,
            refused_field=refused_field,
        )
    return page, status


def _user_refused(refused: str, refused_in: str | None = None, **values: object) -> Any:
    """The users page again, saying why (``refused``: cases.users' refusal code);
    ``refused_in`` names the form (ADD_FORM, or the user whose password was being
    reset), None for an action without a form."""
    values.setdefault("n", user_record.MIN_PASSWORD)
    why = refusal("user", refused, **values)
    if refused_in not in (None, ADD_FORM):
        why = t("user_reset_refused", user=refused_in, why=why)
    field = FIELD_OF_REFUSAL.get(refused, "password" if refused.startswith("password") else "")
    return admin_users(error=why, status=422, refused_in=refused_in, refused_field=field)


def _record_refusal(exc: DeskError) -> str:
    """The user or unit record's own refusal code, as the screens' words are keyed."""
    return str(exc.details.get("refused", exc.code))


@bp.post("/admin/users")
@roles_required(ADMIN)
def admin_add_user() -> Any:
    form = request.form
    username = form.get("username", "").strip().lower()
    role = form.get("role", "")
    password = form.get("password", "")
    seat = form.get("seat", "").strip() if role == "operator" else ""
    if password != form.get("password2", ""):
        return _user_refused("password-mismatch", ADD_FORM)
    if seat:
        try:
            check_id("seat", seat)
        except ValueError:
            return _user_refused("bad-seat", ADD_FORM)
    try:
        services().desk.admin.add_user(
            desk_actor(),
            username,
            role,
            password,
            display_name=form.get("display_name", "").strip()[:64],
            seat=seat or None,
            department_code=form.get("department", "") if role == "department" else None,
        )
    except DeskError as exc:
        return _user_refused(_record_refusal(exc), ADD_FORM, user=username)
    return done("console.admin_users", "done_user_added", user=username)


def _seats_of(username: str) -> list[str]:
    return [
        str(s["id"])
        for s in services().queue.status()["seats"]
        if s.get("owner") == username and s.get("state") != "offline"
    ]


@bp.post("/admin/users/<username>/active")
@roles_required(ADMIN)
def admin_user_active(username: str) -> Any:
    """Disable (out at once: the session and the token are refused at the next request,
    and any seat they hold is logged out) or enable a user."""
    active = request.form.get("active") == "1"
    actor = desk_actor()
    try:
        services().desk.admin.set_user_active(actor, username, active)
    except DeskError as exc:
        return _user_refused(_record_refusal(exc), user=username)
    if not active:
        end_sessions(username, "disabled")  # enabling them again revives no old session
        for seat in _seats_of(username):
            try:
                services().desk.supervise_seat(actor, seat, "logout")
            except DeskError:
                log.warning("seat %s of disabled user %s was not logged out", seat, username)
    key = "done_user_enabled" if active else "done_user_disabled"
    return done("console.admin_users", key, user=username)


@bp.post("/admin/users/<username>/password")
@roles_required(ADMIN)
def admin_user_password(username: str) -> Any:
    password = request.form.get("password", "")
    if password != request.form.get("password2", ""):
        return _user_refused("password-mismatch", username)
    try:
        services().desk.admin.reset_password(desk_actor(), username, password)
    except DeskError as exc:
        refused = _record_refusal(exc)
        refused_in = username if refused.startswith("password") else None
        return _user_refused(refused, refused_in, user=username)
    end_sessions(username, "password", keep_mine=True)  # whoever knew the old one is out
    return done("console.admin_users", "done_password", user=username)


@bp.post("/admin/users/<username>/revoke")
@roles_required(ADMIN)
def admin_user_revoke(username: str) -> Any:
    try:
        had = services().desk.admin.revoke_token(desk_actor(), username)
    except DeskError as exc:
        return _user_refused(_record_refusal(exc), user=username)
    if not had:
        return done("console.admin_users", "done_no_token", user=username)
    return done("console.admin_users", "done_token_revoked", user=username)


# -- seats ----------------------------------------------------------------------------


def seat_rows() -> list[dict[str, Any]]:
    """Seats logged in now, then the usual seats of users that are not, by seat id."""
    queue = services().queue
    rows: dict[str, dict[str, Any]] = {
        str(s["id"]): dict(s) for s in queue.status()["seats"]
    }
    with services().desk.sessions() as db:
        people = db.execute(select(User.username, User.display_name, User.seat)).all()
    names = {u: n or u for u, n, _ in people}
    usual: dict[str, list[str]] = {}
    for username, _, seat in people:
        if seat:
            usual.setdefault(seat, []).append(names[username])
    for seat in usual:
        if seat not in rows:
            try:
                rows[seat] = {**queue.seat(seat), "id": seat}
            except ValueError:  # a usual seat stored before ids were checked
                continue
    for seat, row in rows.items():
        owner = str(row.get("owner", ""))
        row["owner_name"] = names.get(owner, owner)
        row["usual_of"] = "、".join(usual.get(seat, []))
        row.setdefault("state", "offline")
    return sorted(rows.values(), key=lambda r: (r["state"] == "offline", str(r["id"])))


@bp.get("/admin/seats")
@roles_required(ADMIN)
def admin_seats(error: str | None = None, status: int = 200) -> Any:
    return render_template("admin_seats.html", seats=seat_rows(), error=error), status


@bp.post("/admin/seats/<seat>/logout")
@roles_required(ADMIN)
def admin_seat_logout(seat: str) -> Any:
    """强制签出: the desk logs the seat out (a stuck call's case follows) and records it."""
    desk = services().desk
    try:
        if desk.seat(seat).get("state") == "offline":
            # The desk would "log out" an offline seat again and record it; say so instead.
            raise DeskError("not-logged-in", 409, {"seat": seat})
        desk.supervise_seat(desk_actor(), seat, "logout")
    except DeskError as exc:
        return admin_seats(error=exc.words(language()), status=exc.status)
    return done("console.admin_seats", "done_seat_logout", seat=seat)


# -- units ----------------------------------------------------------------------------


@bp.get("/admin/units")
@roles_required(ADMIN)
def admin_units(
    error: str | None = None, status: int = 200, refused_duty_phone: str = ""
) -> Any:
    """The units; a refused duty phone keeps what was typed in its unit's row, with the
    error beside it (and the unit named at the top)."""
    with services().desk.sessions() as db:
        units = unit_record.list_units(db)
        governed = {u.district_id for u in units if u.kind == "district"}
        refused_unit = next((u for u in units if u.code == refused_duty_phone), None)
        page = render_template(
            "admin_units.html",
            units=units,
            free_districts=[d for d in unit_record.list_districts(db) if d.id not in governed],
            form=request.form if error else {},
            error=None if refused_unit else error,
            refused_unit=refused_unit,
            refused_error=error if refused_unit else None,
        )
    return page, status


def _unit_refused(exc: DeskError, code: str) -> Any:
    return admin_units(error=refusal("unit", _record_refusal(exc), code=code), status=exc.status)


@bp.post("/admin/units")
@roles_required(ADMIN)
def admin_add_unit() -> Any:
    form = request.form
    code = form.get("code", "").strip().lower()
    try:
        name = services().desk.admin.add_unit(
            desk_actor(), code, form.get("name", ""), form.get("kind", ""), form.get("district", "")
        )
    except DeskError as exc:
        return _unit_refused(exc, code)
    _forget_catalogue()
    return done("console.admin_units", "done_unit_added", unit=name)


@bp.post("/admin/units/<code>/rename")
@roles_required(ADMIN)
def admin_rename_unit(code: str) -> Any:
    try:
        before, name = services().desk.admin.rename_unit(
            desk_actor(), code, request.form.get("name", "")
        )
    except DeskError as exc:
        return _unit_refused(exc, code)
    if name != before:
        _forget_catalogue()
    return done("console.admin_units", "done_unit_renamed", before=before, unit=name)


# -- the opt-out register (谢绝回访) --------------------------------------------------


@bp.get("/admin/optout")
@roles_required(ADMIN)
def admin_optout(error: str | None = None, status: int = 200) -> Any:
    with services().desk.sessions() as db:
        entries = list_opt_outs(db)
        people = {u: n for u, n in db.execute(select(User.username, User.display_name))}
        page = render_template(
            "admin_optout.html",
            entries=entries,
            people=people,
            form=request.form if error else {},
            error=error,
        )
    return page, status


@bp.post("/admin/optout")
@roles_required(ADMIN)
def admin_optout_add() -> Any:
    raw = request.form.get("phone", "").strip()
    try:
        added = services().desk.admin.add_opt_out(desk_actor(), raw, request.form.get("note", ""))
    except DeskError as exc:
        return admin_optout(error=exc.words(language()), status=exc.status)
    key = "done_optout_added" if added.new else "done_optout_exists"
    return done("console.admin_optout", key, phone=mask_for_screen(added.phone))


@bp.post("/admin/optout/remove")
@roles_required(ADMIN)
def admin_optout_remove() -> Any:
    raw = request.form.get("phone", "").strip()
    try:
        phone = services().desk.admin.remove_opt_out(desk_actor(), raw)
    except DeskError as exc:
        return admin_optout(error=exc.words(language()), status=exc.status)
    return done("console.admin_optout", "done_optout_removed", phone=mask_for_screen(phone))
