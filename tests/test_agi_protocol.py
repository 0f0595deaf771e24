"""The AGI wrapper and the FastAGI server against Asterisk's recorded bytes, over real
sockets (shared/reference/asterisk-fastagi-transcripts.md)."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from agi_scripts.protocol import AGIProtocolError, ChannelGone, SafeAGI
from agi_scripts.server import FastAGIServer
from agi_scripts.sessions import AgiSettings
from calls import CallerDirectory, CallHandler
from queueing import CallQueue

ENV = (
    "agi_network: yes\nagi_network_script: ivr?dept=12345\n"
    "agi_request: agi://127.0.0.1:4573/ivr?dept=12345\nagi_channel: Local/100@test-00000000;2\n"
    "agi_language: en\nagi_type: Local\nagi_uniqueid: 1795812065.1\n"
    "agi_version: 20.21.0-rc1\nagi_callerid: unknown\nagi_calleridname: unknown\n"
    "agi_callingpres: 67\nagi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\n"
    "agi_dnid: unknown\nagi_rdnis: unknown\nagi_context: test\nagi_extension: 100\n"
    "agi_priority: 2\nagi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 139787617294016\n"
    "agi_arg_1: arg one\nagi_arg_2: arg2\n\n"
)


class Peer:
    """Asterisk's end of the socket: replies with recorded lines, records commands."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rfile = sock.makefile("r", encoding="utf-8", newline="\n")
        self.commands: list[str] = []

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()

    def expect(self, reply: str) -> None:
        """Read one command, answer it with ``reply`` (which may hold several lines)."""
        self.commands.append(self.rfile.readline().rstrip("\n"))
        self.send(reply)


@pytest.fixture
def pair() -> Iterator[tuple[SafeAGI | None, Peer]]:
    ours, theirs = socket.socketpair()
    peer = Peer(theirs)
    peer.send(ENV)
    agi = SafeAGI(
        ours.makefile("r", encoding="utf-8", newline="\n"),
        ours.makefile("w", encoding="utf-8", newline="\n"),
    )
    yield agi, peer
    agi.stdin.close()
    agi.stdout.close()
    ours.close()
    peer.close()


def test_environment_and_route(pair) -> None:  # type: ignore[no-untyped-def]
    agi, _ = pair
    assert agi.script == "ivr" and agi.query == {"dept": "12345"}
    assert agi.var("agi_callerid") == "" and agi.var("agi_dnid") == ""  # "unknown"
    assert agi.var("agi_accountcode") == "" and agi.var("agi_arg_1") == "arg one"


def test_get_data_results(pair) -> None:  # type: ignore[no-untyped-def]
    agi, peer = pair

    def reply(line: str) -> str:
        threading.Thread(target=peer.expect, args=(line,)).start()
        return agi.read_digits("beep", 1500, 4)

    assert reply("200 result= (timeout)\n") == ""
    assert reply("200 result=4 (timeout)\n") == "4"
    assert reply("200 result=42\n") == "42"
    assert peer.commands[0] == "GET DATA beep 1500 4"
    with pytest.raises(ChannelGone):
        reply("200 result=-1\n")


def test_dtmf_arrives_as_ascii_codes(pair) -> None:  # type: ignore[no-untyped-def]
    agi, peer = pair
    threading.Thread(target=peer.expect, args=("200 result=55 endpos=800\n",)).start()
    assert agi.play("beep", "7") == "7"
    threading.Thread(target=peer.expect, args=("200 result=35 endpos=800\n",)).start()
    assert agi.play("beep", "#") == "#"
    threading.Thread(target=peer.expect, args=("200 result=50 endpos=4160\n",)).start()
    assert agi.play("queue-periodic-announce", "0123456789*#") == "2"


def test_missing_file_is_skipped_but_a_hangup_in_playback_is_not(pair) -> None:  # type: ignore[no-untyped-def]
    agi, peer = pair
    threading.Thread(target=peer.expect, args=("200 result=-1 endpos=0\n",)).start()
    assert agi.play("no-such-file") == ""
    threading.Thread(target=peer.expect, args=("200 result=-1 endpos=8160\nHANGUP\n",)).start()
    with pytest.raises(ChannelGone):
        agi.play("queue-periodic-announce")


def test_unsolicited_hangup_does_not_shift_replies_and_511_means_gone(pair) -> None:  # type: ignore[no-untyped-def]
    agi, peer = pair
    peer.send("HANGUP\n")  # idle: before any command
    threading.Thread(target=peer.expect, args=("200 result=1 (bar baz)\n",)).start()
    assert agi.get_var("FOO") == "bar baz" and agi.hungup
    threading.Thread(
        target=peer.expect,
        args=("511 Command Not Permitted on a dead channel or intercept routine\n",),
    ).start()
    with pytest.raises(ChannelGone):
        agi.play("beep")


def test_multi_line_usage_and_invalid_commands_keep_the_stream_in_step(pair) -> None:  # type: ignore[no-untyped-def]
    agi, peer = pair
    usage = (
        "520-Invalid command syntax.  Proper usage follows:\n"
        "Waits up to <replaceable>timeout</replaceable> milliseconds.\n"
        "520 End of proper usage.\n"
    )
    threading.Thread(target=peer.expect, args=(usage,)).start()
    with pytest.raises(AGIProtocolError, match="bad usage"):
        agi.execute("WAIT FOR DIGIT")
    threading.Thread(target=peer.expect, args=("510 Invalid or unknown command\n",)).start()
    with pytest.raises(AGIProtocolError, match="invalid command"):
        agi.execute("FOO BAR")
    threading.Thread(target=peer.expect, args=("200 result=1\n",)).start()
    agi.set_var("FOO", 'say "hi" \\ now')  # the next reply is read in step
    assert peer.commands[-1] == 'SET VARIABLE FOO "say \\"hi\\" \\\\ now"'


def test_exec_joins_arguments_into_one_quoted_string(pair) -> None:  # type: ignore[no-untyped-def]
    agi, peer = pair
    threading.Thread(target=peer.expect, args=("200 result=-1\n",)).start()
    assert agi.exec_app("Dial", "PJSIP/1001", "18", "U(hotline-answered^c^1001)") == -1
    assert peer.commands[-1] == 'EXEC Dial "PJSIP/1001,18,U(hotline-answered^c^1001)"'


@contextmanager
def serving(
    queue: CallQueue, settings: AgiSettings, directory: CallerDirectory | None = None
) -> Iterator[FastAGIServer]:
    """A FastAGI server on a free loopback port, serving until the block ends."""
    from rq import Queue

    handler = CallHandler(queue, Queue("hotline", connection=queue.redis), directory)
    server = FastAGIServer(("127.0.0.1", 0), handler, settings)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def agi_server(queue: CallQueue) -> Iterator[FastAGIServer]:
    with serving(queue, AgiSettings(sounds="/s")) as server:
        yield server


def connect(server: FastAGIServer) -> socket.socket:
    return socket.create_connection(server.server_address[:2], timeout=5)


def wait_idle(server: FastAGIServer) -> None:
    deadline = time.monotonic() + 5
    while server.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.active == 0


def test_route_with_a_query_string_still_routes(agi_server, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    sock = connect(agi_server)
    peer = Peer(sock)
    peer.send(ENV.replace("ivr?dept=12345", "inbound?dept=12345&x=1"))
    peer.expect("200 result=0\n")  # ANSWER
    assert peer.commands == ["ANSWER"]
    peer.close()
    wait_idle(agi_server)


@pytest.mark.parametrize("garbage", ["hello world\n\n", "agi_network: yes\n", "\x00\xff\n\n"])
def test_a_malformed_conversation_is_closed_and_others_go_on(agi_server, queue, garbage) -> None:  # type: ignore[no-untyped-def]
    bad = connect(agi_server)
    bad.sendall(garbage.encode("latin-1"))
    if not garbage.endswith("\n\n"):
        bad.shutdown(socket.SHUT_WR)  # truncated: the peer stops mid-environment
    bad.settimeout(5)
    assert bad.recv(100) == b""  # the server closed it
    bad.close()
    good = connect(agi_server)
    peer = Peer(good)
    peer.send(ENV.replace("ivr?dept=12345", "nosuchroute"))
    peer.expect("200 result=1\n")  # VERBOSE about the unknown route
    assert peer.commands[0].startswith("VERBOSE")
    peer.close()
    wait_idle(agi_server)


def test_hangup_mid_session_frees_the_thread(agi_server, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    sock = connect(agi_server)
    peer = Peer(sock)
    peer.send(ENV.replace("ivr?dept=12345", "inbound"))
    peer.expect("200 result=0\n")  # ANSWER
    peer.expect("200 result=-1 endpos=1200\nHANGUP\n")  # greeting cut short by a hangup
    sock.settimeout(5)
    assert sock.recv(100) == b""  # the server ended the session
    peer.close()
    wait_idle(agi_server)
    assert queue.call("ast-1795812065.1")["state"] == "waiting"  # only the h extension ends it


def test_dialstatus_answer_is_a_conversation_even_if_the_queue_moved_on(agi_server, queue) -> None:  # type: ignore[no-untyped-def]
    """Asterisk says the seat answered (the answered route's request was lost, or came
    after the queue gave up on the seat): the call is completed, not re-queued, and the
    operator who talked is not paused."""
    queue.seat_login("1001")
    queue.enqueue("ast-1795812065.1")  # offered to 1001 at once
    sock = connect(agi_server)
    peer = Peer(sock)
    peer.send(ENV.replace("ivr?dept=12345", "bridge"))
    peer.expect("200 result=0\n")  # EXEC Dial: the conversation, then the operator hangs up
    assert peer.commands[-1].startswith('EXEC Dial "PJSIP/1001,')
    queue.no_answer("ast-1795812065.1", "1001", "timeout")  # the queue gave up meanwhile
    peer.expect("200 result=1 (ANSWER)\n")  # GET VARIABLE DIALSTATUS
    peer.expect("200 result=0 endpos=8000\n")  # STREAM FILE goodbye
    peer.expect("200 result=1\n")  # SET VARIABLE HOTLINE_NEXT "hangup"
    assert peer.commands[-1] == 'SET VARIABLE HOTLINE_NEXT "hangup"'
    peer.close()
    wait_idle(agi_server)
    call = queue.call("ast-1795812065.1")
    assert (call["state"], call["outcome"], call["seat"]) == ("ended", "completed", "1001")
    assert queue.seat("1001")["state"] != "paused"


@pytest.fixture
def strict_agi_server(queue: CallQueue) -> Iterator[FastAGIServer]:
    settings = AgiSettings(
        sounds="/s", read_timeout_s=0.5, env_timeout_s=0.5, max_sessions=4, allow=("127.0.0.2",)
    )
    with serving(queue, settings) as server:
        yield server


def test_a_peer_outside_the_allow_list_is_closed_at_once(strict_agi_server) -> None:  # type: ignore[no-untyped-def]
    sock = connect(strict_agi_server)  # from 127.0.0.1; only 127.0.0.2 is allowed
    sock.settimeout(5)
    assert sock.recv(100) == b""
    sock.close()
    assert strict_agi_server.refused == 1 and strict_agi_server.served == 0


def from_allowed(server: FastAGIServer) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    sock.settimeout(5)
    sock.connect(server.server_address[:2])
    return sock


def test_a_silent_peer_is_dropped_after_the_read_timeout(strict_agi_server) -> None:  # type: ignore[no-untyped-def]
    silent = [from_allowed(strict_agi_server) for _ in range(4)]  # every session slot
    started = time.monotonic()
    for sock in silent:
        assert sock.recv(100) == b""  # closed by the server, not by us
        sock.close()
    assert time.monotonic() - started < 4  # the 0.5 s read timeout, not an hour
    wait_idle(strict_agi_server)
    # The slots are free again for Asterisk.
    good = from_allowed(strict_agi_server)
    peer = Peer(good)
    peer.send(ENV.replace("ivr?dept=12345", "nosuchroute"))
    peer.expect("200 result=1\n")
    assert peer.commands[0].startswith("VERBOSE")
    peer.close()


def test_an_unterminated_line_is_refused_without_buffering_it(strict_agi_server) -> None:  # type: ignore[no-untyped-def]
    sock = from_allowed(strict_agi_server)
    try:
        sock.sendall(b"agi_network: yes\nagi_request: " + b"x" * 100_000)
    except OSError:
        pass  # the server may close before the whole line is sent
    assert sock.recv(100) == b""
    sock.close()
    wait_idle(strict_agi_server)


def test_sessions_past_the_limit_wait_for_a_slot(strict_agi_server) -> None:  # type: ignore[no-untyped-def]
    """Five sessions, four slots: four are served at once; the fifth waits until a slot
    frees (here: a silent peer's 0.5 s read timeout), in the listen backlog."""
    started = time.monotonic()
    socks = [from_allowed(strict_agi_server) for _ in range(5)]
    served_at = []
    for sock in socks:
        sock.sendall(ENV.replace("ivr?dept=12345", "nosuchroute").encode())
    for sock in socks:  # each session says VERBOSE, then waits for a reply we never send
        assert sock.recv(100).startswith(b"VERBOSE")
        served_at.append(time.monotonic() - started)
    for sock in socks:
        sock.close()
    served_at.sort()
    assert served_at[3] < 0.4 <= served_at[4], served_at
    wait_idle(strict_agi_server)


def test_a_talk_the_queue_saw_start_frees_the_seat_in_one_step(agi_server, queue) -> None:  # type: ignore[no-untyped-def]
    """The answered route recorded the pick-up: when the talk ends, the seat's next
    caller is offered by the completion itself, with no second answer before it (each
    step before the offer is a seat left idle under a burst)."""
    queue.seat_login("1001")
    queue.enqueue("ast-1795812065.1")  # offered to 1001 at once
    queue.answer("ast-1795812065.1", "1001")  # the answered route, at the pick-up
    queue.enqueue("ast-next")  # the next caller, waiting
    commands: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        with queue.redis.monitor() as monitor:
            while not stop.is_set():
                command = monitor.next_command()["command"]
                commands.append(command)
                if command.startswith("PING"):
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.2)  # MONITOR is on
    sock = connect(agi_server)
    peer = Peer(sock)
    peer.send(ENV.replace("ivr?dept=12345", "bridge"))
    peer.expect("200 result=-1\n")  # EXEC Dial: the talk is over
    peer.expect("200 result=1 (ANSWER)\n")  # GET VARIABLE DIALSTATUS
    peer.expect("200 result=0 endpos=8000\n")  # STREAM FILE goodbye
    peer.expect("200 result=1\n")  # SET VARIABLE HOTLINE_NEXT "hangup"
    peer.close()
    wait_idle(agi_server)
    stop.set()
    queue.redis.ping()
    watcher.join(timeout=5)
    assert queue.call("ast-next")["state"] == "offered" and queue.call("ast-next")["seat"] == "1001"
    assert queue.call("ast-1795812065.1")["outcome"] == "completed"
    answer_sha = queue._scripts["answer"].sha
    assert not [c for c in commands if answer_sha in c], "the pick-up was recorded again"
