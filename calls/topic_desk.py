"""Desk actions on hot and special topics and duplicates: 并单 at filing (the operator
accepts a suggested open case for their caller's request), and a supervisor's special
topics (open, add or leave out a case by hand, close). Attached to the desk as
``desk.topics``."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import dispatch as work
from cases.dispatch import CaseRefused
from cases.duplicates import OPEN_STATUSES, SUGGEST_DAYS, is_duplicate
from cases.models import Case, Category
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
    "merge-mismatch": (
        "不能并入工单 {into}：它与本次诉求不是同一事项（{why}）。表单已保留，请核对后按新工单登记",
        "Cannot merge into case {into}: it is not the same matter ({why_en}). The form is "
        "kept: check it and file it as a case of its own",
    ),
    "merge-urgent": (
        "“{category}”是紧急事项，须派单处置，不能并入其他工单。表单已保留，请登记并派单",
        "“{category}” is urgent: it must be dispatched, not merged into another case. "
        "The form is kept: file and dispatch it",
    ),
}
# Why a target is not the same matter, for the refusal's words (zh-CN, English).
MISMATCH_WHY: dict[str, tuple[str, str]] = {
    "closed": ("该工单已不在办理中", "that case is no longer open"),
    "category": ("类别不同", "another category"),
    "place": ("地点不同", "another place"),
    "age": (f"该工单是 {SUGGEST_DAYS} 天以前受理的", f"that case is over {SUGGEST_DAYS} days old"),
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
        The server checks again what the suggestion showed: the same category, the same
        place (or grid, for an area-wide matter), an open case of the last days, and never
        an urgent matter, which is dispatched; a refusal files nothing (the form stays as
        typed). Raises CaseRefused when the target is not open."""
        form = dict(form, dispatch=False, resolved_on_phone=False, attach_to="")
        with self.desk.sessions() as db:
            target = db.scalar(select(Case).where(Case.number == into.strip()))
            if target is None:
                raise self._error("no-such-case", 404)
            self._check_same_matter(db, form, target)
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

    def _check_same_matter(self, db: Session, form: dict[str, Any], target: Case) -> None:
        """The duplicate rule (cases.duplicates), run again on the form as typed."""
        from cases.grid import address_index

        code = str(form.get("category_code") or "")
        category = db.scalar(select(Category).where(Category.code == code)) if code else None
        if (category is not None and category.urgent) or form.get("urgency") == "urgent":
            raise self._error("merge-urgent", 409, category=category.name if category else code)
        address = str(form.get("address") or "")
        why = ""
        created = target.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        if target.status not in OPEN_STATUSES or target.merged_into_id is not None:
            why = "closed"
        elif created < utcnow() - timedelta(days=SUGGEST_DAYS):
            why = "age"
        elif not code or target.category is None or target.category.code != code:
            why = "category"
        elif (
            is_duplicate(
                code,
                address,
                address_index(db).grid_id_for(address),
                target.category.code,
                target.address,
                target.grid_id,
            )
            is None
        ):
            why = "place"
        if why:
            zh, en = MISMATCH_WHY[why]
            raise self._error("merge-mismatch", 409, into=target.number, why=zh, why_en=en)

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
