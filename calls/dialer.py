"""The outbound dialer: one work list for return visits and call-backs, paced, within
the rules (calls.dialing), for either telephony.

The work list is SQL (``OutboundItem``); its due-time index is a Redis sorted set.
Each round takes the due items, checks them against the rules (calling hours, opt-out,
undiallable numbers, per-number limits, one live call per number), and hands at most
the free capacity, at most ``calls_per_s`` a second, to the ``Originator`` (Twilio's
``calls.create`` or Asterisk's AMI ``Originate``). The telephony's result comes back
through ``finished``: a person reached ends the item; no answer, busy or a machine
schedules the next attempt, until the last one.

Outbound calls never enter the inbound queue while they are being dialled; a citizen
who answers a call-back (or presses 0 on a return visit) is queued like a caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from redis import Redis
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from calls.counts import count_dial_attempt
from calls.dialing import (
    DialerSettings,
    dialable,
    may_dial_at,
    next_attempt,
    next_calling_time,
    number_allowed,
    pace_window,
)
from cases.models import Case, DialCursor, OptOut, OutboundItem
from queueing.keys import QueueKeys

if TYPE_CHECKING:
    from queueing import CallQueue

log = logging.getLogger("hotline.dialer")

LIVE_GUARD_S = 3600  # a number's live-call marker outlives any real call
PERSON_REACHED = ("satisfied", "unsatisfied", "no_response", "transfer", "connected")
STILL_ON_THE_LINE = ("transfer", "connected")  # the citizen now waits for an operator

# Reserve one outbound call, or say why not: checked and taken in one step, so that no
# two dialers (or rounds) can together pass a limit.
# KEYS: 1 dial_live (hash call -> item), 2 dial_pace (zset call -> start ms),
#       3 dial_number(phone) (the number's live call), 4 dial_log(phone) (zset of its
#       calls, dialer-clock ms), 5 dial_due (the work list's index)
# ARGV: 1 call id, 2 item id, 3 max concurrent, 4 pace clock now (ms), 5 pace window (ms),
#       6 calls allowed in the window, 7 dialer clock now (ms), 8 "(" 24 h ago (ms),
#       9 calls allowed to a number in 24 h, 10 "(" burst window ago (ms),
#       11 calls allowed to a number in the burst window, 12 live marker TTL (s)
# Returns: ok | full | pace | number-limit | number-live
RESERVE_LUA = """
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 'full' end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[4]) - tonumber(ARGV[5]))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return 'pace' end
if redis.call('ZCOUNT', KEYS[4], ARGV[8], '+inf') >= tonumber(ARGV[9]) then
  return 'number-limit'
end
if redis.call('ZCOUNT', KEYS[4], ARGV[10], '+inf') >= tonumber(ARGV[11]) then
  return 'number-limit'
end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'EX', ARGV[12]) then return 'number-live' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[1])
redis.call('EXPIRE', KEYS[4], 90000)
redis.call('ZREM', KEYS[5], ARGV[2])
return 'ok'
"""

# Planning reads each source from its cursor minus this overlap (rows committed a little
# after their time stamp), and once an hour the whole two days (the backstop).
PLAN_HORIZON = timedelta(days=2)
PLAN_OVERLAP = timedelta(minutes=10)
FULL_PASS_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class _Stop:
    """No more calls this round (capacity, pacing, calling hours): the rest wait
    until ``at``."""

    at: datetime


class Originator(Protocol):
    def originate(self, call_id: str, phone: str, kind: str) -> None: ...


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _aware(moment: datetime) -> datetime:
    """Stored times are UTC (SQLite keeps no offset)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _beijing():  # type: ignore[no-untyped-def]
    from cases.service import HOTLINE_TZ

    return HOTLINE_TZ


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _text(raw: object) -> str:
    """A Redis reply (bytes) as text."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def new_item(
    source: str, kind: str, phone: str, due: datetime, now: datetime, link: dict[str, Any]
) -> OutboundItem:
    """A work-list item, due (and first tried) at ``due``; call-backs go first."""
    return OutboundItem(
        source=source,
        kind=kind,
        phone=phone,
        due_at=_utc(due),
        next_at=_utc(due),
        created_at=_utc(now),
        priority=1 if kind == "callback" else 0,
        **link,
    )


class Dialer:
    def __init__(
        self,
        redis: Redis,
        keys: QueueKeys,
        sessions: sessionmaker,  # type: ignore[type-arg]
        originator: Originator | None,
        settings: DialerSettings | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        pace_clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis, self.keys, self.sessions = redis, keys, sessions
        self.originator = originator
        self.settings = settings or DialerSettings()
        self.now = now  # the dialer's clock: calling hours, retries, per-number limits
        self.pace_clock = pace_clock  # seconds, shared by the dialers: calls per second
        self._reserve = redis.register_script(RESERVE_LUA)

    # -- planning ------------------------------------------------------------------------

    def plan(
        self, session: Session, source: str, kind: str, phone: str, due: datetime, **link: object
    ) -> OutboundItem | None:
        """Add an item once per source (planning again changes nothing)."""
        existing = session.scalar(select(OutboundItem).where(OutboundItem.source == source))
        if existing is not None:
            return existing
        item = new_item(source, kind, phone, due, self.now(), link)
        session.add(item)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            return session.scalar(select(OutboundItem).where(OutboundItem.source == source))
        return item

    def index(self, item: OutboundItem) -> None:
        """Put the item's next attempt in the due-time index (after its row is committed)."""
        if item.status == "pending":
            self.redis.zadd(self.keys.dial_due, {str(item.id): _ms(_aware(item.next_at))})
        else:
            self.redis.zrem(self.keys.dial_due, str(item.id))

    def reindex(self, session: Session) -> int:
        """Rebuild the index from SQL (a Redis that lost its data), at start: a claim
        left by a dialer that stopped before reserving its call was never dialled."""
        for item in session.scalars(select(OutboundItem).where(OutboundItem.status == "dialing")):
            if item.live_call and not self.redis.hexists(self.keys.dial_live, item.live_call):
                item.status, item.live_call = "pending", None
                item.attempts = max(0, item.attempts - 1)
        session.commit()
        n = 0
        for item in session.scalars(select(OutboundItem).where(OutboundItem.status == "pending")):
            self.index(item)
            n += 1
        return n

    # -- dialling ------------------------------------------------------------------------

    def _pace_room(self) -> int:
        """How many calls the pacing window lets start now (a hint; the reservation is
        what decides)."""
        slots, window_s = pace_window(self.settings)
        now_ms = self.pace_clock() * 1000
        pipe = self.redis.pipeline(transaction=True)
        pipe.zremrangebyscore(self.keys.dial_pace, "-inf", now_ms - window_s * 1000)
        pipe.zcard(self.keys.dial_pace)
        return slots - int(pipe.execute()[1])

    def run_once(self, batch: int = 200) -> int:
        """One round: start the calls that may start now. Returns how many started.

        Planning only proposes: each call is claimed in SQL (so its result, however
        fast, finds it), then reserved in Redis at once (concurrency, pacing, the
        number's limits and its one live call), then checked against calling hours on
        the dialer's clock, and only then originated. A claim that is refused goes back
        on the work list."""
        if not may_dial_at(self.now(), self.settings):
            self._wait_for_opening(batch)
            return 0
        free = self.settings.max_concurrent - self.redis.hlen(self.keys.dial_live)
        room = min(free, self._pace_room())
        if room <= 0:
            return 0
        now = self.now()
        # Read only about what can start: a round with two free slots should not load
        # two hundred rows (a skipped item is rescheduled, so the next round reads on).
        want = min(batch, 2 * room + 10)
        due = [
            int(_text(m))
            for m in self.redis.zrangebyscore(self.keys.dial_due, "-inf", _ms(now), 0, want)
        ]
        if not due:
            return 0
        claimed: list[tuple[int, str, str, str]] = []  # item id, call id, phone, kind
        with self.sessions() as session:
            items = {
                i.id: i
                for i in session.scalars(select(OutboundItem).where(OutboundItem.id.in_(due)))
            }
            ordered = sorted(items.values(), key=lambda i: (-i.priority, _aware(i.next_at), i.id))
            opted_out = set(
                session.scalars(
                    select(OptOut.phone).where(OptOut.phone.in_([i.phone for i in ordered]))
                )
            )
            settled: list[int] = []  # items no longer pending: out of the index
            later: dict[int, datetime] = {}  # the number is busy or at its limits
            pending = [i for i in ordered if i.status == "pending"]
            busy, recent = self._numbers_now([i.phone for i in pending], now)
            for item in ordered:
                if item.status != "pending":
                    settled.append(item.id)
                    continue
                if len(claimed) >= room:
                    continue
                if item.phone in busy:  # on a call now, or called in this round
                    later[item.id] = next_calling_time(now + timedelta(minutes=1), self.settings)
                    continue
                wait_until = number_allowed(recent.get(item.phone, []), now, self.settings)
                if wait_until is not None:
                    later[item.id] = wait_until
                    continue
                refused = dialable(
                    item.phone, item.phone in opted_out and item.kind == "return_visit"
                )
                if refused:
                    item.status, item.last_result = refused, refused
                    self._settle_case(
                        session, item, "unreachable" if refused == "unreachable" else None
                    )
                    settled.append(item.id)
                    continue
                item.attempts += 1
                item.status = "dialing"
                item.live_call = f"out-{item.id}-{item.attempts}"
                item.last_attempt_at = _utc(now)
                claimed.append((item.id, item.live_call, item.phone, item.kind))
                busy.add(item.phone)
            for item_id, at in later.items():
                items[item_id].next_at = _utc(at)
            session.commit()
            if settled:
                self.redis.zrem(self.keys.dial_due, *(str(i) for i in settled))
            if later:
                self.redis.zadd(self.keys.dial_due, {str(i): _ms(at) for i, at in later.items()})
            started, back = 0, list[tuple[int, str, datetime]]()
            for n, (item_id, call_id, phone, kind) in enumerate(claimed):
                retry_at = self._dial(item_id, call_id, phone, kind)
                if retry_at is None:
                    started += 1
                    continue
                if isinstance(retry_at, _Stop):  # full, paced or closed: the rest waits too
                    back.extend((i, c, retry_at.at) for i, c, _, _ in claimed[n:])
                    break
                back.append((item_id, call_id, retry_at))
            for item_id, call_id, at in back:
                session.execute(
                    update(OutboundItem)
                    .where(OutboundItem.id == item_id, OutboundItem.live_call == call_id)
                    .values(
                        status="pending",
                        live_call=None,
                        attempts=OutboundItem.attempts - 1,
                        next_at=_utc(at),
                    )
                )
            session.commit()
        for item_id, _, at in back:
            self.redis.zadd(self.keys.dial_due, {str(item_id): _ms(at)})
        missing = set(due) - set(items)
        if missing:
            self.redis.zrem(self.keys.dial_due, *(str(m) for m in missing))
        return started

    def _wait_for_opening(self, batch: int) -> None:
        """Closed: what is due waits for the next opening, in the record and the index."""
        now = self.now()
        opening = next_calling_time(now + self.settings.dial_margin, self.settings)
        due = [
            int(_text(m))
            for m in self.redis.zrangebyscore(self.keys.dial_due, "-inf", _ms(now), 0, batch)
        ]
        if not due:
            return
        with self.sessions() as session:
            session.execute(
                update(OutboundItem)
                .where(OutboundItem.id.in_(due), OutboundItem.status == "pending")
                .values(next_at=_utc(opening))
            )
            session.commit()
        self.redis.zadd(self.keys.dial_due, {str(i): _ms(opening) for i in due})

    def _numbers_now(
        self, phones: list[str], now: datetime
    ) -> tuple[set[str], dict[str, list[datetime]]]:
        """Which numbers are on a call, and each one's calls in the last 24 hours: to
        skip, before claiming, what the reservation would refuse."""
        unique = sorted(set(phones))
        pipe = self.redis.pipeline(transaction=False)
        for phone in unique:
            pipe.exists(self.keys.dial_number(phone))
            pipe.zrangebyscore(
                self.keys.dial_log(phone), _ms(now - timedelta(hours=24)), "+inf", withscores=True
            )
        replies = pipe.execute()
        busy = {phone for phone, live in zip(unique, replies[0::2], strict=True) if live}
        recent = {
            phone: [datetime.fromtimestamp(score / 1000, UTC) for _, score in log]
            for phone, log in zip(unique, replies[1::2], strict=True)
            if log
        }
        return busy, recent

    def _dial(self, item_id: int, call_id: str, phone: str, kind: str) -> datetime | _Stop | None:
        """Reserve, check the hour, originate: None when the call was placed, else when
        to try this item again."""
        slots, window_s = pace_window(self.settings)
        at = self.now()
        verdict = self._reserve(
            keys=[
                self.keys.dial_live,
                self.keys.dial_pace,
                self.keys.dial_number(phone),
                self.keys.dial_log(phone),
                self.keys.dial_due,
            ],
            args=[
                call_id,
                item_id,
                self.settings.max_concurrent,
                repr(self.pace_clock() * 1000),
                repr(window_s * 1000),
                slots,
                _ms(at),
                "(" + str(_ms(at - timedelta(hours=24))),
                self.settings.per_number_day,
                "(" + str(_ms(at - self.settings.burst_window)),
                self.settings.per_number_burst,
                LIVE_GUARD_S,
            ],
        )
        verdict = _text(verdict)
        if verdict in ("full", "pace"):
            return _Stop(at)
        if verdict == "number-live":
            return at + timedelta(minutes=1)  # that number is on a call now
        if verdict == "number-limit":
            log_entries = cast(
                list[tuple[bytes, float]],
                self.redis.zrangebyscore(
                    self.keys.dial_log(phone),
                    _ms(at - timedelta(hours=24)),
                    "+inf",
                    withscores=True,
                ),
            )
            recent = [datetime.fromtimestamp(score / 1000, UTC) for _, score in log_entries]
            return number_allowed(recent, at, self.settings) or at + timedelta(minutes=1)
        # Reserved. The legal moment is now: calling hours on the dialer's clock.
        moment = self.now()
        if not may_dial_at(moment, self.settings):  # closed meanwhile: nobody else either
            self._unreserve(call_id, phone)
            return _Stop(next_calling_time(moment + self.settings.dial_margin, self.settings))
        try:
            if self.originator is None:
                raise RuntimeError("this process cannot place calls")
            self.originator.originate(call_id, phone, kind)
        except Exception:  # the telephony refused: an attempt that failed
            log.exception("could not place outbound call %s", call_id)
            self.finished(call_id, "failed")
        # The call counts in the window from when the request was sent, not reserved.
        self.redis.zadd(self.keys.dial_pace, {call_id: self.pace_clock() * 1000}, xx=True)
        return None

    def _unreserve(self, call_id: str, phone: str) -> None:
        """Undo a reservation whose call was never placed."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.dial_live, call_id)
        pipe.zrem(self.keys.dial_pace, call_id)
        pipe.zrem(self.keys.dial_log(phone), call_id)
        pipe.execute()
        number_key = self.keys.dial_number(phone)
        if self.redis.get(number_key) == call_id.encode():
            self.redis.delete(number_key)

    # -- results -------------------------------------------------------------------------

    def finished(self, call_id: str, outcome: str) -> OutboundItem | None:
        """The telephony or the flow's result for a live outbound call (idempotent)."""
        raw = self.redis.hget(self.keys.dial_live, call_id)
        if raw is None:
            return None
        with self.sessions() as session:
            item = session.get(OutboundItem, int(raw))
            if item is None or item.live_call != call_id:
                self.redis.hdel(self.keys.dial_live, call_id)
                return item
            now = self.now()
            reopened = item.kind == "return_visit" and outcome == "unsatisfied"
            self._record_call(session, item, call_id, outcome, now)
            item.last_result, item.live_call = outcome, None
            if outcome in PERSON_REACHED:
                item.status = "done"
                if item.kind == "callback" and item.call_id:
                    self._callback_done(session, item.call_id, now)
                if outcome in ("satisfied", "unsatisfied", "no_response"):
                    self._settle_case(session, item, outcome)
            else:
                retry = next_attempt(item.attempts, outcome, now, self.settings)
                if retry is None:
                    item.status = "gave_up"
                    if not self.settings.sms_fallback:  # else calls.sms asks, and settles
                        self._settle_case(session, item, "unreachable")
                else:
                    item.status, item.next_at = "pending", _utc(retry)
            session.commit()
            count_dial_attempt(self.redis, self.keys, outcome)
            self.index(item)
            if reopened and item.case is not None:
                self._arm_clocks(item.case.merged_into or item.case)
        if outcome not in STILL_ON_THE_LINE:
            self.released(call_id, item.phone)
        return item

    @staticmethod
    def _origin_time(session: Session, item: OutboundItem) -> datetime | None:
        """When the citizen called: the missed call, or the call that asked for this."""
        from cases.models import CallbackRequest, CallRecord

        if item.call_id is None:
            return None
        record = session.get(CallRecord, item.call_id)
        if record is not None and record.queued_at is not None:
            return _aware(record.queued_at)
        request = session.scalar(
            select(CallbackRequest).where(CallbackRequest.call_id == item.call_id)
        )
        return _aware(request.requested_at) if request is not None else None

    @staticmethod
    def _record_call(
        session: Session, item: OutboundItem, call_id: str, outcome: str, now: datetime
    ) -> None:
        """The attempt's call detail row (direction outbound): kept apart from the
        inbound figures, counted in the callback and return-visit ones."""
        from cases.models import CallRecord

        if session.get(CallRecord, call_id) is not None:
            return
        session.add(
            CallRecord(
                call_id=call_id,
                direction="outbound",
                caller=item.phone,
                skill=item.kind,
                queued_at=_aware(item.last_attempt_at or now),
                ended_at=_utc(now),
                outcome=outcome,
                case_number=item.case.number if item.case is not None else None,
            )
        )

    def released(self, call_id: str, phone: str | None = None) -> None:
        """The outbound call is over: its capacity and its number are free again."""
        if phone is None:
            raw = self.redis.hget(self.keys.dial_live, call_id)
            if raw is None:
                return
            with self.sessions() as session:
                item = session.get(OutboundItem, int(raw))
                phone = item.phone if item is not None else ""
        self.redis.hdel(self.keys.dial_live, call_id)
        number_key = self.keys.dial_number(phone)
        if self.redis.get(number_key) == call_id.encode():
            self.redis.delete(number_key)

    def describe(self, call_id: str) -> dict[str, object] | None:
        """What a live attempt is about, for the telephony's first webhook."""
        raw = self.redis.hget(self.keys.dial_live, call_id)
        if raw is None:
            return None
        with self.sessions() as session:
            item = session.get(OutboundItem, int(raw))
            if item is None:
                return None
            case = item.case
            raised = _aware(case.created_at).astimezone(_beijing()) if case is not None else None
            origin = self._origin_time(session, item)
            return {
                "origin_at": origin.timestamp() if origin else None,
                "kind": item.kind,
                "phone": item.phone,
                "case_number": case.number if case is not None else None,
                "month": raised.month if raised else None,
                "day": raised.day if raised else None,
            }

    def expire_stale(self, max_age: timedelta = timedelta(minutes=15)) -> int:
        """Live calls whose result never came (a lost status callback) count as failed
        attempts, so their numbers and capacity are freed."""
        cutoff = self.now() - max_age
        stale = []
        with self.sessions() as session:
            for call_id, item_id in self.redis.hgetall(self.keys.dial_live).items():
                item = session.get(OutboundItem, int(item_id))
                if (
                    item is None
                    or item.last_attempt_at is None
                    or _aware(item.last_attempt_at) < cutoff
                ):
                    stale.append(_text(call_id))
        for call_id in stale:
            log.warning("outbound call %s never reported back; counted as failed", call_id)
            self.finished(call_id, "failed")
        return len(stale)

    @staticmethod
    def _callback_done(session: Session, call_id: str, now: datetime) -> None:
        """The citizen who asked (or whose call was missed) has been reached: their
        request is done and the original call's row says when it was called back."""
        from cases.models import CallbackRequest, CallRecord

        request = session.scalar(select(CallbackRequest).where(CallbackRequest.call_id == call_id))
        if request is not None:
            request.status = "done"
        original = session.get(CallRecord, call_id)
        if original is not None and original.called_back_at is None:
            original.called_back_at = _utc(now)

    def _arm_clocks(self, case: Case) -> None:
        """After the commit that re-dispatched the case, as the other writers do (the
        dialer has the queue's ``redis`` and ``keys``)."""
        from calls.casework import arm_clocks

        # arm_clocks reads only the queue's redis and keys, which the dialer shares.
        arm_clocks(cast("CallQueue", self), case)

    def _settle_case(self, session: Session, item: OutboundItem, outcome: str | None) -> None:
        if item.kind != "return_visit" or item.case_id is None or outcome is None:
            return
        from cases.dispatch import apply_return_visit

        case = session.get(Case, item.case_id)
        if case is not None and case.merged_into_id is not None:
            # A merged caller's answer is kept on their case; an unsatisfied one sends
            # the open case back, as its own caller's would.
            case.satisfaction = case.satisfaction or outcome
            target = session.get(Case, case.merged_into_id)
            if target is not None and outcome == "unsatisfied":
                apply_return_visit(session, target, outcome)
        elif case is not None:
            apply_return_visit(session, case, outcome)


def plan_work(session: Session, dialer: Dialer, now: datetime, min_wait_s: float = 30.0) -> int:
    """Put on the work list what is owed a call (idempotent; run every few seconds):
    return visits of cases resolved in the last two days (due the next day), callback
    requests still pending, and citizens who hung up after waiting ``min_wait_s`` or
    more, or were turned away while the centre was closed (国办函〔2025〕66号).

    Each source is read from its cursor (``DialCursor``: the time of the last pass,
    minus ``PLAN_OVERLAP`` for rows committed late), over indexed time columns; once
    an hour the whole two days are read again, the backstop for a row later still.
    Cursors move in the same commit as the items they planned."""
    from cases.models import CallbackRequest, CallRecord

    marks = {c.source: c for c in session.scalars(select(DialCursor))}
    horizon = now - PLAN_HORIZON
    last_full = marks.get("full")
    full = last_full is None or _aware(last_full.mark) <= now - FULL_PASS_EVERY

    def since(source: str) -> datetime:
        cursor = marks.get(source)
        if full or cursor is None:
            return _utc(horizon)
        return _utc(max(horizon, _aware(cursor.mark) - PLAN_OVERLAP))

    wanted: dict[str, tuple[str, str, datetime, dict[str, object]]] = {}
    resolved_cases: dict[int, tuple[str, datetime]] = {}
    for case in session.scalars(
        select(Case).where(
            Case.resolved_at >= since("visits"),
            Case.status == "resolved",
            Case.satisfaction.is_(None),
        )
    ):
        resolved = _aware(case.resolved_at or now)
        due = next_calling_time(resolved + timedelta(days=1), dialer.settings)
        wanted[f"visit:{case.id}"] = ("return_visit", case.caller_phone, due, {"case_id": case.id})
        resolved_cases[case.id] = (case.caller_phone, due)
    # 并单: the callers whose requests were merged into a resolved case are asked too,
    # about their own case (its number is the one they know), once per number: a number
    # that answered for one of its merged cases is not asked again for another.
    ids, asked = sorted(resolved_cases), {phone for phone, _ in resolved_cases.values()}
    for n in range(0, len(ids), 500):
        merged_cases = session.scalars(
            select(Case).where(Case.merged_into_id.in_(ids[n : n + 500])).order_by(Case.id)
        ).all()
        asked.update(m.caller_phone for m in merged_cases if m.satisfaction is not None)
        for merged in merged_cases:
            if merged.satisfaction is not None:
                continue
            _, due = resolved_cases[merged.merged_into_id or 0]
            if merged.caller_phone and merged.caller_phone not in asked:
                asked.add(merged.caller_phone)
                wanted[f"visit:{merged.id}"] = (
                    "return_visit",
                    merged.caller_phone,
                    due,
                    {"case_id": merged.id},
                )
    requests = {}
    for request in session.scalars(
        select(CallbackRequest).where(
            CallbackRequest.requested_at >= since("requests"), CallbackRequest.status == "pending"
        )
    ):
        source = f"callback:{request.call_id}"
        requests[source] = request
        wanted[source] = ("callback", request.caller_phone, now, {"call_id": request.call_id})
    start = since("missed")
    missed = select(CallRecord).where(
        (CallRecord.ended_at >= start)
        | (CallRecord.ended_at.is_(None) & (CallRecord.queued_at >= start)),
        CallRecord.direction == "inbound",
        ((CallRecord.outcome == "abandoned") & (CallRecord.wait_ms >= int(min_wait_s * 1000)))
        | (CallRecord.outcome == "turned_away"),
    )
    for call in session.scalars(missed):
        source = f"callback:{call.call_id}"
        if call.caller and source not in wanted:
            wanted[source] = ("callback", call.caller, now, {"call_id": call.call_id})

    known: set[str] = set()
    sources = sorted(wanted)
    for n in range(0, len(sources), 500):
        chunk = sources[n : n + 500]
        known.update(
            session.scalars(select(OutboundItem.source).where(OutboundItem.source.in_(chunk)))
        )
    fresh: list[OutboundItem] = []
    for source in sources:
        if source in known:
            continue
        kind, phone, due, link = wanted[source]
        item = new_item(source, kind, phone, due, dialer.now(), link)
        session.add(item)
        fresh.append(item)
        if source in requests:
            requests[source].status = "planned"
    for source in ("visits", "requests", "missed") + (("full",) if full else ()):
        if source in marks:
            marks[source].mark = _utc(now)
        else:
            session.add(DialCursor(source=source, mark=_utc(now)))
    session.commit()
    for item in fresh:
        dialer.index(item)
    return len(fresh)
