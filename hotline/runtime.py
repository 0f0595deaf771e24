"""Connections built from settings: the one place that knows where Redis is."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from redis import BlockingConnectionPool, Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelConnectionPoolProxy

from calls import RQ_QUEUE
from hotline.config import Settings
from queueing import CallQueue

__all__ = [
    "RQ_QUEUE",
    "call_handler",
    "call_queue",
    "connect_redis",
    "failover_retry",
    "redis_url",
]


def embedded_redis_dir(settings: Settings) -> Path:
    return settings.var_dir / "redis"


def redis_url(settings: Settings) -> str:
    """REDIS_URL, or the private server `hotline run` starts under var/."""
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{embedded_redis_dir(settings) / 'redis.sock'}"


# How long a command keeps trying through a Sentinel failover before its caller sees
# the error: detection (down-after-milliseconds, 5 s in docs/operations.md) plus the
# election and promotion take some seconds; back off to 1 s a try, ~30 s in all.
FAILOVER_RETRIES = 30


def failover_retry() -> Retry:
    """Retry on a lost or refused connection, a timeout, and a node that has become a
    replica (READONLY): each retry asks the sentinels for the primary again."""
    return Retry(
        ExponentialBackoff(cap=1.0, base=0.05),
        FAILOVER_RETRIES,
        supported_errors=(RedisConnectionError, RedisTimeoutError, ReadOnlyError),
    )


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (finds the primary, drops connections to a demoted one) with
    BlockingConnectionPool's bounded size, where threads wait for a free connection:
    redis-py's SentinelConnectionPool is built on the pool that raises instead."""

    def __init__(self, service_name, sentinel_manager, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(service_name, sentinel_manager, **kwargs)
        # Connections ask the proxy for the primary: this one counts a new one.
        self.proxy = FailoverCountingProxy(
            connection_pool=self,
            is_master=self.is_master,
            check_connection=self.check_connection,
            service_name=service_name,
            sentinel_manager=sentinel_manager,
        )
        self.connection_kwargs["connection_pool"] = self.proxy


class FailoverCountingProxy(SentinelConnectionPoolProxy):
    """Where a connection asks the sentinels for the primary: a primary other than the
    last one is a failover seen, counted for /metrics."""

    def get_master_address(self):  # type: ignore[no-untyped-def]
        before = self.master_address
        address = super().get_master_address()
        if self.is_master and before is not None and address != before:
            # Imported here: prometheus_client must load after the metrics dir is set.
            from calls.metrics import redis_failover_seen

            redis_failover_seen()
        return address


def connect_redis(settings: Settings) -> Redis:
    """A client whose threads wait for a free connection instead of failing: a burst
    of AGI sessions must queue for Redis, never drop a caller (redis-py's default pool
    raises MaxConnectionsError past 100). With REDIS_SENTINELS, the primary that the
    sentinels name, followed through failovers (see docs/operations.md)."""
    if settings.redis_sentinels:
        return connect_sentinel_primary(settings)
    pool = BlockingConnectionPool.from_url(
        redis_url(settings),
        max_connections=settings.redis_max_connections,
        timeout=20,
        health_check_interval=30,
        **({"password": settings.redis_password} if settings.redis_password else {}),
    )
    return Redis(connection_pool=pool)


def connect_sentinel_primary(settings: Settings) -> Redis:
    sentinel = Sentinel(
        list(settings.redis_sentinels),
        # A dead sentinel must not hold up the question to the next one.
        sentinel_kwargs={
            "socket_timeout": 1.0,
            "socket_connect_timeout": 1.0,
            "password": settings.redis_sentinel_password,
        },
    )
    return sentinel.master_for(
        settings.redis_sentinel_master,
        connection_pool_class=BlockingSentinelConnectionPool,
        max_connections=settings.redis_max_connections,
        timeout=20,
        retry=failover_retry(),
        # A primary whose host vanished must fail the connect, not hang it.
        socket_connect_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=30,
        password=settings.redis_password,
    )


def agi_settings(settings: Settings):  # type: ignore[no-untyped-def]
    from agi_scripts.sessions import AgiSettings

    return AgiSettings(
        sounds=settings.asterisk_sounds or str(settings.var_dir / "sounds" / "zh"),
        dial_pattern=settings.seat_dial_pattern,
        dial_by_prefix=settings.seat_dial_by_prefix,
        ring_timeout_s=settings.queue.ring_timeout_s,
        max_talk_s=settings.queue.max_talk_s,
        read_timeout_s=settings.agi_read_timeout_s,
        max_sessions=settings.agi_max_sessions,
        allow=settings.agi_allow,
        env_timeout_s=settings.agi_env_timeout_s,
        secret=settings.agi_secret,
        recordings_dir=str(settings.recordings_dir) if settings.recordings_dir else None,
    )


def dialer(settings: Settings, queue: CallQueue, originator=None):  # type: ignore[no-untyped-def]
    from calls.dialer import Dialer
    from calls.dialing import DialerSettings
    from cases.db import engine_for, session_factory

    sessions = session_factory(engine_for(settings.database_url))
    redis = queue.redis

    def redis_seconds() -> float:
        """Redis's clock: the dialers on several hosts (one active at a time) keep
        calling hours, pacing and each number's limits by one clock, not each host's."""
        seconds, micros = redis.time()
        return float(seconds) + micros / 1e6

    return Dialer(
        redis,
        queue.keys,
        sessions,
        originator,
        DialerSettings.from_env(),
        now=lambda: datetime.fromtimestamp(redis_seconds(), UTC),
        pace_clock=redis_seconds,
    )


def outbound_handler(settings: Settings, handler):  # type: ignore[no-untyped-def]
    from calls.outbound import OutboundHandler

    return OutboundHandler(handler, dialer(settings, handler.queue))


def call_queue(settings: Settings, redis: Redis | None = None) -> CallQueue:
    return CallQueue(redis or connect_redis(settings), settings.queue)


def call_handler(settings: Settings, queue: CallQueue):  # type: ignore[no-untyped-def]
    """The shell core every adapter runs: queue, RQ jobs, the caller directory."""
    from rq import Queue as JobQueue

    from calls import CallerDirectory, CallHandler
    from cases.db import engine_for, session_factory

    directory = CallerDirectory(session_factory(engine_for(settings.database_url)))
    jobs = JobQueue(RQ_QUEUE, connection=queue.redis)
    return CallHandler(queue, jobs, directory, phones=settings.phones)
