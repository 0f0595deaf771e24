"""Asterisk Manager Interface: moving holding callers to their seat, placing outbound
calls. Uses pyst2's Manager with two defects mended:

- it opens its socket unbuffered and reads responses line by line, one recv() per byte:
  BufferedManager reads through a buffer;
- it matches responses to requests by arrival order only, so two threads sending at
  once could swap their answers: each AmiClient serialises its actions, and the
  redirector runs several clients, one per worker thread."""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlencode

from asterisk.manager import Manager, ManagerException, ManagerSocketException

from hotline.calls import CallHandler
from queueing.offers import offers as queue_offers

log = logging.getLogger("hotline.ami")


class BufferedManager(Manager):
    def connect(self, host: str, port: int = 5038):  # type: ignore[no-untyped-def]
        if self._connected.is_set():
            raise ManagerException("Already connected to manager")
        try:
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock.makefile(mode="rwb")  # buffered: lines come from a buffer
            sock.close()  # the file keeps the connection open
        except OSError as exc:
            raise ManagerSocketException(exc.errno, exc.strerror) from None
        self._connected.set()
        self._running.set()
        self.message_thread.start()
        self.event_dispatch_thread.start()
        return self._response_queue.get()


class AmiClient:
    def __init__(self, host: str, port: int, username: str, secret: str) -> None:
        self.address = (host, port)
        self.credentials = (username, secret)
        self._lock = threading.Lock()
        self._manager: Manager | None = None

    def _connected(self) -> Manager:
        if self._manager is None or not self._manager.connected():
            manager = BufferedManager()
            manager.connect(*self.address)
            manager.login(*self.credentials)
            self._manager = manager
        return self._manager

    def action(self, fields: dict[str, object]) -> dict[str, str]:
        """Send one action; reconnect once if the connection was lost."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    response = self._connected().send_action(dict(fields))
                    return {k: response.get_header(k) for k in response.headers}
                except (ManagerException, OSError):
                    self._manager = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._manager is not None and self._manager.connected():
                try:
                    self._manager.close()
                except (ManagerException, OSError):
                    pass
            self._manager = None


class OfferRedirector:
    """On each queue offer for an Asterisk caller who is holding (or in the menu), AMI
    Redirect the channel into the bridge context, whose AGI dials the seat.

    One thread listens for offers; ``workers`` threads, each with an AMI connection of
    its own, redirect in parallel so a burst of freed seats does not queue up."""

    def __init__(
        self,
        handler: CallHandler,
        ami: AmiClient | Callable[[], AmiClient],
        context: str = "hotline-bridge",
        workers: int = 4,
        on_redirect: Callable[[str, float], None] | None = None,
    ) -> None:
        self.handler, self.context = handler, context
        self._make_client = ami if callable(ami) else (lambda: ami)
        self.workers = workers if callable(ami) else 1  # one shared client: one worker
        self.on_redirect = on_redirect
        self._clients: list[AmiClient] = []

    def on_offer(self, call_id: str, seat: str, ami: AmiClient) -> bool:
        if not self.handler.should_push_offer(call_id, seat, "asterisk"):
            return False
        channel = self.handler.redis.get(self.handler.queue.keys.channel(call_id))
        if not channel:
            return False
        reply = ami.action(
            {
                "Action": "Redirect",
                "Channel": channel.decode(),
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
            except Exception:  # one failed redirect must not stop the others
                log.exception("redirect for %s failed; the hold loop will find it", item[0])

    def run(self, stop: threading.Event) -> None:
        work: queue.Queue[tuple[str, str] | None] = queue.Queue()
        threads = [
            threading.Thread(target=self._work, args=(work,), daemon=True)
            for _ in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        log.info("moving offered callers to their seats over AMI (%d workers)", self.workers)
        try:
            for offer in queue_offers(self.handler.redis, self.handler.queue.keys, stop):
                work.put(offer)
        finally:
            for _ in threads:
                work.put(None)
            for thread in threads:
                thread.join(timeout=5)
            for client in self._clients:
                client.close()


class AsteriskProvider:
    """Outbound calls through AMI Originate into a context that runs a flow over FastAGI
    (see [hotline-outbound] in docker/asterisk/extensions.conf)."""

    def __init__(
        self,
        ami: AmiClient,
        channel_pattern: str = "PJSIP/{number}@trunk",
        context: str = "hotline-outbound",
        caller_id: str = "12345",
    ) -> None:
        self.ami, self.pattern, self.context, self.caller_id = (
            ami,
            channel_pattern,
            context,
            caller_id,
        )

    def place_call(self, to: str, flow: str, ref: str) -> str:
        action_id = f"hotline-{flow}-{ref}-{int(time.time() * 1000)}"
        reply = self.ami.action(
            {
                "Action": "Originate",
                "ActionID": action_id,
                "Channel": self.pattern.format(number=to),
                "Context": self.context,
                "Exten": "s",
                "Priority": "1",
                "CallerID": self.caller_id,
                "Timeout": "30000",
                "Async": "true",
                "Variable": [f"HOTLINE_FLOW={flow}", f"HOTLINE_QUERY={urlencode({'ref': ref})}"],
            }
        )
        if reply.get("Response") != "Success":
            raise RuntimeError(f"Originate refused: {reply.get('Message')}")
        return action_id
