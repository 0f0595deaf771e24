"""Two hundred emulated calls at once through the FastAGI server: seats answering,
callers hanging up at random moments. Every call ends completed or abandoned, the
queue's log shows no double assignment and no lost call, and no thread or socket leaks."""

import os
import random
import threading
import time

import pytest
from redis import Redis

from queueing import CallQueue
from queueing.audit import audit_event_log
from queueing.settings import QueueSettings
from tests.asterisk_emulator import Operator
from tests.asterisk_harness import asterisk_rig

CALLS = 200
SEATS = 25


def agi_sockets_open(port: int) -> int:
    """TCP connections to or from the AGI port that are still open or half-closed."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                ports = {int(local.split(":")[1], 16), int(remote.split(":")[1], 16)}
                if port in ports and state in ("01", "08"):  # ESTABLISHED, CLOSE_WAIT
                    count += 1
    return count


@pytest.mark.slow
def test_two_hundred_concurrent_calls_with_random_hangups(redis: Redis) -> None:
    rng = random.Random(12345)
    queue = CallQueue(
        redis,
        QueueSettings(name="load", wrapup_s=0.0, offer_timeout_s=8.0, seat_heartbeat_ttl_s=600.0),
    )
    operators = {
        f"s{n}": Operator(
            f"s{n}",
            answer_after_s=rng.uniform(0.1, 0.4),
            talk_s=rng.uniform(0.3, 1.0),
            form={"description": "load"},
        )
        for n in range(SEATS)
    }
    for seat in operators:
        queue.seat_login(seat)
    threads_before = threading.active_count()
    with asterisk_rig(queue, None, operators, hold_s=0.5) as rig:
        channels = []
        hangups: list[tuple[float, object]] = []
        start = time.monotonic()
        for n in range(CALLS):
            channel = rig.emulator.call(f"1380000{n:04d}")
            channels.append(channel)
            if rng.random() < 0.35:  # a third hang up somewhere: menu, hold, ringing, talking
                hangups.append((start + rng.uniform(0.0, 12.0), channel))
            time.sleep(0.01)
        deadline = time.monotonic() + 120
        while not all(c.done.is_set() for c in channels):
            assert time.monotonic() < deadline, "calls did not finish"
            now = time.monotonic()
            for at, channel in list(hangups):
                if now >= at:
                    channel.hang_up()  # type: ignore[attr-defined]
                    hangups.remove((at, channel))
            queue.tick()
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while rig.server.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rig.server.active == 0
        assert agi_sockets_open(rig.server.server_address[1]) == 0
        served = rig.server.served
    outcomes = {}
    for channel in channels:
        flow = rig.handler.load("ast-" + channel.uniqueid)
        outcomes[channel.uniqueid] = flow.outcome if flow else None
    assert set(outcomes.values()) <= {"completed", "abandoned"}, outcomes
    assert list(outcomes.values()).count("completed") > CALLS // 2
    assert list(outcomes.values()).count("abandoned") > 0
    audit = audit_event_log(redis, queue.keys)
    assert audit.entered == CALLS
    assert audit.double_assignments == 0 and audit.ended_twice == 0
    assert audit.live == 0 and audit.lost_calls == 0
    assert served >= CALLS * 2  # inbound and hangup at least, per call
    time.sleep(0.5)
    assert threading.active_count() <= threads_before + 2
