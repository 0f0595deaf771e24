"""Hot topics, special topics (专题) and duplicate suggestions on the console.

- While the operator types the case form, open cases of the same category at the same
  place (or grid, for a matter that covers an area) are suggested; accepting one files
  the caller's case and merges it into the open one (并单).
- Supervisors open special topics, see each one's figures and cases, add or leave out
  cases by hand, and close them. Hot topics open now are listed above them."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from calls.desk import DeskError
from calls.topic_desk import REFUSALS
from cases.duplicates import suggest_duplicates
from cases.models import Case
from cases.search import text_condition
from cases.service import InvalidForm, utcnow
from cases.topics import (
    SpecialTopic,
    SpecialTopicCase,
    current_hot_topics,
    figures_of,
    rule_list,
    topic_cases,
)
from web.auth import desk_actor, language, roles_required
from web.console.catalogue import catalogue, category_code_for, name_of
from web.console.routes import (
    OPERATORS,
    SUPERVISORS,
    bp,
    form_error,
    form_from_request,
    pop_view,
    sessions,
)
from web.context import services
from web.i18n import translate


def _grid_id(db: Any, address: str) -> int | None:
    from cases.grid import grid_for_address

    grid = grid_for_address(db, address) if address.strip() else None
    return grid.id if grid is not None else None


@bp.get("/calls/<call>/duplicates")
@roles_required(*OPERATORS, *SUPERVISORS)
def duplicates(call: str) -> Any:
    """Open cases that may be this call's matter, for the form's address and category."""
    services().desk.call(desk_actor(), call)  # the seat's operator's, or a supervisor's
    category = category_code_for(request.args.get("category_code", "")[:64])
    address = request.args.get("address", "")[:500]
    found = []
    if category and address.strip():
        with sessions()() as db:
            found = suggest_duplicates(
                db, category, address, utcnow(), grid_id=_grid_id(db, address)
            )
    return render_template("_duplicates.html", call=call, suggestions=found)


@bp.post("/calls/<call>/merge-into")
@roles_required(*OPERATORS, *SUPERVISORS)
def merge_at_filing(call: str) -> Any:
    """The operator accepted a suggestion: the form is filed as the caller's case and
    merged into the open one."""
    desk, actor = services().desk, desk_actor()
    desk.call(actor, call)
    popped = pop_view(call)
    page = {
        "call": call,
        "values": dict(request.form.items()),
        "open_cases": popped["open_cases"] if popped else [],
    }
    into = request.form.get("into", "")[:32]
    try:
        own, target = desk.topics.merge_at_filing(actor, call, form_from_request(), into)
    except InvalidForm as exc:
        return render_template("_case_form.html", error=form_error(exc), **page, **catalogue()), 422
    except DeskError as exc:
        return render_template(
            "_case_form.html", refused=exc.words(language()), **page, **catalogue()
        ), exc.status
    except REFUSALS as exc:
        return render_template(
            "_case_form.html",
            refused=exc.zh if language() == "zh" else exc.en,
            **page,
            **catalogue(),
        ), 422
    return render_template(
        "_case_form.html", filed=own, merged_to=target.number, **page, **catalogue()
    )


# -- special topics ----------------------------------------------------------------------


def _day(text: str | None) -> date | None:
    try:
        day = date.fromisoformat((text or "").strip())
    except ValueError:
        return None
    return day if 2000 <= day.year <= 2100 else None


def _category_groups() -> list[tuple[str, list[dict[str, Any]]]]:
    """The categories to choose from, grouped by their handling unit in the catalogue's
    unit order (city departments, then districts); categories without a unit last."""
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for category in catalogue()["categories"]:
        by_unit.setdefault(category["department"], []).append(category)
    groups = [
        (u["name"], by_unit.pop(u["name"])) for u in catalogue()["units"] if u["name"] in by_unit
    ]
    leftover = [c for unit in by_unit.values() for c in unit]
    if leftover:
        groups.append((translate("st_no_unit", language()), leftover))
    return groups


def _chosen_category_codes() -> list[str]:
    """The ticked categories (and, for older clients, the free-text list of codes), as
    codes: a name the catalogue knows becomes its code; anything else is passed on for
    the desk to refuse by name."""
    chosen = [v[:64] for v in request.form.getlist("category")[:200]]
    chosen += rule_list(request.form.get("categories", "")[:1000])
    codes = [category_code_for(value) for value in chosen if value.strip()]
    return list(dict.fromkeys(codes))


def _topics_page(error: str | None = None, opened: str | None = None, status: int = 200) -> Any:
    with sessions()() as db:
        topics = db.scalars(select(SpecialTopic).order_by(SpecialTopic.id.desc())).all()
        rows = [(topic, figures_of(db, topic)) for topic in topics]
        hot = current_hot_topics(db, utcnow())
    return render_template(
        "special_topics.html",
        rows=rows,
        hot=hot,
        error=error,
        opened=opened,
        values=request.form,
        category_groups=_category_groups(),
        chosen=set(_chosen_category_codes()) if request.method == "POST" else set(),
    ), status


@bp.get("/topics")
@roles_required(*SUPERVISORS)
def special_topics() -> Any:
    return _topics_page()


@bp.post("/topics")
@roles_required(*SUPERVISORS)
def open_special() -> Any:
    f = request.form
    try:
        topic = services().desk.topics.open_special(
            desk_actor(),
            f.get("name", "")[:128],
            categories=" ".join(_chosen_category_codes()),
            words=f.get("words", "")[:1000],
            streets=f.get("streets", "")[:1000],
            starts_on=_day(f.get("starts_on")),
            ends_on=_day(f.get("ends_on")),
            note=f.get("note", "")[:2000],
        )
    except REFUSALS as exc:
        return _topics_page(error=exc.zh if language() == "zh" else exc.en, status=422)
    return redirect(url_for("console.special_topic", topic_id=topic.id))


@bp.get("/topics/<int:topic_id>")
@roles_required(*SUPERVISORS)
def special_topic(topic_id: int, error: str | None = None) -> Any:
    with sessions()() as db:
        topic = db.get(SpecialTopic, topic_id)
        if topic is None:
            abort(404)
        cases = topic_cases(db, topic)
        how = dict(
            db.execute(
                select(SpecialTopicCase.case_id, SpecialTopicCase.how).where(
                    SpecialTopicCase.topic_id == topic.id
                )
            ).all()
        )
        for case in cases:  # loaded for the template while the session is open
            _ = case.category, case.department
        figures = figures_of(db, topic)
    rules = {
        "categories": [name_of("category_code", code) for code in rule_list(topic.categories)],
        "words": rule_list(topic.words),
        "streets": rule_list(topic.streets),
    }
    return render_template(
        "special_topic.html",
        topic=topic,
        figures=figures,
        cases=cases,
        how=how,
        rules=rules,
        error=error,
    ), (422 if error else 200)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _case_number_typed(db: Session, typed: str) -> str | list[str]:
    """The whole case number for what the supervisor typed, read as case search reads
    it (the whole number, without dashes, or its last digits). Phone numbers that case
    search also matches are no case numbers here. Several cases: their numbers, to ask
    for more digits; none: the text as typed, for the desk to refuse."""
    condition = text_condition(typed, services().handler.phones)
    if condition is None:
        return typed
    digits = _digits(typed)
    found = [
        number
        for number in db.scalars(
            select(Case.number).where(condition).order_by(Case.id.desc()).limit(50)
        )
        if number == typed.strip() or (digits and _digits(number).endswith(digits))
    ]
    if len(found) == 1:
        return found[0]
    return found or typed


@bp.post("/topics/<int:topic_id>/cases")
@roles_required(*SUPERVISORS)
def add_to_special(topic_id: int) -> Any:
    typed = request.form.get("number", "")[:32].strip()
    with sessions()() as db:
        number = _case_number_typed(db, typed)
    if isinstance(number, list):
        shown = "、".join(number[:5]) + ("…" if len(number) > 5 else "")
        error = translate("st_several_cases", language(), typed=typed, numbers=shown)
        return special_topic(topic_id, error=error)
    try:
        services().desk.topics.add_case(desk_actor(), topic_id, number)
    except REFUSALS as exc:
        return special_topic(topic_id, error=exc.zh if language() == "zh" else exc.en)
    return redirect(url_for("console.special_topic", topic_id=topic_id))


@bp.post("/topics/<int:topic_id>/cases/<int:case_id>/leave-out")
@roles_required(*SUPERVISORS)
def leave_out_of_special(topic_id: int, case_id: int) -> Any:
    services().desk.topics.leave_out(desk_actor(), topic_id, case_id)
    return redirect(url_for("console.special_topic", topic_id=topic_id))


@bp.post("/topics/<int:topic_id>/close")
@roles_required(*SUPERVISORS)
def close_special(topic_id: int) -> Any:
    services().desk.topics.close_special(desk_actor(), topic_id)
    return redirect(url_for("console.special_topic", topic_id=topic_id))
