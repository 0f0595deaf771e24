"""The FastAGI server: one thread per live AGI session, routed on the script path of
the AGI URL (agi://host:4573/inbound?x=y routes to "inbound").

Sessions are short: callers hold in the dialplan, not in a thread (see sessions.py),
so threads are held only by menus, announcements and dials in progress.

Only Asterisk may talk to it: peers outside the allow-list are closed at once, a peer
that stops talking is dropped after the read timeout, lines are bounded, and at most
``max_sessions`` run at once (further connections wait in the listen backlog, and a
caller whose AGI fails holds in the dialplan until the next hold-loop turn)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable

from agi_scripts.protocol import AGIProtocolError, ChannelGone, SafeAGI
from agi_scripts.sessions import ROUTES, AgiSettings, Session, call_id_of
from calls import CallHandler
from calls.outbound import OutboundHandler

log = logging.getLogger("hotline.agi")


class FastAGIServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of calls must not be refused by the backlog

    def __init__(
        self,
        address: tuple[str, int],
        handler: CallHandler,
        settings: AgiSettings,
        on_session_end: Callable[[str], None] | None = None,
        outbound: OutboundHandler | None = None,
    ) -> None:
        self.call_handler = handler
        self.outbound = outbound  # return visits and call-backs
        self.agi_settings = settings
        self.on_session_end = on_session_end
        self.active = 0
        self.served = 0
        self.refused = 0
        self._count_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.max_sessions)
        self.allowed = allowed_networks(settings.allow)
        super().__init__(address, AGIRequestHandler)

    def verify_request(self, request, client_address) -> bool:  # type: ignore[no-untyped-def]
        address = ipaddress.ip_address(client_address[0])
        if any(address in net for net in self.allowed):
            return True
        with self._count_lock:
            self.refused += 1
        log.warning("refused an AGI connection from %s: not in HOTLINE_AGI_ALLOW", address)
        return False

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        self._slots.acquire()  # full: the accept loop waits, connections queue in the backlog
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self.active += delta
            if delta > 0:
                self.served += 1


def allowed_networks(entries: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Addresses, networks (CIDR) or host names (resolved once, at start)."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(entry, None, proto=socket.IPPROTO_TCP)
        except OSError:
            log.error("HOTLINE_AGI_ALLOW: cannot resolve %r; it is not allowed", entry)
            continue
        for info in infos:
            networks.append(ipaddress.ip_network(info[4][0]))
    return networks


class AGIRequestHandler(socketserver.StreamRequestHandler):
    server: FastAGIServer

    def setup(self) -> None:
        super().setup()
        # The ordinary wait for Asterisk's next line; EXEC Dial waits longer (patience).
        self.connection.settimeout(self.server.agi_settings.read_timeout_s)

    def handle(self) -> None:
        self.server._count(1)
        route = "?"
        rfile = self.connection.makefile("r", encoding="utf-8", errors="replace", newline="\n")
        wfile = self.connection.makefile("w", encoding="utf-8", newline="\n")
        try:
            agi = SafeAGI(rfile, wfile, self.connection)
            route = agi.script
            run_route(
                agi, self.server.call_handler, self.server.agi_settings, route, self.server.outbound
            )
        except AGIProtocolError as exc:
            log.warning("closing a malformed AGI conversation (%s): %s", route, exc)
        except (OSError, ChannelGone) as exc:
            log.info("AGI connection lost (%s): %s", route, exc)
        finally:
            for f in (rfile, wfile):
                try:
                    f.close()
                except OSError:
                    pass
            self.server._count(-1)
            if self.server.on_session_end:
                self.server.on_session_end(route)


def run_route(
    agi: SafeAGI,
    handler: CallHandler,
    settings: AgiSettings,
    route: str,
    outbound: OutboundHandler | None = None,
) -> None:
    """Run one AGI route with its failures contained: a hangup or redirect ends it
    quietly; our own error still leaves the caller queued for a person."""
    session = Session(agi, handler, settings, outbound)
    run = ROUTES.get(route)
    if run is None:
        log.error("unknown AGI route %r (%s)", route, agi.env.get("agi_request", ""))
        agi.verbose_safe(f"hotline: unknown route {route}")
        return
    started = time.monotonic()
    try:
        run(session)
    except ChannelGone:
        pass  # hung up or redirected: the h extension or the next route carries on
    except (AGIProtocolError, OSError):
        raise
    except Exception:
        if route in CALLER_ROUTES:
            log.exception("AGI route %s failed; sending the caller to a person", route)
            keep_in_line(session)
        else:  # the operator's channel (answered), or the h extension: nothing to queue
            log.exception("AGI route %s failed", route)
    log.debug("route %s done in %.3fs", route, time.monotonic() - started)


# Routes that run on a citizen's channel while they are on the line.
CALLER_ROUTES = ("inbound", "hold", "bridge")


def keep_in_line(session: Session) -> None:
    """Our own failure: make sure the caller is queued and holding for a person."""
    try:
        call = call_id_of(session.agi)
        session.queue.enqueue(call)  # a duplicate if already queued: harmless
    except Exception:
        log.exception("could not queue the caller after a failure")
    try:
        session.agi.set_var("HOTLINE_NEXT", "hold")
    except Exception:
        pass


def serve(server: FastAGIServer, stop: threading.Event) -> None:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    log.info("FastAGI listening on %s:%s", host, port)
    stop.wait()
    server.shutdown()
    server.server_close()
