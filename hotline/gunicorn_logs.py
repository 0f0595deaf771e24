"""Gunicorn's own loggers, masked: its error log ('gunicorn.error': worker crashes with
the request path and traceback) and access log ('gunicorn.access': each request line,
query string included) do not propagate to the root logger, so they get the same
PhoneMaskingFilter on their handlers. ``hotline web`` runs gunicorn with
``--logger-class hotline.gunicorn_logs.MaskedLogger``."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from hotline.logs import PhoneMaskingFilter


class MaskedLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # replaces the handlers, also on a configuration reload
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(f, PhoneMaskingFilter) for f in handler.filters):
                    handler.addFilter(PhoneMaskingFilter())
