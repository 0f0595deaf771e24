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
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import select

from calls.handler import CallHandler
from cases.models import CaseEvent
from cases.service import case_for_call, utcnow

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
    ) -> None:
        self.client = client
        self.base_url = public_base_url.rstrip("/")
        self.caller_id = caller_id
        self.hold_music_url = hold_music_url or self.base_url + "/twilio/hold.wav"

    def can_move(self, call_id: str, channel: str) -> bool:
        return channel == "twilio"

    def _update(self, call_id: str, **fields: str) -> None:
        from twilio.base.exceptions import TwilioException

        try:
            self.client.calls(call_id).update(**fields)
        except TwilioException as exc:
            raise TelephonyError(str(exc)) from None

    def to_line(self, call_id: str, channel: str, number: str) -> None:
        self._update(call_id, twiml=line_twiml(number, self.caller_id))

    def back_in_line(self, call_id: str, channel: str) -> None:
        self._update(call_id, url=self.base_url + "/twilio/offered", method="POST")

    def hold(self, call_id: str, channel: str) -> None:
        # Music until resumed: /twilio/offered then dials the seat the call still holds.
        self._update(call_id, twiml=hold_twiml(self.hold_music_url))


def hold_twiml(music_url: str) -> str:
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.play(music_url, loop=0)
    return str(response)


def line_twiml(number: str, caller_id: str | None = None) -> str:
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    if caller_id:
        response.dial(number, caller_id=caller_id)
    else:
        response.dial(number)
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


def record_emergency_transfer(call_id: str, line: str, note: str, actor: str) -> str:
    """Mark the call's case 紧急转办 (its handling, the line, a trail entry), once. The
    case is made by the call's own case job: until it exists this job is retried."""
    from calls.casework import _context

    _, sessions = _context()
    with sessions() as session:
        case = case_for_call(session, call_id)
        if case is None:
            raise CaseNotYetFiled(call_id)
        done = session.scalar(
            select(CaseEvent.id).where(
                CaseEvent.case_id == case.id, CaseEvent.action == "emergency-transfer"
            )
        )
        if done is None:
            case.handling = EMERGENCY_HANDLING
            case.transferred_to = line
            case.updated_at = utcnow()
            session.add(
                CaseEvent(
                    case_id=case.id,
                    at=utcnow(),
                    actor=actor,
                    action="emergency-transfer",
                    from_status=case.status,
                    to_status=case.status,
                    note=f"紧急转办 {line}：{note}",
                )
            )
            session.commit()
        log.info("case %s: emergency transfer to %s recorded", case.number, line)
        return case.number
