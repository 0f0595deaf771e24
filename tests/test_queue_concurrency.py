"""Many processes at once: no call offered to two seats, no seat holding two calls,
no call lost; and a process killed mid-offer loses nothing."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis

from hotline.redis_server import RedisServer
from queueing import CallQueue
from queueing.audit import audit_event_log
from queueing.settings import QueueSettings
from tests.queue_workers import telephony_worker

WORKERS = 8
CALLS_PER_WORKER = 1250
SEATS = 50


@pytest.mark.slow
def test_eight_processes_ten_thousand_calls_fifty_seats(
    redis: Redis, redis_server: RedisServer
) -> None:
    queue = CallQueue(redis, QueueSettings(wrapup_s=0.0, offer_timeout_s=600))
    for n in range(SEATS):
        queue.seat_login(f"seat{n}", ["mandarin"])
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=telephony_worker, args=(redis_server.url, w, CALLS_PER_WORKER))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    audit = audit_event_log(redis, queue.keys)
    assert audit.entered == WORKERS * CALLS_PER_WORKER
    assert audit.double_assignments == 0
    assert audit.ended_twice == 0
    assert audit.live == 0 and audit.lost_calls == 0
    outcomes = Counter(queue.call(c)["outcome"] for c in audit.ended)
    assert outcomes["completed"] > 0 and outcomes["abandoned"] > 0
    assert redis.zcard(queue.keys.live_calls) == 0
    assert redis.zcard(queue.keys.offers) == 0
    states = Counter(queue.seat(f"seat{n}")["state"] for n in range(SEATS))
    assert states == {"available": SEATS}


def test_process_killed_between_offer_and_answer_loses_no_call(
    redis: Redis, redis_server: RedisServer
) -> None:
    queue = CallQueue(redis, QueueSettings(offer_timeout_s=0.5))
    queue.seat_login("s1")
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.queue_workers", redis_server.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "offered s1"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    child.stdin.close()  # type: ignore[union-attr]
    assert queue.call("doomed")["state"] == "offered"
    deadline = time.monotonic() + 5
    while queue.tick()[0]["ring_no_answer"] == 0:
        assert time.monotonic() < deadline, "reaper never reclaimed the offer"
        time.sleep(0.05)
    assert queue.call("doomed")["state"] == "waiting"
    assert queue.position("doomed").position == 1
    assert queue.seat_login("s2").offers[0].call_id == "doomed"


def test_audit_detects_a_double_assignment_and_a_lost_call(redis: Redis) -> None:
    """The audit itself must be able to fail: feed it a forged log."""
    queue = CallQueue(redis)
    for fields in (
        {"type": "ENTERQUEUE", "call": "a"},
        {"type": "ENTERQUEUE", "call": "b"},
        {"type": "OFFER", "call": "a", "seat": "s1"},
        {"type": "OFFER", "call": "b", "seat": "s1"},  # s1 already holds a
        {"type": "COMPLETE", "call": "a", "seat": "s1"},
    ):
        redis.xadd(queue.keys.events, fields)
    audit = audit_event_log(redis, queue.keys)
    assert audit.double_assignments == 1
    assert audit.lost_calls == 1  # b never ended and is not live
