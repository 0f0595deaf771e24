"""Desk actions on hot and special topics and duplicates: 并单 at filing (the operator
accepts a suggested open case for their caller's request), and a supervisor's special
topics (open, add or leave out a case by hand, close). Attached to the desk as
``desk.topics``."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cases import dispatch as work
from cases.dispatch import CaseRefused
from cases.models import Case
from cases.service import utcnow
from cases.topics import (
    SpecialTopic,
    TopicRefused,
    add_case_by_hand,
    leave_out_case,
    open_special_topic,
    refresh_special_topic,
)

if TYPE_CHECKING:
    from calls.desk import Actor, Desk

TOPIC_MESSAGES: dict[str, tuple[str, str]] = {
    "merge-no-case": (
        "这通电话还没有工单（未接通，或数据库暂不可用），请稍后再并单",
        "This call has no case yet (not answered, or the database is away); merge later",
    ),
    "no-such-topic": ("找不到该专题", "No such special topic"),
}


class TopicDesk:
    def __init__(self, desk: Desk) -> None:
        from calls.desk import MESSAGES  # loaded: the desk is being made

        self.desk = desk
        for code, words in TOPIC_MESSAGES.items():
            MESSAGES.setdefault(code, words)

    def _error(self, code: str, status: int = 409, **details: object) -> Exception:
        from calls.desk import DeskError

        return DeskError(code, status, dict(details))

    # -- 并单 at filing ------------------------------------------------------------------

    def merge_at_filing(
        self, actor: Actor, call: str, form: dict[str, Any], into: str
    ) -> tuple[Case, Case]:
        """The operator's form is filed as the call's own case (never dispatched: the
        open case's unit has the matter), then merged into ``into``. The caller follows
        the open case and is visited when it is resolved. Returns (own case, target).
        Raises CaseRefused when the target is not open."""
        form = dict(form, dispatch=False, resolved_on_phone=False, attach_to="")
        with self.desk.sessions() as db:
            target = db.scalar(select(Case).where(Case.number == into.strip()))
            if target is None:
                raise self._error("no-such-case", 404)
        own = self.desk.file_form(actor, call, form)  # the seat's operator's, or a supervisor's
        if own is None:
            raise self._error("merge-no-case", 409)
        with self.desk.sessions() as db:
            case = db.get(Case, own.id)
            target = db.scalar(select(Case).where(Case.number == into.strip()))
            if case is None or target is None:
                raise self._error("no-such-case", 404)
            if case.merged_into_id != target.id:
                work.merge(db, case, target, actor.username)
            db.commit()
            self._arm(case)
            return case, target

    def _arm(self, case: Case) -> None:
        from calls.casework import arm_clocks

        arm_clocks(self.desk.queue, case)  # a closed case's clocks are stopped

    # -- special topics ------------------------------------------------------------------

    def _supervisor(self, actor: Actor) -> None:
        if not actor.supervises:
            raise self._error("forbidden", 403)

    def open_special(
        self,
        actor: Actor,
        name: str,
        *,
        categories: str = "",
        words: str = "",
        streets: str = "",
        starts_on: date | None = None,
        ends_on: date | None = None,
        note: str = "",
    ) -> SpecialTopic:
        self._supervisor(actor)
        now = utcnow()
        with self.desk.sessions() as db:
            topic = open_special_topic(
                db,
                name,
                actor.username,
                now,
                categories=categories,
                words=words,
                streets=streets,
                starts_on=starts_on,
                ends_on=ends_on,
                note=note,
            )
            refresh_special_topic(db, topic, now)
            db.commit()
        self.desk.record(actor, "special-topic-open", str(topic.id), topic.name)
        return topic

    def _topic(self, db: Any, topic_id: int) -> SpecialTopic:
        topic = db.get(SpecialTopic, topic_id)
        if topic is None:
            raise self._error("no-such-topic", 404)
        return topic  # type: ignore[no-any-return]

    def add_case(self, actor: Actor, topic_id: int, number: str) -> Case:
        self._supervisor(actor)
        with self.desk.sessions() as db:
            case = add_case_by_hand(db, self._topic(db, topic_id), number, actor.username, utcnow())
            db.commit()
        self.desk.record(actor, "special-topic-add", str(topic_id), case.number)
        return case

    def leave_out(self, actor: Actor, topic_id: int, case_id: int) -> None:
        self._supervisor(actor)
        with self.desk.sessions() as db:
            leave_out_case(db, self._topic(db, topic_id), case_id, actor.username)
            db.commit()
        self.desk.record(actor, "special-topic-leave-out", str(topic_id), str(case_id))

    def close_special(self, actor: Actor, topic_id: int) -> None:
        self._supervisor(actor)
        with self.desk.sessions() as db:
            topic = self._topic(db, topic_id)
            if topic.closed_at is None:
                topic.closed_at = utcnow()
            db.commit()
        self.desk.record(actor, "special-topic-close", str(topic_id))


REFUSALS = (CaseRefused, TopicRefused)
