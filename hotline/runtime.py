"""Connections built from settings: the one place that knows where Redis is."""

from __future__ import annotations

from redis import Redis

from hotline.config import Settings
from queueing import CallQueue

RQ_QUEUE = "hotline"


def embedded_redis_dir(settings: Settings):  # -> Path
    return settings.var_dir / "redis"


def redis_url(settings: Settings) -> str:
    """REDIS_URL, or the private server `hotline run` starts under var/."""
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{embedded_redis_dir(settings) / 'redis.sock'}"


def connect_redis(settings: Settings) -> Redis:
    return Redis.from_url(redis_url(settings), health_check_interval=30)


def call_queue(settings: Settings, redis: Redis | None = None) -> CallQueue:
    return CallQueue(redis or connect_redis(settings), settings.queue)
