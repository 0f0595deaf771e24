"""A freed seat's next Dial goes before other callers' prompt steps in the FastAGI server
(agi_scripts/priority.py), over real sockets and a real Redis."""

from __future__ import annotations

import socket
import threading

import pytest

from agi_scripts.priority import SeatsFirst
from agi_scripts.sessions import AgiSettings, Session
from queueing import CallQueue
from tests.test_agi_protocol import ENV, Peer, connect, serving, wait_idle

TALKING, NEXT, IN_MENU = "ast-1795812065.1", "ast-1795812065.2", "ast-1795812065.3"


def env(route: str, call: str) -> str:
    unique = call.removeprefix("ast-")
    return ENV.replace("ivr?dept=12345", route).replace("1795812065.1", unique)


def to_menu(peer: Peer) -> None:
    """An inbound session through the greeting to the menu's GET DATA (left unanswered)."""
    peer.expect("200 result=0\n")  # ANSWER
    while True:
        line = peer.rfile.readline().rstrip("\n")
        peer.commands.append(line)
        if line.startswith("GET DATA"):
            return
        peer.send("200 result=0 endpos=1600\n")  # STREAM FILE: the prompt played


def test_a_menu_step_waits_while_the_freed_seats_next_caller_is_dialled(  # type: ignore[no-untyped-def]
    queue: CallQueue, monkeypatch
) -> None:
    """The seat's talk ends and its next caller is offered; a caller whose menu timed out
    in that moment is stepped only after the next caller's bridge route sent the Dial."""
    monkeypatch.setattr(Session, "seats_first", SeatsFirst(max_wait_s=30))
    queue.seat_login("1001")
    queue.enqueue(TALKING)  # offered to 1001 at once
    queue.answer(TALKING, "1001", talked=True)
    queue.enqueue(NEXT)  # waits for 1001
    arrivals: list[str] = []
    with serving(queue, AgiSettings(sounds="/s")) as server:
        menu = Peer(connect(server))
        menu.send(env("inbound", IN_MENU))
        to_menu(menu)  # queued behind NEXT, listening to the menu
        talk = Peer(connect(server))
        talk.send(env("bridge", TALKING))
        talk.expect("200 result=0\n")  # EXEC Dial: the talk, then the operator hangs up
        talk.expect("200 result=1 (ANSWER)\n")  # GET VARIABLE DIALSTATUS: 1001 offered NEXT
        talk.expect("200 result=0 endpos=8000\n")  # STREAM FILE goodbye
        assert queue.call(NEXT)["state"] == "offered"

        def read_menu() -> None:
            line = menu.rfile.readline().rstrip("\n")
            arrivals.append(f"menu: {line}")
            menu.send("200 result=0 endpos=1600\n")

        menu.send("200 result= (timeout)\n")  # the menu timed out: its next step is due
        reader = threading.Thread(target=read_menu, daemon=True)
        reader.start()
        reader.join(timeout=0.5)  # unmarked, the step would have come by now
        bridge = Peer(connect(server))
        bridge.send(env("bridge", NEXT))
        line = bridge.rfile.readline().rstrip("\n")
        arrivals.append(f"bridge: {line}")
        bridge.send("200 result=0\n")  # the Dial (no answer: it just ends)
        reader.join(timeout=5)
        assert [a.split(":")[0] for a in arrivals] == ["bridge", "menu"], arrivals
        assert arrivals[0].startswith('bridge: EXEC Dial "PJSIP/1001,')
        for peer in (menu, talk, bridge):
            peer.sock.shutdown(socket.SHUT_RDWR)
            peer.close()
        wait_idle(server)


def test_a_seat_whose_next_caller_never_comes_holds_no_step_for_ever() -> None:
    seats = SeatsFirst(max_wait_s=0.05)
    seats.freeing("1001")  # its caller's redirect failed: no Dial unmarks it
    seats.wait_turn()
    seats.wait_turn()


@pytest.mark.parametrize("marks", [1, 3])
def test_a_dial_for_each_freed_seat_lets_the_steps_go_on(marks: int) -> None:
    seats = SeatsFirst(max_wait_s=30)
    for n in range(marks):
        seats.freeing(f"100{n}")
    waiting = threading.Thread(target=seats.wait_turn, daemon=True)
    waiting.start()
    for n in range(marks):
        seats.dialled(f"100{n}")
    waiting.join(timeout=5)
    assert not waiting.is_alive()


def test_the_server_freezes_its_startup_objects_out_of_the_collector(queue: CallQueue) -> None:
    """A full collection over the process's modules held the interpreter ~50 ms while
    seats waited for their next caller; serve() freezes them first."""
    import gc

    from rq import Queue

    from agi_scripts.server import FastAGIServer, serve
    from calls import CallHandler

    handler = CallHandler(queue, Queue("hotline", connection=queue.redis), None)
    server = FastAGIServer(("127.0.0.1", 0), handler, AgiSettings(sounds="/s"))
    stop = threading.Event()
    gc.unfreeze()
    thread = threading.Thread(target=serve, args=(server, stop), daemon=True)
    thread.start()
    try:
        for _ in range(250):  # up to 5 s for the server to start
            if gc.get_freeze_count() or stop.wait(0.02):
                break
        assert gc.get_freeze_count() > 0
    finally:
        stop.set()
        thread.join(timeout=5)
        gc.unfreeze()
