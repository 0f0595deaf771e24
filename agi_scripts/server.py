"""The FastAGI server: one thread per live AGI session, routed on the script path of
the AGI URL (agi://host:4573/inbound?x=y routes to "inbound").

Sessions are short: callers hold in the dialplan, not in a thread (see sessions.py),
so threads are held only by menus, announcements and dials in progress.

Only Asterisk may talk to it: peers outside the allow-list are closed at once; with a
shared secret configured, a session whose AGI URL does not carry it
(agi://host:4573/SECRET/inbound) is answered with HANGUP, so a local process cannot
inject calls. The environment is due within ``env_timeout_s`` of the connection and
each reply within the read timeout of its command, however the bytes trickle in; lines
are bounded, and at most ``max_sessions`` run at once (further connections wait in the
listen backlog, and a caller whose AGI fails holds in the dialplan until the next
hold-loop turn)."""

from __future__ import annotations

import gc
import hmac
import ipaddress
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable

from agi_scripts.protocol import AGIProtocolError, ChannelGone, SafeAGI, SocketLines
from agi_scripts.sessions import ROUTES, AgiSettings, Session, call_id_of
from calls import CallHandler
from calls.metrics import observe_agi_route
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
        self.refused = 0  # connections from outside the allow-list
        self.unauthenticated = 0  # sessions without the shared secret
        self._count_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.max_sessions)
        self.allowed = AllowList(settings.allow)
        if not settings.secret:
            log.warning(
                "HOTLINE_AGI_SECRET is not set: any process at an allowed address "
                "(%s) can open AGI sessions",
                ", ".join(settings.allow),
            )
        super().__init__(address, AGIRequestHandler)

    def verify_request(self, request, client_address) -> bool:  # type: ignore[no-untyped-def]
        address = ipaddress.ip_address(client_address[0])
        if self.allowed.allows(address):
            return True
        with self._count_lock:
            self.refused += 1
        log.warning(
            "refused an AGI connection from %s: not in HOTLINE_AGI_ALLOW "
            "(default: ASTERISK_AMI_HOST, else this machine)",
            address,
        )
        return False

    def authenticated(self, agi: SafeAGI) -> bool:
        """The session's AGI URL carries the shared secret (always, when none is set)."""
        secret = self.agi_settings.secret
        if not secret:
            return True
        return hmac.compare_digest(agi.key.encode(), secret.encode())

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


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Iterable[str]]


def resolve_host(name: str) -> list[str]:
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


class AllowList:
    """Addresses, networks (CIDR) and host names. Names are resolved again every
    ``refresh_s``, and at most every ``retry_s`` when an unknown peer knocks: Asterisk
    restarted in a container with a new address is let in. A name that stops resolving
    keeps its last addresses."""

    def __init__(
        self,
        entries: Iterable[str],
        refresh_s: float = 30.0,
        retry_s: float = 2.0,
        resolve: Resolver = resolve_host,
    ) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.names: list[str] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.append(entry)
        self.refresh_s, self.retry_s, self._resolve = refresh_s, retry_s, resolve
        self._addresses: dict[str, set[Address]] = {}
        self._resolved_at = 0.0
        self._lock = threading.Lock()
        if self.names:
            self.refresh()

    def refresh(self) -> None:
        with self._lock:
            for name in self.names:
                try:
                    found = {ipaddress.ip_address(a.split("%", 1)[0]) for a in self._resolve(name)}
                except (OSError, ValueError) as exc:
                    log.warning("HOTLINE_AGI_ALLOW: cannot resolve %r (%s)", name, exc)
                    continue
                if found != self._addresses.get(name):
                    log.info("HOTLINE_AGI_ALLOW: %s is %s", name, ", ".join(map(str, found)))
                self._addresses[name] = found
            self._resolved_at = time.monotonic()

    def _named(self, address: Address) -> bool:
        return any(address in found for found in self._addresses.values())

    def allows(self, address: Address) -> bool:
        if any(address in net for net in self.networks):
            return True
        if not self.names:
            return False
        if time.monotonic() - self._resolved_at >= self.refresh_s:
            self.refresh()
        if self._named(address):
            return True
        if time.monotonic() - self._resolved_at >= self.retry_s:
            self.refresh()
            return self._named(address)
        return False


class AGIRequestHandler(socketserver.StreamRequestHandler):
    server: FastAGIServer

    def setup(self) -> None:
        super().setup()
        # Sends wait this long at most; reads have their own deadlines (SocketLines).
        self.connection.settimeout(self.server.agi_settings.read_timeout_s)

    def handle(self) -> None:
        self.server._count(1)
        settings = self.server.agi_settings
        route = "?"
        # The ordinary wait for Asterisk's next reply; EXEC Dial waits longer (patience).
        rfile = SocketLines(self.connection, settings.read_timeout_s)
        wfile = self.connection.makefile("w", encoding="utf-8", newline="\n")
        try:
            agi = SafeAGI(rfile, wfile, env_timeout_s=settings.env_timeout_s)
            route = agi.script
            if not self.server.authenticated(agi):
                self.refuse(agi, route)
                return
            run_route(agi, self.server.call_handler, settings, route, self.server.outbound)
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

    def refuse(self, agi: SafeAGI, route: str) -> None:
        """No shared secret: not our dialplan (a local process, or a misconfigured
        Asterisk). Nothing is queued; the channel, if real, is hung up."""
        with self.server._count_lock:
            self.server.unauthenticated += 1
        log.warning(
            "refused an AGI session from %s (route %r, channel %r): its AGI URL does not carry "
            "the right HOTLINE_AGI_SECRET; hanging up. If this is our Asterisk, its dialplan must "
            "call agi://HOST:PORT/${ENV(HOTLINE_AGI_SECRET)}/ROUTE",
            self.client_address[0],
            route,
            agi.var("agi_channel"),
        )
        try:
            with agi.patience(min(5.0, self.server.agi_settings.read_timeout_s)):
                agi.execute("HANGUP")
        except (ChannelGone, AGIProtocolError, OSError):
            pass


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
        log.error("unknown AGI route %r (context %s)", route, agi.var("agi_context"))
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
    observe_agi_route(route, time.monotonic() - started)


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
    # Everything loaded so far (modules, SQLAlchemy's mappers: ~90,000 objects) lives as
    # long as the process: out of the collector's way. A full collection walked them all
    # in ~50 ms holding the interpreter, twice in a 200-caller burst, and every seat
    # freed meanwhile waited for it.
    gc.freeze()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    log.info("FastAGI listening on %s:%s", host, port)
    stop.wait()
    server.shutdown()
    server.server_close()
