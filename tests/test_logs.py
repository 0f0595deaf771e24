"""Phone numbers never reach a log line in full."""

import io
import logging

import pytest

from hotline.logs import PhoneMaskingFilter, mask_phone


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13800138000", "138****8000"),
        ("+8613800138000", "+861******8000"),
        ("call 0898-66668888 now", "call 089*-****8888 now"),
        ("seat 1001 took call 42", "seat 1001 took call 42"),
        ("12345", "12345"),
        ("138 0013 8000", "138 **** 8000"),
        ("8613800138000", "861******8000"),
        # ids are not phone numbers: they stay readable
        ("call ast-1795812065.12 ended", "call ast-1795812065.12 ended"),
        ("case 12345-20261128-000001 made", "case 12345-20261128-000001 made"),
        ("call CA13800138000aaaa", "call CA13800138000aaaa"),
        ("job case-ast-1795812065_12-1a2b3c4d", "job case-ast-1795812065_12-1a2b3c4d"),
    ],
)
def test_mask_phone(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


def test_log_records_are_masked_including_their_arguments() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PhoneMaskingFilter())
    logger = logging.getLogger("hotline.test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("call from %s to %s", "13800138000", "12345")
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert "13800138000" not in line and "138****8000" in line and "12345" in line
