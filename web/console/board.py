"""The wallboard's drawing, shared by every web process.

A board of a thousand seats costs a snapshot of the queue and a render of a thousand
rows. Every web process drawing its own each second took that time from the webhooks
and pops served beside it (bench/push_bench.py), so:

- the snapshot is one server-side read of only the fields the board shows (one reply,
  not a hash per seat and per call to parse);
- one process draws a board for everyone: it takes a short Redis lease, draws, and
  stores the HTML in Redis; the other processes serve that drawing while it is under a
  second old and at least as recent as the queue event their wallboard was woken for.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markupsafe import Markup, escape
from redis import Redis
from redis.exceptions import RedisError

from calls.lease import RELEASE_LUA
from cases.phones import mask_for_screen
from queueing.keys import QueueKeys
from queueing.tasks import task_summary
from web.i18n import duration

log = logging.getLogger("hotline.web.board")

FRESH_S = 1.0  # a drawing serves wallboards for this long
LEASE_MS = 5000  # a drawer that died frees the turn after this
WAIT_S = 2.0  # how long a process waits for another's drawing before it draws itself
KEEP_MS = 60_000  # the last drawing stays this long in Redis
POLL_S = 0.02

# The live calls and the logged-in seats, only the fields the board shows, with Redis
# time, as one JSON reply. The key prefixes come as KEYS, as the queue's own scripts
# take them: ids are only appended.
SNAPSHOT_LUA = """
local now = redis.call('TIME')
local calls, seats = {}, {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local c = redis.call('HMGET', KEYS[3] .. id, 'state', 'skill', 'priority', 'entered', 'caller')
  if c[1] then calls[#calls + 1] = {id, c[1], c[2], c[3], c[4], c[5]} end
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local s = redis.call('HMGET', KEYS[4] .. id, 'state', 'since', 'reason', 'call', 'pause_next')
  if s[1] then seats[#seats + 1] = {id, s[1], s[2], s[3], s[4], s[5]} end
end
return cjson.encode({now[1] * 1000 + math.floor(now[2] / 1000), calls, seats})
"""


@dataclass(frozen=True)
class Snapshot:
    now_ms: int
    calls: list[dict[str, Any]]  # id, state, skill, priority, wait_s, caller
    seats: list[dict[str, Any]]  # id, state, reason, call, pause_next, in_state_s; by id


@lru_cache(maxsize=8192)
def masked(caller: str) -> str:
    """A caller as the board shows it; parsing a number costs more than drawing its row,
    and the same callers are on the board second after second."""
    return mask_for_screen(caller)


class SeatRows:
    """Each seat's row as last drawn, kept until the seat changes; only its time in
    state is written anew each second. A thousand rows through the template every
    second cost a web process ~25 ms of the interpreter; the board now draws the rows
    of the seats that changed."""

    MAX_ROWS = 20_000  # seats × what they show: forgotten all at once past this

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[Any, ...], tuple[str, str]] = {}

    def rows(
        self,
        seats: list[dict[str, Any]],
        lang: str,
        draw: Callable[[list[dict[str, Any]]], str],
    ) -> list[Markup]:
        """Each seat's row; ``draw(changed)`` renders the changed seats' rows, each
        followed by ``BETWEEN``, with ``MARK`` for the time in state."""
        keys = [(lang, *(seat.get(field) for field in ROW_FIELDS)) for seat in seats]
        with self._lock:
            kept = [self._rows.get(key) for key in keys]
        changed = [i for i, parts in enumerate(kept) if parts is None]
        if changed:
            drawn = draw([seats[i] for i in changed]).split(BETWEEN)[: len(changed)]
            if len(drawn) != len(changed):
                raise ValueError("each seat row must end with BETWEEN")
            with self._lock:
                if len(self._rows) + len(changed) > self.MAX_ROWS:
                    self._rows.clear()
                for i, html in zip(changed, drawn, strict=True):
                    head, mark, tail = html.partition(MARK)
                    if not mark:
                        raise ValueError("a seat row must show its time in state")
                    kept[i] = self._rows[keys[i]] = (head, tail)
        return [
            Markup("".join((parts[0], str(escape(_in_state(seat, lang))), parts[1])))
            for seat, parts in zip(seats, kept, strict=True)
            if parts is not None
        ]


MARK = "\x1f"  # stands for the time in state in a kept row
BETWEEN = "\x1e"  # ends each row drawn together
ROW_FIELDS = ("id", "state", "reason", "pause_next", "caller_masked", "calls", "aht", "stuck")

# How long a seat may stay in a state before the board shows it to the supervisor as
# stuck: ringing past the ring time and its start, a conversation or a pause far longer
# than a usual one, a wrap-up its timer should long have ended.
STUCK_AFTER_S = {"offered": 60.0, "on_call": 20 * 60.0, "wrap_up": 5 * 60.0, "paused": 30 * 60.0}


def is_stuck(seat: dict[str, Any]) -> bool:
    limit = STUCK_AFTER_S.get(seat.get("state") or "")
    return limit is not None and float(seat.get("in_state_s") or 0) >= limit


def _in_state(seat: dict[str, Any], lang: str) -> str:
    return _duration(round(float(seat.get("in_state_s") or 0)), lang)


@lru_cache(maxsize=8192)
def _duration(seconds: int, lang: str) -> str:
    return duration(seconds, lang)


@dataclass(frozen=True)
class Drawing:
    at: float  # wall-clock seconds: processes compare it
    after: str  # the newest queue event before the snapshot: the board shows it
    html: str
    chart: str


def event_order(value: str) -> tuple[int, int]:
    """A stream entry id (``1733050000000-3``) in order; anything else sorts first."""
    ms, _, seq = value.partition("-")
    return (int(ms), int(seq or 0)) if ms.isdigit() and (seq or "0").isdigit() else (0, 0)


def serves(drawing: Drawing, seen: str, now: float) -> bool:
    """A drawing serves a wallboard woken for event ``seen`` when it was made after that
    event and under a second ago."""
    return event_order(drawing.after) >= event_order(seen) and now - drawing.at < FRESH_S


class Wallboard:
    """One per web process (in ``app.extensions``): the queue snapshot, the process's
    last drawing per language, and the drawings shared in Redis with whose turn it is
    to draw."""

    def __init__(self, redis: Redis, keys: QueueKeys) -> None:
        self.redis, self.keys = redis, keys
        self.prefix = keys.wallboard_prefix
        self._snapshot = redis.register_script(SNAPSHOT_LUA)
        self._release = redis.register_script(RELEASE_LUA)
        self._lock = threading.Lock()  # one thread of this process asks at a time
        self._last: dict[str, Drawing] = {}

    def snapshot(self) -> Snapshot:
        keys = self.keys
        raw = self._snapshot(
            keys=[keys.live_calls, keys.heartbeats, keys.call_prefix, keys.seat_prefix]
        )
        now_ms, calls, seats = json.loads(raw)
        return Snapshot(
            now_ms=now_ms,
            calls=[
                {
                    "id": c[0],
                    "state": _field(c[1]),
                    "skill": _field(c[2]),
                    "priority": _field(c[3]) or "normal",
                    "wait_s": round((now_ms - _ms(c[4], now_ms)) / 1000, 1),
                    "caller": _field(c[5]),
                }
                for c in calls or ()  # cjson writes an empty list as {}
            ],
            seats=sorted(
                (
                    {
                        "id": s[0],
                        "state": _field(s[1]),
                        "in_state_s": round((now_ms - _ms(s[2], now_ms)) / 1000, 1),
                        "reason": _field(s[3]),
                        "call": _field(s[4]),
                        "pause_next": _field(s[5]),
                    }
                    for s in seats or ()
                ),
                key=lambda s: s["id"],
            ),
        )

    def tasks(self) -> dict[str, int]:
        """The online, SMS and Open311 requests: waiting, in hand, overdue, longest wait."""
        return task_summary(self.redis, self.keys)

    def drawing(self, lang: str, seen: str, draw: Callable[[], Drawing]) -> Drawing:
        """A board at least as recent as queue event ``seen`` and under a second old:
        this process's last one, else the one in Redis, else one drawn here (when it is
        this process's turn) or by the process whose turn it is."""
        with self._lock:
            last = self._last.get(lang)
            if last is None or not serves(last, seen, time.time()):
                last = self._last[lang] = self._shared(lang, seen, draw)
            return last

    def _shared(self, lang: str, seen: str, draw: Callable[[], Drawing]) -> Drawing:
        key = self.prefix + lang
        turn = key + ":drawing"
        deadline = time.monotonic() + WAIT_S
        while True:
            stored = self._stored(key)
            if stored is not None and serves(stored, seen, time.time()):
                return stored
            token = uuid.uuid4().hex
            if self.redis.set(turn, token, nx=True, px=LEASE_MS):
                try:
                    drawing = draw()
                    self._store(key, drawing)
                    return drawing
                finally:
                    self._end_turn(turn, token)
            if time.monotonic() > deadline:  # the drawer is stuck or gone: draw here
                log.warning("no wallboard drawing came from the web process drawing it")
                return draw()
            time.sleep(POLL_S)

    def _stored(self, key: str) -> Drawing | None:
        at, after = self.redis.hmget(key, ["at", "after"])
        if at is None or after is None or time.time() - float(at) >= FRESH_S:
            return None  # none, or stale: not worth fetching its HTML
        at, after, html, chart = self.redis.hmget(key, ["at", "after", "html", "chart"])
        if at is None or after is None or html is None or chart is None:
            return None
        return Drawing(float(at), _text(after), _text(html), _text(chart))

    def _store(self, key: str, drawing: Drawing) -> None:
        pipe = self.redis.pipeline(transaction=True)
        fields = ("at", repr(drawing.at), "after", drawing.after)
        pipe.hset(key, items=[*fields, "html", drawing.html, "chart", drawing.chart])
        pipe.pexpire(key, KEEP_MS)
        try:
            pipe.execute()
        except RedisError:  # drawn all the same: served here, shared next time
            log.warning("could not share the wallboard drawing", exc_info=True)

    def _end_turn(self, turn: str, token: str) -> None:
        try:
            self._release(keys=[turn], args=[token])
        except RedisError:  # the lease runs out by itself
            pass


def _field(value: Any) -> str:
    return value if isinstance(value, str) else ""  # a missing field comes as false


def _ms(value: Any, default: int) -> int:
    return int(value) if isinstance(value, str) and value.isdigit() else default


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
