"""The dispatch clocks with a controlled clock: the sweep is given the time, the cases
their dispatch time; against a real redis-server and SQLite/PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from calls import clocks
from cases.db import engine_for, session_factory
from cases.dispatch import NotYours, resolve, sign_for
from cases.models import Case, Department, OverdueRecord
from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch
from cases.workdays import add_workdays, is_workday
from queueing.keys import QueueKeys

BEIJING = ZoneInfo("Asia/Shanghai")
KEYS = QueueKeys("clocktest")


@pytest.fixture
def sessions(db_url: str):  # type: ignore[no-untyped-def]
    return session_factory(engine_for(db_url))


def dispatched_case(
    sessions, redis, category: str = "street-vending", at: datetime | None = None
) -> int:  # type: ignore[no-untyped-def]
    redis.delete(KEYS.clocks)
    with sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo(f"call-{category}-{at}", "+8613800138000", "asterisk", "1001"),
            CaseDraft(category_code=category, district_code="longhua", dispatch=False),
        )
        dispatch(db, case, "1001")
        if at is not None:  # the test's own clock: move the dispatch into its past or future
            shift = at - case.dispatched_at.replace(tzinfo=UTC)
            case.dispatched_at = at
            case.respond_by = case.respond_by.replace(tzinfo=UTC) + shift
            case.handle_by = add_workdays(at, case.category.handling_days)
        db.commit()
        clocks.sync_case(redis, KEYS, case)
        return case.id


def test_reminder_at_80_percent_and_overdue_at_the_limit(sessions, redis) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Haikou
    case_id = dispatched_case(sessions, redis, at=t0)
    assert clocks.sweep(sessions, redis, KEYS, t0 + timedelta(minutes=23)) == {
        "reminder": 0,
        "overdue": 0,
        "stale": 0,
    }
    assert (
        clocks.sweep(sessions, redis, KEYS, t0 + timedelta(minutes=24, seconds=1))["reminder"] == 1
    )
    fired = clocks.sweep(sessions, redis, KEYS, t0 + timedelta(minutes=30, seconds=1))
    assert fired["overdue"] == 1
    with sessions() as db:
        case = db.get(Case, case_id)
        assert case.response_overdue and not case.handling_overdue
        record = db.scalar(select(OverdueRecord).where(OverdueRecord.case_id == case_id))
        assert (record.kind, record.department.code, record.late_s) == (
            "response",
            "urban-management",
            1,
        )
        actions = [e.action for e in case.events]
        assert actions.count("reminder") == 1 and actions.count("overdue") == 1
    # Swept again (a crash before the timer left the set): nothing twice.
    with sessions() as db:
        case = db.get(Case, case_id)
        clocks.sync_case(redis, KEYS, case)
    assert clocks.sweep(sessions, redis, KEYS, t0 + timedelta(minutes=31))["overdue"] == 0


def test_signing_for_in_time_stops_the_response_clock_and_a_late_one_freezes_the_flag(
    sessions, redis
) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    in_time = dispatched_case(sessions, redis, at=now - timedelta(minutes=10))
    with sessions() as db:
        case = db.get(Case, in_time)
        unit = case.department_id
        with pytest.raises(NotYours):
            sign_for(db, case, "somebody", unit + 1)
        sign_for(db, case, "zhang", unit)
        db.commit()
        clocks.sync_case(redis, KEYS, case)
        assert {m.decode().split(":")[1] for m in redis.zrange(KEYS.clocks, 0, -1)} == {
            "handling_reminder",
            "handling_due",
        }
    assert clocks.sweep(sessions, redis, KEYS, now + timedelta(hours=1))["overdue"] == 0
    late = dispatched_case(sessions, redis, category="fallen-trees", at=now - timedelta(minutes=45))
    with sessions() as db:
        case = db.get(Case, late)
        resolve(db, case, "chen", case.department_id, "已清理倒伏树木")  # before the sweep noticed
        db.commit()
        assert case.status == "resolved" and case.response_overdue  # frozen at the transition
        record = db.scalar(select(OverdueRecord).where(OverdueRecord.case_id == late))
        assert record.kind == "response" and record.late_s >= 15 * 60 - 5


def test_working_days_skip_the_national_day_holiday_and_count_its_makeup_saturday() -> None:
    # 2026: 1-7 October off; Sunday 20 September and Saturday 10 October are workdays.
    assert not is_workday(datetime(2026, 10, 5).date())
    assert is_workday(datetime(2026, 10, 10).date()) and is_workday(datetime(2026, 9, 20).date())
    start = datetime(2026, 9, 30, 10, 0, tzinfo=BEIJING)
    assert add_workdays(start, 3) == datetime(2026, 10, 10, 10, 0, tzinfo=BEIJING)
    assert add_workdays(start, 1) == datetime(2026, 10, 8, 10, 0, tzinfo=BEIJING)
    # A year without a published calendar still counts: Monday to Friday.
    assert add_workdays(datetime(2027, 1, 8, 9, 0, tzinfo=BEIJING), 1) == datetime(
        2027, 1, 11, 9, 0, tzinfo=BEIJING
    )


def test_a_consultation_has_three_working_days_and_a_complaint_thirteen(sessions, redis) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)
    consultation = dispatched_case(sessions, redis, category="school-admission", at=t0)
    with sessions() as db:
        assert (
            db.get(Case, consultation).handle_by.astimezone(BEIJING).date().isoformat()
            == "2026-10-10"
        )
    complaint = dispatched_case(sessions, redis, category="street-vending", at=t0)
    with sessions() as db:
        assert (
            db.get(Case, complaint).handle_by.astimezone(BEIJING).date().isoformat() == "2026-10-23"
        )


def test_timers_survive_a_redis_restart_and_a_lost_redis_is_rebuilt_from_sql(
    sessions, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from redis import Redis

    from hotline.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis", durable=True).start()
    try:
        redis = Redis.from_url(server.url)
        t0 = datetime.now(UTC) - timedelta(minutes=31)
        case_id = dispatched_case(sessions, redis, at=t0)
        server.stop()
        server = RedisServer(tmp_path / "redis", durable=True).start()  # from its AOF
        redis = Redis.from_url(server.url)
        assert redis.zcard(KEYS.clocks) == 4
        redis.flushall()  # a Redis that lost everything
        with sessions() as db:
            assert clocks.reconcile(db, redis, KEYS, None)[1] >= 1
        fired = clocks.sweep(sessions, redis, KEYS)
        assert fired["reminder"] >= 1 and fired["overdue"] >= 1
        with sessions() as db:
            assert db.get(Case, case_id).response_overdue
    finally:
        server.stop()


def test_every_unit_is_seeded_and_units_see_only_their_cases(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        units = db.scalars(select(Department)).all()
    assert len([u for u in units if u.kind == "department"]) >= 40
    assert len([u for u in units if u.kind == "district"]) == 4


def test_being_on_site_is_an_urgent_cases_response(sessions, redis) -> None:  # type: ignore[no-untyped-def]
    from cases.dispatch import on_site

    now = datetime.now(UTC)
    case_id = dispatched_case(
        sessions, redis, category="fallen-trees", at=now - timedelta(minutes=20)
    )
    with sessions() as db:
        case = db.get(Case, case_id)
        assert case.urgency == "urgent"
        on_site(db, case, "crew-7", case.department_id)
        db.commit()
        clocks.sync_case(redis, KEYS, case)
    timers = {m.decode().split(":")[1] for m in redis.zrange(KEYS.clocks, 0, -1)}
    assert timers == {"handling_reminder", "handling_due"}
    assert clocks.sweep(sessions, redis, KEYS, now + timedelta(minutes=15))["overdue"] == 0
    with sessions() as db:
        assert not db.get(Case, case_id).response_overdue


def test_reconciliation_runs_in_batches_by_id(sessions, redis) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    first = dispatched_case(sessions, redis, at=now)
    second = dispatched_case(sessions, redis, category="fallen-trees", at=now)
    redis.delete(KEYS.clocks)
    with sessions() as db:
        assert clocks.reconcile(db, redis, KEYS, None, after_id=0, limit=1) == (first, 1)
        assert clocks.reconcile(db, redis, KEYS, None, after_id=first, limit=1) == (second, 1)
        assert clocks.reconcile(db, redis, KEYS, None, after_id=second, limit=1) == (second, 0)
    assert redis.zcard(KEYS.clocks) == 8  # four timers each, re-armed


def test_a_case_moved_from_a_late_unit_charges_that_unit_and_starts_afresh(sessions, redis) -> None:  # type: ignore[no-untyped-def]
    """改派 of a case its unit never signed for: the unit that was late keeps the
    record, even before the sweep noticed; the new unit's clock starts from zero and is
    charged only for its own lateness."""
    from cases.dispatch import dispatch_to

    t0 = datetime.now(UTC) - timedelta(minutes=45)  # urban management never signed
    case_id = dispatched_case(sessions, redis, at=t0)
    with sessions() as db:
        case = db.get(Case, case_id)
        dispatch_to(db, case, "li", "district-longhua")
        db.commit()
        records = db.scalars(select(OverdueRecord).where(OverdueRecord.case_id == case_id)).all()
        assert [(r.kind, r.department.code) for r in records] == [
            ("response", "urban-management")
        ]
        assert not case.response_overdue and case.department.code == "district-longhua"
        respond_by = case.respond_by.replace(tzinfo=UTC)
        assert respond_by > datetime.now(UTC) + timedelta(minutes=29)
        clocks.sync_case(redis, KEYS, case)
    # The district government is late too: a record of its own.
    fired = clocks.sweep(sessions, redis, KEYS, respond_by + timedelta(seconds=1))
    assert fired["overdue"] == 1
    with sessions() as db:
        units = sorted(
            r.department.code
            for r in db.scalars(select(OverdueRecord).where(OverdueRecord.case_id == case_id))
        )
        assert units == ["district-longhua", "urban-management"]
