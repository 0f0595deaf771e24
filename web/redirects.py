"""Where a user-supplied ``next`` may send the browser: a path on this site, nothing
else. Every redirect to a target from a query or a form goes through safe_next.

Refused: another site (``https://x``, ``//x``), a backslash (browsers read ``/\\x`` as
``//x``), and control characters, CR and LF above all (a header cannot hold them:
werkzeug raises, which was a 500 after the action had been done)."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_next(target: object, under: str = "/") -> str | None:
    """``target`` when it is a path on this site beginning with ``under``, else None."""
    if not isinstance(target, str) or not target.startswith(under) or target.startswith("//"):
        return None
    if any(c < " " or c == "\x7f" or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
