"""What units and supervisors do with a dispatched case, each step in its audit trail.

A unit (department or district government) signs for a case (签收), reports being on
site, adds progress notes, resolves it with a reply to the citizen (答复), returns a
wrong dispatch (退单) or asks for more time (延期). Supervisors re-dispatch (改派) or
uphold a return, decide extensions, put a case under supervision (督办), and dispatch
with a lead unit (主办) and assisting units (协办). Callers commit, then re-arm the
case's clocks (cases.clocks.sync_case)."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Case, CaseAssist, Category, Department, District, ExtensionRequest
from cases.service import CaseError, _by_code, _record, transition, utcnow

MAX_EXTENSION_DAYS = 30


class NotYours(CaseError):
    """The case is not dispatched to this unit."""


def units_of(case: Case, session: Session) -> set[int]:
    """The lead unit and the assisting ones."""
    units = {case.department_id} if case.department_id else set()
    units |= set(
        session.scalars(select(CaseAssist.department_id).where(CaseAssist.case_id == case.id))
    )
    return units


def check_unit(
    session: Session, case: Case, department_id: int | None, *, lead: bool = False
) -> None:
    allowed = {case.department_id} if lead else units_of(case, session)
    if department_id is None or department_id not in allowed:
        raise NotYours(f"case {case.number} is not dispatched to your unit")


def suggest_units(
    session: Session, category_code: str | None, district_code: str | None
) -> list[Department]:
    """The catalogue's lead unit for the category, then the units that past cases of the
    same category and district went to, most often first."""
    suggestions: list[Department] = []
    category = (
        session.scalar(select(Category).where(Category.code == category_code))
        if category_code
        else None
    )
    if category is not None and category.department is not None:
        suggestions.append(category.department)
    if category is not None:
        query = select(Case.department_id).where(
            Case.category_id == category.id,
            Case.department_id.is_not(None),
            Case.dispatched_at.is_not(None),
        )
        if district_code:
            district = session.scalar(select(District).where(District.code == district_code))
            if district is not None:
                query = query.where(Case.district_id == district.id)
        counts = Counter(session.scalars(query.limit(2000)))
        for department_id, _ in counts.most_common(3):
            unit = session.get(Department, department_id)
            if unit is not None and unit not in suggestions:
                suggestions.append(unit)
    return suggestions


def dispatch_to(
    session: Session, case: Case, actor: str, lead: str, assisting: list[str] = ()
) -> Case:  # type: ignore[assignment]
    """Dispatch (or re-dispatch) to a lead unit with optional assisting units."""
    unit = _by_code(session, Department, lead, "department")
    helpers = [
        _by_code(session, Department, code, "department")
        for code in assisting
        if code and code != lead
    ]
    case.department = unit
    for row in session.scalars(select(CaseAssist).where(CaseAssist.case_id == case.id)):
        session.delete(row)
    for helper in helpers:
        session.add(CaseAssist(case_id=case.id, department_id=helper.id))
    note = f"to {unit.code}" + (
        f", assisted by {', '.join(h.code for h in helpers)}" if helpers else ""
    )
    transition(session, case, "dispatched", actor, note)
    return case


def sign_for(session: Session, case: Case, actor: str, department_id: int | None) -> Case:
    check_unit(session, case, department_id, lead=True)
    transition(session, case, "accepted", actor, "签收 signed for")
    case.accepted_by = actor
    return case


def on_site(session: Session, case: Case, actor: str, department_id: int | None) -> Case:
    """An urgent case's response: someone is there (stops the 30-minute clock)."""
    check_unit(session, case, department_id)
    _record(case, actor, "on_site", case.status, case.status, "到场 on site")
    case.on_site_at = case.updated_at = utcnow()
    return case


def add_note(
    session: Session, case: Case, actor: str, department_id: int | None, note: str
) -> Case:
    check_unit(session, case, department_id)
    if not note.strip():
        raise CaseError("a progress note needs some text")
    _record(case, actor, "note", case.status, case.status, note.strip()[:4000])
    case.updated_at = utcnow()
    return case


def resolve(
    session: Session, case: Case, actor: str, department_id: int | None, reply: str
) -> Case:
    check_unit(session, case, department_id, lead=True)
    if not reply.strip():
        raise CaseError("resolving needs a reply to the citizen (答复)")
    if case.status == "dispatched":  # resolved at once: it was signed for by doing it
        sign_for(session, case, actor, department_id)
    case.reply = reply.strip()[:4000]
    transition(session, case, "resolved", actor, "答复: " + case.reply)
    return case


def return_case(
    session: Session, case: Case, actor: str, department_id: int | None, reason: str
) -> Case:
    check_unit(session, case, department_id, lead=True)
    if not reason.strip():
        raise CaseError("returning a dispatch needs a reason")
    transition(session, case, "returned", actor, "退单: " + reason.strip()[:2000])
    return case


def uphold(session: Session, case: Case, actor: str, note: str = "") -> Case:
    """The return is refused: the case goes back to the same unit, clocks restarted."""
    if case.status != "returned" or case.department is None:
        raise CaseError(f"case {case.number} is not awaiting review of a return")
    return dispatch_to(session, case, actor, case.department.code, [])


def request_extension(
    session: Session, case: Case, actor: str, department_id: int | None, days: int, reason: str
) -> ExtensionRequest:
    check_unit(session, case, department_id, lead=True)
    if not 1 <= days <= MAX_EXTENSION_DAYS:
        raise CaseError(f"an extension is 1 to {MAX_EXTENSION_DAYS} working days")
    if not reason.strip():
        raise CaseError("an extension needs a reason")
    request = ExtensionRequest(
        case_id=case.id,
        days=days,
        reason=reason.strip()[:2000],
        requested_by=actor,
        requested_at=utcnow(),
    )
    session.add(request)
    _record(
        case,
        actor,
        "extension_asked",
        case.status,
        case.status,
        f"延期 {days} working days: {request.reason}",
    )
    return request


def decide_extension(
    session: Session, request: ExtensionRequest, actor: str, approve: bool
) -> ExtensionRequest:
    from cases.workdays import add_workdays

    if request.status != "pending":
        raise CaseError("this extension request was decided already")
    request.status = "approved" if approve else "refused"
    request.decided_by, request.decided_at = actor, utcnow()
    case = request.case
    if approve and case.handle_by is not None:
        case.handle_by = add_workdays(case.handle_by, request.days)
    _record(
        case,
        actor,
        "extension_" + request.status,
        case.status,
        case.status,
        f"{request.days} working days",
    )
    case.updated_at = utcnow()
    return request


def merge(session: Session, duplicate: Case, target: Case, actor: str) -> Case:
    """并单: a repeat request about the same matter joins the open case; it is closed as
    merged, and its caller follows the open case's progress (the lookup shows it)."""
    if duplicate.id == target.id or target.merged_into_id is not None:
        raise CaseError("merge into an open case that is not itself merged")
    if target.status not in (
        "received",
        "dispatched",
        "accepted",
        "in_progress",
        "returned",
        "reopened",
    ):
        raise CaseError(f"case {target.number} is not open")
    if duplicate.status in ("resolved", "closed"):
        raise CaseError(f"case {duplicate.number} is finished already")
    now = utcnow()
    old = duplicate.status
    duplicate.status, duplicate.closed_at, duplicate.updated_at = "closed", now, now
    duplicate.merged_into = target
    _record(duplicate, actor, "merged", old, "closed", f"并单: merged into {target.number}")
    _record(
        target,
        actor,
        "merged_in",
        target.status,
        target.status,
        f"并单: {duplicate.number} ({duplicate.caller_phone})",
    )
    target.updated_at = now
    return target


SURVEY_OUTCOMES = ("satisfied", "unsatisfied", "no_response", "unreachable")


def apply_return_visit(session: Session, case: Case, outcome: str, actor: str = "survey") -> Case:
    """The return visit's answer: satisfied closes the case; unsatisfied reopens it and
    sends it back to the same unit; no response or unreachable (after the last attempt)
    closes it as such, per policy. Recorded on the case for the 满意率."""
    if outcome not in SURVEY_OUTCOMES:
        raise CaseError(f"a return visit ends in one of {SURVEY_OUTCOMES}, not {outcome!r}")
    if case.status != "resolved":
        return case  # answered already, or reopened meanwhile: nothing to change
    case.satisfaction = outcome
    if outcome == "unsatisfied":
        transition(session, case, "reopened", actor, "回访不满意 the citizen is not satisfied")
        unit = case.department.code if case.department else None
        if unit:
            dispatch_to(session, case, actor, unit, [])
        return case
    notes = {
        "satisfied": "回访满意",
        "no_response": "回访无应答 no response",
        "unreachable": "回访未接通 unreachable",
    }
    transition(session, case, "closed", actor, notes[outcome])
    return case


def supervise(session: Session, case: Case, actor: str, note: str) -> Case:
    if not note.strip():
        raise CaseError("督办 needs a note for the unit")
    case.supervised_note = note.strip()[:2000]
    _record(case, actor, "supervised", case.status, case.status, "督办: " + case.supervised_note)
    case.updated_at = utcnow()
    return case
