"""Asterisk Manager Interface: moving holding callers to their seat, reconciling the
queue with the channels Asterisk really has, placing outbound calls.

pyst2's Manager is not used here: it has no timeout on an action (a stuck Asterisk
stops every redirect), receives every event on every connection, and matches
responses to actions by arrival order. AmiConnection is a small synchronous client:
one action at a time per connection, replies matched by ActionID, events off unless
asked for, a timeout on every read, and a fresh connection after any failure.
"""

from __future__ import annotations

import itertools
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator

from redis.exceptions import RedisError

from calls import CallHandler
from queueing.offers import offers as queue_offers

log = logging.getLogger("hotline.ami")

_action_ids = itertools.count(1)


class AmiError(Exception):
    """AMI refused, timed out or went away; the connection is dropped."""


class AmiRefused(AmiError):
    """Asterisk answered an action with an error (no permission, unknown action): the
    connection is in a known state and is kept."""


Message = dict[str, str]


class AmiConnection:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        timeout_s: float = 5.0,
        events: str = "off",
    ) -> None:
        self.address = (host, port)
        self.credentials = (username, secret)
        self.timeout_s = timeout_s
        self.events = events  # "off", or an event mask such as "system"
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._lock = threading.Lock()

    # -- wire ---------------------------------------------------------------------------

    def _connect(self) -> None:
        sock = socket.create_connection(self.address, timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._buffer = sock, bytearray()
        banner = self._read_line()
        if not banner.startswith("Asterisk Call Manager"):
            self.close()
            raise AmiError(f"not an AMI server: {banner[:60]!r}")
        username, secret = self.credentials
        reply = self._send_and_wait(
            {"Action": "Login", "Username": username, "Secret": secret, "Events": self.events}
        )
        if reply.get("Response") != "Success":
            self.close()
            raise AmiError(f"AMI login refused: {reply.get('Message', '')}")

    def _read_line(self, deadline: float | None = None) -> str:
        assert self._sock is not None
        # A bytearray read from the front: a line costs its own length, not a copy of
        # the rest of the buffer (CoreShowChannels lists every channel at once).
        while (end := self._buffer.find(b"\r\n")) < 0:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self._sock.settimeout(left)
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("AMI closed the connection")
            self._buffer += chunk
            if len(self._buffer) > 4 * 1024 * 1024:
                raise AmiError("AMI message too large")
        line = self._buffer[:end].decode("utf-8", "replace")
        del self._buffer[: end + 2]
        return line

    def read_message(self, timeout_s: float | None = None) -> Message:
        """The next message (response or event)."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        message: Message = {}
        while True:
            line = self._read_line(deadline)
            if line == "":
                if message:
                    return message
                continue
            key, sep, value = line.partition(":")
            if sep:
                message.setdefault(key.strip(), value.strip())

    def _write(self, fields: dict[str, object]) -> None:
        assert self._sock is not None
        lines = []
        for key, value in fields.items():
            for item in value if isinstance(value, list) else [value]:
                text = str(item)
                if "\r" in text or "\n" in text:
                    raise ValueError(f"AMI field {key} has a line break")
                lines.append(f"{key}: {text}")
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _send_and_wait(self, fields: dict[str, object]) -> Message:
        action_id = str(fields.get("ActionID") or f"hotline-{next(_action_ids)}")
        self._write({**fields, "ActionID": action_id})
        while True:
            message = self.read_message()
            if message.get("ActionID") == action_id and "Response" in message:
                return message

    # -- use -----------------------------------------------------------------------------

    def action(self, fields: dict[str, object]) -> Message:
        """Send one action and return its response, within the timeout. Any failure
        drops the connection (its state is unknown); the next action reconnects."""
        with self._lock:
            try:
                if self._sock is None:
                    self._connect()
                return self._send_and_wait(fields)
            except (OSError, TimeoutError, ConnectionError, AmiError) as exc:
                self.close()
                raise AmiError(f"{fields.get('Action')}: {exc or type(exc).__name__}") from None

    def action_list(self, fields: dict[str, object]) -> list[Message]:
        """An action answered by a list of events (CoreShowChannels): the events."""
        with self._lock:
            try:
                if self._sock is None:
                    self._connect()
                action_id = f"hotline-{next(_action_ids)}"
                self._write({**fields, "ActionID": action_id})
                items: list[Message] = []
                while True:
                    message = self.read_message()
                    if message.get("ActionID") != action_id:
                        continue
                    if message.get("Response") == "Error":
                        raise AmiRefused(f"{fields.get('Action')}: {message.get('Message')}")
                    if message.get("EventList") == "Complete":
                        return items
                    if "Event" in message:
                        items.append(message)
            except AmiRefused:
                raise
            except (OSError, TimeoutError, ConnectionError, AmiError) as exc:
                self.close()
                raise AmiError(f"{fields.get('Action')}: {exc or type(exc).__name__}") from None

    def events_forever(self, stop: threading.Event, idle_s: float) -> Iterator[Message | None]:
        """Events as they come; None every ``idle_s`` without one. Raises AmiError when
        the connection is lost (the caller reconnects)."""
        with self._lock:
            try:
                if self._sock is None:
                    self._connect()
                while not stop.is_set():
                    try:
                        yield self.read_message(timeout_s=idle_s)
                    except TimeoutError:
                        yield None
            except (OSError, ConnectionError, AmiError) as exc:
                self.close()
                raise AmiError(f"event stream: {exc or type(exc).__name__}") from None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock, self._buffer = None, bytearray()


class OfferRedirector:
    """On each queue offer for an Asterisk caller who is holding (or in the menu), AMI
    Redirect the channel into the bridge context, whose AGI dials the seat.

    One thread listens for offers into a bounded work queue; ``workers`` threads, each
    with an AMI connection of its own, redirect in parallel. A redirect that times out
    drops its connection and is left to the hold loop, which finds the offer at its
    next turn: a stuck AMI slows offers down but never stops them."""

    def __init__(
        self,
        handler: CallHandler,
        ami: AmiConnection | Callable[[], AmiConnection],
        context: str = "hotline-bridge",
        workers: int = 4,
        on_redirect: Callable[[str, float], None] | None = None,
        max_pending: int = 2000,
    ) -> None:
        self.handler, self.context = handler, context
        self._make_client = ami if callable(ami) else (lambda: ami)
        self.workers = workers if callable(ami) else 1  # one shared client: one worker
        self.on_redirect = on_redirect
        self.max_pending = max_pending
        self.dropped = 0
        self._clients: list[AmiConnection] = []

    def on_offer(self, call_id: str, seat: str, ami: AmiConnection) -> bool:
        channel = self.handler.channel_to_move(call_id, seat)  # one Redis round trip
        if not channel:
            return False
        reply = ami.action(
            {
                "Action": "Redirect",
                "Channel": channel,
                "Context": self.context,
                "Exten": "s",
                "Priority": "1",
            }
        )
        if reply.get("Response") != "Success":
            log.info("redirect of %s refused: %s", call_id, reply.get("Message"))
            return False
        if self.on_redirect:
            self.on_redirect(call_id, time.monotonic())
        return True

    def _work(self, offers: queue.Queue[tuple[str, str] | None]) -> None:
        ami = self._make_client()
        self._clients.append(ami)
        while (item := offers.get()) is not None:
            try:
                self.on_offer(*item, ami)
            except Exception as exc:  # one failed redirect must not stop the others
                log.warning("redirect of %s failed (%s); the hold loop will find it", item[0], exc)

    def outstanding(self) -> list[tuple[str, str]]:
        """Offers already made (e.g. while this process was down): pushed at start."""
        keys = self.handler.queue.keys
        out = []
        for raw in self.handler.redis.zrange(keys.offers, 0, -1):
            call_id = _text(raw)
            seat = self.handler.queue.call(call_id).get("seat")
            if seat:
                out.append((call_id, seat))
        return out

    def run(self, stop: threading.Event) -> None:
        work: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=self.max_pending)
        threads = [
            threading.Thread(target=self._work, args=(work,), daemon=True)
            for _ in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        log.info("moving offered callers to their seats over AMI (%d workers)", self.workers)

        def submit(offer: tuple[str, str]) -> None:
            try:
                work.put_nowait(offer)
            except queue.Full:  # AMI is far behind: the hold loop picks these up
                self.dropped += 1
                log.warning("redirect queue full; %s left to the hold loop", offer[0])

        try:
            while not stop.is_set():
                try:
                    # Offers made while nobody listened (start, a Redis restart) first.
                    for offer in self.outstanding():
                        submit(offer)
                    for offer in queue_offers(self.handler.redis, self.handler.queue.keys, stop):
                        submit(offer)
                except RedisError as exc:
                    log.warning("offer listener lost Redis (%s); reconnecting", exc)
                    stop.wait(1)
        finally:
            for _ in threads:
                try:
                    work.put(None, timeout=1)
                except queue.Full:
                    pass
            for thread in threads:
                thread.join(timeout=5)
            for client in self._clients:
                client.close()


class Reconciler:
    """Ends the queue's Asterisk calls that Asterisk no longer has, and frees their
    seats: when the AMI event connection (re)connects, on FullyBooted (Asterisk
    restarted), and every ``period_s``. A restart of Asterisk mid-conversation is thus
    reconciled within a second or two of Asterisk accepting AMI again.

    Only this Asterisk's calls are looked at: with two boxes sharing the queue, each has
    its own ``systemname`` (asterisk.conf), which starts its uniqueids, so another box's
    calls ("ast-OTHER-...") are never taken for gone. Without one, every "ast-" call is."""

    def __init__(
        self,
        handler: CallHandler,
        make_client: Callable[..., AmiConnection],
        period_s: float = 30.0,
        retry_s: float = 1.0,
    ) -> None:
        self.handler = handler
        self.make_client = make_client
        self.period_s = period_s
        self.retry_s = retry_s
        self.runs = 0
        self.box_prefix = ""

    def reconcile(self, ami: AmiConnection) -> list[str]:
        live = self.handler.queue.live_calls()  # read before the snapshot (see below)
        ours = [c for c in live if c.startswith("ast-")]
        if not ours:
            self.runs += 1
            return []
        system_name = _text(ami.action({"Action": "CoreSettings"}).get("SystemName") or "")
        prefix = f"ast-{system_name}-" if system_name else "ast-"
        queued = len(ours)
        ours = [c for c in ours if c.startswith(prefix)]
        channels = ami.action_list({"Action": "CoreShowChannels"})
        present = {"ast-" + m["Uniqueid"] for m in channels if m.get("Uniqueid")}
        # A call queued after the live list was read is not looked at; a call in the
        # list had its channel before the snapshot, so absence means it is gone.
        gone = [c for c in ours if c not in present]
        for call_id in gone:
            log.warning("call %s is gone from Asterisk; ending it", call_id)
            self.handler.caller_gone(call_id)
        if prefix != self.box_prefix:
            log.info(
                "reconciling this Asterisk's calls (%s*): %d of the queue's %d",
                prefix,
                len(ours),
                queued,
            )
            self.box_prefix = prefix
        self.runs += 1
        return gone

    def _reconcile_or_warn(self, ami: AmiConnection) -> None:
        """Reconcile; a refusal (the AMI user may not list channels) is logged and
        tried again when due, on the same connections. Before, it dropped and reopened
        both connections every ``retry_s``: two AMI logins and a read of every live call
        a second, next to the redirects that move callers to their seats."""
        try:
            self.reconcile(ami)
        except AmiRefused as exc:
            log.warning("cannot reconcile (%s): the AMI user needs write=reporting", exc)

    def run(self, stop: threading.Event) -> None:
        actions = self.make_client()
        while not stop.is_set():
            listener = self.make_client(events="system")
            try:
                self._reconcile_or_warn(actions)  # on every (re)connect
                last = time.monotonic()
                for event in listener.events_forever(stop, idle_s=min(self.period_s, 1.0)):
                    due = time.monotonic() - last >= self.period_s
                    booted = event is not None and event.get("Event") == "FullyBooted"
                    if booted or due:
                        self._reconcile_or_warn(actions)
                        last = time.monotonic()
            except AmiError as exc:
                log.info("AMI unavailable (%s); retrying", exc)
            except Exception:
                log.exception("reconciliation failed; retrying")
            finally:
                listener.close()
            stop.wait(self.retry_s)
        actions.close()


class AsteriskOriginator:
    """Places the dialer's calls through AMI Originate into [hotline-outbound] (see
    docker/asterisk/extensions.conf), which runs AMD() and the FastAGI outbound route
    when the phone is answered, and its "failed" extension when it never is."""

    def __init__(
        self,
        ami: AmiConnection,
        channel_pattern: str = "PJSIP/{number}@trunk",
        context: str = "hotline-outbound",
        caller_id: str = "12345",
        ring_timeout_s: int = 30,
    ) -> None:
        self.ami, self.pattern, self.context = ami, channel_pattern, context
        self.caller_id, self.ring_timeout_s = caller_id, ring_timeout_s

    def originate(self, call_id: str, phone: str, kind: str) -> None:
        # The carrier wants national digits: +8613800000001 -> 13800000001.
        number = phone[3:] if phone.startswith("+86") else phone.lstrip("+")
        reply = self.ami.action(
            {
                "Action": "Originate",
                "Channel": self.pattern.format(number=number),
                "Context": self.context,
                "Exten": "s",
                "Priority": "1",
                "CallerID": self.caller_id,
                "Timeout": str(self.ring_timeout_s * 1000),
                "Async": "true",
                "Variable": f"HOTLINE_DIAL_ID={call_id}",  # names the attempt (and its kind)
            }
        )
        if reply.get("Response") != "Success":
            raise AmiError(f"Originate refused: {reply.get('Message')}")


def _text(value: object) -> str:  # a reply of the bytes-mode client (redis-py types any mode)
    return value.decode() if isinstance(value, bytes) else str(value)
