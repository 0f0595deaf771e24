"""One active reaper and one active dialer among several, by a lease in Redis
(calls.lease): against a real redis-server, then with real `hotline reaper` and
`hotline dialer` processes, one killed with SIGKILL."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis import Redis
from redis.crc import key_slot
from sqlalchemy import select

from calls.lease import Lease, holder
from cases.db import engine_for, session_factory, upgrade
from hotline.redis_server import RedisServer, free_port
from queueing import CallQueue, QueueKeys
from queueing.settings import QueueSettings
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]
KEY = QueueKeys("leasetest").lease("reaper")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_lease_keys_are_in_the_queue_keyspace() -> None:
    keys = QueueKeys("main")
    assert key_slot(keys.lease("reaper").encode()) == key_slot(keys.events.encode())
    assert keys.lease("reaper") != keys.lease("dialer")
    with pytest.raises(ValueError, match="lease role"):
        keys.lease("reaper:x")


def test_of_two_contenders_only_one_holds(redis: Redis) -> None:
    first, second = Lease(redis, KEY, "reaper", 6), Lease(redis, KEY, "reaper", 6)
    first.step()
    second.step()
    assert first.held and not second.held
    assert holder(redis, KEY) == (first.token.split(" ")[0], os.getpid())
    for _ in range(3):  # renewing keeps it; trying again does not take it
        first.step()
        second.step()
    assert first.held and not second.held
    assert redis.get(KEY) == first.token.encode()
    assert 0 < redis.pttl(KEY) <= 6000


def test_a_released_lease_goes_to_the_standby(redis: Redis) -> None:
    first, second = Lease(redis, KEY, "reaper", 6), Lease(redis, KEY, "reaper", 6)
    first.step()
    second.step()
    first.stop()
    assert not first.held and redis.get(KEY) is None
    second.step()
    assert second.held and redis.get(KEY) == second.token.encode()


@pytest.mark.parametrize("lost_how", ["deleted", "taken"])
def test_a_holder_whose_key_is_gone_stops_acting(redis: Redis, lost_how: str) -> None:
    lease = Lease(redis, KEY, "reaper", 6)
    lease.step()
    assert lease.held
    if lost_how == "deleted":  # e.g. lost with the async replica in a Sentinel failover
        redis.delete(KEY)
    else:
        redis.set(KEY, "another-host 1 feedbeef", px=6000)
    lease.step()
    assert not lease.held
    lease.stop()  # never deletes another holder's key
    if lost_how == "taken":
        assert redis.get(KEY) == b"another-host 1 feedbeef"
        assert holder(redis, KEY) == ("another-host", 1)


def test_a_deleted_lease_is_taken_again(redis: Redis) -> None:
    first, second = Lease(redis, KEY, "reaper", 6), Lease(redis, KEY, "reaper", 6)
    first.step()
    redis.delete(KEY)
    second.step()  # the standby tries before the holder's next renewal
    first.step()
    assert second.held and not first.held


def test_a_holder_stops_acting_before_its_key_could_expire(redis: Redis) -> None:
    """Renewals stuck in the client's retries (a Redis failing over): the holder stops on
    its own clock, while the key still lives on the server."""
    clock = FakeClock()
    lease = Lease(redis, KEY, "reaper", 6, clock=clock)
    lease.step()
    clock.now += 3.9
    assert lease.held
    clock.now += 0.1  # 4 s after the renewal was sent: 2 s before the key could expire
    assert not lease.held
    assert redis.pttl(KEY) > 1000
    lease.step()  # a renewal that gets through makes it ours again
    assert lease.held


def test_a_holder_whose_redis_is_away_stops_acting(tmp_path: Path) -> None:
    with RedisServer(tmp_path, free_port(), durable=False) as server:
        client = Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        lease = Lease(client, KEY, "reaper", 6)
        lease.step()
        assert lease.held
    lease.step()  # the server is gone: the renewal fails
    assert not lease.held


def test_the_work_loop_logs_becoming_active_and_losing_the_lease(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    lease = Lease(redis, KEY, "reaper", 6)
    with caplog.at_level(logging.INFO, logger="hotline.lease"):
        assert not lease.active()
        lease.step()
        assert lease.active()
        redis.delete(KEY)
        lease.step()
        assert not lease.active()
    messages = [r.getMessage() for r in caplog.records]
    assert f"reaper: active (holds the lease {KEY})" in messages
    assert f"reaper: lost the lease {KEY}; standing by" in messages


def test_the_threads_keep_one_holder_and_hand_over_on_stop(redis: Redis) -> None:
    with Lease(redis, KEY, "reaper", 3) as first:
        wait_until(lambda: first.held, timeout_s=10, what="the first to hold the lease")
        with Lease(redis, KEY, "reaper", 3) as second:
            since = time.monotonic()

            def two_ttls_later() -> bool:
                assert not (first.held and second.held), "two holders at once"
                return time.monotonic() - since > 6

            wait_until(two_ttls_later, timeout_s=30, what="two TTLs of renewals")
            assert redis.get(KEY) == first.token.encode()  # renewed, never taken
            first.stop()
            wait_until(lambda: second.held, timeout_s=10, what="the standby holding the lease")
            assert redis.get(KEY) == second.token.encode()
    assert redis.get(KEY) is None


def test_the_lease_survives_a_sentinel_failover_with_one_holder(tmp_path: Path) -> None:
    """Through the Sentinel client of hotline.runtime: after the primary is killed the
    lease may be lost with the asynchronous replica; either way one holder comes back,
    and at no sampled moment do two hold it."""
    from hotline.config import load_settings
    from hotline.runtime import connect_redis
    from tests.sentinel_rig import MASTER_NAME, SentinelRig

    with SentinelRig(tmp_path / "sentinel") as rig:
        settings = load_settings(
            {
                "REDIS_SENTINELS": rig.sentinels_env,
                "REDIS_SENTINEL_MASTER": MASTER_NAME,
                "HOTLINE_VAR_DIR": str(tmp_path),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'hotline.db'}",
            }
        )
        client = connect_redis(settings)
        leases = [Lease(connect_redis(settings), KEY, "reaper", 2) for _ in range(2)]

        def one_holder() -> bool:
            held = [lease for lease in leases if lease.held]
            assert len(held) <= 1, "two holders at once"
            return len(held) == 1 and client.get(KEY) == held[0].token.encode()

        for lease in leases:
            lease.start()
        try:
            wait_until(one_holder, timeout_s=30, what="one holder")
            rig.kill_primary()
            rig.wait_for_promotion()
            wait_until(one_holder, timeout_s=60, what="one holder after the failover")
        finally:
            for lease in leases:
                lease.stop()


# -- processes ---------------------------------------------------------------------------


def _start(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", command],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def service_env(redis_server, redis: Redis, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    return {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": db_url,
        "HOTLINE_VAR_DIR": str(tmp_path),
        "HOTLINE_QUEUE": "leasetest",
        "HOTLINE_LEASE_TTL_S": "2",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)


def _ring_out(queue: CallQueue, call_id: str, seat_id: str) -> None:
    """An offer whose ring time is up at once: only a sweeping reaper takes it back."""
    queue.seat_login(seat_id)
    queue.enqueue(call_id)
    assert queue.call(call_id)["state"] == "offered"
    assert queue.ringing(call_id, seat_id).result == "ringing"


def test_a_standby_reaper_takes_over_when_the_active_one_is_killed(
    service_env: dict[str, str],
    redis: Redis,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    logs = [tmp_path / "reaper-0.log", tmp_path / "reaper-1.log"]
    processes.extend(_start("reaper", service_env, log) for log in logs)
    queue = CallQueue(redis, QueueSettings(name="leasetest", offer_timeout_s=0.1, wrapup_s=0))

    active_pid = wait_until(
        lambda: (holder(redis, KEY) or (None, None))[1], timeout_s=30, what="a reaper active"
    )
    pids = [p.pid for p in processes]
    assert active_pid in pids
    active = pids.index(active_pid)
    standby = 1 - active

    _ring_out(queue, "c1", "1001")
    wait_until(lambda: queue.call("c1").get("state") == "waiting", timeout_s=30, what="c1 back")
    wait_until(
        lambda: "ring_no_answer': 1" in logs[active].read_text(),
        timeout_s=30,
        what="the active reaper's log of the sweep",
    )
    assert all(p.poll() is None for p in processes)
    standby_log = logs[standby].read_text()
    assert "reaper: active" not in standby_log and "ring_no_answer': 1" not in standby_log
    assert "reaper: active" in logs[active].read_text()
    queue.hangup("c1")
    queue.seat_logout("1001", force=True)

    processes[active].send_signal(signal.SIGKILL)
    processes[active].wait(timeout=20)
    wait_until(
        lambda: (holder(redis, KEY) or ("", 0))[1] == pids[standby],
        timeout_s=30,
        what="the standby holding the lease",
    )
    _ring_out(queue, "c2", "1002")
    wait_until(lambda: queue.call("c2").get("state") == "waiting", timeout_s=30, what="c2 back")
    wait_until(
        lambda: "ring_no_answer': 1" in logs[standby].read_text(),
        timeout_s=30,
        what="the standby's log of the sweep",
    )
    assert "reaper: active" in logs[standby].read_text()

    processes[standby].terminate()  # a graceful stop gives the lease back
    assert processes[standby].wait(timeout=20) in (0, -signal.SIGTERM)
    assert redis.get(KEY) is None
    assert "reaper: released the lease" in logs[standby].read_text()


def test_the_dialer_command_dials_only_while_holding_its_lease(
    service_env: dict[str, str],
    redis: Redis,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """Standing by while another holds the lease, it plans nothing; the lease freed, it
    takes it and plans the callback owed; stopped, it gives the lease back."""
    from cases.models import CallbackRequest, OutboundItem

    sessions = session_factory(engine_for(service_env["DATABASE_URL"]))
    with sessions() as db:
        db.add(
            CallbackRequest(
                call_id="c-asked",
                caller_phone="+8613600000001",
                reason="long_wait",
                requested_at=datetime.now(UTC),
            )
        )
        db.commit()

    def planned() -> bool:
        with sessions() as db:
            return db.scalar(select(OutboundItem.source)) == "callback:c-asked"

    key = QueueKeys("leasetest").lease("dialer")
    redis.set(key, "another-host 1 feedbeef", px=600_000)
    log = tmp_path / "dialer.log"
    dialer = _start("dialer", service_env, log)
    processes.append(dialer)
    wait_until(lambda: "dialer: standing by" in log.read_text(), timeout_s=30, what="standby")
    time.sleep(2)  # a few of its tries to take the lease (every 1/3 s)
    assert not planned() and dialer.poll() is None
    assert "dialer: active" not in log.read_text()

    redis.delete(key)  # the other dialer's lease is gone
    wait_until(planned, timeout_s=30, what="the callback planned by the dialer now active")
    assert (holder(redis, key) or ("", 0))[1] == dialer.pid
    assert "dialer: active" in log.read_text()
    dialer.terminate()
    assert dialer.wait(timeout=20) in (0, -signal.SIGTERM), log.read_text()
    assert redis.get(key) is None
