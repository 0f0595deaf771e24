"""The case database schema. Migrations in cases/migrations/ must match it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

if TYPE_CHECKING:
    from cases.phones import PhoneSettings


class Base(DeclarativeBase):
    pass


class District(Base):
    __tablename__ = "district"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))


class Department(Base):
    """A responsible unit: a city department, or a district government."""

    __tablename__ = "department"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(48), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16), default="department")  # department|district
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id"))
    # 值班电话 (E.164): whom an operator rings for a consult transfer (cases.duty_numbers).
    duty_phone: Mapped[str | None] = mapped_column(String(32))


class Category(Base):
    """What a case is about, and who handles it by default: the dispatch knowledge base."""

    __tablename__ = "category"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(48), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    # None: the government of the district where it happened handles it.
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    # The dispatch catalogue's handling limit, in working days (consultations 3,
    # complaints and requests 13), counted on China's working-day calendar.
    handling_days: Mapped[int] = mapped_column(Integer, default=13)
    # Grid work (网格事项): dispatched to the grid of the address (cases.grid).
    grid_work: Mapped[bool] = mapped_column(Boolean, default=False)
    # An Open311 request in this category goes straight to its unit, not to the
    # operators' queue for review first.
    open311_direct: Mapped[bool] = mapped_column(Boolean, default=False)
    department: Mapped[Department | None] = relationship()


class LegacyHotline(Base):
    """A number merged into 12345: dialing it still works and says what it was for."""

    __tablename__ = "legacy_hotline"
    id: Mapped[int] = mapped_column(primary_key=True)
    dialed: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("category.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    category: Mapped[Category | None] = relationship()
    department: Mapped[Department | None] = relationship()


class CitizenRegister(Base):
    """Citizens kept by administrators: elderly or vulnerable callers skip every prompt."""

    __tablename__ = "citizen_register"
    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    vulnerable: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(Text, default="")
    added_by: Mapped[str] = mapped_column(String(64), default="")
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Case(Base):
    __tablename__ = "case_record"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    # The call that created it; unique so that creating a case for a call is idempotent.
    call_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    caller_phone: Mapped[str] = mapped_column(String(32), default="")
    caller_name: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(16), default="phone")  # phone|twilio|web|sim
    source_hotline: Mapped[str | None] = mapped_column(String(128))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("category.id"))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    address: Mapped[str] = mapped_column(Text, default="")
    # Where it happened (WGS84), when the request came with a point (Open311 lat/long).
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text, default="")
    urgency: Mapped[str] = mapped_column(String(16), default="normal")  # normal|urgent
    status: Mapped[str] = mapped_column(String(16), default="received")
    operator_seat: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    respond_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # 30-min rule
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handle_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    accepted_by: Mapped[str | None] = mapped_column(String(64))  # who signed for it
    on_site_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # urgent
    # Overdue flags are set by the clock sweep, or at a transition that happens late,
    # and never cleared: they freeze (FixMyStreet Zurich's rule).
    response_overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    handling_overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    supervised_note: Mapped[str | None] = mapped_column(Text)  # 督办
    reply: Mapped[str] = mapped_column(Text, default="")  # the unit's answer to the citizen
    # The return visit's answer: satisfied | unsatisfied | no_response | unreachable
    satisfaction: Mapped[str | None] = mapped_column(String(16))
    # 并单: a repeat request about the same matter, merged into this case.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("case_record.id"))
    # 紧急转办: the call went on to an emergency line (110, 119, 120, 122), kept here.
    handling: Mapped[str | None] = mapped_column(String(24))  # emergency_transfer
    transferred_to: Mapped[str | None] = mapped_column(String(32))
    # The grid (cases.grid) the address lies in, whoever handles the case.
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id"), index=True)
    # Listed on Open311 although not filed through it: a supervisor judged it fit.
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[Category | None] = relationship()
    department: Mapped[Department | None] = relationship()
    district: Mapped[District | None] = relationship()
    merged_into: Mapped[Case | None] = relationship(remote_side="Case.id")
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_case_caller_created", "caller_phone", "created_at"),
        # A unit's inbox, and its live check (web.portal): no scan of all cases.
        Index("ix_case_unit_status", "department_id", "status", "updated_at"),
        # The hot-topic scan's time windows, and duplicate suggestions by category.
        Index("ix_case_created", "created_at"),
        Index("ix_case_category_created", "category_id", "created_at"),
    )


class CaseEvent(Base):
    """The audit trail: every change to a case, who made it and when."""

    __tablename__ = "case_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    # The call that urged (催办) this case, when a repeat caller's call was attached to
    # it instead of opening a new case: that call's case, as far as the sweep is concerned.
    call_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    case: Mapped[Case] = relationship(back_populates="events")


class CallbackRequest(Base):
    """A caller who chose to be called back, or met no operator; worked oldest first."""

    __tablename__ = "callback_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128), unique=True)
    caller_phone: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(32))  # long_wait | no_operators
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done
    source_hotline: Mapped[str | None] = mapped_column(String(128))


class DailyCounter(Base):
    """Per-day sequence behind case numbers such as 12345-20261127-000123."""

    __tablename__ = "daily_counter"
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class CallRecord(Base):
    """One row per call (call detail record), written from the queue's event stream by
    calls.figures.record_calls, which may be re-run safely. Figures for any window come from
    these rows; Redis keeps only the live stream."""

    __tablename__ = "call_record"
    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), default="inbound")  # inbound|outbound
    caller: Mapped[str] = mapped_column(String(32), default="")
    skill: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[str | None] = mapped_column(String(16))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    offered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # answered (then completed) | abandoned | callback | expired | turned_away
    outcome: Mapped[str | None] = mapped_column(String(16), index=True)
    seat: Mapped[str | None] = mapped_column(String(32), index=True)
    operator: Mapped[str | None] = mapped_column(String(64), index=True)  # who answered
    wait_ms: Mapped[int | None] = mapped_column(Integer)  # entry to answer, or to leaving
    talk_ms: Mapped[int | None] = mapped_column(Integer)
    wrapup_ms: Mapped[int | None] = mapped_column(Integer)
    ring_no_answers: Mapped[int] = mapped_column(Integer, default=0)
    case_number: Mapped[str | None] = mapped_column(String(32))
    # A missed call (abandoned, turned away, a callback request): when the call-back
    # reached the citizen. Its own outcome stays what it was, for honest figures.
    called_back_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The operator handed the call on: emergency (out of the centre), skill or seat.
    transfer_kind: Mapped[str | None] = mapped_column(String(16))
    transferred_to: Mapped[str | None] = mapped_column(String(32))


class CallRecording(Base):
    """A conversation's recording (calls.recordings), linked to its call detail row by
    call id and to the call's case once it exists. ``sid`` names it uniquely: the file
    name's stem on Asterisk (the call id), Twilio's RecordingSid."""

    __tablename__ = "call_recording"
    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_record.id"), index=True)
    provider: Mapped[str] = mapped_column(String(16))  # asterisk | twilio
    # The file's name under the recordings directory, once it is there.
    file_name: Mapped[str | None] = mapped_column(String(255))
    media_url: Mapped[str | None] = mapped_column(String(512))  # Twilio's, until fetched
    # Where the audio is kept: "dir" (store_key is the file under the recordings
    # directory) or "s3" (the object's key in the bucket); None: no audio yet.
    store: Mapped[str | None] = mapped_column(String(8), index=True)
    store_key: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="recording")  # |paused|done|deleted
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    duration_s: Mapped[int | None] = mapped_column(Integer)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StreamCursor(Base):
    """How far a job has read a Redis stream, committed with what it wrote."""

    __tablename__ = "stream_cursor"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[str] = mapped_column(String(32))


# knowledge_editor: approves the knowledge base's changes (cases.knowledge)
# quality (质检员): searches cases and plays their recordings, audited (calls.desk)
ROLES = (
    "operator",
    "supervisor",
    "department",
    "admin",
    "knowledge_editor",
    "grid",
    "leader",
    "quality",
)


class User(Base):
    """Someone who signs in: an operator, a supervisor, a department's staff, an admin.
    Passwords and API tokens are stored only as hashes."""

    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    # sha256 of the personal API token; the token itself is shown once, when made
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    seat: Mapped[str | None] = mapped_column(String(32))  # an operator's usual phone
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="zh")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    department: Mapped[Department | None] = relationship()


class ActionLog(Base):
    """Who did what outside a case's own trail: seat logins, pauses, a supervisor's
    actions on someone else's seat, tokens made."""

    __tablename__ = "action_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class CaseAssist(Base):
    """An assisting unit (协办) of a dispatched case; the lead unit is Case.department."""

    __tablename__ = "case_assist"
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), primary_key=True)
    department: Mapped[Department] = relationship()

    __table_args__ = (Index("ix_case_assist_unit", "department_id"),)


class OverdueRecord(Base):
    """Accountability: a limit a unit (and the person who signed for the case) missed."""

    __tablename__ = "overdue_record"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    person: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(16))  # response | handling
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    noticed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    late_s: Mapped[int] = mapped_column(Integer, default=0)
    case: Mapped[Case] = relationship()
    department: Mapped[Department | None] = relationship()

    # Once per dispatch and kind: a re-dispatched case can be late again, at its new unit.
    __table_args__ = (
        Index("ux_overdue_case_kind_due", "case_id", "kind", "due_at", unique=True),
    )


class ExtensionRequest(Base):
    """A unit asks for more working days (延期); a supervisor approves or refuses."""

    __tablename__ = "extension_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), index=True)
    days: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # pending, approved, refused; withdrawn when the case moves to another unit (改派)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    case: Mapped[Case] = relationship()


class OutboundItem(Base):
    """One entry of the outbound dialer's work list: a return visit (回访) of a resolved
    case, or the call-back of a missed call or a callback request. Its due-time index
    lives in Redis; this row is the record (attempts, results)."""

    __tablename__ = "outbound_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    # "visit:<case id>" or "callback:<call id>": one item per purpose, however often
    # it is planned.
    source: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # return_visit | callback
    phone: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher first
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_record.id"))
    call_id: Mapped[str | None] = mapped_column(String(128))  # the call to call back
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # pending | dialing | done | gave_up | unreachable | opted-out
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    last_result: Mapped[str | None] = mapped_column(String(16))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    live_call: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    case: Mapped[Case | None] = relationship()


class OptOut(Base):
    """The opt-out register (谢绝回访): never called for a return visit."""

    __tablename__ = "opt_out"
    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(32), unique=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    added_by: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str] = mapped_column(Text, default="")


class DialCursor(Base):
    """The dialer's planning high-water marks: per source of work, the newest record
    time already planned from (the next pass reads from there, minus an overlap)."""

    __tablename__ = "dial_cursor"
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    mark: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KnowledgeArticle(Base):
    """A knowledge base (知识库) article: what operators read out, and citizens read.
    Its fields are those of its published version; cases.knowledge changes them."""

    __tablename__ = "kb_article"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # the answer as operators read it out
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))  # who keeps it
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id"))  # None: citywide
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    review_on: Mapped[date | None] = mapped_column(Date)
    # draft | proposed (never published yet) | published | retired
    status: Mapped[str] = mapped_column(String(16), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=0)  # the published one; 0: none yet
    answered_count: Mapped[int] = mapped_column(Integer, default=0)  # calls answered from it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    category: Mapped[Category] = relationship()
    department: Mapped[Department] = relationship()
    district: Mapped[District | None] = relationship()

    __table_args__ = (Index("ix_kb_article_status_category", "status", "category_id"),)


class KnowledgeVersion(Base):
    """One version of an article, in full: a draft, a proposal, or what was published,
    with who wrote it and who approved (or rejected) it."""

    __tablename__ = "kb_article_version"
    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_article.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id"))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    review_on: Mapped[date | None] = mapped_column(Date)
    # draft | proposed | published | superseded | rejected | withdrawn
    state: Mapped[str] = mapped_column(String(16))
    written_by: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(64))  # approved or rejected it
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="")  # the writer's: why proposed
    review_note: Mapped[str] = mapped_column(Text, default="")  # the reviewer's: why decided so
    article: Mapped[KnowledgeArticle] = relationship()

    __table_args__ = (Index("ux_kb_article_version_number", "article_id", "number", unique=True),)


class KnowledgeAnswer(Base):
    """A case answered from an article (直接答复): the article and the version read."""

    __tablename__ = "kb_answer"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), unique=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_article.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    answered_by: Mapped[str] = mapped_column(String(64))
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    article: Mapped[KnowledgeArticle] = relationship()


class KnowledgeWord(Base):
    """A word of a published article's title or category, by its toneless pinyin: how a
    query typed in pinyin, or with a wrong homophone, finds the word it meant."""

    __tablename__ = "kb_word"
    word: Mapped[str] = mapped_column(String(32), primary_key=True)
    pinyin: Mapped[str] = mapped_column(String(160), index=True)


# The opt-out register's record functions (the CLI and the admin screen call these).


def _opt_out_number(raw: str, phones: PhoneSettings | None) -> str:
    from cases.phones import DEFAULT, InvalidPhone, normalise

    phone = normalise(raw, phones or DEFAULT)
    if not phone.startswith("+"):
        raise InvalidPhone(f"a citizen's number, not a service code or a withheld id: {raw!r}")
    return phone


def add_opt_out(
    session: Session,
    raw_phone: str,
    added_by: str,
    note: str = "",
    at: datetime | None = None,
    phones: PhoneSettings | None = None,
) -> tuple[OptOut, bool]:
    """Put a number on the register (E.164); returns the entry and whether it is new.
    Raises cases.phones.InvalidPhone for anything that is not a citizen's number."""
    phone = _opt_out_number(raw_phone, phones)
    entry = session.scalar(select(OptOut).where(OptOut.phone == phone))
    if entry is not None:
        return entry, False
    entry = OptOut(
        phone=phone,
        added_at=at or datetime.now(UTC),
        added_by=added_by[:64],
        note=note.strip()[:2000],
    )
    session.add(entry)
    session.flush()
    return entry, True


def remove_opt_out(session: Session, raw_phone: str, phones: PhoneSettings | None = None) -> bool:
    """Take a number off the register; False if it was not on it."""
    phone = _opt_out_number(raw_phone, phones)
    entry = session.scalar(select(OptOut).where(OptOut.phone == phone))
    if entry is None:
        return False
    session.delete(entry)
    session.flush()
    return True


def list_opt_outs(session: Session) -> list[OptOut]:
    """The register, newest first."""
    return list(session.scalars(select(OptOut).order_by(OptOut.added_at.desc(), OptOut.id.desc())))


# The grid's tables (Case.grid_id refers to one): registered with every import of the
# schema, or a process that never imports cases.grid could not write a case.
import cases.grid  # noqa: E402, F401
