"""Logging set-up. Phone numbers never reach a log line in full."""

from __future__ import annotations

import logging
import re

# What a phone number looks like here: E.164 (+8613800138000), a mobile with or without
# 86 (13800138000, 8613800138000, 138 0013 8000), a landline with its area code
# (0898-66668888). Standing alone: digits inside ids (ast-1795812065.3, CA..., case
# numbers 12345-20261128-000001) are not phone numbers.
_PHONE = re.compile(
    r"(?<![\w.+-])"
    r"(?:\+\d{8,15}"
    r"|(?:86)?1[3-9]\d(?:[ ]?\d{4}){2}"
    r"|0\d{2,3}[ -]?\d{7,8})"
    r"(?![\w.-])"
)


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
