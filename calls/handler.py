"""The shell core every telephony adapter shares (Twilio, Asterisk, the simulator).

An adapter turns what it hears into ivr events and hands them to CallHandler. The
handler keeps the flow's state in Redis, steps the pure flow, and carries out the
backend actions itself (queue transitions, jobs); it returns the media actions (play,
gather, hold, bridge, hang up) for the adapter to perform in its own medium.

When in doubt, the caller goes to a person: a lookup that fails only means no
recognition, and a queue error while enqueuing is logged and retried as a plain
Mandarin call.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import cast

from redis import Redis
from rq import Queue as JobQueue
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy.orm import sessionmaker

from calls.filing import submit_draft
from calls.workers import job_running
from cases.models import CallRecord
from cases.phones import PhoneSettings, mask_phone, normalise_or_raw
from cases.service import caller_profile, hotline_info
from ivr import actions as a
from ivr import events as e
from ivr.inbound import CALLBACK_OFFER, DIALECT_OFFER, HOLDING, MENU, RINGING, FlowState, step
from queueing import CallQueue, QueueError

log = logging.getLogger("calls.handler")

RQ_QUEUE = "hotline"  # the RQ queue of case, form and callback jobs
FLOW_TTL_S = 86400
# A caller in these phases is on the line waiting for a person.
WAITING_PHASES = frozenset({MENU, DIALECT_OFFER, HOLDING, CALLBACK_OFFER, RINGING})
MEDIA_ACTIONS = (a.Play, a.Gather, a.Hold, a.Bridge, a.HangUp)
# Moving a call that is already being dialled could cut a conversation that started a
# moment ago, so offers are pushed only to calls in these phases.
PUSHABLE_PHASES = ("menu", "holding", "callback_offer")


@dataclass(frozen=True)
class Recognition:
    vulnerable: bool = False
    open_case: e.OpenCase | None = None
    hotline: e.HotlineRoute | None = None
    # The call has a detail row: it ended here before, and this is an old webhook
    # replayed after its flow expired from Redis.
    seen_before: bool = False


class CallerDirectory:
    """Who is calling and which number they dialed, from the case database.

    The merged-hotline table is small and read on every call, so it is cached."""

    def __init__(self, sessions: sessionmaker, hotline_cache_s: float = 60.0) -> None:  # type: ignore[type-arg]
        self.sessions = sessions
        self.hotline_cache_s = hotline_cache_s
        self._hotlines: dict[str, e.HotlineRoute | None] = {}
        self._loaded_at = 0.0

    def _hotline(self, session, dialed: str) -> e.HotlineRoute | None:  # type: ignore[no-untyped-def]
        if time.monotonic() - self._loaded_at > self.hotline_cache_s:
            self._hotlines.clear()
            self._loaded_at = time.monotonic()
        if dialed not in self._hotlines:
            info = hotline_info(session, dialed)
            self._hotlines[dialed] = (
                e.HotlineRoute(info.dialed, info.name, info.category_code, info.department_code)
                if info
                else None
            )
        return self._hotlines[dialed]

    def recognise(self, caller: str, dialed: str, call_id: str = "") -> Recognition:
        try:
            with self.sessions() as session:
                if call_id and session.get(CallRecord, call_id) is not None:
                    return Recognition(seen_before=True)
                profile = caller_profile(session, caller)
                hotline = self._hotline(session, dialed)
        except Exception:  # the database is down: answer the call anyway
            log.exception("caller lookup failed; treating the caller as unknown")
            return Recognition()
        case = None
        if profile.open_case_number:
            case = e.OpenCase(
                profile.open_case_number,
                profile.open_case_status or "received",
                operator_seat=profile.open_case_seat,
            )
        return Recognition(profile.vulnerable, case, hotline)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def job_id_for(kind: str, call_id: str) -> str:
    """RQ allows only letters, digits, _ and - in job ids; Asterisk call ids have dots.
    The hash keeps two calls from ever sharing a job."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", call_id)
    return f"{kind}-{safe}-{hashlib.sha1(call_id.encode()).hexdigest()[:8]}"


def matched_on_entry(record: dict[str, str]) -> bool:
    """Offered in the very transition that queued it: the adapter that queued the call
    got the offer back and bridges it itself, so nobody else should move the call."""
    return bool(record.get("offered_at")) and record.get("offered_at") == record.get("entered")


def _pushable(flow: FlowState | None, record: dict[str, str], seat: str, channel: str) -> bool:
    """A call of that channel still waiting (menu, holding, callback offer), still
    offered to that seat, and not matched in the very request that queued it."""
    if flow is None or flow.channel != channel or flow.phase not in PUSHABLE_PHASES:
        return False
    if record.get("state") != "offered" or record.get("seat") != seat:
        return False
    return not matched_on_entry(record)


def _advance(state: FlowState, event: e.Event) -> FlowState:
    """Step without acting: for an event whose actions the next event supersedes."""
    return step(state, event)[0]


class CallHandler:
    def __init__(
        self,
        queue: CallQueue,
        jobs: JobQueue,
        directory: CallerDirectory | None,
        *,
        phones: PhoneSettings | None = None,
    ) -> None:
        self.queue = queue
        self.phones = phones or PhoneSettings()
        self.redis: Redis = queue.redis
        self.jobs = jobs
        self.directory = directory

    # -- state ------------------------------------------------------------------------

    def load(self, call_id: str) -> FlowState | None:
        raw = self.redis.get(self.queue.keys.flow(call_id))
        return FlowState.from_json(_text(raw)) if raw else None

    def _save(self, call_id: str, state: FlowState) -> None:
        self.redis.set(self.queue.keys.flow(call_id), state.to_json(), ex=FLOW_TTL_S)

    # -- entry points ---------------------------------------------------------------------

    def start(
        self, call_id: str, caller: str, dialed: str, channel: str, at: float
    ) -> list[a.Action]:
        """A call arrived. Starting the same call twice (a retried webhook) replays
        nothing: the second time returns what the caller should hear now."""
        gone = self.queue.keys.gone(call_id)
        if self.redis.exists(gone):
            return [a.HangUp()]  # its hang-up overtook this first webhook
        existing = self.load(call_id)
        if existing is not None:
            return [a.HangUp()] if existing.phase == "done" else [a.Hold()]
        # One citizen is one number however the carrier wrote it (E.164), so the
        # register, repeat callers and merged hotline numbers are recognised.
        caller = normalise_or_raw(caller, self.phones)
        dialed = normalise_or_raw(dialed, self.phones)
        staffed = self.queue.staffed_seats()
        known = (
            self.directory.recognise(caller, dialed, call_id) if self.directory else Recognition()
        )
        if known.seen_before:
            log.warning("call %s ended here before: a replayed start is not a new call", call_id)
            return [a.HangUp()]
        event = e.CallStarted(
            caller=caller,
            dialed=dialed,
            at=at,
            channel=channel,
            staffed_seats=staffed,
            closed=staffed == 0 and self.queue.is_closed(),
            vulnerable=known.vulnerable,
            open_case=known.open_case,
            hotline=known.hotline,
        )
        log.info("call %s from %s to %s (%s)", call_id, mask_phone(caller), dialed, channel)
        actions = self._prefer_offer(call_id, self._apply(call_id, None, event), at)
        if self.redis.exists(gone):
            # The hang-up arrived while this call was starting. caller_gone() marks
            # before it releases, and this checks after queuing: one of the two ends it.
            self.caller_gone(call_id)
            return [a.HangUp()]
        return actions

    def handle(self, call_id: str, event: e.Event) -> list[a.Action]:
        actions = self._apply(call_id, self.load(call_id), event)
        if isinstance(event, e.Digits | e.InputTimeout):
            return self._prefer_offer(call_id, actions, event.at)
        return actions

    def _prefer_offer(self, call_id: str, actions: list[a.Action], at: float) -> list[a.Action]:
        """A person is ready: no more menu. Telephony cannot always interrupt a menu
        (Twilio's <Gather>), so every turn of the caller's input checks for an offer."""
        if not any(isinstance(x, a.Gather | a.Hold) for x in actions):
            return actions
        record = self.queue.call(call_id)
        if record.get("state") != "offered":
            return actions
        bridge, _ = self.queue_update(call_id, at)
        if not bridge:
            return actions
        kept = [x for x in actions if not isinstance(x, a.Gather | a.Hold)]
        return kept + bridge

    def queue_update(self, call_id: str, at: float) -> tuple[list[a.Action], str]:
        """Look at the queue for this call and tell the flow what changed. Returns the
        actions and the call's queue state (waiting, offered, on_call, ended, gone)."""
        state = self.load(call_id)
        try:
            pos = self.queue.position(call_id)
        except QueueError:
            if not self._queue_again(call_id, state):
                return [], "gone"
            pos = self.queue.position(call_id)
        if state is None:
            return [], pos.state
        if pos.state == "offered" and pos.seat and state.phase != "connected":
            if state.phase == "ringing":
                if state.seat == pos.seat:
                    return [], pos.state
                # The reaper took the call back from a silent seat and offered it on.
                state = _advance(state, e.SeatNoAnswer(state.seat or "", at=at))
            return self._apply(call_id, state, e.SeatOffered(pos.seat, at=at)), pos.state
        if pos.state == "waiting" and state.phase == "ringing":
            return self._apply(call_id, state, e.SeatNoAnswer(state.seat or "", at=at)), pos.state
        if pos.state == "waiting":
            update = e.QueueUpdate(pos.position, pos.estimated_wait_s, pos.staffed_seats, at=at)
            return self._apply(call_id, state, update), pos.state
        return [], pos.state

    def _queue_again(self, call_id: str, state: FlowState | None) -> bool:
        """A caller still holding whose call the queue no longer knows (a Redis
        failover lost the last writes before it) is queued again, not left on hold
        for ever: when in doubt, a person answers. Their place restarts at the back of
        their priority."""
        if state is None or state.phase not in WAITING_PHASES:
            return False
        if self.redis.exists(self.queue.keys.gone(call_id)):
            return False  # the caller hung up: nothing to queue
        log.warning("call %s was lost from the queue while its caller held; queued again", call_id)
        self._backend(
            call_id, state, a.Enqueue(state.priority, state.skill, sticky_seat=state.sticky_seat)
        )
        return True

    # -- the backend half of the actions --------------------------------------------------

    def _apply(self, call_id: str, state: FlowState | None, event: e.Event) -> list[a.Action]:
        new_state, actions = step(state, event)
        if new_state != state:  # the hold loop polls often; most polls change nothing
            self._save(call_id, new_state)
        media: list[a.Action] = []
        for action in actions:
            if isinstance(action, MEDIA_ACTIONS):
                media.append(action)
            else:
                self._backend(call_id, new_state, action)
        return media

    def _backend(self, call_id: str, state: FlowState, action: a.Action) -> None:
        if isinstance(action, a.Enqueue):
            try:
                self.queue.enqueue(
                    call_id,
                    skill=action.skill,
                    priority=action.priority,
                    caller=state.caller,
                    sticky_seat=action.sticky_seat,
                )
            except QueueError:
                log.exception("enqueue of %s failed; enqueuing as a plain call", call_id)
                self.queue.enqueue(call_id, caller=state.caller)
        elif isinstance(action, a.ChangeSkill):
            self.queue.set_skill(call_id, action.skill)
        elif isinstance(action, a.RequestCallback):
            if action.reason == "closed":  # never queued: counted as turned away
                self.queue.turned_away(call_id, state.caller, action.reason)
            else:
                try:
                    self.queue.leave(call_id, action.reason)
                except QueueError:
                    log.warning("callback for %s: the call had left the queue", call_id)
            self.jobs.enqueue(
                "calls.casework.record_callback_request",
                call_id,
                action.reason,
                job_id=job_id_for("callback", call_id),
            )
        elif isinstance(action, a.ReleaseCall):
            try:
                result = self.queue.hangup(call_id).result
            except QueueError:
                return  # never queued
            if result == "completed":
                self.schedule_case(call_id)

    def schedule_case(self, call_id: str) -> None:
        """The conversation ended: its case is created now (once; retried), and the
        operator's form is merged into it whenever it comes. The reaper's sweep finds
        any answered call whose job was lost (a crash before this line ran)."""
        self.jobs.enqueue(
            "calls.casework.create_case",
            call_id,
            job_id=job_id_for("case", call_id),
            retry=Retry(max=5, interval=[1, 3, 10, 30, 60]),
        )

    def seat_to_dial(self, call_id: str, at: float) -> str | None:
        """The seat the queue has offered this call to, with the flow brought to ringing
        it (a redirect may have replaced a dial the flow already knew of), or None."""
        # The record and the flow in one round trip, and the flow stepped as read: this
        # runs between a seat's hang-up and its next Dial, where every wait for Redis
        # (and for the interpreter after it, behind every other caller's prompt step)
        # is the seat's idle time.
        record, flow = self._call_and_flow(call_id)
        seat = record.get("seat")
        if record.get("state") not in ("offered", "on_call") or not seat:
            return None
        if flow is not None and (flow.phase != "ringing" or flow.seat != seat):
            self._apply(call_id, flow, e.SeatOffered(seat, at=at))
        return seat

    def _call_and_flow(self, call_id: str) -> tuple[dict[str, str], FlowState | None]:
        """The queue's record of the call and its flow, read in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.queue.keys.call(call_id))
        pipe.get(self.queue.keys.flow(call_id))
        raw_record, raw_flow = pipe.execute()
        record = {_text(k): _text(v) for k, v in raw_record.items()}
        return record, FlowState.from_json(_text(raw_flow)) if raw_flow else None

    def ringing(self, call_id: str, seat: str, after_s: float = 0.0) -> None:
        """The adapter is dialling the seat now (after ``after_s`` of media): the seat's
        ring lease starts then, so an answer anywhere in the ring time is accepted."""
        try:
            self.queue.ringing(call_id, seat, after_s)
        except QueueError:
            pass  # the call ended meanwhile: the dial will find out

    def caller_gone(self, call_id: str) -> None:
        """The caller's leg is gone: a final status callback, the h extension, or the
        telephony no longer has the call (Asterisk restarted). Ends the call wherever it
        was and frees its seat; idempotent; never queues anything, even without flow
        state, and a first webhook still in flight for it queues nothing either."""
        self.redis.set(self.queue.keys.gone(call_id), 1, ex=FLOW_TTL_S)
        # The flow releases the queue's record for any hang-up, known call or not.
        self.handle(call_id, e.Hangup(at=time.time()))

    def seat_answered(self, call_id: str, seat: str, at: float) -> bool:
        """The telephony says this seat picked up the call: it is connected, even if the
        queue had moved on meanwhile (the picture follows what happened). False when
        the caller is gone or another seat already has them: hang up the seat's leg."""
        try:
            self.queue.answer(call_id, seat, talked=True)
        except QueueError as exc:
            log.info("seat %s picked up call %s, which cannot connect (%s)", seat, call_id, exc)
            return False
        self.handle(call_id, e.SeatConnected(seat, at=at))
        return True

    def seat_talked(self, call_id: str, seat: str, by: str, at: float) -> None:
        """The telephony reports a conversation with this seat that has ended (Dial
        answered, DialCallStatus completed), whether or not its pick-up reached us."""
        self.seat_answered(call_id, seat, at)
        self.conversation_ended(call_id, by=by)

    def seat_missed(self, call_id: str, seat: str, reason: str, at: float) -> list[a.Action]:
        """The dialled seat did not pick up. The queue pauses it only if the call is
        still offered to that seat (no_answer answers 'stale' otherwise); the caller
        then holds, or is bridged to whichever seat the queue offers next."""
        try:
            self.queue.no_answer(call_id, seat, reason)
        except QueueError:
            return [a.HangUp()]  # the call is unknown here: nothing to wait for
        actions, _ = self.queue_update(call_id, at)
        return actions or [a.Hold()]

    def should_push_offer(self, call_id: str, seat: str, channel: str) -> bool:
        """Whether a listener should move this call to its seat now: a call of that
        channel still waiting (menu, holding, callback offer), still offered to that
        seat, and not matched in the very request that queued it (which bridges it)."""
        record, flow = self._call_and_flow(call_id)
        return _pushable(flow, record, seat, channel)

    def channel_to_move(self, call_id: str, seat: str) -> str | None:
        """should_push_offer for an Asterisk call and the channel to redirect, read in
        one round trip: the redirector runs between a seat's hang-up and its next Dial."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.queue.keys.call(call_id))
        pipe.get(self.queue.keys.flow(call_id))
        pipe.get(self.queue.keys.channel(call_id))
        raw_record, raw_flow, target = pipe.execute()
        record = {_text(k): _text(v) for k, v in raw_record.items()}
        flow = FlowState.from_json(_text(raw_flow)) if raw_flow else None
        if not target or not _pushable(flow, record, seat, "asterisk"):
            return None
        return _text(target)

    # -- the operator's side ----------------------------------------------------------------

    def submit_case_form(self, call_id: str, form: dict[str, object]) -> None:
        """The operator's form, at any moment: kept in Redis and filed into the call's
        case by its case job if that has not finished yet, else by a retried job."""
        if not submit_draft(self.redis, self.queue.keys, call_id, form):
            return
        self.jobs.enqueue(
            "calls.casework.file_stored_form",
            call_id,
            job_id=job_id_for("form", call_id),
            retry=Retry(max=5, interval=[1, 3, 10, 30, 60]),
        )

    def operator_completes(self, call_id: str) -> None:
        """The operator ends the conversation, where the telephony does not report it."""
        self.conversation_ended(call_id, by="agent")

    def conversation_ended(self, call_id: str, by: str) -> None:
        """The talk is over, whoever hung up; the case follows after wrap-up."""
        if self.queue.complete(call_id, by=by).result == "completed":
            self.schedule_case(call_id)
        self.handle(call_id, e.Hangup(at=time.time()))


class CaseSweep:
    """The backstop that makes every answered call end in a case: COMPLETE events in
    the stream, read from a cursor, whose call has no case in SQL ``grace_s`` after the
    hang-up get their case job (again). Covers a crash between completing a call and
    enqueuing its job, and jobs lost with a killed worker."""

    CURSOR_FIELD = "case_sweep_cursor"

    def __init__(self, handler: CallHandler, sessions: sessionmaker, grace_s: float = 10.0) -> None:  # type: ignore[type-arg]
        self.handler, self.sessions, self.grace_s = handler, sessions, grace_s

    def _job_pending(self, call_id: str) -> bool:
        """Its case job is waiting, scheduled for a retry or running on a live worker:
        a backlog, not a loss, so enqueuing it again would only add load. A job whose
        worker died counts as lost."""
        try:
            job = Job.fetch(job_id_for("case", call_id), connection=self.handler.redis)
        except NoSuchJobError:
            return False
        return job.get_status(refresh=False) in (
            JobStatus.QUEUED,
            JobStatus.SCHEDULED,
            JobStatus.DEFERRED,
        ) or job_running(self.handler.redis, job)

    def run_once(self, batch: int = 2000) -> list[str]:
        from sqlalchemy import select

        from cases.models import Case, CaseEvent

        redis, keys = self.handler.redis, self.handler.queue.keys
        cursor = redis.hget(keys.stats, self.CURSOR_FIELD)
        lower = "(" + _text(cursor) if cursor else "-"
        seconds, micros = redis.time()
        upper = str(seconds * 1000 + micros // 1000 - int(self.grace_s * 1000))
        events = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            redis.xrange(keys.events, lower, upper, count=batch),
        )
        if not events:
            return []
        completed = [f[b"call"].decode() for _, f in events if f.get(b"type") == b"COMPLETE"]
        missing: list[str] = []
        if completed:
            with self.sessions() as session:
                have = set(session.scalars(select(Case.call_id).where(Case.call_id.in_(completed))))
                # A call attached to the caller's open case (催办) has its case too.
                have |= set(
                    session.scalars(
                        select(CaseEvent.call_id).where(CaseEvent.call_id.in_(completed))
                    )
                )
            missing = [c for c in completed if c not in have and not self._job_pending(c)]
            for call_id in missing:
                log.warning("answered call %s has no case and no job; creating it", call_id)
                self.handler.schedule_case(call_id)
        redis.hset(keys.stats, self.CURSOR_FIELD, events[-1][0])
        return missing
