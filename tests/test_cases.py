"""Case records on SQLite and PostgreSQL: migrations, lifecycle, idempotent creation."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, inspect, select

from cases.db import engine_for, session_factory, upgrade
from cases.lifecycle import IllegalTransition, check_transition
from cases.models import Case, CaseEvent, Category, Department, District
from cases.seed import seed
from cases.service import (
    HOTLINE_TZ,
    CallInfo,
    CaseDraft,
    CaseError,
    caller_profile,
    create_case_for_call,
    hotline_info,
    record_callback,
    transition,
    utcnow,
)


def test_migrations_upgrade_an_empty_database(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    tables = set(inspect(engine_for(empty_db_url)).get_table_names())
    assert {
        "case_record",
        "case_event",
        "category",
        "department",
        "district",
        "citizen_register",
        "legacy_hotline",
        "callback_request",
    } <= tables
    upgrade(empty_db_url)  # a second run is a no-op


def test_seed_has_haikou_districts_and_a_real_catalogue(session) -> None:  # type: ignore[no-untyped-def]
    names = set(session.scalars(select(District.name)))
    assert names == {"秀英区", "龙华区", "琼山区", "美兰区"}
    assert session.scalar(select(func.count()).select_from(Department)) >= 30 + 4
    assert session.scalar(select(func.count()).select_from(Category)) >= 60
    assert seed(session) == {"districts": 0, "departments": 0, "categories": 0, "hotlines": 0}


def call(call_id: str = "CA1", **kw) -> CallInfo:  # type: ignore[no-untyped-def]
    base = {
        "call_id": call_id,
        "caller_phone": "13800000001",
        "channel": "sim",
        "operator_seat": "1001",
    }
    base.update(kw)
    return CallInfo(**base)


def test_a_case_is_numbered_per_day_and_dispatched_with_a_30_minute_deadline(session) -> None:  # type: ignore[no-untyped-def]
    first = create_case_for_call(session, call("CA1"), CaseDraft(category_code="power-outage"))
    second = create_case_for_call(session, call("CA2"), CaseDraft(category_code="gas-leak"))
    day = utcnow().astimezone(HOTLINE_TZ).strftime("%Y%m%d")  # the Beijing day
    assert first.number == f"12345-{day}-000001" and second.number == f"12345-{day}-000002"
    assert first.status == "dispatched" and first.department.code == "power-supply"
    assert first.urgency == "urgent"  # the category says so
    assert first.respond_by - first.dispatched_at == timedelta(minutes=30)
    actions = [e.action for e in first.events]
    assert actions == ["create", "dispatched"]


def test_creating_the_case_for_a_call_twice_gives_one_case(session, db_url) -> None:  # type: ignore[no-untyped-def]
    a = create_case_for_call(session, call("CA9"), CaseDraft(description="路灯不亮"))
    b = create_case_for_call(session, call("CA9"), CaseDraft(description="different"))
    assert a.id == b.id and b.description == "路灯不亮"
    # And from two sessions racing each other.
    factory = session_factory(engine_for(db_url))

    def create(_: int) -> int:
        with factory() as s:
            return create_case_for_call(s, call("CA10"), CaseDraft()).id

    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(create, range(4)))
    assert len(ids) == 1
    count = session.scalar(select(func.count()).select_from(Case).where(Case.call_id == "CA10"))
    assert count == 1


def test_district_category_goes_to_the_district_government(session) -> None:  # type: ignore[no-untyped-def]
    case = create_case_for_call(
        session, call("CA3"), CaseDraft(category_code="street-lights", district_code="meilan")
    )
    assert case.department.code == "district-meilan" and case.status == "dispatched"


def test_no_known_unit_leaves_the_case_for_a_dispatcher(session) -> None:  # type: ignore[no-untyped-def]
    case = create_case_for_call(session, call("CA4"), CaseDraft(category_code="street-lights"))
    assert case.status == "received" and case.events[-1].action == "needs_dispatch"


def test_resolved_on_the_phone(session) -> None:  # type: ignore[no-untyped-def]
    case = create_case_for_call(session, call("CA5"), CaseDraft(resolved_on_phone=True))
    assert case.status == "resolved" and case.resolved_at is not None


def test_unknown_codes_are_clear_errors_and_write_nothing(session) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CaseError, match="unknown category 'nope'"):
        create_case_for_call(session, call("CA6"), CaseDraft(category_code="nope"))
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Case)) == 0


def test_full_lifecycle_with_reopen_and_audit_trail(session) -> None:  # type: ignore[no-untyped-def]
    case = create_case_for_call(session, call("CA7"), CaseDraft(category_code="water-outage"))
    for status in (
        "accepted",
        "in_progress",
        "resolved",
        "reopened",
        "dispatched",
        "accepted",
        "resolved",
        "closed",
    ):
        transition(session, case, status, "tester")
    session.commit()
    trail = session.scalars(
        select(CaseEvent.to_status).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
    ).all()
    assert trail[-3:] == ["accepted", "resolved", "closed"] and "reopened" in trail


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        ("received", "closed"),
        ("closed", "reopened"),
        ("dispatched", "resolved"),
        ("reopened", "closed"),
        ("in_progress", "accepted"),
        ("received", "bogus"),
    ],
)
def test_illegal_transitions_are_refused_clearly(current: str, wanted: str) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot become '{wanted}'"):
        check_transition(current, wanted)


def test_caller_profile_finds_register_and_recent_open_case(session) -> None:  # type: ignore[no-untyped-def]
    from cases.models import CitizenRegister

    session.add(CitizenRegister(phone="13900000002", name="王奶奶", added_at=utcnow()))
    session.commit()
    assert caller_profile(session, "13900000002").vulnerable
    assert not caller_profile(session, "13900000003").vulnerable
    create_case_for_call(
        session, call("CA8", caller_phone="13900000003"), CaseDraft(description="路灯不亮")
    )
    profile = caller_profile(session, "13900000003")
    assert profile.open_case_number and profile.open_case_seat == "1001"
    later = utcnow() + timedelta(days=31)
    assert caller_profile(session, "13900000003", now=later).open_case_number is None


def test_a_blank_case_is_not_the_callers_open_case(session) -> None:  # type: ignore[no-untyped-def]
    """A call answered with no form leaves a received case with nothing in it: the next
    call hears no status of it and does not wait for that operator."""
    phone = "13900000005"
    real = create_case_for_call(
        session,
        call("CA20", caller_phone=phone, operator_seat="1003"),
        CaseDraft(description="楼道漏水", dispatch=False),
    )
    session.commit()
    blank = create_case_for_call(
        session,
        call("CA21", caller_phone=phone, operator_seat="1004"),
        CaseDraft(description="  ", dispatch=False),
    )
    session.commit()
    assert blank.status == "received" and blank.created_at >= real.created_at
    profile = caller_profile(session, phone)
    assert (profile.open_case_number, profile.open_case_seat) == (real.number, "1003")
    # Only blanks: no open case at all.
    create_case_for_call(session, call("CA22", caller_phone="13900000006"), CaseDraft())
    session.commit()
    assert caller_profile(session, "13900000006").open_case_number is None
    # Anything written into it (a category, a description, a dispatch) makes it real.
    categorised = create_case_for_call(
        session,
        call("CA23", caller_phone="13900000007"),
        CaseDraft(category_code="power-outage", dispatch=False),
    )
    session.commit()
    assert caller_profile(session, "13900000007").open_case_number == categorised.number


def test_merged_hotline_lookup(session) -> None:  # type: ignore[no-untyped-def]
    info = hotline_info(session, "95598")
    assert info and info.category_code == "power-outage" and info.department_code == "power-supply"
    assert hotline_info(session, "00000") is None


def test_callback_request_is_idempotent(session) -> None:  # type: ignore[no-untyped-def]
    a = record_callback(session, "CA11", "13800000001", "long_wait", None)
    b = record_callback(session, "CA11", "13800000001", "long_wait", None)
    assert a.id == b.id


def test_case_numbers_follow_the_beijing_day(session) -> None:  # type: ignore[no-untyped-def]
    """UTC changes date at 08:00 Beijing time; the hotline's day does not."""
    from datetime import UTC, datetime

    from cases.service import next_case_number

    before = next_case_number(session, datetime(2026, 11, 27, 23, 59, tzinfo=UTC))  # 07:59
    after = next_case_number(session, datetime(2026, 11, 28, 0, 1, tzinfo=UTC))  # 08:01
    assert before.startswith("12345-20261128-") and after.startswith("12345-20261128-")
    assert int(after.rsplit("-", 1)[1]) == int(before.rsplit("-", 1)[1]) + 1
    late = next_case_number(session, datetime(2026, 11, 28, 16, 1, tzinfo=UTC))  # 00:01
    assert late.startswith("12345-20261129-")


def test_phone_numbers_stored_before_normalisation_are_rewritten(empty_db_url: str) -> None:
    """Data migration 0005: rows from before E.164 normalisation become the numbers the
    entry points now look up; one citizen typed twice in the register becomes one row."""
    from alembic import command
    from sqlalchemy import text

    from cases.db import alembic_config

    command.upgrade(alembic_config(empty_db_url), "0004")
    engine = engine_for(empty_db_url)
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO citizen_register (phone, name, vulnerable, note, added_by, added_at)"
                " VALUES ('13800138000', '王阿婆', false, '', 'cli', CURRENT_TIMESTAMP),"
                " ('+86 138 0013 8000', '王阿婆', true, '', 'cli', CURRENT_TIMESTAMP),"
                " ('0898-66668888', '李伯', true, '', 'cli', CURRENT_TIMESTAMP)"
            )
        )
        db.execute(
            text(
                "INSERT INTO callback_request (call_id, caller_phone, reason, requested_at, status)"
                " VALUES ('c1', '8613800138000', 'long_wait', CURRENT_TIMESTAMP, 'pending'),"
                " ('c2', 'anonymous', 'long_wait', CURRENT_TIMESTAMP, 'pending')"
            )
        )
    upgrade(empty_db_url)
    with engine.connect() as db:
        register = db.execute(
            text("SELECT phone, vulnerable FROM citizen_register ORDER BY id")
        ).all()
        callbacks = db.execute(
            text("SELECT caller_phone FROM callback_request ORDER BY call_id")
        ).all()
    assert [(p, bool(v)) for p, v in register] == [
        ("+8613800138000", True),
        ("+8689866668888", True),
    ]
    assert [p for (p,) in callbacks] == ["+8613800138000", "anonymous"]
