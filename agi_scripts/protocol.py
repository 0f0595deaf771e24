"""pyst2's AGI class, wrapped so its known defects cannot bite (see the recorded
transcripts in shared/reference/asterisk-fastagi-transcripts.md):

- its __init__ installs a SIGHUP handler, which fails outside the main thread: not called;
- it needs text-mode files: the server gives it UTF-8 text files over the socket;
- an unsolicited ``HANGUP`` line shifts every later reply by one: skipped and remembered;
- 511 (dead channel) is an unknown error to it: raised here as ChannelGone;
- every ``result=-1`` raises the same AGIAppError: here results come back as numbers
  and each command says what -1 means for it (hangup, missing file, a Dial that ended);
- its quoting does not escape quotes or backslashes: fixed;
- it writes ~2 KB of debug text per call to stderr: routed into logging at DEBUG.

Over a socket, every line has a deadline measured from when it was asked for (the whole
environment from the connection, a reply from its command), not from the last byte: a
peer trickling one byte at a time cannot hold a session.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from asterisk.agi import AGI

log = logging.getLogger("hotline.agi.protocol")

_CODE = re.compile(r"^(\d{3})[ -](.*)$")
_RESULT = re.compile(r"result=(-?\d*)(?:\s+\((.*?)\))?(?:\s+endpos=(\d+))?")
UNKNOWN = "unknown"
MAX_LINE = 8192  # Asterisk's longest lines (environment, usage text) are far shorter
MAX_ENV_LINES = 256


class AGIProtocolError(Exception):
    """The peer said something that is not AGI; this connection is closed."""


class ChannelGone(Exception):
    """The channel hung up or left the AGI (511, HANGUP, or the socket closed)."""


class _LogWriter:
    """A file-like stderr for pyst2 that sends its chatter to logging."""

    def write(self, text: str) -> int:
        if text.strip():
            log.debug("pyst2: %s", text.rstrip())
        return len(text)

    def flush(self) -> None:
        pass


class SocketLines:
    """UTF-8 lines from a socket, each due by a deadline: ``timeout_s`` from when the
    line is asked for, or ``deadline`` (a time.monotonic() value) while one is set."""

    def __init__(self, sock: socket.socket, timeout_s: float) -> None:
        self._sock = sock
        self.timeout_s = timeout_s
        self.deadline: float | None = None
        self._buffer = bytearray()

    def readline(self, limit: int = -1) -> str:
        """One line with its newline; '' once the peer closed. AGIProtocolError when no
        newline comes within ``limit`` bytes, TimeoutError when the deadline passes first."""
        due = self.deadline if self.deadline is not None else time.monotonic() + self.timeout_s
        while True:
            end = self._buffer.find(b"\n", 0, limit if limit >= 0 else None) + 1
            if not end and 0 <= limit <= len(self._buffer):
                raise AGIProtocolError(f"line longer than {limit - 1} bytes")
            if end:
                line = bytes(self._buffer[:end])
                del self._buffer[:end]
                return line.decode("utf-8", errors="replace")
            left = due - time.monotonic()
            if left <= 0:
                raise TimeoutError("line not complete by its deadline")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(4096)
            finally:
                self._sock.settimeout(self.timeout_s)  # sends keep the ordinary timeout
            if not chunk:  # closed: what is left, then ''
                line = bytes(self._buffer)
                self._buffer.clear()
                return line.decode("utf-8", errors="replace")
            self._buffer += chunk

    def close(self) -> None:
        self._buffer.clear()


class SafeAGI(AGI):
    def __init__(
        self, rfile: IO[str] | SocketLines, wfile: IO[str], env_timeout_s: float | None = None
    ) -> None:  # no super(): no SIGHUP
        self.stdin, self.stdout, self.stderr = rfile, wfile, _LogWriter()
        self._got_sighup = False
        self.hungup = False  # Asterisk sent an unsolicited HANGUP line
        self.env: dict[str, str] = {}
        self._read_env(env_timeout_s)

    def _readline(self) -> str:
        """One line, at most MAX_LINE characters: a peer that never ends a line cannot
        make us buffer without bound."""
        line = self.stdin.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise AGIProtocolError(f"line longer than {MAX_LINE} characters")
        return line

    @contextmanager
    def patience(self, seconds: float) -> Iterator[None]:
        """Wait up to ``seconds`` for the next reply (EXEC Dial returns only when the
        conversation ends); the connection's ordinary read timeout applies otherwise."""
        if not isinstance(self.stdin, SocketLines):
            yield
            return
        ordinary = self.stdin.timeout_s
        self.stdin.timeout_s = seconds
        try:
            yield
        finally:
            self.stdin.timeout_s = ordinary

    @contextmanager
    def _due_within(self, seconds: float | None) -> Iterator[None]:
        """Every line read inside is due ``seconds`` from now (None: the reader's own
        timeout, counted from now): several lines share one deadline."""
        if not isinstance(self.stdin, SocketLines) or self.stdin.deadline is not None:
            yield
            return
        wait = self.stdin.timeout_s if seconds is None else seconds
        self.stdin.deadline = time.monotonic() + wait
        try:
            yield
        finally:
            self.stdin.deadline = None

    def _read_env(self, timeout_s: float | None = None) -> None:
        try:
            with self._due_within(timeout_s):
                self._read_env_lines()
        except TimeoutError:
            raise AGIProtocolError("the environment did not arrive in time") from None

    def _read_env_lines(self) -> None:
        for _ in range(MAX_ENV_LINES):
            line = self._readline()
            if line == "":
                raise AGIProtocolError("connection closed before the environment ended")
            line = line.strip()
            if line == "":
                return
            key, sep, value = line.partition(":")
            if not sep or not key.startswith("agi_"):
                raise AGIProtocolError(f"not an AGI environment line: {line[:80]!r}")
            self.env[key.strip()] = value.strip()
        raise AGIProtocolError(f"environment longer than {MAX_ENV_LINES} lines")

    def var(self, name: str) -> str:
        """An environment value; Asterisk's literal 'unknown' means empty."""
        value = self.env.get(name, "")
        return "" if value == UNKNOWN else value

    @property
    def script(self) -> str:
        """The route: the last segment of the AGI URL's script path, without its query
        string (agi://host:4573/KEY/inbound?x=y routes to "inbound")."""
        return self._path().rpartition("/")[2]

    @property
    def key(self) -> str:
        """The shared secret the dialplan puts before the route ('' when none)."""
        return self._path().rpartition("/")[0].strip("/")

    def _path(self) -> str:
        raw = self.env.get("agi_network_script", "")
        return raw.split("?", 1)[0].strip("/")

    @property
    def query(self) -> dict[str, str]:
        raw = self.env.get("agi_network_script", "")
        _, _, query = raw.partition("?")
        out: dict[str, str] = {}
        for part in query.split("&"):
            key, _, value = part.partition("=")
            if key:
                out[key] = value
        return out

    def _quote(self, value: object) -> str:  # type: ignore[override]
        text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
        return f'"{text}"'

    def send_command(self, command: str, *args: object) -> None:
        line = " ".join([command.strip(), *map(str, args)]).strip() + "\n"
        log.debug("agi >> %s", line.rstrip())
        try:
            self.stdout.write(line)
            self.stdout.flush()
        except OSError as exc:
            raise ChannelGone(f"socket closed: {exc}") from None

    def _line(self) -> str:
        try:
            line = self._readline()
        except TimeoutError:
            raise ChannelGone("no reply from Asterisk within the read timeout") from None
        except OSError as exc:
            raise ChannelGone(f"socket closed: {exc}") from None
        if line == "":
            raise ChannelGone("Asterisk closed the connection")
        return line.rstrip("\r\n")

    def get_result(self, stdin: object = None) -> dict[str, tuple[str, str]]:  # type: ignore[override]
        """One reply. Returns {'result': (value, data), 'endpos': (n, '')}. The whole
        reply (HANGUP lines and usage text included) is due within the read timeout."""
        with self._due_within(None):
            return self._reply()

    def _reply(self) -> dict[str, tuple[str, str]]:
        line = self._line()
        while line.strip() == "HANGUP":  # unsolicited: the real reply follows
            self.hungup = True
            line = self._line()
        log.debug("agi << %s", line)
        match = _CODE.match(line)
        if not match:
            raise AGIProtocolError(f"not an AGI reply: {line[:80]!r}")
        code, rest = int(match.group(1)), match.group(2)
        if code == 200:
            found = _RESULT.search(rest)
            if not found:
                raise AGIProtocolError(f"200 reply without a result: {line[:80]!r}")
            value, data, endpos = found.groups()
            return {"result": (value, data or ""), "endpos": (endpos or "", "")}
        if code == 511:
            self.hungup = True
            raise ChannelGone(rest)
        if code == 520:  # usage text spans lines up to '520 End of proper usage.'
            while not line.startswith("520 "):
                line = self._line()
            raise AGIProtocolError(f"command rejected as bad usage ({rest})")
        if code == 510:
            raise AGIProtocolError(f"invalid command: {rest}")
        raise AGIProtocolError(f"unexpected reply code {code}")

    def execute(self, command: str, *args: object) -> dict[str, tuple[str, str]]:  # type: ignore[override]
        self.send_command(command, *args)
        return self.get_result()

    # -- commands with their meanings of -1 ------------------------------------------

    def result(self, command: str, *args: object) -> int:
        value = self.execute(command, *args)["result"][0]
        return int(value) if value not in ("", None) else 0

    def play(self, sound: str, escape_digits: str = "") -> str:
        """STREAM FILE. Returns the digit pressed, or ''. A missing file is logged and
        skipped (the caller must still reach a person); a hangup raises ChannelGone."""
        reply = self.execute("STREAM FILE", sound, self._quote(escape_digits))
        value, endpos = reply["result"][0], reply["endpos"][0]
        if value == "-1":
            # endpos=0: the file is missing (the caller must still reach a person);
            # stopped part-way (or HANGUP seen): the caller hung up.
            if self.hungup or endpos not in ("0", ""):
                raise ChannelGone("hangup during playback")
            log.warning("sound file %s is missing; skipped", sound)
            return ""
        return chr(int(value)) if value not in ("0", "") else ""

    def read_digits(self, sound: str, timeout_ms: int, max_digits: int) -> str:
        """GET DATA. '' on timeout with no input; -1 is a hangup."""
        value, data = self.execute("GET DATA", sound, timeout_ms, max_digits)["result"]
        if value == "-1":
            raise ChannelGone("hangup during GET DATA")
        return value or ""

    def verbose_safe(self, message: str) -> None:
        """A line in Asterisk's console; never fails the session."""
        try:
            self.execute("VERBOSE", self._quote(message), 1)
        except (ChannelGone, AGIProtocolError, OSError):
            pass

    def set_var(self, name: str, value: str) -> None:
        self.execute("SET VARIABLE", name, self._quote(value))

    def get_var(self, name: str) -> str:
        value, data = self.execute("GET VARIABLE", self._quote(name))["result"]
        return data if value == "1" else ""

    def exec_app(self, application: str, *args: str) -> int:
        """EXEC with arguments joined by commas and quoted as one."""
        self.send_exec(application, *args)
        return self.exec_result()

    def send_exec(self, application: str, *args: str) -> None:
        """The EXEC line only: the application starts while the caller does other work;
        exec_result() reads its reply."""
        self.send_command("EXEC", application, self._quote(",".join(args)))

    def exec_result(self) -> int:
        value = self.get_result()["result"][0]
        return int(value) if value not in ("", None) else 0
