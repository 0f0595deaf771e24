"""The citizens' page (查询工单进度): a case's progress by its case number and the phone
it was made from, anonymous.

Case numbers are sequential per day (12345-YYYYMMDD-NNNNNN): anyone can guess one, so
the number alone shows nothing. The phone (the full number, or its last four digits)
must match too, and a wrong phone answers exactly as an unknown case number does.

Limits (Flask-Limiter, counted in the service's Redis, per client address as the
trusted proxies report it):
- every lookup, per address;
- failed lookups that gave only four digits, per address and case number, and per case
  number from anywhere (high and short). Strangers can use up the last-four budget of
  a case for a few minutes at most; the citizen who types the full number is never
  counted against it (a full number cannot be guessed within the per-address limit).

A request merged (并单) into another citizen's case shows its own number, the fact of
the merge, and the shared progress since the merge: the open case's status, its unit
and the steps taken on it. Never the other case's number, citizen, address,
description or the unit's reply, which is written to that citizen."""

from __future__ import annotations

import hmac
import math
import re
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, render_template, request
from flask.wrappers import Response
from flask_limiter import RateLimitExceeded
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from cases.models import Case
from cases.phones import InvalidPhone, normalise
from web.auth import language
from web.context import services
from web.i18n import translate
from web.limits import client_address, limiter

bp = Blueprint("lookup", __name__)

LOOKUPS_PER_ADDRESS = "10 per minute"
FAILURES_PER_ADDRESS_AND_CASE = "5 per hour"  # last-four tries only
FAILURES_PER_CASE = "30 per 10 minutes"  # last-four tries only, from anywhere
# The steps of one's own case a citizen sees (the trail's actions; named by ev_<action>).
PUBLIC_ACTIONS = frozenset(
    {
        "create",
        "dispatched",
        "accepted",
        "on_site",
        "in_progress",
        "resolved",
        "reopened",
        "closed",
        "urged",
        "merged",
    }
)
# Of the case a request was merged into: what the unit did on the matter since. Not
# its 受理, 催办 or 重办, which are the other citizen's calls and return visit.
SHARED_ACTIONS = PUBLIC_ACTIONS - {"create", "urged", "merged", "reopened"}

_DASHES = re.compile(r"[\s\-‐‑‒–—―−－ー_]")  # what IMEs and phones put between digits
_CASE_NUMBER = re.compile(r"(?:12345)?([0-9]{8})([0-9]{6})")


def case_number_of(typed: str) -> str | None:
    """12345-20261201-000001 however it was typed: full-width digits, spaces or any
    dash between the groups, with or without the leading 12345; else None."""
    digits = _DASHES.sub("", unicodedata.normalize("NFKC", typed))
    match = _CASE_NUMBER.fullmatch(digits)
    return f"12345-{match.group(1)}-{match.group(2)}" if match else None


@dataclass(frozen=True)
class PhoneGiven:
    full: str = ""  # E.164, when a whole number was typed
    last_four: str = ""  # when only the last four digits were

    def matches(self, stored: str) -> bool:
        if self.full:
            return hmac.compare_digest(self.full, stored)
        digits = stored.lstrip("+")
        return bool(self.last_four) and len(digits) >= 8 and digits.endswith(self.last_four)


def phone_of(typed: str) -> PhoneGiven:
    """The phone as typed (full-width digits, spaces, dashes, +86 or 0086 alike): a
    whole number, its last four digits, or neither."""
    text = _DASHES.sub("", unicodedata.normalize("NFKC", typed))
    if re.fullmatch(r"[0-9]{4}", text):
        return PhoneGiven(last_four=text)
    try:
        phone = normalise(text)
    except InvalidPhone:
        return PhoneGiven()
    return PhoneGiven(full=phone) if phone.startswith("+") else PhoneGiven()


def _typed_case() -> str:
    typed = request.form.get("number", "")[:64]
    return case_number_of(typed) or "?" + _DASHES.sub("", typed)[:32]


def _case_key() -> str:
    return "case:" + _typed_case()


def _address_and_case_key() -> str:
    return f"{client_address()}|{_typed_case()}"


def _full_number_given() -> bool:
    return bool(phone_of(request.form.get("phone", "")[:64]).full)


def _not_found(response: Response) -> bool:
    return response.status_code == 404


@dataclass
class Progress:
    """What the citizen sees: their own number, and the progress they may know."""

    number: str
    status: str
    unit: str
    merged: bool = False
    reply: str = ""
    reply_withheld: bool = False  # a merged request: the reply was written to another
    steps: list[dict[str, Any]] = field(default_factory=list)


def _steps(events: Any, actions: Any, after: datetime | None = None) -> list[dict[str, Any]]:
    return [
        {"at": e.at, "action": e.action}
        for e in events
        if e.action in actions and (after is None or _aware(e.at) >= after)
    ]


def _aware(moment: datetime) -> datetime:
    """SQLite gives stored UTC back without its zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def progress_of(case: Case) -> Progress:
    target = case.merged_into
    if target is None:
        return Progress(
            number=case.number,
            status=case.status,
            unit=case.department.name if case.department else "",
            reply=case.reply,
            steps=_steps(case.events, PUBLIC_ACTIONS),
        )
    merged_at = next((e.at for e in case.events if e.action == "merged"), case.closed_at)
    own = _steps(case.events, PUBLIC_ACTIONS)
    shared = _steps(target.events, SHARED_ACTIONS, _aware(merged_at) if merged_at else None)
    return Progress(
        number=case.number,
        status=target.status,
        unit=target.department.name if target.department else "",
        merged=True,
        reply_withheld=bool(target.reply),
        steps=sorted(own + shared, key=lambda s: _aware(s["at"])),
    )


def find(number: str | None, phone: PhoneGiven) -> Progress | None:
    """The case, only if the phone is its caller's; one query whether or not the number
    exists, so the two cannot be told apart."""
    if number is None or not (phone.full or phone.last_four):
        return None
    with services().desk.sessions() as db:
        case = db.scalar(
            select(Case)
            .where(Case.number == number)
            .options(
                selectinload(Case.events),
                selectinload(Case.department),
                selectinload(Case.merged_into).selectinload(Case.events),
                selectinload(Case.merged_into).selectinload(Case.department),
            )
        )
        if case is None or not phone.matches(case.caller_phone or ""):
            return None
        return progress_of(case)


def wait_words(seconds: float, lang: str) -> str:
    """How long to wait, as a citizen says it: whole minutes below an hour ("1 分钟",
    "45 分钟"), whole hours from there ("1 小时"), rounded up."""
    minutes = max(1, round(seconds / 60))  # Retry-After carries a second more
    unit, n = ("minute", minutes) if minutes < 60 else ("hour", math.ceil(minutes / 60))
    return translate(f"wait_{unit}" if n == 1 else f"wait_{unit}s", lang, n=n)


def _typed() -> dict[str, str]:
    """What the citizen typed, to put back in the boxes after a miss."""
    return {
        "typed_number": request.form.get("number", "")[:40],
        "typed_phone": request.form.get("phone", "")[:32],
    }


@bp.errorhandler(RateLimitExceeded)
def too_many(exc: RateLimitExceeded) -> Any:
    """The lookup page again, saying how long to wait (the limit's Retry-After, in
    words) and that 12345 answers meanwhile; a last-four budget used up says the full
    number still works."""
    per_case = exc.limit.scope in ("failures-address-case", "failures-case")
    breached = limiter.current_limit
    seconds = breached.reset_at - time.time() if breached else exc.limit.limit.get_expiry()
    return render_template(
        "lookup.html",
        found=None,
        asked=True,
        slow=True,
        per_case=per_case,
        wait=wait_words(seconds, language()),
        **_typed(),
    ), 429


@bp.route("/lookup", methods=["GET", "POST"])
@limiter.limit(LOOKUPS_PER_ADDRESS, methods=["POST"], scope="address")
@limiter.limit(
    FAILURES_PER_ADDRESS_AND_CASE,
    methods=["POST"],
    scope="failures-address-case",
    key_func=_address_and_case_key,
    deduct_when=_not_found,
    exempt_when=_full_number_given,
)
@limiter.limit(
    FAILURES_PER_CASE,
    methods=["POST"],
    scope="failures-case",
    key_func=_case_key,
    deduct_when=_not_found,
    exempt_when=_full_number_given,
)
def lookup() -> Any:
    if request.method != "POST":  # GET, and HEAD (which Flask routes here too)
        # From the web form's done page (?number=): the number is filled in; the phone
        # is still asked for.
        prefilled = case_number_of(request.args.get("number", "")[:64]) or ""
        return render_template("lookup.html", found=None, asked=False, typed_number=prefilled)
    found = find(
        case_number_of(request.form.get("number", "")[:64]),
        phone_of(request.form.get("phone", "")[:64]),
    )
    if found:
        return render_template("lookup.html", found=found, asked=True)
    return render_template("lookup.html", found=None, asked=True, **_typed()), 404
