"""What the screens show for stored values: Beijing time, durations, role, status and
reason names, masked phone numbers, and a case's trail in words. Pure functions taking
the language, and the Jinja filters that read it from the page (``register``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlalchemy.exc import SQLAlchemyError

from cases.phones import mask_for_screen, national_form
from web.i18n import TEXT, duration, reason_name, role_name, status_name, translate

BEIJING = ZoneInfo("Asia/Shanghai")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")


def beijing(moment: datetime | str | float | None, seconds: bool = False) -> str:
    """A stored moment (naive UTC, aware, ISO text or epoch seconds) in Beijing time:
    2026-12-01 14:05, or 14:05:09 with seconds; never microseconds nor an offset."""
    if moment is None or moment == "":
        return "—"
    if isinstance(moment, int | float):
        when = datetime.fromtimestamp(moment, UTC)
    elif isinstance(moment, str):
        try:
            when = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return moment
    else:
        when = moment
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class TrailRow:
    at: str
    actor: str
    what: str
    detail: str


def _t(key: str, lang: str, **values: object) -> str:
    return translate(key, lang, **values)


def _actor(actor: str, lang: str, people: Mapping[str, str]) -> str:
    if f"actor_{actor}" in TEXT:
        return _t(f"actor_{actor}", lang)
    if actor in people:
        return people[actor]
    if actor.isdigit():  # an operator's seat, as cases filed from a call record it
        return _t("actor_seat", lang, seat=actor)
    return actor


def _units(codes: str, units: Mapping[str, str]) -> str:
    return "、".join(units.get(c.strip(), c.strip()) for c in codes.split(",") if c.strip())


def _after_colon(note: str) -> str:
    """'退单: 属供电问题' -> '属供电问题' (the tag is the event's own label)."""
    head, sep, rest = note.partition(":")
    return rest.strip() if sep and len(head) <= 8 else note


def _clean(note: str, units: Mapping[str, str]) -> str:
    """A free-form note: times in Beijing time, unit codes as unit names."""
    note = _ISO.sub(lambda m: beijing(m.group(0)), note)
    return re.sub(
        r"[a-z][a-z0-9]*(?:-[a-z0-9]+)+", lambda m: units.get(m.group(0), m.group(0)), note
    )


def _detail(action: str, note: str, lang: str, units: Mapping[str, str]) -> tuple[str, str]:
    """(what, detail) for one event: its kind in words, and its note made readable."""
    what = _t(f"ev_{action}", lang) if f"ev_{action}" in TEXT else _t("ev_other", lang)
    note = (note or "").strip()
    if action == "dispatched":
        m = re.fullmatch(r"to (\S+?)(?:, assisted by (.+))?", note)
        if m:
            detail = _t("ev_to_unit", lang, unit=units.get(m.group(1), m.group(1)))
            if m.group(2):
                detail += "；" + _t("ev_assisted_by", lang, units=_units(m.group(2), units))
            return what, detail
    elif action == "resolved" and note.startswith("直接办结"):
        return _t("ev_resolved_on_phone", lang), ""
    elif action in ("accepted", "reopened", "on_site", "needs_dispatch", "create"):
        return what, ""
    elif action in ("emergency-transfer", "unit-transfer"):
        # The note begins with the kind the first column already says (紧急转办 110：…).
        return what, re.sub(r"^(?:紧急转办|转接)\s*", "", note)
    elif action == "closed":
        for outcome in ("satisfied", "no_response", "unreachable"):
            if note.startswith(translate(f"ev_visit_{outcome}", "zh")):
                return what, _t(f"ev_visit_{outcome}", lang)
        return what, _clean(note, units)
    elif action in ("returned", "resolved", "supervised"):
        return what, _after_colon(note)
    elif action == "extension_asked":
        m = re.fullmatch(r"延期 (\d+) working days: (.*)", note, re.S)
        if m:
            return what, _t("ev_days", lang, n=m.group(1)) + "：" + m.group(2)
    elif action.startswith("extension_"):
        m = re.fullmatch(r"(\d+) working days", note)
        if m:
            return what, _t("ev_days", lang, n=m.group(1))
    elif action in ("merged", "merged_in"):
        m = re.search(r"merged into (\S+)", note)
        if m:
            return what, _t("ev_merged_into", lang, number=m.group(1))
        m = re.fullmatch(r"并单: (\S+) \((.*)\)", note)
        if m:
            phone = m.group(2)  # masked when written since; full in older trails
            return what, f"{m.group(1)}（{phone if '*' in phone else mask_for_screen(phone)}）"
    elif action in ("reminder", "overdue"):
        m = re.match(r"\[(response|handling)\].*due (\S+)", note)
        if m:
            kind = _t(f"ev_kind_{m.group(1)}", lang)
            due = _t("ev_due", lang, at=beijing(m.group(2)))
            if action == "reminder":
                return what, _t("ev_limit_used", lang, kind=kind) + "，" + due
            return _t("ev_late", lang, kind=kind), due
    elif action == "urged":
        _, sep, said = note.partition(": ")
        return what, said.strip() if sep else ""
    elif action == "form":
        fields = [f.strip() for f in note.removeprefix("updated:").split(",") if f.strip()]
        names = "、".join(
            _t(f"field_{f}", lang) if f"field_{f}" in TEXT else _t("ev_other", lang) for f in fields
        )
        return what, _t("ev_changed", lang, fields=names) if names else ""
    elif action == "note":
        return what, note
    return what, _clean(note, units)


_WORKING = ("dispatched", "accepted", "in_progress")  # a unit held the case


def trail(
    events: Iterable[Any],
    lang: str = "zh",
    units: Mapping[str, str] | None = None,
    people: Mapping[str, str] | None = None,
) -> list[TrailRow]:
    """A case's events (CaseEvent rows, or anything with at/actor/action/note) as rows
    a person reads: Beijing time, who by name, what happened, details in words."""
    rows = []
    for e in events:
        what, detail = _detail(e.action, e.note or "", lang, units or {})
        moved_from = getattr(e, "from_status", None)
        if e.action == "dispatched" and moved_from in ("returned", *_WORKING):
            what = _t("ev_redispatched", lang)  # 改派: the case moved from one unit to another
        rows.append(TrailRow(beijing(e.at), _actor(e.actor, lang, people or {}), what, detail))
    return rows


@dataclass
class _Names:
    """Unit names by code and people's shown names by user name ('' for no such user),
    read once per request: a page of 200 rows asks once, not per row."""

    units: dict[str, str] | None = None  # None: not read yet
    people: dict[str, str] = field(default_factory=dict)


def _request_names() -> _Names:
    from flask import g, has_request_context

    if not has_request_context():
        return _Names()
    if "hotline_names" not in g:
        g.hotline_names = _Names()
    return g.hotline_names  # type: ignore[no-any-return]


def _names_for(
    events: list[Any], more: Iterable[str] = ()
) -> tuple[dict[str, str], dict[str, str]]:
    """Unit names by code and people's names by user name (of the events' actors and
    ``more``), from the events' own database session (the page's), else a new one;
    what this request has read already is not read again."""
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    from cases.models import Department, User
    from cases.users import shown_name
    from web.context import services

    names = _request_names()
    known = names.people
    actors = {e.actor for e in events} | set(more)
    missing = actors - known.keys()
    session = object_session(events[0]) if events else None

    def load(db: Any) -> None:
        if names.units is None:
            units = db.execute(select(Department.code, Department.name))
            names.units = {code: name for code, name in units}
        if missing:
            named = (
                select(User.username, User.display_name, Department.name)
                .outerjoin(Department, User.department_id == Department.id)
                .where(User.username.in_(missing))
            )
            found = {user: shown_name(user, name, unit) for user, name, unit in db.execute(named)}
            known.update({user: found.get(user, "") for user in missing})

    if names.units is None or missing:
        if session is not None:
            load(session)
        else:
            with services().desk.sessions() as db:
                load(db)
    return names.units or {}, {k: known[k] for k in actors if known.get(k)}


def _lang(context: Context) -> str:
    return str(context.get("lang") or "zh")


def register(app: Flask) -> None:
    """The filters the templates use; each reads the page's language."""

    @pass_context
    def duration_filter(context: Context, seconds: Any) -> str:
        return duration(seconds, _lang(context))

    @pass_context
    def role_filter(context: Context, role: str | None) -> str:
        return role_name(role, _lang(context))

    @pass_context
    def status_filter(context: Context, status: str | None) -> str:
        return status_name(status, _lang(context))

    @pass_context
    def reason_filter(context: Context, reason: str | None) -> str:
        return reason_name(reason, _lang(context))

    @pass_context
    def trail_filter(context: Context, events: Iterable[Any]) -> list[TrailRow]:
        listed = list(events)
        units, people = _names_for(listed) if listed else ({}, {})
        return trail(listed, _lang(context), units, people)

    def person_filter(username: str | None) -> str:
        """Who did it, by name (or unit), never by login (the login when the
        database cannot say)."""
        if not username:
            return ""
        try:
            _, people = _names_for([], (username,))
        except SQLAlchemyError:
            return username
        return people.get(username) or username

    app.jinja_env.filters.update(
        beijing=beijing,
        person=person_filter,
        duration=duration_filter,
        role_name=role_filter,
        status_name=status_filter,
        seat_reason=reason_filter,  # a seat state's reason in words, never a key
        trail=trail_filter,
        masked=mask_for_screen,
        national=national_form,  # the operator's own caller, whole: to read it back
        # Templates that still say mask_phone are screens too: the screen's form.
        mask_phone=mask_for_screen,
    )
