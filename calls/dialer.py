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
from datetime import UTC, datetime, timedelta
from typing import Protocol

from redis import Redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from calls.dialing import DialerSettings, dialable, next_attempt, next_calling_time, number_allowed
from cases.models import Case, OptOut, OutboundItem
from queueing.keys import QueueKeys

log = logging.getLogger("hotline.dialer")

LIVE_GUARD_S = 3600  # a number's live-call marker outlives any real call
PERSON_REACHED = ("satisfied", "unsatisfied", "no_response", "transfer", "connected")
STILL_ON_THE_LINE = ("transfer", "connected")  # the citizen now waits for an operator


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


class Dialer:
    def __init__(
        self,
        redis: Redis,
        keys: QueueKeys,
        sessions: sessionmaker,  # type: ignore[type-arg]
        originator: Originator | None,
        settings: DialerSettings | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.redis, self.keys, self.sessions = redis, keys, sessions
        self.originator = originator
        self.settings = settings or DialerSettings()
        self.now = now
        self._started: list[float] = []  # start times of the last second (pacing)

    # -- planning ------------------------------------------------------------------------

    def plan(
        self, session: Session, source: str, kind: str, phone: str, due: datetime, **link: object
    ) -> OutboundItem | None:
        """Add an item once per source (planning again changes nothing)."""
        existing = session.scalar(select(OutboundItem).where(OutboundItem.source == source))
        if existing is not None:
            return existing
        item = OutboundItem(
            source=source,
            kind=kind,
            phone=phone,
            due_at=_utc(due),
            next_at=_utc(due),
            created_at=_utc(self.now()),
            priority=1 if kind == "callback" else 0,
            **link,
        )
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
        """Rebuild the index from SQL (a Redis that lost its data)."""
        n = 0
        for item in session.scalars(select(OutboundItem).where(OutboundItem.status == "pending")):
            self.index(item)
            n += 1
        return n

    # -- dialling ------------------------------------------------------------------------

    def _pace_allows(self) -> bool:
        cutoff = time.monotonic() - 1.0
        self._started = [t for t in self._started if t > cutoff]
        return len(self._started) < self.settings.calls_per_s

    def run_once(self, batch: int = 200) -> int:
        """One round: start the calls that may start now. Returns how many started."""
        now = self.now()
        free = self.settings.max_concurrent - self.redis.hlen(self.keys.dial_live)
        if free <= 0 or not self._pace_allows():
            return 0
        due = [
            int(m) for m in self.redis.zrangebyscore(self.keys.dial_due, "-inf", _ms(now), 0, batch)
        ]
        if not due:
            return 0
        started = 0
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
            for item in ordered:
                if started >= free or not self._pace_allows():
                    break
                if self._start(
                    session, item, now, item.phone in opted_out and item.kind == "return_visit"
                ):
                    started += 1
            session.commit()
            for item in items.values():
                if item.status != "dialing":
                    self.index(item)
        for item in items.values():
            if item.status == "dialing" and item.live_call:
                try:
                    if self.originator is None:
                        raise RuntimeError("this process cannot place calls")
                    self.originator.originate(item.live_call, item.phone, item.kind)
                except Exception:  # the telephony refused: an attempt that failed
                    log.exception("could not place outbound call %s", item.live_call)
                    self.finished(item.live_call, "failed")
        missing = set(due) - set(items)
        if missing:
            self.redis.zrem(self.keys.dial_due, *(str(m) for m in missing))
        return started

    def _start(self, session: Session, item: OutboundItem, now: datetime, opted_out: bool) -> bool:
        if item.status != "pending":
            return False
        refused = dialable(item.phone, opted_out)
        if refused:
            item.status, item.last_result = refused, refused
            self._settle_case(session, item, "unreachable" if refused == "unreachable" else None)
            return False
        opening = next_calling_time(now, self.settings)
        if opening != now:
            item.next_at = _utc(opening)
            return False
        log_key = self.keys.dial_log(item.phone)
        recent = [
            datetime.fromtimestamp(score / 1000, UTC)
            for _, score in self.redis.zrangebyscore(
                log_key, _ms(now - timedelta(hours=24)), "+inf", withscores=True
            )
        ]
        wait_until = number_allowed(recent, now, self.settings)
        if wait_until is not None:
            item.next_at = _utc(wait_until)
            return False
        call_id = f"out-{item.id}-{item.attempts + 1}"
        if not self.redis.set(self.keys.dial_number(item.phone), call_id, nx=True, ex=LIVE_GUARD_S):
            item.next_at = _utc(now + timedelta(minutes=1))  # that number is on a call now
            return False
        item.attempts += 1
        item.status, item.live_call, item.last_attempt_at = "dialing", call_id, _utc(now)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.dial_live, call_id, item.id)
        pipe.zadd(log_key, {call_id: _ms(now)})
        pipe.expire(log_key, 86400 + 3600)
        pipe.zrem(self.keys.dial_due, str(item.id))
        pipe.execute()
        self._started.append(time.monotonic())
        return True

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
                    self._settle_case(session, item, "unreachable")
                else:
                    item.status, item.next_at = "pending", _utc(retry)
            session.commit()
            self.index(item)
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
                    stale.append(call_id.decode())
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

    def _settle_case(self, session: Session, item: OutboundItem, outcome: str | None) -> None:
        if item.kind != "return_visit" or item.case_id is None or outcome is None:
            return
        from cases.dispatch import apply_return_visit

        case = session.get(Case, item.case_id)
        if case is not None:
            apply_return_visit(session, case, outcome)


def plan_work(session: Session, dialer: Dialer, now: datetime, min_wait_s: float = 30.0) -> int:
    """Put on the work list what is owed a call (idempotent; run every few seconds):
    return visits of cases resolved in the last two days (due the next day), callback
    requests still pending, and citizens who hung up after waiting ``min_wait_s`` or
    more, or were turned away while the centre was closed (国办函〔2025〕66号)."""
    from cases.models import CallbackRequest, CallRecord

    planned: list[OutboundItem] = []
    since = now - timedelta(days=2)
    known = set(
        session.scalars(
            select(OutboundItem.source).where(
                OutboundItem.created_at >= _utc(since - timedelta(days=1))
            )
        )
    )
    for case in session.scalars(
        select(Case).where(
            Case.status == "resolved", Case.resolved_at >= _utc(since), Case.satisfaction.is_(None)
        )
    ):
        source = f"visit:{case.id}"
        if source not in known:
            due = next_calling_time(_aware(case.resolved_at) + timedelta(days=1), dialer.settings)
            planned.append(
                dialer.plan(
                    session, source, "return_visit", case.caller_phone, due, case_id=case.id
                )
            )
    for request in session.scalars(
        select(CallbackRequest).where(CallbackRequest.status == "pending")
    ):
        source = f"callback:{request.call_id}"
        if source not in known:
            planned.append(
                dialer.plan(
                    session, source, "callback", request.caller_phone, now, call_id=request.call_id
                )
            )
            request.status = "planned"
    missed = select(CallRecord).where(
        CallRecord.direction == "inbound",
        CallRecord.queued_at >= _utc(since),
        ((CallRecord.outcome == "abandoned") & (CallRecord.wait_ms >= int(min_wait_s * 1000)))
        | (CallRecord.outcome == "turned_away"),
    )
    for call in session.scalars(missed):
        source = f"callback:{call.call_id}"
        if source not in known and call.caller:
            planned.append(
                dialer.plan(session, source, "callback", call.caller, now, call_id=call.call_id)
            )
    session.commit()
    fresh = [item for item in planned if item is not None and item.source not in known]
    for item in fresh:
        dialer.index(item)
    return len(fresh)
