"""Tasks in the call queue (issue 21): online, SMS and Open311 requests offered to seats
between calls, on a real redis-server; and the desk's side (SQL record, reply, filing,
completion, the backstop that puts back tasks Redis lost, the figures)."""

from __future__ import annotations

import time
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
    assert tasks.take("12345-20261201-000001", "1002")[0] == "taken"
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
    assert tasks.done("T-1", "1002")[0] == "done"
    assert tasks.task("T-2")["state"] == "offered"
    assert tasks.submit("T-1", "sms")[0] == "done"  # a completed task is never queued again


def test_capacity_n_per_seat_and_one_offer_pending(queue: CallQueue) -> None:
    tasks = tasks_for(queue, per_seat=3)
    queue.seat_login("1002", SKILLS)
    for i in range(5):
        tasks.submit(f"T-{i}", "web")
    tasks.tick()
    [first] = offered_to(tasks, "1002")
    tasks.take(first, "1002")
    tasks.tick()
    assert offered_to(tasks, "1002") == []  # one unanswered task in hand at a time
    tasks.respond(first, "1002")
    for _ in range(6):
        for task_id in offered_to(tasks, "1002"):
            tasks.take(task_id, "1002")
            tasks.respond(task_id, "1002")  # replied; filing them is left for later
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


def test_calls_go_first_to_free_seats_not_writing_a_reply_but_never_wait(queue: CallQueue) -> None:
    tasks = tasks_for(queue)
    queue.seat_login("1002", SKILLS)  # idle longest: calls would go here first
    tasks.submit("T-1", "web")
    tasks.take("T-1", "1002")  # its operator writes a reply
    queue.seat_login("1001", SKILLS)
    tasks.tick()
    first = queue.enqueue("call-1", skill="mandarin")
    assert [o.seat_id for o in first.offers] == ["1001"]  # the seat not writing a reply
    second = queue.enqueue("call-2", skill="mandarin")
    assert [o.seat_id for o in second.offers] == ["1002"]  # no other free seat: at once


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
    queue.seat_logout("1001")  # returned by the logout itself, before any sweep
    assert tasks.task("T-1")["state"] == "waiting" and tasks.task("T-1")["owner"] == ""
    assert tasks.seat_tasks("1001") == []
    assert tasks.tick()[0]["returned"] == 0


def test_a_free_seat_whose_operator_walked_away_hands_on_its_unanswered_task(
    queue: CallQueue,
) -> None:
    tasks = tasks_for(queue, first_response_s=2.0)  # handed on after half of it in silence
    queue.seat_login("1001", SKILLS)
    tasks.submit("T-1", "web")
    tasks.take("T-1", "1001")  # then nothing: the seat stays free, nobody replies
    queue.seat_login("1002", SKILLS)
    assert tasks.queue.seat("1001")["state"] == "available"

    def handed_on() -> bool:
        queue.tick()
        tasks.tick()
        return tasks.task("T-1").get("seat") == "1002"

    wait_until(handed_on, 5, "handed on to the other free seat")
    assert tasks.seat_tasks("1001") == []  # late by now: overdue, its next operator sees
    assert tasks.handed_on("1001") == "T-1"  # its console is told
    with pytest.raises(QueueError):
        tasks.respond("T-1", "1001")


def test_a_request_taken_late_by_a_free_seat_is_not_handed_on_at_once(queue: CallQueue) -> None:
    tasks = tasks_for(queue, first_response_s=2.0)
    tasks.submit("T-1", "web")
    time.sleep(1.2)  # over half its time waiting for a seat
    queue.seat_login("1001", SKILLS)
    queue.seat_login("1002", SKILLS)
    tasks.tick()
    [holder] = [s for s in ("1001", "1002") if offered_to(tasks, s)]
    tasks.take("T-1", holder)
    tasks.tick()  # its operator has just begun reading it
    assert tasks.task("T-1")["seat"] == holder and tasks.task("T-1")["state"] == "held"


def test_a_free_seat_writing_a_long_reply_keeps_its_request_past_half_its_time(
    queue: CallQueue,
) -> None:
    # A request that takes longer than half its time to read and answer: its operator's
    # console saves the reply as they type, which says they are there.
    tasks = tasks_for(queue, first_response_s=3.0)
    queue.seat_login("1001", SKILLS)
    tasks.submit("T-1", "web")
    tasks.take("T-1", "1001")
    queue.seat_login("1002", SKILLS)  # another free seat it could go to
    reply = "您好，您反映的路灯问题"
    for n in range(6):  # free and writing for 1.8 s, over half its time
        time.sleep(0.3)
        tasks.draft("T-1", "1001", reply[: 2 * n + 2])
        queue.tick()
        tasks.tick()
    assert tasks.task("T-1")["seat"] == "1001" and tasks.task("T-1")["state"] == "held"
    assert tasks.task("T-1")["draft"] == reply
    assert tasks.respond("T-1", "1001")[0]


def test_a_free_seat_silent_for_half_the_time_hands_its_request_on_with_the_draft(
    queue: CallQueue,
) -> None:
    tasks = tasks_for(queue, first_response_s=4.0)  # half: 2 s
    queue.seat_login("1001", SKILLS, owner="wang")
    tasks.submit("T-1", "web")
    tasks.take("T-1", "1001")
    tasks.draft("T-1", "1001", "您好，已收到")  # then the operator walks away
    queue.seat_login("1002", SKILLS, owner="zhao")
    time.sleep(2.1)  # silent for over half the request's time, the seat free
    queue.tick()
    tasks.tick()
    task = tasks.task("T-1")
    assert (task["seat"], task["state"]) == ("1002", "offered")  # 1.9 s left to answer
    assert tasks.handed_on("1001") == "T-1"
    tasks.take("T-1", "1002")
    task = tasks.task("T-1")
    assert (task["draft"], task["drafted_by"], task["owner"]) == ("您好，已收到", "wang", "zhao")
    # The seat it left cannot write over the draft the next operator now works from.
    with pytest.raises(QueueError) as refused:
        tasks.draft("T-1", "1001", "您好，已收到，正在核实")
    assert refused.value.code == "not-your-task"
    assert tasks.task("T-1")["draft"] == "您好，已收到"
    tasks.draft("T-1", "1002", "您好，已收到，已转城管")
    assert tasks.task("T-1")["drafted_by"] == "zhao"


def test_a_draft_is_only_the_holders_and_is_capped(queue: CallQueue) -> None:
    from queueing.tasks import DRAFT_MAX_BYTES

    tasks = tasks_for(queue)
    queue.seat_login("1001", SKILLS, owner="wang")
    tasks.submit("T-1", "web")
    with pytest.raises(QueueError) as refused:
        tasks.draft("T-1", "1001", "offered, not taken")
    assert refused.value.code == "task-not-held"
    tasks.take("T-1", "1001")
    with pytest.raises(QueueError) as refused:
        tasks.draft("T-1", "1001", "灯" * (DRAFT_MAX_BYTES // 3 + 1))
    assert refused.value.code == "draft-too-long"
    queue.redis.hset(queue.keys.seat("1001"), "owner", "zhao")  # another operator now
    with pytest.raises(QueueError) as refused:
        tasks.draft("T-1", "1001", "zhao's words on wang's request")
    assert refused.value.code == "not-your-task"
    assert "draft" not in tasks.task("T-1")


def test_a_reply_put_off_by_a_call_is_not_handed_on_as_soon_as_the_call_ends(
    queue: CallQueue,
) -> None:
    tasks = tasks_for(queue, first_response_s=4.0)  # a busy seat's handed on after 2 s
    queue.seat_login("1001", SKILLS)
    tasks.submit("T-1", "web")
    tasks.take("T-1", "1001")
    queue.enqueue("call-1", skill="mandarin")
    queue.answer("call-1", "1001")
    time.sleep(1.5)  # a short call
    queue.complete("call-1")  # free again (no wrap-up here)
    time.sleep(0.7)  # held 2.2 s, over half its time; free only 0.7 s
    queue.seat_login("1002", SKILLS)
    tasks.tick()
    assert tasks.task("T-1")["seat"] == "1001"


def test_a_task_is_only_its_recorded_owners(queue: CallQueue) -> None:
    tasks = tasks_for(queue)
    queue.seat_login("1001", SKILLS, owner="wang")
    tasks.submit("T-1", "web")
    tasks.take("T-1", "1001")
    # The seat now says another operator (a logout that never reached this queue).
    queue.redis.hset(queue.keys.seat("1001"), "owner", "zhao")
    for action in (tasks.respond, tasks.done, tasks.release):
        with pytest.raises(QueueError) as refused:
            action("T-1", "1001")
        assert refused.value.code == "not-your-task"


def test_an_unanswered_task_is_handed_on_when_its_operator_is_taken_by_a_call(
    make_queue: Callable[..., CallQueue],
) -> None:
    queue = make_queue()
    tasks = tasks_for(queue, first_response_s=1.0)  # handed on after half of it
    queue.seat_login("1001", SKILLS)
    tasks.submit("T-1", "web")
    tasks.take("T-1", "1001")
    queue.enqueue("call-1", skill="mandarin")
    queue.answer("call-1", "1001")
    queue.seat_login("1002", SKILLS)

    def handed_on() -> bool:
        tasks.tick()
        return tasks.task("T-1").get("seat") == "1002"

    wait_until(handed_on, 5, "handed on to the free seat")
    assert tasks.seat_tasks("1001") == []
    with pytest.raises(QueueError):
        tasks.respond("T-1", "1001")


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
        tasks.respond("T-1", "1001")
        redis.close()
        server.stop()  # the AOF is written on a clean stop
        server.start()
        redis = Redis.from_url(server.url)
        tasks = TaskQueue(CallQueue(redis, QueueSettings(wrapup_s=0)), TaskSettings(offer_s=1))
        assert tasks.task("T-1")["state"] == "held" and tasks.task("T-1")["responded_at"]

        def offered_again() -> bool:
            tasks.tick()
            return tasks.task("T-2")["state"] == "offered" and int(tasks.task("T-2")["offers"]) >= 2

        wait_until(offered_again, 5, "the lapsed offer offered again")
        assert sorted(tasks.live_ids()) == ["T-1", "T-2"]
        redis.close()
    finally:
        server.stop()


# -- the desk: SQL record, reply, filing, completion, the backstop, the figures ------------


def web_case(db, description: str = "小区路灯不亮", channel: str = "web") -> str:  # type: ignore[no-untyped-def]
    """A request filed by a channel (as the web form, SMS and Open311 do)."""
    from cases.models import Case
    from cases.service import next_case_number, utcnow

    now = utcnow()
    case = Case(
        number=next_case_number(db, now),
        caller_phone="+8613900139000",
        channel=channel,
        description=description,
        address="海口市美兰区",
        status="received",
        created_at=now,
        updated_at=now,
    )
    db.add(case)
    db.commit()
    return case.number


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    from cases.users import add_user
    from tests.test_console import PASSWORD, make_app

    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].desk.sessions() as db:
        add_user(db, "zhao", "operator", PASSWORD, display_name="赵敏", seat="1002")
        db.commit()
    return app


def test_an_operator_takes_replies_files_and_completes_a_web_request(app) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from calls.desk import Actor, DeskError
    from calls.figures import task_figures
    from cases.channel_tasks import ChannelTask
    from cases.models import Case

    desk = app.extensions["hotline"].desk
    wang, zhao = Actor("wang", "operator"), Actor("zhao", "operator")
    desk.login_seat(wang, "1001", ["mandarin", "online"])
    desk.login_seat(zhao, "1002", ["mandarin"])
    with desk.sessions() as db:
        number = web_case(db)
    desk.tasks.submit(number, "web")
    desk.tasks.submit(number, "web")  # a retried submission is the same task
    [shown] = desk.tasks.for_seat(wang, "1001")
    assert shown["number"] == number and shown["state"] == "offered"
    assert shown["description"] == "小区路灯不亮" and not shown["overdue"]
    with pytest.raises(DeskError) as refused:
        desk.tasks.take(zhao, "1001", number)
    assert refused.value.code == "not-your-seat"
    with pytest.raises(DeskError) as refused:
        desk.tasks.take(zhao, "1002", number)
    assert refused.value.code == "not-your-task"
    desk.tasks.take(wang, "1001", number)
    with pytest.raises(DeskError) as refused:
        desk.tasks.complete(wang, "1001", number)
    assert refused.value.code == "reply-first"
    case = desk.tasks.file(
        wang, "1001", number, {"category_code": "taxi-complaint", "dispatch": True}
    )
    assert case.status == "dispatched" and case.department is not None
    assert desk.tasks.reply(wang, "1001", number, "已派市政部门处理，请留意短信。")
    assert not desk.tasks.reply(wang, "1001", number, "补充：维修约需两天。")
    desk.tasks.complete(wang, "1001", number)
    assert desk.tasks.for_seat(wang, "1001") == []
    with desk.sessions() as db:
        row = db.query(ChannelTask).one()
        assert row.taken_by == "wang" and row.first_response_by == "wang"
        assert row.completed_at is not None and 0 <= (row.first_response_s or 0) < 180
        case = db.query(Case).one()
        assert [e.note for e in case.events if e.action == "reply"][0].startswith("已派")
        now = datetime.now(UTC)
        figures = task_figures(db, now - timedelta(hours=1), now + timedelta(hours=1))
    assert figures.tasks == 1 and figures.first_response_rate == 1.0


def test_a_task_redis_lost_is_queued_again_from_sql(app, redis) -> None:  # type: ignore[no-untyped-def]
    from calls.desk import Actor
    from calls.tasks import put_back_lost

    desk = app.extensions["hotline"].desk
    with desk.sessions() as db:
        number = web_case(db, channel="sms")
    desk.tasks.submit(number, "sms")
    entered = desk.tasks.queue.task(number)["entered"]
    redis.flushall()  # a Redis that lost its data
    assert desk.tasks.queue.task(number) == {}
    assert put_back_lost(desk.tasks.queue, desk.sessions) == {"requeued": 1, "finished": 0}
    task = desk.tasks.queue.task(number)
    assert task["state"] == "waiting" and task["entered"] == entered and task["channel"] == "sms"
    desk.login_seat(Actor("wang", "operator"), "1001", ["online"])
    assert desk.tasks.queue.task(number)["state"] == "waiting"  # offered by the sweep
    desk.tasks.queue.tick()
    assert desk.tasks.queue.task(number)["seat"] == "1001"
    assert put_back_lost(desk.tasks.queue, desk.sessions) == {"requeued": 0, "finished": 0}


def test_figures_count_late_and_unanswered_requests(app) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from calls.figures import task_figures
    from cases.channel_tasks import ChannelTask

    desk = app.extensions["hotline"].desk
    with desk.sessions() as db:
        numbers = [web_case(db) for _ in range(4)]
    for number in numbers:
        desk.tasks.submit(number, "open311")
    now = datetime.now(UTC)
    with desk.sessions() as db:
        rows = {r.case_number: r for r in db.query(ChannelTask)}
        rows[numbers[0]].first_response_s = 60  # in time
        rows[numbers[1]].first_response_s = 200  # late
        rows[numbers[2]].submitted_at = now - timedelta(minutes=5)  # unanswered, past 3 min
        db.commit()  # numbers[3]: unanswered, not yet due: not counted
        figures = task_figures(db, now - timedelta(hours=1), now + timedelta(hours=1))
    assert (figures.tasks, figures.answered_in_time, figures.late) == (4, 1, 2)
    assert figures.first_response_rate == round(1 / 3, 4)


def test_the_console_shows_the_task_and_its_operator_works_it(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_desk import signed_in

    desk = app.extensions["hotline"].desk
    with desk.sessions() as db:
        number = web_case(db, "楼道灯坏了一个月")
    client, headers = signed_in(app, "wang")
    assert 'value="online"' in client.get("/console/").get_data(as_text=True)  # a skill
    r = client.post(
        "/console/seat/login",
        data={"seat": "1001", "skills": ["mandarin", "online"]},
        headers=headers,
    )
    assert r.status_code == 204, r.get_data(as_text=True)
    page = client.get("/console/").get_data(as_text=True)
    assert 'id="tasks-card"' in page
    assert 'id="no-tasks"' in client.get("/console/tasks").get_data(as_text=True)
    desk.tasks.submit(number, "web")
    listing = client.get("/console/tasks").get_data(as_text=True)
    assert f'data-number="{number}"' in listing and 'data-state="offered"' in listing
    assert "已等0秒" in listing and " 秒" not in listing  # durations as 2分19秒
    base = f"/console/tasks/{number}"
    taken = client.post(base + "/take", headers=headers)
    assert taken.status_code == 200 and taken.headers["HX-Trigger"] == "tasks-changed"
    assert "楼道灯坏了一个月" in taken.get_data(as_text=True)
    refused = client.post(base + "/done", headers=headers)
    assert refused.status_code == 422 and 'id="task-refused"' in refused.get_data(as_text=True)
    bad = client.post(base + "/file", data={"category_code": "不存在"}, headers=headers)
    assert bad.status_code == 422 and 'id="task-form-error"' in bad.get_data(as_text=True)
    filed = client.post(
        base + "/file",
        data={"category_code": "出租车拒载、绕路", "outcome": "dispatch"},
        headers=headers,
    )
    assert 'id="task-filed"' in filed.get_data(as_text=True)
    replied = client.post(base + "/reply", data={"reply": "已转交通部门。"}, headers=headers)
    assert 'id="task-reply-sent"' in replied.get_data(as_text=True)
    assert "王芳 答复" in replied.get_data(as_text=True)  # her name, not her user name
    done = client.post(base + "/done", headers=headers)
    assert 'id="task-completed"' in done.get_data(as_text=True)
    assert 'id="no-tasks"' in client.get("/console/tasks").get_data(as_text=True)


def test_saving_a_request_says_where_it_went_and_when_no_unit_could_be_found(app) -> None:  # type: ignore[no-untyped-def]
    """A street light whose address names no district finds no unit: the
    operator is told it waits for a dispatcher, keeps what was typed, and can choose the
    unit; a category with its own unit says which unit it went to."""
    from sqlalchemy import select

    from cases.models import Case
    from tests.test_desk import signed_in

    desk = app.extensions["hotline"].desk
    with desk.sessions() as db:
        light, taxi = web_case(db, "小区路灯不亮"), web_case(db, "出租车拒载")
    client, headers = signed_in(app, "wang")
    client.post("/console/seat/login", data={"seat": "1001", "skills": ["online"]}, headers=headers)
    for number in (light, taxi):
        desk.tasks.submit(number, "web")

    def act(number: str, action: str, **form: str) -> str:
        answer = client.post(f"/console/tasks/{number}/{action}", data=form, headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_data(as_text=True)

    def file(number: str, **form: str) -> str:
        return act(number, "file", outcome="dispatch", **form)

    act(light, "take")
    unplaced = file(light, category_code="路灯不亮", reply="已记录，尽快处理。")
    assert 'data-outcome="needs-dispatch"' in unplaced and 'role="alert"' in unplaced
    assert "未能确定承办单位：已转入待派单" in unplaced
    assert "已记录，尽快处理。" in unplaced  # the reply box as it was
    placed = file(light, category_code="路灯不亮", department_code="urban-management")
    assert "已保存，已派发至市综合行政执法局（城管）" in placed
    act(light, "reply", reply="已记录，尽快处理。")
    assert "已处理完毕，已移出您的列表" in act(light, "done")
    act(taxi, "take")
    taxi_page = file(taxi, category_code="出租车拒载、绕路")
    assert "已保存，已派发至市交通运输局" in taxi_page
    with desk.sessions() as db:
        statuses = dict(db.execute(select(Case.number, Case.status)).all())
    assert statuses[light] == statuses[taxi] == "dispatched"


def test_the_wallboard_shows_tasks_waiting_overdue_and_the_first_response_rate(app) -> None:  # type: ignore[no-untyped-def]
    import re

    from tests.test_desk import signed_in

    desk = app.extensions["hotline"].desk
    with desk.sessions() as db:
        numbers = [web_case(db) for _ in range(2)]
    for number in numbers:
        desk.tasks.submit(number, "sms")
    client, _ = signed_in(app, "li")
    page = client.get("/console/wallboard").get_data(as_text=True)
    assert re.search(r'id="tasks-waiting">2<', page)
    assert re.search(r'id="fig-task-rate">—<', page)  # nothing answered or due yet


def test_the_next_operator_on_a_seat_never_gets_the_last_ones_tasks(app) -> None:  # type: ignore[no-untyped-def]
    from calls.desk import Actor, DeskError

    desk = app.extensions["hotline"].desk
    wang, zhao = Actor("wang", "operator"), Actor("zhao", "operator")
    with desk.sessions() as db:
        number = web_case(db, "我家门锁坏了")
    desk.login_seat(wang, "1001", SKILLS)
    desk.tasks.submit(number, "web")
    desk.tasks.take(wang, "1001", number)
    desk.logout_seat(wang, "1001")  # no sweep in between
    task = desk.tasks.queue.task(number)
    assert (task["state"], task["seat"], task["owner"]) == ("waiting", "", "")
    desk.login_seat(zhao, "1001", SKILLS)
    shown = desk.tasks.for_seat(zhao, "1001")
    assert all(t["state"] == "offered" for t in shown)  # a fresh offer at most, not held
    with pytest.raises(DeskError) as refused:
        desk.tasks.reply(zhao, "1001", number, "zhao replies to wang's task")
    assert refused.value.code in ("task-not-held", "not-your-task")


def test_a_reply_refused_because_the_task_was_handed_on_is_not_saved(app) -> None:  # type: ignore[no-untyped-def]
    from calls.desk import Actor, DeskError
    from cases.channel_tasks import ChannelTask
    from cases.models import Case

    desk = app.extensions["hotline"].desk
    tasks = desk.tasks.queue
    wang, zhao = Actor("wang", "operator"), Actor("zhao", "operator")
    with desk.sessions() as db:
        number = web_case(db)
    desk.login_seat(wang, "1001", SKILLS)
    desk.tasks.submit(number, "web")
    desk.tasks.take(wang, "1001", number)
    checked = desk.tasks._held

    def checked_then_handed_on(seat: str, task: str) -> None:
        checked(seat, task)
        # Meanwhile the sweep hands the task on and another seat takes it.
        desk.login_seat(zhao, "1002", SKILLS)
        tasks.release(task, "1001", "reply due")
        tasks.tick()
        tasks.take(task, "1002")

    desk.tasks._held = checked_then_handed_on  # type: ignore[method-assign]
    with pytest.raises(DeskError) as refused:
        desk.tasks.reply(wang, "1001", number, "wang's reply")
    desk.tasks._held = checked  # type: ignore[method-assign]
    assert refused.value.code == "not-your-task"
    with desk.sessions() as db:
        row = db.query(ChannelTask).one()
        case = db.query(Case).one()
        assert row.first_response_at is None and row.first_response_by is None
        assert case.reply == "" and not [e for e in case.events if e.action == "reply"]
    assert not tasks.task(number).get("responded_at") and tasks.task(number)["seat"] == "1002"


def test_a_reply_sql_did_not_keep_is_undone_in_redis_and_kept_to_send_again(app) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from calls.desk import Actor, DeskError
    from cases.channel_tasks import ChannelTask

    desk = app.extensions["hotline"].desk
    tasks = desk.tasks.queue
    wang = Actor("wang", "operator")
    with desk.sessions() as db:
        number = web_case(db)
        # The database refuses the trail's write (as a full disk or a lost primary would).
        db.execute(
            text(
                "CREATE TRIGGER refuse_events BEFORE INSERT ON case_event "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
        db.commit()
    desk.login_seat(wang, "1001", SKILLS)
    desk.tasks.submit(number, "web")
    desk.tasks.take(wang, "1001", number)
    with pytest.raises(DeskError) as refused:
        desk.tasks.reply(wang, "1001", number, "路灯已报修")
    assert refused.value.code == "reply-not-saved"
    task = tasks.task(number)
    assert not task.get("responded_at") and task["unsaved_reply"] == "路灯已报修"
    assert tasks.redis.zscore(tasks.keys.tasks_unanswered, number) is not None
    [shown] = desk.tasks.for_seat(wang, "1001")
    assert shown["unsaved_reply"] == "路灯已报修" and not shown["responded"]
    with desk.sessions() as db:
        db.execute(text("DROP TRIGGER refuse_events"))
        db.commit()
    assert desk.tasks.reply(wang, "1001", number, "路灯已报修")  # the first response now
    assert "unsaved_reply" not in tasks.task(number)
    with desk.sessions() as db:
        assert db.query(ChannelTask).one().first_response_by == "wang"


def test_a_task_redis_lost_after_its_reply_comes_back_answered(app, redis) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from calls.desk import Actor
    from calls.tasks import put_back_lost
    from cases.channel_tasks import ChannelTask

    desk = app.extensions["hotline"].desk
    tasks = desk.tasks.queue
    wang = Actor("wang", "operator")
    with desk.sessions() as db:
        number = web_case(db)
    desk.login_seat(wang, "1001", SKILLS)
    desk.tasks.submit(number, "web")
    desk.tasks.take(wang, "1001", number)
    assert desk.tasks.reply(wang, "1001", number, "answered in time")
    with desk.sessions() as db:  # filed 4 minutes ago, answered in time
        row = db.query(ChannelTask).one()
        row.submitted_at -= timedelta(minutes=4)
        row.first_response_at -= timedelta(minutes=3)
        db.commit()
    redis.flushall()  # Redis restarted without its AOF
    assert put_back_lost(tasks, desk.sessions) == {"requeued": 1, "finished": 0}
    tasks.tick()
    task = tasks.task(number)
    assert tasks.overdue() == [] and task["responded_at"] and task["responded_by"] == "wang"
    assert 50_000 <= int(task["response_ms"]) <= 70_000
    desk.login_seat(wang, "1001", SKILLS)
    tasks.tick()
    desk.tasks.take(wang, "1001", number)
    desk.tasks.complete(wang, "1001", number)  # no second reply demanded


def test_a_reply_to_a_text_or_web_request_is_texted_at_once(app) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from calls.desk import Actor
    from calls.sms import SmsSettings
    from cases.models import Case, add_opt_out
    from cases.sms import SmsMessage

    desk = app.extensions["hotline"].desk
    desk.tasks.sms = SmsSettings(provider="twilio", public_base_url="https://12345.example")
    wang = Actor("wang", "operator")
    desk.login_seat(wang, "1001", SKILLS)
    with desk.sessions() as db:
        by_text = web_case(db, "噪音扰民", channel="sms")
        by_open311 = web_case(db, "井盖缺失", channel="open311")
        opted = web_case(db, "垃圾未清运", channel="web")
    with desk.sessions() as db:
        case = db.scalars(select(Case).where(Case.number == opted)).one()
        case.caller_phone = "+8613900139001"
        add_opt_out(db, "+8613900139001", "sms")
        db.commit()
    for number, channel in ((by_text, "sms"), (by_open311, "open311"), (opted, "web")):
        desk.tasks.submit(number, channel)
        desk.tasks.queue.tick()
        desk.tasks.take(wang, "1001", number)
        desk.tasks.reply(wang, "1001", number, "已通知城管部门今日处理。")
        desk.tasks.complete(wang, "1001", number)
    with desk.sessions() as db:
        [text] = db.scalars(select(SmsMessage)).all()
        assert (text.purpose, text.status) == ("task_reply", "pending")
        assert text.phone == "+8613900139000"
        assert by_text in text.body and "已通知城管部门今日处理。" in text.body


def test_the_console_says_a_request_was_handed_on_from_its_seat(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_desk import signed_in

    desk = app.extensions["hotline"].desk
    tasks = desk.tasks.queue
    with desk.sessions() as db:
        number = web_case(db, "楼道灯坏了一个月")
    client, headers = signed_in(app, "wang")
    client.post("/console/seat/login", data={"seat": "1001", "skills": ["online"]}, headers=headers)
    desk.tasks.submit(number, "web")
    client.post(f"/console/tasks/{number}/take", headers=headers)
    assert 'id="task-handed-on"' not in client.get("/console/tasks").get_data(as_text=True)
    # Its operator took it 200 s ago at a free seat and walked away: no reply.
    then = int(time.time() * 1000) - 200_000
    tasks.redis.hset(tasks.keys.task(number), "taken_at", then)
    tasks.redis.hset(tasks.keys.seat("1001"), "since", then)
    tasks.tick()
    assert tasks.task(number)["state"] in ("waiting", "offered")
    listing = client.get("/console/tasks").get_data(as_text=True)
    assert 'id="task-handed-on"' in listing and number in listing


def test_the_console_saves_the_draft_and_the_next_operator_starts_from_it(app) -> None:  # type: ignore[no-untyped-def]
    from calls.desk import Actor
    from calls.tasks import REPLY_MAX_CHARS
    from tests.test_desk import signed_in

    desk = app.extensions["hotline"].desk
    tasks = desk.tasks.queue
    with desk.sessions() as db:
        number = web_case(db, "楼道灯坏了一个月")
    client, headers = signed_in(app, "wang")
    client.post("/console/seat/login", data={"seat": "1001", "skills": ["online"]}, headers=headers)
    desk.tasks.submit(number, "web")
    taken = client.post(f"/console/tasks/{number}/take", headers=headers).get_data(as_text=True)
    assert f'data-draft-url="/console/tasks/{number}/draft"' in taken
    draft = "您好，楼道灯的问题已记录，"
    saved = client.post(f"/console/tasks/{number}/draft", data={"reply": draft}, headers=headers)
    assert saved.status_code == 204
    assert tasks.task(number)["draft"] == draft and tasks.task(number)["drafted_by"] == "wang"
    long = client.post(
        f"/console/tasks/{number}/draft", data={"reply": "灯" * 1500}, headers=headers
    )
    assert long.status_code == 204 and tasks.task(number)["draft"] == "灯" * REPLY_MAX_CHARS
    client.post(f"/console/tasks/{number}/draft", data={"reply": draft}, headers=headers)
    # Her own draft is her reply box's text, with no word of another operator.
    mine = client.get(f"/console/tasks/{number}").get_data(as_text=True)
    assert draft in mine and 'id="task-draft-from"' not in mine
    # She walked away 100 s ago (over half of 180 s): the sweep hands it on, draft and all.
    then = int(time.time() * 1000) - 100_000
    for key, field in ((tasks.keys.task(number), "taken_at"), (tasks.keys.seat("1001"), "since")):
        tasks.redis.hset(key, field, then)
    tasks.redis.hset(tasks.keys.task(number), "drafted_at", then)
    zhao = Actor("zhao", "operator")
    desk.login_seat(zhao, "1002", SKILLS)
    tasks.tick()
    assert tasks.task(number)["seat"] == "1002"
    late = client.post(f"/console/tasks/{number}/draft", data={"reply": "x"}, headers=headers)
    assert late.status_code == 409 and tasks.task(number)["draft"] == draft
    desk.tasks.take(zhao, "1002", number)
    [shown] = desk.tasks.for_seat(zhao, "1002")
    assert shown["draft"] == draft and shown["draft_by_other"] == "王芳"
    other, other_headers = signed_in(app, "zhao")
    other.post(
        "/console/seat/login", data={"seat": "1002", "skills": SKILLS}, headers=other_headers
    )
    page = other.get(f"/console/tasks/{number}").get_data(as_text=True)
    assert f">{draft}</textarea>" in page and 'id="task-draft-from"' in page and "王芳" in page
    # Sent, the draft is gone: the box is empty for a further reply.
    replied = other.post(
        f"/console/tasks/{number}/reply", data={"reply": draft + "已派修。"}, headers=other_headers
    ).get_data(as_text=True)
    assert 'id="task-reply-sent"' in replied and "></textarea>" in replied
    assert "draft" not in tasks.task(number)
