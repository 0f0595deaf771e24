"""Tasks: online, SMS and Open311 requests waiting in the operators' queue, taken by
seats between calls, with a first response due within 3 minutes (GB/T 33358).
The channels call ``TaskDesk.submit`` once their case is filed.

The first response is the operator's first reply to the citizen (``TaskDesk.reply``):
written at the seat, kept on the case's trail, and the hotline's answer on a case not
dispatched (the SMS outbox texts it on resolution, Open311 shows it). Taking a task is
not a response; completing one needs a reply first. Its time runs from the request's
arrival (the task's submission) to that reply.

The live task is in Redis (queueing.tasks); each has a row in SQL (cases.channel_tasks),
written before it is queued, from which ``put_back_lost`` rebuilds what a Redis that
lost data no longer has: a request is never lost."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from calls.casework import arm_clocks
from calls.sms import SmsSettings, queue_task_reply
from cases.channel_tasks import ChannelTask
from cases.models import Case, CaseEvent, User
from cases.service import apply_form, parse_form, utcnow
from queueing import QueueError
from queueing.tasks import TASK_CHANNELS, TaskQueue, load_task_settings

if TYPE_CHECKING:
    from calls.desk import Actor, Desk

log = logging.getLogger("hotline.tasks")

REPLY_MAX_CHARS = 1000

# code -> (zh-CN, English), as calls.desk.MESSAGES.
TASK_MESSAGES: dict[str, tuple[str, str]] = {
    "no-such-task": ("找不到该网络诉求", "No such request"),
    "not-your-task": ("该诉求未分配给您的坐席", "This request was not offered to your seat"),
    "task-done": ("该诉求已办结", "This request is already completed"),
    "task-not-held": ("请先接收该诉求", "Take the request first"),
    "reply-required": ("请先填写答复内容", "Write a reply first"),
    "reply-too-long": (
        f"答复最多 {REPLY_MAX_CHARS} 字",
        f"A reply is at most {REPLY_MAX_CHARS} characters",
    ),
    "reply-not-saved": (
        "答复未能保存，请稍后重新发送",
        "The reply was not saved; send it again shortly",
    ),
    "reply-first": (
        "请先答复群众，再办结该诉求",
        "Reply to the citizen before completing the request",
    ),
}


def _ms(moment: datetime) -> int:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


class TaskDesk:
    def __init__(self, desk: Desk) -> None:
        from calls.desk import MESSAGES  # loaded: the desk is being made

        self.desk = desk
        self.queue = TaskQueue(desk.queue, load_task_settings())
        self.sms = SmsSettings.from_env()
        for code, words in TASK_MESSAGES.items():
            MESSAGES.setdefault(code, words)

    def _error(self, code: str, status: int = 409) -> Exception:
        from calls.desk import DeskError

        return DeskError(code, status)

    # -- the channels ---------------------------------------------------------------------

    def submit(self, case_number: str, channel: str) -> None:
        """Queue the request behind ``case_number`` (channel web | sms | open311) as a
        task for the operators. Idempotent. The SQL row comes first: if Redis is away
        the reaper's ``put_back_lost`` queues it later."""
        if channel not in TASK_CHANNELS:
            raise ValueError(f"channel must be one of {TASK_CHANNELS}, not {channel!r}")
        with self.desk.sessions() as db:
            row = record_task(db, case_number, channel)
            entered_ms = _ms(row.submitted_at)
            done = row.completed_at is not None
        if done:
            return
        try:
            self.queue.submit(case_number, channel, entered_ms)
        except RedisError:
            log.warning("task %s left for the reaper to queue: Redis is unavailable", case_number)

    # -- the seat's operator ---------------------------------------------------------------

    def _seat(self, actor: Actor, seat: str) -> None:
        from calls.desk import _ident

        self.desk._own_seat(actor, _ident("seat", seat))

    def _queue_call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self.queue, name)(*args)
        except QueueError as exc:
            status = 404 if exc.code == "no-such-task" else 409
            raise self._error(exc.code, status) from None
        except ValueError:
            raise self._error("no-such-task", 404) from None

    def for_seat(self, actor: Actor, seat: str) -> list[dict[str, object]]:
        """The tasks offered to or held by the seat, oldest first, with their cases."""
        self._seat(actor, seat)
        tasks = self.queue.seat_tasks(seat)
        if not tasks:
            return []
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        with self.desk.sessions() as db:
            cases = {
                c.number: c
                for c in db.scalars(select(Case).where(Case.number.in_([t["id"] for t in tasks])))
            }
            # The trail names who replied as the screens do: 王芳, not wang.
            repliers = {e.actor for c in cases.values() for e in c.events if e.action == "reply"}
            repliers |= {t["drafted_by"] for t in tasks if t.get("drafted_by")}
            people = (
                dict(
                    db.execute(
                        select(User.username, User.display_name).where(User.username.in_(repliers))
                    ).all()
                )
                if repliers
                else {}
            )
            out: list[dict[str, object]] = []
            for task in tasks:
                case = cases.get(task["id"])
                if case is None:
                    continue
                due_ms = int(task.get("due") or 0)
                out.append(
                    {
                        "number": case.number,
                        "state": task["state"],
                        "channel": task.get("channel", case.channel),
                        "description": case.description,
                        "address": case.address,
                        "category": case.category.name if case.category else "",
                        "department": case.department.name if case.department else "",
                        "status": case.status,
                        "waited_s": max(0, (now_ms - int(task.get("entered") or now_ms)) // 1000),
                        "responded": bool(task.get("responded_at")),
                        "unsaved_reply": task.get("unsaved_reply", ""),
                        "draft": task.get("draft", ""),
                        "draft_by_other": _other_drafter(task, people),
                        "due_in_s": (due_ms - now_ms) // 1000,
                        "due_ms": due_ms,  # the first reply's deadline, Redis clock
                        "entered_ms": int(task.get("entered") or now_ms),
                        "overdue": not task.get("responded_at") and due_ms < now_ms,
                        "trail": [
                            {"at": e.at, "actor": people.get(e.actor) or e.actor, "note": e.note}
                            for e in case.events
                            if e.action == "reply"
                        ],
                    }
                )
        return out

    def handed_on(self, actor: Actor, seat: str) -> str:
        """The request last handed on from the seat because its reply was due (its
        operator away or busy), for the console to say so; '' for none."""
        self._seat(actor, seat)
        return self.queue.handed_on(seat)

    def take(self, actor: Actor, seat: str, number: str) -> None:
        self._seat(actor, seat)
        self._queue_call("take", number, seat)
        with self.desk.sessions() as db:
            row = db.scalar(select(ChannelTask).where(ChannelTask.case_number == number))
            if row is not None and row.taken_at is None:
                row.taken_at, row.taken_by = utcnow(), actor.username
                db.commit()
        self.desk.record(actor, "task-take", number, seat)

    def release(self, actor: Actor, seat: str, number: str) -> None:
        """Decline an offer, or put a held task back for another operator."""
        self._seat(actor, seat)
        self._queue_call("release", number, seat, "declined")
        self.desk.record(actor, "task-release", number, seat)

    def save_draft(self, actor: Actor, seat: str, number: str, text: str) -> None:
        """The reply the operator is writing, saved by the console as they type (capped
        at a reply's length): the next seat's operator starts from it if the request is
        handed on, and it tells the queue the operator is at the seat. A request no
        longer this seat's is refused (not-your-task) and keeps the draft it has."""
        self._seat(actor, seat)
        self._queue_call("draft", number, seat, text[:REPLY_MAX_CHARS])

    def _held(self, seat: str, number: str) -> None:
        try:
            task = self.queue.task(number)
        except ValueError:
            raise self._error("no-such-task", 404) from None
        if not task:
            raise self._error("no-such-task", 404)
        if task.get("seat") != seat:
            raise self._error("task-done" if task.get("state") == "done" else "not-your-task")
        if task.get("state") != "held":
            raise self._error("task-not-held")

    def reply(self, actor: Actor, seat: str, number: str, text: str) -> bool:
        """The operator's reply to the citizen, on the case's trail; on a case the
        hotline answers itself (not dispatched) it is the case's reply; to a request
        that came by text or the web form it is texted at once (calls.sms). The first
        one is the task's first response. Returns whether it was the first.

        Redis first: its script checks that the task is still this seat's and marks the
        response in one step, so a task handed on meanwhile is refused with nothing
        written. SQL then keeps the reply; should that fail, the response is undone in
        Redis and the text kept on the task (``unsaved_reply``) for the operator to send
        again: no reply is counted that the case does not have, and none is lost."""
        self._seat(actor, seat)
        text = text.strip()
        if not text:
            raise self._error("reply-required", 422)
        if len(text) > REPLY_MAX_CHARS:
            raise self._error("reply-too-long", 422)
        self._held(seat, number)
        with self.desk.sessions() as db:
            if db.scalar(select(Case.id).where(Case.number == number)) is None:
                raise self._error("no-such-case", 404)
        first, response_ms = self._queue_call("respond", number, seat)
        try:
            self._keep_reply(actor, number, text)
        except Exception:
            log.exception("reply on task %s not saved; kept for the operator", number)
            try:
                if first:
                    self.queue.unrespond(number, seat, response_ms)
                self.queue.redis.hset(self.queue.keys.task(number), "unsaved_reply", text)
            except RedisError:
                log.exception("task %s: the unsaved reply's response could not be undone", number)
            raise self._error("reply-not-saved", 503) from None
        try:  # sent: neither the unsaved reply nor the draft is to be written again
            self.queue.redis.hdel(self.queue.keys.task(number), "unsaved_reply", "draft")
        except RedisError:
            log.warning("task %s: a kept reply, now saved, stays on the task", number)
        return bool(first)

    def _keep_reply(self, actor: Actor, number: str, text: str) -> None:
        now = utcnow()
        with self.desk.sessions() as db:
            case = db.scalars(select(Case).where(Case.number == number)).one()
            event = CaseEvent(
                at=now,
                actor=actor.username,
                action="reply",
                from_status=case.status,
                to_status=case.status,
                note=text,
            )
            case.events.append(event)
            if case.dispatched_at is None:
                case.reply = text
            case.updated_at = now
            row = db.scalar(select(ChannelTask).where(ChannelTask.case_number == number))
            if row is not None and row.first_response_at is None:
                row.first_response_at, row.first_response_by = now, actor.username
                row.first_response_s = round((now - _aware(row.submitted_at)).total_seconds(), 1)
            db.flush()  # the event's id names its text
            queue_task_reply(db, self.sms, case, text, event.id)
            db.commit()

    def file(self, actor: Actor, seat: str, number: str, form: dict[str, Any]) -> Case:
        """Category, unit, and dispatch or 直接办结: the same form and rules as a call's
        case (cases.service.parse_form / apply_form). InvalidForm passes through."""
        self._seat(actor, seat)
        self._held(seat, number)
        form = {k: v for k, v in form.items() if k != "seat"}
        with self.desk.sessions() as db:
            case = db.scalar(select(Case).where(Case.number == number))
            if case is None:
                raise self._error("no-such-case", 404)
            draft = parse_form(db, form)
            apply_form(db, case, draft, actor.username)
            arm_clocks(self.desk.queue, case)
            db.refresh(case)
            _ = case.category, case.department
        return case

    def complete(self, actor: Actor, seat: str, number: str) -> None:
        """The operator is done with the request: replied (required), filed."""
        self._seat(actor, seat)
        self._held(seat, number)
        if not self.queue.task(number).get("responded_at"):
            raise self._error("reply-first", 422)
        self._queue_call("done", number, seat)
        with self.desk.sessions() as db:
            row = db.scalar(select(ChannelTask).where(ChannelTask.case_number == number))
            if row is not None and row.completed_at is None:
                row.completed_at, row.completed_by = utcnow(), actor.username
                db.commit()
        self.desk.record(actor, "task-done", number, seat)


def _other_drafter(task: dict[str, str], people: dict[str, str]) -> str:
    """Who began the task's draft at the seat it was handed on from ('' if it is its
    operator's own, or none), named as the screens name people."""
    drafter = task.get("drafted_by", "")
    if not task.get("draft") or not drafter or drafter == task.get("owner"):
        return ""
    return people.get(drafter) or drafter


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def record_task(session: Session, case_number: str, channel: str) -> ChannelTask:
    """The task's SQL row, made once (a second submission finds it)."""
    row = session.scalar(select(ChannelTask).where(ChannelTask.case_number == case_number))
    if row is not None:
        return row
    case = session.scalar(select(Case).where(Case.number == case_number))
    if case is None:
        raise ValueError(f"no case {case_number!r}")
    row = ChannelTask(
        case_id=case.id, case_number=case.number, channel=channel, submitted_at=utcnow()
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # submitted at the same moment by another process
        session.rollback()
        row = session.scalars(
            select(ChannelTask).where(ChannelTask.case_number == case_number)
        ).one()
    return row


def put_back_lost(
    tasks: TaskQueue, sessions: sessionmaker[Session], limit: int = 500
) -> dict[str, int]:
    """The backstop (the reaper, every half minute): an open task that Redis no longer
    has is queued again with its arrival time; one Redis finished while SQL missed it
    is marked done in SQL."""
    requeued = finished = 0
    with sessions() as db:
        rows = list(
            db.scalars(
                select(ChannelTask)
                .where(ChannelTask.completed_at.is_(None))
                .order_by(ChannelTask.submitted_at)
                .limit(limit)
            )
        )
        if not rows:
            return {"requeued": 0, "finished": 0}
        pipe = tasks.redis.pipeline(transaction=False)
        for row in rows:
            pipe.hmget(tasks.keys.task(row.case_number), "state", "done_at")
        for row, (state, done_at) in zip(rows, pipe.execute(), strict=True):
            if state is None:
                answered = row.first_response_at
                tasks.submit(
                    row.case_number,
                    row.channel,
                    _ms(row.submitted_at),
                    None if answered is None else _ms(answered),
                    row.first_response_by or "",
                )
                log.warning("task %s was not in Redis; queued again", row.case_number)
                requeued += 1
            elif state == b"done":
                row.completed_at = datetime.fromtimestamp(int(done_at) / 1000, UTC)
                finished += 1
        db.commit()
    return {"requeued": requeued, "finished": finished}
