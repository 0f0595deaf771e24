"""The outbound flows, pure: the return visit (回访) and the call-back."""

from __future__ import annotations

import pytest

from ivr import actions as a
from ivr import events as e
from ivr.outbound import ASKING, DONE, QUEUED, OutboundState, callback, return_visit, step
from ivr.prompts import render


def answered(state: OutboundState, by: str = "human"):  # type: ignore[no-untyped-def]
    return step(state, e.OutboundAnswered(by, at=1.0))


def test_a_return_visit_names_the_day_and_asks_one_question() -> None:
    state, actions = answered(return_visit("12345-20261127-000001", 11, 27))
    assert state.phase == ASKING
    assert actions == (
        a.Play("visit_intro", {"month": 11, "day": 27}),
        a.Gather("visit_question", "120", timeout_s=8.0),
    )
    assert render("visit_intro", month=11, day=27).startswith(
        "您好，12345热线回访，全程录音。关于您11月27日反映的问题"
    )
    assert render("visit_question") == "满意请按1，不满意请按2。转人工请按0。"


@pytest.mark.parametrize(
    ("key", "outcome", "prompt"),
    [("1", "satisfied", "visit_thanks"), ("2", "unsatisfied", "visit_sorry")],
)
def test_satisfied_or_not_ends_the_call_and_is_recorded(
    key: str, outcome: str, prompt: str
) -> None:
    state, _ = answered(return_visit("N", 11, 27))
    state, actions = step(state, e.Digits(key, at=5))
    assert state.phase == DONE and state.outcome == outcome
    assert actions == (a.Play(prompt), a.HangUp(), a.RecordOutbound(outcome))


def test_silence_repeats_the_question_once_then_ends_politely() -> None:
    state, _ = answered(return_visit("N", 11, 27))
    state, actions = step(state, e.InputTimeout(at=10))
    assert actions == (a.Gather("visit_question", "120", timeout_s=8.0),)  # no intro again
    state, actions = step(state, e.InputTimeout(at=20))
    assert state.outcome == "no_response"
    assert actions == (a.Play("visit_goodbye"), a.HangUp(), a.RecordOutbound("no_response"))


def test_a_wrong_key_is_asked_again_once() -> None:
    state, _ = answered(return_visit("N", 11, 27))
    state, actions = step(state, e.Digits("7", at=5))
    assert state.phase == ASKING and kinds(actions) == ["Gather"]
    state, _ = step(state, e.Digits("1", at=9))
    assert state.outcome == "satisfied" and state.pressed == "71"


def test_zero_reaches_a_person_with_priority() -> None:
    state, _ = answered(return_visit("N", 11, 27))
    state, actions = step(state, e.Digits("0", at=5))
    assert state.phase == QUEUED
    assert actions == (
        a.Play("visit_transfer"),
        a.Enqueue("repeat", "mandarin"),
        a.Hold(),
        a.RecordOutbound("transfer"),
    )
    state, actions = step(state, e.SeatOffered("1001", at=8))
    assert actions == (a.Bridge("1001"),)
    state, _ = step(state, e.SeatConnected("1001", at=9))
    state, actions = step(state, e.Hangup(at=60))
    assert state.phase == DONE and actions == (a.ReleaseCall(),)


@pytest.mark.parametrize("by", ["machine", "fax"])
def test_an_answering_machine_hears_nothing_and_the_dialer_retries(by: str) -> None:
    state, actions = answered(return_visit("N", 11, 27), by)
    assert state.outcome == "machine" and actions == (a.HangUp(), a.RecordOutbound("machine"))


def test_unsure_detection_is_treated_as_a_person() -> None:
    state, _ = answered(return_visit("N", 11, 27), "unknown")
    assert state.phase == ASKING


@pytest.mark.parametrize("reason", ["no-answer", "busy", "failed", "congestion", "unreachable"])
def test_a_call_that_never_connects_is_recorded_for_the_dialer(reason: str) -> None:
    state, actions = step(return_visit("N", 11, 27), e.OutboundFailed(reason, at=30))
    assert state.outcome == reason and actions == (a.RecordOutbound(reason),)


def test_hanging_up_during_the_question_is_no_response() -> None:
    state, _ = answered(return_visit("N", 11, 27))
    state, actions = step(state, e.Hangup(at=4))
    assert state.outcome == "no_response" and actions == (a.RecordOutbound("no_response"),)


def test_a_callback_says_who_is_calling_and_queues_the_citizen() -> None:
    state, actions = answered(callback("12345-20261127-000002"))
    assert render("callback_intro").startswith("您好，这里是12345热线，给您回电。")
    assert actions[0] == a.Play("callback_intro") and a.Enqueue("repeat", "mandarin") in actions
    assert state.phase == QUEUED and state.outcome == "connected"
    state, actions = step(state, e.SeatOffered("1002", at=3))
    state, actions = step(state, e.SeatNoAnswer("1002", at=23))
    assert actions == (a.Hold(),) and state.phase == QUEUED


def test_the_state_is_small_and_serializable() -> None:
    state, _ = answered(return_visit("12345-20261127-000001", 11, 27))
    assert OutboundState.from_json(state.to_json()) == state
    assert len(state.to_json()) < 300


def kinds(actions) -> list[str]:  # type: ignore[no-untyped-def]
    return [type(x).__name__ for x in actions]
