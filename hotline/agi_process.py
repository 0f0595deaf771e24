"""The same routes as the FastAGI server, for deployments that run AGI as a process:

    exten => _X.,n,AGI(hotline-agi,inbound)

Asterisk starts one process per AGI() with the environment on stdin and replies there;
configuration comes from the process environment (REDIS_URL, DATABASE_URL, ...).
Diagnostics go to stderr, which Asterisk shows in its verbose log.
"""

from __future__ import annotations

import io
import logging
import sys

from agi_scripts.protocol import AGIProtocolError, ChannelGone, SafeAGI
from agi_scripts.server import run_route
from hotline.config import load_settings
from hotline.logs import setup_logging
from hotline.runtime import agi_settings, call_handler, call_queue

log = logging.getLogger("hotline.agi")


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
    route = argv[1] if len(argv) > 1 else (agi.script or "inbound")
    settings = load_settings()
    handler = call_handler(settings, call_queue(settings))
    try:
        run_route(agi, handler, agi_settings(settings), route)
    except (AGIProtocolError, ChannelGone, OSError) as exc:
        log.warning("AGI %s ended: %s", route, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
