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
            select(CallRecord.direction, CallRecord.outcome, CallRecord.case_number).order_by(
                CallRecord.queued_at
            )
        ).all()
        # One row per attempt, each naming its case, so the case page lists every attempt.
        assert rows == [
            ("outbound", "busy", case.number),
            ("outbound", "satisfied", case.number),
        ]


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


class SlowTelephony(Telephony):
    """A carrier API that takes ``takes`` of the dialer's clock per request, and notes
    the dialer's clock at each call it is asked to place."""

    def __init__(self, clock: Clock, takes: timedelta) -> None:
        super().__init__()
        self.clock, self.takes, self.moments = clock, takes, list[datetime]()

    def originate(self, call_id: str, phone: str, kind: str) -> None:
        self.moments.append(self.clock())
        super().originate(call_id, phone, kind)
        self.clock.at += self.takes


def test_a_call_whose_dial_moment_falls_after_closing_is_not_dialled(rig, redis) -> None:  # type: ignore[no-untyped-def]
    from calls.dialing import within_calling_hours

    sessions, _, clock, _ = rig
    clock.at = datetime(2026, 11, 30, 20, 59, 30, tzinfo=BJ)
    telephony = SlowTelephony(clock, timedelta(seconds=20))
    settings = DialerSettings(max_concurrent=10, calls_per_s=1000)
    dialer = Dialer(redis, KEYS, sessions, telephony, settings, now=clock)
    cases = [resolved_case(sessions, f"+861360000000{n}") for n in range(3)]
    for case_id in cases:  # all due inside calling hours, all in one round
        plan_visit(sessions, dialer, case_id, clock.at)
    assert dialer.run_once() == 2  # 20:59:30 and 20:59:50; the third moment is 21:00:10
    assert all(within_calling_hours(m, settings) for m in telephony.moments)
    with sessions() as db:
        third = db.scalar(select(OutboundItem).where(OutboundItem.case_id == cases[2]))
        assert (third.status, third.attempts, third.live_call) == ("pending", 0, None)
        assert third.next_at.replace(tzinfo=UTC) == datetime(2026, 12, 1, 8, 0, tzinfo=BJ)
    assert redis.zscore(KEYS.dial_due, str(third.id)) == int(
        datetime(2026, 12, 1, 8, 0, tzinfo=BJ).timestamp() * 1000
    )
    assert redis.hlen(KEYS.dial_live) == 2  # the refused reservation was given back
    assert dialer.run_once() == 0 and len(telephony.placed) == 2


def test_one_second_before_closing_is_too_late_to_start_a_call(rig) -> None:  # type: ignore[no-untyped-def]
    sessions, dialer, clock, telephony = rig
    clock.at = datetime(2026, 11, 30, 20, 59, 59, 500000, tzinfo=BJ)
    plan_visit(sessions, dialer, resolved_case(sessions), clock.at)
    assert dialer.run_once() == 0 and telephony.placed == []


class PaceClock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_pacing_holds_across_dialers_sharing_one_redis(rig, redis) -> None:  # type: ignore[no-untyped-def]
    sessions, _, clock, _ = rig
    pace, telephony = PaceClock(), Telephony()
    settings = DialerSettings(max_concurrent=50, calls_per_s=3)
    one, two = (
        Dialer(redis, KEYS, sessions, telephony, settings, now=clock, pace_clock=pace)
        for _ in range(2)
    )
    for n in range(8):
        plan_visit(sessions, one, resolved_case(sessions, f"+86135000000{n:02d}"), clock.at)
    assert one.run_once() == 3
    assert two.run_once() == 0 and one.run_once() == 0  # the window is shared and full
    pace.t += 0.999
    assert two.run_once() == 0
    pace.t += 0.002
    assert two.run_once() == 3 and one.run_once() == 0
    assert len({phone for _, phone, _ in telephony.placed}) == 6
    with sessions() as db:
        statuses = sorted(db.scalars(select(OutboundItem.status)))
    assert statuses == ["dialing"] * 6 + ["pending"] * 2  # waiting, not lost


def test_a_call_counts_in_the_pace_window_from_when_it_was_sent(rig, redis) -> None:  # type: ignore[no-untyped-def]
    sessions, _, clock, _ = rig
    pace = PaceClock()

    class SlowApi(Telephony):
        def originate(self, call_id: str, phone: str, kind: str) -> None:
            super().originate(call_id, phone, kind)
            pace.t += 0.4  # the request takes 0.4 s to go out

    telephony = SlowApi()
    settings = DialerSettings(max_concurrent=50, calls_per_s=2)
    dialer = Dialer(redis, KEYS, sessions, telephony, settings, now=clock, pace_clock=pace)
    for n in range(3):
        plan_visit(sessions, dialer, resolved_case(sessions, f"+86134000000{n:02d}"), clock.at)
    assert dialer.run_once() == 2  # sent at 0.4 and 0.8
    pace.t += 0.3  # 1.1 s after the first reservation, 0.7 s after it was sent
    assert dialer.run_once() == 0
    pace.t += 0.35
    assert dialer.run_once() == 1


def test_an_unsatisfied_return_visit_arms_the_clocks_at_once(rig, redis) -> None:  # type: ignore[no-untyped-def]
    sessions, dialer, clock, telephony = rig
    case_id = resolved_case(sessions)
    plan_visit(sessions, dialer, case_id, clock.at)
    dialer.run_once()
    assert redis.zcard(KEYS.clocks) == 0
    dialer.finished(telephony.placed[0][0], "unsatisfied")
    armed = {m.decode() for m in redis.zrange(KEYS.clocks, 0, -1)}
    assert f"{case_id}:response_due" in armed and f"{case_id}:handling_due" in armed
    with sessions() as db:
        case = db.get(Case, case_id)
        respond_by = (
            case.respond_by.replace(tzinfo=UTC)
            if case.respond_by.tzinfo is None
            else case.respond_by
        )
    assert redis.zscore(KEYS.clocks, f"{case_id}:response_due") == int(
        respond_by.timestamp() * 1000
    )


def test_a_claim_left_by_a_stopped_dialer_goes_back_on_the_list(rig, redis) -> None:  # type: ignore[no-untyped-def]
    sessions, dialer, clock, telephony = rig
    item_id = plan_visit(sessions, dialer, resolved_case(sessions), clock.at)
    with sessions() as db:  # claimed in SQL, never reserved: the process died between
        item = db.get(OutboundItem, item_id)
        item.status, item.live_call, item.attempts = "dialing", f"out-{item_id}-1", 1
        db.commit()
    redis.zrem(KEYS.dial_due, str(item_id))
    with sessions() as db:
        assert dialer.reindex(db) == 1
    assert dialer.run_once() == 1 and telephony.placed[0][0] == f"out-{item_id}-1"


def _missed_call(sessions, call_id: str, phone: str, ended: datetime) -> None:  # type: ignore[no-untyped-def]
    from cases.models import CallRecord

    with sessions() as db:
        db.add(
            CallRecord(
                call_id=call_id,
                caller=phone,
                queued_at=ended - timedelta(minutes=2),
                ended_at=ended,
                outcome="abandoned",
                wait_ms=120_000,
            )
        )
        db.commit()


def test_planning_reads_from_its_cursor_and_rereads_everything_hourly(rig) -> None:  # type: ignore[no-untyped-def]
    from calls.dialer import plan_work
    from cases.models import DialCursor

    sessions, dialer, clock, telephony = rig
    now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    with sessions() as db:
        assert plan_work(db, dialer, now) == 0
        assert {c.source for c in db.scalars(select(DialCursor))} == {
            "visits",
            "requests",
            "missed",
            "full",
        }
    # Written late but within the overlap of the cursor: read on the next pass.
    _missed_call(sessions, "c-late", "+8613300000001", now - timedelta(minutes=5))
    # Written so late that it is older than the cursor's overlap: only the backstop.
    _missed_call(sessions, "c-later", "+8613300000002", now - timedelta(minutes=40))
    with sessions() as db:
        assert plan_work(db, dialer, now + timedelta(seconds=10)) == 1
    with sessions() as db:
        assert plan_work(db, dialer, now + timedelta(minutes=30)) == 0
    with sessions() as db:
        assert plan_work(db, dialer, now + timedelta(minutes=61)) == 1  # the hourly pass
        assert set(db.scalars(select(OutboundItem.source))) == {
            "callback:c-late",
            "callback:c-later",
        }
    with sessions() as db:
        assert plan_work(db, dialer, now + timedelta(minutes=62)) == 0
