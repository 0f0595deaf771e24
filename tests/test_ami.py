"""The AMI client and the redirector against a stuck or restarting manager, over real
sockets."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import pytest

from agi_scripts.ami import AmiConnection, AmiError, OfferRedirector, Reconciler
from calls import CallHandler
from queueing import CallQueue
from tests.asterisk_emulator import AmiHandler, AmiServer, AsteriskEmulator


class StuckAmi(socketserver.ThreadingTCPServer):
    """Greets, accepts a login, then never answers another action (a wedged Asterisk)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), StuckHandler)


class StuckHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"Asterisk Call Manager/7.0.3\r\n")
        fields: dict[str, str] = {}
        for raw in self.rfile:
            line = raw.decode().strip()
            if line:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
                continue
            if fields.get("Action") == "Login":
                self.wfile.write(
                    f"Response: Success\r\nActionID: {fields['ActionID']}\r\n\r\n".encode()
                )
            fields = {}  # anything else: silence


@pytest.fixture
def stuck() -> StuckAmi:
    server = StuckAmi()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_action_on_a_stuck_ami_times_out_and_drops_the_connection(stuck) -> None:  # type: ignore[no-untyped-def]
    ami = AmiConnection("127.0.0.1", stuck.server_address[1], "u", "s", timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(AmiError):
        ami.action({"Action": "Redirect", "Channel": "PJSIP/x-1"})
    assert time.monotonic() - started < 2
    assert ami._sock is None  # the next action starts afresh


def test_redirects_go_on_when_one_ami_connection_is_stuck(stuck, queue: CallQueue) -> None:  # type: ignore[no-untyped-def]
    """Every worker's connection wedges: offers are still taken off the bounded queue
    and time out one by one, never piling up behind a blocked socket."""
    from rq import Queue

    handler = CallHandler(queue, Queue("hotline", connection=queue.redis), None)
    redirector = OfferRedirector(
        handler,
        lambda: AmiConnection("127.0.0.1", stuck.server_address[1], "u", "s", timeout_s=0.2),
        workers=2,
        max_pending=3,
    )
    attempts: list[str] = []
    redirector.on_offer = lambda call, seat, ami: (
        attempts.append(call)
        or ami.action(  # type: ignore[method-assign]
            {"Action": "Redirect", "Channel": call}
        )
    )
    stop = threading.Event()
    thread = threading.Thread(target=redirector.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(0.2)
    for n in range(12):
        queue.seat_login(f"s{n}")
        queue.enqueue(f"c{n}")  # each is offered at once and published
    deadline = time.monotonic() + 5
    while len(attempts) + redirector.dropped < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=5)
    assert len(attempts) + redirector.dropped == 12
    assert len(attempts) >= 2 and redirector.dropped >= 1  # bounded, not blocked


def test_the_client_reconnects_after_the_manager_restarts() -> None:
    emulator = AsteriskEmulator(0, {}, lambda *_: None)
    first = AmiServer(emulator, "hotline", "pw")
    port = first.port
    accepted: list[socket.socket] = []
    first.RequestHandlerClass = type(  # type: ignore[misc]
        "Recording",
        (first.RequestHandlerClass,),
        {"setup": lambda h: (accepted.append(h.request), AmiHandler.setup(h))},
    )
    threading.Thread(target=first.serve_forever, daemon=True).start()
    ami = AmiConnection("127.0.0.1", port, "hotline", "pw", timeout_s=1)
    try:
        assert ami.action({"Action": "Redirect", "Channel": "nope"})["Response"] == "Error"
        first.shutdown()  # Asterisk stops: the listener and every connection go
        first.server_close()
        for conn in accepted:
            conn.shutdown(socket.SHUT_RDWR)
        with pytest.raises(AmiError):
            ami.action({"Action": "Redirect", "Channel": "nope"})
        second = AmiServer(emulator, "hotline", "pw", port=port)
        threading.Thread(target=second.serve_forever, daemon=True).start()
        assert ami.action({"Action": "Redirect", "Channel": "nope"})["Response"] == "Error"
        second.shutdown()
        second.server_close()
    finally:
        ami.close()


def test_a_field_with_a_line_break_is_refused_before_sending(stuck) -> None:  # type: ignore[no-untyped-def]
    ami = AmiConnection("127.0.0.1", stuck.server_address[1], "u", "s", timeout_s=0.3)
    with pytest.raises((AmiError, ValueError)):
        ami.action({"Action": "Redirect", "Channel": "x\r\nAction: Originate"})
    ami.close()


def test_nothing_listening_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AmiError):
        AmiConnection("127.0.0.1", port, "u", "s", timeout_s=0.3).action({"Action": "Ping"})


def test_a_refused_reconciliation_keeps_its_connections(queue: CallQueue) -> None:
    """An AMI user that may not list channels (the emulator, too, refuses
    CoreShowChannels): reconciliation is tried again when due, on the same two
    connections, instead of logging in twice more every second next to the redirects."""
    from rq import Queue

    emulator = AsteriskEmulator(0, {}, lambda *_: None)
    server = AmiServer(emulator, "hotline", "pw")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    queue.seat_login("s1")
    queue.enqueue("ast-1.1")  # a live Asterisk call: there is something to reconcile
    handler = CallHandler(queue, Queue("hotline", connection=queue.redis), None)

    def connect(events: str = "off") -> AmiConnection:
        return AmiConnection("127.0.0.1", server.port, "hotline", "pw", events=events)

    reconciler = Reconciler(
        handler,
        connect,
        period_s=0.1,
        retry_s=0.05,
    )
    stop = threading.Event()
    thread = threading.Thread(target=reconciler.run, args=(stop,), daemon=True)
    thread.start()

    def seen(action: str) -> int:
        return sum(1 for a in list(server.actions) if a.get("Action") == action)

    deadline = time.monotonic() + 10
    while seen("CoreShowChannels") < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=5)
    server.shutdown()
    server.server_close()
    assert seen("CoreShowChannels") >= 5
    assert seen("Login") == 2  # one action connection, one event listener
