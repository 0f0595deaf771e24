"""Response headers for every surface: a Content-Security-Policy without inline script
or style on HTML, frame and sniffing protection, no caching of anything that may carry
personal data, and static files that are versioned by content, cached for a year and
sent gzipped to clients that accept it."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from flask import Flask, Response, current_app, request, url_for
from werkzeug.security import safe_join

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",  # the portal's chime
        "connect-src 'self'",  # htmx and the event streams
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
VERSIONED_CACHE = "public, max-age=31536000, immutable"
UNVERSIONED_CACHE = "public, max-age=300"
COMPRESSIBLE = frozenset(
    {"text/css", "text/javascript", "application/javascript", "image/svg+xml", "application/json"}
)
_EXTENSION = "hotline_static"


def init_headers(app: Flask) -> None:
    app.extensions[_EXTENSION] = {"versions": {}, "gzipped": {}}
    app.jinja_env.globals["static_url"] = static_url
    app.after_request(add_headers)


def static_url(filename: str) -> str:
    """The URL of a static file carrying its content hash, so it can be cached forever."""
    return url_for("static", filename=filename, v=_version(filename))


def add_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    if response.mimetype == "text/html":
        headers["Content-Security-Policy"] = _with_push(CONTENT_SECURITY_POLICY)
    if request.endpoint == "static":
        _static_caching(response)
    elif response.cache_control.max_age is None:
        # Pages, fragments, API answers and streams may all show a citizen's data;
        # only what a route itself marked cacheable (the hold music) is left alone.
        headers["Cache-Control"] = "no-store"
    return response


def _with_push(policy: str) -> str:
    """The push process's origin may be connected to when it is on its own port."""
    from web.push_links import stream_origin

    origin = stream_origin()
    if not origin:
        return policy
    return policy.replace("connect-src 'self'", f"connect-src 'self' {origin}")


def _static_caching(response: Response) -> None:
    filename = (request.view_args or {}).get("filename", "")
    current = response.status_code in (200, 304) and request.args.get("v") == _version(filename)
    response.headers["Cache-Control"] = VERSIONED_CACHE if current else UNVERSIONED_CACHE
    response.headers.pop("Expires", None)
    if response.mimetype not in COMPRESSIBLE:
        return
    response.vary.add("Accept-Encoding")
    if (
        response.status_code != 200
        or "Content-Range" in response.headers
        or "gzip" not in request.accept_encodings
    ):
        return
    body = _gzipped(filename)
    if body is None:
        return
    etag, _ = response.get_etag()
    file_body = getattr(response.response, "close", None)
    if file_body is not None:
        file_body()  # the file send_file opened; the gzipped copy replaces it
    response.direct_passthrough = False
    response.set_data(body)  # HEAD too: its Content-Length is the gzipped one
    response.headers["Content-Encoding"] = "gzip"
    if etag:  # the same file in another coding: a weak validator, as nginx does
        response.set_etag(etag, weak=True)


def _static_path(filename: str) -> Path | None:
    folder = current_app.static_folder
    joined = safe_join(folder, filename) if folder else None
    return Path(joined) if joined and Path(joined).is_file() else None


def _version(filename: str) -> str:
    """The first 12 hex digits of the file's SHA-256, read once per process."""
    versions: dict[str, str] = current_app.extensions[_EXTENSION]["versions"]
    if filename not in versions:
        path = _static_path(filename)
        if path is None:
            return ""
        versions[filename] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return versions[filename]


def _gzipped(filename: str) -> bytes | None:
    """The file gzipped once per process (a few hundred KB for all of web/static)."""
    cache: dict[str, bytes] = current_app.extensions[_EXTENSION]["gzipped"]
    if filename not in cache:
        path = _static_path(filename)
        if path is None:
            return None
        cache[filename] = gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)
    return cache[filename]
