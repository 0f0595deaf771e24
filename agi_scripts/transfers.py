"""The Asterisk half of calls.transfers: the caller's channel (the inbound AGI kept its
name) moved by AMI Redirect into [hotline-transfer-out] (an emergency line through the
trunk), [hotline-bridge] (the bridge's AGI rings the seat the queue has for the call,
or holds) or [hotline-on-hold] (music). See docker/asterisk/extensions.conf.

A consult (calls.consult) moves three legs with ConfBridge: one Redirect takes the
caller into [hotline-consult-caller] (their room, music while alone) and the operator's
channel into [hotline-consult-operator], which Dials the unit's duty phone; the unit's
channel (the operator's BRIDGEPEER) is redirected into [hotline-consult-join], the
caller's room, for a three-way call or a completed transfer; on cancel the operator's
own channel goes there. The operator's channel is kept (ConsultLegs) so that a later
hold or transfer hangs it up rather than leave it alone in the room."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from agi_scripts.ami import AmiConnection, AmiError
from calls import CallHandler
from calls.consult import ConsultLegs, operator_left, unit_left
from calls.transfers import TelephonyError, national, room_for
from queueing.keys import check_id

if TYPE_CHECKING:
    from agi_scripts.sessions import Session


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
        # A bridge forms within milliseconds of the answer, seconds on a loaded box; a
        # unit still ringing is refused after this long (a web request waits for it).
        self.bridge_settle_s = 3.0
        self.legs = ConsultLegs(handler.redis, handler.queue.keys)

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
        self._leave_room(call_id)
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
        self._leave_room(call_id)
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
        self._leave_room(call_id)
        self._act(
            {
                "Action": "Redirect",
                "Channel": self._channel(call_id),
                "Context": "hotline-on-hold",
                "Exten": "s",
                "Priority": "1",
            }
        )

    # -- consult transfer and three-way call (calls.consult) ----------------------------

    def can_consult(self, call_id: str, channel: str) -> bool:
        return self.can_move(call_id, channel)

    def _getvar(self, channel: str, name: str) -> str:
        try:
            reply = self._client().action(
                {"Action": "Getvar", "Channel": channel, "Variable": name}
            )
        except AmiError as exc:
            raise TelephonyError(str(exc)) from None
        if reply.get("Response") != "Success":
            raise TelephonyError(f"Getvar {name} refused: {reply.get('Message', '')}")
        return str(reply.get("Value") or "").strip()

    def _setvar(self, channel: str, name: str, value: str) -> None:
        self._act({"Action": "Setvar", "Channel": channel, "Variable": name, "Value": value})

    def _redirect(
        self, channel: str, context: str, extra_channel: str = "", extra_context: str = ""
    ) -> None:
        fields: dict[str, object] = {
            "Action": "Redirect",
            "Channel": channel,
            "Context": context,
            "Exten": "s",
            "Priority": "1",
        }
        if extra_channel:
            fields.update(
                {
                    "ExtraChannel": extra_channel,
                    "ExtraContext": extra_context,
                    "ExtraExten": "s",
                    "ExtraPriority": "1",
                }
            )
        self._act(fields)

    def _hangup(self, channel: str) -> None:
        try:
            reply = self._client().action({"Action": "Hangup", "Channel": channel})
        except AmiError as exc:
            raise TelephonyError(str(exc)) from None
        if reply.get("Response") != "Success" and "No such channel" not in str(
            reply.get("Message", "")
        ):
            raise TelephonyError(f"Hangup refused: {reply.get('Message', '')}")

    def _leave_room(self, call_id: str) -> None:
        """Before the caller moves on from a room the operator is in (after a cancelled
        consult), the operator's channel there is hung up."""
        operator = self.legs.get(call_id).get("operator")
        if operator:
            self.legs.drop(call_id)
            self._hangup(operator)

    def _operator(self, call_id: str) -> str:
        operator = self.legs.get(call_id).get("operator")
        if not operator:
            raise TelephonyError(f"no consult known for {call_id}")
        return operator

    def _unit(self, call_id: str) -> str:
        unit = self._bridge_peer(self._operator(call_id))
        if not unit:
            raise TelephonyError("the unit has not answered")
        return unit

    def _bridge_peer(self, channel: str) -> str:
        """The channel bridged with this one. A leg is up (and the queue marks a call
        on_call in the pick-up Gosub, Dial option U) before Asterisk forms the bridge,
        so a step pressed at once may find no peer yet: a few retries."""
        deadline = time.monotonic() + self.bridge_settle_s
        while True:
            peer = self._getvar(channel, "BRIDGEPEER")
            if peer or time.monotonic() >= deadline:
                return peer
            time.sleep(0.2)

    def consult_start(self, call_id: str, channel: str, seat: str, number: str) -> None:
        caller, room = self._channel(call_id), room_for(call_id)
        # After a cancelled consult the operator is in the caller's room, not bridged.
        in_room = self.legs.get(call_id).get("operator", "")
        operator = in_room or self._bridge_peer(caller)
        if not operator:
            raise TelephonyError("the caller is not with the operator")
        self._setvar(caller, "HOTLINE_CONSULT_ROOM", room)
        # The caller's hang-up ends the operator's leg too, and the unit's with it.
        self._setvar(caller, "HOTLINE_CONSULT_OPERATOR", operator)
        self._setvar(operator, "HOTLINE_CONSULT_ROOM", room)
        self._setvar(operator, "HOTLINE_CONSULT_DONE", "")
        dial = self.dial_pattern.format(number=national(number))
        self._setvar(operator, "HOTLINE_CONSULT_DIAL", dial)
        self.legs.save(call_id, operator=operator)
        if in_room:
            # The caller stays in their room: moved out and back at once, they could
            # rejoin it before the operator left it and be let go with them.
            self._setvar(caller, "HOTLINE_CONSULT_AGAIN", "1")
            try:
                self._redirect(operator, "hotline-consult-operator")
            except TelephonyError:
                self._setvar(caller, "HOTLINE_CONSULT_AGAIN", "")
                raise
            return
        self._redirect(
            caller,
            "hotline-consult-caller",
            extra_channel=operator,
            extra_context="hotline-consult-operator",
        )

    def _unit_joins(self, call_id: str, operator_stays: bool) -> None:
        operator, unit = self._operator(call_id), self._unit(call_id)
        self._setvar(unit, "HOTLINE_CONSULT_ROOM", room_for(call_id))
        if operator_stays:
            # Its hang-up in the three-way call is then told from the operator's
            # (consult_left), and from one that follows the caller's.
            self.legs.save(call_id, unit=unit)
            self._setvar(self._channel(call_id), "HOTLINE_CONSULT_UNIT", unit)
        # The operator's Dial returns when the unit leaves it: to the room, or hang up;
        # either way not a unit that went (consult_unit_gone).
        self._setvar(operator, "HOTLINE_CONSULT_DONE", "threeway" if operator_stays else "1")
        self._redirect(unit, "hotline-consult-join")

    def consult_threeway(self, call_id: str, channel: str) -> None:
        self._unit_joins(call_id, operator_stays=True)

    def consult_complete(self, call_id: str, channel: str) -> None:
        self._unit_joins(call_id, operator_stays=False)
        self.legs.drop(call_id)

    def consult_cancel(self, call_id: str, channel: str) -> None:
        # The operator's own channel goes to the caller's room: the unit's leg, ringing
        # or talking, ends with the Dial it leaves.
        self._redirect(self._operator(call_id), "hotline-consult-join")

    def consult_leave(self, call_id: str, channel: str) -> None:
        operator = self._operator(call_id)
        self.legs.drop(call_id)
        self._hangup(operator)


log = logging.getLogger("hotline.transfers")


def _consulted_call(session: Session) -> str:
    """The call whose room is the route's argument ('' for a room that is not ours)."""
    room = session.agi.var("agi_arg_1")
    call = room.removeprefix(room_for(""))
    if not call or call == room:
        return ""
    try:
        check_id("call", call)
    except ValueError:
        log.warning("consult route with a bad room %r", room[:80])
        return ""
    return call


def consult_unit_gone(session: Session) -> None:
    """The AGI route of the operator's leg whose Dial of the unit ended with no desk
    step (the unit hung up, was busy or never answered); argument: the caller's room.
    The operator joins the caller next (the dialplan); the queue hears the consult is
    over (calls.consult.unit_left)."""
    call = _consulted_call(session)
    legs = ConsultLegs(session.handler.redis, session.handler.queue.keys)
    if not call or legs.get(call).get("operator") != session.agi.var("agi_channel"):
        return
    if unit_left(session.handler, legs, call) != "none":
        log.info("the unit of %s left the consult: the operator is back", call)


def consult_left(session: Session) -> None:
    """The AGI route of the h extension of a consult's member leg (the operator's, or
    the unit's), which hung up on its own; argument: the caller's room. When it was
    the operator's, their part ends (calls.consult.operator_left); a caller left alone
    in the room is then let go of by the dialplan, back in line. When it was the unit's
    in a three-way call, operator and caller talk on (calls.consult.unit_left)."""
    call = _consulted_call(session)
    if not call:
        return
    legs = ConsultLegs(session.handler.redis, session.handler.queue.keys)
    leg = session.agi.var("agi_channel")
    if leg and legs.get(call).get("unit") == leg:
        if unit_left(session.handler, legs, call) != "none":
            log.info("the unit of %s left the three-way call", call)
        return
    done = operator_left(session.handler, legs, call, leg)
    if done != "none":
        log.info("the operator of %s hung up during a consult: %s", call, done)
