"""Outbound call flows, as pure logic: the return visit (回访) after a case is resolved,
and the call-back of a missed call or a callback request.

Like the inbound flow: ``step(state, event) -> (state, actions)``, a small serializable
state, no I/O. The dialer decides whom to call and when (and whether to try again);
these flows decide what happens on the line once it is placed.

Elderly-first: slow, plain sentences, one question, no second menu. A machine or a
carrier announcement is not a citizen: nothing is said to it. Silence repeats the
question once, then ends politely as "no response".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from ivr import actions as a
from ivr import events as e

DIALING, ASKING, QUEUED, RINGING, CONNECTED, DONE = (
    "dialing",
    "asking",
    "queued",
    "ringing",
    "connected",
    "done",
)
KINDS = ("return_visit", "callback")
QUESTION_TIMEOUT_S = 8.0  # elderly callers: time to find the key
CALLBACK_PRIORITY = "repeat"  # ahead of first-time callers, behind the vulnerable


@dataclass(frozen=True)
class OutboundState:
    kind: str
    phase: str = DIALING
    case_number: str | None = None
    month: int | None = None  # when the citizen raised the matter (return visit)
    day: int | None = None
    asks: int = 0
    pressed: str = ""
    seat: str | None = None
    outcome: str | None = None
    phone: str = ""  # the citizen called, E.164
    dial_id: str | None = None  # the dialer's attempt this call is
    origin_at: float | None = None  # a call-back: when the citizen called us (epoch s)
    channel: str = ""  # the telephony that placed it: asterisk | twilio

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> OutboundState:
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


Step = tuple[OutboundState, tuple[a.Action, ...]]


def return_visit(
    case_number: str, month: int, day: int, phone: str = "", dial_id: str | None = None
) -> OutboundState:
    return OutboundState(
        "return_visit", case_number=case_number, month=month, day=day, phone=phone, dial_id=dial_id
    )


def callback(
    case_number: str | None = None,
    phone: str = "",
    dial_id: str | None = None,
    origin_at: float | None = None,
) -> OutboundState:
    return OutboundState(
        "callback", case_number=case_number, phone=phone, dial_id=dial_id, origin_at=origin_at
    )


def _ask(state: OutboundState, intro: bool) -> Step:
    question = a.Gather("visit_question", "120", timeout_s=QUESTION_TIMEOUT_S)
    if intro:
        hello = a.Play("visit_intro", {"month": state.month, "day": state.day})
        return replace(state, phase=ASKING, asks=1), (hello, question)
    return replace(state, phase=ASKING, asks=state.asks + 1), (question,)


def _end(state: OutboundState, outcome: str, prompt: str | None) -> Step:
    said = (a.Play(prompt),) if prompt else ()
    return replace(state, phase=DONE, outcome=outcome), (
        *said,
        a.HangUp(),
        a.RecordOutbound(outcome),
    )


def _to_operator(state: OutboundState, outcome: str, prompt: str) -> Step:
    return replace(state, phase=QUEUED, outcome=outcome), (
        a.Play(prompt),
        a.Enqueue(CALLBACK_PRIORITY, "mandarin"),
        a.Hold(),
        a.RecordOutbound(outcome),
    )


def step(state: OutboundState, event: e.Event) -> Step:
    if state.phase == DONE:
        return state, ((a.ReleaseCall(),) if isinstance(event, e.Hangup) else ())

    if state.phase == DIALING:
        if isinstance(event, e.OutboundFailed):
            return replace(state, phase=DONE, outcome=event.reason), (
                a.RecordOutbound(event.reason),
            )
        if isinstance(event, e.Hangup):  # the far end went away before anything was said
            return replace(state, phase=DONE, outcome="no-answer"), (a.RecordOutbound("no-answer"),)
        if isinstance(event, e.OutboundAnswered):
            if event.answered_by in ("machine", "fax"):
                # Leave no message: hang up, and the dialer tries again later.
                return replace(state, phase=DONE, outcome="machine"), (
                    a.HangUp(),
                    a.RecordOutbound("machine"),
                )
            if state.kind == "callback":
                return _to_operator(state, "connected", "callback_intro")
            return _ask(state, intro=True)
        return state, ()

    if state.phase == ASKING:
        if isinstance(event, e.Hangup):
            return replace(state, phase=DONE, outcome="no_response"), (
                a.RecordOutbound("no_response"),
            )
        if isinstance(event, e.Digits):
            key = event.digits[:1]
            state = replace(state, pressed=(state.pressed + event.digits)[-8:])
            if key == "1":
                return _end(state, "satisfied", "visit_thanks")
            if key == "2":
                return _end(state, "unsatisfied", "visit_sorry")
            if key == "0":
                return _to_operator(state, "transfer", "visit_transfer")
        if isinstance(event, e.Digits | e.InputTimeout):
            if state.asks < 2:
                return _ask(state, intro=False)
            return _end(state, "no_response", "visit_goodbye")
        return state, ()

    # Waiting for, ringing or talking to an operator (callback, or 0 on a return visit).
    if isinstance(event, e.Hangup):
        return replace(state, phase=DONE), (a.ReleaseCall(),)
    if isinstance(event, e.SeatOffered):
        if state.phase in (RINGING, CONNECTED):
            return state, ()
        return replace(state, phase=RINGING, seat=event.seat), (a.Bridge(event.seat),)
    if isinstance(event, e.SeatConnected):
        return replace(state, phase=CONNECTED, seat=event.seat), ()
    if isinstance(event, e.SeatNoAnswer) and state.phase == RINGING:
        return replace(state, phase=QUEUED, seat=None), (a.Hold(),)
    return state, ()
