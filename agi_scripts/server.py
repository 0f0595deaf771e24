"""The FastAGI server: one thread per live AGI session, routed on the script path of
the AGI URL (agi://host:4573/inbound?x=y routes to "inbound").

Sessions are short: callers hold in the dialplan, not in a thread (see sessions.py),
so threads are held only by menus, announcements and dials in progress."""

from __future__ import annotations

import logging
import socketserver
import threading
import time
from collections.abc import Callable

from agi_scripts.protocol import AGIProtocolError, ChannelGone, SafeAGI
from agi_scripts.sessions import ROUTES, AgiSettings, Session, call_id_of
from hotline.calls import CallHandler

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
    ) -> None:
        self.call_handler = handler
        self.agi_settings = settings
        self.on_session_end = on_session_end
        self.active = 0
        self.served = 0
        self._count_lock = threading.Lock()
        super().__init__(address, AGIRequestHandler)

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self.active += delta
            if delta > 0:
                self.served += 1


class AGIRequestHandler(socketserver.StreamRequestHandler):
    server: FastAGIServer
    timeout = 3600  # a conversation through EXEC Dial can last long; a dead peer cannot

    def handle(self) -> None:
        self.server._count(1)
        route = "?"
        rfile = self.connection.makefile("r", encoding="utf-8", errors="replace", newline="\n")
        wfile = self.connection.makefile("w", encoding="utf-8", newline="\n")
        try:
            agi = SafeAGI(rfile, wfile)
            route = agi.script
            run_route(agi, self.server.call_handler, self.server.agi_settings, route)
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


def run_route(agi: SafeAGI, handler: CallHandler, settings: AgiSettings, route: str) -> None:
    """Run one AGI route with its failures contained: a hangup or redirect ends it
    quietly; our own error still leaves the caller queued for a person."""
    session = Session(agi, handler, settings)
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
        log.exception("AGI route %s failed; sending the caller to a person", route)
        keep_in_line(session)
    log.debug("route %s done in %.3fs", route, time.monotonic() - started)


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
