"""The grid worker's phone page (网格员, zh-CN, mobile-first): the cases their grids
hold with live countdowns, 到场 with the phone's location, photos, resolve with a reply
or escalate to a department, and patrol reports (巡查上报). Also the address table's
suggestions for the operator's address field (``/grid/addresses``) and the photos of a
case, for whoever may read the case (``/grid/photos/<id>``).

The actions go through the desk (``calls.grid_desk``), which says who may act: a grid
worker only on their own grids' cases; any other case is a 404."""

from __future__ import annotations

import os
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
from sqlalchemy import select

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

bp = Blueprint("grid", __name__, url_prefix="/grid")

# Who reads any case in the console (and so its photos) besides its unit and its grid.
CASE_READERS = ("operator", "supervisor", "admin", "leader")
SUGGESTERS = ("operator", "supervisor", "admin", "grid")
# A photo's form: the photo and a few short fields.
UPLOAD_LIMIT = MAX_PHOTO_BYTES + 64 * 1024
UPLOADS = ("grid.add_photo", "grid.patrol_report")


@bp.url_value_preprocessor
def allow_photos(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A photo is larger than the app's 64 KB: its forms may carry one. This runs
    before every before_request hook (the edge reads the body first)."""
    if endpoint in UPLOADS:
        request.max_content_length = UPLOAD_LIMIT


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
    )


@bp.get("/cases/<number>")
@roles_required("grid")
def case_page(number: str, error: str | None = None, notice: str | None = None) -> Any:
    desk = services().desk
    actor = desk_actor()
    with sessions()() as db:
        try:
            case, held = desk.grid.held_case(db, actor, number)
        except DeskError as exc:
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
    try:
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
    except (CaseError, IllegalTransition) as exc:
        return case_page(number, error=refusal(exc)), 422
    if action in ("resolve", "escalate"):
        return redirect(url_for("grid.cases"))
    return redirect(url_for("grid.case_page", number=number))


@bp.post("/cases/<number>/photos")
@roles_required("grid")
def add_photo(number: str) -> Any:
    upload = request.files.get("photo")
    data = upload.read(MAX_PHOTO_BYTES + 1) if upload is not None else b""
    try:
        services().desk.grid.add_photo(desk_actor(), number, data, photos_dir())
    except DeskError as exc:
        abort(exc.status)
    except (CaseError, PhotoRefused, IllegalTransition) as exc:
        return case_page(number, error=refusal(exc)), 422
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
