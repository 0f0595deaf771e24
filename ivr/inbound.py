"""The inbound citizen flow, elderly first.

- The caller is queued the moment the call starts: silence reaches a person and costs
  no time. Registered vulnerable callers hear nothing but music before the operator,
  unless they are still waiting after DIALECT_OFFER_AFTER_S: then, once, the one
  sentence 讲海南话请按1 (they skip the language menu, and must not lose Hainanese).
- One optional choice, language, spoken once and repeated once while the caller
  already holds their place. An invalid key or a second silence ends the menu; the
  caller simply stays in line for Mandarin. There is no second menu level.
- A caller with an open case hears its number and status in one sentence, then once
  讲海南话请按1, and waits with priority for the operator who took it (sticky), then
  anyone. A dialect chosen then changes the seats, not the place or the priority.
- While holding, 1 chooses Hainanese at any moment (a telephony that hears keys in its
  hold music: Asterisk's hold loop), unless a callback was offered (1 meant that).
- Holding: music; position and estimated wait at most every ANNOUNCE_EVERY_S, only
  when the position improved. Past CALLBACK_AFTER_S of estimated wait, or when no
  operator is logged in for the moment, offer a callback once; the caller keeps
  waiting otherwise. Only a closed centre (configured) turns a caller away, saying so
  and recording a callback.
- A hang-up always releases the queue's record, whatever the flow knew; an event for a
  call that never started never invents one, except the caller's own input (they are
  on the line: the safest thing is a person).
- A seat that does not answer changes nothing the caller hears but the music.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

from ivr import actions as a
from ivr import events as e

ANNOUNCE_EVERY_S = 45.0
CALLBACK_AFTER_S = 180.0  # estimated wait that makes a callback worth offering
MENU_TIMEOUT_S = 5.0
DIALECT_OFFER_AFTER_S = 10.0  # a registered elder answered sooner hears nothing at all
CALLBACK_TIMEOUT_S = 6.0
LANGUAGE_KEYS = {"1": "hainanese", "2": "english"}

# Phases
STARTING = "starting"
MENU = "menu"  # queued, language choice playing
DIALECT_OFFER = "dialect_offer"  # queued, the once-only 讲海南话请按1 playing
HOLDING = "holding"
CALLBACK_OFFER = "callback_offer"  # queued, callback choice playing
RINGING = "ringing"  # a seat is being dialled
CONNECTED = "connected"
DONE = "done"


@dataclass(frozen=True)
class FlowState:
    phase: str = STARTING
    caller: str = ""
    dialed: str = ""
    channel: str = "phone"
    priority: str = "normal"
    skill: str = "mandarin"
    sticky_seat: str | None = None
    hotline: str | None = None  # dialed legacy hotline name
    category_code: str | None = None
    department_code: str | None = None
    menu_plays: int = 0
    announced_position: int | None = None
    announced_at: float | None = None
    callback_offered: bool = False
    dialect_offered: bool = False  # the once-only dialect offer (menu skippers)
    started_at: float | None = None
    seat: str | None = None
    outcome: str | None = None  # connected | completed | abandoned | callback
    pressed: str = ""  # the keys the caller pressed, last 8, for the operator's screen
    callback_of: float | None = None  # a call-back: when the citizen first called (epoch s)
    # A citizen handed to the queue from our own call (return_visit | callback).
    outbound_kind: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> FlowState:
        data = json.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


Step = tuple[FlowState, tuple[a.Action, ...]]


def _menu(state: FlowState) -> Step:
    return (
        replace(state, phase=MENU, menu_plays=state.menu_plays + 1),
        (a.Gather("language_menu", valid_digits="12", timeout_s=MENU_TIMEOUT_S),),
    )


def _hold(state: FlowState) -> Step:
    return replace(state, phase=HOLDING), (a.Hold(),)


def _dialect_offer(state: FlowState) -> Step:
    return (
        replace(state, phase=DIALECT_OFFER, dialect_offered=True),
        (a.Gather("dialect_offer", valid_digits="1", timeout_s=MENU_TIMEOUT_S),),
    )


def _choose_language(state: FlowState, skill: str) -> Step:
    """Same place in line (and priority, and any sticky operator), other seats."""
    held = _hold(replace(state, skill=skill, dialect_offered=True))
    return held[0], (a.ChangeSkill(skill), a.Play("language_chosen"), *held[1])


def start(event: e.CallStarted) -> Step:
    state = FlowState(
        caller=event.caller, dialed=event.dialed, channel=event.channel, started_at=event.at
    )
    if event.hotline:
        state = replace(
            state,
            hotline=event.hotline.name,
            category_code=event.hotline.category_code,
            department_code=event.hotline.department_code,
        )
    if event.closed:
        return (
            replace(state, phase=DONE, outcome="callback"),
            (a.Play("no_operators"), a.RequestCallback("closed"), a.HangUp()),
        )
    if event.vulnerable:
        state = replace(state, priority="vulnerable")
        return replace(state, phase=HOLDING), (a.Enqueue("vulnerable", state.skill), a.Hold())
    if event.open_case:
        case = event.open_case
        state = replace(state, priority="repeat", skill=case.skill, sticky_seat=case.operator_seat)
        queued = (
            a.Enqueue("repeat", state.skill, sticky_seat=case.operator_seat),
            a.Play("case_status", {"case_number": case.number, "status": case.status}),
        )
        if state.skill != "mandarin":  # their case was taken in a dialect: keep it
            return replace(state, phase=HOLDING), (*queued, a.Hold())
        state, offer = _dialect_offer(state)
        return state, (*queued, *offer)
    state, menu = _menu(state)
    return state, (a.Enqueue("normal", state.skill), a.Play("greeting"), *menu)


def _queue_update(state: FlowState, event: e.QueueUpdate) -> Step:
    if state.priority == "vulnerable":
        # Registered vulnerable callers hear only music until a person, but for one
        # sentence if they are still waiting: their only way to a Hainanese seat.
        waited = event.at - (state.started_at if state.started_at is not None else event.at)
        if (
            not state.dialect_offered
            and state.skill == "mandarin"
            and event.position > 0
            and waited >= DIALECT_OFFER_AFTER_S
        ):
            return _dialect_offer(state)
        return state, ()
    wait = event.estimated_wait_s
    # Nobody is logged in for the moment (a lapse, a shift change): the caller keeps
    # their place, and may choose a callback instead of an unknown wait.
    unknown_wait = event.staffed_seats == 0 or wait is None
    long_wait = wait is not None and wait >= CALLBACK_AFTER_S
    if not state.callback_offered and (unknown_wait or long_wait):
        return (
            replace(state, phase=CALLBACK_OFFER, callback_offered=True),
            (a.Gather("callback_offer", valid_digits="1", timeout_s=CALLBACK_TIMEOUT_S),),
        )
    due = state.announced_at is None or event.at - state.announced_at >= ANNOUNCE_EVERY_S
    improved = state.announced_position is None or event.position < state.announced_position
    if not (due and improved and event.position > 0):
        return state, ()
    announced = replace(state, announced_position=event.position, announced_at=event.at)
    if event.position == 1:
        return announced, (a.Play("queue_next"), a.Hold())
    minutes = max(1, math.ceil((wait or 0) / 60))
    return announced, (
        a.Play("queue_position", {"position": event.position - 1, "minutes": minutes}),
        a.Hold(),
    )


def step(state: FlowState | None, event: e.Event) -> Step:
    """Advance the flow by one event. ``state`` is None before the call starts."""
    if isinstance(event, e.CallStarted):
        return start(event)
    if state is None:
        if isinstance(event, e.Hangup):
            # A call we never saw start (a status callback of another call, a hang-up
            # racing the first webhook): end whatever the queue has, invent nothing.
            return FlowState(phase=DONE, outcome="abandoned"), (a.ReleaseCall(),)
        if not isinstance(event, e.Digits | e.InputTimeout):
            return FlowState(phase=DONE), ()  # queue news of a call we do not know
        # The caller is on the line and we lost their state: the safest thing is a person.
        state = FlowState()
        return replace(state, phase=HOLDING), (a.Enqueue("normal", "mandarin"), a.Hold())
    if state.phase == DONE:
        # A hang-up after the flow finished still ends the queue's record (a callback
        # chosen just as an offer landed leaves the call offered).
        return state, ((a.ReleaseCall(),) if isinstance(event, e.Hangup) else ())

    if isinstance(event, e.Digits):
        state = replace(state, pressed=(state.pressed + event.digits)[-8:])
    if isinstance(event, e.Hangup):
        outcome = "completed" if state.phase == CONNECTED else "abandoned"
        return replace(state, phase=DONE, outcome=outcome), (a.ReleaseCall(),)

    if isinstance(event, e.SeatOffered):
        if state.phase in (CONNECTED, RINGING):
            return state, ()
        return replace(state, phase=RINGING, seat=event.seat), (a.Bridge(event.seat),)
    if isinstance(event, e.SeatConnected):
        return replace(state, phase=CONNECTED, seat=event.seat, outcome="connected"), ()
    if isinstance(event, e.SeatNoAnswer):
        if state.phase != RINGING:
            return state, ()
        return _hold(replace(state, seat=None))

    if state.phase == MENU:
        if isinstance(event, e.Digits):
            skill = LANGUAGE_KEYS.get(event.digits[:1])
            if skill is None:  # an invalid key: no second try, just a person
                return _hold(state)
            return _choose_language(state, skill)
        if isinstance(event, e.InputTimeout):
            return _menu(state) if state.menu_plays < 2 else _hold(state)
        return state, ()  # queue updates wait until the menu is over

    if state.phase == DIALECT_OFFER:
        if isinstance(event, e.Digits) and event.digits[:1] == "1":
            return _choose_language(state, "hainanese")
        if isinstance(event, e.Digits | e.InputTimeout):
            return _hold(state)  # no second try: they simply stay in line
        return state, ()

    if state.phase == CALLBACK_OFFER:
        if isinstance(event, e.Digits) and event.digits[:1] == "1":
            return (
                replace(state, phase=DONE, outcome="callback"),
                (a.RequestCallback("long_wait"), a.Play("callback_confirmed"), a.HangUp()),
            )
        if isinstance(event, e.Digits | e.InputTimeout):
            return _hold(state)
        return state, ()

    if state.phase == HOLDING and isinstance(event, e.QueueUpdate):
        return _queue_update(state, event)
    if (
        state.phase == HOLDING
        and isinstance(event, e.Digits)
        and event.digits[:1] == "1"
        and state.skill == "mandarin"
        and not state.callback_offered
    ):
        return _choose_language(state, "hainanese")
    return state, ()
