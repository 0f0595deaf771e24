"""Listening in on Twilio (calls.listening.TwilioListener): the listener the wallboard
uses for Twilio calls, and the supervisor's leg's status callback that ends a session
and audits how long it lasted."""

from __future__ import annotations

import re

from flask import abort, request
from rq import Retry

from calls.listening import (
    SESSION_ID,
    Listener,
    ListenSessions,
    TwilioListener,
    end_listening,
)
from web.context import services
from web.twilio.hooks import TERMINAL, bp, field, signed, twilio_mover

SECONDS = re.compile(r"\d{1,7}\Z")


def twilio_listener() -> TwilioListener | None:
    """Twilio's listener when its REST API is configured (the movers' client)."""
    mover = twilio_mover()
    if mover is None:
        return None
    svc = services()

    def channel_of(call_id: str) -> str:
        flow = svc.handler.load(call_id)
        return flow.channel if flow is not None else ""

    return TwilioListener(
        mover.client,
        svc.queue,
        mover.base_url,
        mover.caller_id,
        svc.settings.twiml.seat_dial,
        channel_of=channel_of,
    )


def end_listening_on(call_id: str) -> None:
    """The operator or the caller left: supervisors on the call leave too."""
    mover = twilio_mover()
    if mover is not None:
        queue = services().queue
        end_listening(mover.client, ListenSessions(queue.redis, queue.keys), call_id)


@bp.post("/listen-leg")
@signed
def listen_leg() -> tuple[str, int]:
    """The supervisor's leg ended (hung up, or never answered): the session is over,
    and its length (CallDuration, 0 unanswered) joins the audit, once."""
    session_id = request.args.get("session", "")
    if not SESSION_ID.match(session_id):
        abort(400, description="session missing or malformed")
    if field("CallStatus", 16) not in TERMINAL:
        return "", 204
    queue = services().queue
    session = ListenSessions(queue.redis, queue.keys).end(session_id)
    if not session:
        return "", 204  # a repeat, or not ours
    raw = field("CallDuration", 8)
    seconds = int(raw) if SECONDS.match(raw) else 0
    services().jobs.enqueue(
        "calls.listening.listen_ended",
        session_id,
        session.get("who", ""),
        session.get("seat", ""),
        seconds,
        retry=Retry(max=5, interval=[1, 3, 10, 30, 60]),
    )
    return "", 204


class TwilioFirst:
    """Twilio's listener for the seat's call when that call came by Twilio, the other
    telephony's (Asterisk's) otherwise."""

    def __init__(self, twilio: TwilioListener, other: Listener) -> None:
        self.twilio, self.other = twilio, other

    def listen(self, session_id: str, who: str, seat: str, phone: str, mode: str) -> str | None:
        call_id = self.twilio.queue.seat(seat).get("call", "")
        if call_id and self.twilio.can_listen(call_id):
            return self.twilio.listen(session_id, who, seat, phone, mode)
        return self.other.listen(session_id, who, seat, phone, mode)


def with_twilio(other: Listener) -> Listener:
    """``other``, with Twilio's listener before it when Twilio is configured."""
    found = twilio_listener()
    return other if found is None else TwilioFirst(found, other)
