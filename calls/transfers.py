"""Moving a connected call: a blind transfer to an emergency line (紧急转办), or back
in line for another skill or a named seat, on Asterisk and on Twilio.

The desk (calls.desk) checks who may act and records the queue's transition first
(queueing/lua/transfer.lua): the call's record then says it left the operator's seat,
so the telephony leg that ends when the caller is moved changes nothing in the queue.
Only then is the caller moved:

- Asterisk (agi_scripts/transfers.py): AMI Redirect of the caller's channel into
  [hotline-transfer-out], which Dials the line through the trunk, into
  [hotline-bridge], whose AGI dials the seat the queue offered, or holds, or into
  [hotline-on-hold] (music).
- Twilio (TwilioMover, below): the live call is updated (REST) with a <Dial> to the
  line or hold music, or redirected to /twilio/offered, which dials the offered seat
  (the call's own seat after a hold) or holds.

The operator's leg ends with the caller's move. A transfer sends the seat to wrap-up;
a hold keeps the call the seat's, and resuming rings the seat's phone again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from sqlalchemy import select

from calls.handler import CallHandler
from calls.twilio_conferences import ConferenceSids, ended_by, live_conference_sid
from cases.models import CaseEvent
from cases.service import case_for_call, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from calls.consult import ConsultLegs, ConsultMover
    from cases.models import Case

log = logging.getLogger("hotline.transfers")

# The emergency lines and what each is for (zh-CN, English), in the console's order.
EMERGENCY_LINES: dict[str, tuple[str, str]] = {
    "110": ("报警", "Police"),
    "119": ("火警", "Fire"),
    "120": ("急救", "Ambulance"),
    "122": ("交通事故", "Traffic accidents"),
}
NOTE_MAX_CHARS = 200
EMERGENCY_HANDLING = "emergency_transfer"


class TelephonyError(Exception):
    """The caller could not be moved (AMI or Twilio refused or is unreachable)."""


class CallMover(Protocol):
    def can_move(self, call_id: str, channel: str) -> bool: ...

    def to_line(self, call_id: str, channel: str, number: str) -> None: ...

    def back_in_line(self, call_id: str, channel: str) -> None: ...

    def hold(self, call_id: str, channel: str) -> None: ...


@runtime_checkable
class ConsultCapable(Protocol):
    """A mover that also consults (calls.consult.ConsultMover)."""

    def can_consult(self, call_id: str, channel: str) -> bool: ...


def room_for(call_id: str) -> str:
    """The caller's conference during a consult: one per call."""
    return "hotline-" + call_id


def national(number: str) -> str:
    """A carrier wants national digits: +8613800000001 -> 13800000001."""
    return number[3:] if number.startswith("+86") else number.lstrip("+")


class TwilioMover:
    def __init__(
        self,
        client: Any,
        public_base_url: str,
        caller_id: str | None = None,
        hold_music_url: str | None = None,
        legs: ConsultLegs | None = None,
    ) -> None:
        self.client = client
        self.base_url = public_base_url.rstrip("/")
        self.caller_id = caller_id
        self.hold_music_url = hold_music_url or self.base_url + "/twilio/hold.wav"
        self.legs = legs

    def can_move(self, call_id: str, channel: str) -> bool:
        return channel == "twilio"

    def _update(self, call_id: str, **fields: str) -> None:
        from twilio.base.exceptions import TwilioException

        try:
            self.client.calls(call_id).update(**fields)
        except TwilioException as exc:
            raise TelephonyError(str(exc)) from None

    def _forget_operator(self, call_id: str) -> None:
        """The caller moves on from a room the operator is in (after a cancelled
        consult): the operator's leg, ended with the room, then ends nothing; nor does
        any supervisor listen on."""
        self._end_listening(call_id)
        if self.legs is not None:
            self.legs.drop(call_id)

    def _end_listening(self, call_id: str) -> None:
        """Supervisors listening in (calls.listening) leave as the operator does."""
        if self.legs is not None:
            from calls.listening import ListenSessions, end_listening

            end_listening(self.client, ListenSessions(self.legs.redis, self.legs.keys), call_id)

    def to_line(self, call_id: str, channel: str, number: str) -> None:
        self._forget_operator(call_id)
        self._update(call_id, twiml=line_twiml(number, self.caller_id, self.base_url))

    def back_in_line(self, call_id: str, channel: str) -> None:
        self._forget_operator(call_id)
        self._update(call_id, url=self.base_url + "/twilio/offered", method="POST")

    def hold(self, call_id: str, channel: str) -> None:
        # Music until resumed: /twilio/offered then dials the seat the call still holds.
        self._forget_operator(call_id)
        self._update(call_id, twiml=hold_twiml(self.hold_music_url))

    # -- consult transfer and three-way call (calls.consult) ----------------------------
    # The caller waits in their own conference (room_for), with its wait music until a
    # member who starts it joins; the operator and the unit are called into a second one
    # (the desk) by the participants API, and moved into the caller's by call updates.
    # The caller's leaving ends the conference, so no leg outlives them.

    def can_consult(self, call_id: str, channel: str) -> bool:
        return channel == "twilio" and self.legs is not None and bool(self.caller_id)

    def _legs(self, call_id: str) -> dict[str, str]:
        legs = self._legs_of().get(call_id)
        if not legs.get("operator") or not legs.get("unit"):
            raise TelephonyError(f"no consult legs known for {call_id}")
        return legs

    def _legs_of(self) -> ConsultLegs:
        if self.legs is None:
            raise TelephonyError("no place to keep the consult's legs")
        return self.legs

    def _join(self, sid: str, room: str, ends_it: bool) -> None:
        self._update(sid, twiml=member_twiml(room, ends_it, self.base_url))

    def _caller_to_room(self, call_id: str) -> None:
        room = room_for(call_id)
        self._update(call_id, twiml=caller_room_twiml(room, self.hold_music_url, self.base_url))

    def _hang_up(self, sid: str) -> None:
        self._update(sid, status="completed")

    def _call_in(self, room: str, to: str, label: str, starts_it: bool, call_id: str) -> str:
        from twilio.base.exceptions import TwilioException

        # The leg's end is reported (/twilio/consult-leg): the operator hanging up on
        # their own ends their part of the call (calls.consult.operator_left).
        try:
            participant = self.client.conferences(room).participants.create(
                from_=self.caller_id,
                to=to,
                label=label,
                start_conference_on_enter=starts_it,
                end_conference_on_exit=False,
                beep="false",
                wait_url=self.hold_music_url,
                wait_method="GET",
                status_callback=f"{self.base_url}/twilio/consult-leg?call={call_id}",
                status_callback_method="POST",
                status_callback_event=["completed"],
            )
        except TwilioException as exc:
            raise TelephonyError(str(exc)) from None
        return str(participant.call_sid)

    def consult_start(self, call_id: str, channel: str, seat: str, number: str) -> None:
        if self.legs is None or not self.caller_id:
            raise TelephonyError("a consult needs TWILIO_CALLER_ID to ring the unit from")
        desk = room_for(call_id) + "-consult"
        self._end_listening(call_id)
        operator = self.legs.get(call_id).get("operator", "")
        if operator:
            # The operator is with the caller in their conference already (after a
            # cancel, a unit that left, or listening in): their own leg moves to the
            # consult's, ringing nobody, and must not end the caller's room as it goes;
            # then the caller enters it anew, alone, to hear its music.
            self._ends_it_on_exit(call_id, operator, ends=False)
            self._join(operator, desk, ends_it=False)
            self._caller_to_room(call_id)
        else:
            # A seat's <Dial>: moving the caller ends the operator's leg; it is rung anew.
            self._caller_to_room(call_id)
            self.legs.drop(call_id, "seat")
            operator = self._call_in(desk, f"client:{seat}", "operator", True, call_id)
            self.legs.save(call_id, operator=operator)
        unit = self._call_in(desk, number, "unit", False, call_id)
        self.legs.save(call_id, unit=unit)

    def consult_threeway(self, call_id: str, channel: str) -> None:
        legs, room = self._legs(call_id), room_for(call_id)
        self._join(legs["unit"], room, ends_it=False)
        self._join(legs["operator"], room, ends_it=False)

    # A step forgets the operator's leg before ending it: its end then ends nothing.

    def consult_complete(self, call_id: str, channel: str) -> None:
        legs = self._legs(call_id)
        self._end_listening(call_id)
        self._join(legs["unit"], room_for(call_id), ends_it=True)
        self._legs_of().drop(call_id)
        self._hang_up(legs["operator"])

    def consult_cancel(self, call_id: str, channel: str) -> None:
        legs, room = self._legs(call_id), room_for(call_id)
        self._legs_of().drop(call_id, "unit")
        self._hang_up(legs["unit"])
        # The operator's hang-up from now on ends the call, as after any conversation
        # (the conference ends with them, and their leg's end tells the queue).
        self._join(legs["operator"], room, ends_it=True)

    def consult_leave(self, call_id: str, channel: str) -> None:
        legs = self._legs(call_id)
        self._end_listening(call_id)
        self._ends_it_on_exit(call_id, legs["unit"])
        self._legs_of().drop(call_id)
        self._hang_up(legs["operator"])

    def operator_gone(self, call_id: str, result: str, legs: dict[str, str]) -> None:
        """The telephony's half of calls.consult.operator_left (``legs``: as they were):
        handed over, the unit's leaving now ends the caller's conference; back in line,
        the unit's leg ends and the caller leaves their conference for the queue."""
        unit = legs.get("unit", "")
        if result == "handed-over" and unit:
            self._ends_it_on_exit(call_id, unit)
        elif result == "requeued":
            if unit:
                self._hang_up_quietly(unit)
            self.back_in_line(call_id, "twilio")

    def unit_gone(self, call_id: str, legs: dict[str, str], result: str = "cancelled") -> None:
        """The telephony's half of calls.consult.unit_left (``legs``: as they were): the
        operator, alone in the consult's conference, joins the caller's, as on cancel;
        left with the caller by a three-way call's unit ('talking'), their hang-up now
        ends the caller's conference, as after a cancel."""
        operator = legs.get("operator")
        if operator and result == "talking":
            self._ends_it_on_exit(call_id, operator)
        elif operator:
            self._join(operator, room_for(call_id), ends_it=True)

    def caller_gone(self, call_id: str) -> None:
        """The caller hung up during a consult: the operator's and the unit's legs end
        (the consult room is no conference of the caller's, so it would go on)."""
        if self.legs is None:
            return
        legs = self.legs.get(call_id)
        if not legs:
            return
        self.legs.drop(call_id)
        for role in ("unit", "operator"):
            if legs.get(role):
                self._hang_up_quietly(legs[role])

    def _hang_up_quietly(self, sid: str) -> None:
        try:
            self._hang_up(sid)
        except TelephonyError as exc:  # it ended by itself meanwhile
            log.info("leg %s not hung up: %s", sid, exc)

    def _ends_it_on_exit(self, call_id: str, sid: str, ends: bool = True) -> None:
        """The leg alone stays with the caller: its hang-up ends the conference (or,
        ``ends`` False, a leg about to leave must not end it). Twilio updates a
        participant by the conference's SID only: the one kept, or, should that one
        have ended (the room made anew), the in-progress one Twilio lists."""
        from twilio.base.exceptions import TwilioException

        room = room_for(call_id)
        for fresh in (False, True):
            try:
                conference = live_conference_sid(self.client, self._sids(), room, fresh)
                if not conference:
                    raise TelephonyError(f"no conference in progress for {call_id}")
                self.client.conferences(conference).participants(sid).update(
                    end_conference_on_exit=ends
                )
                return
            except TwilioException as exc:
                if fresh:
                    raise TelephonyError(str(exc)) from None

    def _sids(self) -> ConferenceSids:
        legs = self._legs_of()
        return ConferenceSids(legs.redis, legs.keys)

    def who_ended(self, call_id: str, leg: str) -> str:
        """A leg of a call whose operator is in the caller's conference ended ('caller'
        or 'operator' ``leg``): who left, whichever callback comes first. The
        conference's end names the call that ended it; a conference still going after
        the operator's leg ended was left by the operator alone."""
        status, by = ended_by(self.client, self._sids(), room_for(call_id))
        if status == "completed" and by:
            return "caller" if by == call_id else "operator"
        if status == "in-progress":
            return "operator"  # the caller's leaving would have ended it
        return leg  # nothing better known: the leg that reported


def call_of_room(room: str) -> str:
    """The call whose caller's conference this is ('' for any other, a consult's)."""
    call_id = room.removeprefix("hotline-")
    return call_id if room == room_for(call_id) and len(call_id) == 34 else ""


def room_options(base_url: str, room: str) -> dict[str, str]:
    """A caller's conference is recorded from its start to its end, as the seat's
    <Dial> was, each recording noted against the call (/twilio/recording); its status
    callback (/twilio/conference) gives its SID and says who ended it. Hold music is
    never recorded, nor a consult's own conference (the operator and the unit)."""
    call_id = call_of_room(room)
    if not base_url or not call_id:
        return {}
    return {
        "record": "record-from-start",
        "recording_status_callback": f"{base_url}/twilio/recording?call={call_id}",
        "recording_status_callback_method": "POST",
        "recording_status_callback_event": "in-progress completed absent",
        "status_callback": f"{base_url}/twilio/conference?call={call_id}",
        "status_callback_method": "POST",
        "status_callback_event": "start end join leave",
    }


def participant_room_options(base_url: str, room: str) -> dict[str, Any]:
    """room_options, as the participants API names them (a participant joining
    the caller's conference by a create)."""
    options = room_options(base_url, room)
    if not options:
        return {}
    return {
        "conference_record": options["record"],
        "conference_recording_status_callback": options["recording_status_callback"],
        "conference_recording_status_callback_method": "POST",
        "conference_recording_status_callback_event": ["in-progress", "completed", "absent"],
        "conference_status_callback": options["status_callback"],
        "conference_status_callback_method": "POST",
        "conference_status_callback_event": ["start", "end", "join", "leave"],
    }


def caller_room_twiml(room: str, music_url: str, base_url: str = "") -> str:
    """The caller in their conference: music until a member who starts it joins, and
    the conference over when they leave."""
    from twilio.twiml.voice_response import Dial, VoiceResponse

    response = VoiceResponse()
    dial = Dial()
    dial.conference(
        room,
        start_conference_on_enter=False,
        end_conference_on_exit=True,
        wait_url=music_url,
        wait_method="GET",
        beep=False,
        **room_options(base_url, room),
    )
    response.append(dial)
    return str(response)


def member_twiml(room: str, ends_it: bool, base_url: str = "") -> str:
    """The operator or the unit joining a conference (starting it): the caller's is
    recorded and reports its status (room_options)."""
    from twilio.twiml.voice_response import Dial, VoiceResponse

    response = VoiceResponse()
    dial = Dial()
    dial.conference(
        room,
        start_conference_on_enter=True,
        end_conference_on_exit=ends_it,
        beep=False,
        **room_options(base_url, room),
    )
    response.append(dial)
    return str(response)


def hold_twiml(music_url: str) -> str:
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.play(music_url, loop=0)
    return str(response)


EMERGENCY_TRIES = 3  # as [hotline-transfer-out] on Asterisk
EMERGENCY_RING_S = 60


def line_twiml(
    number: str,
    caller_id: str | None = None,
    base_url: str = "",
    tries: int = 1,
    pause_s: int = 0,
) -> str:
    """The caller dialling an emergency line. With ``base_url``, a line that is busy or
    does not answer is dialled again (/twilio/emergency-dial), EMERGENCY_TRIES in all,
    rather than dropping a caller in an emergency."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    if pause_s:
        response.pause(length=pause_s)
    options: dict[str, Any] = {}
    if caller_id:
        options["caller_id"] = caller_id
    if base_url:
        options["action"] = f"{base_url}/twilio/emergency-dial?try={tries}"
        options["method"] = "POST"
        options["timeout"] = EMERGENCY_RING_S
    response.dial(number, **options)
    return str(response)


@dataclass
class Telephony:
    """Whichever mover serves the call's channel (asterisk or twilio)."""

    movers: tuple[CallMover, ...]

    def _for(self, call_id: str, channel: str) -> CallMover:
        for mover in self.movers:
            if mover.can_move(call_id, channel):
                return mover
        raise TelephonyError(f"no telephony can move {call_id} ({channel})")

    def can_move(self, call_id: str, channel: str) -> bool:
        return any(m.can_move(call_id, channel) for m in self.movers)

    def to_line(self, call_id: str, channel: str, number: str) -> None:
        self._for(call_id, channel).to_line(call_id, channel, number)

    def back_in_line(self, call_id: str, channel: str) -> None:
        self._for(call_id, channel).back_in_line(call_id, channel)

    def hold(self, call_id: str, channel: str) -> None:
        self._for(call_id, channel).hold(call_id, channel)

    def _consulting(self, call_id: str, channel: str) -> ConsultMover:
        for mover in self.movers:
            if isinstance(mover, ConsultCapable) and mover.can_consult(call_id, channel):
                return cast("ConsultMover", mover)
        raise TelephonyError(f"no telephony can consult for {call_id} ({channel})")

    def can_consult(self, call_id: str, channel: str) -> bool:
        return any(
            isinstance(m, ConsultCapable) and m.can_consult(call_id, channel) for m in self.movers
        )

    def consult_start(self, call_id: str, channel: str, seat: str, number: str) -> None:
        self._consulting(call_id, channel).consult_start(call_id, channel, seat, number)

    def consult_threeway(self, call_id: str, channel: str) -> None:
        self._consulting(call_id, channel).consult_threeway(call_id, channel)

    def consult_complete(self, call_id: str, channel: str) -> None:
        self._consulting(call_id, channel).consult_complete(call_id, channel)

    def consult_cancel(self, call_id: str, channel: str) -> None:
        self._consulting(call_id, channel).consult_cancel(call_id, channel)

    def consult_leave(self, call_id: str, channel: str) -> None:
        self._consulting(call_id, channel).consult_leave(call_id, channel)


def flow_back_in_line(handler: CallHandler, call_id: str, skill: str | None) -> None:
    """The caller's flow holds again (after the move), so a later offer moves them on
    like any waiting caller. A flow another step has moved meanwhile is left alone."""
    flow = handler.load(call_id)
    if flow is None or flow.phase != "connected":
        return
    changed = replace(flow, phase="holding", seat=None, skill=skill or flow.skill)
    handler.redis.set(handler.queue.keys.flow(call_id), changed.to_json(), ex=86400)


def seat_leg_released(record: dict[str, str], seat: str) -> bool:
    """The seat's telephony leg ended because the operator moved the caller on purpose
    (handed on, or put on hold): that end must change nothing in the queue."""
    if transferred_away(record, seat):
        return True
    return bool(record.get("held_at")) and record.get("seat") == seat


def transferred_away(record: dict[str, str], seat: str) -> bool:
    """The queue handed this call on from ``seat``: that seat's telephony leg, which
    ends with the move, must change nothing (the call is elsewhere now)."""
    if record.get("transferred_from") != seat:
        return False
    return not (record.get("state") == "on_call" and record.get("seat") == seat)


# -- the case's record of an emergency transfer (an RQ job) ----------------------------


class CaseNotYetFiled(Exception):
    """The call's case job has not run yet: this job is retried."""


def record_transfer(
    call_id: str, action: str, actor: str, mark: Callable[[Session, Case], str]
) -> str:
    """Write a transfer onto the call's case once: ``mark`` sets the case's fields and
    returns the trail's note, under ``action``. The case is made by the call's own case
    job: until it exists this job is retried."""
    from calls.casework import _context

    _, sessions = _context()
    with sessions() as session:
        case = case_for_call(session, call_id)
        if case is None:
            raise CaseNotYetFiled(call_id)
        done = session.scalar(
            select(CaseEvent.id).where(CaseEvent.case_id == case.id, CaseEvent.action == action)
        )
        if done is None:
            note = mark(session, case)
            case.updated_at = utcnow()
            session.add(
                CaseEvent(
                    case_id=case.id,
                    at=utcnow(),
                    actor=actor,
                    action=action,
                    from_status=case.status,
                    to_status=case.status,
                    note=note,
                )
            )
            session.commit()
        log.info("case %s: %s to %s recorded", case.number, action, case.transferred_to)
        return case.number


def record_emergency_transfer(call_id: str, line: str, note: str, actor: str) -> str:
    """Mark the call's case 紧急转办 (its handling, the line, a trail entry), once."""

    def mark(_: Session, case: Case) -> str:
        case.handling = EMERGENCY_HANDLING
        case.transferred_to = line
        return f"紧急转办 {line}：{note}"

    return record_transfer(call_id, "emergency-transfer", actor, mark)
