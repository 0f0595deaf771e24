"""The inbound flow as pure logic: every path an elderly caller can take."""

import pytest

from ivr import actions as a
from ivr import events as e
from ivr.inbound import (
    ANNOUNCE_EVERY_S,
    CALLBACK_AFTER_S,
    CONNECTED,
    DIALECT_OFFER,
    DIALECT_OFFER_AFTER_S,
    DONE,
    HOLDING,
    MENU,
    FlowState,
    step,
)
from ivr.prompts import CATALOGUE, render


def started(**kw) -> e.CallStarted:  # type: ignore[no-untyped-def]
    base = {"caller": "13800000001", "dialed": "12345", "at": 0.0, "staffed_seats": 3}
    base.update(kw)
    return e.CallStarted(**base)


def kinds(actions) -> list[str]:  # type: ignore[no-untyped-def]
    return [type(x).__name__ for x in actions]


def test_caller_is_queued_at_once_and_hears_one_short_menu() -> None:
    state, actions = step(None, started())
    assert actions[0] == a.Enqueue("normal", "mandarin")
    assert kinds(actions) == ["Enqueue", "Play", "Gather"]
    assert actions[2].prompt == "language_menu" and state.phase == MENU


def test_silence_reaches_a_person_after_the_menu_is_repeated_once() -> None:
    state, _ = step(None, started())
    state, actions = step(state, e.InputTimeout(at=8))
    assert kinds(actions) == ["Gather"]  # repeated once
    state, actions = step(state, e.InputTimeout(at=16))
    assert actions == (a.Hold(),) and state.phase == HOLDING
    assert state.skill == "mandarin"  # never left the queue, never asked again


@pytest.mark.parametrize("key", ["9", "*", "#", "0"])
def test_an_invalid_key_goes_to_a_person_without_a_second_try(key: str) -> None:
    state, _ = step(None, started())
    state, actions = step(state, e.Digits(key, at=3))
    assert actions == (a.Hold(),) and state.phase == HOLDING and state.skill == "mandarin"


@pytest.mark.parametrize(("key", "skill"), [("1", "hainanese"), ("2", "english")])
def test_language_choice_changes_seats_not_place(key: str, skill: str) -> None:
    state, _ = step(None, started())
    state, actions = step(state, e.Digits(key, at=3))
    assert actions[0] == a.ChangeSkill(skill)
    assert isinstance(actions[-1], a.Hold) and state.skill == skill


def test_registered_vulnerable_caller_hears_no_prompt_and_has_priority() -> None:
    state, actions = step(None, started(vulnerable=True))
    assert actions == (a.Enqueue("vulnerable", "mandarin"), a.Hold())
    assert not any(isinstance(x, a.Play | a.Gather) for x in actions)
    # Nor announcements or a callback menu while they wait: music only.
    state, actions = step(state, e.QueueUpdate(9, CALLBACK_AFTER_S * 2, 1, at=5))
    assert actions == ()


def test_repeat_caller_hears_case_status_and_waits_for_their_operator() -> None:
    case = e.OpenCase("12345-20261127-000123", "dispatched", operator_seat="1007")
    state, actions = step(None, started(open_case=case))
    assert actions[0] == a.Enqueue("repeat", "mandarin", sticky_seat="1007")
    assert actions[1].prompt == "case_status"
    sentence = render("case_status", **actions[1].args)
    assert "12345-20261127-000123" in sentence and "已转交承办单位" in sentence
    # Then, once, the dialect choice they skipped with the menu; nothing else.
    assert kinds(actions) == ["Enqueue", "Play", "Gather"]
    assert actions[2].prompt == "dialect_offer" and actions[2].valid_digits == "1"
    assert render("dialect_offer") == "讲海南话请按1。"
    state, actions = step(state, e.InputTimeout(at=9))
    assert actions == (a.Hold(),) and state.phase == HOLDING and state.skill == "mandarin"
    state, actions = step(state, e.QueueUpdate(2, 30.0, 3, at=60))
    assert not any(isinstance(x, a.Gather) for x in actions)  # never asked again


def test_a_registered_elder_still_waiting_is_offered_hainanese_once() -> None:
    state, _ = step(None, started(vulnerable=True, at=100.0))
    state, actions = step(state, e.QueueUpdate(3, 60.0, 1, at=100 + DIALECT_OFFER_AFTER_S - 1))
    assert actions == ()  # answered sooner, they would have heard nothing at all
    state, actions = step(state, e.QueueUpdate(3, 60.0, 1, at=100 + DIALECT_OFFER_AFTER_S))
    assert actions == (a.Gather("dialect_offer", valid_digits="1", timeout_s=5.0),)
    assert state.phase == DIALECT_OFFER
    # Queue news waits until the sentence is over; an offer never does.
    assert step(state, e.QueueUpdate(2, 50.0, 1, at=112))[1] == ()
    chosen, actions = step(state, e.Digits("1", at=113))
    assert actions == (a.ChangeSkill("hainanese"), a.Play("language_chosen"), a.Hold())
    assert (chosen.skill, chosen.priority, chosen.phase) == ("hainanese", "vulnerable", HOLDING)
    # Silence: music again, and the sentence is never repeated.
    state, actions = step(state, e.InputTimeout(at=116))
    assert actions == (a.Hold(),) and state.skill == "mandarin"
    state, actions = step(state, e.QueueUpdate(1, 10.0, 1, at=200))
    assert actions == ()


def test_a_person_free_during_the_dialect_offer_is_not_kept_waiting() -> None:
    case = e.OpenCase("12345-20261127-000123", "dispatched", operator_seat="1007")
    state, _ = step(None, started(open_case=case))
    state, actions = step(state, e.SeatOffered("1007", at=2))
    assert actions == (a.Bridge("1007"),)


@pytest.mark.parametrize("who", ["vulnerable", "repeat"])
def test_one_while_holding_chooses_hainanese_keeping_priority_and_operator(who: str) -> None:
    case = e.OpenCase("12345-20261127-000123", "dispatched", operator_seat="1007")
    kw = {"vulnerable": True} if who == "vulnerable" else {"open_case": case}
    state, _ = step(None, started(**kw))
    if who == "repeat":
        state, _ = step(state, e.InputTimeout(at=9))
    state, actions = step(state, e.Digits("1", at=20))
    assert actions == (a.ChangeSkill("hainanese"), a.Play("language_chosen"), a.Hold())
    assert (state.skill, state.priority, state.phase) == ("hainanese", who, HOLDING)
    assert state.sticky_seat == (None if who == "vulnerable" else "1007")
    # Chosen: no offer afterwards, and a second 1 changes nothing.
    _, actions = step(state, e.QueueUpdate(1, 10.0, 1, at=60))
    assert not any(isinstance(x, a.Gather) for x in actions)
    assert step(state, e.Digits("1", at=61))[1] == ()


def test_one_while_holding_after_a_callback_offer_is_not_a_dialect_choice() -> None:
    state = hold()
    state, _ = step(state, e.QueueUpdate(5, CALLBACK_AFTER_S + 1, 2, at=20))
    state, _ = step(state, e.InputTimeout(at=26))  # declined by silence
    state, actions = step(state, e.Digits("1", at=27))  # a late "callback, please"
    assert actions == () and state.skill == "mandarin"


def test_merged_hotline_number_is_carried_in_the_state() -> None:
    route = e.HotlineRoute(
        "95598", "供电服务热线", category_code="power-outage", department_code="power-supply"
    )
    state, _ = step(None, started(dialed="95598", hotline=route))
    restored = FlowState.from_json(state.to_json())
    assert (restored.category_code, restored.department_code) == ("power-outage", "power-supply")
    assert restored == state


def test_a_closed_centre_says_so_and_records_a_callback() -> None:
    state, actions = step(None, started(staffed_seats=0, closed=True))
    assert kinds(actions) == ["Play", "RequestCallback", "HangUp"]
    assert actions[1] == a.RequestCallback("closed")
    assert state.outcome == "callback" and state.phase == DONE


def test_nobody_logged_in_for_a_moment_still_queues_the_caller() -> None:
    """A heartbeat lapse or a shift change is not a closed centre."""
    state, actions = step(None, started(staffed_seats=0))
    assert a.Enqueue("normal", "mandarin") in actions and a.HangUp() not in actions


def hold(state: FlowState | None = None) -> FlowState:
    state, _ = step(state, started())
    state, _ = step(state, e.InputTimeout(at=8))
    state, _ = step(state, e.InputTimeout(at=16))
    return state


def test_position_announced_when_improved_and_not_too_often() -> None:
    state = hold()
    state, actions = step(state, e.QueueUpdate(5, 120, 3, at=20))
    assert actions[0] == a.Play("queue_position", {"position": 4, "minutes": 2})
    state, actions = step(state, e.QueueUpdate(4, 100, 3, at=30))
    assert actions == ()  # too soon
    state, actions = step(state, e.QueueUpdate(5, 120, 3, at=20 + ANNOUNCE_EVERY_S))
    assert actions == ()  # not improved
    state, actions = step(state, e.QueueUpdate(1, 10, 3, at=30 + ANNOUNCE_EVERY_S * 2))
    assert actions[0] == a.Play("queue_next")


def test_long_wait_offers_a_callback_once() -> None:
    state = hold()
    state, actions = step(state, e.QueueUpdate(30, CALLBACK_AFTER_S + 1, 3, at=20))
    assert kinds(actions) == ["Gather"] and actions[0].prompt == "callback_offer"
    state, actions = step(state, e.Digits("1", at=25))
    assert kinds(actions) == ["RequestCallback", "Play", "HangUp"]
    assert state.outcome == "callback"


def test_declining_the_callback_keeps_waiting_and_is_not_asked_again() -> None:
    state = hold()
    state, _ = step(state, e.QueueUpdate(30, CALLBACK_AFTER_S + 1, 3, at=20))
    state, actions = step(state, e.InputTimeout(at=30))
    assert actions == (a.Hold(),)
    state, actions = step(state, e.QueueUpdate(29, CALLBACK_AFTER_S + 1, 3, at=90))
    assert not any(isinstance(x, a.Gather) for x in actions)


def test_everyone_logging_out_while_waiting_keeps_the_caller_and_offers_a_callback() -> None:
    """Seats disappearing (a 30 s console outage) never hangs up waiting callers."""
    state, actions = step(hold(), e.QueueUpdate(2, None, 0, at=60))
    assert kinds(actions) == ["Gather"] and actions[0].prompt == "callback_offer"
    state, actions = step(state, e.InputTimeout(at=70))  # no answer: keep waiting
    assert actions == (a.Hold(),) and state.phase != DONE
    state, actions = step(state, e.QueueUpdate(2, None, 0, at=120))
    assert not any(isinstance(x, a.HangUp | a.Gather) for x in actions)


def test_offer_bridges_even_during_the_menu_and_no_answer_is_only_music() -> None:
    state, _ = step(None, started())
    state, actions = step(state, e.SeatOffered("1001", at=2))
    assert actions == (a.Bridge("1001"),)
    state, actions = step(state, e.SeatNoAnswer("1001", at=22))
    assert actions == (a.Hold(),)
    state, actions = step(state, e.SeatOffered("1002", at=23))
    state, actions = step(state, e.SeatConnected("1002", at=25))
    assert state.phase == CONNECTED and state.seat == "1002"


@pytest.mark.parametrize("moment", ["menu", "holding", "callback_offer", "ringing", "connected"])
def test_hangup_at_every_step_releases_the_call(moment: str) -> None:
    state, _ = step(None, started())
    if moment != "menu":
        state = hold()
    if moment == "callback_offer":
        state, _ = step(state, e.QueueUpdate(30, CALLBACK_AFTER_S + 1, 3, at=20))
    if moment in ("ringing", "connected"):
        state, _ = step(state, e.SeatOffered("1001", at=20))
    if moment == "connected":
        state, _ = step(state, e.SeatConnected("1001", at=21))
    state, actions = step(state, e.Hangup(at=30))
    assert actions == (a.ReleaseCall(),)
    assert state.outcome == ("completed" if moment == "connected" else "abandoned")
    again, actions = step(state, e.Hangup(at=31))  # a second hang-up changes nothing here
    assert again == state and actions == (a.ReleaseCall(),)  # the queue ignores a repeat


def test_an_event_for_an_unknown_call_still_reaches_a_person() -> None:
    state, actions = step(None, e.Digits("5", at=1))
    assert a.Enqueue("normal", "mandarin") in actions


@pytest.mark.parametrize(
    "event",
    [
        e.Hangup(at=1),
        e.SeatOffered("1001", at=1),
        e.SeatNoAnswer("1001", at=1),
        e.QueueUpdate(1, 0, 1, at=1),
    ],
)
def test_no_event_of_an_unknown_call_but_the_callers_own_invents_a_queued_call(event) -> None:  # type: ignore[no-untyped-def]
    _, actions = step(None, event)
    assert not any(isinstance(x, a.Enqueue) for x in actions)


def test_a_hang_up_after_the_flow_ended_still_releases_the_queue_record() -> None:
    state, _ = step(hold(), e.QueueUpdate(30, CALLBACK_AFTER_S + 1, 3, at=20))
    state, _ = step(state, e.Digits("1", at=25))  # callback chosen: the flow is done
    assert state.phase == DONE
    assert step(state, e.Hangup(at=26))[1] == (a.ReleaseCall(),)


def test_every_prompt_has_both_languages_and_renders() -> None:
    args = {
        "case_number": "12345-20261127-000001",
        "status": "resolved",
        "position": 3,
        "minutes": 2,
        "month": 11,
        "day": 27,
    }
    for prompt_id, prompt in CATALOGUE.items():
        assert prompt.zh and prompt.en
        assert render(prompt_id, "zh", **args) and render(prompt_id, "en", **args)


def test_the_keys_a_caller_pressed_are_kept_for_the_operators_screen() -> None:
    state, _ = step(None, started())
    state, _ = step(state, e.Digits("2", at=3))
    assert state.pressed == "2" and state.skill == "english"
    for n in range(10):
        state, _ = step(state, e.Digits("9", at=10 + n))
    assert state.pressed == "99999999"  # the last eight: small, serializable state
    assert type(state).from_json(state.to_json()) == state
