"""Tasks in the call queue (issue 21): online, SMS and Open311 requests offered to seats
between calls, on a real redis-server; and the desk's side (SQL record, reply, filing,
completion, the backstop that puts back tasks Redis lost, the figures)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis

from hotline.redis_server import RedisServer
from queueing import CallQueue, QueueError, QueueSettings
from queueing.tasks import TaskQueue, TaskSettings
from tests.conftest import wait_until

SKILLS = ["mandarin", "online"]


def tasks_for(queue: CallQueue, **overrides: object) -> TaskQueue:
    return TaskQueue(queue, TaskSettings(**overrides))  # type: ignore[arg-type]


def offered_to(tasks: TaskQueue, seat: str) -> list[str]:
    return [t["id"] for t in tasks.seat_tasks(seat) if t["state"] == "offered"]


def test_a_task_is_offered_to_a_free_seat_with_the_skill_and_taken(queue: CallQueue) -> None:
    tasks = tasks_for(queue)
    queue.seat_login("1001", ["mandarin"])  # no task skill: never offered tasks
    queue.seat_login("1002", SKILLS)
    result, offers = tasks.submit("12345-20261201-000001", "web")
    assert result == "queued"
    assert [(o.task_id, o.seat_id) for o in offers] == [("12345-20261201-000001", "1002")]
    assert tasks.take("12345-20261201-000001", "1002") == "taken"
    task = tasks.task("12345-20261201-000001")
    assert task["state"] == "held" and task["seat"] == "1002"
    # The seat stays free for calls: a call that comes is offered to it at once.
    call = queue.enqueue("call-1", skill="mandarin")
    assert {(o.call_id, o.seat_id) for o in call.offers} in (
        {("call-1", "1001")},
        {("call-1", "1002")},
    )
    with pytest.raises(QueueError) as refused:
        tasks.take("12345-20261201-000001", "1001")
    assert refused.value.code == "not-your-task"
    assert tasks.submit("12345-20261201-000001", "web")[0] == "duplicate"


def test_first_response_is_the_reply_and_done_frees_the_room(queue: CallQueue) -> None:
    tasks = tasks_for(queue, per_seat=1)
    queue.seat_login("1002", SKILLS)
    tasks.submit("T-1", "sms")
    tasks.submit("T-2", "open311")
    assert offered_to(tasks, "1002") == ["T-1"]
    with pytest.raises(QueueError):
        tasks.respond("T-1", "1002")  # offered, not taken: no reply yet
    tasks.take("T-1", "1002")
    first, response_ms = tasks.respond("T-1", "1002")
    again, same_ms = tasks.respond("T-1", "1002")
    assert first and not again and same_ms == response_ms >= 0
    assert tasks.task("T-1")["responded_at"]
    assert tasks.task("T-2")["state"] == "waiting"  # the seat holds its one task
    assert tasks.done("T-1", "1002") == "done"
    assert tasks.task("T-2")["state"] == "offered"
    assert tasks.submit("T-1", "sms")[0] == "done"  # a completed task is never queued again


def test_capacity_n_per_seat_and_one_offer_pending(queue: CallQueue) -> None:
    tasks = tasks_for(queue, per_seat=3)
    queue.seat_login("1002", SKILLS)
    for i in range(5):
        tasks.submit(f"T-{i}", "web")
    for _ in range(6):
        for task_id in offered_to(tasks, "1002"):
            tasks.take(task_id, "1002")
        tasks.tick()
    held = [t["id"] for t in tasks.seat_tasks("1002")]
    assert held == ["T-0", "T-1", "T-2"]  # oldest first, three at most
    assert tasks.summary()["waiting"] == 2


def test_a_task_is_never_offered_to_two_seats(queue: CallQueue) -> None:
    tasks = tasks_for(queue, per_seat=2)
    seats = [f"20{i:02d}" for i in range(8)]
    for seat in seats:
        queue.seat_login(seat, SKILLS)
    for i in range(12):
        tasks.submit(f"T-{i}", "web")
    tasks.tick()
    owners: dict[str, list[str]] = {}
    for seat in seats:
        for task in tasks.seat_tasks(seat):
            owners.setdefault(task["id"], []).append(seat)
            assert tasks.task(task["id"])["seat"] == seat
    assert all(len(s) == 1 for s in owners.values())
    assert len(owners) == 8  # one pending offer per seat


def test_an_offer_not_taken_expires_and_goes_to_another_seat(
    make_queue: Callable[..., CallQueue],
) -> None:
    queue = make_queue()
    tasks = tasks_for(queue, offer_s=1.0)
    queue.seat_login("1001", SKILLS)
    tasks.submit("T-1", "web")
    assert offered_to(tasks, "1001") == ["T-1"]
    queue.seat_login("1002", SKILLS)

    def expired() -> bool:
        counts, _ = tasks.tick()
        return counts["offers_expired"] == 1

    wait_until(expired, 5, "offer expired")
    task = tasks.task("T-1")
    # Back in line with its entry time, and offered again (to 1002, idle longer now,
    # or 1001): one seat only.
    assert task["state"] == "offered" and int(task["offers"]) == 2
    assert offered_to(tasks, "1001") + offered_to(tasks, "1002") == ["T-1"]


def test_calls_first_a_seat_that_gets_a_call_gives_back_its_task_offer(queue: CallQueue) -> None:
    tasks = tasks_for(queue)
    queue.seat_login("1001", SKILLS)
    tasks.submit("T-1", "web")
    assert offered_to(tasks, "1001") == ["T-1"]
    call = queue.enqueue("call-1", skill="mandarin")
    assert [(o.call_id, o.seat_id) for o in call.offers] == [("call-1", "1001")]  # not delayed
    counts, _ = tasks.tick()
    assert counts["returned"] == 1 and tasks.task("T-1")["state"] == "waiting"
    queue.answer("call-1", "1001")
    tasks.tick()
    assert tasks.task("T-1")["state"] == "waiting"  # nobody free between calls
    queue.complete("call-1")  # wrap-up 0: free again
    tasks.tick()
    assert offered_to(tasks, "1001") == ["T-1"]


def test_a_seat_on_a_call_keeps_its_tasks_and_one_logged_out_returns_them(queue: CallQueue) -> None:
    tasks = tasks_for(queue)
    queue.seat_login("1001", SKILLS)
    tasks.submit("T-1", "web")
    tasks.take("T-1", "1001")
    queue.enqueue("call-1", skill="mandarin")
    queue.answer("call-1", "1001")  # one call and a task
    tasks.tick()
    assert tasks.task("T-1")["state"] == "held"
    queue.complete("call-1")
    queue.seat_logout("1001")
    counts, _ = tasks.tick()
    assert counts["returned"] == 1
    assert tasks.task("T-1")["state"] == "waiting" and tasks.seat_tasks("1001") == []


def test_overdue_tasks_are_marked_once(make_queue: Callable[..., CallQueue]) -> None:
    tasks = tasks_for(make_queue(), first_response_s=0.2)
    tasks.submit("T-1", "web")

    def overdue() -> bool:
        return tasks.tick()[0]["overdue"] == 1

    wait_until(overdue, 5, "overdue")
    assert tasks.overdue() == ["T-1"] and tasks.summary()["overdue"] == 1
    assert tasks.tick()[0]["overdue"] == 0


def test_tasks_survive_a_redis_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", durable=True).start()
    try:
        redis = Redis.from_url(server.url)
        tasks = TaskQueue(CallQueue(redis, QueueSettings(wrapup_s=0)), TaskSettings(offer_s=1))
        tasks.queue.seat_login("1001", SKILLS)
        tasks.submit("T-1", "web")
        tasks.submit("T-2", "sms")
        tasks.take("T-1", "1001")
        redis.close()
        server.stop()  # the AOF is written on a clean stop
        server.start()
        redis = Redis.from_url(server.url)
        tasks = TaskQueue(CallQueue(redis, QueueSettings(wrapup_s=0)), TaskSettings(offer_s=1))
        assert tasks.task("T-1")["state"] == "held"

        def offered_again() -> bool:
            tasks.tick()
            return tasks.task("T-2")["state"] == "offered" and int(tasks.task("T-2")["offers"]) >= 2

        wait_until(offered_again, 5, "the lapsed offer offered again")
        assert sorted(tasks.live_ids()) == ["T-1", "T-2"]
        redis.close()
    finally:
        server.stop()
