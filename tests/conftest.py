"""Shared fixtures: a real redis-server on a random loopback port for the session,
flushed around every test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from redis import Redis

from hotline.config import QueueSettings
from hotline.redis_server import RedisServer
from queueing import CallQueue


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis"), durable=False) as server:
        yield server


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[Redis]:
    client = Redis.from_url(redis_server.url)
    assert client.dbsize() == 0, "test Redis must start empty"
    try:
        yield client
    finally:
        client.flushall()
        client.close()


@pytest.fixture
def make_queue(redis: Redis) -> Callable[..., CallQueue]:
    """A CallQueue with settings tuned for tests (short timers unless overridden)."""

    def make(**overrides: object) -> CallQueue:
        base: dict[str, object] = {"wrapup_s": 0.0, "offer_timeout_s": 20.0}
        base.update(overrides)
        return CallQueue(redis, QueueSettings(**base))  # type: ignore[arg-type]

    return make


@pytest.fixture
def queue(make_queue: Callable[..., CallQueue]) -> CallQueue:
    return make_queue()


def wait_until(predicate: Callable[[], object], timeout_s: float = 5.0) -> object:
    """Poll until predicate() is truthy; fail with a clear message otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(0.02)
