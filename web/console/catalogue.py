"""The case form's reference data: categories, districts and units by their Chinese
names, findable by pinyin (full or initials: 停水 is "tingshui" and "ts"), in pinyin
order. Read once a minute per process, not once per screen pop."""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from typing import Any

from flask import current_app
from pypinyin import Style, lazy_pinyin
from sqlalchemy import select

from cases.models import Category, Department, District
from web.context import services

CATALOGUE_TTL_S = 60.0
_lock = threading.Lock()
_reading = threading.Lock()  # one thread reads the catalogue; the others wait or keep theirs
UNIT_KINDS = ("department", "district")  # city departments first, then district governments


@lru_cache(maxsize=4096)  # names seldom change; converting them each minute cost 18 ms
def pinyin_keys(name: str) -> tuple[str, str]:
    """(full pinyin, initials) of a Chinese name: what an operator types to find it."""
    full = lazy_pinyin(name, errors="ignore")
    initials = lazy_pinyin(name, style=Style.FIRST_LETTER, errors="ignore")
    return "".join(full).lower(), "".join(initials).lower()


def _entry(code: str, name: str, **extra: Any) -> dict[str, Any]:
    full, initials = pinyin_keys(name)
    return {"code": code, "name": name, "pinyin": full, "initials": initials, **extra}


def catalogue() -> dict[str, Any]:
    cached = current_app.extensions.setdefault("hotline_catalogue", {})
    with _lock:
        if cached and time.monotonic() - cached["at"] < CATALOGUE_TTL_S:
            return cached["value"]  # type: ignore[no-any-return]
        stale = cached.get("value")
    # One thread reads it anew while the others keep the minute-old one (a burst of
    # first pops each reading it stalled the webhooks beside them).
    if not _reading.acquire(blocking=stale is None):
        return stale  # type: ignore[no-any-return]
    try:
        with _lock:
            if time.monotonic() - cached.get("at", -CATALOGUE_TTL_S) < CATALOGUE_TTL_S:
                return cached["value"]  # type: ignore[no-any-return]
        value = _read()
        with _lock:
            cached.update(at=time.monotonic(), value=value)
        return value
    finally:
        _reading.release()


def _read() -> dict[str, Any]:
    with services().desk.sessions() as db:
        units = sorted(
            (
                _entry(d.code, d.name, kind=d.kind)
                for d in db.scalars(select(Department))
            ),
            key=lambda u: (UNIT_KINDS.index(u["kind"]) if u["kind"] in UNIT_KINDS else 9,
                           u["pinyin"]),
        )
        categories = sorted(
            (
                _entry(c.code, c.name, department=c.department.name if c.department else "")
                for c in db.scalars(select(Category))
            ),
            key=lambda c: c["pinyin"],
        )
        districts = [_entry(d.code, d.name) for d in db.scalars(select(District))]
        districts.sort(key=lambda d: d["pinyin"])
    return {"categories": categories, "districts": districts, "units": units}


def category_code_for(text: str) -> str:
    """What the operator typed in the category box, as a category code: the Chinese
    name (as picked from the list), a code (the API), or a unique pinyin match. Text
    that names nothing is returned as it is, for the form check to refuse."""
    wanted = text.strip()
    if not wanted:
        return ""
    categories = catalogue()["categories"]
    for c in categories:
        if wanted in (c["name"], c["code"]):
            return str(c["code"])
    key = wanted.lower().replace(" ", "")
    found = [c for c in categories if key in (c["pinyin"], c["initials"])]
    return str(found[0]["code"]) if len(found) == 1 else wanted


def category_name(typed: object) -> str:
    """What the category box shows for what was typed in it: the category's name when
    the text names one (停水 for "ts", "tingshui" or "water-outage"), never its pinyin
    or code; text that names none as typed, for the operator to correct."""
    text = "" if typed is None else str(typed)
    code = category_code_for(text)
    for c in catalogue()["categories"]:
        if c["code"] == code:
            return str(c["name"])
    return text


def name_of(field: str, code: object) -> str:
    """The Chinese name for a code of the form's field (category, district, unit)."""
    table = {"category_code": "categories", "district_code": "districts"}.get(field, "units")
    for entry in catalogue()[table]:
        if entry["code"] == code:
            return str(entry["name"])
    return str(code)


def named_allowed(field: str, allowed: list[str]) -> list[str]:
    """A refusal's allowed values, as names a person reads (never slugs)."""
    if field not in ("category_code", "district_code", "department_code"):
        return allowed
    return [name_of(field, code) for code in allowed]
