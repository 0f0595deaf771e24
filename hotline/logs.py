"""Logging set-up. Phone numbers never reach a log line in full: the message with its
arguments, a traceback (an exception's text is often where a number hides), a stack,
an uncaught exception in any thread, and gunicorn's own error and access logs
(``hotline.gunicorn_logs``) all pass through PhoneMaskingFilter."""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType

from cases.phones import mask_phone

__all__ = ["PhoneMaskingFilter", "mask_phone", "setup_logging"]

log = logging.getLogger("hotline")


class PhoneMaskingFilter(logging.Filter):
    """Masks a record in place before any formatter sees it. On a handler it covers
    every record that handler writes, from whichever logger."""

    _traceback = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log what there is, never raise here
            message = f"{record.msg} {record.args!r}"
        record.msg = mask_phone(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_phone(record.exc_text)
            record.exc_info = None  # formatters print exc_text; nothing re-renders it whole
        if record.stack_info:
            record.stack_info = mask_phone(record.stack_info)
        return True


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    log.critical("uncaught exception", exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return  # what the default hook does too
    name = args.thread.name if args.thread else "?"
    exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
    log.critical("uncaught exception in thread %s", name, exc_info=exc_info)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s"))
    handler.addFilter(PhoneMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # import chatter
    # Python prints these to stderr itself, unmasked, unless they are logged.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
