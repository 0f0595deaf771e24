"""Who may open FastAGI sessions, and for how long (issue 17, finding 10): the default
allow-list is the configured Asterisk only, a session holds its slot no longer than its
deadlines however slowly the bytes come, and with a shared secret configured a local
process cannot inject a call (a spoofed caller id gets nothing, not even a queue entry).
Real sockets, a real redis-server and a real SQLite register of vulnerable callers."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agi_scripts.protocol import SafeAGI
from agi_scripts.server import AllowList, FastAGIServer
from agi_scripts.sessions import AgiSettings
from calls import CallerDirectory
from cases.db import engine_for, session_factory, upgrade
from cases.models import CitizenRegister
from cases.phones import PhoneSettings, normalise
from hotline.config import ConfigError, load_settings
from hotline.runtime import agi_settings
from queueing import CallQueue
from tests.conftest import wait_until
from tests.test_agi_protocol import ENV, Peer, serving

SECRET = "agi-test-secret-0123456789"
ELDER = "13800138000"  # registered as vulnerable: the number a spoofer would claim
CALL = "ast-1795812065.1"  # the uniqueid in ENV


def env_for(script: str, caller: str = "unknown") -> str:
    return ENV.replace("ivr?dept=12345", script).replace(
        "agi_callerid: unknown", f"agi_callerid: {caller}"
    )


def connect_from(server: FastAGIServer, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(server.server_address[:2])
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def wait_idle(server: FastAGIServer) -> None:
    wait_until(lambda: server.active == 0, timeout_s=10)


def a_session_is_served(server: FastAGIServer, source: str = "127.0.0.1") -> None:
    """A whole conversation on an unknown route: the server says VERBOSE and ends."""
    peer = Peer(connect_from(server, source))
    peer.send(env_for("nosuchroute"))
    peer.expect("200 result=1\n")
    assert peer.commands[0].startswith("VERBOSE")
    assert closed_by_server(peer.sock)
    peer.close()


# -- the allow-list ----------------------------------------------------------------------


def test_the_default_allow_list_is_the_configured_asterisk_only() -> None:
    assert load_settings({}).agi_allow == ("127.0.0.1", "::1")  # single box: this machine
    assert load_settings({"ASTERISK_AMI_HOST": "asterisk"}).agi_allow == ("asterisk",)
    explicit = {"ASTERISK_AMI_HOST": "asterisk", "HOTLINE_AGI_ALLOW": "10.0.0.5, pbx"}
    assert load_settings(explicit).agi_allow == ("10.0.0.5", "pbx")


def test_another_loopback_address_is_refused_by_default(queue: CallQueue, tmp_path: Path) -> None:
    settings = agi_settings(load_settings({"HOTLINE_VAR_DIR": str(tmp_path)}))
    with serving(queue, settings) as server:
        intruder = connect_from(server, "127.0.0.2")  # a local process, not Asterisk
        assert closed_by_server(intruder)
        intruder.close()
        assert server.refused == 1 and server.served == 0
        a_session_is_served(server, "127.0.0.1")
        wait_idle(server)


def test_an_allowed_host_name_is_resolved_again_when_its_address_changes() -> None:
    addresses = {"asterisk": ["172.18.0.5"]}
    allow = AllowList(["asterisk"], retry_s=0.0, resolve=lambda name: addresses[name])
    old, new = _ip("172.18.0.5"), _ip("172.18.0.9")
    assert allow.allows(old) and not allow.allows(new)
    addresses["asterisk"] = ["172.18.0.9"]  # the container restarted elsewhere
    assert allow.allows(new) and not allow.allows(old)
    del addresses["asterisk"]  # DNS down: the last good address still stands
    assert allow.allows(new)


def _ip(text: str):  # type: ignore[no-untyped-def]
    import ipaddress

    return ipaddress.ip_address(text)


# -- a trickling peer --------------------------------------------------------------------


def trickle(sock: socket.socket, data: bytes, every_s: float = 0.2, limit_s: float = 30) -> bool:
    """Send one byte every ``every_s`` until the server closes the connection (True) or
    ``limit_s`` passes (False)."""
    for i in range(int(limit_s / every_s)):
        try:
            sock.sendall(data[i % len(data) : i % len(data) + 1])
        except OSError:
            return True
        readable, _, _ = select.select([sock], [], [], every_s)
        if readable and closed_by_server(sock):
            return True
    return False


@pytest.fixture
def one_slot_server(queue: CallQueue) -> Iterator[FastAGIServer]:
    # Per-byte waits (0.2 s) are far inside the timeouts: only a deadline per line helps.
    settings = AgiSettings(sounds="/s", read_timeout_s=1.0, env_timeout_s=1.0, max_sessions=1)
    with serving(queue, settings) as server:
        yield server


def test_a_peer_trickling_its_environment_loses_the_slot(one_slot_server) -> None:  # type: ignore[no-untyped-def]
    slow = connect_from(one_slot_server, "127.0.0.1")
    assert trickle(slow, env_for("inbound").encode())  # never finishes on its own
    slow.close()
    wait_idle(one_slot_server)
    a_session_is_served(one_slot_server)  # the only slot is free again


def test_a_peer_trickling_a_reply_loses_the_slot(one_slot_server) -> None:  # type: ignore[no-untyped-def]
    slow = Peer(connect_from(one_slot_server, "127.0.0.1"))
    slow.send(env_for("nosuchroute"))
    assert slow.rfile.readline().startswith("VERBOSE")
    assert trickle(slow.sock, b"200 result=1" + b" " * 8000)  # one line, never ended
    slow.close()
    wait_idle(one_slot_server)
    a_session_is_served(one_slot_server)


# -- the shared secret -------------------------------------------------------------------


@pytest.fixture
def register(tmp_path: Path) -> CallerDirectory:
    url = f"sqlite:///{tmp_path / 'register.db'}"
    upgrade(url)
    sessions = session_factory(engine_for(url))
    with sessions() as session:
        phone = normalise(ELDER, PhoneSettings())
        session.add(CitizenRegister(phone=phone, name="", added_at=datetime.now(UTC)))
        session.commit()
    return CallerDirectory(sessions)


@pytest.fixture
def secret_server(queue: CallQueue, register: CallerDirectory) -> Iterator[FastAGIServer]:
    settings = AgiSettings(sounds="/s", read_timeout_s=5.0, secret=SECRET)
    with serving(queue, settings, register) as server:
        yield server


@pytest.mark.parametrize("script", ["inbound", "wrong-secret-0123456789/inbound", "/inbound"])
def test_a_session_without_the_secret_is_hung_up_and_queues_nothing(  # type: ignore[no-untyped-def]
    secret_server, queue, caplog, script
) -> None:
    """A local process claiming a registered elder's number, with no or a wrong secret."""
    peer = Peer(connect_from(secret_server, "127.0.0.1"))
    peer.send(env_for(script, caller=ELDER))
    peer.expect("200 result=1\n")
    assert peer.commands == ["HANGUP"]
    assert closed_by_server(peer.sock)
    peer.close()
    wait_idle(secret_server)
    assert secret_server.unauthenticated == 1
    assert queue.call(CALL) == {} and queue.live_calls() == []
    assert "127.0.0.1" in caplog.text and "HOTLINE_AGI_SECRET" in caplog.text
    assert SECRET not in caplog.text and "wrong-secret" not in caplog.text


def test_the_right_secret_lets_the_call_in_with_its_priority(secret_server, queue, caplog) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")  # staffed but busy: the call waits
    peer = Peer(connect_from(secret_server, "127.0.0.1"))
    peer.send(env_for(f"{SECRET}/inbound?dept=12345", caller=ELDER))
    peer.expect("200 result=0\n")  # ANSWER
    assert peer.commands == ["ANSWER"]
    wait_until(lambda: queue.call(CALL).get("state") == "waiting", timeout_s=10)
    assert queue.call(CALL)["priority"] == "vulnerable"
    peer.close()
    wait_idle(secret_server)
    assert secret_server.unauthenticated == 0
    assert SECRET not in caplog.text


def test_the_secret_is_checked_in_configuration_and_never_shown() -> None:
    settings = load_settings({"HOTLINE_AGI_SECRET": SECRET})
    assert settings.agi_secret == SECRET and SECRET not in repr(settings)
    assert SECRET not in repr(agi_settings(settings))
    assert load_settings({}).agi_secret is None
    for bad in ("short", "has space in it 0123", "slash/in/the/secret/0123"):
        with pytest.raises(ConfigError) as raised:
            load_settings({"HOTLINE_AGI_SECRET": bad})
        assert bad not in str(raised.value)


def test_the_route_and_the_secret_are_read_from_the_script_path() -> None:
    ours, theirs = socket.socketpair()
    try:
        for script, route, key in [
            ("inbound", "inbound", ""),
            ("/inbound", "inbound", ""),  # the dialplan's URL with an empty secret
            (f"{SECRET}/hold?event=key&digit=1", "hold", SECRET),
        ]:
            theirs.sendall(env_for(script).encode())
            agi = SafeAGI(
                ours.makefile("r", encoding="utf-8", newline="\n"),
                ours.makefile("w", encoding="utf-8", newline="\n"),
            )
            assert (agi.script, agi.key) == (route, key)
            agi.stdin.close()
            agi.stdout.close()
    finally:
        ours.close()
        theirs.close()
