"""Units' duty phones (值班电话): E.164 checked with phonenumbers, set by admins on the
units page (audited; refused in words), and listed in the operator's transfer
directory beside the call, over Flask's client against a real redis-server and SQLite;
the record functions on SQLite and PostgreSQL too."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from cases.db import engine_for, session_factory
from cases.duty_numbers import (
    DutyNumberError,
    directory,
    duty_entry,
    duty_number,
    set_duty_phone,
)
from cases.models import Department
from tests.test_admin import app, logged, post, sessions, signed_in  # noqa: F401
from tests.test_console import csrf_of


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("0898-66661234", "+8689866661234"),
        ("66661234", "+8689866661234"),  # a local landline: Haikou's area code
        ("+86 138 0013 8000", "+8613800138000"),
        ("(010) 6512 3456", "+861065123456"),
        ("  ", None),
    ],
)
def test_a_duty_phone_is_stored_in_e164(typed: str, stored: str | None) -> None:
    assert duty_number(typed) == stored


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("96166", "short-duty-phone"),  # a service code cannot be dialled from elsewhere
        ("110", "short-duty-phone"),
        ("值班室", "bad-duty-phone"),
        ("+86 199 1", "short-duty-phone"),
        ("+86 1000 0000 000", "bad-duty-phone"),  # possible in length, but no such number
    ],
)
def test_a_duty_phone_that_cannot_be_dialled_is_refused(typed: str, code: str) -> None:
    with pytest.raises(DutyNumberError) as refused:
        duty_number(typed)
    assert refused.value.code == code


def test_the_directory_lists_units_with_a_duty_phone(db_url: str) -> None:
    engine = engine_for(db_url)
    with session_factory(engine)() as db:
        assert directory(db) == []
        unit, before = set_duty_phone(db, "water-affairs", "0898-66661234")
        assert before is None and unit.duty_phone == "+8689866661234"
        district = db.scalar(select(Department.code).where(Department.kind == "district"))
        assert district is not None
        set_duty_phone(db, district, "13800138000")
        db.commit()
        listed = directory(db)
        assert [(e.code, e.kind, e.phone) for e in listed] == [
            ("water-affairs", "department", "+8689866661234"),
            (district, "district", "+8613800138000"),
        ]
        assert listed[0].shown == "0898 6666 1234"
        assert duty_entry(db, "water-affairs").phone == "+8689866661234"
        _, before = set_duty_phone(db, "water-affairs", "")
        assert before == "+8689866661234"
        with pytest.raises(DutyNumberError) as refused:
            duty_entry(db, "water-affairs")
        assert refused.value.code == "no-duty-phone"
        with pytest.raises(DutyNumberError) as refused:
            set_duty_phone(db, "no-such-unit", "66661234")
        assert refused.value.code == "no-unit"
    engine.dispose()


def test_an_admin_sets_a_duty_phone_and_the_operator_sees_it_beside_the_call(app) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    admin = signed_in(app, "root")
    page = admin.get("/console/admin/units").text
    assert "值班电话" in page and 'name="duty_phone"' in page

    r = post(admin, "/console/admin/units/water-affairs/duty-phone", duty_phone="96166")
    assert r.status_code == 422 and "不能是短号或服务号" in r.text
    # Named at the top of a long page, and beside its row with what was typed.
    assert '<a href="#unit-water-affairs">市水务局</a>：值班电话须为' in r.text
    refused = re.search(r'<tr data-unit="water-affairs".*?</tr>', r.text, re.S)
    assert refused and 'value="96166"' in refused[0] and "不能是短号或服务号" in refused[0]
    r = post(admin, "/console/admin/units/water-affairs/duty-phone", duty_phone="0898-66661234")
    assert r.status_code == 302
    page = admin.get("/console/admin/units").text
    assert "已更新" in page and "值班电话" in page
    row = re.search(r'<tr data-unit="water-affairs".*?</tr>', page, re.S)
    assert row and 'value="0898 6666 1234"' in row[0]
    with sessions(app)() as db:
        unit = db.scalar(select(Department).where(Department.code == "water-affairs"))
        assert unit is not None and unit.duty_phone == "+8689866661234"
    assert logged(app, "unit-duty-phone", "water-affairs") == ["root"]

    # Only an admin sets one.
    operator = signed_in(app, "wang")
    r = post(operator, "/console/admin/units/water-affairs/duty-phone", duty_phone="66660000")
    assert r.status_code == 403

    # The operator's transfer directory, beside a call, lists the unit and its number.
    headers = {"X-CSRFToken": csrf_of(operator.get("/console/").text)}
    r = operator.post(
        "/console/seat/login", data={"seat": "1001", "skills": "mandarin"}, headers=headers
    )
    assert r.status_code == 204
    handler = app.extensions["hotline"].handler
    handler.start("duty-call-1", "13800000021", "12345", "asterisk", 0.0)
    assert handler.seat_answered("duty-call-1", "1001", 1.0)
    controls = operator.get("/console/call-controls").text
    listed = re.search(r'<tr data-unit="water-affairs">.*?</tr>', controls, re.S)
    assert listed and "0898 6666 1234" in listed[0]

    # Cleared, it leaves the directory.
    r = post(admin, "/console/admin/units/water-affairs/duty-phone", duty_phone="")
    assert r.status_code == 302 and "已清除" in admin.get("/console/admin/units").text
    assert 'data-unit="water-affairs"' not in operator.get("/console/call-controls").text
