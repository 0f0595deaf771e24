"""Listening in: a supervisor on the wallboard listens to a seat's call, whispers to the
operator (the citizen does not hear it), or barges in (both hear them).

- Asterisk (agi_scripts/listening.py): AMI Originate rings the supervisor's phone and,
  when they answer, runs [hotline-listen] (docker/asterisk/extensions.conf): ChanSpy on
  the seat's channel with ``q`` (quietly), plus ``w`` (whisper) or ``B`` (barge). When
  the supervisor hangs up, the ``h`` extension's AGI reports how long it lasted.
- Twilio (TwilioListener, below): the supervisor's phone joins the call's conference
  as a participant, muted (listen), coaching the operator's leg (whisper) or plainly
  (barge); its leg's status callback (/twilio/listen-leg) reports how long it lasted.
  Another mode pressed while listening changes the participant in place.

Each session is audited (calls.desk): ``listen-start`` (who, which seat, the mode, the
phone, the session's id) when it is asked for, ``listen-end`` with its duration.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from redis import Redis
from twilio.base.exceptions import TwilioException

from calls.twilio_conferences import CONFERENCE_SID, ConferenceSids, live_conference_sid
from cases.users import log_action
from queueing.keys import QueueKeys

if TYPE_CHECKING:
    from queueing import CallQueue

# mode -> ChanSpy's options: q no beep or name, E end with the spied-on channel.
LISTEN_MODES = {"listen": "qE", "whisper": "qEw", "barge": "qEB"}
SESSION_ID = re.compile(r"[a-f0-9]{16}\Z")
log = logging.getLogger("hotline.listening")
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}\Z")


class ListenError(Exception):
    """The telephony could not start the listening session."""


class ListenNotNow(ListenError):
    """Nothing to listen to until the call is back with its operator: ``reason``
    'consulting' (the operator talks to a unit while the caller holds) or 'on-hold'."""

    def __init__(self, reason: str, seat: str) -> None:
        super().__init__(f"the call of seat {seat} is {reason}")
        self.reason = reason


class Listener(Protocol):
    def listen(self, session_id: str, who: str, seat: str, phone: str, mode: str) -> str | None:
        """Start a session; or, where the telephony can, switch this supervisor's live
        session on that call to ``mode`` and return its id."""
        ...


def new_session_id() -> str:
    return os.urandom(8).hex()


def listen_ended(session_id: str, who: str, seat: str, seconds: int) -> None:
    """Job: the supervisor's phone hung up; the session's length joins the audit."""
    from cases.db import database_url_from_env, engine_for, session_factory

    if not SESSION_ID.match(session_id) or not USERNAME.match(who):
        return
    sessions = session_factory(engine_for(database_url_from_env(os.environ)))
    with sessions() as db:
        log_action(db, who, "listen-end", seat[:32], f"{session_id} {max(0, seconds)} s")
        db.commit()


# -- Twilio: conference coaching -----------------------------------------------------------
# The supervisor's phone joins the call's conference (calls.transfers.room_for) as a
# participant: muted to listen, coaching the operator's leg to whisper (only the coached
# leg hears a coach), plainly to barge. A seat call is a <Dial>, not a conference: the
# operator's own leg (the <Dial>'s child, noted when it picked up) is moved into the
# conference first, and the caller follows when their <Dial> ends (/twilio/dial-status),
# so nobody's phone rings again. Pressing another mode while listening updates the
# supervisor's participant in place.

# mode -> the participant's fields (besides call_sid_to_coach, added for coaching)
TWILIO_MODES: dict[str, dict[str, bool]] = {
    "listen": {"muted": True, "coaching": False},
    "whisper": {"muted": False, "coaching": True},
    "barge": {"muted": False, "coaching": False},
}
SESSION_TTL_S = 86400


def seat_address(seat_dial: str, seat: str) -> str:
    """Where Twilio rings a seat's phone (TWILIO_SEAT_DIAL: client, sip:..., number:...),
    as a participant's ``to``."""
    kind, _, template = seat_dial.partition(":")
    if kind in ("sip", "number") and template:
        address = template.format(seat=seat)
        return address if kind == "number" or address.startswith("sip:") else "sip:" + address
    return "client:" + seat


@dataclass
class ListenSessions:
    """Live Twilio listening sessions in Redis: each by its id (who, seat, phone, the
    seat's call, the supervisor's leg, the conference, the mode), and each call's by
    supervisor and phone, to switch a live one's mode."""

    redis: Redis
    keys: QueueKeys

    def _key(self, session_id: str) -> str:
        return self.keys.listen_session(session_id)

    def _of_call(self, call_id: str) -> str:
        return self.keys.listening(call_id)

    def get(self, session_id: str) -> dict[str, str]:
        if not SESSION_ID.match(session_id):
            return {}
        return _text(self.redis.hgetall(self._key(session_id)))

    def live(self, call_id: str, who: str, phone: str) -> dict[str, str]:
        found = self.redis.hget(self._of_call(call_id), f"{who} {phone}")
        if not found:
            return {}
        session = self.get(found.decode() if isinstance(found, bytes) else str(found))
        return session if session.get("leg") else {}

    def of_call(self, call_id: str) -> list[dict[str, str]]:
        ids = _text(self.redis.hgetall(self._of_call(call_id))).values()
        return [s for s in (self.get(i) for i in ids) if s]

    def save(self, session_id: str, **fields: str) -> None:
        key = self._key(session_id)
        self.redis.hset(key, mapping=cast(Any, fields))
        self.redis.expire(key, SESSION_TTL_S)
        if "call" in fields:
            index = self._of_call(fields["call"])
            self.redis.hset(index, f"{fields['who']} {fields['phone']}", session_id)
            self.redis.expire(index, SESSION_TTL_S)

    def complete(self, session_id: str, **fields: str) -> bool:
        """Add fields (the supervisor's leg, once Twilio made it) to a session still live;
        False if its leg's end was already reported, and the session is over."""
        done = self.redis.eval(
            "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
            "redis.call('HSET', KEYS[1], unpack(ARGV)) return 1",
            1,
            self._key(session_id),
            *[part for pair in fields.items() for part in pair],
        )
        return bool(done)

    def end(self, session_id: str) -> dict[str, str]:
        """Forget the session; what it was, or {} if it had already ended (once only)."""
        key = self._key(session_id)
        pipe = self.redis.pipeline()
        pipe.hgetall(key)
        pipe.delete(key)
        raw, deleted = pipe.execute()
        session = _text(raw)
        if not deleted or not session.get("call"):
            return {}
        index = self._of_call(session["call"])
        pair = f"{session.get('who', '')} {session.get('phone', '')}"
        if self.redis.hget(index, pair) in (session_id, session_id.encode()):
            self.redis.hdel(index, pair)
        return session


def _text(raw: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


class TwilioListener:
    """Listening in on Twilio (see above); ``client`` is twilio.rest.Client."""

    def __init__(
        self,
        client: Any,
        queue: CallQueue,
        public_base_url: str,
        caller_id: str | None,
        seat_dial: str = "client",
        ring_timeout_s: int = 30,
        channel_of: Callable[[str], str] | None = None,
    ) -> None:
        from calls.consult import ConsultLegs

        self.client = client
        self.queue = queue
        self.base_url = public_base_url.rstrip("/")
        self.caller_id = caller_id
        self.seat_dial = seat_dial
        self.ring_timeout_s = ring_timeout_s
        self.channel_of = channel_of  # the call's telephony (its flow's), if known
        self.legs = ConsultLegs(queue.redis, queue.keys)
        self.sessions = ListenSessions(queue.redis, queue.keys)

    def can_listen(self, call_id: str) -> bool:
        return self.channel_of is None or self.channel_of(call_id) == "twilio"

    def listen(self, session_id: str, who: str, seat: str, phone: str, mode: str) -> str | None:
        from calls.transfers import participant_room_options, room_for

        if not self.caller_id:
            raise ListenError("listening in on Twilio needs TWILIO_CALLER_ID to ring from")
        call_id = self.queue.seat(seat).get("call", "")
        record = self.queue.call(call_id) if call_id else {}
        if record.get("state") != "on_call" or record.get("seat") != seat:
            raise ListenError(f"seat {seat} has no call to listen to")
        if record.get("consult") == "consulting":
            # The operator is with the unit and the caller holds with music.
            raise ListenNotNow("consulting", seat)
        if record.get("held_at"):
            raise ListenNotNow("on-hold", seat)  # music, and the operator's leg gone
        live = self.sessions.live(call_id, who, phone)
        if live:
            try:
                self._switch(live, mode)
                return live["id"]
            except ListenError as exc:  # its leg is gone, unreported: ring the phone anew
                log.warning("listening session %s not switched: %s", live["id"], exc)
                self.sessions.end(live["id"])
        operator = self._operator_in_room(call_id)
        room = room_for(call_id)
        # Kept before Twilio is asked: the leg's end may be reported before create returns
        # (a phone that refuses at once), and must still find the session to audit it.
        self.sessions.save(
            session_id, id=session_id, who=who, seat=seat, phone=phone, call=call_id, mode=mode
        )
        try:
            participant = self.client.conferences(room).participants.create(
                from_=self.caller_id,
                to=seat_address(self.seat_dial, phone),
                label="listen-" + session_id,
                timeout=self.ring_timeout_s,
                start_conference_on_enter=False,
                end_conference_on_exit=False,
                beep="false",
                status_callback=f"{self.base_url}/twilio/listen-leg?session={session_id}",
                status_callback_method="POST",
                status_callback_event=["completed"],
                **self._fields(mode, operator),
                **participant_room_options(self.base_url, room),
            )
        except TwilioException as exc:
            self.sessions.end(session_id)
            raise ListenError(str(exc)) from None
        # Twilio updates the participant (another mode) by the conference's SID only.
        conference = str(getattr(participant, "conference_sid", "") or "")
        sids = ConferenceSids(self.queue.redis, self.queue.keys)
        if CONFERENCE_SID.match(conference):
            sids.remember(room, conference)
        else:
            conference = self._conference_sid(room)
        if not self.sessions.complete(
            session_id, leg=str(participant.call_sid), conference=conference
        ):
            log.info("listening session %s ended before its leg was kept", session_id)
        return None

    def _conference_sid(self, room: str) -> str:
        sids = ConferenceSids(self.queue.redis, self.queue.keys)
        try:
            return live_conference_sid(self.client, sids, room)
        except TwilioException as exc:
            log.warning("no SID for conference %s: %s", room, exc)
            return ""

    def _fields(self, mode: str, operator: str) -> dict[str, Any]:
        fields: dict[str, Any] = dict(TWILIO_MODES[mode])
        if fields["coaching"]:
            fields["call_sid_to_coach"] = operator
        return fields

    def _switch(self, session: dict[str, str], mode: str) -> None:
        from calls.transfers import room_for

        operator = self.legs.get(session["call"]).get("operator", "")
        conference = session.get("conference", "")
        if not CONFERENCE_SID.match(conference):
            conference = self._conference_sid(room_for(session["call"]))
        if not conference:
            raise ListenError(f"the conference of {session['call']} is not in progress")
        try:
            self.client.conferences(conference).participants(session["leg"]).update(
                **self._fields(mode, operator)
            )
        except TwilioException as exc:
            raise ListenError(str(exc)) from None
        self.sessions.save(session["id"], mode=mode)

    def _operator_in_room(self, call_id: str) -> str:
        """The operator's leg, in the call's conference: after a consult it is there
        already; a seat's <Dial> is moved there first (its child leg, then the caller
        by the <Dial>'s end). The leg's end is reported as a consult's operator leg's
        (/twilio/consult-leg), so their hang-up ends the conversation as on a <Dial>."""
        from calls.transfers import member_twiml, room_for

        legs = self.legs.get(call_id)
        if legs.get("operator"):
            return legs["operator"]
        seat_leg = legs.get("seat", "")
        if not seat_leg:
            raise ListenError(f"the operator's leg of {call_id} is not known")
        # Noted first: the caller's <Dial> ends as the leg moves, and must find it.
        self.legs.save(call_id, operator=seat_leg)
        try:
            self.client.calls(seat_leg).update(
                twiml=member_twiml(room_for(call_id), ends_it=True, base_url=self.base_url),
                status_callback=f"{self.base_url}/twilio/consult-leg?call={call_id}",
                status_callback_method="POST",
            )
        except TwilioException as exc:
            self.legs.drop(call_id, "operator")
            raise ListenError(str(exc)) from None
        return seat_leg

    def end_all(self, call_id: str) -> None:
        end_listening(self.client, self.sessions, call_id)


def end_listening(client: Any, sessions: ListenSessions, call_id: str) -> None:
    """The operator left the call (or it ended): every supervisor's leg on it ends,
    and each session's end is reported by its leg's status callback."""
    for session in sessions.of_call(call_id):
        try:
            client.calls(session["leg"]).update(status="completed")
        except TwilioException as exc:  # it ended by itself meanwhile
            log.info("listening leg %s not hung up: %s", session.get("leg"), exc)
