"""The admin desk (calls.admin_desk) called directly, as every surface calls it: who may
act (a wrong role is refused 403 before anything is read or written), and each action
with its action log line in the same transaction. Real redis-server and SQLite."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from calls.desk import Actor, Desk, DeskError
from cases.models import ActionLog, Case, Department, OptOut, User
from cases.users import authenticate, issue_token
from tests.test_case_search import add_case
from tests.test_console import PASSWORD, make_app

ADMIN = Actor("root", "admin")
SUPERVISOR = Actor("li", "supervisor")
OPERATOR = Actor("wang", "operator")
UNIT = Actor("water", "department", 1)
NEW_PASSWORD = "a new one, typed twice"


@pytest.fixture
def desk(redis_server, redis, tmp_path) -> Desk:  # type: ignore[no-untyped-def]
    redis.flushdb()
    return make_app(redis_server, redis, tmp_path).extensions["hotline"].desk


@pytest.fixture
def desk_with_token(desk: Desk) -> Desk:
    with desk.sessions() as db:
        issue_token(db, "wang")
    return desk


@pytest.fixture
def case_number(desk: Desk) -> str:
    with desk.sessions() as db:
        return add_case(db, address="龙华区金贸西路 8 号", description="小区停水两天").number


def logged(desk: Desk) -> list[tuple[str, str, str, str]]:
    """The action log's lines by people (not the seed's or the set-up's)."""
    with desk.sessions() as db:
        rows = db.scalars(
            select(ActionLog)
            .where(ActionLog.actor.not_in(("seed", "system")))
            .order_by(ActionLog.id)
        ).all()
        return [(r.actor, r.action, r.target, r.detail or "") for r in rows]


ACTIONS: dict[str, Callable[[Desk, Actor, str], object]] = {
    "add_user": lambda desk, actor, _: desk.admin.add_user(
        actor, "zhao", "operator", NEW_PASSWORD, seat="1002"
    ),
    "set_user_active": lambda desk, actor, _: desk.admin.set_user_active(actor, "wang", False),
    "reset_password": lambda desk, actor, _: desk.admin.reset_password(
        actor, "wang", NEW_PASSWORD
    ),
    "revoke_token": lambda desk, actor, _: desk.admin.revoke_token(actor, "wang"),
    "add_unit": lambda desk, actor, _: desk.admin.add_unit(
        actor, "data-bureau", "市数据局", "department", ""
    ),
    "rename_unit": lambda desk, actor, _: desk.admin.rename_unit(
        actor, "water-affairs", "市水务集团"
    ),
    "add_opt_out": lambda desk, actor, _: desk.admin.add_opt_out(actor, "13800138501"),
    "remove_opt_out": lambda desk, actor, _: desk.admin.remove_opt_out(actor, "13800138501"),
    "set_duty_phone": lambda desk, actor, _: desk.admin.set_duty_phone(
        actor, "water-affairs", "0898-66661234"
    ),
    "set_case_public": lambda desk, actor, number: desk.admin.set_case_public(
        actor, number, True
    ),
    "reveal_phone": lambda desk, actor, number: desk.admin.reveal_phone(actor, number),
}
ADMIN_ONLY = (SUPERVISOR, OPERATOR, UNIT)
WRONG_ROLES = {
    "add_user": ADMIN_ONLY,
    "set_user_active": ADMIN_ONLY,
    "reset_password": ADMIN_ONLY,
    "revoke_token": ADMIN_ONLY,
    "add_unit": ADMIN_ONLY,
    "rename_unit": ADMIN_ONLY,
    "add_opt_out": ADMIN_ONLY,
    "remove_opt_out": ADMIN_ONLY,
    "set_duty_phone": ADMIN_ONLY,
    "set_case_public": (OPERATOR, UNIT, Actor("qa", "quality")),
    "reveal_phone": (OPERATOR, UNIT, Actor("qa", "quality")),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_a_wrong_role_is_refused_and_nothing_is_written(
    desk_with_token: Desk, case_number: str, action: str
) -> None:
    desk = desk_with_token
    before = logged(desk)
    for actor in WRONG_ROLES[action]:
        with pytest.raises(DeskError) as refused:
            ACTIONS[action](desk, actor, case_number)
        assert (refused.value.code, refused.value.status) == ("forbidden", 403), actor
    # Refused before any lookup: an unknown case is still a 403, not a 404.
    if action in ("set_case_public", "reveal_phone"):
        with pytest.raises(DeskError) as refused:
            ACTIONS[action](desk, OPERATOR, "no-such-number")
        assert refused.value.status == 403
    assert logged(desk) == before
    with desk.sessions() as db:
        assert db.scalars(select(OptOut)).all() == []
        unit = db.scalar(select(Department).where(Department.code == "water-affairs"))
        assert unit is not None and not unit.duty_phone and unit.name != "市水务集团"
        assert db.scalar(select(Department).where(Department.code == "data-bureau")) is None
        wang = db.scalar(select(User).where(User.username == "wang"))
        assert wang is not None and wang.active and wang.api_token_hash is not None
        assert authenticate(db, "wang", PASSWORD) is not None
        assert db.scalar(select(User).where(User.username == "zhao")) is None
        assert db.scalar(select(Case.public).where(Case.number == case_number)) is False


def test_the_opt_out_register_through_the_desk(desk: Desk) -> None:
    added = desk.admin.add_opt_out(ADMIN, "138 0013 8501", "本人来电要求不再回访" * 30)
    assert (added.phone, added.new) == ("+8613800138501", True)
    again = desk.admin.add_opt_out(ADMIN, "008613800138501")
    assert (again.phone, again.new) == ("+8613800138501", False)
    with pytest.raises(DeskError) as refused:
        desk.admin.add_opt_out(ADMIN, "12345")
    assert (refused.value.code, refused.value.status) == ("optout-bad-phone", 422)
    assert refused.value.words("zh") == "不是有效的市民电话号码：12345"
    assert desk.admin.remove_opt_out(ADMIN, "+8613800138501") == "+8613800138501"
    with pytest.raises(DeskError) as refused:
        desk.admin.remove_opt_out(ADMIN, "13800138501")
    assert (refused.value.code, refused.value.status) == ("optout-absent", 404)
    assert refused.value.words("en") == "138****8501 is not on the register"  # masked
    with desk.sessions() as db:
        assert db.scalars(select(OptOut)).all() == []
    # One line per change, the note cut to 200 characters; a repeat adds none.
    assert logged(desk) == [
        ("root", "optout-added", "+8613800138501", ("本人来电要求不再回访" * 30)[:200]),
        ("root", "optout-removed", "+8613800138501", ""),
    ]


def test_a_duty_phone_through_the_desk(desk: Desk) -> None:
    saved = desk.admin.set_duty_phone(ADMIN, "water-affairs", "0898-66661234")
    assert (saved.before, saved.now) == (None, "+8689866661234")
    assert saved.unit_name
    assert desk.admin.set_duty_phone(ADMIN, "water-affairs", "0898 6666 1234").now == saved.now
    cleared = desk.admin.set_duty_phone(ADMIN, "water-affairs", "")
    assert (cleared.before, cleared.now) == ("+8689866661234", None)
    for raw, code in (("96166", "unit-short-duty-phone"), ("值班室", "unit-bad-duty-phone")):
        with pytest.raises(DeskError) as refused:
            desk.admin.set_duty_phone(ADMIN, "water-affairs", raw)
        assert (refused.value.code, refused.value.status) == (code, 422)
    with pytest.raises(DeskError) as refused:
        desk.admin.set_duty_phone(ADMIN, "no-such-unit", "0898-66661234")
    assert (refused.value.code, refused.value.status) == ("no-unit", 422)
    # Only changes are logged: setting the same number again adds no line.
    assert logged(desk) == [
        ("root", "unit-duty-phone", "water-affairs", "— -> +8689866661234"),
        ("root", "unit-duty-phone", "water-affairs", "+8689866661234 -> —"),
    ]


def test_listing_a_case_on_open311_through_the_desk(desk: Desk, case_number: str) -> None:
    assert desk.admin.set_case_public(SUPERVISOR, case_number, True) is True
    assert desk.admin.set_case_public(ADMIN, case_number, True) is False  # already listed
    assert desk.admin.set_case_public(ADMIN, case_number, False) is True
    with pytest.raises(DeskError) as refused:
        desk.admin.set_case_public(SUPERVISOR, "no-such-number", True)
    assert (refused.value.code, refused.value.status) == ("no-such-case", 404)
    with desk.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == case_number))
        assert case is not None and case.public is False
        trail = [(e.actor, e.action) for e in case.events][-2:]
        assert trail == [("li", "open311_public"), ("root", "open311_private")]
    assert logged(desk) == [
        ("li", "open311-public", case_number, ""),
        ("root", "open311-private", case_number, ""),
    ]


def test_revealing_a_callers_number_through_the_desk(desk: Desk, case_number: str) -> None:
    assert desk.admin.reveal_phone(SUPERVISOR, case_number) == "+8613800138000"
    with pytest.raises(DeskError) as refused:
        desk.admin.reveal_phone(ADMIN, "no-such-number")
    assert (refused.value.code, refused.value.status) == ("no-such-case", 404)
    assert logged(desk) == [("li", "phone-revealed", case_number, "")]


def test_users_through_the_desk(desk_with_token: Desk) -> None:
    desk = desk_with_token
    desk.admin.add_user(ADMIN, "zhao", "operator", NEW_PASSWORD, display_name="赵敏", seat="1002")
    with pytest.raises(DeskError) as refused:
        desk.admin.add_user(ADMIN, "zhao", "operator", NEW_PASSWORD)
    assert (refused.value.code, refused.value.status) == ("user-exists", 422)
    assert refused.value.details["refused"] == "exists"  # the screens' key
    with pytest.raises(DeskError) as refused:
        desk.admin.reset_password(ADMIN, "wang", "short")
    assert refused.value.details["refused"] == "password-short"
    desk.admin.reset_password(ADMIN, "wang", NEW_PASSWORD)
    assert desk.admin.revoke_token(ADMIN, "wang") is True
    assert desk.admin.revoke_token(ADMIN, "wang") is False  # none left: no line
    desk.admin.set_user_active(ADMIN, "wang", False)
    desk.admin.set_user_active(ADMIN, "wang", True)
    with pytest.raises(DeskError) as refused:
        desk.admin.set_user_active(ADMIN, "nobody", False)
    assert (refused.value.code, refused.value.status) == ("no-user", 422)
    with desk.sessions() as db:
        assert authenticate(db, "wang", NEW_PASSWORD) is not None
        assert authenticate(db, "zhao", NEW_PASSWORD) is not None
    assert logged(desk) == [
        ("root", "user-added", "zhao", "operator"),
        ("root", "password-reset", "wang", ""),
        ("root", "token-revoked", "wang", ""),
        ("root", "user-disabled", "wang", ""),
        ("root", "user-enabled", "wang", ""),
    ]


def test_units_through_the_desk(desk: Desk) -> None:
    assert desk.admin.add_unit(ADMIN, "data-bureau", " 市数据局 ", "department", "") == "市数据局"
    with pytest.raises(DeskError) as refused:
        desk.admin.add_unit(ADMIN, "data-bureau", "市数据局", "department", "")
    assert (refused.value.code, refused.value.status) == ("unit-exists", 422)
    assert refused.value.details["refused"] == "exists"
    renamed = desk.admin.rename_unit(ADMIN, "data-bureau", "市政务数据局")
    assert renamed == ("市数据局", "市政务数据局")
    again = desk.admin.rename_unit(ADMIN, "data-bureau", "市政务数据局")
    assert again == ("市政务数据局", "市政务数据局")  # the same name: no line
    with pytest.raises(DeskError) as refused:
        desk.admin.rename_unit(ADMIN, "no-such-unit", "某局")
    assert (refused.value.code, refused.value.status) == ("no-unit", 422)
    assert logged(desk) == [
        ("root", "unit-added", "data-bureau", "department: 市数据局"),
        ("root", "unit-renamed", "data-bureau", "市数据局 -> 市政务数据局"),
    ]
