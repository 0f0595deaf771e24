"""Twilio's side of the outbound calls (return visits and call-backs): the webhook when
the citizen's phone is answered (with Twilio's answering-machine detection), the key
they press, and the final status. The dialer places the calls (TwilioOriginator)."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Response, abort, request
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from ivr import events as e
from queueing.keys import check_id
from web.context import services
from web.twilio.hooks import bp, call_sid, digits, field, signed, twiml
from web.twilio.twiml import render_actions

log = logging.getLogger("hotline.twilio.outbound")

# Twilio's AnsweredBy -> the flow's answered_by.
ANSWERED_BY = {
    "human": "human",
    "machine_start": "machine",
    "machine_end_beep": "machine",
    "machine_end_silence": "machine",
    "machine_end_other": "machine",
    "fax": "fax",
}
# Final call statuses that never reached anyone -> the flow's failure reasons.
NOT_REACHED = {"busy": "busy", "no-answer": "no-answer", "failed": "failed", "canceled": "failed"}


def dial_id() -> str:
    try:
        return check_id("call", request.args.get("call", ""))
    except ValueError:
        abort(400, description="call missing or malformed")


def outbound_twiml(actions: list[Any], sid: str) -> Response:
    svc = services()
    if not actions:
        response = VoiceResponse()
        response.hangup()
        return twiml(response)
    return twiml(
        render_actions(
            actions, svc.settings.twiml, sid, in_queue=False, gather_path="/twilio/outbound/input"
        )
    )


@bp.post("/outbound/<kind>")
@signed
def outbound_answered(kind: str) -> Response:
    """The citizen's phone was answered (by someone or something)."""
    if kind not in ("return_visit", "callback"):
        abort(404)
    sid, attempt = call_sid(), dial_id()
    svc = services()
    if svc.outbound is None or svc.outbound.begin(sid, attempt, "twilio") is None:
        response = VoiceResponse()
        response.hangup()  # not a live attempt of ours: say nothing
        return twiml(response)
    answered_by = ANSWERED_BY.get(field("AnsweredBy", 32), "unknown")
    actions = svc.outbound.handle(sid, e.OutboundAnswered(answered_by, at=time.time()))
    return outbound_twiml(actions, sid)


@bp.post("/outbound/input")
@signed
def outbound_input() -> Response:
    sid = call_sid()
    svc = services()
    pressed = digits()
    event = e.Digits(pressed, at=time.time()) if pressed else e.InputTimeout(at=time.time())
    actions = svc.outbound.handle(sid, event) if svc.outbound is not None else []
    return outbound_twiml(actions, sid)


@bp.post("/outbound/status")
@signed
def outbound_status() -> Response:
    """The call's final status: never reached (busy, no answer, failed), or over."""
    sid, attempt = call_sid(), dial_id()
    svc = services()
    if svc.outbound is None:
        return Response(status=204)
    status = field("CallStatus", 32)
    if status in NOT_REACHED:
        if svc.outbound.begin(sid, attempt, "twilio") is not None:
            svc.outbound.handle(sid, e.OutboundFailed(NOT_REACHED[status], at=time.time()))
    elif status == "completed":
        svc.outbound.handle(sid, e.Hangup(at=time.time()))
    return Response(status=204)


class TwilioOriginator:
    """Places the dialer's calls with Twilio's REST API (calls.create)."""

    def __init__(
        self, client: Client, from_number: str, public_base_url: str, ring_timeout_s: int = 30
    ) -> None:
        self.client, self.from_number = client, from_number
        self.base = public_base_url.rstrip("/")
        self.ring_timeout_s = ring_timeout_s

    def originate(self, call_id: str, phone: str, kind: str) -> None:
        self.client.calls.create(
            to=phone,
            from_=self.from_number,
            url=f"{self.base}/twilio/outbound/{kind}?call={call_id}",
            method="POST",
            status_callback=f"{self.base}/twilio/outbound/status?call={call_id}",
            status_callback_method="POST",
            status_callback_event=["completed"],
            timeout=self.ring_timeout_s,
            machine_detection="Enable",  # AnsweredBy: a machine hears nothing
            # The return visit is recorded (its opening says so); the callback links
            # the recording to the call (its CallSid) and the case the visit is about.
            record=True,
            recording_status_callback=f"{self.base}/twilio/recording",
            recording_status_callback_method="POST",
            recording_status_callback_event=["in-progress", "completed", "absent"],
        )
