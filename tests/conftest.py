"""Shared fixtures: a real redis-server on a random loopback port for the session,
flushed around every test."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import pytest
from redis import Redis

from hotline.redis_server import RedisServer
from queueing import CallQueue
from queueing.settings import QueueSettings
from tests.pg import PostgresServer


@pytest.fixture(scope="session", autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    from cases.db import dispose_all

    dispose_all()


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


def wait_until(
    predicate: Callable[[], object], timeout_s: float = 5.0, what: str = "condition"
) -> object:
    """Poll until predicate() is truthy; fail with a clear message otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout_s}s")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


_database_numbers = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A new, empty database of each kind. A PostgreSQL one is dropped after its test,
    with every connection still open to it: the session's server allows 100 clients,
    and each test's pooled engine would otherwise keep its connections to the end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'hotline.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"hotline_test_{next(_database_numbers)}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        from cases.db import dispose_engine

        dispose_engine(url)
        server.drop_database(name)


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A database migrated to head and seeded."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed

    upgrade(empty_db_url)
    with session_factory(engine_for(empty_db_url))() as session:
        seed(session)
        session.commit()
    return empty_db_url


@pytest.fixture
def session(db_url: str):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory

    with session_factory(engine_for(db_url))() as s:
        yield s
