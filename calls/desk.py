"""The desk: every action a person takes on the line, with who may take it.

Operators, supervisors and department staff act through the console, the portal, the
JSON API, the CLI and the simulator; each of those parses its input, names the actor
and calls the desk, which checks the rules, acts, and records the action. No surface
orchestrates queue transitions, case filing or clocks for itself.

The rules (issue 16):
- a seat belongs to the user who logged in to it, until logout; another operator is
  refused, a supervisor may force a logout;
- pops, answers, forms, pauses and heartbeats are the seat owner's, or a supervisor's;
- a case is filed only for an answered call; a pop whose call ended says so;
- after dispatch, the lead unit changes only through a supervisor's re-dispatch;
- signing out of the application logs the seat out.

Errors are ``DeskError``: a stable code, an HTTP status, and words for the person in
zh-CN and English (``DeskError.words(lang)``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rq import Retry
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from calls.admin_desk import AdminDesk
from calls.casework import arm_clocks, file_form
from calls.catalogue_desk import CatalogueDesk
from calls.consult import ConsultDesk
from calls.duty_desk import DutyDesk
from calls.grid_desk import GridDesk
from calls.handler import CallHandler, job_id_for
from calls.knowledge_desk import KnowledgeDesk
from calls.listening import (
    LISTEN_MODES,
    Listener,
    ListenError,
    ListenNotNow,
    new_session_id,
)
from calls.open311_desk import Open311Desk
from calls.recordings import Recorder, RecordingError, live_recording
from calls.tasks import TaskDesk
from calls.topic_desk import TopicDesk
from calls.transfers import NOTE_MAX_CHARS, CallMover, TelephonyError, flow_back_in_line
from cases import dispatch as work
from cases.models import CallRecording, Case, Department, ExtensionRequest, User
from cases.service import parse_form
from cases.users import log_action, shown_name
from ivr import events as e
from ivr.actions import Action
from queueing import QueueError, Transition
from queueing.keys import check_id

log = logging.getLogger("hotline.desk")

PAUSE_REASONS = ("lunch", "training", "meeting", "after_call_work", "other")
WRAPUP_EXTEND_S = 30
SUPERVISING_ROLES = frozenset({"supervisor", "admin", "system"})
# Who may hear a conversation's recording (quality work: 质检员 too).
PLAYBACK_ROLES = frozenset({"supervisor", "admin", "quality"})


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user, a personal or shared API token, or the system."""

    username: str
    role: str  # operator | supervisor | department | admin | system
    department_id: int | None = None

    @property
    def supervises(self) -> bool:
        return self.role in SUPERVISING_ROLES


SYSTEM = Actor("system", "system")

# code -> (zh-CN, English); ``{name}`` fields come from DeskError.details.
MESSAGES: dict[str, tuple[str, str]] = {
    "forbidden": ("您无权执行此操作", "You may not do this"),
    "catalogue-no-category": ("派单目录中没有该事项：{detail}", "No such category: {detail}"),
    "catalogue-bad-days": (
        "办理时限须为 1 至 60 个工作日",
        "The handling limit is 1 to 60 working days",
    ),
    "catalogue-no-unit": ("没有该承办单位：{detail}", "No such unit: {detail}"),
    "optout-bad-phone": (
        "不是有效的市民电话号码：{phone}",
        "Not a citizen's phone number: {phone}",
    ),
    "optout-absent": ("{phone} 不在登记中", "{phone} is not on the register"),
    "unit-bad-duty-phone": (
        "值班电话无效，请填写完整号码（如 0898-66661234）",
        "Not a valid duty phone; give the full number (e.g. 0898-66661234)",
    ),
    "unit-short-duty-phone": (
        "值班电话须为可直接拨打的完整号码，不能是短号或服务号",
        "A duty phone must be a full number, not a short or service code",
    ),
    "bad-argument": ("输入有误：{detail}", "Invalid input: {detail}"),
    "no-such-call": ("找不到该通话", "No such call"),
    "bad-seat-id": (
        "坐席号格式不正确（字母、数字、- 或 _）",
        "A seat id is letters, digits, - or _",
    ),
    "bad-call-id": ("通话编号格式不正确", "That is not a call id"),
    "no-such-seat": ("找不到该坐席", "No such seat"),
    "unknown-skill": ("没有这个语种技能：{detail}", "No such skill: {detail}"),
    "no-such-case": ("找不到该工单", "No such case"),
    "seat-taken": (
        "坐席 {seat} 正由 {owner} 使用，请选择其他坐席或联系班长",
        "Seat {seat} is in use by {owner}; choose another seat or ask a supervisor",
    ),
    "not-your-seat": (
        "坐席 {seat} 不是您签入的坐席",
        "Seat {seat} is not the one you logged in to",
    ),
    "not-your-call": ("该来电未分配给您的坐席", "This call was not offered to your seat"),
    "no-seat": ("请先签入坐席", "Log in to a seat first"),
    "seat-logged-out": ("您的坐席已签出：{reason}", "Your seat was logged out: {reason}"),
    "seat-busy": ("坐席正在通话，不能签出", "The seat is on a call and cannot log out"),
    "seat-busy-login": (
        "坐席 {seat} 正在通话，通话结束后才能签入",
        "Seat {seat} is on a call; you can log in to it when the call ends",
    ),
    "not-logged-in": ("坐席未签入", "The seat is not logged in"),
    "not-in-wrap-up": ("坐席不在话后处理中", "The seat is not in wrap-up"),
    "call-ended": (
        "通话已结束，未接通，不能建单",
        "The call ended unanswered; no case can be filed",
    ),
    "not-connected": ("通话尚未接通", "The call is not connected"),
    "emergency-filed": (
        "该来电已紧急转办 {line}，工单已按紧急转办登记，无需再提交",
        "The call went to {line} as an emergency; its case is filed as such already",
    ),
    "unknown-reason": ("请选择小休原因", "Choose a reason for the pause"),
    "seat-busy-sign-out": (
        "坐席正在通话，本通话结束后将自动签出",
        "The seat is on a call; it logs out when the call ends",
    ),
    "choose-lead-unit": ("请选择承办单位", "Choose a lead unit"),
    "no-such-extension": ("找不到该延期申请", "No such extension request"),
    "note-required": (
        "请填写转办说明（例如：起火地点、伤情），再转接",
        "Write a short note (what and where) before transferring",
    ),
    "note-too-long": ("转办说明最多 {limit} 字", "The note is at most {limit} characters"),
    "unknown-line": ("没有这条紧急线路：{line}", "No such emergency line: {line}"),
    "consult-failed": (
        "咨询转接未能完成（电话系统无响应），请再试一次或告知来电人该单位的值班电话",
        "The consult did not go through (the telephony did not answer); try again, "
        "or give the caller the unit's duty phone",
    ),
    "consult-busy": (
        "正在咨询转接中，请先完成、转为三方通话或取消",
        "A consult is under way: complete it, make it three-way or cancel it first",
    ),
    "no-consult": ("当前没有进行中的咨询转接", "No consult is under way"),
    "on-hold": ("来电人正在保持中，请先恢复通话", "The caller is on hold: resume first"),
    "no-duty-phone": (
        "该单位尚未登记值班电话",
        "That unit has no duty phone on record",
    ),
    "no-unit": ("找不到该单位", "No such unit"),
    "transfer-failed": (
        "转接未能完成（电话系统无响应），请告知来电人直接拨打 {line}",
        "The transfer did not go through (the telephony did not answer); "
        "tell the caller to dial {line} directly",
    ),
    "hold-failed": (
        "保持/恢复未能完成（电话系统无响应），请再试一次",
        "Hold or resume did not go through (the telephony did not answer); try again",
    ),
    "unstaffed-skill": (
        "目前没有签入的{detail}坐席，无法转接",
        "No seat with the skill {detail} is logged in",
    ),
    "seat-unavailable": (
        "坐席 {detail} 现在不能接听（非空闲）",
        "Seat {detail} cannot take the call now (it is not available)",
    ),
    "redispatch-needs-supervisor": (
        "工单已派往 {unit}，改派须由班长操作",
        "The case went to {unit}; only a supervisor can re-dispatch it",
    ),
    "kb-no-article": ("找不到这条知识", "No such knowledge base article"),
    "kb-unusable": (
        "这条知识已过期、尚未生效或待复核，不能用于答复",
        "This article is expired, not yet valid or due for review; it cannot answer a call",
    ),
    "kb-case-dispatched": (
        "本通话的工单已派单或已处理，不能再标为知识库直接答复",
        "This call's case was already dispatched or handled; it cannot be marked as answered"
        " from the knowledge base",
    ),
    "kb-answered-other": (
        "本通话已标为答复自另一条知识",
        "This call was already marked as answered from another article",
    ),
    "no-recording": ("本通话没有正在进行的录音", "This call has no recording going on"),
    "recording-failed": (
        "录音暂停/恢复未能完成（电话系统无响应），请再试一次",
        "Pausing or resuming the recording did not go through; try again",
    ),
    "no-such-recording": ("找不到该录音", "No such recording"),
    "not-on-call": ("坐席 {seat} 现在没有通话", "Seat {seat} is not on a call"),
    "unknown-listen-mode": ("请选择监听、耳语或强插", "Choose listen, whisper or barge"),
    "listen-failed": (
        "未能呼叫您的话机 {phone}（电话系统无响应），请再试一次",
        "Could not ring your phone {phone} (the telephony did not answer); try again",
    ),
    "listen-consulting": (
        "坐席 {seat} 的话务员正在与单位咨询，来电人在听等待音乐，暂不能监听；"
        "咨询结束（完成转接、三方通话或取消）后可再试",
        "The operator of seat {seat} is consulting a unit while the caller holds, so "
        "there is nothing to listen to yet; try again once the consult ends (handed "
        "over, three-way or cancelled)",
    ),
    "listen-on-hold": (
        "坐席 {seat} 的通话正在保持中，暂不能监听；话务员恢复通话后可再试",
        "The call of seat {seat} is on hold, so there is nothing to listen to yet; "
        "try again once the operator resumes it",
    ),
    "database-unavailable": (
        "数据库暂时不可用，请稍后再试",
        "The database is unavailable; try again shortly",
    ),
}


# Why a seat went offline (the queue's reason), for the operator whose seat it was.
LOGOUT_REASONS: dict[str, tuple[str, str]] = {
    "heartbeat lost": (
        "工作台与系统失去联系超过30秒，已自动签出。",
        "the console lost contact for over 30 s, so it was logged out automatically.",
    ),
    "forced logout": ("班长 {by} 将其签出。", "supervisor {by} logged it out."),
    "logout": ("已在其他页面签出。", "it was logged out from another page."),
}


@dataclass
class DeskError(Exception):
    """A refused action. ``status`` is the HTTP status a surface should answer with."""

    code: str
    status: int = 409
    details: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.code)

    def words(self, lang: str = "zh") -> str:
        zh, en = MESSAGES.get(self.code, (self.code, self.code))
        text = zh if lang == "zh" else en
        details = dict(self.details)
        if self.code == "seat-logged-out":
            why = LOGOUT_REASONS.get(str(details.get("reason", "")), LOGOUT_REASONS["logout"])
            details["reason"] = (why[0] if lang == "zh" else why[1]).format(
                by=details.get("by") or ""
            )
        try:
            return text.format(**details)
        except (KeyError, IndexError):
            return text

    def __str__(self) -> str:
        return self.words("zh")


# Queue refusals a person can meet, as desk errors (status, code).
_QUEUE_ERRORS: dict[str, tuple[int, str]] = {
    "seat-busy": (409, "seat-busy"),
    "not-logged-in": (409, "not-logged-in"),
    "no-such-call": (404, "no-such-call"),
    "unknown-skill": (400, "unknown-skill"),
    "bad-argument": (400, "bad-argument"),
    "not-offered": (409, "not-your-call"),
    "not-in-wrap-up": (409, "not-in-wrap-up"),
    "not-connected": (409, "not-connected"),
    "unstaffed-skill": (409, "unstaffed-skill"),
    "seat-unavailable": (409, "seat-unavailable"),
}


def _desk_error(exc: QueueError, **details: object) -> DeskError:
    status, code = _QUEUE_ERRORS.get(exc.code, (409, exc.code))
    return DeskError(code, status, {"detail": exc.detail or exc.code, **details})


def _ident(kind: str, value: str) -> str:
    try:
        return check_id(kind, value)
    except ValueError as exc:
        raise DeskError(f"bad-{kind}-id", 400, {"detail": str(exc)}) from None


def call_outcome(record: dict[str, str]) -> str:
    """Where a call stands for its operator: waiting, ringing (offered), on_call,
    talked (ended after an answer), emergency (handed to an emergency line, its case
    filed as 紧急转办) or missed (ended, never answered)."""
    state = record.get("state", "")
    if state == "ended":
        if record.get("transfer_kind") == "out":
            return "emergency"
        return "talked" if record.get("answered_at") else "missed"
    return {"offered": "ringing"}.get(state, state)


class Desk:
    """The actions of the people who work the line. Every surface calls these."""

    def __init__(self, handler: CallHandler, sessions: sessionmaker[Session]) -> None:
        self.handler = handler
        self.queue = handler.queue
        self.sessions = sessions
        self.cases = CaseDesk(self)
        self.tasks = TaskDesk(self)
        self.topics = TopicDesk(self)
        self.grid = GridDesk(self)
        self.duty = DutyDesk(self)
        self.catalogue = CatalogueDesk(self)
        self.admin = AdminDesk(self)
        self.knowledge = KnowledgeDesk(self)
        self.open311 = Open311Desk(self)
        self.consults = ConsultDesk(self)

    # -- the audit line ---------------------------------------------------------------

    def record(self, actor: Actor, action: str, target: str = "", detail: str = "") -> None:
        """Log an action in SQL; never fails the action itself."""
        try:
            with self.sessions() as db:
                log_action(db, actor.username, action, target, detail)
                db.commit()
        except SQLAlchemyError as exc:
            log.warning(
                "could not record %s on %s by %s (%s)", action, target, actor.username, exc
            )

    def display_name(self, username: str) -> str:
        """The name a person is shown by (班长 李华, not li); the user name itself if
        the database cannot say."""
        try:
            with self.sessions() as db:
                found = db.execute(
                    select(User.display_name, Department.name)
                    .outerjoin(Department, User.department_id == Department.id)
                    .where(User.username == username)
                ).first()
        except SQLAlchemyError:
            return username
        if found is None:
            return username
        return shown_name(username, found[0], found[1]) or username

    def logout_words(self, record: dict[str, str]) -> dict[str, str]:
        """``logout_words`` with the person who logged the seat out by their name."""
        words = logout_words(record)
        if words["by"]:
            words["by"] = self.display_name(words["by"])
        return words

    # -- seats ------------------------------------------------------------------------

    def seat(self, seat: str) -> dict[str, str]:
        return self.queue.seat(_ident("seat", seat))

    def _own_seat(self, actor: Actor, seat: str) -> dict[str, str]:
        """The seat's record, if the actor may act on it: its owner, or a supervisor.
        An owner whose seat was logged out meanwhile is told so, and why."""
        record = self.seat(seat)
        owner = record.get("owner", "")
        if record.get("state") == "offline":
            if owner and owner == actor.username:
                raise DeskError("seat-logged-out", 409, {"seat": seat, **self.logout_words(record)})
            if actor.supervises:
                raise DeskError("not-logged-in", 409, {"seat": seat})
            raise DeskError("not-your-seat", 403, {"seat": seat})
        if owner != actor.username and not actor.supervises:
            raise DeskError("not-your-seat", 403, {"seat": seat})
        return record

    def seats_of(self, username: str) -> list[str]:
        """The seats logged in for this user (one, normally)."""
        seats = self.queue.status()["seats"]
        return [str(s["id"]) for s in seats if s.get("owner") == username]

    def login_seat(
        self, actor: Actor, seat: str, skills: list[str], *, previous: str | None = None
    ) -> Transition:
        """Log in to a seat, which becomes the actor's until logout. Another user's seat
        is refused, whoever asks. One person, one seat: the seats the actor held before
        are logged out first (one on a call is paused after it instead). The actor's
        own seat mid-call or in wrap-up (their web sign-in ended) is resumed as it is
        (result ``resumed``; ``skills`` wait for a later login)."""
        seat = _ident("seat", seat)
        skills = [s for s in skills if s] or [self.queue.default_skill]
        held = set(self.seats_of(actor.username)) if actor.role == "operator" else set()
        for other in sorted((held | ({previous} if previous else set())) - {seat}):
            self._leave(actor, other)
        try:
            transition = self.queue.seat_login(seat, skills, owner=actor.username)
        except QueueError as exc:
            if exc.code == "seat-taken":
                owner = self.display_name(exc.detail)  # 王芳, not her login
                raise DeskError("seat-taken", 409, {"seat": seat, "owner": owner}) from None
            raise _desk_error(exc, seat=seat) from None
        if transition.result == "resumed":
            self.record(actor, "seat-resumed", seat)
        else:
            self.record(actor, "seat-login", seat, ",".join(skills))
        return transition

    def logout_seat(self, actor: Actor, seat: str) -> Transition:
        """The owner logs out (refused while on a call); a supervisor logging out
        someone else's seat forces it, completing a stuck call, whose case follows."""
        record = self._own_seat(actor, seat)
        forced = record.get("owner", "") != actor.username
        call = record.get("call", "")
        try:
            transition = self.queue.seat_logout(seat, force=forced, by=actor.username)
        except QueueError as exc:
            raise _desk_error(exc, seat=seat) from None
        if transition.result == "forced" and call:
            self.handler.schedule_case(call)
        self.record(actor, "supervisor-logout" if forced else "seat-logout", seat)
        return transition

    def sign_out(self, actor: Actor, seat: str | None = None) -> str:
        """Signing out of the application frees every seat the actor holds (whichever
        browser they sign out from): logged out now, or, on a call, paused after it (its
        heartbeat then lapses). Returns what happened to the last one."""
        result = "no-seat"
        for held in sorted(set(self.seats_of(actor.username)) | ({seat} if seat else set())):
            result = self._leave(actor, held)
        return result

    def _leave(self, actor: Actor, seat: str) -> str:
        """The actor's own seat, freed: logged out, or paused after its call."""
        try:
            record = self.seat(seat)
        except DeskError:
            return "no-seat"
        if record.get("state") == "offline" or record.get("owner", "") != actor.username:
            return "no-seat"
        try:
            self.queue.seat_logout(seat, by=actor.username)
        except QueueError as exc:
            if exc.code != "seat-busy":
                raise _desk_error(exc, seat=seat) from None
            # A pause they chose (lunch) stays theirs, checked in the same transition.
            self.queue.pause_after_call(seat, "signed_out", keep_chosen=True)
            self.record(actor, "seat-logout-after-call", seat)
            return "after-call"
        self.record(actor, "seat-logout", seat)
        return "logged-out"

    def set_seat_state(
        self, actor: Actor, seat: str, state: str, reason: str = "", *, after_call: bool = False
    ) -> Transition:
        """Available, or paused with a reason: now, or after the current call (an empty
        reason then cancels the pending pause)."""
        self._own_seat(actor, seat)
        if after_call:
            if reason and reason not in PAUSE_REASONS:
                raise DeskError("unknown-reason", 400)
        elif state not in ("available", "paused"):
            raise DeskError("bad-argument", 400, {"detail": "state"})
        elif state == "paused" and reason not in PAUSE_REASONS:
            raise DeskError("unknown-reason", 400)
        try:
            if after_call:
                transition = Transition(self.queue.pause_after_call(seat, reason), ())
            else:
                transition = self.queue.seat_state(seat, state, reason)
        except QueueError as exc:
            raise _desk_error(exc, seat=seat) from None
        if after_call:
            action = "seat-paused" if reason else "seat-pause-cancelled"
            self.record(actor, action, seat, f"{reason} (after the call)" if reason else "")
        else:
            self.record(actor, "seat-" + state, seat, reason)
        return transition

    def extend_wrapup(self, actor: Actor, seat: str) -> int:
        self._own_seat(actor, seat)
        try:
            return self.queue.extend_wrapup(seat, WRAPUP_EXTEND_S)
        except QueueError as exc:
            raise _desk_error(exc, seat=seat) from None

    def heartbeat(self, actor: Actor, seat: str) -> dict[str, str]:
        """The console is alive. A seat logged out meanwhile (heartbeat lost, a
        supervisor) raises ``seat-logged-out`` saying why, for the console to show."""
        record = self._own_seat(actor, seat)
        try:
            self.queue.heartbeat(seat)
        except QueueError as exc:
            if exc.code == "not-logged-in":
                raise DeskError(
                    "seat-logged-out", 409, {"seat": seat, **self.logout_words(self.seat(seat))}
                ) from None
            raise _desk_error(exc, seat=seat) from None
        return record

    def supervise_seat(self, actor: Actor, seat: str, action: str) -> str:
        """A supervisor pauses a seat (after its call if busy), logs it out (forced), or
        ends a stuck wrap-up."""
        if not actor.supervises:
            raise DeskError("forbidden", 403)
        seat = _ident("seat", seat)
        try:
            if action == "pause":
                result = self.queue.pause_after_call(seat, "supervisor")
            elif action == "logout":
                call = self.queue.seat(seat).get("call", "")
                transition = self.queue.seat_logout(seat, force=True, by=actor.username)
                if transition.result == "forced" and call:
                    self.handler.schedule_case(call)
                result = transition.result
            elif action == "end-wrapup":
                if self.queue.seat(seat).get("state") != "wrap_up":
                    raise DeskError("not-in-wrap-up", 409)
                result = self.queue.seat_state(seat, "available", "supervisor").result
            else:
                raise DeskError("bad-argument", 400, {"detail": "action"})
        except QueueError as exc:
            raise _desk_error(exc, seat=seat) from None
        self.record(actor, "supervisor-" + action, seat)
        return result

    # -- calls ------------------------------------------------------------------------

    def call(self, actor: Actor, call: str) -> dict[str, str]:
        """The call's queue record, if it was offered to the actor's seat (or the actor
        supervises): another operator's call is refused as if it did not exist."""
        call = _ident("call", call)
        record = self.queue.call(call)
        if not record:
            raise DeskError("no-such-call", 404)
        if actor.supervises:
            return record
        owner = record.get("seat_owner", "")
        if owner == actor.username:
            return record
        if not owner and record.get("seat"):
            # Offered before seats had owners: the seat's owner now.
            if self.queue.seat(record["seat"]).get("owner", "") == actor.username:
                return record
        raise DeskError("no-such-call", 404)

    def answer(
        self, actor: Actor, call: str, seat: str, *, at: float | None = None
    ) -> tuple[Transition, list[Action]]:
        """The seat's operator picks up a call offered to that seat. Returns the queue's
        transition and what the caller's telephony should do now (bridge them)."""
        seat = _ident("seat", seat)
        record = self.call(actor, call)
        self._own_seat(actor, seat)
        if record.get("seat") != seat:
            raise DeskError("not-your-call", 409)
        try:
            transition = self.queue.answer(call, seat)
        except QueueError as exc:
            raise _desk_error(exc, seat=seat) from None
        media = self.handler.handle(call, e.SeatConnected(seat, at=at or time.time()))
        return transition, media

    def file_form(self, actor: Actor, call: str, form: dict[str, Any]) -> Case | None:
        """The operator's case form, during the call or after it, as often as they like.
        Only an answered call gets a case. Returns the case, or None when the database
        is unavailable and the form is kept for a retried job (nothing is lost)."""
        record = self.call(actor, call)
        if call_outcome(record) == "emergency":
            raise DeskError("emergency-filed", 409, {"line": record.get("transferred_to", "")})
        form = dict(form, seat=record.get("seat", ""))
        if not record.get("answered_at"):
            if record.get("state") == "ended":
                raise DeskError("call-ended", 422)
            # Typed while the phone rings (or before the telephony reports the pick-up):
            # kept, and filed by the case job if the call is answered; a call that never
            # connects has no case job, and its draft expires. Checked first all the same.
            try:
                with self.sessions() as db:
                    parse_form(db, form)
            except SQLAlchemyError:
                log.warning("form for %s kept unchecked: the database is unavailable", call)
            self.handler.submit_case_form(call, form)
            return None
        try:
            return file_form(self.queue, self.sessions, call, form, actor.username)
        except SQLAlchemyError:
            log.exception("case form for %s kept for a retry: the database is unavailable", call)
            self.handler.submit_case_form(call, form)
            return None

    def answer_from_article(
        self, actor: Actor, call: str, article_id: int, form: dict[str, Any]
    ) -> Case:
        """答复自本条知识: the call's case is filed as answered on the phone (直接答复,
        closed without dispatch) with the operator's form, and linked to the article
        read out, which counts the answer. Only the call's operator (or a supervisor),
        only for an answered call, only from a published article in force, and never
        for a case already dispatched or handled."""
        from cases import knowledge
        from cases.service import case_for_call, urged_case_for_call

        record = self.call(actor, call)
        if not record.get("answered_at"):
            ended = record.get("state") == "ended"
            raise DeskError("call-ended" if ended else "not-connected", 409)
        try:
            with self.sessions() as db:
                try:
                    item = knowledge.article(db, article_id)
                except knowledge.KnowledgeError:
                    raise DeskError("kb-no-article", 404) from None
                if item.status != "published" or knowledge.flags(item):
                    raise DeskError("kb-unusable", 409)
                existing = case_for_call(db, call)
                if urged_case_for_call(db, call) is not None or (
                    existing is not None
                    and (
                        existing.dispatched_at is not None
                        or existing.status not in ("received", "resolved")
                    )
                ):
                    raise DeskError("kb-case-dispatched", 409)
                category = item.category.code
        except SQLAlchemyError:
            raise DeskError("database-unavailable", 503) from None
        form = dict(
            form,
            seat=record.get("seat", ""),
            category_code=form.get("category_code") or category,
            attach_to="",
            resolved_on_phone=True,
            dispatch=False,
        )
        try:
            case = file_form(self.queue, self.sessions, call, form, actor.username)
            with self.sessions() as db:
                try:
                    knowledge.record_answer(db, case.id, article_id, actor.username)
                except knowledge.KnowledgeError as exc:
                    raise DeskError(
                        "kb-answered-other" if exc.code == "answered" else "kb-unusable", 409
                    ) from None
                db.commit()
        except SQLAlchemyError:
            log.exception("answer from article %s for %s not recorded", article_id, call)
            raise DeskError("database-unavailable", 503) from None
        self.record(actor, "answered-from-article", case.number, f"kb:{article_id} call {call}")
        return case  # type: ignore[no-any-return]

    # -- transfers (calls.transfers) ----------------------------------------------------

    def _connected_call(self, actor: Actor, call: str) -> tuple[dict[str, str], str]:
        """The actor's connected call (404 for anyone else's) and its channel."""
        record = self.call(actor, call)
        if record.get("state") != "on_call" or not record.get("seat"):
            raise DeskError("not-connected", 409)
        flow = self.handler.load(call)
        return record, flow.channel if flow is not None else ""

    def transfer_emergency(
        self,
        actor: Actor,
        call: str,
        line: str,
        note: str,
        telephony: CallMover,
        lines: dict[str, str],
    ) -> Transition:
        """紧急转办: a blind transfer of the caller to an emergency line (``lines``: line
        -> the number dialled), with a short note, by the call's operator or a
        supervisor. The call ends for the centre as transferred (not abandoned), its
        seat goes to wrap-up, and its case records the line."""
        note = " ".join(note.split())
        if line not in lines:
            raise DeskError("unknown-line", 400, {"line": line[:8]})
        record, channel = self._connected_call(actor, call)
        if not note:
            raise DeskError("note-required", 422)
        if len(note) > NOTE_MAX_CHARS:
            raise DeskError("note-too-long", 422, {"limit": NOTE_MAX_CHARS})
        if not telephony.can_move(call, channel):
            raise DeskError("transfer-failed", 502, {"line": line})
        seat = record["seat"]
        try:
            transition = self.queue.transfer(call, seat, "out", line)
        except QueueError as exc:
            raise _desk_error(exc, seat=seat) from None
        try:
            telephony.to_line(call, channel, lines[line])
        except TelephonyError as exc:
            log.error("emergency transfer of %s to %s failed: %s", call, line, exc)
            self.record(actor, "emergency-transfer-failed", call, f"{line} {exc}")
            raise DeskError("transfer-failed", 502, {"line": line}) from None
        self.handler.schedule_case(call)
        self.handler.handle(call, e.Hangup(at=time.time()))  # the flow is done here
        self.handler.jobs.enqueue(
            "calls.transfers.record_emergency_transfer",
            call,
            line,
            note,
            actor.username,
            job_id=job_id_for("emergency", call),
            retry=Retry(max=8, interval=[1, 2, 5, 10, 30, 60]),
        )
        self.record(actor, "emergency-transfer", call, f"{line} {note}")
        return transition

    def transfer_call(
        self, actor: Actor, call: str, kind: str, target: str, telephony: CallMover
    ) -> Transition:
        """Hand the connected call to another skill (at the head of its line) or to a
        named available seat: the pop and the case form's draft follow the call."""
        if kind not in ("skill", "seat"):
            raise DeskError("bad-argument", 400, {"detail": "kind"})
        if kind == "seat":
            target = _ident("seat", target)
        record, channel = self._connected_call(actor, call)
        if not telephony.can_move(call, channel):
            raise DeskError("transfer-failed", 502, {"line": target})
        seat = record["seat"]
        try:
            transition = self.queue.transfer(call, seat, kind, target)
        except QueueError as exc:
            raise _desk_error(exc, seat=seat) from None
        try:
            telephony.back_in_line(call, channel)
        except TelephonyError as exc:
            log.error("transfer of %s to %s %s failed: %s", call, kind, target, exc)
            self.record(actor, "transfer-failed", call, f"{kind} {target} {exc}")
            raise DeskError("transfer-failed", 502, {"line": target}) from None
        flow_back_in_line(self.handler, call, target if kind == "skill" else None)
        self.record(actor, f"transfer-{kind}", call, target)
        return transition

    def hold_call(self, actor: Actor, call: str, on: bool, telephony: CallMover) -> str:
        """Put the connected caller on hold with music, or take them back (the seat's
        phone rings again and picks them up). The call stays the seat's throughout."""
        record, channel = self._connected_call(actor, call)
        if not telephony.can_move(call, channel):
            raise DeskError("hold-failed", 502)
        seat = record["seat"]
        if not on:
            # Moved first, marked after: the leg that the hold ended is then sure to
            # have found the call held (Asterisk redirects a caller only once the AGI
            # session of that leg has returned), and ends nothing.
            if not record.get("held_at"):
                return "unchanged"
            try:
                telephony.back_in_line(call, channel)
            except TelephonyError as exc:
                log.error("resume of %s failed: %s", call, exc)
                raise DeskError("hold-failed", 502) from None
            result = self._hold_mark(call, seat, False)
        else:
            result = self._hold_mark(call, seat, True)
            if result == "unchanged":
                return result
            try:
                telephony.hold(call, channel)
            except TelephonyError as exc:
                log.error("hold of %s failed: %s", call, exc)
                self._hold_mark(call, seat, False)  # the caller did not move: say so
                raise DeskError("hold-failed", 502) from None
        self.record(actor, "call-hold" if on else "call-resume", call)
        return result

    # -- recordings (calls.recordings) ---------------------------------------------------

    def pause_recording(self, actor: Actor, call: str, paused: bool, recorder: Recorder) -> str:
        """Pause the connected call's recording while the citizen gives sensitive numbers
        (an ID card, a bank account), or resume it: the call's operator or a supervisor."""
        _, channel = self._connected_call(actor, call)
        try:
            with self.sessions() as db:
                recording = live_recording(db, call)
                if recording is None:
                    raise DeskError("no-recording", 409)
                if recording.status == ("paused" if paused else "recording"):
                    return "unchanged"
                try:
                    recorder.set_paused(call, channel, recording.sid, paused)
                except RecordingError as exc:
                    log.error("recording pause of %s failed: %s", call, exc)
                    raise DeskError("recording-failed", 502) from None
                recording.status = "paused" if paused else "recording"
                db.commit()
        except SQLAlchemyError:
            raise DeskError("database-unavailable", 503) from None
        self.record(actor, "recording-pause" if paused else "recording-resume", call)
        return "paused" if paused else "recording"

    def recording_to_play(
        self, actor: Actor, recording_id: int, *, playback: bool = True
    ) -> CallRecording:
        """A recording for a supervisor (or an admin) to hear; every playback is audited
        with who, which recording of which call, and when (``playback`` False: the
        player seeking within one, already audited)."""
        if actor.role not in PLAYBACK_ROLES:
            self.record(actor, "recording-play-refused", str(recording_id))
            raise DeskError("forbidden", 403)
        try:
            with self.sessions() as db:
                recording = db.get(CallRecording, recording_id)
                if recording is None or recording.status == "deleted":
                    raise DeskError("no-such-recording", 404)
                db.expunge(recording)
        except SQLAlchemyError:
            raise DeskError("database-unavailable", 503) from None
        if playback:
            self.record(actor, "recording-play", recording.sid, f"call {recording.call_id}")
        return recording

    # -- listening in (calls.listening) ----------------------------------------------------

    def listen_in(self, actor: Actor, seat: str, phone: str, mode: str, listener: Listener) -> str:
        """A supervisor listens to a seat's call from their own phone, whispers to the
        operator, or barges in. Audited when asked for (who, whom, how, from which phone)
        and again with its length when the supervisor hangs up. Returns the session id."""
        if not actor.supervises or actor.role == "system":
            raise DeskError("forbidden", 403)
        if mode not in LISTEN_MODES:
            raise DeskError("unknown-listen-mode", 400)
        seat, phone = _ident("seat", seat), _ident("seat", phone)
        if self.seat(seat).get("state") != "on_call":
            raise DeskError("not-on-call", 409, {"seat": seat})
        session_id = new_session_id()
        try:
            switched = listener.listen(session_id, actor.username, seat, phone, mode)
        except ListenNotNow as exc:  # the call is not with its operator right now
            raise DeskError("listen-" + exc.reason, 409, {"seat": seat}) from None
        except ListenError as exc:
            log.error("listening in on %s from %s failed: %s", seat, phone, exc)
            raise DeskError("listen-failed", 502, {"phone": phone}) from None
        if switched:  # the supervisor's live session on that call, in another mode now
            self.record(actor, "listen-mode", seat, f"{mode} phone {phone} {switched}")
            return switched
        self.record(actor, "listen-start", seat, f"{mode} phone {phone} {session_id}")
        return session_id

    def _hold_mark(self, call: str, seat: str, on: bool) -> str:
        try:
            return self.queue.hold(call, seat, on)
        except QueueError as exc:
            raise _desk_error(exc, seat=seat) from None

    def complete(self, actor: Actor, call: str) -> str:
        """The operator has hung up, on a phone whose telephony cannot say so (the
        simulator). Asterisk and Twilio report the end of a conversation themselves, so
        their seats are never put into wrap-up mid-conversation."""
        record = self.call(actor, call)
        state = record.get("state")
        if state not in ("on_call", "ended"):
            raise DeskError("not-connected", 409)
        flow = self.handler.load(call)
        if state == "on_call" and flow is not None and flow.channel in ("asterisk", "twilio"):
            return "telephony-reports"
        if state == "on_call":
            self.handler.operator_completes(call)
            return "completed"
        return "ended"


def logout_words(record: dict[str, str]) -> dict[str, str]:
    """Why a seat went offline, as a reason key for the screens and who did it: logged
    out by someone other than its owner is a forced logout, busy or not."""
    by, reason = record.get("logout_by", ""), record.get("reason", "") or "logout"
    if by and by != record.get("owner", ""):
        reason = "forced logout"
    return {"reason": reason, "by": by}


DEPARTMENT_ACTIONS = ("sign", "on-site", "note", "resolve", "return", "extend")


class CaseDesk:
    """The case actions of departments and supervisors. Each runs in one transaction
    and, once it is committed, re-arms the case's clocks (the one after-commit hook).
    The rules themselves (a resolved case is final for the unit, one pending extension,
    who may act) are the record's, in ``cases.dispatch``; their refusals
    (``CaseError``, ``IllegalTransition``) pass through for the surface to show."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    @contextmanager
    def _case(self, number: str) -> Iterator[tuple[Session, Case]]:
        with self.desk.sessions() as db:
            case = db.scalar(select(Case).where(Case.number == number))
            if case is None:
                raise DeskError("no-such-case", 404)
            yield db, case
            db.commit()
            arm_clocks(self.desk.queue, case)

    def _supervisor(self, actor: Actor) -> None:
        if not actor.supervises:
            raise DeskError("forbidden", 403)

    # -- a department's clerk -------------------------------------------------------------

    def department_act(
        self, actor: Actor, number: str, action: str, *, text: str = "", days: int = 0
    ) -> Case:
        """Sign for (签收), on site, a progress note, resolve with a reply (答复), return
        a wrong dispatch (退单) or ask for working days (延期), for a case led or
        assisted by the clerk's unit. Any other case does not exist for them."""
        if actor.role != "department":
            raise DeskError("forbidden", 403)
        if action not in DEPARTMENT_ACTIONS:
            raise DeskError("bad-argument", 400, {"detail": "action"})
        unit = actor.department_id
        with self._case(number) as (db, case):
            if unit is None or unit not in work.units_of(case, db):
                raise DeskError("no-such-case", 404)
            if action == "sign":
                work.sign_for(db, case, actor.username, unit)
            elif action == "on-site":
                work.on_site(db, case, actor.username, unit)
            elif action == "note":
                work.add_note(db, case, actor.username, unit, text)
            elif action == "resolve":
                work.resolve(db, case, actor.username, unit, text)
            elif action == "return":
                work.return_case(db, case, actor.username, unit, text)
            else:
                work.request_extension(db, case, actor.username, unit, days, text)
        return case  # the case's trail records who did what

    # -- supervisors ----------------------------------------------------------------------

    def dispatch(
        self,
        actor: Actor,
        number: str,
        lead: str,
        assisting: list[str] | None = None,
        *,
        uphold: bool = False,
        reason: str = "",
    ) -> Case:
        """Dispatch a case waiting for a unit, re-dispatch (改派) with assisting units
        (协办), or uphold a return (维持原派): the only way a lead unit changes."""
        self._supervisor(actor)
        with self._case(number) as (db, case):
            if uphold:
                work.uphold(db, case, actor.username)
            else:
                if not lead:  # the form's unit list left at its blank choice
                    raise DeskError("choose-lead-unit", 422)
                work.dispatch_to(db, case, actor.username, lead, assisting or [], reason=reason)
        return case

    def supervise(self, actor: Actor, number: str, note: str) -> Case:
        """督办: a note the unit sees, kept in the trail."""
        self._supervisor(actor)
        with self._case(number) as (db, case):
            work.supervise(db, case, actor.username, note)
        return case

    def merge(self, actor: Actor, duplicate: str, into: str) -> Case:
        """并单: a repeat request about the same matter into the open case."""
        self._supervisor(actor)
        with self._case(duplicate) as (db, case):
            target = db.scalar(select(Case).where(Case.number == into))
            if target is None:
                raise DeskError("no-such-case", 404)
            work.merge(db, case, target, actor.username)
        return case

    def decide_extension(self, actor: Actor, request_id: int, approve: bool) -> Case:
        self._supervisor(actor)
        with self.desk.sessions() as db:
            ask = db.get(ExtensionRequest, request_id)
            if ask is None:
                raise DeskError("no-such-extension", 404)
            work.decide_extension(db, ask, actor.username, approve)
            db.commit()
            case = ask.case
            arm_clocks(self.desk.queue, case)
        return case
