"""The same routes as the FastAGI server, for deployments that run AGI as a process:

    exten => _X.,n,AGI(hotline-agi,inbound)
    same => n,AGI(hotline-agi,outbound,${HOTLINE_DIAL_ID},${AMDSTATUS},${AMDCAUSE})
    exten => _[0-9*#],n,AGI(hotline-agi,hold?event=key&digit=${EXTEN})

The first argument is the FastAGI URL's path (query string included), the rest its
arguments. Asterisk starts one process per AGI() with the environment on stdin and
replies there; configuration comes from the process environment (REDIS_URL,
DATABASE_URL, ...). Diagnostics go to stderr, which Asterisk shows in its verbose log.
No network is involved, so no allow-list and no HOTLINE_AGI_SECRET: only Asterisk can
start it this way.
"""

from __future__ import annotations

import io
import logging
import sys
from dataclasses import dataclass

from agi_scripts.protocol import AGIProtocolError, ChannelGone, SafeAGI
from agi_scripts.server import run_route
from agi_scripts.sessions import AgiSettings
from calls import CallHandler
from calls.outbound import OutboundHandler
from hotline.config import Settings, load_settings
from hotline.logs import setup_logging
from hotline.runtime import agi_settings, call_handler, call_queue, outbound_handler
from queueing import CallQueue

log = logging.getLogger("hotline.agi")


@dataclass(frozen=True)
class AgiRoutes:
    """What every AGI route runs on; FastAGI and the process build it here, so both
    carry the same routes (the outbound ones need the dialer's handler)."""

    handler: CallHandler
    settings: AgiSettings
    outbound: OutboundHandler


def agi_routes(settings: Settings, queue: CallQueue | None = None) -> AgiRoutes:
    handler = call_handler(settings, queue or call_queue(settings))
    return AgiRoutes(handler, agi_settings(settings), outbound_handler(settings, handler))


def as_fastagi(agi: SafeAGI, path: str) -> None:
    """Make a process AGI's environment read as FastAGI's: the route (with its query)
    where the URL's path would be, and the arguments after it numbered from 1 (Asterisk
    passes the route itself as agi_arg_1)."""
    agi.env["agi_network_script"] = path
    if agi.env.get("agi_arg_1") != path:
        return
    n = 1
    while f"agi_arg_{n + 1}" in agi.env:
        agi.env[f"agi_arg_{n}"] = agi.env[f"agi_arg_{n + 1}"]
        n += 1
    del agi.env[f"agi_arg_{n}"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    setup_logging("WARNING")
    rfile = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")
    wfile = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n", line_buffering=True)
    try:
        agi = SafeAGI(rfile, wfile)
    except AGIProtocolError as exc:
        log.error("not an AGI environment: %s", exc)
        return 1
    if len(argv) > 1:
        as_fastagi(agi, argv[1])
    route = agi.script or "inbound"
    routes = agi_routes(load_settings())
    try:
        run_route(agi, routes.handler, routes.settings, route, routes.outbound)
    except (AGIProtocolError, ChannelGone, OSError) as exc:
        log.warning("AGI %s ended: %s", route, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
