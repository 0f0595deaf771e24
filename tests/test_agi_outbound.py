"""Return visits and call-backs over FastAGI, as Asterisk runs them from
[hotline-outbound] after AMD(): the server speaks the outbound flow over a real socket,
with Asterisk's replies as the recorded transcripts show them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from rq import Queue
from sqlalchemy import select

from agi_scripts.server import FastAGIServer
from agi_scripts.sessions import AgiSettings
from calls import CallHandler
from calls.dialer import Dialer
from calls.dialing import DialerSettings
from calls.outbound import OutboundHandler
from cases.db import engine_for, session_factory
from cases.dispatch import resolve, sign_for
from cases.models import Case, OutboundItem
from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch
from queueing import CallQueue
from tests.test_agi_protocol import ENV, Peer, wait_idle

CITIZEN = "+8613800138000"


class Originated:
    def __init__(self) -> None:
        self.placed: list[str] = []

    def originate(self, call_id: str, phone: str, kind: str) -> None:
        self.placed.append(call_id)


@pytest.fixture
def rig(queue: CallQueue, db_url: str) -> Iterator[tuple[FastAGIServer, Dialer, Originated]]:
    sessions = session_factory(engine_for(db_url))
    telephony = Originated()
    dialer = Dialer(
        queue.redis,
        queue.keys,
        sessions,
        telephony,
        DialerSettings(calls_per_s=100),
        now=lambda: datetime(2026, 11, 30, 2, 0, tzinfo=UTC),
    )
    handler = CallHandler(queue, Queue("hotline", connection=queue.redis), None)
    server = FastAGIServer(
        ("127.0.0.1", 0),
        handler,
        AgiSettings(sounds="/s"),
        outbound=OutboundHandler(handler, dialer),
    )
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        yield server, dialer, telephony
    finally:
        server.shutdown()
        server.server_close()


def visit_placed(dialer: Dialer, telephony: Originated) -> tuple[str, str]:
    with dialer.sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo("earlier", CITIZEN, "asterisk", "1001"),
            CaseDraft(description="路灯不亮", category_code="street-vending", dispatch=False),
        )
        dispatch(db, case, "1001")
        sign_for(db, case, "urban", case.department_id)
        resolve(db, case, "urban", case.department_id, "已修复")
        item = dialer.plan(
            db, f"visit:{case.id}", "return_visit", CITIZEN, dialer.now(), case_id=case.id
        )
        db.commit()
        dialer.index(item)
        number = case.number
    assert dialer.run_once() == 1
    return telephony.placed[-1], number


def converse(server: FastAGIServer, route: str, args: list[str], keys: str = "") -> list[str]:
    """Play Asterisk's side of one AGI session: files play to the end, GET DATA returns
    the next scripted key (or a timeout), until the server closes."""
    sock = socket.create_connection(server.server_address[:2], timeout=5)
    peer = Peer(sock)
    env = ENV.replace("ivr?dept=12345", route).replace("agi_arg_1: arg one\nagi_arg_2: arg2\n", "")
    env = env.replace(
        "\n\n", "".join(f"\nagi_arg_{n}: {v}" for n, v in enumerate(args, 1)) + "\n\n"
    )
    peer.send(env)
    pressed = list(keys)
    while True:
        line = peer.rfile.readline()
        if not line:
            break
        command = line.rstrip("\n")
        peer.commands.append(command)
        if command.startswith("GET DATA"):
            key = pressed.pop(0) if pressed else ""
            peer.send(f"200 result={key} (timeout)\n" if not key else f"200 result={key}\n")
        elif command.startswith("STREAM FILE"):
            peer.send("200 result=0 endpos=8000\n")
        else:
            peer.send("200 result=1\n")
    peer.close()
    wait_idle(server)
    return peer.commands


def test_a_return_visit_over_fastagi_satisfied(rig) -> None:  # type: ignore[no-untyped-def]
    server, dialer, telephony = rig
    attempt, number = visit_placed(dialer, telephony)
    commands = converse(server, "outbound", [attempt, "HUMAN", ""], keys="1")
    played = " ".join(c for c in commands if c.startswith(("STREAM FILE", "GET DATA")))
    assert "visit_intro" in played and "visit_question" in played and "visit_thanks" in played
    assert commands[-1] == 'SET VARIABLE HOTLINE_NEXT "hangup"'
    converse(server, "hangup", [])
    with dialer.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        assert (case.status, case.satisfaction) == ("closed", "satisfied")
    assert dialer.redis.hlen(dialer.keys.dial_live) == 0


def test_a_machine_hears_nothing_and_a_silent_elder_is_spoken_to(rig) -> None:  # type: ignore[no-untyped-def]
    server, dialer, telephony = rig
    attempt, _ = visit_placed(dialer, telephony)
    commands = converse(server, "outbound", [attempt, "MACHINE", "LONGGREETING-3000-1500"])
    assert commands == ['SET VARIABLE HOTLINE_NEXT "hangup"']  # nothing played
    with dialer.sessions() as db:
        assert db.scalar(select(OutboundItem.last_result)) == "machine"


def test_initial_silence_is_not_a_machine(rig) -> None:  # type: ignore[no-untyped-def]
    server, dialer, telephony = rig
    attempt, number = visit_placed(dialer, telephony)
    commands = converse(
        server, "outbound", [attempt, "MACHINE", "INITIALSILENCE-4000-4000"], keys="2"
    )
    assert any("visit_question" in c for c in commands)
    with dialer.sessions() as db:
        assert db.scalar(select(Case.satisfaction).where(Case.number == number)) == "unsatisfied"


@pytest.mark.parametrize(
    ("reason", "result"), [("5", "busy"), ("3", "no-answer"), ("8", "congestion"), ("0", "failed")]
)
def test_an_unanswered_originate_is_tried_again(rig, reason: str, result: str) -> None:  # type: ignore[no-untyped-def]
    server, dialer, telephony = rig
    attempt, _ = visit_placed(dialer, telephony)
    converse(server, "outbound-failed", [attempt, reason])
    with dialer.sessions() as db:
        item = db.scalar(select(OutboundItem))
        assert (item.status, item.last_result) == ("pending", result)


def test_zero_sends_the_citizen_to_the_hold_loop_for_an_operator(rig, queue) -> None:  # type: ignore[no-untyped-def]
    server, dialer, telephony = rig
    attempt, _ = visit_placed(dialer, telephony)
    commands = converse(server, "outbound", [attempt, "NOTSURE", "TOOLONG-5000"], keys="0")
    assert commands[-1] == 'SET VARIABLE HOTLINE_NEXT "hold"'
    record = queue.call("ast-1795812065.1")
    assert (record["state"], record["priority"], record["caller"]) == ("waiting", "repeat", CITIZEN)
    converse(server, "hangup", [])  # the h extension, in the hold loop
    assert queue.call("ast-1795812065.1")["state"] != "waiting"
    assert dialer.redis.hlen(dialer.keys.dial_live) == 0


def test_zero_with_a_free_seat_puts_the_citizen_through_at_once(rig, queue) -> None:  # type: ignore[no-untyped-def]
    """The free seat is offered the citizen in the very enqueue, which no offer push
    moves: the session itself dials the seat, rather than leaving them to the hold
    loop's next turn (30 s of music with an operator waiting)."""
    server, dialer, telephony = rig
    queue.seat_login("1001")
    attempt, _ = visit_placed(dialer, telephony)
    commands = converse(server, "outbound", [attempt, "HUMAN", "HUMAN-500-500"], keys="0")
    dials = [c for c in commands if c.startswith("EXEC Dial")]
    assert dials and "PJSIP/1001" in dials[0], commands
    assert 'SET VARIABLE HOTLINE_NEXT "hold"' not in commands[: commands.index(dials[0])]
    assert queue.call("ast-1795812065.1")["priority"] == "repeat"
