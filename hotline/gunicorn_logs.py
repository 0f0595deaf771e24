"""Gunicorn's own loggers, masked: its error log ('gunicorn.error': worker crashes with
the request path and traceback) and access log ('gunicorn.access': each request line,
query string included) do not propagate to the root logger, so they get the same
PhoneMaskingFilter on their handlers. ``hotline web`` runs gunicorn with
``--logger-class hotline.gunicorn_logs.MaskedLogger``.

The access log's URLs (request line, path, query, referer, headers) are also read as
a browser wrote them: percent-escapes and '+' decoded, up to three times (a ``next``
holding a query is encoded twice), so that a number typed with spaces, full-width
digits or behind an escape is found. A URL that hides nothing keeps its form; one
that does is logged decoded, masked and escaped again.

Secrets in a query are hidden the same way: the value of ``api_key`` and of any
parameter whose name ends in ``key`` or ``token`` (``key``, ``access_token``) is
logged as ``***``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote_plus

from gunicorn.glogging import Logger

from hotline.logs import PhoneMaskingFilter, mask_phone

DECODE_ROUNDS = 3
URL_SAFE = "/?&=:;,@!$'()*+~#[]"  # kept as they are when a decoded URL is escaped again


# A query parameter naming a key or token, and its value (up to the next parameter).
_SECRET_PARAMETER = re.compile(r"(?i)((?:^|[?&;])[^=&;?#\s]*(?:key|token)=)[^&;#\s]*")


def hide_secrets(text: str) -> str:
    """``?api_key=o311_abc&x=1`` -> ``?api_key=***&x=1``; phone numbers masked."""
    return mask_phone(_SECRET_PARAMETER.sub(lambda m: m.group(1) + "***", text))


def mask_url(text: str) -> str:
    """``text`` masked, space-separated word by word (a request line is three words)."""
    return " ".join(_mask_url_word(word) for word in text.split(" "))


def _mask_url_word(word: str) -> str:
    masked = hide_secrets(word)
    decoded = masked
    for _ in range(DECODE_ROUNDS):
        step = unquote_plus(decoded)
        if step == decoded:
            break
        decoded = step
    if hide_secrets(decoded) == decoded:
        return masked  # nothing hides behind an escape: the URL as it was sent
    # Escaped again ('%', spaces and line breaks too): one word on one line.
    return quote(hide_secrets(decoded), safe=URL_SAFE)


class MaskedLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # replaces the handlers, also on a configuration reload
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(f, PhoneMaskingFilter) for f in handler.filters):
                    handler.addFilter(PhoneMaskingFilter())

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        used = self.cfg.access_log_format.lower()  # only what is written (environ is long)
        return {
            k: mask_url(v) if isinstance(v, str) and f"%({k.lower()})" in used else v
            for k, v in atoms.items()
        }
