"""Connections built from settings: the one place that knows where Redis is."""

from __future__ import annotations

from pathlib import Path

from redis import BlockingConnectionPool, Redis

from calls import RQ_QUEUE
from hotline.config import Settings
from queueing import CallQueue

__all__ = ["RQ_QUEUE", "call_handler", "call_queue", "connect_redis", "redis_url"]


def embedded_redis_dir(settings: Settings) -> Path:
    return settings.var_dir / "redis"


def redis_url(settings: Settings) -> str:
    """REDIS_URL, or the private server `hotline run` starts under var/."""
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{embedded_redis_dir(settings) / 'redis.sock'}"


def connect_redis(settings: Settings) -> Redis:
    """A client whose threads wait for a free connection instead of failing: a burst
    of AGI sessions must queue for Redis, never drop a caller (redis-py's default pool
    raises MaxConnectionsError past 100)."""
    pool = BlockingConnectionPool.from_url(
        redis_url(settings),
        max_connections=settings.redis_max_connections,
        timeout=20,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


def agi_settings(settings: Settings):  # type: ignore[no-untyped-def]
    from agi_scripts.sessions import AgiSettings

    return AgiSettings(
        sounds=settings.asterisk_sounds or str(settings.var_dir / "sounds" / "zh"),
        dial_pattern=settings.seat_dial_pattern,
        ring_timeout_s=settings.queue.ring_timeout_s,
        max_talk_s=settings.queue.max_talk_s,
        read_timeout_s=settings.agi_read_timeout_s,
        max_sessions=settings.agi_max_sessions,
        allow=settings.agi_allow,
        env_timeout_s=settings.agi_env_timeout_s,
        secret=settings.agi_secret,
    )


def dialer(settings: Settings, queue: CallQueue, originator=None):  # type: ignore[no-untyped-def]
    from calls.dialer import Dialer
    from calls.dialing import DialerSettings
    from cases.db import engine_for, session_factory

    sessions = session_factory(engine_for(settings.database_url))
    return Dialer(queue.redis, queue.keys, sessions, originator, DialerSettings.from_env())


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
