"""The opt-out register (谢绝回访): its record functions and `hotline optout`, on a
migrated SQLite database; the dialer honours what the CLI puts there."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cases.db import engine_for, session_factory
from cases.models import OptOut, add_opt_out, list_opt_outs, remove_opt_out
from cases.phones import InvalidPhone
from hotline.cli import main


def test_the_register_keeps_one_e164_entry_per_number(db_url: str) -> None:
    sessions = session_factory(engine_for(db_url))
    with sessions() as db:
        entry, new = add_opt_out(db, "138 0013 8000", "admin", "本人要求")
        assert (entry.phone, new, entry.note) == ("+8613800138000", True, "本人要求")
        again, new = add_opt_out(db, "+86 13800138000", "other")
        assert again.id == entry.id and not new
        add_opt_out(db, "0898-66668888", "admin")
        db.commit()
    with sessions() as db:
        assert [e.phone for e in list_opt_outs(db)] == ["+8689866668888", "+8613800138000"]
        for bad in ("12345", "anonymous", "not a number"):
            with pytest.raises(InvalidPhone):
                add_opt_out(db, bad, "admin")
        assert remove_opt_out(db, "13800138000") and not remove_opt_out(db, "13800138000")
        db.commit()
    with sessions() as db:
        assert list(db.scalars(select(OptOut.phone))) == ["+8689866668888"]


@pytest.fixture
def run(tmp_path, monkeypatch, redis_server):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, ["--log-level", "WARNING", *args], catch_exceptions=False)

    assert "database at head" in invoke("db", "upgrade").output
    invoke.url = url  # type: ignore[attr-defined]
    return invoke


def test_optout_add_remove_list_from_the_cli(run) -> None:  # type: ignore[no-untyped-def]
    added = run("optout", "add", "13900000009", "--note", "本人来电要求不再回访")
    assert added.exit_code == 0 and added.output.strip() == "added: +8613900000009"
    assert run("optout", "add", "+8613900000009").output.strip() == (
        "already on the register: +8613900000009"
    )
    listing = run("optout", "list").output.strip().split("\t")
    assert listing[0] == "+8613900000009" and listing[2:] == ["cli", "本人来电要求不再回访"]
    assert run("optout", "add", "12345").exit_code == 2  # a service code is refused
    assert run("optout", "remove", "139 0000 0009").output.strip() == "removed"
    gone = run("optout", "remove", "13900000009")
    assert gone.exit_code == 1 and "not on the register" in gone.output
    assert run("optout", "list").output == ""


def test_a_number_opted_out_from_the_cli_is_not_called(run, redis) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from calls.dialer import Dialer
    from calls.dialing import DialerSettings
    from cases.models import OutboundItem
    from queueing.keys import QueueKeys

    placed: list[str] = []

    class Telephony:
        def originate(self, call_id: str, phone: str, kind: str) -> None:
            placed.append(phone)

    assert run("optout", "add", "13900000010").exit_code == 0
    at = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    sessions = session_factory(engine_for(run.url))
    dialer = Dialer(
        redis, QueueKeys("optout"), sessions, Telephony(), DialerSettings(), now=lambda: at
    )
    with sessions() as db:
        item = dialer.plan(db, "visit:x", "return_visit", "+8613900000010", at)
        db.commit()
        dialer.index(item)
    assert dialer.run_once() == 0 and placed == []
    with sessions() as db:
        assert db.scalar(select(OutboundItem.status)) == "opted-out"
