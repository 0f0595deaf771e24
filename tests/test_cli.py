"""The `hotline` command against the test Redis."""

import json
import os

import pytest
from click.testing import CliRunner
from redis import Redis

from hotline.cli import main


@pytest.fixture
def run(redis: Redis, redis_server, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path))
    from cases.db import upgrade

    database = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(database)  # seat actions are recorded in the action log
    monkeypatch.setenv("DATABASE_URL", database)
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, ["--log-level", "WARNING", *args], catch_exceptions=False)

    return invoke


def test_seat_commands_and_queue_status(run, redis) -> None:  # type: ignore[no-untyped-def]
    assert run("seat", "login", "1001", "--skills", "mandarin,hainanese").output.strip() == (
        "logged-in"
    )
    assert run("seat", "state", "1001", "paused", "--reason", "lunch").exit_code == 0
    from queueing import CallQueue
    from queueing.settings import QueueSettings

    CallQueue(redis, QueueSettings()).enqueue("c1", caller="13800000001")
    text = run("queue", "status").output
    assert "c1" in text and "#1" in text and "paused" in text and "(lunch)" in text
    status = json.loads(run("queue", "status", "--json").output)
    assert status["seats"][0]["skills"] == "mandarin,hainanese"
    result = run("seat", "state", "1001", "available")
    assert "offered call c1 to seat 1001" in result.output
    assert run("seat", "logout", "1001").output.strip() == "logged-out"
    from cases.db import engine_for, session_factory
    from cases.models import ActionLog

    with session_factory(engine_for(os.environ["DATABASE_URL"]))() as db:
        done = [(a.action, a.target) for a in db.query(ActionLog).order_by(ActionLog.id)]
    assert done[0] == ("seat-login", "1001") and done[-1] == ("seat-logout", "1001")
    figures = json.loads(run("queue", "figures", "--minutes", "5").output)
    assert figures["offered"] == 1


def test_refused_transition_is_a_clear_error(run) -> None:  # type: ignore[no-untyped-def]
    result = run("seat", "state", "9999", "available")
    assert result.exit_code == 1 and "not-logged-in" in result.output


def test_bad_configuration_is_a_usage_error(run, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOTLINE_OFFER_TIMEOUT_S", "soon")
    result = run("queue", "status")
    assert result.exit_code == 2 and "HOTLINE_OFFER_TIMEOUT_S must be a number" in result.output


def test_register_add_validates_the_number(run, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    assert "database at head" in run("db", "upgrade").output
    assert run("register", "add", "13900000009", "--name", "王奶奶").output.strip() == "registered"
    assert run("register", "add", "13900000009").output.strip() == "already registered"
    assert run("register", "add", "not-a-number").exit_code == 2


def test_the_reapers_rows_give_the_days_report(run, redis, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from calls.reaper import Reaper
    from cases.db import upgrade
    from hotline.config import load_settings
    from hotline.runtime import call_handler, call_queue

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'report.db'}")
    upgrade(f"sqlite:///{tmp_path / 'report.db'}")
    settings = load_settings()
    queue = call_queue(settings, redis)
    queue.seat_login("1001")
    queue.enqueue("c1", caller="+8613800000001")
    queue.answer("c1", "1001")
    queue.complete("c1")
    queue.enqueue("c2", caller="+8613800000002")
    queue.hangup("c2")
    Reaper(call_handler(settings, queue)).record_call_rows()
    day = json.loads(run("report").output)
    assert (day["wanted_person"], day["answered"], day["short_abandoned"]) == (2, 1, 1)
    assert day["connection_rate"] == 1.0
    assert json.loads(run("report", "--day", "2020-01-01").output)["wanted_person"] == 0
    with pytest.raises(ValueError):  # a day that is not a date is refused
        run("report", "--day", "yesterday")


def test_user_add_offers_every_role_the_model_has() -> None:
    from cases.models import ROLES
    from hotline.cli import user

    role = next(p for p in user.commands["add"].params if p.name == "role")
    assert list(role.type.choices) == list(ROLES)  # type: ignore[attr-defined]
