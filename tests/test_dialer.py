"""The outbound dialer against a real redis-server and SQLite/PostgreSQL, with a
controlled clock. The originator records what the telephony was asked to do; results
come back through Dialer.finished, as the adapters deliver them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from calls.dialer import Dialer
from calls.dialing import DialerSettings
from cases.db import engine_for, session_factory
from cases.dispatch import resolve, sign_for
from cases.models import Case, OptOut, OutboundItem
from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch
from queueing.keys import QueueKeys

BJ = ZoneInfo("Asia/Shanghai")
KEYS = QueueKeys("dialtest")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class Telephony:
    """Records the calls it is asked to place (the provider boundary)."""

    def __init__(self) -> None:
        self.placed: list[tuple[str, str, str]] = []

    def originate(self, call_id: str, phone: str, kind: str) -> None:
        self.placed.append((call_id, phone, kind))


@pytest.fixture
def rig(db_url: str, redis):  # type: ignore[no-untyped-def]
    for key in redis.scan_iter(match="hotline:{q:dialtest}*"):
        redis.delete(key)
    sessions = session_factory(engine_for(db_url))
    clock = Clock(datetime(2026, 11, 30, 10, 0, tzinfo=BJ))
    telephony = Telephony()
    settings = DialerSettings(max_concurrent=2, calls_per_s=1000)
    return sessions, Dialer(redis, KEYS, sessions, telephony, settings, now=clock), clock, telephony


def resolved_case(sessions, phone: str = "+8613800138000") -> int:  # type: ignore[no-untyped-def]
    with sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo(f"call-{phone}-{datetime.now().timestamp()}", phone, "asterisk", "1001"),
            CaseDraft(description="路灯不亮", category_code="street-vending", dispatch=False),
        )
        dispatch(db, case, "1001")
        sign_for(db, case, "urban", case.department_id)
        resolve(db, case, "urban", case.department_id, "已修复")
        db.commit()
        return case.id


def plan_visit(sessions, dialer, case_id: int, due: datetime) -> int:  # type: ignore[no-untyped-def]
    with sessions() as db:
        case = db.get(Case, case_id)
        item = dialer.plan(
            db, f"visit:{case_id}", "return_visit", case.caller_phone, due, case_id=case_id
        )
        db.commit()
        dialer.index(item)
        return item.id


def test_satisfied_on_the_second_attempt_after_a_busy_line(rig) -> None:  # type: ignore[no-untyped-def]
    sessions, dialer, clock, telephony = rig
    case_id = resolved_case(sessions)
    plan_visit(sessions, dialer, case_id, clock.at)
    assert dialer.run_once() == 1 and telephony.placed[0][1:] == ("+8613800138000", "return_visit")
    assert dialer.run_once() == 0  # one live call per item
    dialer.finished(telephony.placed[0][0], "busy")
    assert dialer.run_once() == 0  # spaced: not before 30 minutes
    clock.at += timedelta(minutes=30)
    assert dialer.run_once() == 1
    dialer.finished(telephony.placed[1][0], "satisfied")
    with sessions() as db:
        case = db.get(Case, case_id)
        assert (case.status, case.satisfaction) == ("closed", "satisfied")
        item = db.scalar(select(OutboundItem))
        assert (item.status, item.attempts, item.last_result) == ("done", 2, "satisfied")
        from cases.models import CallRecord

        rows = db.execute(
            select(CallRecord.direction, CallRecord.outcome).order_by(CallRecord.queued_at)
        ).all()
        assert rows == [("outbound", "busy"), ("outbound", "satisfied")]  # one row per attempt


def test_unsatisfied_reopens_and_sends_the_case_back_to_its_unit(rig) -> None:  # type: ignore[no-untyped-def]
    sessions, dialer, clock, telephony = rig
    case_id = resolved_case(sessions)
    plan_visit(sessions, dialer, case_id, clock.at)
    dialer.run_once()
    dialer.finished(telephony.placed[0][0], "unsatisfied")
    with sessions() as db:
        case = db.get(Case, case_id)
        assert (case.status, case.department.code, case.satisfaction) == (
            "dispatched",
            "urban-management",
            "unsatisfied",
        )
        assert "reopened" in [e.action for e in case.events]


def test_three_unanswered_attempts_close_the_case_as_unreachable(rig) -> None:  # type: ignore[no-untyped-def]
    sessions, dialer, clock, telephony = rig
    case_id = resolved_case(sessions)
    plan_visit(sessions, dialer, case_id, clock.at)
    for result, wait in (("no-answer", 30), ("machine", 120), ("no-answer", 0)):
        assert dialer.run_once() == 1
        dialer.finished(telephony.placed[-1][0], result)
        clock.at += timedelta(minutes=wait)
    assert dialer.run_once() == 0 and len(telephony.placed) == 3
    with sessions() as db:
        assert db.get(Case, case_id).satisfaction == "unreachable"
        assert db.get(Case, case_id).status == "closed"
        assert db.scalar(select(OutboundItem.status)) == "gave_up"


def test_nobody_is_called_outside_calling_hours(rig) -> None:  # type: ignore[no-untyped-def]
    sessions, dialer, clock, telephony = rig
    clock.at = datetime(2026, 11, 30, 21, 5, tzinfo=BJ)
    plan_visit(sessions, dialer, resolved_case(sessions), clock.at)
    assert dialer.run_once() == 0 and telephony.placed == []
    clock.at = datetime(2026, 12, 1, 7, 59, tzinfo=BJ)
    assert dialer.run_once() == 0
    clock.at = datetime(2026, 12, 1, 8, 0, tzinfo=BJ)
    assert dialer.run_once() == 1


def test_the_opt_out_register_and_undiallable_numbers_are_honoured(rig) -> None:  # type: ignore[no-untyped-def]
    sessions, dialer, clock, telephony = rig
    opted = resolved_case(sessions, "+8613900000001")
    withheld = resolved_case(sessions, "anonymous")
    with sessions() as db:
        db.add(OptOut(phone="+8613900000001", added_at=clock.at, added_by="cli"))
        db.commit()
    plan_visit(sessions, dialer, opted, clock.at)
    plan_visit(sessions, dialer, withheld, clock.at)
    assert dialer.run_once() == 0 and telephony.placed == []
    with sessions() as db:
        statuses = dict(db.execute(select(OutboundItem.case_id, OutboundItem.status)).all())
        assert statuses == {opted: "opted-out", withheld: "unreachable"}
        assert db.get(Case, withheld).satisfaction == "unreachable"
        assert db.get(Case, opted).status == "resolved"  # not called, not closed for it


def test_pacing_and_one_live_call_per_number(rig) -> None:  # type: ignore[no-untyped-def]
    sessions, dialer, clock, telephony = rig
    same = [resolved_case(sessions, "+8613700000000") for _ in range(2)]
    others = [resolved_case(sessions, f"+861370000000{n}") for n in range(1, 4)]
    for case_id in same + others:
        plan_visit(sessions, dialer, case_id, clock.at)
    assert dialer.run_once() == 2  # max_concurrent
    live_numbers = [phone for _, phone, _ in telephony.placed]
    assert len(live_numbers) == len(set(live_numbers))
    dialer.finished(telephony.placed[0][0], "satisfied")
    assert dialer.run_once() == 1
    numbers = [phone for _, phone, _ in telephony.placed]
    assert len(numbers) == 3 and len(set(numbers)) == 3  # the second call to a number waits


def test_a_call_whose_result_never_comes_is_freed(rig) -> None:  # type: ignore[no-untyped-def]
    sessions, dialer, clock, telephony = rig
    plan_visit(sessions, dialer, resolved_case(sessions), clock.at)
    dialer.run_once()
    clock.at += timedelta(minutes=16)
    assert dialer.expire_stale() == 1
    with sessions() as db:
        item = db.scalar(select(OutboundItem))
        assert (item.status, item.last_result) == ("pending", "failed")


def test_the_work_list_is_planned_once_from_cases_requests_and_missed_calls(rig) -> None:  # type: ignore[no-untyped-def]
    from calls.dialer import plan_work
    from cases.models import CallbackRequest, CallRecord

    sessions, dialer, clock, telephony = rig
    case_id = resolved_case(sessions)
    now = datetime.now(UTC)
    with sessions() as db:
        db.add(
            CallbackRequest(
                call_id="c-asked",
                caller_phone="+8613600000001",
                reason="long_wait",
                requested_at=now,
            )
        )
        db.add(
            CallRecord(
                call_id="c-gave-up",
                caller="+8613600000002",
                queued_at=now,
                outcome="abandoned",
                wait_ms=95_000,
            )
        )
        db.add(
            CallRecord(
                call_id="c-short",
                caller="+8613600000003",
                queued_at=now,
                outcome="abandoned",
                wait_ms=3_000,
            )
        )
        db.add(
            CallRecord(
                call_id="c-closed", caller="+8613600000004", queued_at=now, outcome="turned_away"
            )
        )
        db.commit()
    with sessions() as db:
        assert plan_work(db, dialer, now) == 4
    with sessions() as db:
        assert plan_work(db, dialer, now) == 0  # once
        items = {i.source: i for i in db.scalars(select(OutboundItem))}
    assert set(items) == {
        f"visit:{case_id}",
        "callback:c-asked",
        "callback:c-gave-up",
        "callback:c-closed",
    }
    visit = items[f"visit:{case_id}"].next_at.replace(tzinfo=UTC)
    assert visit > now + timedelta(hours=23)  # the next day, within calling hours
    assert 8 <= visit.astimezone(BJ).hour < 21


def test_the_callback_bots_figures(rig) -> None:  # type: ignore[no-untyped-def]
    from cases.cdr import outbound_figures
    from cases.models import CallRecord

    sessions, dialer, clock, telephony = rig
    missed_at = (clock.at - timedelta(minutes=20)).astimezone(UTC)  # stored as UTC, as cdr does
    with sessions() as db:
        db.add(
            CallRecord(
                call_id="c-missed",
                caller="+8613600000009",
                queued_at=missed_at,
                outcome="abandoned",
                wait_ms=60_000,
            )
        )
        callback = dialer.plan(
            db, "callback:c-missed", "callback", "+8613600000009", clock.at, call_id="c-missed"
        )
        db.commit()
        dialer.index(callback)
    for phone in ("+8613800000001", "+8613800000002"):
        plan_visit(sessions, dialer, resolved_case(sessions, phone), clock.at)
    answers = {
        "+8613600000009": "connected",
        "+8613800000001": "satisfied",
        "+8613800000002": "unsatisfied",
    }
    done = 0
    while dialer.run_once() or done < len(telephony.placed):
        for call_id, phone, _ in telephony.placed[done:]:
            dialer.finished(call_id, answers[phone])
            dialer.released(call_id, phone)
            done += 1
    assert done == 3
    with sessions() as db:
        figures = outbound_figures(db, clock.at - timedelta(days=1))
    assert figures["callback_completion_rate"] == 1.0
    with sessions() as db:
        original = db.get(CallRecord, "c-missed")
        assert original.outcome == "abandoned" and original.called_back_at is not None
    assert figures["time_to_call_back_s"] == 20 * 60
    assert figures["return_visit_reach_rate"] == 1.0 and figures["satisfaction_rate"] == 0.5
