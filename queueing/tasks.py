"""TaskQueue: online, SMS and Open311 requests as tasks in the call queue's Redis.

A task is a filed case waiting for an operator's first response. Each transition is one
Lua script (lua/task_*.lua, after prelude.lua and task_prelude.lua) over keys of the
same queue (one hash tag), logged in the same event stream. Tasks are offered to seats
with the task skill that are free for calls, one seat at a time, and never keep a call
from a seat: see lua/task_prelude.lua.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from redis import Redis
from redis.commands.core import Script
from redis.typing import EncodableT

from queueing.errors import QueueError
from queueing.keys import QueueKeys, check_id
from queueing.service import CallQueue, _text
from queueing.settings import TASK_SKILL, env_number

TASK_CHANNELS = ("web", "sms", "open311")
TASK_SCRIPT_NAMES = (
    "task_submit",
    "task_take",
    "task_release",
    "task_respond",
    "task_done",
    "task_tick",
    "task_unrespond",
    "task_draft",
)
DRAFT_MAX_BYTES = 4000  # 1,000 characters of UTF-8 at most (the reply's limit)


@dataclass(frozen=True)
class TaskSettings:
    skill: str = TASK_SKILL
    per_seat: int = 3  # tasks a seat may be offered or hold at once, besides its call
    offer_s: float = 30.0  # an offer not taken within this goes back to the line
    first_response_s: float = 180.0  # GB/T 33358: online requests answered within 3 minutes


def load_task_settings(environ: Mapping[str, str] | None = None) -> TaskSettings:
    env = os.environ if environ is None else environ
    return TaskSettings(
        per_seat=int(env_number(env, "HOTLINE_TASKS_PER_SEAT", 3, minimum=1)),
        offer_s=env_number(env, "HOTLINE_TASK_OFFER_S", 30.0, minimum=1),
    )


@cache
def _source(name: str) -> str:
    lua = resources.files("queueing") / "lua"
    return "\n".join(
        (lua / f"{part}.lua").read_text(encoding="utf-8")
        for part in ("prelude", "task_prelude", name)
    )


@dataclass(frozen=True)
class TaskOffer:
    task_id: str
    seat_id: str


class TaskQueue:
    """The task transitions over one call queue's Redis and keys."""

    def __init__(self, queue: CallQueue, settings: TaskSettings | None = None) -> None:
        self.queue = queue
        self.redis: Redis = queue.redis
        self.keys = queue.keys
        self.settings = settings or TaskSettings()
        self._scripts: dict[str, Script] = {
            name: self.redis.register_script(_source(name)) for name in TASK_SCRIPT_NAMES
        }
        self._keys = self.keys.task_script_keys()
        s = self.settings
        self._args: list[EncodableT] = [
            int(queue.settings.offer_timeout_s * 1000),
            int(queue.settings.wrapup_s * 1000),
            queue.settings.events_maxlen,
            int(queue.settings.offer_start_s * 1000),
            s.skill,
            s.per_seat,
            int(s.offer_s * 1000),
            int(s.first_response_s * 1000),
        ]

    def _run(self, name: str, *args: EncodableT) -> list[str]:
        reply = self._scripts[name](keys=self._keys, args=[*self._args, *args])
        values = [_text(v) for v in reply]
        if values[0] == "err":
            raise QueueError(values[1], values[2] if len(values) > 2 else "")
        return values

    def _offers(self, name: str, *args: EncodableT) -> tuple[str, tuple[TaskOffer, ...]]:
        values = self._run(name, *args)
        pairs = values[2:]
        return values[1], tuple(TaskOffer(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2))

    # -- transitions --------------------------------------------------------------------

    def submit(
        self,
        task_id: str,
        channel: str,
        entered_ms: int | None = None,
        responded_ms: int | None = None,
        responded_by: str = "",
    ) -> tuple[str, tuple[TaskOffer, ...]]:
        """Queue a request (``queued``); again is ``duplicate``, after completion ``done``.
        ``entered_ms`` and ``responded_ms`` (its first response, by ``responded_by``)
        keep the times of a request put back from SQL."""
        if channel not in TASK_CHANNELS:
            raise QueueError("bad-argument", f"channel must be one of {TASK_CHANNELS}")
        return self._offers(
            "task_submit",
            check_id("task", task_id),
            channel,
            "" if entered_ms is None else entered_ms,
            "" if responded_ms is None else responded_ms,
            responded_by,
        )

    def take(self, task_id: str, seat_id: str) -> tuple[str, tuple[TaskOffer, ...]]:
        """The seat takes the task offered to it (``taken``; again ``duplicate``), and
        may be offered another if it has room."""
        return self._offers("task_take", check_id("task", task_id), check_id("seat", seat_id))

    def release(
        self, task_id: str, seat_id: str, reason: str = "declined"
    ) -> tuple[str, tuple[TaskOffer, ...]]:
        return self._offers(
            "task_release", check_id("task", task_id), check_id("seat", seat_id), reason
        )

    def respond(self, task_id: str, seat_id: str) -> tuple[bool, int]:
        """The operator replied: (first response?, ms from entry to the first response)."""
        values = self._run("task_respond", check_id("task", task_id), check_id("seat", seat_id))
        return values[1] == "first", int(values[2])

    def unrespond(self, task_id: str, seat_id: str, response_ms: int) -> bool:
        """Undo the first response ``respond`` made (its ``response_ms``), when the reply
        was not kept; False if it no longer is that response."""
        values = self._run(
            "task_unrespond", check_id("task", task_id), check_id("seat", seat_id), response_ms
        )
        return values[1] == "undone"

    def draft(self, task_id: str, seat_id: str, text: str) -> None:
        """Keep the reply the seat's operator is writing on the task (to the next seat
        with it if handed on); it also says the operator is there (lua/task_draft.lua)."""
        self._run(
            "task_draft",
            check_id("task", task_id),
            check_id("seat", seat_id),
            text,
            DRAFT_MAX_BYTES,
        )

    def handed_on(self, seat_id: str) -> str:
        """The last task handed on from the seat because its reply was due, for the
        seat's console to say so until its operator takes another or logs out."""
        task = self.redis.hget(self.keys.seat(check_id("seat", seat_id)), "task_handed_on")
        return _text(task) if task else ""

    def done(self, task_id: str, seat_id: str) -> tuple[str, tuple[TaskOffer, ...]]:
        return self._offers("task_done", check_id("task", task_id), check_id("seat", seat_id))

    def tick(self, limit: int = 200) -> tuple[dict[str, int], tuple[TaskOffer, ...]]:
        """The reaper's task sweep (after the calls' tick): lapsed offers, seats gone
        busy or offline, overdue marks, then offers."""
        result, offers = self._offers("task_tick", limit)
        names = ("offers_expired", "returned", "overdue")
        return dict(zip(names, (int(float(n)) for n in result.split(",")), strict=True)), offers

    # -- reading --------------------------------------------------------------------------

    def task(self, task_id: str) -> dict[str, str]:
        raw = self.redis.hgetall(self.keys.task(task_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    def seat_tasks(self, seat_id: str) -> list[dict[str, str]]:
        """The tasks offered to or held by the seat, oldest first, with ``id``."""
        ids = sorted(_text(t) for t in self.redis.smembers(self.keys.seat_tasks(seat_id)))
        pipe = self.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.hgetall(self.keys.task(task_id))
        tasks = [
            {_text(k): _text(v) for k, v in raw.items()} | {"id": task_id}
            for task_id, raw in zip(ids, pipe.execute(), strict=True)
            if raw
        ]
        return sorted(tasks, key=lambda t: int(t.get("entered", 0)))

    def live_ids(self) -> list[str]:
        return [_text(t) for t in self.redis.zrange(self.keys.tasks_live, 0, -1)]

    def summary(self) -> dict[str, int]:
        return task_summary(self.redis, self.keys)

    def overdue(self, limit: int = 50) -> list[str]:
        """Tasks past their first-response time and still unanswered, oldest first."""
        return [_text(t) for t in self.redis.zrange(self.keys.tasks_overdue, 0, limit - 1)]


def task_summary(redis: Redis, keys: QueueKeys) -> dict[str, int]:
    """For the wallboard: waiting, in hand (offered or held), overdue (no reply after 3
    minutes), and the longest wait (s), in one round trip."""
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(keys.tasks_waiting)
    pipe.zcard(keys.tasks_live)
    pipe.zcard(keys.tasks_overdue)
    pipe.zrange(keys.tasks_waiting, 0, 0, withscores=True)
    pipe.time()
    waiting, live, overdue, oldest, (seconds, micros) = pipe.execute()
    now_ms = seconds * 1000 + micros // 1000
    return {
        "waiting": int(waiting),
        "in_hand": int(live) - int(waiting),
        "overdue": int(overdue),
        "longest_wait_s": int((now_ms - oldest[0][1]) / 1000) if oldest else 0,
    }
