"""The process AGI script (``hotline-agi``) runs the routes FastAGI runs, outbound ones
included: Asterisk starts it with the route and the dialplan's arguments, writes the
environment on its stdin and each reply after each command, as res_agi does for
AGI(hotline-agi,ROUTE,ARG...) (agi_arg_1 is the route itself)."""

from __future__ import annotations

import queue as queues
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import select

from calls.dialer import Dialer
from calls.dialing import DialerSettings
from cases.db import engine_for, session_factory
from cases.models import Case
from queueing import CallQueue
from queueing.settings import QueueSettings
from tests.test_agi_outbound import Originated, visit_placed

HOTLINE_AGI = str(Path(sys.executable).with_name("hotline-agi"))
ENV = (
    "agi_request: hotline-agi\nagi_channel: PJSIP/trunk-00000007\n"
    "agi_language: zh\nagi_type: PJSIP\nagi_uniqueid: 1795812099.7\n"
    "agi_version: 22.5.2\nagi_callerid: 13800138000\nagi_calleridname: unknown\n"
    "agi_callingpres: 0\nagi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\n"
    "agi_dnid: unknown\nagi_rdnis: unknown\nagi_context: hotline-outbound\n"
    "agi_extension: s\nagi_priority: 4\nagi_enhanced: 0.0\nagi_accountcode: \n"
    "agi_threadid: 140088710391360\n"
)


@pytest.fixture
def rig(  # type: ignore[no-untyped-def]
    queue: CallQueue, redis_server, db_url: str, tmp_path
) -> Iterator[tuple[Dialer, Originated, dict[str, str]]]:
    telephony = Originated()
    dialer = Dialer(
        queue.redis,
        queue.keys,
        session_factory(engine_for(db_url)),
        telephony,
        DialerSettings(calls_per_s=100),
        now=lambda: datetime(2026, 11, 30, 2, 0, tzinfo=UTC),  # 10:00 in Beijing
    )
    Queue("hotline", connection=queue.redis).empty()
    env = {
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": db_url,
        "HOTLINE_VAR_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    yield dialer, telephony, env


def run_agi(env: dict[str, str], route: str, args: list[str], keys: str = "") -> list[str]:
    """Be Asterisk for one process AGI: files play to the end, GET DATA returns the
    next scripted key (or times out), until the script exits."""
    argv = [route, *args]
    with subprocess.Popen(
        [HOTLINE_AGI, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:  # closes the pipes, waits for the script
        return _converse(process, argv, keys)


def _converse(process: subprocess.Popen[str], argv: list[str], keys: str) -> list[str]:
    assert process.stdin and process.stdout
    stdout, lines = process.stdout, queues.Queue[str]()

    def read() -> None:  # a reader thread, so that a silent script fails the test
        for line in iter(stdout.readline, ""):
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    process.stdin.write(ENV + "".join(f"agi_arg_{n}: {v}\n" for n, v in enumerate(argv, 1)) + "\n")
    process.stdin.flush()
    pressed, commands = list(keys), []
    try:
        while (line := lines.get(timeout=30)) != "":
            command = line.rstrip("\n")
            commands.append(command)
            if command.startswith("GET DATA"):
                key = pressed.pop(0) if pressed else ""
                reply = f"200 result={key}\n" if key else "200 result= (timeout)\n"
            elif command.startswith("STREAM FILE"):
                reply = "200 result=0 endpos=8000\n"
            else:
                reply = "200 result=1\n"
            process.stdin.write(reply)
            process.stdin.flush()
        assert process.wait(timeout=30) == 0, process.stderr.read()  # type: ignore[union-attr]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return commands


def test_a_return_visit_through_the_process_script_is_played(rig) -> None:  # type: ignore[no-untyped-def]
    dialer, telephony, env = rig
    attempt, number = visit_placed(dialer, telephony)
    commands = run_agi(env, "outbound", [attempt, "HUMAN", ""], keys="1")
    played = " ".join(c for c in commands if c.startswith(("STREAM FILE", "GET DATA")))
    assert "visit_intro" in played and "visit_question" in played and "visit_thanks" in played
    assert commands[-1] == 'SET VARIABLE HOTLINE_NEXT "hangup"'
    run_agi(env, "hangup", [])
    with dialer.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        assert (case.status, case.satisfaction) == ("closed", "satisfied")
    assert dialer.redis.hlen(dialer.keys.dial_live) == 0


def test_the_process_script_reads_the_hold_routes_query(rig, redis) -> None:  # type: ignore[no-untyped-def]
    """[hotline-hold] as a process: AGI(hotline-agi,hold?event=key&digit=${EXTEN})."""
    _, _, env = rig
    queue = CallQueue(redis, QueueSettings())  # the script's queue, from its environment
    queue.seat_login("2001", ["hainanese"])
    queue.seat_state("2001", "paused", "busy")
    commands = run_agi(env, "inbound", [])  # says nothing: greeting, menu twice, hold
    assert commands[-1] == 'SET VARIABLE HOTLINE_NEXT "hold"'
    call = queue.call("ast-1795812099.7")
    assert (call["state"], call["skill"]) == ("waiting", "mandarin")
    commands = run_agi(env, "hold?event=key&digit=1", [])  # 1 in the hold music
    assert any("language_chosen" in c for c in commands), commands
    assert queue.call("ast-1795812099.7")["skill"] == "hainanese"
