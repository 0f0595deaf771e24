"""Live updates for the console and the wallboard, one reader per web process.

A single thread follows the queue's event stream (XREAD from where it is now: no
scan of history) and hands each event to the open streams that care: a console gets
the events of its seat, a wallboard a wake-up to redraw (at most once a second). So
300 open consoles cost one Redis connection and one blocking read per process, and a
screen pop leaves the moment the queue makes its offer."""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from typing import Any, cast

from redis import Redis
from redis.exceptions import RedisError

from queueing.keys import QueueKeys

log = logging.getLogger("hotline.web.live")

MAX_BACKLOG = 256  # a stream that stops reading loses old events, never blocks the hub


class LiveHub:
    def __init__(self, redis: Redis, keys: QueueKeys) -> None:
        self.redis, self.keys = redis, keys
        self._lock = threading.Lock()
        self._seats: dict[str, set[queue.Queue[dict[str, str]]]] = defaultdict(set)
        self._boards: set[threading.Event] = set()
        self._thread: threading.Thread | None = None
        self.generation = 0  # events seen: a drawing made at generation g shows all up to g
        self._stop = threading.Event()

    # -- subscriptions -------------------------------------------------------------

    def watch_seat(self, seat: str) -> queue.Queue[dict[str, str]]:
        self._ensure_running()
        inbox: queue.Queue[dict[str, str]] = queue.Queue(MAX_BACKLOG)
        with self._lock:
            self._seats[seat].add(inbox)
        return inbox

    def unwatch_seat(self, seat: str, inbox: queue.Queue[dict[str, str]]) -> None:
        with self._lock:
            self._seats[seat].discard(inbox)
            if not self._seats[seat]:
                del self._seats[seat]

    def watch_board(self) -> threading.Event:
        self._ensure_running()
        changed = threading.Event()
        changed.set()  # draw at once
        with self._lock:
            self._boards.add(changed)
        return changed

    def unwatch_board(self, changed: threading.Event) -> None:
        with self._lock:
            self._boards.discard(changed)

    # -- the reader ------------------------------------------------------------------

    def _ensure_running(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="live-hub", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        last = "$"
        while not self._stop.is_set():
            try:
                if last == "$":  # start from the newest entry, by id, not "$" per read
                    newest = self.redis.xrevrange(self.keys.events, count=1)
                    last = _text(newest[0][0]) if newest else "0-0"
                # RESP2, the client's protocol: [[stream, [(id, fields), ...]], ...]
                replies = cast(
                    list[list[Any]],
                    self.redis.xread({self.keys.events: last}, count=500, block=1000),
                )
            except RedisError as exc:
                log.warning("live updates paused: %s", exc)
                self._stop.wait(1.0)
                continue
            except Exception:  # never let the screens' only reader die: retry
                log.exception("live updates paused by an unexpected error")
                self._stop.wait(1.0)
                continue
            for _stream, entries in replies or []:
                for entry_id, fields in entries:
                    last = _text(entry_id)
                    self._dispatch({_text(k): _text(v) for k, v in fields.items()})

    def _dispatch(self, event: dict[str, str]) -> None:
        seat = event.get("seat")
        with self._lock:
            self.generation += 1
            inboxes = list(self._seats.get(seat, ())) if seat else []
            boards = list(self._boards)
        for inbox in inboxes:
            try:
                inbox.put_nowait(event)
            except queue.Full:
                pass
        for changed in boards:
            changed.set()


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
