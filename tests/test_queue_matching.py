"""Ordering, skills and matching rules of the call queue, on a real Redis."""

import time

from redis import Redis

from queueing import CallQueue, Offer


def test_first_in_first_out_within_a_class(queue: CallQueue) -> None:
    for n in range(5):
        queue.enqueue(f"c{n}")
    offered = [queue.seat_login(f"s{n}").offers[0].call_id for n in range(5)]
    assert offered == [f"c{n}" for n in range(5)]


def test_priority_classes_go_first(queue: CallQueue) -> None:
    queue.enqueue("ordinary")
    queue.enqueue("repeat", priority="repeat")
    queue.enqueue("elderly", priority="vulnerable")
    offered = [queue.seat_login(f"s{n}").offers[0].call_id for n in range(3)]
    assert offered == ["elderly", "repeat", "ordinary"]


def test_aging_bound_an_ordinary_call_is_not_overtaken_by_much_later_priority_calls(
    make_queue,
) -> None:
    queue = make_queue(priority_bonus_s={"vulnerable": 0.3, "repeat": 0.2, "normal": 0.0})
    queue.enqueue("ordinary")
    queue.enqueue("elderly-soon-after", priority="vulnerable")  # within the bound: goes first
    time.sleep(0.4)  # beyond the aging bound
    for n in range(20):  # a stream of priority calls
        queue.enqueue(f"elderly-late-{n}", priority="vulnerable")
    first = queue.seat_login("s1").offers[0].call_id
    queue.answer(first, "s1")
    second = queue.complete(first).offers[0].call_id
    assert (first, second) == ("elderly-soon-after", "ordinary")


def test_longest_idle_seat_gets_the_call(queue: CallQueue) -> None:
    for seat in ("s1", "s2", "s3"):
        queue.seat_login(seat)
        time.sleep(0.005)
    queue.seat_state("s1", "paused", "lunch")
    queue.seat_state("s1", "available")  # now the most recently idle
    assert queue.enqueue("c1").offers == (Offer("c1", "s2"),)
    assert queue.enqueue("c2").offers == (Offer("c2", "s3"),)
    assert queue.enqueue("c3").offers == (Offer("c3", "s1"),)


def test_a_call_goes_only_to_a_seat_with_its_skill(queue: CallQueue) -> None:
    queue.seat_login("dialect", ["hainanese", "mandarin"])
    queue.seat_login("busy-dialect", ["hainanese"])
    queue.enqueue("first")  # takes "dialect" (mandarin)
    queue.enqueue("occupier", skill="hainanese")  # takes "busy-dialect"
    assert queue.call("occupier")["seat"] == "busy-dialect"
    queue.seat_login("plain", ["mandarin"])
    # A dialect seat is staffed (busy), so the call waits for it, not for "plain".
    t = queue.enqueue("dialect-caller", skill="hainanese")
    assert t.offers == ()
    assert queue.call("dialect-caller")["state"] == "waiting"
    # Head-of-line: a Mandarin call behind it still reaches the free Mandarin seat.
    assert queue.enqueue("mandarin-caller").offers == (Offer("mandarin-caller", "plain"),)
    queue.answer("occupier", "busy-dialect")
    assert queue.complete("occupier").offers == (Offer("dialect-caller", "busy-dialect"),)


def test_a_language_nobody_logged_in_speaks_falls_back_to_mandarin(queue: CallQueue) -> None:
    queue.seat_login("s1", ["mandarin"])
    t = queue.enqueue("c1", skill="english")
    assert t.offers == (Offer("c1", "s1"),)
    assert queue.call("c1")["requested_skill"] == "english"


def test_seat_without_skills_speaks_mandarin(queue: CallQueue) -> None:
    queue.seat_login("s1")
    assert queue.seat("s1")["skills"] == "mandarin"


def test_enqueue_twice_is_a_duplicate_not_a_second_call(redis: Redis, queue: CallQueue) -> None:
    assert queue.enqueue("c1").result == "queued"
    assert queue.enqueue("c1").result == "duplicate"
    entries = [f for _, f in redis.xrange(queue.keys.events) if f[b"type"] == b"ENTERQUEUE"]
    assert len(entries) == 1


def test_unknown_skill_and_priority_are_refused(queue: CallQueue) -> None:
    import pytest

    from queueing import QueueError

    with pytest.raises(QueueError) as err:
        queue.enqueue("c1", skill="klingon")
    assert err.value.code == "unknown-skill"
    with pytest.raises(QueueError) as err:
        queue.enqueue("c1", priority="vip")
    assert err.value.code == "unknown-priority"
    assert queue.call("c1") == {}


def test_position_and_estimated_wait(queue: CallQueue) -> None:
    queue.seat_login("s1")
    queue.seat_login("s2")
    for n in range(6):
        queue.enqueue(f"c{n}")
    assert [queue.position(f"c{n}").position for n in range(2, 6)] == [1, 2, 3, 4]
    p = queue.position("c5")
    assert p.staffed_seats == 2 and p.state == "waiting"
    # Before any handled call the configured default handle time is used: 4 calls
    # ahead-or-at, shared by 2 seats.
    assert p.estimated_wait_s == 4 * queue.settings.default_handle_s / 2
    assert queue.position("c0").state == "offered" and queue.position("c0").position == 0


def test_estimated_wait_counts_only_seats_taking_calls(queue: CallQueue) -> None:
    """10 seats logged in, 9 at lunch: the 11th caller waits about ten times longer than
    a count of logged-in seats would say, so the callback offer is made."""
    for n in range(10):
        queue.seat_login(f"s{n}", ["mandarin", "english"])  # multi-skill: still one seat
    for n in range(1, 10):
        queue.seat_state(f"s{n}", "paused", "lunch")
    for n in range(11):
        queue.enqueue(f"c{n}")
    p = queue.position("c10")
    assert (p.working_seats, p.staffed_seats, p.position) == (1, 10, 10)
    assert p.estimated_wait_s == 10 * queue.settings.default_handle_s
    queue.seat_state("s1", "available")  # back from lunch: takes c1 and counts again
    assert queue.position("c10").working_seats == 2
    queue.seat_logout("s0")
    assert queue.position("c10").working_seats == 1


def test_estimated_wait_is_unknown_when_nobody_is_logged_in(queue: CallQueue) -> None:
    queue.enqueue("c1")
    assert queue.position("c1").estimated_wait_s is None


def test_status_lists_waiting_calls_in_order_and_seats(queue: CallQueue) -> None:
    queue.seat_login("s1")
    queue.enqueue("c0")
    queue.enqueue("c1")
    queue.enqueue("c2", priority="vulnerable")
    status = queue.status()
    waiting = [(c["id"], c["position"]) for c in status["calls"] if c["state"] == "waiting"]
    assert waiting == [("c2", 1), ("c1", 2)]
    assert [(s["id"], s["state"]) for s in status["seats"]] == [("s1", "offered")]
