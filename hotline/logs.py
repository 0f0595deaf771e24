"""Logging set-up. Phone numbers never reach a log line in full."""

from __future__ import annotations

import logging
import re

# A run of 7 or more digits, possibly with + - or spaces inside, is a phone number here.
_PHONE = re.compile(r"\+?\d[\d -]{5,}\d")


def _mask(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if digits < 7:
        return text
    keep_head, keep_tail, seen, out = 3, 4, 0, []
    for c in text:
        if c.isdigit():
            seen += 1
            out.append(c if seen <= keep_head or seen > digits - keep_tail else "*")
        else:
            out.append(c)
    return "".join(out)


def mask_phone(text: str) -> str:
    """'13800138000' -> '138****8000': enough to recognise a caller, not to dial them."""
    return _PHONE.sub(_mask, text)


class PhoneMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_phone(record.getMessage())
        record.args = None
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s"))
    handler.addFilter(PhoneMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # import chatter
