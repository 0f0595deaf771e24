"""Offer outcomes, abandon, wrap-up, heartbeats, sticky routing and the reaper."""

import time

import pytest
from redis import Redis

from queueing import CallQueue, Offer, QueueError
from queueing.events import queue_figures, read_events
from tests.conftest import wait_until


def events(redis: Redis, queue: CallQueue, kind: str) -> list[dict[str, str]]:
    return [e for _, e in read_events(redis, queue.keys) if e["type"] == kind]


def test_answer_connects_call_and_seat(redis: Redis, queue: CallQueue) -> None:
    queue.seat_login("s1")
    queue.enqueue("c1")
    assert queue.answer("c1", "s1").result == "connected"
    assert queue.answer("c1", "s1").result == "duplicate"
    assert queue.call("c1")["state"] == "on_call"
    assert queue.seat("s1")["state"] == "on_call"
    assert len(events(redis, queue, "CONNECT")) == 1


def test_only_the_offered_seat_can_answer(queue: CallQueue) -> None:
    queue.seat_login("s1")
    queue.seat_login("s2")
    queue.enqueue("c1")  # offered to s1
    with pytest.raises(QueueError) as err:
        queue.answer("c1", "s2")
    assert err.value.code == "not-offered-to-seat"
    with pytest.raises(QueueError) as err:
        queue.answer("nope", "s1")
    assert err.value.code == "no-such-call"


def test_ring_no_answer_pauses_seat_and_returns_call_to_the_head(
    redis: Redis, queue: CallQueue
) -> None:
    queue.seat_login("s1")
    queue.enqueue("c1")  # rings s1
    queue.enqueue("c2")
    queue.enqueue("c3")
    entered = queue.call("c1")["entered"]
    t = queue.no_answer("c1", "s1")
    assert t.result == "requeued" and t.offers == ()
    seat = queue.seat("s1")
    assert (seat["state"], seat["reason"]) == ("paused", "no answer")
    assert queue.position("c1").position == 1  # ahead of c2 and c3
    assert queue.call("c1")["entered"] == entered
    assert queue.seat_login("s2").offers == (Offer("c1", "s2"),)
    assert [e["seat"] for e in events(redis, queue, "RINGNOANSWER")] == ["s1"]
    # A late no-answer for an offer that has moved on changes nothing.
    assert queue.no_answer("c1", "s1").result == "stale"


def test_offer_expires_into_ring_no_answer_on_the_reaper_tick(make_queue) -> None:
    queue = make_queue(offer_timeout_s=0.2)
    queue.seat_login("s1")
    queue.seat_login("s2")
    queue.seat_state("s2", "paused", "training")
    queue.enqueue("c1")
    assert queue.ringing("c1", "s1").result == "ringing"
    assert queue.tick()[0]["ring_no_answer"] == 0
    time.sleep(0.25)
    counts, offers = queue.tick()
    assert counts["ring_no_answer"] == 1
    assert queue.seat("s1")["reason"] == "no answer"
    assert queue.call("c1")["state"] == "waiting"
    assert queue.seat_state("s2", "available").offers == (Offer("c1", "s2"),)


def test_the_ring_lease_runs_from_the_ring_not_from_the_offer(make_queue) -> None:
    """A prompt that plays out before the seat rings does not eat the ring time."""
    # Margins in seconds, not tenths: a loaded machine may take 0.5 s between calls.
    queue = make_queue(offer_timeout_s=2.0, offer_start_s=10.0)
    queue.seat_login("s1")
    queue.enqueue("c1")
    time.sleep(1.5)  # the greeting plays
    queue.ringing("c1", "s1")
    time.sleep(0.6)  # past the ring lease counted from the offer, inside it from the ring
    assert queue.tick()[0]["ring_no_answer"] == 0
    assert queue.answer("c1", "s1").result == "connected"
    assert queue.ringing("c1", "s1").result == "stale"


def test_an_offer_that_never_rings_frees_the_seat_without_pausing_it(make_queue) -> None:
    """The adapter lost the offer (crashed before dialling): not the operator's fault."""
    queue = make_queue(offer_start_s=0.2)
    queue.seat_login("s1")
    queue.seat_login("s2")
    queue.seat_state("s2", "paused", "training")
    queue.enqueue("c1")
    queue.enqueue("c2")
    time.sleep(0.25)
    counts, offers = queue.tick()
    assert counts["offers_expired"] == 1 and counts["ring_no_answer"] == 0
    assert queue.seat("s1")["reason"] != "no answer"
    assert offers == (Offer("c1", "s1"),)  # c1 kept the head of the line


def test_abandon_while_waiting_records_wait_and_position(redis: Redis, queue: CallQueue) -> None:
    for n in range(3):
        queue.enqueue(f"c{n}")
    time.sleep(0.05)
    assert queue.hangup("c1").result == "abandoned"
    assert queue.hangup("c1").result == "already-ended"
    assert queue.position("c2").position == 2
    (abandon,) = events(redis, queue, "ABANDON")
    assert abandon["call"] == "c1" and abandon["position"] == "2"
    assert int(abandon["wait_ms"]) >= 50
    assert queue.call("c1")["outcome"] == "abandoned"
    assert "c1" not in [c["id"] for c in queue.status()["calls"]]


def test_caller_hangs_up_while_the_seat_rings_frees_the_seat(queue: CallQueue) -> None:
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.enqueue("c2")
    t = queue.hangup("c1")
    assert t.result == "abandoned"
    assert t.offers == (Offer("c2", "s1"),)  # freed seat takes the next caller at once


def test_caller_hangs_up_while_talking_completes_the_call(redis: Redis, make_queue) -> None:
    queue = make_queue(wrapup_s=10)
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    assert queue.hangup("c1").result == "completed"
    assert queue.seat("s1")["state"] == "wrap_up"
    assert events(redis, queue, "COMPLETE")[0]["by"] == "caller"
    assert queue.complete("c1").result == "already-ended"


def test_wrap_up_timer_returns_the_seat_by_itself(make_queue) -> None:
    queue = make_queue(wrapup_s=0.3)
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    queue.complete("c1")
    queue.enqueue("c2")  # waits: the only seat is wrapping up
    assert queue.seat("s1")["state"] == "wrap_up"
    assert queue.tick()[0]["wrapups_ended"] == 0
    time.sleep(0.35)
    counts, offers = queue.tick()
    assert counts["wrapups_ended"] == 1
    assert offers == (Offer("c2", "s1"),)


def test_operator_can_end_wrap_up_early(make_queue) -> None:
    queue = make_queue(wrapup_s=60)
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    queue.complete("c1")
    assert queue.seat_state("s1", "available").result == "available"
    assert queue.seat("s1")["state"] == "available"


def test_seat_that_stops_heartbeating_goes_offline_and_its_call_returns(make_queue) -> None:
    queue = make_queue(seat_heartbeat_ttl_s=0.3, offer_timeout_s=60)
    queue.seat_login("alive")
    queue.seat_state("alive", "paused", "meeting")
    queue.seat_login("silent")
    queue.enqueue("c1")  # rings "silent"
    for _ in range(4):
        time.sleep(0.1)
        queue.heartbeat("alive")
    counts, _ = queue.tick()
    assert counts["seats_lost"] == 1
    assert queue.seat("silent")["state"] == "offline"
    assert queue.seat("silent")["reason"] == "heartbeat lost"
    assert queue.call("c1")["state"] == "waiting"
    with pytest.raises(QueueError):
        queue.heartbeat("silent")
    assert queue.seat_state("alive", "available").offers == (Offer("c1", "alive"),)


def test_logout_returns_a_ringing_call_and_is_refused_while_talking(queue: CallQueue) -> None:
    queue.seat_login("s1")
    queue.enqueue("c1")
    assert queue.seat_logout("s1").result == "logged-out"
    assert queue.call("c1")["state"] == "waiting"
    queue.seat_login("s1")
    queue.answer("c1", "s1")
    with pytest.raises(QueueError) as err:
        queue.seat_logout("s1")
    assert err.value.code == "seat-busy"


def test_pausing_a_ringing_seat_returns_its_call(queue: CallQueue) -> None:
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.seat_state("s1", "paused", "toilet")
    assert queue.call("c1")["state"] == "waiting"
    assert queue.seat("s1")["reason"] == "toilet"


def test_sticky_call_waits_for_its_operator(queue: CallQueue) -> None:
    queue.seat_login("own")
    queue.enqueue("first")
    queue.answer("first", "own")  # the operator who took the case is busy
    queue.seat_login("other")
    t = queue.enqueue("repeat", priority="repeat", sticky_seat="own", sticky_s=30)
    assert t.result == "sticky" and t.offers == ()
    assert queue.seat("other")["state"] == "available"
    assert queue.complete("first").offers == (Offer("repeat", "own"),)


def test_sticky_call_falls_back_to_anyone_after_its_window(queue: CallQueue) -> None:
    queue.seat_login("own")
    queue.enqueue("first")
    queue.answer("first", "own")
    queue.seat_login("other")
    queue.enqueue("repeat", priority="repeat", sticky_seat="own", sticky_s=0.2)
    time.sleep(0.25)
    counts, offers = queue.tick()
    assert counts["sticky_expired"] == 1
    assert offers == (Offer("repeat", "other"),)


def test_sticky_to_an_offline_operator_goes_to_anyone_at_once(queue: CallQueue) -> None:
    queue.seat_login("other")
    t = queue.enqueue("repeat", priority="repeat", sticky_seat="gone-home", sticky_s=30)
    assert t.offers == (Offer("repeat", "other"),)


def test_sticky_operator_free_gets_the_call_directly(queue: CallQueue) -> None:
    queue.seat_login("a")
    queue.seat_login("own")  # less idle than "a", yet chosen
    assert queue.enqueue("repeat", sticky_seat="own").offers == (Offer("repeat", "own"),)


def test_stale_waiting_call_is_expired_by_the_reaper(redis: Redis, make_queue) -> None:
    queue = make_queue(max_wait_s=0.2)
    queue.enqueue("ghost")
    time.sleep(0.25)
    assert queue.tick()[0]["calls_expired"] == 1
    assert queue.call("ghost")["outcome"] == "expired"
    assert len(events(redis, queue, "EXITWITHTIMEOUT")) == 1


def test_figures_for_a_window(redis: Redis, queue: CallQueue) -> None:
    queue.seat_login("s1")
    for n in range(4):
        queue.enqueue(f"c{n}")
    queue.answer("c0", "s1")
    queue.complete("c0")  # c1 rings
    queue.answer("c1", "s1")
    queue.hangup("c2")
    queue.hangup("c3")
    queue.complete("c1")
    figures = queue_figures(redis, queue.keys)
    assert (figures.offered, figures.answered, figures.abandoned) == (4, 2, 2)
    # c2 and c3 hung up at once: short abandons, left out of the denominator
    assert figures.short_abandoned == 2 and figures.connection_rate == 1.0
    assert figures.answered_within_15s_rate == 1.0
    assert figures.completed == 2
    assert figures.avg_wait_s is not None and figures.avg_wait_s < 1
    seconds, _ = redis.time()
    future = queue_figures(redis, queue.keys, start_ms=(seconds + 60) * 1000)
    assert future.offered == 0 and future.connection_rate is None


def test_enqueue_publishes_offers(redis: Redis, queue: CallQueue) -> None:
    pubsub = redis.pubsub()
    pubsub.subscribe(queue.keys.offer_channel)
    wait_until(lambda: pubsub.get_message(timeout=0.1))  # subscribe confirmation
    queue.seat_login("s1")
    queue.enqueue("c1")
    message = wait_until(lambda: pubsub.get_message(timeout=0.1))
    assert message["data"] == b"c1 s1"
    pubsub.close()


def test_changing_language_keeps_the_place_in_line(queue: CallQueue) -> None:
    queue.seat_login("dialect", ["hainanese"])
    queue.enqueue("occupier", skill="hainanese")  # dialect seat busy
    queue.enqueue("early")
    queue.enqueue("late", skill="hainanese")
    assert queue.set_skill("early", "hainanese").result == "changed"
    assert queue.position("early").position == 1  # ahead of "late", who entered after
    queue.answer("occupier", "dialect")
    assert queue.complete("occupier").offers == (Offer("early", "dialect"),)
    assert queue.set_skill("early", "english").result == "too-late"


def test_leaving_for_a_callback_is_not_an_abandon(redis: Redis, queue: CallQueue) -> None:
    queue.enqueue("c1")
    queue.enqueue("c2")
    assert queue.leave("c2", "long_wait").result == "left"
    assert queue.call("c2")["outcome"] == "callback"
    figures = queue_figures(redis, queue.keys)
    assert (figures.callbacks, figures.abandoned) == (1, 0)
    (left,) = events(redis, queue, "EXITWITHKEY")
    assert left["position"] == "2" and left["reason"] == "long_wait"


@pytest.mark.parametrize("how", ["logout", "heartbeat lost", "skill dropped"])
def test_callers_of_a_language_nobody_speaks_any_more_go_to_mandarin(make_queue, how) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(seat_heartbeat_ttl_s=0.3)
    queue.seat_login("dialect", ["hainanese"])
    queue.enqueue("talking", skill="hainanese")
    queue.answer("talking", "dialect")
    queue.seat_login("plain", ["mandarin"])
    queue.enqueue("mandarin-first")  # takes "plain"
    queue.enqueue("dialect-caller", skill="hainanese")  # waits for "dialect"
    queue.answer("mandarin-first", "plain")
    queue.complete("mandarin-first")  # "plain" is free, but it speaks only Mandarin
    assert queue.call("dialect-caller")["state"] == "waiting"
    queue.complete("talking")  # "dialect" is free...
    queue.no_answer("dialect-caller", "dialect")  # ...but misses it and is paused
    if how == "logout":
        queue.seat_logout("dialect")
    elif how == "skill dropped":
        queue.seat_login("dialect", ["english"])
    else:
        queue.heartbeat("plain")
        time.sleep(0.35)
        queue.heartbeat("plain")
        queue.tick()
    record = queue.call("dialect-caller")
    assert record["skill"] == "mandarin" and record["requested_skill"] == "hainanese"
    assert record["state"] == "offered" and record["seat"] == "plain"


def test_a_conversation_past_the_maximum_talk_time_is_completed(make_queue) -> None:
    """A lost hang-up must not hold a seat on_call for ever."""
    queue = make_queue(max_talk_s=0.3)
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    assert queue.tick()[0]["talks_ended"] == 0
    time.sleep(0.35)
    counts, _ = queue.tick()
    assert counts["talks_ended"] == 1 and queue.last_talked_out == ["c1"]
    assert queue.call("c1")["outcome"] == "completed"
    assert queue.seat("s1")["state"] == "available"


def test_the_stale_sweep_moves_past_calls_that_are_not_waiting(make_queue) -> None:
    """Old calls still talking at the head of the live set must not stop the sweep from
    reaching a stale waiting call behind them."""
    queue = make_queue(max_wait_s=0.3)
    for n in range(3):
        queue.seat_login(f"s{n}")
        queue.enqueue(f"talking{n}")
        queue.answer(f"talking{n}", f"s{n}")
    queue.enqueue("stale")  # nobody free: it waits
    time.sleep(0.35)
    expired = 0
    for _ in range(3):
        expired += queue.tick(limit=2)[0]["calls_expired"]
    assert expired == 1 and queue.call("stale")["outcome"] == "expired"
    assert queue.call("talking0")["state"] == "on_call"


def test_a_supervisor_can_force_a_stuck_seat_out(queue: CallQueue) -> None:
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    with pytest.raises(QueueError):
        queue.seat_logout("s1")
    assert queue.seat_logout("s1", force=True).result == "forced"
    assert queue.seat("s1")["state"] == "offline"
    assert queue.call("c1")["outcome"] == "completed"
    assert queue.seat_login("s1").result  # and the operator can log in again
    assert queue.seat("s1")["state"] == "available"


def test_pause_after_this_call_pauses_when_the_wrap_up_ends(redis: Redis, make_queue) -> None:
    queue = make_queue(wrapup_s=0.3)
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    assert queue.pause_after_call("s1", "lunch") == "after-call"
    queue.complete("c1")
    queue.enqueue("c2")  # must not reach s1: its operator is going to lunch
    assert queue.seat("s1")["state"] == "wrap_up"
    time.sleep(0.35)
    counts, offers = queue.tick()
    assert counts["wrapups_ended"] == 1 and offers == ()
    seat = queue.seat("s1")
    assert (seat["state"], seat["reason"], seat.get("pause_next")) == ("paused", "lunch", None)
    assert queue.call("c2")["state"] == "waiting"
    assert events(redis, queue, "PAUSE_NEXT")[0]["reason"] == "lunch"


def test_pause_after_this_call_without_wrap_up_and_its_cancel(make_queue) -> None:
    queue = make_queue(wrapup_s=0)
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    queue.pause_after_call("s1", "training")
    assert queue.pause_after_call("s1", "") == "cancelled"
    queue.complete("c1")
    assert queue.seat("s1")["state"] == "available"
    queue.enqueue("c2")
    queue.answer("c2", "s1")
    queue.pause_after_call("s1", "meeting")
    queue.complete("c2")
    assert (queue.seat("s1")["state"], queue.seat("s1")["reason"]) == ("paused", "meeting")
    assert queue.pause_after_call("s1", "other") == "paused"  # idle: at once, new reason
    assert queue.seat("s1")["reason"] == "other"


def test_a_pause_that_keeps_the_chosen_one_leaves_a_pending_lunch_as_it_is(make_queue) -> None:
    """Signing out on a call pauses the seat after it, unless the operator had already
    chosen a pause: their lunch break is what the wallboard should show."""
    queue = make_queue(wrapup_s=0)
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    queue.pause_after_call("s1", "lunch")
    assert queue.pause_after_call("s1", "signed_out", keep_chosen=True) == "after-call"
    assert queue.seat("s1")["pause_next"] == "lunch"
    queue.pause_after_call("s1", "")
    assert queue.pause_after_call("s1", "signed_out", keep_chosen=True) == "after-call"
    assert queue.seat("s1")["pause_next"] == "signed_out"  # nothing chosen: signed out


def test_an_idle_seat_pauses_at_once_and_ready_ends_the_wrap_up_into_a_pending_pause(
    make_queue,
) -> None:
    queue = make_queue(wrapup_s=60)
    queue.seat_login("s1")
    assert queue.pause_after_call("s1", "lunch") == "paused"
    queue.seat_state("s1", "available")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    queue.pause_after_call("s1", "lunch")
    queue.complete("c1")
    # 就绪 ends the wrap-up: the pause the operator asked for after this call begins.
    assert queue.seat_state("s1", "available").result == "paused"
    seat = queue.seat("s1")
    assert (seat["state"], seat["reason"]) == ("paused", "lunch")
    assert "pause_next" not in seat
    # Cancelling the pending pause first makes 就绪 mean available.
    queue.seat_state("s1", "available")
    queue.enqueue("c2")
    queue.answer("c2", "s1")
    queue.pause_after_call("s1", "meeting")
    queue.complete("c2")
    assert queue.pause_after_call("s1", "") == "cancelled"
    assert queue.seat_state("s1", "available").result == "available"
    with pytest.raises(QueueError, match="not-logged-in"):
        queue.pause_after_call("nobody", "lunch")


def test_wrap_up_can_be_extended_and_shows_its_end(make_queue) -> None:
    queue = make_queue(wrapup_s=0.3)
    queue.seat_login("s1")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    with pytest.raises(QueueError, match="not-in-wrap-up"):
        queue.extend_wrapup("s1", 30)
    queue.complete("c1")
    before = int(queue.seat("s1")["wrapup_until"])
    assert queue.extend_wrapup("s1", 30) == before + 30_000
    seat = queue.seat("s1")
    assert int(seat["wrapup_until"]) - int(seat["now"]) > 29_000
    time.sleep(0.35)
    assert queue.tick()[0]["wrapups_ended"] == 0
    with pytest.raises(QueueError, match="bad-argument"):
        queue.extend_wrapup("s1", 0)


def test_a_caller_who_chooses_a_callback_as_an_offer_lands_leaves_and_frees_the_seat(
    redis: Redis, queue: CallQueue
) -> None:
    """The flow records the callback and hangs up; the queue had just offered the call.
    Before: leave() refused ("not-waiting"), the offer expired back into the queue, and
    a caller who was gone waited there for hours."""
    queue.seat_login("s1")
    queue.seat_state("s1", "paused", "break")
    queue.enqueue("c1")
    queue.seat_state("s1", "available")  # the offer lands
    assert queue.call("c1")["state"] == "offered"
    assert queue.leave("c1", "long_wait").result == "left"
    assert queue.call("c1")["outcome"] == "callback"
    assert queue.seat("s1")["state"] == "available"  # freed, not paused
    assert queue.live_calls() == []
    assert events(redis, queue, "EXITWITHKEY")[0]["seat"] == "s1"
