"""Where a page opens its live streams: the push process (push/), not the web.

Behind the front proxy the stream paths are on this site and are routed to the push
process, so a page uses the path alone. Without a proxy (``scripts/run``), the push
process listens on its own port, HOTLINE_PUSH_PUBLIC_PORT: a page opens its streams
there, on the host name the browser used for the page (the same site, so the sign-in
cookie, which ignores ports, comes along), and the page's CSP allows that origin."""

from __future__ import annotations

import os
from urllib.parse import urlencode

from flask import Flask, current_app, request

CONFIG_KEY = "PUSH_PUBLIC_PORT"


def init_push_links(app: Flask) -> None:
    app.config.setdefault(CONFIG_KEY, os.environ.get("HOTLINE_PUSH_PUBLIC_PORT") or None)
    app.jinja_env.globals["stream_url"] = stream_url


def stream_origin() -> str:
    """The push process's origin when a page must reach it on its own port, else ""."""
    port = current_app.config.get(CONFIG_KEY)
    if not port:
        return ""
    host = request.host
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host  # [::1] stays whole
    return f"{request.scheme}://{name}:{int(port)}"


def stream_url(path: str, **query: str) -> str:
    """A stream's URL for a page: ``/console/events`` (or on the push port)."""
    tail = f"?{urlencode(query)}" if query else ""
    return f"{stream_origin()}{path}{tail}"
