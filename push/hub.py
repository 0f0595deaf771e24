"""One reader of the queue's event stream per push process, fanned out to the open
streams: a console gets its seat's events, the wallboards one shared wake-up at most
once a second (and every few seconds anyway: times in state move without an event),
and the inboxes of one unit share one cheap SQL poll."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("hotline.push.hub")

MAX_BACKLOG = 256  # a stream that stops reading loses old events, never blocks the hub
BOARD_EVERY_S = 1.0
BOARD_IDLE_REDRAW_S = 5.0
INBOX_POLL_S = 2.0


class Hub:
    def __init__(
        self,
        redis: Redis,
        events_key: str,
        inbox_version: Callable[[int], str] | None = None,
    ) -> None:
        self.redis, self.events_key = redis, events_key
        self.inbox_version = inbox_version  # blocking (SQL): run in a worker thread
        self.last_id = "0-0"  # the newest event seen: a board drawn after it shows it
        self._seats: dict[str, set[asyncio.Queue[dict[str, str]]]] = defaultdict(set)
        self._boards: set[asyncio.Queue[str]] = set()
        self._board_changed = asyncio.Event()
        self._units: dict[int, set[asyncio.Queue[str]]] = defaultdict(set)
        self._unit_tasks: dict[int, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.events_seen = 0
        self.following = False  # the last read of the event stream succeeded

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(), name="push-follow"),
            asyncio.create_task(self._boards_ticker(), name="push-boards"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._unit_tasks.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._unit_tasks.values(), return_exceptions=True)

    # -- subscriptions -------------------------------------------------------------

    def watch_seat(self, seat: str) -> asyncio.Queue[dict[str, str]]:
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue(MAX_BACKLOG)
        self._seats[seat].add(inbox)
        return inbox

    def unwatch_seat(self, seat: str, inbox: asyncio.Queue[dict[str, str]]) -> None:
        self._seats[seat].discard(inbox)
        if not self._seats[seat]:
            del self._seats[seat]

    def watch_board(self) -> asyncio.Queue[str]:
        wakes: asyncio.Queue[str] = asyncio.Queue(1)
        wakes.put_nowait(self.last_id)  # draw at once
        self._boards.add(wakes)
        return wakes

    def unwatch_board(self, wakes: asyncio.Queue[str]) -> None:
        self._boards.discard(wakes)

    def watch_unit(self, unit: int) -> asyncio.Queue[str]:
        versions: asyncio.Queue[str] = asyncio.Queue(1)
        self._units[unit].add(versions)
        if unit not in self._unit_tasks:
            self._unit_tasks[unit] = asyncio.create_task(self._poll_unit(unit))
        return versions

    def unwatch_unit(self, unit: int, versions: asyncio.Queue[str]) -> None:
        self._units[unit].discard(versions)
        if not self._units[unit]:
            del self._units[unit]
            task = self._unit_tasks.pop(unit, None)
            if task:
                task.cancel()

    def counts(self) -> dict[str, int]:
        return {
            "consoles": sum(len(s) for s in self._seats.values()),
            "wallboards": len(self._boards),
            "inboxes": sum(len(s) for s in self._units.values()),
        }

    # -- the readers ---------------------------------------------------------------

    async def _follow(self) -> None:
        last = "$"
        while True:
            try:
                if last == "$":  # start from the newest entry, by id, not "$" per read
                    newest = await self.redis.xrevrange(self.events_key, count=1)
                    last = _text(newest[0][0]) if newest else "0-0"
                    self.last_id = last
                replies = cast(
                    list[list[Any]],
                    await self.redis.xread({self.events_key: last}, count=500, block=1000),
                )
            except asyncio.CancelledError:
                self.following = False
                raise
            except RedisError as exc:
                self.following = False
                log.warning("live updates paused: %s", exc)
                await asyncio.sleep(1.0)
                continue
            except Exception:  # never let the screens' only reader die: retry
                self.following = False
                log.exception("live updates paused by an unexpected error")
                await asyncio.sleep(1.0)
                continue
            self.following = True
            for _stream, entries in replies or []:
                for entry_id, fields in entries:
                    last = _text(entry_id)
                    self._dispatch({_text(k): _text(v) for k, v in fields.items()})
                self.last_id = last
                self._board_changed.set()

    def _dispatch(self, event: dict[str, str]) -> None:
        self.events_seen += 1
        seat = event.get("seat")
        for inbox in self._seats.get(seat, ()) if seat else ():
            try:
                inbox.put_nowait(event)
            except asyncio.QueueFull:
                pass

    async def _boards_ticker(self) -> None:
        """Every open wallboard is told to redraw, at most once a second however busy
        the queue, and every few seconds anyway."""
        while True:
            try:
                await asyncio.wait_for(self._board_changed.wait(), BOARD_IDLE_REDRAW_S)
            except TimeoutError:
                pass
            self._board_changed.clear()
            for wakes in list(self._boards):
                if wakes.empty():
                    wakes.put_nowait(self.last_id)
            await asyncio.sleep(BOARD_EVERY_S)

    async def _poll_unit(self, unit: int) -> None:
        """One SQL look per unit every INBOX_POLL_S, however many clerks have it open."""
        assert self.inbox_version is not None
        while True:
            started = time.monotonic()
            try:
                version = await asyncio.to_thread(self.inbox_version, unit)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: keep the pages, try again
                log.warning("inbox of unit %s: the database is unreachable", unit)
            else:
                for versions in list(self._units.get(unit, ())):
                    if not versions.empty():
                        versions.get_nowait()
                    versions.put_nowait(version)
            await asyncio.sleep(max(0.0, INBOX_POLL_S - (time.monotonic() - started)))


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
