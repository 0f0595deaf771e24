"""The units' rankings (部门考核排名), read from the case trail and the accountability
records: each fact is charged to the unit it belongs to, never to a case's current unit.

A dispatch (a ``dispatched`` event, first dispatch or 改派) opens a unit's hold on the
case; the hold ends at the next dispatch, or earlier when the unit returns the case
(退单), sends it back, or it is merged. Per unit and period ``[start, end)``:

- received: dispatches to the unit in the period (a case re-dispatched from A to B
  counts once for A and once for B);
- signed in time: of those dispatches whose response deadline has passed while the
  unit held the case, or that the unit signed for (or reached on site), the share
  answered by the deadline. A case still inside its limit counts nowhere yet;
- resolved in time: the same rule for the handling limit and the unit's resolution;
- returned: returns (退单, and a dispatch sent back) in the period, charged to the unit
  that returned the case;
- overdue: accountability records whose deadline fell in the period, charged to the
  unit (and the person) they name;
- 满意率: satisfied of the answered return visits of the cases dispatched in the period,
  by the unit that resolved them (the case's unit: an unsatisfied citizen's case goes
  back to it).

Deadlines: the response limit is fixed (``RESPONSE_LIMIT`` after the dispatch); the
current dispatch's deadlines are the case's columns. An earlier dispatch's handling
deadline is not kept, so an earlier hold was late on handling when an accountability
record was written during it (a late transition writes one at once).

SQL only: no Redis, no queue (cases/ is the system of record).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select
from sqlalchemy.orm import Session

from cases.models import Case, CaseEvent, Department, OverdueRecord
from cases.service import RESPONSE_LIMIT, utcnow

COLUMNS = (
    "unit",
    "code",
    "received",
    "signed_in_time",
    "resolved_in_time",
    "returned",
    "overdue",
    "satisfaction",
)
# Events that end a unit's hold on the case without resolving it.
RELEASES = ("returned", "received", "closed")
FOLLOWING = ("dispatched", "accepted", "resolved", *RELEASES)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _unit_of_dispatch() -> ColumnElement[bool]:
    """The unit a dispatch event went to: its note reads ``to <code>`` or ``to <code>,
    assisted by ...`` (cases.service.dispatch, cases.dispatch.dispatch_to)."""
    exact = literal("to ") + Department.code
    return or_(
        CaseEvent.note == exact,
        func.substr(CaseEvent.note, 1, func.length(Department.code) + 4) == exact + ",",
    )


@dataclass
class _Hold:
    """One dispatch of a case to a unit, and what became of it."""

    case_id: int
    event_id: int
    unit: int
    start: datetime
    until: datetime | None = None  # the next dispatch
    responded: datetime | None = None
    resolved: datetime | None = None
    released: datetime | None = None  # returned, sent back, merged
    respond_by: datetime | None = None
    handle_by: datetime | None = None  # known for the case's current dispatch only


def _holds(session: Session, lo: datetime, hi: datetime) -> list[_Hold]:
    dispatched = select(CaseEvent.case_id).where(
        CaseEvent.action == "dispatched", CaseEvent.at >= lo, CaseEvent.at < hi
    )
    rows = session.execute(
        select(
            CaseEvent.case_id,
            CaseEvent.id,
            CaseEvent.at,
            CaseEvent.action,
            CaseEvent.to_status,
            Department.id,
        )
        .outerjoin(Department, and_(CaseEvent.action == "dispatched", _unit_of_dispatch()))
        .where(
            CaseEvent.case_id.in_(dispatched),
            # Transitions only (their action is the new status): a reminder or a 督办
            # note written while a case is dispatched or returned is not one.
            CaseEvent.action.in_((*FOLLOWING, "on_site")),
        )
        .order_by(CaseEvent.case_id, CaseEvent.id)
    ).all()
    deadlines = {
        case_id: (_aware(respond_by), _aware(handle_by))
        for case_id, respond_by, handle_by in session.execute(
            select(Case.id, Case.respond_by, Case.handle_by).where(Case.id.in_(dispatched))
        )
    }
    holds: list[_Hold] = []
    current: _Hold | None = None
    last_of_case: dict[int, _Hold] = {}
    for case_id, event_id, raw_at, action, _to_status, unit in rows:
        to_status = action  # a transition's action is the status it moved to
        at = raw_at if raw_at.tzinfo else raw_at.replace(tzinfo=UTC)
        if current is not None and current.case_id != case_id:
            current = None
        if to_status == "dispatched":
            if current is not None:
                current.until = at
            current = None
            if unit is None:
                continue  # a dispatch whose unit is unknown: nobody to charge
            current = _Hold(case_id, event_id, unit, at, respond_by=at + RESPONSE_LIMIT)
            holds.append(current)
            last_of_case[case_id] = current
            continue
        if current is None or current.released or current.resolved:
            continue
        if to_status == "accepted" or action == "on_site":
            current.responded = current.responded or at
        elif to_status == "resolved":
            current.responded = current.responded or at
            current.resolved = at
        elif to_status in RELEASES:
            current.released = at
    for case_id, hold in last_of_case.items():
        if hold.until is None:  # the case's current dispatch: its columns are the record
            respond_by, handle_by = deadlines.get(case_id, (None, None))
            hold.respond_by = respond_by or hold.respond_by
            hold.handle_by = handle_by
    return [h for h in holds if lo <= h.start < hi]


def _late(
    hold: _Hold,
    done: datetime | None,
    due: datetime | None,
    records: Iterable[datetime],
    now: datetime,
) -> bool:
    """Was the limit missed while the unit held the case: by the times, or by an
    accountability record written during the hold."""
    if any(hold.start <= at and (hold.until is None or at <= hold.until) for at in records):
        return True
    if due is None:
        return False
    end = done or hold.released or hold.until or now
    return end > due


def rankings(
    session: Session, start: datetime, end: datetime, now: datetime | None = None
) -> list[dict[str, Any]]:
    """One row per unit with anything in the period, best resolved-in-time first. Rates
    are shares in [0, 1], None when no case has reached its deadline yet."""
    lo, hi = start.astimezone(UTC), end.astimezone(UTC)
    now = now or utcnow()
    blank = {"received": 0, "signed": 0, "responses": 0, "resolved": 0, "handlings": 0}
    tally: dict[int, dict[str, int]] = defaultdict(lambda: dict(blank))

    holds = _holds(session, lo, hi)
    noticed: dict[tuple[int, str], list[datetime]] = defaultdict(list)
    if holds:
        for case_id, kind, at in session.execute(
            select(OverdueRecord.case_id, OverdueRecord.kind, OverdueRecord.noticed_at).where(
                OverdueRecord.case_id.in_({h.case_id for h in holds})
            )
        ):
            noticed[(case_id, kind)].append(_aware(at))  # type: ignore[arg-type]
    for h in holds:
        t = tally[h.unit]
        t["received"] += 1
        late = _late(h, h.responded, h.respond_by, noticed[(h.case_id, "response")], now)
        if h.responded or late:
            t["responses"] += 1
            t["signed"] += bool(h.responded and not late)
        late = _late(h, h.resolved, h.handle_by, noticed[(h.case_id, "handling")], now)
        if h.resolved or late:
            t["handlings"] += 1
            t["resolved"] += bool(h.resolved and not late)

    returned = returns(session, lo, hi)
    overdue = dict(
        session.execute(
            select(OverdueRecord.department_id, func.count())
            .where(OverdueRecord.due_at >= lo, OverdueRecord.due_at < hi)
            .group_by(OverdueRecord.department_id)
        ).all()
    )
    answered = session.execute(
        select(Case.department_id, Case.satisfaction, func.count())
        .where(
            Case.dispatched_at >= lo,
            Case.dispatched_at < hi,
            Case.department_id.is_not(None),
            Case.satisfaction.in_(("satisfied", "unsatisfied")),
        )
        .group_by(Case.department_id, Case.satisfaction)
    ).all()
    visits: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # satisfied, answered
    for unit_id, answer, n in answered:
        if unit_id is not None:
            visits[unit_id][0] += n if answer == "satisfied" else 0
            visits[unit_id][1] += n

    ids = set(tally) | set(returned) | {u for u in overdue if u is not None} | set(visits)
    units = {d.id: d for d in session.scalars(select(Department).where(Department.id.in_(ids)))}
    out: list[dict[str, Any]] = []
    for unit in ids:
        t = tally[unit]
        happy, asked = visits.get(unit, (0, 0))
        out.append(
            {
                "unit": units[unit].name if unit in units else str(unit),
                "code": units[unit].code if unit in units else "",
                "received": t["received"],
                "signed_in_time": _share(t["signed"], t["responses"]),
                "resolved_in_time": _share(t["resolved"], t["handlings"]),
                "returned": returned.get(unit, 0),
                "overdue": overdue.get(unit, 0),
                "satisfaction": _share(happy, asked),
                # the denominators, for a reader who wants to know "of how many"
                "responses_due": t["responses"],
                "handlings_due": t["handlings"],
                # and the numerators, so the reports add units up exactly
                "signed_n": t["signed"],
                "resolved_n": t["resolved"],
                "satisfied_n": happy,
                "visits_n": asked,
            }
        )
    out.sort(key=lambda r: (-(r["resolved_in_time"] or 0), -r["received"], r["code"]))
    return out


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def returns(session: Session, lo: datetime, hi: datetime) -> dict[int, int]:
    """Returns in ``[lo, hi)`` by the unit that returned the case: the unit of the
    dispatch it was returned from."""
    back = or_(
        CaseEvent.action == "returned",
        and_(CaseEvent.action == "received", CaseEvent.from_status == "dispatched"),
    )
    events = session.execute(
        select(CaseEvent.case_id, CaseEvent.id).where(back, CaseEvent.at >= lo, CaseEvent.at < hi)
    ).all()
    if not events:
        return {}
    dispatches: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for case_id, event_id, unit in session.execute(
        select(CaseEvent.case_id, CaseEvent.id, Department.id)
        .join(Department, _unit_of_dispatch())
        .where(
            CaseEvent.action == "dispatched",
            CaseEvent.case_id.in_({case_id for case_id, _ in events}),
        )
        .order_by(CaseEvent.id)
    ):
        dispatches[case_id].append((event_id, unit))
    counts: dict[int, int] = defaultdict(int)
    for case_id, event_id in events:
        before = [unit for dispatch_id, unit in dispatches[case_id] if dispatch_id < event_id]
        if before:
            counts[before[-1]] += 1
    return dict(counts)


def overdue_people(session: Session, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The accountability records with a deadline in the period, by unit and person
    (the person who had signed for the case; empty when nobody had), most first."""
    lo, hi = start.astimezone(UTC), end.astimezone(UTC)
    rows = session.execute(
        select(Department.name, Department.code, OverdueRecord.person, func.count())
        .join(Department, Department.id == OverdueRecord.department_id)
        .where(OverdueRecord.due_at >= lo, OverdueRecord.due_at < hi)
        .group_by(Department.name, Department.code, OverdueRecord.person)
    ).all()
    out: list[dict[str, Any]] = [
        {"unit": n, "code": c, "person": p, "overdue": k} for n, c, p, k in rows
    ]
    out.sort(key=lambda r: (-r["overdue"], r["code"], r["person"]))
    return out
