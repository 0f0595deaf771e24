"""The shell core for outbound calls, shared by the telephony adapters: it keeps an
outbound flow's state in Redis (apart from inbound flows), steps the pure flow
(ivr.outbound), reports results to the dialer, and returns the media actions.

A citizen who answers a call-back, or presses 0 on a return visit, is handed to the
inbound side: queued with priority and given an inbound flow state (its telephony's
channel, and outbound_kind saying it is ours), so the queue, the offer push, the call
controls and the operator's screen pop treat them as any caller waiting for a person."""

from __future__ import annotations

import logging
from dataclasses import replace

from calls.dialer import Dialer
from calls.handler import FLOW_TTL_S, MEDIA_ACTIONS, CallHandler
from ivr import actions as a
from ivr import events as e
from ivr import outbound
from ivr.inbound import HOLDING, FlowState
from queueing import QueueError

log = logging.getLogger("hotline.outbound")


class OutboundHandler:
    def __init__(self, calls: CallHandler, dialer: Dialer) -> None:
        self.calls, self.dialer = calls, dialer
        self.redis, self.keys = calls.redis, calls.queue.keys

    def load(self, call_id: str) -> outbound.OutboundState | None:
        raw = self.redis.get(self.keys.outbound_flow(call_id))
        if not raw:
            return None
        return outbound.OutboundState.from_json(raw.decode() if isinstance(raw, bytes) else raw)

    def _save(self, call_id: str, state: outbound.OutboundState) -> None:
        self.redis.set(self.keys.outbound_flow(call_id), state.to_json(), ex=FLOW_TTL_S)

    def begin(
        self, call_id: str, dial_id: str, channel: str
    ) -> outbound.OutboundState | None:
        """The telephony's first word about an attempt (``channel``: asterisk or
        twilio, the one that can move the citizen to a seat): its flow state, made once."""
        state = self.load(call_id)
        if state is not None:
            return state
        about = self.dialer.describe(dial_id)
        if about is None:
            return None  # not a live attempt of ours
        if about["kind"] == "return_visit":
            state = outbound.return_visit(
                str(about["case_number"] or ""),
                int(about["month"] or 0),  # type: ignore[call-overload]
                int(about["day"] or 0),  # type: ignore[call-overload]
                phone=str(about["phone"]),
                dial_id=dial_id,
            )
        else:
            state = outbound.callback(
                str(about["case_number"]) if about["case_number"] else None,
                phone=str(about["phone"]),
                dial_id=dial_id,
                origin_at=about["origin_at"],  # type: ignore[arg-type]
            )
        state = replace(state, channel=channel)
        self._save(call_id, state)
        return state

    def handle(self, call_id: str, event: e.Event) -> list[a.Action]:
        state = self.load(call_id)
        if state is None:
            return [a.HangUp()]  # nothing of ours: say nothing to a stranger
        was_handed_off = state.phase in (outbound.QUEUED, outbound.RINGING, outbound.CONNECTED)
        if was_handed_off and not isinstance(event, e.Hangup):
            return []  # the inbound side runs this call now
        new, actions = outbound.step(state, event)
        self._save(call_id, new)
        bridge: list[a.Action] = []
        for action in actions:
            if isinstance(action, a.RecordOutbound) and new.dial_id:
                self.dialer.finished(new.dial_id, action.outcome)
            elif isinstance(action, a.Enqueue):
                if self._hand_to_operator(call_id, new, action):
                    # A free seat took them in the very enqueue: no one pushes an offer
                    # made there, so they are put through now, not at a hold turn.
                    now, _ = self.calls.queue_update(call_id, event.at)
                    bridge = [x for x in now if isinstance(x, a.Bridge)]
            elif isinstance(action, a.ReleaseCall):
                self.calls.caller_gone(call_id)
        if new.phase == outbound.DONE and new.dial_id:
            self.dialer.released(new.dial_id, new.phone)
        media: list[a.Action] = [x for x in actions if isinstance(x, MEDIA_ACTIONS)]
        if bridge:
            media = [*(x for x in media if not isinstance(x, a.Hold)), *bridge]
        return media

    def _hand_to_operator(
        self, call_id: str, state: outbound.OutboundState, action: a.Enqueue
    ) -> bool:
        """Queue the citizen as a caller; whether a seat was offered them at once."""
        inbound = FlowState(
            phase=HOLDING,
            caller=state.phone,
            # The telephony's own name: the offer push and the call controls move the
            # citizen as any caller of theirs (not a hold-loop turn later).
            channel=state.channel or "phone",
            outbound_kind=state.kind,
            priority=action.priority,
            skill=action.skill,
            callback_of=state.origin_at,
        )
        self.redis.set(self.keys.flow(call_id), inbound.to_json(), ex=FLOW_TTL_S)
        try:
            queued = self.calls.queue.enqueue(
                call_id, skill=action.skill, priority=action.priority, caller=state.phone
            )
        except QueueError:
            log.exception("callback %s could not be queued with priority; queued plainly", call_id)
            queued = self.calls.queue.enqueue(call_id, caller=state.phone)
        return any(offer.call_id == call_id for offer in queued.offers)
