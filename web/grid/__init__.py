"""The grid worker's phone page (网格员, zh-CN, mobile-first): the cases their grids
hold with live countdowns, 到场 with the phone's location, photos, resolve with a reply
or escalate to a department, and patrol reports (巡查上报). Also the address table's
suggestions for the operator's address field (``/grid/addresses``) and the photos of a
case, for whoever may read the case (``/grid/photos/<id>``).

The actions go through the desk (``calls.grid_desk``), which says who may act: a grid
worker only on their own grids' cases; any other case is a 404."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from calls.desk import DeskError
from calls.grid_desk import ACTIVE, GRID_ACTIONS, deadline_of
from cases import dispatch as work
from cases.dispatch import CaseRefused
from cases.grid import GridCase, address_suggestions, grid_for_address, grids_of
from cases.lifecycle import IllegalTransition
from cases.models import Case, Category
from cases.photos import (
    MAX_PHOTO_BYTES,
    CasePhoto,
    PhotoRefused,
    photo_path,
    photos_dir_from_env,
    photos_of,
)
from cases.service import CaseError
from web.auth import desk_actor, language, roles_required
from web.context import services
from web.i18n import duration, translate

bp = Blueprint("grid", __name__, url_prefix="/grid")

# Who reads any case in the console (and so its photos) besides its unit and its grid.
CASE_READERS = ("operator", "supervisor", "admin", "leader", "quality")
SUGGESTERS = ("operator", "supervisor", "admin", "grid")
# A photo's form: the photo and a few short fields.
UPLOAD_LIMIT = MAX_PHOTO_BYTES + 64 * 1024
UPLOADS = ("grid.add_photo", "grid.patrol_report")


def _carries_photo(endpoint: str | None, values: dict[str, Any] | None) -> bool:
    """The photo form, the patrol form, and 办结 (the reply and a chosen photo are
    one form, so a chosen photo is sent with the reply)."""
    return endpoint in UPLOADS or (
        endpoint == "grid.act" and (values or {}).get("action") == "resolve"
    )


@bp.url_value_preprocessor
def allow_photos(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A photo is larger than the app's 64 KB: its forms may carry one. This runs
    before every before_request hook (the edge reads the body first)."""
    if _carries_photo(endpoint, values):
        request.max_content_length = UPLOAD_LIMIT


def _too_large_words() -> str:
    return translate("grid_photo_too_large", language(), mb=MAX_PHOTO_BYTES // (1024 * 1024))


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> Any:
    """A photo over the limit (the phone could not shrink it, or it was sent before it
    was): the same page again with a message in words; nothing of the body can be
    read, so the page's script puts back what was typed (grid.js keeps drafts)."""
    number = (request.view_args or {}).get("number")
    if number and request.endpoint in ("grid.add_photo", "grid.act"):
        return case_page(number, error=_too_large_words()), 413
    return _patrol_form(_too_large_words()), 413


@bp.errorhandler(CSRFError)
def form_expired(exc: CSRFError) -> Any:
    """The sign-in ended while the form was open: sign in again and come back to the
    same page (grid.js kept what was typed in the browser). A stale page of a live
    sign-in is shown again to send once more."""
    number = (request.view_args or {}).get("number")
    page = (
        url_for("grid.case_page", number=number)
        if number
        else url_for("grid.patrol")
        if request.endpoint == "grid.patrol_report"
        else url_for("grid.cases")
    )
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=page))
    return redirect(page)


def _countdown(deadline: datetime | None) -> dict[str, Any]:
    """A deadline's countdown as the page first shows it (grid.js keeps it live):
    "3小时20分" ahead, "已超时3天" past it."""
    if deadline is None:
        return {"text": "", "late": False}
    aware = deadline if deadline.tzinfo else deadline.replace(tzinfo=UTC)
    left = (aware - datetime.now(UTC)).total_seconds()
    lang = language()
    if left >= 0:
        return {"text": duration(left, lang), "late": False}
    return {"text": translate("grid_overdue", lang, time=_late_duration(-left, lang)), "late": True}


def _late_duration(seconds: float, lang: str) -> str:
    """How late: "3天2小时"; in English whole days spelled out ("3 days 2 h"), as
    grid.js says it."""
    days, rest = divmod(int(seconds), 86400)
    if lang == "zh" or not days:
        return duration(seconds, lang)
    hours = rest // 3600
    words = f"{days} day" + ("" if days == 1 else "s")
    return f"{words} {hours} h" if hours else words


@bp.context_processor
def countdowns() -> dict[str, Any]:
    return {"countdown": _countdown}


def photos_dir() -> Path:
    """Where cases.photos keeps photos: HOTLINE_PHOTOS_DIR, else var/photos (shared
    with the citizens' web form, web.report)."""
    ext = current_app.extensions
    if "hotline_photos_dir" not in ext:
        ext["hotline_photos_dir"] = photos_dir_from_env(os.environ)
    return ext["hotline_photos_dir"]  # type: ignore[no-any-return]


def sessions():  # type: ignore[no-untyped-def]
    return services().desk.sessions


def refusal(exc: Exception) -> str:
    lang = language()
    if isinstance(exc, CaseRefused | PhotoRefused):
        return exc.words(lang)
    if isinstance(exc, IllegalTransition):
        return (
            "工单当前状态不允许此操作" if lang == "zh" else "The case's status does not allow this"
        )
    return str(exc)


# -- the grid worker's cases ------------------------------------------------------------


@bp.get("/")
@roles_required("grid")
def cases() -> Any:
    actor = desk_actor()
    return render_template(
        "grid_cases.html",
        rows=services().desk.grid.my_cases(actor),
        grids=services().desk.grid.grids(actor),
        filed=request.args.get("filed", ""),
        notice=_list_notice(actor),
        done=request.args.get("resolved") or request.args.get("escalated") or "",
    )


def _list_notice(actor: Any) -> str:
    """What became of the case the worker just left: resolved, escalated (to whom),
    or no longer theirs when they opened it."""
    lang, args = language(), request.args
    if args.get("resolved"):
        return translate("grid_resolved", lang, number=args["resolved"][:40])
    for key, words in (("escalated", "grid_escalated"), ("handed_on", "grid_handed_on")):
        number = args.get(key, "")[:40]
        if number:
            unit = services().desk.grid.handed_on(actor, number)
            if unit is not None:
                return translate(words, lang, number=number, unit=unit)
    return ""


@bp.get("/cases/<number>")
@roles_required("grid")
def case_page(
    number: str,
    error: str | None = None,
    notice: str | None = None,
    drafts: dict[str, str] | None = None,
) -> Any:
    desk = services().desk
    actor = desk_actor()
    if notice is None and request.args.get("located") == "0":
        notice = translate("grid_on_site_no_location", language())
    with sessions()() as db:
        try:
            case, held = desk.grid.held_case(db, actor, number)
        except DeskError as exc:
            if exc.status == 404 and desk.grid.handed_on(actor, number) is not None:
                return redirect(url_for("grid.cases", handed_on=number))
            abort(exc.status)
        units, suggested = desk.grid.escalation_units(actor, number)
        return render_template(
            "grid_case.html",
            case=case,
            grid=held.grid.full_name,
            deadline=deadline_of(case),
            active=case.status in ACTIVE,
            photos=photos_of(db, case.id),
            events=list(case.events),
            units=units,
            suggested=suggested,
            max_mb=MAX_PHOTO_BYTES // (1024 * 1024),
            error=error,
            notice=notice,
            drafts=drafts or {},
        )


def _number(name: str) -> float | None:
    raw = request.form.get(name, "").strip()
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and value == value and abs(value) < 1e6 else None


@bp.post("/cases/<number>/<action>")
@roles_required("grid")
def act(number: str, action: str) -> Any:
    if action not in GRID_ACTIONS:
        abort(404)
    form = request.form
    text = form.get({"note": "note", "resolve": "reply"}.get(action, "reason"), "")
    drafts = {"reply": form.get("reply", "")[:4000], "note": form.get("note", "")[:4000]}
    photo = _uploaded() if action == "resolve" else b""
    try:
        if photo:  # chosen with the reply and not uploaded yet: it goes first
            if not text.strip():
                raise CaseRefused(
                    "reply-empty",
                    "办结须填写答复市民的内容",
                    "Resolving needs a reply to the citizen",
                )
            services().desk.grid.add_photo(desk_actor(), number, photo, photos_dir())
        services().desk.grid.act(
            desk_actor(),
            number,
            action,
            text=text,
            lat=_number("lat"),
            lon=_number("lon"),
            accuracy_m=_number("accuracy"),
            to=form.get("to", ""),
        )
    except DeskError as exc:
        abort(exc.status)
    except (CaseError, PhotoRefused, IllegalTransition) as exc:
        return case_page(number, error=refusal(exc), drafts=drafts), 422
    if action == "resolve":
        return redirect(url_for("grid.cases", resolved=number))
    if action == "escalate":
        return redirect(url_for("grid.cases", escalated=number))
    if action == "note":  # the page's script forgets the note's draft
        return redirect(url_for("grid.case_page", number=number, saved="note"))
    if action == "on-site" and (_number("lat") is None or _number("lon") is None):
        return redirect(url_for("grid.case_page", number=number, located="0"))
    return redirect(url_for("grid.case_page", number=number))


def _uploaded() -> bytes:
    upload = request.files.get("photo")
    return upload.read(MAX_PHOTO_BYTES + 1) if upload is not None else b""


@bp.post("/cases/<number>/photos")
@roles_required("grid")
def add_photo(number: str) -> Any:
    """The photo alone; the reply and the note typed beside it come along and are
    shown again if the photo is refused."""
    data = _uploaded()
    drafts = {k: request.form.get(k, "")[:4000] for k in ("reply", "note")}
    try:
        services().desk.grid.add_photo(desk_actor(), number, data, photos_dir())
    except DeskError as exc:
        abort(exc.status)
    except (CaseError, PhotoRefused, IllegalTransition) as exc:
        return case_page(number, error=refusal(exc), drafts=drafts), 422
    return redirect(url_for("grid.case_page", number=number, _anchor="photos"))


# -- patrol reports ---------------------------------------------------------------------


def _patrol_form(error: str | None = None, values: dict[str, str] | None = None) -> Any:
    actor = desk_actor()
    with sessions()() as db:
        categories = list(
            db.scalars(select(Category).order_by(Category.grid_work.desc(), Category.name))
        )
        db.expunge_all()
    return render_template(
        "grid_patrol.html",
        categories=categories,
        grids=services().desk.grid.grids(actor),
        values=values or {},
        max_mb=MAX_PHOTO_BYTES // (1024 * 1024),
        error=error,
    )


@bp.get("/patrol")
@roles_required("grid")
def patrol() -> Any:
    return _patrol_form()


@bp.post("/patrol")
@roles_required("grid")
def patrol_report() -> Any:
    form = request.form
    upload = request.files.get("photo")
    photo = upload.read(MAX_PHOTO_BYTES + 1) if upload is not None else b""
    try:
        case = services().desk.grid.patrol(
            desk_actor(),
            category_code=form.get("category_code", ""),
            address=form.get("address", "")[:500],
            description=form.get("description", "")[:4000],
            grid_code=form.get("grid_code", ""),
            lat=_number("lat"),
            lon=_number("lon"),
            photo=photo or None,
            photos_dir=photos_dir(),
            solved_reply=form.get("solved_reply", "")[:4000],
        )
    except DeskError as exc:
        abort(exc.status)
    except (CaseError, PhotoRefused, IllegalTransition) as exc:
        return _patrol_form(refusal(exc), {k: str(v) for k, v in form.items()}), 422
    return redirect(url_for("grid.cases", filed=case.number))


# -- for the other screens ----------------------------------------------------------------


@bp.get("/addresses")
@roles_required(*SUGGESTERS)
def addresses() -> Any:
    """The address table's lines matching what was typed, with their grids; the grid
    of the address as typed (null when the table does not say); and whether a case of
    the form's category there is grid work."""
    typed = request.args.get("q", "")[:100]
    named = request.args.get("category", "").strip()[:128]
    with sessions()() as db:
        grid = grid_for_address(db, typed)
        category = (
            db.scalar(select(Category).where((Category.code == named) | (Category.name == named)))
            if named
            else None
        )
        return jsonify(
            suggestions=address_suggestions(db, typed),
            grid=grid.full_name if grid is not None else None,
            # The case would go to that grid (cases.grid.route_to_grid).
            grid_work=bool(grid is not None and category is not None and category.grid_work),
        )


def may_see_case(db, case: Case) -> bool:  # type: ignore[no-untyped-def]
    role = current_user.role
    if role in CASE_READERS:
        return True
    if role == "department":
        return current_user.department_id in work.units_of(case, db)
    if role == "grid":
        held = db.get(GridCase, case.id)
        return held is not None and held.grid_id in {
            g.id for g in grids_of(db, current_user.username)
        }
    return False


@bp.get("/photos/<int:photo_id>")
@roles_required(*CASE_READERS, "department", "grid")
def photo(photo_id: int) -> Any:
    with sessions()() as db:
        found = db.get(CasePhoto, photo_id)
        case = db.get(Case, found.case_id) if found is not None else None
        if found is None or case is None or not may_see_case(db, case):
            abort(404)
        path = photo_path(photos_dir(), found)
        kind = found.content_type
    if path is None:
        abort(404)
    return send_file(path, mimetype=kind, max_age=0)


@bp.app_context_processor
def case_photo_links() -> dict[str, Any]:
    """``case_photos(case)`` for the case pages of the console and the portal."""

    def case_photos(case: Case) -> list[dict[str, Any]]:
        with sessions()() as db:
            return [
                {
                    "url": url_for("grid.photo", photo_id=p.id),
                    "added_by": p.added_by,
                    "added_at": p.added_at,
                }
                for p in photos_of(db, case.id)
            ]

    return {"case_photos": case_photos}
