"""Use cases on the case database. Each function takes an open Session; the caller
commits. Lookups here feed the call flow; writes keep an audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, not_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cases.lifecycle import OPEN_STATUSES, check_transition
from cases.models import (
    CallbackRequest,
    Case,
    CaseEvent,
    Category,
    CitizenRegister,
    DailyCounter,
    Department,
    District,
    LegacyHotline,
)

RESPONSE_LIMIT = timedelta(minutes=30)  # the 30-minute response rule
REPEAT_WINDOW = timedelta(days=30)


HOTLINE_TZ = ZoneInfo("Asia/Shanghai")


class CaseError(ValueError):
    """Bad input for a case operation (unknown category, district, ...)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CallerProfile:
    vulnerable: bool
    open_case_number: str | None = None
    open_case_status: str | None = None
    open_case_seat: str | None = None


@dataclass(frozen=True)
class HotlineInfo:
    dialed: str
    name: str
    category_code: str | None
    department_code: str | None


@dataclass(frozen=True)
class CaseDraft:
    """What the operator filled in during the call."""

    description: str = ""
    address: str = ""
    caller_name: str = ""
    category_code: str | None = None
    district_code: str | None = None
    department_code: str | None = None
    urgency: str | None = None  # None: the category's default
    resolved_on_phone: bool = False  # 直接办结
    dispatch: bool = True
    # A repeat caller's call attached to their open case (催办) instead of a new case.
    attach_to: str | None = None


@dataclass(frozen=True)
class CallInfo:
    """What the call itself tells about the case."""

    call_id: str
    caller_phone: str
    channel: str
    operator_seat: str | None = None
    source_hotline: str | None = None
    category_code: str | None = None
    department_code: str | None = None


# -- lookups for the call flow ----------------------------------------------------------


def blank_case() -> ColumnElement[bool]:
    """A case made for an answered call whose form never came (待补录): received, no
    category, no description, never dispatched."""
    return and_(
        Case.status == "received",
        Case.category_id.is_(None),
        func.trim(Case.description) == "",
        Case.dispatched_at.is_(None),
    )


def blank_cases(
    session: Session, since: datetime, seat: str | None = None, limit: int = 50
) -> list[Case]:
    """Blank cases since ``since`` (of one seat's calls), oldest first: to complete."""
    query = select(Case).where(blank_case(), Case.created_at >= since)
    if seat is not None:
        query = query.where(Case.operator_seat == seat)
    return list(session.scalars(query.order_by(Case.created_at).limit(limit)))


def caller_profile(session: Session, phone: str, now: datetime | None = None) -> CallerProfile:
    if not phone:
        return CallerProfile(vulnerable=False)
    now = now or utcnow()
    vulnerable = bool(
        session.scalar(select(CitizenRegister.vulnerable).where(CitizenRegister.phone == phone))
    )
    # A call answered with no form leaves a blank case: nothing to tell the caller
    # about, and no reason to wait for that operator.
    blank = blank_case()
    case = session.scalar(
        select(Case)
        .where(
            Case.caller_phone == phone,
            Case.status.in_(OPEN_STATUSES),
            Case.created_at >= now - REPEAT_WINDOW,
            not_(blank),
        )
        .order_by(Case.created_at.desc())
        .limit(1)
    )
    if case is None:
        return CallerProfile(vulnerable=vulnerable)
    return CallerProfile(vulnerable, case.number, case.status, case.operator_seat)


def hotline_info(session: Session, dialed: str) -> HotlineInfo | None:
    row = session.scalar(select(LegacyHotline).where(LegacyHotline.dialed == dialed))
    if row is None:
        return None
    return HotlineInfo(
        dialed=row.dialed,
        name=row.name,
        category_code=row.category.code if row.category else None,
        department_code=row.department.code if row.department else None,
    )


# -- cases ----------------------------------------------------------------------------


def next_case_number(session: Session, now: datetime) -> str:
    """12345-YYYYMMDD-NNNNNN, counting per day of the hotline's own calendar (Beijing
    time: a case at 07:59 and one at 08:01 Beijing are on the same day, though UTC
    changes date at 08:00); one atomic upsert on either database."""
    day = now.astimezone(HOTLINE_TZ).strftime("%Y%m%d")
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        insert(DailyCounter)
        .values(day=day, last=1)
        .on_conflict_do_update(index_elements=["day"], set_={"last": DailyCounter.last + 1})
        .returning(DailyCounter.last)
    )
    last = session.execute(stmt).scalar_one()
    return f"12345-{day}-{last:06d}"


def _by_code(session: Session, model, code: str | None, what: str):  # type: ignore[no-untyped-def]
    if not code:
        return None
    row = session.scalar(select(model).where(model.code == code))
    if row is None:
        raise CaseError(f"unknown {what} {code!r}")
    return row


def _record(
    case: Case,
    actor: str,
    action: str,
    old: str | None,
    new: str | None,
    note: str = "",
    at: datetime | None = None,
) -> None:
    case.events.append(
        CaseEvent(
            at=at or utcnow(), actor=actor, action=action, from_status=old, to_status=new, note=note
        )
    )


def case_for_call(session: Session, call_id: str) -> Case | None:
    return session.scalar(select(Case).where(Case.call_id == call_id))


def create_case_for_call(session: Session, call: CallInfo, draft: CaseDraft) -> Case:
    """Exactly one case per call: a second run returns the first case unchanged.

    Commits, so that a concurrent duplicate meets the unique call id and yields."""
    existing = case_for_call(session, call.call_id)
    if existing is not None:
        return existing
    category = _by_code(session, Category, draft.category_code or call.category_code, "category")
    district = _by_code(session, District, draft.district_code, "district")
    department = _by_code(
        session, Department, draft.department_code or call.department_code, "department"
    )
    urgency = draft.urgency or ("urgent" if category and category.urgent else "normal")
    if urgency not in ("normal", "urgent"):
        raise CaseError(f"urgency must be 'normal' or 'urgent', not {urgency!r}")
    now = utcnow()
    case = Case(
        number=next_case_number(session, now),
        call_id=call.call_id,
        caller_phone=call.caller_phone,
        caller_name=draft.caller_name,
        channel=call.channel,
        source_hotline=call.source_hotline,
        category=category,
        district=district,
        department=department,
        address=draft.address,
        description=draft.description,
        urgency=urgency,
        status="received",
        operator_seat=call.operator_seat,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    _record(case, call.operator_seat or "system", "create", None, "received", at=now)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        existing = case_for_call(session, call.call_id)
        if existing is None:
            raise
        return existing
    actor = call.operator_seat or "system"
    if draft.resolved_on_phone:
        transition(session, case, "resolved", actor, "直接办结 resolved on the phone")
    elif draft.dispatch:
        dispatch(session, case, actor)
    session.commit()
    return case


def urged_case_for_call(session: Session, call_id: str) -> Case | None:
    """The open case this call was attached to as an urging, if it was."""
    event = session.scalar(select(CaseEvent).where(CaseEvent.call_id == call_id))
    return event.case if event is not None else None


def urge_case(session: Session, call: CallInfo, draft: CaseDraft, actor: str) -> Case:
    """Attach a repeat caller's call to their open case as an urging (催办) instead of
    opening a new one. Idempotent per call. A case the hang-up already made for this
    call, still untouched, is closed as a duplicate pointing at the open one; one that
    was dispatched or resolved meanwhile stays, and the attachment is refused."""
    existing = urged_case_for_call(session, call.call_id)
    if existing is not None:
        return existing
    target = session.scalar(select(Case).where(Case.number == draft.attach_to))
    if target is None or target.status not in OPEN_STATUSES:
        raise InvalidForm("attach_to", draft.attach_to, ["the number of an open case"])
    if call.caller_phone and target.caller_phone and target.caller_phone != call.caller_phone:
        raise InvalidForm("attach_to", draft.attach_to, ["an open case of this caller"])
    duplicate = case_for_call(session, call.call_id)
    if duplicate is not None and duplicate.id != target.id:
        if duplicate.status != "received":
            raise InvalidForm(
                "attach_to", draft.attach_to, [f"this call's case {duplicate.number} is under way"]
            )
        # Not a lifecycle move (a received case is never simply closed): a duplicate
        # merged into the open case, said so on its own trail.
        now = utcnow()
        duplicate.status, duplicate.closed_at, duplicate.updated_at = "closed", now, now
        _record(duplicate, actor, "merged", "received", "closed", f"merged into {target.number}")
    now = utcnow()
    note = "催办 urged by call " + call.call_id
    if draft.description:
        note += ": " + draft.description
    target.events.append(
        CaseEvent(
            at=now,
            actor=actor,
            action="urged",
            from_status=target.status,
            to_status=target.status,
            note=note,
            call_id=call.call_id,
        )
    )
    target.updated_at = now
    try:
        session.commit()
    except IntegrityError:  # the same call attached by a racing request
        session.rollback()
        again = urged_case_for_call(session, call.call_id)
        if again is None:
            raise
        return again
    return target


class InvalidForm(CaseError):
    """The operator's form names something that does not exist; ``allowed`` says what
    does, so the console can show it inline."""

    def __init__(self, field: str, value: object, allowed: list[str]) -> None:
        super().__init__(f"unknown {field} {value!r}")
        self.field, self.value, self.allowed = field, value, allowed


class DispatchedAlready(InvalidForm):
    """A form tried to change the category or unit of a case already dispatched."""

    def __init__(self, field: str, value: object, case: Case) -> None:
        unit = case.department
        current = getattr(case, field.removesuffix("_code"))
        super().__init__(field, value, [getattr(current, "code", current)])
        self.unit_name = unit.name if unit is not None else ""
        self.args = (f"case {case.number} is dispatched; re-dispatch is a supervisor's",)


_FORM_CODES = (
    ("category_code", Category),
    ("district_code", District),
    ("department_code", Department),
)
# The free-text fields of the form and their lengths (the columns allow no more).
FORM_TEXT_LIMITS = {"description": 4000, "address": 500, "caller_name": 64}


def parse_form(session: Session, data: dict[str, object]) -> CaseDraft:
    """The operator's form as a CaseDraft, checked against the catalogue. Raises
    InvalidForm naming the field and what is allowed; unknown fields are refused too."""
    known = {f for f in CaseDraft.__dataclass_fields__} | {"seat"}
    for name in data:
        if name not in known:
            raise InvalidForm("field", name, sorted(known - {"seat"}))
    values: dict[str, object] = {}
    for name, limit in FORM_TEXT_LIMITS.items():
        value = data.get(name, "")
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidForm(name, value, [f"text of at most {limit} characters"])
        values[name] = value.strip()
    for name, model in _FORM_CODES:
        code = data.get(name)
        if code in (None, ""):
            values[name] = None
            continue
        if (
            not isinstance(code, str)
            or session.scalar(select(model.id).where(model.code == code)) is None
        ):
            allowed = list(session.scalars(select(model.code).order_by(model.code)))
            raise InvalidForm(name, code, allowed)
        values[name] = code
    attach_to = data.get("attach_to")
    if attach_to not in (None, ""):
        open_case = (
            session.scalar(
                select(Case.id).where(Case.number == attach_to, Case.status.in_(OPEN_STATUSES))
            )
            if isinstance(attach_to, str)
            else None
        )
        if open_case is None:
            raise InvalidForm("attach_to", attach_to, ["the number of an open case"])
        values["attach_to"] = attach_to
    else:
        values["attach_to"] = None
    urgency = data.get("urgency")
    if urgency not in (None, "", "normal", "urgent"):
        raise InvalidForm("urgency", urgency, ["normal", "urgent"])
    values["urgency"] = urgency or None
    for name in ("resolved_on_phone", "dispatch"):
        flag = data.get(name, name == "dispatch")
        if not isinstance(flag, bool):  # "no" is not False: only JSON true/false
            raise InvalidForm(name, flag, ["true", "false"])
        values[name] = flag
    return CaseDraft(**values)  # type: ignore[arg-type]


def apply_form(session: Session, case: Case, draft: CaseDraft, actor: str) -> Case:
    """Write the operator's form into a case that already exists (the form came after
    the case was made at hang-up). Idempotent: the same form again changes nothing.

    Once a case is dispatched its category and lead unit are the unit's business: a
    form may add to the description and address, but a different category or unit is
    refused (InvalidForm); moving the case is a supervisor's re-dispatch (改派)."""
    if case.dispatched_at is not None:
        for name, attr in (("category_code", "category"), ("department_code", "department")):
            code, current = getattr(draft, name), getattr(case, attr)
            if code and current is not None and current.code != code:
                raise DispatchedAlready(name, code, case)
        # Its urgency decided its clocks: the unit's deadlines do not follow a new one.
        if draft.urgency and draft.urgency != case.urgency:
            raise DispatchedAlready("urgency", draft.urgency, case)
    changed = []
    for name in ("description", "address", "caller_name"):
        value = getattr(draft, name)
        if value and getattr(case, name) != value:
            setattr(case, name, value)
            changed.append(name)
    for name, model, attr in (
        ("category_code", Category, "category"),
        ("district_code", District, "district"),
        ("department_code", Department, "department"),
    ):
        code = getattr(draft, name)
        current = getattr(case, attr)
        if code and (current is None or current.code != code):
            setattr(case, attr, _by_code(session, model, code, attr))
            changed.append(attr)
    urgency = draft.urgency or (
        "urgent" if case.category is not None and case.category.urgent else None
    )
    if urgency and case.urgency != urgency:
        case.urgency = urgency
        changed.append("urgency")
    if changed:
        case.updated_at = utcnow()
        _record(case, actor, "form", case.status, case.status, "updated: " + ", ".join(changed))
    if draft.resolved_on_phone and case.status == "received":
        transition(session, case, "resolved", actor, "直接办结 resolved on the phone")
    elif draft.dispatch and case.status == "received":
        dispatch(session, case, actor)
    session.commit()
    return case


def transition(session: Session, case: Case, to: str, actor: str, note: str = "") -> Case:
    """Move a case along its lifecycle; an illegal move raises IllegalTransition."""
    check_transition(case.status, to)
    now = utcnow()
    old = case.status
    _freeze_clocks(session, case, to, now)
    case.status = to
    case.updated_at = now
    if to == "dispatched":
        from cases.workdays import add_workdays

        case.dispatched_at = now
        case.respond_by = now + RESPONSE_LIMIT
        days = case.category.handling_days if case.category is not None else 13
        case.handle_by = add_workdays(now, days or 13)
        case.accepted_at = None
        case.accepted_by = None
        # A new dispatch, new limits: lateness so far is in the accountability
        # records of the unit that was late; the flags follow the new clocks.
        case.response_overdue = case.handling_overdue = False
    elif to == "accepted":
        case.accepted_at = now
    elif to == "resolved":
        case.resolved_at = now
    elif to == "closed":
        case.closed_at = now
    _record(case, actor, to, old, to, note, at=now)
    session.flush()
    return case


def _freeze_clocks(session: Session, case: Case, to: str, now: datetime) -> None:
    """A transition that comes after a deadline marks it missed at once, whatever the
    sweep has or has not noticed yet: overdue flags freeze at each transition."""
    from cases.clocks import HANDLING_RUNNING, RESPONSE_RUNNING, mark_overdue

    def aware(moment: datetime | None) -> datetime | None:
        return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment

    respond_by, handle_by = aware(case.respond_by), aware(case.handle_by)
    if case.status in RESPONSE_RUNNING and respond_by and now > respond_by:
        mark_overdue(session, case, "response", respond_by, now)
    if (
        case.status in HANDLING_RUNNING
        and to not in HANDLING_RUNNING
        and handle_by
        and now > handle_by
    ):
        mark_overdue(session, case, "handling", handle_by, now)


def responsible_department(session: Session, case: Case) -> Department:
    """Explicit choice, else the category's default, else the district government."""
    if case.department is not None:
        return case.department
    if case.category is not None and case.category.department is not None:
        return case.category.department
    if case.district is not None:
        dept = session.scalar(
            select(Department).where(
                Department.kind == "district", Department.district_id == case.district.id
            )
        )
        if dept is not None:
            return dept
    raise CaseError(
        f"case {case.number}: no department, category default or district to dispatch to"
    )


def dispatch(session: Session, case: Case, actor: str, department_code: str | None = None) -> Case:
    if department_code:
        case.department = _by_code(session, Department, department_code, "department")
    from cases.grid import route_to_grid

    if route_to_grid(session, case, actor):  # grid work goes to the grid of the address
        return case
    try:
        case.department = responsible_department(session, case)
    except CaseError:
        _record(
            case,
            actor,
            "needs_dispatch",
            case.status,
            case.status,
            "no responsible unit known; a dispatcher must choose",
        )
        session.flush()
        return case
    return transition(session, case, "dispatched", actor, f"to {case.department.code}")


# -- callbacks ----------------------------------------------------------------------------


def record_callback(
    session: Session, call_id: str, caller_phone: str, reason: str, source_hotline: str | None
) -> CallbackRequest:
    """Idempotent on the call id."""
    existing = session.scalar(select(CallbackRequest).where(CallbackRequest.call_id == call_id))
    if existing is not None:
        return existing
    request = CallbackRequest(
        call_id=call_id,
        caller_phone=caller_phone,
        reason=reason,
        requested_at=utcnow(),
        status="pending",
        source_hotline=source_hotline,
    )
    session.add(request)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = session.scalar(select(CallbackRequest).where(CallbackRequest.call_id == call_id))
        if existing is None:
            raise
        return existing
    return request
