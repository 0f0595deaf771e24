"""Phone numbers never reach a log line in full: not in a message, its arguments, a
traceback, a stack, or an uncaught exception, whatever way the number was written;
and what is not a phone number (ids, case numbers, times, ports) stays readable."""

import io
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.logs import PhoneMaskingFilter, mask_phone

ROOT = Path(__file__).resolve().parents[1]


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
        # every way a caller's number is written
        ("008613900139000", "008********9000"),
        ("139-0013-9000", "139-****-9000"),
        ("139 0013 9000", "139 **** 9000"),
        ("(0898)6666-1234", "(089*)****-1234"),
        ("(0898) 6666 1234", "(089*) **** 1234"),
        ("0898-66661234", "089*-****1234"),
        ("0898-6666-1234", "089*-****-1234"),
        ("010-12345678", "010-****5678"),
        ("+86 139 0013 9000", "+86 1** **** 9000"),
        ("0044 7700 900123", "004* **** **0123"),  # 00, the international prefix
        ("0044-7700-900123", "004*-****-**0123"),
        ("+44 7700 900123", "+44 7*** **0123"),
        ("+86-898-6666-1234", "+86-8**-****-1234"),
        ("86-139-0013-9000", "86-1**-****-9000"),
        ("GET /lookup?phone=%2B8613900139000", "GET /lookup?phone=%2B861******9000"),
        ("来电13900139000已接通", "来电139****9000已接通"),
        ("查询１３９００１３９０００", "查询１３９****９０００"),  # typed with a Chinese IME
        ("call from 13900139000.", "call from 139****9000."),
        ('{"caller": "13900139000"}', '{"caller": "139****9000"}'),
        ("sip:13900139000@pbx", "sip:139****9000@pbx"),
        # as a URL carries what an operator typed: '+' or %20 for a space, after an escape
        ("q=139+0013+9000", "q=139+****+9000"),
        ("q=139%200013%209000", "q=139%20****%209000"),
        ("q=+86+139+0013+9000", "q=+86+1**+****+9000"),
        ("q=0898+6666+1234", "q=089*+****+1234"),
        ("q=139.0013.9000", "q=139.****.9000"),
        ("q=tel13900139000", "q=tel139****9000"),
        ("q=%E6%9D%A5%E7%94%B513900139000", "q=%E6%9D%A5%E7%94%B5139****9000"),
        ("next=/x%3Fq%3D13900139000", "next=/x%3Fq%3D139****9000"),
        # ids are not phone numbers: they stay readable
        ("call ast-1795812065.12 ended", "call ast-1795812065.12 ended"),
        ("case 12345-20261128-000001 made", "case 12345-20261128-000001 made"),
        ("call CA13800138000aaaa", "call CA13800138000aaaa"),
        ("job case-ast-1795812065_12-1a2b3c4d", "job case-ast-1795812065_12-1a2b3c4d"),
    ],
)
def test_mask_phone(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


@pytest.mark.parametrize(
    "line",
    [
        "case 20261201-0001 dispatched",
        "case 12345-20261201-000001 closed",
        "2026-12-01 10:00:00,123 INFO  hotline: ready",
        "[2026-12-01 10:00:00 +0800] [4242] [INFO] Listening at: http://127.0.0.1:8000 (4242)",
        '127.0.0.1 "GET /healthz HTTP/1.1" 200 2 13ms',
        "redis at 127.0.0.1:63790, wait_ms=45000 talk_ms=1234567 took 0.013900139 s",
        "stream id 1795812065123-0 folded; cursor 1795812065123-7",
        "unix time 1795812065, pid 13900, port 8000",
        "job 3f1c2b8e-1a2b-4c3d-8e9f-013900139000 finished",
        "version 27.0.1 on Python 3.11.2",
        "seat 1001 paused for 900 s; 12345 and 95598 merged",
    ],
)
def test_what_is_not_a_phone_number_stays_readable(line: str) -> None:
    assert mask_phone(line) == line


@pytest.fixture
def masked_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PhoneMaskingFilter())
    logger = logging.getLogger("hotline.test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_log_records_are_masked_including_their_arguments(masked_log) -> None:  # type: ignore[no-untyped-def]
    logger, stream = masked_log
    logger.warning("call from %s to %s", "13800138000", "12345")
    line = stream.getvalue()
    assert "13800138000" not in line and "138****8000" in line and "12345" in line


def test_tracebacks_and_stacks_are_masked(masked_log) -> None:  # type: ignore[no-untyped-def]
    logger, stream = masked_log

    def lookup(phone: str) -> None:
        raise LookupError(f"no case for {phone}")

    try:
        lookup("139-0013-9000")
    except LookupError:
        logger.exception("lookup of %s failed", "008613900139000")
    logger.warning("here is where %s was", "+8613900139000", stack_info=True)
    text = stream.getvalue()
    assert "Traceback" in text and "LookupError: no case for 139-****-9000" in text
    assert "Stack (most recent call last)" in text
    for full in ("139-0013-9000", "008613900139000", "8613900139000", "00139000"):
        assert full not in text


def test_a_bad_format_is_logged_not_raised(masked_log) -> None:  # type: ignore[no-untyped-def]
    logger, stream = masked_log
    logger.warning("call from %s to %s", "13800138000")  # one argument short
    assert "13800138000" not in stream.getvalue() and "138****8000" in stream.getvalue()


UNCAUGHT = """
import threading
from hotline.logs import setup_logging
setup_logging("INFO")
def fail():
    raise RuntimeError("caller 13900139000 in a thread")
worker = threading.Thread(target=fail)
worker.start()
worker.join()
raise RuntimeError("caller 0898-6666-1234 in the main thread")
"""


def test_uncaught_exceptions_go_through_the_masked_log() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(UNCAUGHT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "caller 139****9000 in a thread" in output
    assert "caller 089*-****-1234 in the main thread" in output
    assert "13900139000" not in output and "6666-1234" not in output
