"""Moving a connected call: a blind transfer to an emergency line (紧急转办), or back
in line for another skill or a named seat, on Asterisk and on Twilio.

The desk (calls.desk) checks who may act and records the queue's transition first
(queueing/lua/transfer.lua): the call's record then says it left the operator's seat,
so the telephony leg that ends when the caller is moved changes nothing in the queue.
Only then is the caller moved:

- Asterisk: AMI Redirect of the caller's channel (the inbound AGI kept its name) into
  [hotline-transfer-out], which Dials the line through the trunk, or into
  [hotline-bridge], whose AGI dials the seat the queue offered, or holds.
- Twilio: the live call is updated (REST) with a <Dial> to the line, or redirected to
  /twilio/offered, which dials the offered seat or holds.

The operator's leg ends with the caller's move, and the seat goes to wrap-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from calls.handler import CallHandler
from cases.models import CaseEvent
from cases.service import case_for_call, utcnow

if TYPE_CHECKING:
    from agi_scripts.ami import AmiConnection

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


class AsteriskMover:
    def __init__(
        self,
        handler: CallHandler,
        ami: AmiConnection | Callable[[], AmiConnection],
        dial_pattern: str = "PJSIP/{number}@trunk",
    ) -> None:
        self.handler = handler
        self._ami = ami
        self.dial_pattern = dial_pattern
        self.settle_s = 5.0

    def _client(self) -> AmiConnection:
        return self._ami() if callable(self._ami) else self._ami

    def _channel(self, call_id: str) -> str:
        raw = self.handler.redis.get(self.handler.queue.keys.channel(call_id))
        if not raw:
            raise TelephonyError(f"no channel known for {call_id}")
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def can_move(self, call_id: str, channel: str) -> bool:
        return channel == "asterisk" and bool(
            self.handler.redis.exists(self.handler.queue.keys.channel(call_id))
        )

    def _act(self, fields: dict[str, object]) -> None:
        from agi_scripts.ami import AmiError

        # A caller moved a moment ago is "not up" to Redirect until the AGI session that
        # the move ended has returned (the redirect's pending goto): a few retries.
        deadline = time.monotonic() + self.settle_s
        while True:
            try:
                reply = self._client().action(fields)
            except AmiError as exc:
                raise TelephonyError(str(exc)) from None
            if reply.get("Response") == "Success":
                return
            message = str(reply.get("Message", ""))
            if "not up" not in message or time.monotonic() >= deadline:
                raise TelephonyError(f"{fields['Action']} refused: {message}")
            time.sleep(0.2)

    def to_line(self, call_id: str, channel: str, number: str) -> None:
        name = self._channel(call_id)
        dial = self.dial_pattern.format(number=national(number))
        self._act(
            {
                "Action": "Setvar",
                "Channel": name,
                "Variable": "HOTLINE_TRANSFER_DIAL",
                "Value": dial,
            }
        )
        self._act(
            {
                "Action": "Redirect",
                "Channel": name,
                "Context": "hotline-transfer-out",
                "Exten": "s",
                "Priority": "1",
            }
        )

    def back_in_line(self, call_id: str, channel: str) -> None:
        # The bridge's AGI dials the seat the queue offered, or sends the caller to hold.
        self._act(
            {
                "Action": "Redirect",
                "Channel": self._channel(call_id),
                "Context": "hotline-bridge",
                "Exten": "s",
                "Priority": "1",
            }
        )

    def hold(self, call_id: str, channel: str) -> None:
        # Music in [hotline-on-hold]; the operator's leg ends, and resuming is
        # back_in_line: the bridge's AGI rings the seat the call still holds.
        self._act(
            {
                "Action": "Redirect",
                "Channel": self._channel(call_id),
                "Context": "hotline-on-hold",
                "Exten": "s",
                "Priority": "1",
            }
        )


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


def telephony_from_settings(settings: Any, handler: CallHandler) -> Telephony:
    """The movers a process can use, from hotline.config.Settings: AMI when
    ASTERISK_AMI_HOST is set, Twilio's REST API when its account is."""
    movers: list[CallMover] = []
    if settings.ami_host and settings.ami_secret:
        from agi_scripts.ami import AmiConnection

        ami = AmiConnection(
            settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret
        )
        movers.append(AsteriskMover(handler, ami, settings.asterisk_outbound_dial))
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.public_base_url:
        from twilio.rest import Client

        client = Client(settings.twilio_account_sid, settings.twilio_auth_token)
        if settings.twilio_api_base_url:
            client.api.base_url = settings.twilio_api_base_url.rstrip("/")
        movers.append(
            TwilioMover(
                client,
                settings.public_base_url,
                settings.twilio_caller_id,
                settings.twilio_hold_music_url,
            )
        )
    return Telephony(tuple(movers))


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
