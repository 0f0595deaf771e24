"""Hot topics (热点) and special topics (专题).

Hot topics: spikes of one category on one street, or of one word citywide, against the
same hours of past weeks (the detector is cases.hotspots). ``scan_hot_topics`` runs
every minute in the worker (calls.hot_topics): it reads the cases of the last hour and
of the same hour on past weeks, raises topics, joins new cases to open ones and closes
quiet ones. The duty leader's page, the wallboard and the reports read
``current_hot_topics``.

Special topics: a supervisor opens one (台风“摩羯”, 供水管网改造) with rules (categories,
words, streets, dates); cases that match are linked by ``refresh_special_topic``, and
cases are added or left out by hand. ``special_topic_figures`` gives each one's count,
resolved, overdue and satisfaction for a period."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

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
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from cases.duplicates import address_key
from cases.hotspots import Detector, DetectorSettings, Key, OpenTopic, Signal, Tracker, lead_unit
from cases.models import Base, Case, CaseEvent, Category, Department

# -- the tables ------------------------------------------------------------------------


class HotTopicRecord(Base):
    """A raised hot topic: its key, when, how many cases against what baseline."""

    __tablename__ = "hot_topic"
    id: Mapped[int] = mapped_column(primary_key=True)
    category_code: Mapped[str] = mapped_column(String(48), default="")
    street: Mapped[str] = mapped_column(String(64), default="")
    word: Mapped[str] = mapped_column(String(32), default="")
    title: Mapped[str] = mapped_column(String(200))
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_case_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The last scan that found its key unusual: it closes some hours after that.
    last_hot_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    count_at_raise: Mapped[int] = mapped_column(Integer, default=0)
    baseline: Mapped[float] = mapped_column(Float, default=0.0)  # expected in that window
    suggested_unit: Mapped[str] = mapped_column(String(128), default="")
    links: Mapped[list[HotTopicCase]] = relationship(
        back_populates="topic", cascade="all, delete-orphan"
    )


class HotTopicCase(Base):
    __tablename__ = "hot_topic_case"
    topic_id: Mapped[int] = mapped_column(ForeignKey("hot_topic.id"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), primary_key=True)
    topic: Mapped[HotTopicRecord] = relationship(back_populates="links")
    case: Mapped[Case] = relationship()

    __table_args__ = (Index("ix_hot_topic_case_case", "case_id"),)


class SpecialTopic(Base):
    """A 专题, with the rules that group its cases. Rule fields are lists separated by
    spaces or commas; empty means any. A case matches when it was filed within the
    dates and meets every rule given."""

    __tablename__ = "special_topic"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    categories: Mapped[str] = mapped_column(Text, default="")  # category codes
    words: Mapped[str] = mapped_column(Text, default="")  # in description or address
    streets: Mapped[str] = mapped_column(Text, default="")
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    opened_by: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SpecialTopicCase(Base):
    """A case of a special topic: by rule or by hand; one left out by hand stays
    recorded (``excluded``) so the rules do not bring it back."""

    __tablename__ = "special_topic_case"
    topic_id: Mapped[int] = mapped_column(ForeignKey("special_topic.id"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), primary_key=True)
    how: Mapped[str] = mapped_column(String(8))  # rule | hand
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    added_by: Mapped[str] = mapped_column(String(64), default="")
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    case: Mapped[Case] = relationship()

    __table_args__ = (Index("ix_special_topic_case_case", "case_id"),)


# -- streets and words --------------------------------------------------------------------

_STREET_IN_TEXT = re.compile(r"([\u4e00-\u9fff]{2,6}?(?:街道|镇))")
_ABOVE_STREET = re.compile(r"^(海南省)?(海口市)?(秀英区|龙华区|琼山区|美兰区)?")


def street_from_text(address: str) -> str:
    """A street or town named in the address itself (金贸街道, 长流镇)."""
    text = _ABOVE_STREET.sub("", "".join((address or "").split()))
    found = _STREET_IN_TEXT.match(text)
    return found.group(1) if found else ""


STREET_MEMO_S = 600.0  # how long a looked-up street is trusted
STREET_MEMO_MAX = 100_000
_street_memo: dict[str, str] = {}
_street_memo_index: list[object] = [None]  # the address index it was made with
_street_memo_since: list[float] = [0.0]


def default_street_of(db: Session) -> Callable[[str], str]:
    """The street of an address as cases.grid.street_of_address finds it (its grid's
    street by the address table, else one the address names), else the street the
    address names in its own words. The address table is read once per scan and the
    answers are remembered across scans (each reads the past weeks' addresses again)
    until the table changes or some minutes pass."""
    from cases.grid import Grid, GridCommunity, GridStreet, address_index

    index = address_index(db)
    clock = time.monotonic()
    if (
        _street_memo_index[0] is not index
        or clock - _street_memo_since[0] > STREET_MEMO_S
        or len(_street_memo) > STREET_MEMO_MAX
    ):
        _street_memo.clear()
        _street_memo_index[0], _street_memo_since[0] = index, clock
    memo = _street_memo
    grid_streets: dict[int, str] = {}

    def street_of(address: str) -> str:
        if address in memo:
            return memo[address]
        street = ""
        grid_id = index.grid_id_for(address or "")
        if grid_id is not None:
            if grid_id not in grid_streets:
                grid_streets[grid_id] = (
                    db.scalar(
                        select(GridStreet.name)
                        .join(GridCommunity, GridCommunity.street_id == GridStreet.id)
                        .join(Grid, Grid.community_id == GridCommunity.id)
                        .where(Grid.id == grid_id)
                    )
                    or ""
                )
            street = grid_streets[grid_id]
        if not street:
            text = "".join((address or "").split())
            named = [name for name in index.streets if name in text]
            street = max(named, key=len) if named else street_from_text(address)
        memo[address] = street
        return street

    return street_of


# Words that say nothing about the matter of a case, beyond the knowledge base's.
TOPIC_STOPWORDS = frozenset(
    "你好 您好 麻烦 我要 谢谢 反映 市民 来电 问题 情况 希望 要求 处理 解决 相关 部门 "
    "小区 附近 门口 一下 "
    "没有 不能 不了 已经 了解 投诉 咨询 请求 帮忙 这个 那个 时间 多次 目前 严重 影响 "
    "居民 群众 我们 他们 大家 请问 核实 进行 存在 造成 导致 经常 每天 晚上 白天 上午 下午".split()
)


def topic_words(text: str) -> tuple[str, ...]:
    """The words of a case's description a topic may be about: jieba's words of two
    characters or more, less what callers say about anything. A name jieba does not
    know (a typhoon's: 摩羯) comes out as single characters; a run of them is taken as
    one word."""
    from cases.knowledge import STOPWORDS, _tokenizer

    words: list[str] = []
    run = ""
    for token in [*_tokenizer().lcut(text[:500].lower()), "。"]:
        if len(token) == 1 and _CJK_CHAR.match(token) and token not in STOPWORDS:
            run += token
            continue
        if len(run) >= 2:
            words.append(run)
        run = ""
        words.append(token)
    return tuple(
        dict.fromkeys(
            w
            for w in words
            if len(w) >= 2
            and _WORD.fullmatch(w)
            and not w.isdigit()
            and w not in STOPWORDS
            and w not in TOPIC_STOPWORDS
        )
    )


@lru_cache(maxsize=100_000)
def _cached_topic_words(text: str) -> tuple[str, ...]:
    """topic_words, remembered: each scan reads the past weeks' same cases again."""
    return topic_words(text)


_CJK_CHAR = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
_WORD = re.compile("[0-9a-z\u3400-\u4dbf\u4e00-\u9fff]{2,32}")


# -- hot topics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HotTopic:
    """One raised hot topic, as screens and reports show it."""

    id: int
    title: str  # e.g. 龙华区 金贸街道 · 停水
    raised_at: datetime
    case_count: int
    baseline: float
    suggested_unit: str = ""  # the lead unit's name, for a screen
    case_numbers: tuple[str, ...] = field(default_factory=tuple)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def current_hot_topics(db: Session, now: datetime) -> list[HotTopic]:
    """The hot topics open at ``now``, newest first."""
    rows = db.scalars(
        select(HotTopicRecord)
        .where(
            HotTopicRecord.raised_at <= now,
            or_(HotTopicRecord.closed_at.is_(None), HotTopicRecord.closed_at > now),
        )
        .order_by(HotTopicRecord.raised_at.desc(), HotTopicRecord.id.desc())
        .limit(50)
    ).all()
    topics = []
    for row in rows:
        numbers = db.scalars(
            select(Case.number)
            .join(HotTopicCase, HotTopicCase.case_id == Case.id)
            .where(HotTopicCase.topic_id == row.id)
            .order_by(Case.created_at.desc())
        ).all()
        topics.append(
            HotTopic(
                id=row.id,
                title=row.title,
                raised_at=_aware(row.raised_at),
                case_count=len(numbers),
                baseline=round(row.baseline, 2),
                suggested_unit=row.suggested_unit,
                case_numbers=tuple(numbers),
            )
        )
    return topics


# Channels where the citizen writes the request (and may choose its category) without an
# operator: their words count only once an operator has filed the case's form.
SELF_SERVICE_CHANNELS = ("web", "sms", "open311")


def source_of(phone: str, channel: str, address: str) -> str:
    """Who filed a case, for counting distinct reports: the phone number, else one source
    per channel and place (requests without a number from one place are one source)."""
    phone = "".join((phone or "").split())
    if phone:
        return "tel:" + phone
    return f"{channel}|{address_key(address)}"


def _signals(
    db: Session, start: datetime, end: datetime, street_of: Callable[[str], str]
) -> list[Signal]:
    """The cases filed in [start, end) as signals. Merged repeats count (twenty callers
    merged into one case are twenty reports), but one caller is one source. A case is
    on a street only once it has a category, and its words count only when an operator
    has categorised it: raw citizen text alone never makes a word topic."""
    filed_by_operator = or_(
        Case.channel.not_in(SELF_SERVICE_CHANNELS),
        exists().where(CaseEvent.case_id == Case.id, CaseEvent.action == "form"),
    )
    rows = db.execute(
        select(
            Case.id,
            Case.created_at,
            Case.caller_phone,
            Case.channel,
            Case.address,
            Case.description,
            Category.code,
            filed_by_operator,
        )
        .outerjoin(Category, Case.category_id == Category.id)
        .where(Case.created_at >= start, Case.created_at < end)
    ).all()
    signals = []
    for case_id, created_at, phone, channel, address, description, code, by_operator in rows:
        categorised = bool(code)
        signals.append(
            Signal(
                _aware(created_at).timestamp(),
                case_id,
                code or "",
                street_of(address) if categorised and address else "",
                _cached_topic_words((description or "")[:500])
                if categorised and by_operator
                else (),
                source_of(phone, channel, address or ""),
            )
        )
    return signals


def _title(db: Session, key: Key) -> str:
    if key.is_word:
        return f"热词 “{key.word}”"
    name = db.scalar(select(Category.name).where(Category.code == key.category))
    return f"{key.street} · {name or key.category}"


def _suggested_unit(db: Session, case_ids: Iterable[int]) -> str:
    """The unit most of the cases went to, else their categories' default unit."""
    ids = list(case_ids)[:500]
    if not ids:
        return ""
    units = db.execute(
        select(Case.department_id, Category.department_id)
        .outerjoin(Category, Case.category_id == Category.id)
        .where(Case.id.in_(ids))
    ).all()
    chosen = lead_unit(str(d) for d, _ in units if d) or lead_unit(str(c) for _, c in units if c)
    if not chosen:
        return ""
    return db.scalar(select(Department.name).where(Department.id == int(chosen))) or ""


def scan_hot_topics(
    db: Session,
    now: datetime,
    settings: DetectorSettings | None = None,
    street_of: Callable[[str], str] | None = None,
) -> dict[str, int]:
    """One scan at ``now``: raise, grow and close hot topics. Idempotent enough to run
    every minute from any one worker (a topic per key stays open once raised)."""
    settings = settings or DetectorSettings()
    street_of = street_of or default_street_of(db)
    widest = timedelta(seconds=max(settings.windows_s))
    first = db.scalar(select(func.min(Case.created_at)))
    if first is None:
        return {"raised": 0, "joined": 0, "closed": 0}
    history_from = _aware(first)
    detector = Detector(settings, history_from=history_from.timestamp())
    # The current windows, and the hour before them for cases joining open topics; a
    # young database with no past week compares with the day before.
    start = now - widest - timedelta(hours=1)
    if history_from > now - timedelta(days=7):
        start = now - widest - timedelta(days=1)
    current = _signals(db, start, now + timedelta(seconds=1), street_of)
    detector.extend(current)
    for week in range(1, settings.weeks + 1):
        back = timedelta(days=7 * week)
        band = timedelta(seconds=settings.band_s)  # the hours either side, as the baseline reads
        past = _signals(db, now - back - widest - band, now - back + band, street_of)
        detector.extend(past)
    recent = now.timestamp() - widest.total_seconds()
    keys = {key for signal in current if signal.at >= recent for key in _keys(signal)}

    open_rows = {
        Key(r.category_code, r.street, r.word): r
        for r in db.scalars(select(HotTopicRecord).where(HotTopicRecord.closed_at.is_(None)))
    }
    tracker = Tracker(
        settings,
        [
            OpenTopic(
                key,
                _aware(row.raised_at).timestamp(),
                _aware(row.last_case_at).timestamp(),
                row.count_at_raise,
                row.baseline,
                {link.case_id for link in row.links},
                row.id,
                _aware(row.last_hot_at).timestamp(),
            )
            for key, row in open_rows.items()
        ],
    )
    change = tracker.apply(detector, detector.scan(now.timestamp(), keys), now.timestamp())
    for topic in change.raised:
        row = HotTopicRecord(
            category_code=topic.key.category,
            street=topic.key.street,
            word=topic.key.word,
            title=_title(db, topic.key),
            raised_at=now,
            last_case_at=now,
            last_hot_at=now,
            count_at_raise=topic.count_at_raise,
            baseline=topic.expected,
            suggested_unit=_suggested_unit(db, topic.case_ids),
        )
        row.links = [HotTopicCase(case_id=c) for c in sorted(topic.case_ids)]
        db.add(row)
    for topic, fresh in change.joined:
        row = open_rows[topic.key]
        row.links.extend(HotTopicCase(case_id=c) for c in fresh)
        row.last_case_at = now
    for key, row in open_rows.items():
        still = tracker.open.get(key)
        if still is not None and still.hot_at > _aware(row.last_hot_at).timestamp():
            row.last_hot_at = datetime.fromtimestamp(still.hot_at, UTC)
    for topic in change.closed:
        open_rows[topic.key].closed_at = now
    db.commit()
    return {
        "raised": len(change.raised),
        "joined": sum(len(f) for _, f in change.joined),
        "closed": len(change.closed),
    }


def _keys(signal: Signal) -> list[Key]:
    from cases.hotspots import keys_of

    return keys_of(signal)


# -- special topics -----------------------------------------------------------------------

_LIST = re.compile(r"[\s,，、;；]+")


def rule_list(text: str) -> list[str]:
    return [part for part in _LIST.split(text or "") if part]


@dataclass(frozen=True)
class SpecialTopicFigures:
    """One special topic (专题) over a period, as the reports and screens show it."""

    id: int
    name: str  # e.g. 台风“摩羯”
    cases: int
    resolved: int
    overdue: int
    satisfied: int
    rated: int  # return visits with an answer; satisfaction = satisfied / rated


class TopicRefused(ValueError):
    """A special topic's input refused: a stable code and words in zh-CN and English."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.code, self.zh, self.en = code, zh, en


def open_special_topic(
    db: Session,
    name: str,
    actor: str,
    now: datetime,
    *,
    categories: str = "",
    words: str = "",
    streets: str = "",
    starts_on: date | None = None,
    ends_on: date | None = None,
    note: str = "",
) -> SpecialTopic:
    name = name.strip()[:128]
    if not name:
        raise TopicRefused("topic-name", "专题须有名称", "A special topic needs a name")
    codes = rule_list(categories)
    known = set(db.scalars(select(Category.code).where(Category.code.in_(codes or [""]))))
    unknown = [c for c in codes if c not in known]
    if unknown:
        listed = "、".join(unknown)
        raise TopicRefused(
            "topic-category", f"没有这些类别：{listed}", f"No such categories: {listed}"
        )
    if starts_on and ends_on and ends_on < starts_on:
        raise TopicRefused("topic-dates", "结束日期早于开始日期", "The end comes before the start")
    topic = SpecialTopic(
        name=name,
        note=note.strip()[:2000],
        categories=" ".join(codes),
        words=" ".join(rule_list(words))[:1000],
        streets=" ".join(rule_list(streets))[:1000],
        starts_on=starts_on,
        ends_on=ends_on,
        opened_by=actor[:64],
        opened_at=now,
    )
    db.add(topic)
    db.flush()
    return topic


def _matches(topic: SpecialTopic, case: Case, code: str, street_of: Callable[[str], str]) -> bool:
    categories, words, streets = (
        rule_list(topic.categories),
        rule_list(topic.words),
        rule_list(topic.streets),
    )
    if not (categories or words or streets):
        return False  # a topic of hand-picked cases only
    if categories and code not in categories:
        return False
    if words:
        text = (case.description or "") + " " + (case.address or "")
        if not any(w in text for w in words):
            return False
    if streets:
        street = street_of(case.address or "")
        if not any(s == street or s in (case.address or "") for s in streets):
            return False
    return True


def refresh_special_topic(
    db: Session,
    topic: SpecialTopic,
    now: datetime,
    street_of: Callable[[str], str] | None = None,
) -> int:
    """Link the cases its rules match (never one left out by hand); returns how many
    were added."""
    street_of = street_of or default_street_of(db)
    query = select(Case, Category.code).outerjoin(Category, Case.category_id == Category.id)
    if topic.starts_on:
        query = query.where(Case.created_at >= _day_start(topic.starts_on))
    if topic.ends_on:
        query = query.where(Case.created_at < _day_start(topic.ends_on + timedelta(days=1)))
    codes = rule_list(topic.categories)
    if codes:
        query = query.where(Category.code.in_(codes))
    linked = set(
        db.scalars(select(SpecialTopicCase.case_id).where(SpecialTopicCase.topic_id == topic.id))
    )
    added = 0
    for case, code in db.execute(query.where(Case.merged_into_id.is_(None))):
        if case.id in linked or not _matches(topic, case, code or "", street_of):
            continue
        db.add(SpecialTopicCase(topic_id=topic.id, case_id=case.id, how="rule", added_at=now))
        added += 1
    db.flush()
    return added


def _day_start(day: date) -> datetime:
    """Midnight Beijing time of ``day``, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=8)


def add_case_by_hand(
    db: Session, topic: SpecialTopic, number: str, actor: str, now: datetime
) -> Case:
    case = db.scalar(select(Case).where(Case.number == number.strip()))
    if case is None:
        raise TopicRefused("no-such-case", f"找不到工单 {number}", f"No case {number}")
    link = db.get(SpecialTopicCase, (topic.id, case.id))
    if link is None:
        db.add(
            SpecialTopicCase(
                topic_id=topic.id, case_id=case.id, how="hand", added_by=actor[:64], added_at=now
            )
        )
    else:
        link.excluded, link.how, link.added_by = False, "hand", actor[:64]
    db.flush()
    return case


def leave_out_case(db: Session, topic: SpecialTopic, case_id: int, actor: str) -> None:
    link = db.get(SpecialTopicCase, (topic.id, case_id))
    if link is not None:
        link.excluded, link.added_by = True, actor[:64]
        db.flush()


def topic_cases(db: Session, topic: SpecialTopic, limit: int = 200) -> list[Case]:
    return list(
        db.scalars(
            select(Case)
            .join(SpecialTopicCase, SpecialTopicCase.case_id == Case.id)
            .where(SpecialTopicCase.topic_id == topic.id, SpecialTopicCase.excluded.is_(False))
            .order_by(Case.created_at.desc())
            .limit(limit)
        )
    )


RESOLVED = ("resolved", "closed")


def figures_of(
    db: Session, topic: SpecialTopic, start: datetime | None = None, end: datetime | None = None
) -> SpecialTopicFigures:
    """A topic's figures over its cases filed in [start, end) (all of them without)."""
    query = (
        select(Case)
        .join(SpecialTopicCase, SpecialTopicCase.case_id == Case.id)
        .where(SpecialTopicCase.topic_id == topic.id, SpecialTopicCase.excluded.is_(False))
    )
    if start is not None:
        query = query.where(Case.created_at >= start)
    if end is not None:
        query = query.where(Case.created_at < end)
    cases = db.scalars(query).all()
    return SpecialTopicFigures(
        id=topic.id,
        name=topic.name,
        cases=len(cases),
        resolved=sum(1 for c in cases if c.resolved_at is not None or c.status in RESOLVED),
        overdue=sum(1 for c in cases if c.response_overdue or c.handling_overdue),
        satisfied=sum(1 for c in cases if c.satisfaction == "satisfied"),
        rated=sum(1 for c in cases if c.satisfaction in ("satisfied", "unsatisfied")),
    )


def special_topic_figures(db: Session, start: datetime, end: datetime) -> list[SpecialTopicFigures]:
    """Each special topic open during [start, end) with its figures for the period."""
    topics = db.scalars(
        select(SpecialTopic)
        .where(
            SpecialTopic.opened_at < end,
            or_(SpecialTopic.closed_at.is_(None), SpecialTopic.closed_at >= start),
        )
        .order_by(SpecialTopic.id)
    ).all()
    return [figures_of(db, topic, start, end) for topic in topics]


def refresh_open_special_topics(db: Session, now: datetime) -> int:
    added = 0
    for topic in db.scalars(select(SpecialTopic).where(SpecialTopic.closed_at.is_(None))).all():
        added += refresh_special_topic(db, topic, now)
    db.commit()
    return added
