"""The CLI's shared context (settings, and the queue on first use), in a module of its
own so that command groups kept in other modules (hotline.open311_cli) can use it
without importing hotline.cli, which imports them: under ``python -m hotline.cli``
that cycle loads hotline.cli twice and fails."""

from __future__ import annotations

import click
from redis.exceptions import ConnectionError as RedisConnectionError

from hotline.config import ConfigError, Settings, load_settings
from hotline.runtime import call_queue
from queueing import CallQueue


class Context:
    def __init__(self) -> None:
        try:
            self.settings: Settings = load_settings()
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        self._queue: CallQueue | None = None

    @property
    def queue(self) -> CallQueue:
        if self._queue is None:
            self._queue = call_queue(self.settings)
            try:
                self._queue.redis.ping()
            except (RedisConnectionError, OSError):
                raise click.ClickException(
                    "cannot reach Redis: start the service with scripts/run, or set REDIS_URL"
                ) from None
        return self._queue


pass_ctx = click.make_pass_decorator(Context, ensure=True)
