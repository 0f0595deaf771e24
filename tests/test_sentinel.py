"""Redis high availability: the queue, RQ and the web ride out a Sentinel failover
through the one client that hotline.runtime.connect_redis builds, with no reconnect
by hand. Real engines: one primary, one replica, three sentinels (tests/sentinel_rig.py).

Replication is asynchronous: a write the primary acknowledged may not have reached
the replica when the primary dies. Each test therefore waits for the replica to
acknowledge (WAIT 1) before the kill, so it tests the failover and not that race;
docs/operations.md ("Redis Sentinel") says what the race can lose in production."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from hotline.config import ConfigError, Settings, load_settings
from hotline.runtime import BlockingSentinelConnectionPool, connect_redis
from queueing import CallQueue, Offer
from queueing.scripts import source
from queueing.settings import QueueSettings
from tests.conftest import wait_until
from tests.sentinel_rig import MASTER_NAME, SentinelRig, record_run


@pytest.fixture
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelRig]:
    with SentinelRig(tmp_path_factory.mktemp("sentinel")) as started:
        yield started


def sentinel_settings(rig: SentinelRig, var: Path, **extra: str) -> Settings:
    return load_settings(
        {
            "REDIS_SENTINELS": rig.sentinels_env,
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "HOTLINE_VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var / 'hotline.db'}",
            **extra,
        }
    )


def replicated(client: Redis) -> None:
    """The replica has everything written so far (see the module docstring)."""
    assert client.execute_command("WAIT", 1, 5000) == 1


def script_loaded(node: Redis, name: str) -> bool:
    from hashlib import sha1

    return bool(node.script_exists(sha1(source(name).encode()).hexdigest())[0])


def test_settings_name_the_sentinels() -> None:
    settings = load_settings({"REDIS_SENTINELS": "10.0.0.1:26379, [::1]:26380,"})
    assert settings.redis_sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert settings.redis_sentinel_master == "hotline"
    with pytest.raises(ConfigError):
        load_settings({"REDIS_SENTINELS": "10.0.0.1"})


def test_a_waiting_call_keeps_its_place_through_a_failover(rig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = connect_redis(sentinel_settings(rig, tmp_path))
    assert isinstance(client.connection_pool, BlockingSentinelConnectionPool)
    queue = CallQueue(client, QueueSettings(wrapup_s=0.0, offer_timeout_s=20.0))
    queue.seat_login("seat1")
    queue.seat_state("seat1", "paused", "break")
    assert queue.enqueue("CA-failover", caller="+8613800000000").result == "queued"
    replicated(client)

    rig.kill_primary()
    # The first command after the kill waits out detection, election and promotion.
    position = queue.position("CA-failover")
    assert (position.state, position.position, position.staffed_seats) == ("waiting", 1, 1)
    assert client.connection_pool.get_master_address() == ("127.0.0.1", rig.replica.port)  # type: ignore[attr-defined]

    # Scripts are not replicated: the new primary has none until redis-py's Script
    # reloads each one on NOSCRIPT.
    new_primary = rig.replica.client()
    assert not script_loaded(new_primary, "seat_state")
    back = queue.seat_state("seat1", "available")
    assert script_loaded(new_primary, "seat_state")
    assert back.offers == (Offer("CA-failover", "seat1"),)
    queue.answer("CA-failover", "seat1")
    assert queue.call("CA-failover")["state"] == "on_call"
    assert queue.seat("seat1")["state"] == "on_call"
    client.close()


def test_without_the_retry_policy_the_first_call_after_the_kill_fails(rig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What the retry policy is for: redis-py's own Sentinel client, no retries."""
    sentinel = Sentinel([("127.0.0.1", s.port) for s in rig.sentinels])
    client = sentinel.master_for(MASTER_NAME, retry=Retry(NoBackoff(), 0))
    queue = CallQueue(client, QueueSettings(wrapup_s=0.0))
    queue.enqueue("CA-noretry")
    replicated(client)
    rig.kill_primary()
    with pytest.raises(RedisConnectionError):
        queue.position("CA-noretry")
    client.close()


def test_a_job_queued_before_a_failover_is_run_after_it(rig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rq import Queue, SimpleWorker

    from calls import RQ_QUEUE
    from calls.workers import HotlineJob

    client = connect_redis(sentinel_settings(rig, tmp_path))
    jobs = Queue(RQ_QUEUE, connection=client, job_class=HotlineJob)
    job = jobs.enqueue(record_run, "sentinel-job-mark", job_id="sentinel-job")
    replicated(client)

    rig.kill_primary()
    # Built after the kill from the same client, as `hotline worker` builds it; its
    # scheduler rebuilds a connection from the client's pool settings.
    worker = SimpleWorker([jobs], connection=client, job_class=HotlineJob)
    assert worker.work(burst=True, with_scheduler=True)
    assert worker.scheduler is not None
    assert worker.scheduler.connection.connection_pool.connection_class is SentinelManagedConnection
    assert client.get("sentinel-job-mark") == b"ran"
    job.refresh()
    assert job.get_status() == "finished"
    assert client.connection_pool.get_master_address()[1] == rig.replica.port  # type: ignore[attr-defined]
    client.close()


def test_the_web_answers_healthz_after_a_failover(rig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from werkzeug.serving import make_server

    from hotline.webapp import create_app

    settings = sentinel_settings(rig, tmp_path, HOTLINE_SECRET_KEY="sentinel-test-secret")
    app = create_app({"SETTINGS": settings, "TESTING": True})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert requests.get(base + "/healthz", timeout=10).json() == {"status": "ok"}
        rig.kill_primary()
        answer = requests.get(base + "/healthz", timeout=60)
        assert answer.status_code == 200, answer.text
        rig.wait_for_promotion()
        assert rig.primary_address() == ("127.0.0.1", rig.replica.port)
    finally:
        server.shutdown()
        thread.join(5)


def test_the_old_primary_comes_back_as_a_replica_of_the_new_one(rig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Restarted with its old data and role, the killed primary is turned into a
    replica by the sentinels; writes keep going to the new primary and reach it."""
    client = connect_redis(sentinel_settings(rig, tmp_path))
    queue = CallQueue(client, QueueSettings(wrapup_s=0.0))
    queue.enqueue("CA-before")
    replicated(client)
    rig.kill_primary()
    rig.wait_for_promotion()
    rig.primary.start()
    old = rig.primary.client()

    def demoted_and_in_sync() -> bool:
        try:
            info = old.info("replication")
        except RedisConnectionError:
            return False
        return bool(info["role"] == "slave" and info["master_link_status"] == "up")

    wait_until(demoted_and_in_sync, 30, "the old primary replicating the new one")
    assert queue.enqueue("CA-after").result == "queued"
    replicated(client)
    assert old.hget(queue.keys.call("CA-after"), "state") == b"waiting"
    assert old.hget(queue.keys.call("CA-before"), "state") == b"waiting"
    client.close()


def test_a_burst_waits_for_a_connection_to_the_primary(rig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The sentinel client keeps the blocking pool: threads past the pool's size wait
    for a connection instead of failing (tests/test_runtime.py, for REDIS_URL)."""
    settings = sentinel_settings(rig, tmp_path, HOTLINE_REDIS_MAX_CONNECTIONS="8")
    client = connect_redis(settings)
    errors: list[BaseException] = []

    def hold_a_connection(n: int) -> None:
        try:
            client.blpop([f"burst-{n}"], timeout=0.2)
        except BaseException as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=hold_a_connection, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(client.connection_pool._connections) <= 8  # type: ignore[attr-defined]
    client.close()


def test_a_forking_worker_is_refused_with_sentinels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from hotline.cli import main

    env = {"REDIS_SENTINELS": "127.0.0.1:1", "HOTLINE_VAR_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["worker", "--fork"], env=env)
    assert result.exit_code == 2
    assert "--fork does not work with REDIS_SENTINELS" in result.output
