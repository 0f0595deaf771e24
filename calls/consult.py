"""Consult transfer and three-way call (咨询转接 / 三方通话): the operator rings a unit's
duty phone (cases.duty_numbers) while the citizen holds with music, talks to the unit,
then either hands the citizen over (complete: citizen and unit talk, the operator
leaves), brings all three together (three-way; the operator may leave later), or lets
the unit go and is back with the citizen (cancel).

The queue keeps the call on_call at the operator's seat throughout (queueing/lua/
consult.lua: consulting, threeway; the unit hanging up in a three-way call makes it an
ordinary talk again); handing over ends it as transferred to the unit
(transfer.lua, kind 'unit'), the seat goes to wrap-up, and a job writes who was reached
into the case. The telephony (calls.transfers.Telephony) moves the legs:

- Asterisk (agi_scripts/transfers.py): the caller waits in a ConfBridge of their own
  (music until a member joins); the operator's phone Dials the duty phone; the unit's
  leg is redirected into the caller's room (three-way and complete), or the operator
  joins it (cancel). See [hotline-consult-*] in docker/asterisk/extensions.conf.
- Twilio (calls.transfers.TwilioMover): the caller waits in a conference (<Dial>
  <Conference>, its wait music); the operator and the unit are called into a second
  conference by the participants API and moved into the caller's by call updates.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from redis import Redis
from rq import Retry
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from calls.handler import job_id_for
from calls.transfers import TelephonyError, record_transfer
from cases.duty_numbers import DutyEntry, DutyNumberError, duty_entry
from ivr import events as e
from queueing import QueueError
from queueing.keys import QueueKeys

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from calls.desk import Actor, Desk
    from calls.handler import CallHandler
    from cases.models import Case

log = logging.getLogger("hotline.consult")

LEGS_TTL_S = 86400
STEPS = ("start", "threeway", "complete", "cancel", "leave")
UNIT_TRANSFER = "unit-transfer"


class ConsultMover(Protocol):
    def can_consult(self, call_id: str, channel: str) -> bool: ...

    def consult_start(self, call_id: str, channel: str, seat: str, number: str) -> None: ...

    def consult_threeway(self, call_id: str, channel: str) -> None: ...

    def consult_complete(self, call_id: str, channel: str) -> None: ...

    def consult_cancel(self, call_id: str, channel: str) -> None: ...

    def consult_leave(self, call_id: str, channel: str) -> None: ...


@dataclass
class ConsultLegs:
    """The telephony's own names for a consult's legs (an Asterisk channel, a Twilio
    call sid), by role: 'operator', 'unit'; on Twilio also 'seat', the seat's <Dial>
    leg as it picked up (listening in moves it into the call's conference, where it is
    the 'operator' from then on). Kept a day in Redis."""

    redis: Redis
    keys: QueueKeys

    def _key(self, call_id: str) -> str:
        return self.keys.consult(call_id)

    def get(self, call_id: str) -> dict[str, str]:
        raw = self.redis.hgetall(self._key(call_id))
        return {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }

    def save(self, call_id: str, **legs: str) -> None:
        key = self._key(call_id)
        self.redis.hset(key, mapping=cast(Any, legs))
        self.redis.expire(key, LEGS_TTL_S)

    def drop(self, call_id: str, *roles: str) -> None:
        if roles:
            self.redis.hdel(self._key(call_id), *roles)
        else:
            self.redis.delete(self._key(call_id))


class ConsultDesk:
    """The desk's consult actions (attached as ``desk.consults``): only the call's
    operator (or a supervisor), only for a connected call; every step is audited."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def _unit(self, code: str) -> DutyEntry:
        from calls.desk import DeskError

        try:
            with self.desk.sessions() as db:
                return duty_entry(db, code, self.desk.handler.phones)
        except DutyNumberError as exc:
            status = 404 if exc.code == "no-unit" else 422
            raise DeskError(exc.code, status, {"unit": code[:48]}) from None
        except SQLAlchemyError:
            raise DeskError("consult-failed", 502) from None

    def step(
        self, actor: Actor, call: str, step: str, telephony: ConsultMover, unit: str = ""
    ) -> str:
        """One step of a consult; returns where it stands now: consulting, threeway,
        cancelled, or transferred (the caller is the unit's)."""
        from calls.desk import DeskError, _desk_error

        if step not in STEPS:
            raise DeskError("bad-argument", 400, {"detail": "step"})
        record, channel = self.desk._connected_call(actor, call)
        seat = record["seat"]
        consult = record.get("consult", "")
        if not telephony.can_consult(call, channel):
            raise DeskError("consult-failed", 502)
        if step == "start":
            entry = self._unit(unit)
            return self._start(actor, call, channel, seat, entry, telephony)
        needed = {"threeway": "consulting", "cancel": "consulting", "leave": "threeway"}
        if step in needed and consult != needed[step]:
            raise DeskError("no-consult", 409)
        if step == "complete" and consult not in ("consulting", "threeway"):
            raise DeskError("no-consult", 409)
        if step == "complete" and consult == "threeway":
            step = "leave"  # the unit is with the caller already: the operator leaves
        move = {
            "threeway": telephony.consult_threeway,
            "cancel": telephony.consult_cancel,
            "complete": telephony.consult_complete,
            "leave": telephony.consult_leave,
        }[step]
        try:
            move(call, channel)
        except TelephonyError as exc:
            log.error("consult %s of %s failed: %s", step, call, exc)
            self.desk.record(actor, "consult-failed", call, f"{step} {exc}")
            raise DeskError("consult-failed", 502) from None
        unit_code = record.get("consult_unit", "")
        try:
            if step in ("threeway", "cancel"):
                result = self.desk.queue.consult(call, seat, step)
            else:
                self.desk.queue.transfer(call, seat, "unit", unit_code)
                result = "transferred"
        except QueueError as exc:
            raise _desk_error(exc, seat=seat) from None
        if result == "transferred":
            self._handed_over(actor, call, unit_code, step)
        self.desk.record(actor, f"consult-{step}", call, unit_code)
        return result

    def _start(
        self,
        actor: Actor,
        call: str,
        channel: str,
        seat: str,
        entry: DutyEntry,
        telephony: ConsultMover,
    ) -> str:
        from calls.desk import DeskError, _desk_error

        try:
            result = self.desk.queue.consult(call, seat, "start", entry.code[:32])
        except QueueError as exc:
            raise _desk_error(exc, seat=seat) from None
        try:
            telephony.consult_start(call, channel, seat, entry.phone)
        except TelephonyError as exc:
            log.error("consult of %s with %s failed: %s", call, entry.code, exc)
            self.desk.queue.consult(call, seat, "cancel")  # the caller did not move: say so
            self.desk.record(actor, "consult-failed", call, f"start {entry.code} {exc}")
            raise DeskError("consult-failed", 502) from None
        self.desk.record(actor, "consult-start", call, entry.code)
        return result

    def _handed_over(self, actor: Actor, call: str, unit_code: str, step: str) -> None:
        handed_over(self.desk.handler, call, unit_code, step, actor.username)


# -- the case's record of a unit transfer (an RQ job) ----------------------------------


def record_unit_transfer(call_id: str, unit_code: str, how: str, actor: str) -> str:
    """The call's case says which unit took the caller, at which duty phone, and how
    (a consult transfer, or a three-way call the operator left), once."""
    from cases.models import Department

    def mark(session: Session, case: Case) -> str:
        unit = session.scalar(select(Department).where(Department.code == unit_code))
        name = unit.name if unit is not None else unit_code
        phone = (unit.duty_phone or "") if unit is not None else ""
        way = "三方通话后退出" if how == "threeway" else "咨询后转接"
        case.transferred_to = unit_code[:32]
        return f"转接 {name}（值班电话 {phone}）：{way}"

    return record_transfer(call_id, UNIT_TRANSFER, actor, mark)


# -- a leg that hangs up on its own ------------------------------------------------------

OPERATOR_LEFT = ("handed-over", "requeued", "completed", "none")


def operator_left(handler: CallHandler, legs: ConsultLegs, call_id: str, leg: str) -> str:
    """The operator's phone hung up on its own (not by a desk step: those forget the
    leg before ending it) during a consult, a three-way call, or back with the caller
    after a cancel. The operator's part ends and the seat goes to wrap-up:

    - three-way: the caller stays with the unit, handed over as by 退出三方通话
      ('handed-over');
    - consulting: the caller, holding alone, goes back in line at the head of their
      skill ('requeued'): never left with music and nobody to come;
    - after a cancel: the conversation is over, as after any other ('completed').

    Returns what happened, 'none' for a leg that is not the call's operator any more."""
    if not leg or legs.get(call_id).get("operator") != leg:
        return "none"
    legs.drop(call_id)
    record = handler.queue.call(call_id)
    seat = record.get("seat", "")
    if record.get("state") != "on_call" or not seat:
        return "none"
    consult = record.get("consult", "")
    try:
        if consult == "threeway":
            unit = record.get("consult_unit", "")
            handler.queue.transfer(call_id, seat, "unit", unit)
            handed_over(handler, call_id, unit, "leave", record.get("seat_owner") or seat)
            return "handed-over"
        if consult == "consulting":
            from calls.transfers import flow_back_in_line

            skill = record.get("skill", "")
            handler.queue.consult(call_id, seat, "cancel")
            handler.queue.transfer(call_id, seat, "skill", skill)
            flow_back_in_line(handler, call_id, skill)
            return "requeued"
    except QueueError as exc:  # the call moved on meanwhile: the conversation is over
        log.warning("operator of %s left during a consult: %s", call_id, exc)
    handler.conversation_ended(call_id, by="agent")
    return "completed"


UNIT_LEFT = ("cancelled", "talking", "none")


def unit_left(handler: CallHandler, legs: ConsultLegs, call_id: str) -> str:
    """The unit's duty phone hung up, was busy or never answered (the telephony's half:
    the operator is back with the caller), and the queue says so:

    - consulting: as after 取消 ('cancelled');
    - three-way: operator and caller talk on, an ordinary call again ('talking').

    Returns 'none' when the call is in neither any more (a desk step moved it on)."""
    record = handler.queue.call(call_id)
    seat = record.get("seat", "")
    consult = record.get("consult", "")
    if record.get("state") != "on_call" or not seat:
        return "none"
    step = {"consulting": "cancel", "threeway": "unit-left"}.get(consult)
    if step is None:
        return "none"
    try:
        result = handler.queue.consult(call_id, seat, step)
    except QueueError as exc:
        log.info("the unit of %s left, the consult moved on: %s", call_id, exc)
        return "none"
    legs.drop(call_id, "unit")
    return result


def handed_over(handler: CallHandler, call: str, unit_code: str, step: str, actor: str) -> None:
    """The call is the unit's now: its case is made, and says who was reached."""
    handler.schedule_case(call)
    handler.handle(call, e.Hangup(at=time.time()))  # the flow is done here
    handler.jobs.enqueue(
        "calls.consult.record_unit_transfer",
        call,
        unit_code,
        "threeway" if step == "leave" else "consult",
        actor,
        job_id=job_id_for("unit-transfer", call),
        retry=Retry(max=8, interval=[1, 2, 5, 10, 30, 60]),
    )
