"""What units and supervisors do with a dispatched case, each step in its audit trail.

A unit (department or district government) signs for a case (签收), reports being on
site, adds progress notes, resolves it with a reply to the citizen (答复), returns a
wrong dispatch (退单) or asks for more time (延期). Supervisors re-dispatch (改派) or
uphold a return, decide extensions, put a case under supervision (督办), and dispatch
with a lead unit (主办) and assisting units (协办). Callers commit, then re-arm the
case's clocks (cases.clocks.sync_case)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Case, CaseAssist, Category, Department, District, ExtensionRequest
from cases.phones import mask_for_screen
from cases.service import CaseError, _by_code, _record, transition, utcnow

MAX_EXTENSION_DAYS = 30
# The statuses in which a unit works on a case; anything else is not the unit's to touch.
UNIT_ACTIVE = ("dispatched", "accepted", "in_progress")


class CaseRefused(CaseError):
    """A refused action: a stable ``code`` for programs and tests, and words for the
    person in zh-CN and English (``words(lang)``); ``str()`` is the zh-CN words."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(zh)
        self.code, self.zh, self.en = code, zh, en

    def words(self, lang: str = "zh") -> str:
        return self.zh if lang == "zh" else self.en


class NotYours(CaseRefused):
    """The case is not dispatched to this unit."""

    def __init__(self, number: str) -> None:
        super().__init__(
            "not-your-unit",
            f"工单 {number} 未派给本单位",
            f"Case {number} is not dispatched to your unit",
        )


class NotLead(CaseRefused):
    """Only the lead unit (主办) may do this; an assisting unit (协办) may not."""

    def __init__(self, number: str) -> None:
        super().__init__(
            "not-lead-unit",
            f"只有主办单位可以办理此操作（工单 {number}）",
            f"Only the lead unit may do this (case {number})",
        )


# What a unit tried, for the words of a refusal: (zh, en).
UNIT_ACTIONS = {
    "sign": ("签收", "sign for"),
    "on_site": ("登记到场", "report on site"),
    "note": ("添加进展", "add a note"),
    "resolve": ("办结", "resolve"),
    "return": ("退单", "return"),
    "extend": ("申请延期", "ask for an extension"),
}


def check_active(case: Case, action: str) -> None:
    """A unit acts only on a case that is with it: a resolved or closed case is final
    for the department (a supervisor's reopen or re-dispatch, or the citizen's
    unsatisfied return visit, brings it back); a returned one awaits the supervisor."""
    if case.status in UNIT_ACTIVE:
        return
    zh, en = UNIT_ACTIONS[action]
    if case.status in ("resolved", "closed"):
        raise CaseRefused(
            "case-final",
            f"工单 {case.number} 已办结，不能再{zh}；如需重办请联系班长",
            f"Case {case.number} is resolved: you cannot {en} any more; "
            "ask a supervisor to reopen it",
        )
    if case.status == "returned":
        raise CaseRefused(
            "case-returned",
            f"工单 {case.number} 已退单，正等待班长审核，不能{zh}",
            f"Case {case.number} was returned and awaits a supervisor: you cannot {en}",
        )
    raise CaseRefused(
        "case-not-dispatched",
        f"工单 {case.number} 当前不在本单位办理中，不能{zh}",
        f"Case {case.number} is not with your unit now: you cannot {en}",
    )


def lock(session: Session, case: Case) -> None:
    """Serialise the actions on one case: a row lock on PostgreSQL (SQLite has a single
    writer), then the status as committed, so that two clerks cannot both pass a check
    (two pending extensions, a note after a resolve)."""
    status = session.scalar(select(Case.status).where(Case.id == case.id).with_for_update())
    if status != case.status:
        session.refresh(case)


def start_work(session: Session, case: Case, actor: str, why: str) -> None:
    """The first sign of work after signing for (a progress note, on site) moves the
    case to 处理中 (in_progress)."""
    if case.status == "accepted":
        transition(session, case, "in_progress", actor, why)


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
    if department_id is None or department_id not in units_of(case, session):
        raise NotYours(case.number)
    if lead and department_id != case.department_id:
        raise NotLead(case.number)


def suggest_units(
    session: Session, category_code: str | None, district_code: str | None
) -> list[Department]:
    """The catalogue's lead unit for the category (for a district's matter, the
    government of the case's district), then the units that past cases of the same
    category and district went to, most often first. Another district's government is
    never suggested: it would be asked to answer for a place that is not its own."""
    suggestions: list[Department] = []
    category = (
        session.scalar(select(Category).where(Category.code == category_code))
        if category_code
        else None
    )
    district = (
        session.scalar(select(District).where(District.code == district_code))
        if district_code
        else None
    )
    if category is not None and category.department is not None:
        suggestions.append(category.department)
    elif category is not None and district is not None:
        government = session.scalar(
            select(Department).where(
                Department.kind == "district", Department.district_id == district.id
            )
        )
        if government is not None:
            suggestions.append(government)
    if category is not None:
        query = select(Case.department_id).where(
            Case.category_id == category.id,
            Case.department_id.is_not(None),
            Case.dispatched_at.is_not(None),
        )
        if district is not None:
            query = query.where(Case.district_id == district.id)
        counts = Counter(session.scalars(query.limit(2000)))
        for department_id, _ in counts.most_common(5):
            unit = session.get(Department, department_id)
            if unit is None or unit in suggestions or len(suggestions) >= 4:
                continue
            if unit.kind == "district" and (district is None or unit.district_id != district.id):
                continue
            suggestions.append(unit)
    return suggestions


def dispatch_to(
    session: Session,
    case: Case,
    actor: str,
    lead: str,
    assisting: Sequence[str] = (),
    *,
    reason: str = "",
) -> Case:
    """Dispatch (or re-dispatch, 改派) to a lead unit with optional assisting units. A
    supervisor may re-dispatch a case its unit is working on: the deadlines that unit
    has already missed are charged to it first (its accountability records), and the
    new unit's clocks start afresh."""
    unit = _by_code(session, Department, lead, "department")
    if case.department_id is not None and case.status in ("dispatched", "accepted", "in_progress"):
        from cases.clocks import charge_missed_deadlines

        charge_missed_deadlines(session, case, utcnow())
    # The old unit's request for more days goes with it: the new unit's clocks are new.
    for ask in session.scalars(
        select(ExtensionRequest).where(
            ExtensionRequest.case_id == case.id, ExtensionRequest.status == "pending"
        )
    ):
        ask.status, ask.decided_by, ask.decided_at = "withdrawn", actor, utcnow()
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
    if reason.strip():  # why it moved, for the new unit and the trail
        _record(case, actor, "dispatch_reason", case.status, case.status, reason.strip()[:500])
    return case


def sign_for(session: Session, case: Case, actor: str, department_id: int | None) -> Case:
    check_unit(session, case, department_id, lead=True)
    lock(session, case)
    check_active(case, "sign")
    if case.status != "dispatched":
        raise CaseRefused(
            "signed-already",
            f"工单 {case.number} 已签收",
            f"Case {case.number} is signed for already",
        )
    transition(session, case, "accepted", actor, "签收 signed for")
    case.accepted_by = actor
    return case


def on_site(session: Session, case: Case, actor: str, department_id: int | None) -> Case:
    """An urgent case's response: someone is there (stops the 30-minute clock); after
    signing for, it also starts the handling (处理中)."""
    check_unit(session, case, department_id)
    lock(session, case)
    check_active(case, "on_site")
    if case.on_site_at is not None:
        raise CaseRefused(
            "on-site-already",
            f"工单 {case.number} 已登记到场",
            f"Case {case.number} is reported on site already",
        )
    _record(case, actor, "on_site", case.status, case.status, "到场 on site")
    case.on_site_at = case.updated_at = utcnow()
    start_work(session, case, actor, "到场")
    return case


def add_note(
    session: Session, case: Case, actor: str, department_id: int | None, note: str
) -> Case:
    check_unit(session, case, department_id)
    lock(session, case)
    check_active(case, "note")
    if not note.strip():
        raise CaseRefused("note-empty", "请填写办理进展", "A progress note needs some text")
    _record(case, actor, "note", case.status, case.status, note.strip()[:4000])
    case.updated_at = utcnow()
    start_work(session, case, actor, "办理进展")
    return case


def resolve(
    session: Session, case: Case, actor: str, department_id: int | None, reply: str
) -> Case:
    check_unit(session, case, department_id, lead=True)
    lock(session, case)
    check_active(case, "resolve")
    if not reply.strip():
        raise CaseRefused(
            "reply-empty",
            "办结须填写答复市民的内容",
            "Resolving needs a reply to the citizen",
        )
    if case.status == "dispatched":  # resolved at once: it was signed for by doing it
        sign_for(session, case, actor, department_id)
    case.reply = reply.strip()[:4000]
    transition(session, case, "resolved", actor, "答复: " + case.reply)
    return case


def return_case(
    session: Session, case: Case, actor: str, department_id: int | None, reason: str
) -> Case:
    check_unit(session, case, department_id, lead=True)
    lock(session, case)
    check_active(case, "return")
    if not reason.strip():
        raise CaseRefused("return-reason-empty", "退单须填写理由", "Returning needs a reason")
    transition(session, case, "returned", actor, "退单: " + reason.strip()[:2000])
    return case


def uphold(session: Session, case: Case, actor: str, note: str = "") -> Case:
    """The return is refused: the case goes back to the same unit, clocks restarted."""
    if case.status != "returned" or case.department is None:
        raise CaseRefused(
            "not-returned",
            f"工单 {case.number} 不在退单待审状态",
            f"Case {case.number} is not awaiting review of a return",
        )
    return dispatch_to(session, case, actor, case.department.code, [])


def pending_extension(session: Session, case: Case) -> ExtensionRequest | None:
    return session.scalar(
        select(ExtensionRequest)
        .where(ExtensionRequest.case_id == case.id, ExtensionRequest.status == "pending")
        .limit(1)
    )


def request_extension(
    session: Session, case: Case, actor: str, department_id: int | None, days: int, reason: str
) -> ExtensionRequest:
    check_unit(session, case, department_id, lead=True)
    lock(session, case)
    check_active(case, "extend")
    if not 1 <= days <= MAX_EXTENSION_DAYS:
        raise CaseRefused(
            "extension-days",
            f"延期天数须为 1 至 {MAX_EXTENSION_DAYS} 个工作日",
            f"An extension is 1 to {MAX_EXTENSION_DAYS} working days",
        )
    if not reason.strip():
        raise CaseRefused(
            "extension-reason-empty", "申请延期须填写理由", "An extension needs a reason"
        )
    if pending_extension(session, case) is not None:
        raise CaseRefused(
            "extension-pending",
            f"工单 {case.number} 已有一条延期申请等待班长审批",
            f"Case {case.number} already has an extension request awaiting a supervisor",
        )
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
    case.updated_at = utcnow()
    return request


def decide_extension(
    session: Session, request: ExtensionRequest, actor: str, approve: bool
) -> ExtensionRequest:
    from cases.workdays import add_workdays

    if request.status != "pending":
        raise CaseRefused(
            "extension-decided", "该延期申请已审批", "This extension request was decided already"
        )
    request.status = "approved" if approve else "refused"
    request.decided_by, request.decided_at = actor, utcnow()
    case = request.case
    if approve and case.handle_by is not None:
        # SQLite gives the stored UTC back without its zone: say so, or the working-day
        # arithmetic would take it for Beijing time and move the deadline by 8 hours.
        handle_by = case.handle_by
        if handle_by.tzinfo is None:
            handle_by = handle_by.replace(tzinfo=UTC)
        case.handle_by = add_workdays(handle_by, request.days)
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
        raise CaseRefused(
            "merge-target",
            "只能并入另一件未被并单的在办工单",
            "Merge into another open case that is not itself merged",
        )
    if target.status not in (
        "received",
        "dispatched",
        "accepted",
        "in_progress",
        "returned",
        "reopened",
    ):
        raise CaseRefused(
            "merge-target-closed",
            f"工单 {target.number} 已不在办理中",
            f"Case {target.number} is not open",
        )
    if duplicate.status in ("resolved", "closed"):
        raise CaseRefused(
            "merge-finished",
            f"工单 {duplicate.number} 已办结，不能并单",
            f"Case {duplicate.number} is finished already",
        )
    if duplicate.urgency == "urgent" and duplicate.dispatched_at is None:
        # Merged, it would close unseen by any unit: an urgent matter is dispatched first.
        raise CaseRefused(
            "merge-urgent",
            f"工单 {duplicate.number} 是紧急事项，尚未派单，不能并单",
            f"Case {duplicate.number} is urgent and not dispatched yet: it cannot be merged",
        )
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
        # The trail is the units' to read: the other citizen's number as screens show it.
        f"并单: {duplicate.number} ({mask_for_screen(duplicate.caller_phone)})",
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
        raise CaseRefused(
            "supervise-note-empty", "督办须填写给承办单位的说明", "督办 needs a note for the unit"
        )
    case.supervised_note = note.strip()[:2000]
    _record(case, actor, "supervised", case.status, case.status, "督办: " + case.supervised_note)
    case.updated_at = utcnow()
    return case
