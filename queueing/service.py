"""CallQueue: the operations of the call queue and its seats.

Every method that changes state is one Lua script call (one round trip, atomic). Any
matches a transition makes are returned as :class:`Offer` values; they are also
recorded in Redis (the call and seat hashes, the offers lease set), published on the
offer channel and logged in the event stream, so whoever must act on an offer can
find it even if the process that made it dies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis
from redis.typing import EncodableT

from queueing.errors import QueueError
from queueing.keys import QueueKeys, check_id
from queueing.scripts import register_all
from queueing.settings import PRIORITY_CLASSES, TASK_SKILL, QueueSettings

SEAT_STATES = ("offline", "available", "offered", "on_call", "wrap_up", "paused")
CALL_STATES = ("waiting", "offered", "on_call", "ended")


@dataclass(frozen=True)
class Offer:
    call_id: str
    seat_id: str


@dataclass(frozen=True)
class Transition:
    """What a transition did (``result``, e.g. ``queued`` or ``duplicate``) and the
    offers it created."""

    result: str
    offers: tuple[Offer, ...] = ()


@dataclass(frozen=True)
class Position:
    state: str
    position: int  # 1-based among waiting calls of the same skill; 0 when not waiting
    working_seats: int  # seats with the call's skill taking calls (never paused ones)
    available_seats: int
    avg_handle_s: float
    seat: str | None
    staffed_seats: int = 0  # logged in with the call's skill, paused or not

    @property
    def estimated_wait_s(self) -> float | None:
        """Calls ahead times handle time, shared among the seats taking calls.

        None when no seat with the skill is taking calls: there is no honest estimate."""
        if self.state != "waiting":
            return 0.0
        if self.working_seats == 0:
            return None
        if self.available_seats >= self.position:
            return 0.0
        return round(self.position * self.avg_handle_s / self.working_seats, 1)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CallQueue:
    def __init__(
        self,
        redis: Redis,
        settings: QueueSettings | None = None,
        keys: QueueKeys | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings or QueueSettings()
        self.keys = keys or QueueKeys(self.settings.name)
        self._scripts = register_all(redis)
        self._script_keys = self.keys.script_keys()
        self._common_args = [
            int(self.settings.offer_timeout_s * 1000),
            int(self.settings.wrapup_s * 1000),
            self.settings.events_maxlen,
            int(self.settings.offer_start_s * 1000),
        ]
        self.last_talked_out: list[str] = []  # calls the last tick completed (max talk)
        # Where callers go when nobody logged in speaks their language (see the scripts).
        redis.hset(self.keys.stats, "fallback_skill", self.default_skill)

    # -- plumbing -------------------------------------------------------------------

    def _run(self, name: str, *args: EncodableT) -> list[str]:
        reply = self._scripts[name](keys=self._script_keys, args=[*self._common_args, *args])
        values = [_text(v) for v in reply]
        if values[0] == "err":
            raise QueueError(values[1], values[2] if len(values) > 2 else "")
        return values

    def _transition(self, name: str, *args: EncodableT) -> Transition:
        values = self._run(name, *args)
        pairs = values[2:]
        offers = tuple(Offer(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2))
        return Transition(values[1], offers)

    def _skill(self, skill: str) -> str:
        if skill not in self.settings.skills:
            raise QueueError("unknown-skill", f"{skill!r} is not one of {self.settings.skills}")
        return skill

    @property
    def default_skill(self) -> str:
        return "mandarin" if "mandarin" in self.settings.skills else self.settings.skills[0]

    # -- calls ----------------------------------------------------------------------

    def enqueue(
        self,
        call_id: str,
        *,
        skill: str | None = None,
        priority: str = "normal",
        caller: str = "",
        sticky_seat: str | None = None,
        sticky_s: float | None = None,
    ) -> Transition:
        """A caller enters the queue. Enqueuing a live call again changes nothing
        (result ``duplicate``), so retried webhooks are safe."""
        check_id("call", call_id)
        skill = self._skill(skill or self.default_skill)
        if priority not in PRIORITY_CLASSES:
            raise QueueError("unknown-priority", f"{priority!r} is not one of {PRIORITY_CLASSES}")
        if sticky_seat:
            check_id("seat", sticky_seat)
        window = self.settings.sticky_s if sticky_s is None else sticky_s
        return self._transition(
            "enqueue",
            call_id,
            skill,
            priority,
            int(self.settings.priority_bonus_s.get(priority, 0.0) * 1_000_000),
            caller,
            sticky_seat or "",
            int(window * 1000),
            self.default_skill,
        )

    def answer(self, call_id: str, seat_id: str, *, talked: bool = False) -> Transition:
        """The offered seat picked up. ``talked``: the telephony reports that this seat
        did talk with the caller, so the record follows even if the queue had moved on."""
        return self._transition(
            "answer", check_id("call", call_id), check_id("seat", seat_id), "1" if talked else ""
        )

    def ringing(self, call_id: str, seat_id: str, after_s: float = 0.0) -> Transition:
        """The adapter rings the offered seat now (or after ``after_s`` of media it plays
        first): the ring lease starts then. ``stale`` when the call is no longer offered
        to that seat."""
        return self._transition(
            "ringing", check_id("call", call_id), check_id("seat", seat_id), int(after_s * 1000)
        )

    def no_answer(self, call_id: str, seat_id: str, reason: str = "no answer") -> Transition:
        """The offered seat did not pick up: pause it, put the call back at the head."""
        return self._transition(
            "no_answer", check_id("call", call_id), check_id("seat", seat_id), reason
        )

    def hangup(self, call_id: str) -> Transition:
        """The caller hung up: abandon while waiting or ringing, complete when talking."""
        return self._transition("hangup", check_id("call", call_id))

    def complete(self, call_id: str, by: str = "agent") -> Transition:
        """The conversation ended; the seat goes to wrap-up."""
        if by not in ("agent", "caller"):
            raise QueueError("bad-argument", "by must be 'agent' or 'caller'")
        return self._transition("complete", check_id("call", call_id), by)

    def transfer(self, call_id: str, seat_id: str, kind: str, target: str) -> Transition:
        """The seat's operator hands the connected call on: ``out`` of the centre (the
        call ends as transferred), to a ``skill`` (at the head of its line) or to a
        named ``seat`` (offered now). The seat goes to wrap-up as after any call."""
        if kind == "skill":
            target = self._skill(target)
        elif kind == "seat":
            target = check_id("seat", target)
        elif kind not in ("out", "unit") or not target:
            raise QueueError("bad-argument", "kind must be out, unit, skill or seat, with a target")
        return self._transition(
            "transfer",
            check_id("call", call_id),
            check_id("seat", seat_id),
            kind,
            target,
            self.default_skill,
        )

    def hold(self, call_id: str, seat_id: str, on: bool) -> str:
        """Put the seat's connected caller on hold (music) or take them back: the call
        stays the seat's. Returns 'held', 'resumed' or 'unchanged'."""
        return self._run(
            "hold", check_id("call", call_id), check_id("seat", seat_id), "1" if on else ""
        )[1]

    def consult(self, call_id: str, seat_id: str, step: str, unit: str = "") -> str:
        """The seat's operator consults a unit about the connected call: ``start`` (the
        caller holds), ``threeway`` or ``cancel`` (consult.lua). Returns 'consulting',
        'threeway' or 'cancelled'; completing it is ``transfer(..., "unit", unit)``."""
        return self._run(
            "consult", check_id("call", call_id), check_id("seat", seat_id), step, unit
        )[1]

    def set_skill(self, call_id: str, skill: str) -> Transition:
        """A waiting caller chose a language; they keep their entry time."""
        return self._transition(
            "set_skill", check_id("call", call_id), self._skill(skill), self.default_skill
        )

    def leave(self, call_id: str, reason: str = "callback") -> Transition:
        """A waiting caller leaves by choice (a callback was recorded): EXITWITHKEY."""
        return self._transition("leave", check_id("call", call_id), reason)

    def position(self, call_id: str) -> Position:
        values = self._run("position", check_id("call", call_id))
        return Position(
            state=values[1],
            position=int(values[2]),
            working_seats=int(values[3]),
            available_seats=int(values[4]),
            avg_handle_s=int(values[5]) / 1000 or self.settings.default_handle_s,
            seat=values[6] or None,
            staffed_seats=int(values[7]),
        )

    def turned_away(self, call_id: str, caller: str, reason: str) -> None:
        """A caller told the centre is closed (never queued): into the event stream."""
        self._run("turn_away", check_id("call", call_id), caller, reason)

    def is_closed(self) -> bool:
        """Closed: no seat logged in for ``closed_after_s`` (or never since Redis
        started). A shorter lapse is not closed: callers wait for a person."""
        if self.redis.zcard(self.keys.heartbeats) > 0:
            return False
        since = self.redis.hget(self.keys.stats, "unstaffed_since")
        if since is None:
            return True
        seconds, micros = self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        return now_ms - int(since) >= self.settings.closed_after_s * 1000

    def live_calls(self) -> list[str]:
        """Ids of every call not yet ended (waiting, offered, talking)."""
        return [_text(c) for c in self.redis.zrange(self.keys.live_calls, 0, -1)]

    def call(self, call_id: str) -> dict[str, str]:
        """The live record of a call (empty when unknown or expired)."""
        raw = self.redis.hgetall(self.keys.call(call_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    # -- seats ----------------------------------------------------------------------

    def staffed_seats(self) -> int:
        """Seats logged in now, whatever their state."""
        return int(self.redis.zcard(self.keys.heartbeats))

    def seat_login(self, seat_id: str, skills: Iterable[str] = (), owner: str = "") -> Transition:
        """Log a seat in for ``owner`` (a user name). A seat logged in by someone else is
        refused with ``seat-taken`` (its owner in the error's detail). Its owner logging
        in while it rings, talks or wraps up resumes it as it is (result ``resumed``); a
        busy seat nobody owns is refused with ``seat-busy-login``."""
        skills = tuple(dict.fromkeys(skills)) or (self.default_skill,)
        for skill in skills:
            if skill != TASK_SKILL:  # tasks' own skill, which no call asks for
                self._skill(skill)
        return self._transition(
            "seat_login", check_id("seat", seat_id), ",".join(skills), owner
        )

    def seat_logout(self, seat_id: str, *, force: bool = False, by: str = "") -> Transition:
        """Log a seat out. A seat on a call is refused (``seat-busy``) unless ``force``
        (a supervisor freeing a stuck seat): its call is then completed (result
        ``forced``; the call id is the seat's ``call`` before the logout). ``by`` is
        kept on the seat (``logout_by``) so its operator can be told who did it."""
        return self._transition(
            "seat_logout", check_id("seat", seat_id), "1" if force else "", by
        )

    def seat_state(self, seat_id: str, state: str, reason: str = "") -> Transition:
        if state not in ("available", "paused"):
            raise QueueError("bad-argument", "a seat can be set to 'available' or 'paused'")
        if state == "paused" and not reason:
            reason = "break"
        return self._transition("seat_state", check_id("seat", seat_id), state, reason)

    def pause_after_call(self, seat_id: str, reason: str, *, keep_chosen: bool = False) -> str:
        """Pause the seat once its call and wrap-up are over (now if it is idle); an
        empty reason cancels; ``keep_chosen`` leaves a pause already pending as it is.
        Returns 'after-call', 'paused' or 'cancelled'."""
        keep = "1" if keep_chosen else "0"
        return self._run("pause_next", check_id("seat", seat_id), reason, keep)[1]

    def extend_wrapup(self, seat_id: str, seconds: float) -> int:
        """Give the seat's wrap-up more time; returns its new end (ms, Redis clock)."""
        if not 0 < seconds <= 600:
            raise QueueError("bad-argument", "extend wrap-up by 1 to 600 seconds")
        return int(self._run("wrapup_extend", check_id("seat", seat_id), int(seconds * 1000))[1])

    def heartbeat(self, seat_id: str) -> None:
        self._run("heartbeat", check_id("seat", seat_id))

    def seat(self, seat_id: str) -> dict[str, str]:
        """The seat's hash (state, since, reason, call, skills, pause_next), with
        ``wrapup_until`` (ms) in wrap-up and ``now`` (ms, Redis clock) for timers."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.seat(check_id("seat", seat_id)))
        pipe.zscore(self.keys.wrapups, seat_id)
        pipe.time()
        raw, wrapup_until, (seconds, micros) = pipe.execute()
        seat = {_text(k): _text(v) for k, v in raw.items()} or {"state": "offline"}
        if wrapup_until is not None:
            seat["wrapup_until"] = str(int(wrapup_until))
        seat["now"] = str(seconds * 1000 + micros // 1000)
        return seat

    # -- sweeping and matching --------------------------------------------------------

    def tick(self, limit: int = 200) -> tuple[dict[str, int], tuple[Offer, ...]]:
        """One reaper sweep. Returns counts of what it reclaimed and the offers made.
        Calls it completed (past the maximum talk time) are in ``last_talked_out``."""
        values = self._run(
            "tick",
            int(self.settings.seat_heartbeat_ttl_s * 1000),
            int(self.settings.max_wait_s * 1000),
            limit,
            int(self.settings.max_talk_s * 1000),
        )
        split = values.index("|")
        pairs = values[2:split]
        self.last_talked_out = values[split + 1 :]
        offers = tuple(Offer(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2))
        t = Transition(values[1], offers)
        names = (
            "ring_no_answer",
            "wrapups_ended",
            "sticky_expired",
            "seats_lost",
            "calls_expired",
            "offers_expired",
            "talks_ended",
        )
        counts = dict(zip(names, (int(n) for n in t.result.split(",")), strict=True))
        return counts, t.offers

    def match(self, limit: int = 100) -> tuple[Offer, ...]:
        return self._transition("match", limit).offers

    # -- snapshot ---------------------------------------------------------------------

    def status(self) -> dict[str, list[dict[str, object]]]:
        """Waiting and live calls with position and wait; logged-in seats with state
        and time in state. For the CLI, the API and the wallboard."""
        seconds, micros = self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        call_ids = [_text(c) for c in self.redis.zrange(self.keys.live_calls, 0, -1)]
        seat_ids = [_text(s) for s in self.redis.zrange(self.keys.heartbeats, 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.hgetall(self.keys.call(call_id))
        for seat_id in seat_ids:
            pipe.hgetall(self.keys.seat(seat_id))
        replies = pipe.execute()
        calls = [
            {_text(k): _text(v) for k, v in raw.items()} | {"id": cid}
            for cid, raw in zip(call_ids, replies[: len(call_ids)], strict=True)
            if raw
        ]
        seats = [
            {_text(k): _text(v) for k, v in raw.items()} | {"id": sid}
            for sid, raw in zip(seat_ids, replies[len(call_ids) :], strict=True)
            if raw
        ]
        wait_s = {c["id"]: round((now_ms - int(c["entered"])) / 1000, 1) for c in calls}
        position = dict.fromkeys(wait_s, 0)
        by_skill: dict[str, list[dict[str, str]]] = {}
        for c in calls:
            if c["state"] == "waiting":
                by_skill.setdefault(c["skill"], []).append(c)
        for waiting in by_skill.values():
            waiting.sort(key=lambda c: float(c["score"]))
            for i, c in enumerate(waiting, start=1):
                position[c["id"]] = i
        calls.sort(key=lambda c: (c["state"] != "waiting", position[c["id"]], wait_s[c["id"]]))
        return {
            "calls": [
                {**c, "wait_s": wait_s[c["id"]], "position": position[c["id"]]} for c in calls
            ],
            "seats": [
                {**s, "in_state_s": round((now_ms - int(s.get("since", now_ms))) / 1000, 1)}
                for s in sorted(seats, key=lambda s: s["id"])
            ],
        }
