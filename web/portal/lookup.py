"""The citizens' page: a case's progress by case number and the phone number it was
made from. Nothing else is shown, and only when both match; lookups are limited per
address and per case number, so numbers cannot be walked."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy import select

from cases.models import Case
from cases.phones import InvalidPhone, normalise
from web.context import services

bp = Blueprint("lookup", __name__)

PER_ADDRESS_PER_MINUTE = 10
PER_CASE_PER_HOUR = 20
PUBLIC_ACTIONS = {
    "create": "受理",
    "dispatched": "派单",
    "accepted": "签收",
    "on_site": "到场",
    "in_progress": "处理中",
    "resolved": "办结",
    "reopened": "重办",
    "closed": "归档",
    "urged": "催办",
}


def over_limit(bucket: str, limit: int, window_s: int) -> bool:
    redis, keys = services().redis, services().queue.keys
    key = keys.rate(bucket)
    pipe = redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, window_s, nx=True)
    count, _ = pipe.execute()
    return int(count) > limit


@bp.route("/lookup", methods=["GET", "POST"])
def lookup() -> Any:
    if request.method == "GET":
        return render_template("lookup.html", found=None, asked=False)
    number = request.form.get("number", "").strip()[:32]
    raw_phone = request.form.get("phone", "").strip()[:32]
    if over_limit("lookup-ip:" + (request.remote_addr or "?"), PER_ADDRESS_PER_MINUTE, 60) or (
        number and over_limit("lookup-case:" + number, PER_CASE_PER_HOUR, 3600)
    ):
        return render_template("lookup.html", found=None, asked=True, slow=True), 429
    try:
        phone = normalise(raw_phone)
    except InvalidPhone:
        phone = ""
    found = None
    if number and phone:
        with services().desk.sessions() as db:
            case = db.scalar(select(Case).where(Case.number == number, Case.caller_phone == phone))
            merged = case.merged_into if case is not None else None
            if case is not None and merged is not None:  # 并单: follow the open case
                case = merged
            if case is not None:
                found = {
                    "merged_into": merged.number if merged is not None else None,
                    "number": case.number,
                    "status": case.status,
                    "unit": case.department.name if case.department else "",
                    "reply": case.reply,
                    "steps": [
                        {"at": e.at, "what": PUBLIC_ACTIONS[e.action]}
                        for e in case.events
                        if e.action in PUBLIC_ACTIONS
                    ],
                }
    status = 200 if found else 404
    return render_template("lookup.html", found=found, asked=True), status
