"""An Asterisk stand-in for the tests: FastAGI exactly as the recorded transcripts show
(environment block, 200/510/511 replies, DTMF as ASCII codes, unsolicited HANGUP lines,
dead-channel behaviour), the dialplan of docker/asterisk/extensions.conf (hold loop with
WaitExten, the h extension, AMI Redirect into hotline-bridge, Dial with a U() gosub and
DIALSTATUS), and an AMI server for Login, Redirect, Originate and Logoff.

Each emulated channel runs in a thread of its own, as a channel does in Asterisk.
"""

from __future__ import annotations

import itertools
import re
import shlex
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

VERSION = "20.21.0-rc1"
_unique = itertools.count(1)
_ENV_ORDER = (
    "agi_network",
    "agi_network_script",
    "agi_request",
    "agi_channel",
    "agi_language",
    "agi_type",
    "agi_uniqueid",
    "agi_version",
    "agi_callerid",
    "agi_calleridname",
    "agi_callingpres",
    "agi_callingani2",
    "agi_callington",
    "agi_callingtns",
    "agi_dnid",
    "agi_rdnis",
    "agi_context",
    "agi_extension",
    "agi_priority",
    "agi_enhanced",
    "agi_accountcode",
    "agi_threadid",
)
DEAD_OK = ("GET VARIABLE", "SET VARIABLE", "VERBOSE", "EXEC", "NOOP", "GET FULL VARIABLE")


class Interrupted(Exception):
    """The channel hung up or was redirected while a command ran."""


@dataclass
class Operator:
    seat: str
    answer_after_s: float | None = 1.0  # None: never answers
    talk_s: float = 2.0
    form: dict[str, Any] = field(default_factory=dict)


@dataclass
class Channel:
    emulator: AsteriskEmulator
    caller: str
    dialed: str
    uniqueid: str = field(default_factory=lambda: f"1795812{next(_unique):03d}.{next(_unique)}")
    variables: dict[str, str] = field(default_factory=dict)
    heard: list[str] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    inbox: list[str] = field(default_factory=list)
    listening: bool = False
    hung_up: bool = False
    redirect_to: str | None = None
    in_agi: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return f"PJSIP/trunk-{self.uniqueid.replace('.', '')}"

    # -- what the scripted caller does ----------------------------------------------

    def press(self, digit: str) -> None:
        with self.lock:
            if self.listening:  # Asterisk drops DTMF while no command listens
                self.inbox.append(digit)
            else:
                self.heard.append(f"pressed {digit} (dropped)")
            self.lock.notify_all()

    def hang_up(self) -> None:
        with self.lock:
            self.hung_up = True
            self.lock.notify_all()

    def redirect(self, context: str) -> None:
        with self.lock:
            self.redirect_to = context
            self.lock.notify_all()

    def wait(self, seconds: float, *, digits: bool) -> str:
        """Block for up to ``seconds``; return a digit, '' on timeout; raise on hangup or
        redirect."""
        deadline = time.monotonic() + seconds
        with self.lock:
            self.listening = digits
            try:
                while True:
                    if self.hung_up or self.redirect_to:
                        raise Interrupted
                    if digits and self.inbox:
                        return self.inbox.pop(0)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return ""
                    self.lock.wait(left)
            finally:
                self.listening = False


class AgiConnection:
    """One AGI session from Asterisk's side of the socket."""

    def __init__(
        self,
        channel: Channel,
        route: str,
        args: tuple[str, ...] = (),
        context: str = "hotline-inbound",
    ) -> None:
        self.channel, self.route, self.args, self.context = channel, route, args, context
        self.dead = False  # after a hangup or redirect: 511 for most commands
        self.hangup_sent = False
        self.commands: list[str] = []  # this session's, in order

    def env(self) -> str:
        em, ch = self.channel.emulator, self.channel
        values = {
            "agi_network": "yes",
            "agi_network_script": self.route,
            "agi_request": f"agi://127.0.0.1:{em.agi_port}/{self.route}",
            "agi_channel": ch.name,
            "agi_language": "zh",
            "agi_type": "PJSIP",
            "agi_uniqueid": ch.uniqueid,
            "agi_version": VERSION,
            "agi_callerid": ch.caller or "unknown",
            "agi_calleridname": "unknown",
            "agi_callingpres": "0",
            "agi_callingani2": "0",
            "agi_callington": "0",
            "agi_callingtns": "0",
            "agi_dnid": ch.dialed or "unknown",
            "agi_rdnis": "unknown",
            "agi_context": self.context,
            "agi_extension": ch.dialed or "s",
            "agi_priority": "2",
            "agi_enhanced": "0.0",
            "agi_accountcode": "",
            "agi_threadid": str(threading.get_ident()),
        }
        lines = [f"{k}: {values[k]}\n" for k in _ENV_ORDER]
        # [hotline-agi]: the route's three arguments (empty ones too), then the channel's
        # HOTLINE_RECORDING.
        args = [*self.args, "", "", ""][:3] + [ch.variables.get("HOTLINE_RECORDING", "")]
        lines += [f"agi_arg_{i}: {a}\n" for i, a in enumerate(args, start=1)]
        return "".join(lines) + "\n"

    def run(self) -> None:
        em = self.channel.emulator
        em.sessions.append(self)
        sock = socket.create_connection(("127.0.0.1", em.agi_port), timeout=120)
        rfile = sock.makefile("r", encoding="utf-8", newline="\n")
        wfile = sock.makefile("w", encoding="utf-8", newline="\n")
        with self.channel.lock:
            self.channel.in_agi = True
        try:
            wfile.write(self.env())
            wfile.flush()
            while True:
                line = rfile.readline()
                if not line:
                    return  # the server closed the session
                reply = self.reply(line.rstrip("\n"))
                wfile.write(reply)
                wfile.flush()
        except (ConnectionError, OSError):
            return
        finally:
            with self.channel.lock:
                self.channel.in_agi = False
            for f in (rfile, wfile):
                try:
                    f.close()
                except OSError:
                    pass
            sock.close()

    def _gone(self) -> str:
        """The reply to a command interrupted by hangup or redirect, plus HANGUP."""
        self.dead = True
        self.hangup_sent = True
        return "200 result=-1\nHANGUP\n"

    def reply(self, command: str) -> str:
        ch, em = self.channel, self.channel.emulator
        em.commands.append(command)
        self.commands.append(command)
        words = shlex.split(command) if command.count('"') % 2 == 0 else command.split()
        verb = " ".join(words[:2]).upper() if len(words) >= 2 else command.upper()
        if self.dead and not any(command.upper().startswith(v) for v in DEAD_OK):
            return "511 Command Not Permitted on a dead channel or intercept routine\n"
        if (ch.hung_up or ch.redirect_to) and not self.hangup_sent and not self.dead:
            self.dead, self.hangup_sent = True, True
            # Asterisk tells the AGI at once; this command then fails like the rest.
            if not any(command.upper().startswith(v) for v in DEAD_OK):
                return "HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n"
            prefix = "HANGUP\n"
        else:
            prefix = ""
        try:
            return prefix + self._reply(verb, words, command)
        except Interrupted:
            return self._gone()

    def _reply(self, verb: str, words: list[str], command: str) -> str:
        ch, em = self.channel, self.channel.emulator
        if command.upper() == "ANSWER":
            return "200 result=0\n"
        if verb == "STREAM FILE":
            ch.heard.append(words[2].rsplit("/", 1)[-1])
            escape = words[3] if len(words) > 3 else ""
            digit = ch.wait(em.playback_s, digits=bool(escape))
            if digit and digit in escape:
                return f"200 result={ord(digit)} endpos=2560\n"
            return "200 result=0 endpos=8160\n"
        if verb == "GET DATA":
            ch.heard.append(words[2].rsplit("/", 1)[-1])
            timeout_s, max_digits = int(words[3]) / 1000, int(words[4])
            got = ""
            deadline = time.monotonic() + timeout_s
            while len(got) < max_digits:
                left = deadline - time.monotonic()
                digit = ch.wait(max(0.0, left), digits=True) if left > 0 else ""
                if not digit:
                    return f"200 result={got} (timeout)\n" if got else "200 result= (timeout)\n"
                if digit == "#":
                    break
                got += digit
            return f"200 result={got}\n"
        if verb == "WAIT FOR":
            digit = ch.wait(int(words[3]) / 1000, digits=True)
            return f"200 result={ord(digit) if digit else 0}\n"
        if verb == "SET VARIABLE":
            ch.variables[words[2]] = words[3] if len(words) > 3 else ""
            return "200 result=1\n"
        if verb == "GET VARIABLE":
            value = ch.variables.get(words[2])
            return f"200 result=1 ({value})\n" if value is not None else "200 result=0\n"
        if verb == "VERBOSE" or command.upper().startswith("VERBOSE"):
            return "200 result=1\n"
        if command.upper() == "NOOP":
            return "200 result=0\n"
        if verb == "CHANNEL STATUS":
            return "200 result=6\n"
        if words and words[0].upper() == "EXEC":
            app = words[1]
            if app == "Dial":
                return em.dial(ch, words[2] if len(words) > 2 else "")
            if app in ("Playback", "StartMusicOnHold", "StopMusicOnHold"):
                return "200 result=0\n"
            if app == "MixMonitor":  # i(VAR): the MixMonitor's id on the channel
                options = (words[2] if len(words) > 2 else "").split(",", 1)[-1]
                marked = re.search(r"i\((\w+)\)", options)
                if marked:
                    ch.variables[marked.group(1)] = f"0x{id(ch):x}"
                return "200 result=0\n"
            return "200 result=-2\n"
        return "510 Invalid or unknown command\n"


class AsteriskEmulator:
    def __init__(
        self,
        agi_port: int,
        operators: dict[str, Operator],
        submit_form: Callable[[str, dict[str, Any]], None],
        hold_s: float = 1.0,
        playback_s: float = 0.02,
        on_dial: Callable[[str, float], None] | None = None,
    ) -> None:
        self.agi_port = agi_port
        self.operators = operators
        self.submit_form = submit_form
        self.hold_s = hold_s
        self.playback_s = playback_s
        self.on_dial = on_dial
        self.channels: dict[str, Channel] = {}
        self.commands: list[str] = []
        self.sessions: list[AgiConnection] = []
        self._lock = threading.Lock()
        self.ami: AmiServer | None = None

    # -- the dialplan --------------------------------------------------------------------

    def agi(self, channel: Channel, route: str, context: str) -> str:
        channel.variables["HOTLINE_NEXT"] = ""  # Set(HOTLINE_NEXT=) before each AGI
        AgiConnection(channel, route, context=context).run()
        return channel.variables.get("HOTLINE_NEXT", "")

    def call(self, caller: str, dialed: str = "12345") -> Channel:
        channel = Channel(self, caller, dialed)
        with self._lock:
            self.channels[channel.name] = channel
        threading.Thread(target=self._run_channel, args=(channel,), daemon=True).start()
        return channel

    def _run_channel(self, ch: Channel) -> None:
        try:
            nxt = self._inbound(ch)
            while not ch.hung_up:
                if ch.redirect_to:
                    with ch.lock:
                        ch.redirect_to = None
                    # [hotline-bridge]: anything but "hangup" goes back to holding
                    nxt = self.agi(ch, "bridge", "hotline-bridge") or "hold"
                    continue
                if nxt == "hangup":
                    break  # Hangup(): the hotline ended the call
                nxt = self._wait_exten(ch)
            self.agi(ch, "hangup", "hotline-inbound")  # exten => h,1,AGI(.../hangup)
        finally:
            ch.done.set()

    def _inbound(self, ch: Channel) -> str:
        """[hotline-inbound]: the AGI, tried three times a second apart, then hold."""
        for _ in range(3):
            nxt = self.agi(ch, "inbound", "hotline-inbound")
            if nxt in ("hold", "hangup") or ch.hung_up or ch.redirect_to:
                return nxt or "hold"  # a redirect has moved the channel on
            time.sleep(1)
        return "hold"

    def _wait_exten(self, ch: Channel) -> str:
        """[hotline-hold] WaitExten(HOLD_S,m): music, a key goes to its extension."""
        try:
            digit = ch.wait(self.hold_s, digits=True)
        except Interrupted:
            return "hold"  # the loop above sees the hangup or the redirect
        if digit:
            return self.agi_with_query(ch, f"hold?event=key&digit={digit}")
        return self.agi_with_query(ch, "hold?event=timeout")

    def agi_with_query(self, ch: Channel, route: str) -> str:
        nxt = self.agi(ch, route, "hotline-hold")
        return nxt if nxt in ("hold", "hangup") else "hold"

    # -- Dial ------------------------------------------------------------------------------

    def dial(self, ch: Channel, data: str) -> str:
        # "PJSIP/1001,18,U(hotline-answered^call^seat)"
        parts = data.split(",")
        seat = parts[0].split("/", 1)[-1]
        ring_timeout = float(parts[1]) if len(parts) > 1 and parts[1] else 30.0
        gosub = re.search(r"U\(([^)]*)\)", data)
        if self.on_dial:
            self.on_dial(ch.uniqueid, time.time())
        ch.heard.append(f"rings seat {seat}")
        op = self.operators.get(seat)
        if op is None:
            ch.variables["DIALSTATUS"] = "CHANUNAVAIL"
            return "200 result=0\n"
        start = time.monotonic()
        answer_at = None if op.answer_after_s is None else min(op.answer_after_s, ring_timeout)
        try:
            ch.wait(answer_at if answer_at is not None else ring_timeout, digits=False)
        except Interrupted:
            ch.variables["DIALSTATUS"] = "CANCEL"
            raise
        if answer_at is None or time.monotonic() - start >= ring_timeout:
            ch.variables["DIALSTATUS"] = "NOANSWER"
            return "200 result=0\n"
        # The operator picked up: the U() gosub runs on their channel.
        if gosub:
            _, call, seat_arg = gosub.group(1).split("^")
            callee = Channel(self, f"client:{seat}", seat)
            AgiConnection(callee, "answered", (call, seat_arg), "hotline-answered").run()
            if callee.variables.get("GOSUB_RESULT") == "ABORT":
                ch.variables["DIALSTATUS"] = "NOANSWER"
                return "200 result=0\n"
            call_id = call
        else:
            call_id = ""
        ch.heard.append(f"talks with seat {seat}")
        ch.variables["DIALSTATUS"] = "ANSWER"
        try:
            ch.wait(op.talk_s, digits=False)
        except Interrupted:
            if op.form and call_id:
                self.submit_form(call_id, {**op.form, "seat": seat})
            raise
        if call_id:
            self.submit_form(call_id, {**op.form, "seat": seat})
        ch.heard.append(f"conversation ends (seat {seat} hangs up)")
        return "200 result=-1\n"  # as recorded: -1 even though DIALSTATUS is ANSWER


class AmiServer(socketserver.ThreadingTCPServer):
    """The Asterisk Manager Interface, as far as hotline uses it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, emulator: AsteriskEmulator, username: str, secret: str, port: int = 0
    ) -> None:
        self.emulator, self.username, self.secret = emulator, username, secret
        self.actions: list[dict[str, str]] = []
        emulator.ami = self
        super().__init__(("127.0.0.1", port), AmiHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class AmiHandler(socketserver.StreamRequestHandler):
    server: AmiServer

    def send(self, **fields: str) -> None:
        text = "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        self.wfile.write(text.encode())
        self.wfile.flush()

    def handle(self) -> None:
        self.wfile.write(b"Asterisk Call Manager/7.0.3\r\n")
        self.wfile.flush()
        authed = False
        fields: dict[str, str] = {}
        for raw in self.rfile:
            line = raw.decode().rstrip("\r\n")
            if line:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
                continue
            if not fields:
                continue
            action, action_id = fields.get("Action", ""), fields.get("ActionID", "")
            self.server.actions.append({**fields, "_received": str(time.time())})
            fields = {}
            if action == "Login":
                authed = (
                    self.server.actions[-1].get("Username"),
                    self.server.actions[-1].get("Secret"),
                ) == (self.server.username, self.server.secret)
                if authed:
                    self.send(
                        Response="Success", ActionID=action_id, Message="Authentication accepted"
                    )
                else:
                    self.send(Response="Error", ActionID=action_id, Message="Authentication failed")
            elif not authed:
                self.send(Response="Error", ActionID=action_id, Message="Permission denied")
            elif action == "Redirect":
                channel = self.server.emulator.channels.get(self.server.actions[-1]["Channel"])
                if channel is None or channel.hung_up:
                    self.send(Response="Error", ActionID=action_id, Message="No such channel")
                else:
                    channel.redirect(self.server.actions[-1].get("Context", ""))
                    self.send(Response="Success", ActionID=action_id, Message="Redirect successful")
            elif action == "Originate":
                self.send(
                    Response="Success", ActionID=action_id, Message="Originate successfully queued"
                )
            elif action == "Logoff":
                self.send(
                    Response="Goodbye", ActionID=action_id, Message="Thanks for all the fish."
                )
                return
            elif action == "Ping":
                self.send(Response="Success", ActionID=action_id, Ping="Pong")
            else:
                self.send(Response="Error", ActionID=action_id, Message="Invalid/unknown command")
