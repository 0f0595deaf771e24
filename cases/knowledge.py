"""The knowledge base (知识库): articles operators read out, citizens read, and units keep.

The service API (the console, the portal and the public view call these; each writer
flushes, and the caller commits):

- Who acts: ``Editor(username, role, department_id)``, or ``editor_for(user)``.
- Changes, each one audited in the action log (``kb-proposed``, ``kb-submitted``,
  ``kb-published``, ``kb-rejected``, ``kb-withdrawn``, ``kb-retired``, ``kb-answered``):

  - ``propose(session, editor, ArticleDraft(...), article_id=None, note="", submit=True)``
    writes a new article's first version, or a change to an article, as a proposal
    (or a draft with ``submit=False``; ``submit(...)`` sends it later). A unit's staff
    (role ``department``) propose only for their own unit's articles; an admin or a
    knowledge editor (``knowledge_editor``) for any. One open proposal per article.
  - ``approve(session, editor, version_id)`` publishes a proposal: it becomes the
    article's published version (the one before is superseded) and the word index is
    updated. ``reject(..., note)`` refuses it. Only an admin or a knowledge editor
    decides, never on their own proposal. ``withdraw`` is the proposer's.
  - ``retire(session, editor, article_id, note)`` takes an article out of use.
  - ``record_answer(session, case_id, article_id, by)`` links a case to the article it
    was answered from (直接答复; closing the case is the desk's) and counts the answer.

- Reading: ``article(session, id)``, ``history(session, id)`` (every version, oldest
  first), ``open_proposals(session, editor)``, ``flagged(session)`` (published articles
  expired, not yet valid, or past their review date), ``flags(article, today)``.
- Finding: ``search(session, query, category=None, limit=10)`` and
  ``suggest(session, category, description_text, limit=5)`` return ``ArticleHit`` rows,
  best first. Search shows flagged articles with their flags (``usable_only=True``
  hides them, for citizens); suggestions never offer a flagged article.
- Loading: ``import_published(session, drafts, by)`` (the seed, the bench) and
  ``reindex(session)``.

Search is on words, not characters: titles, categories and bodies are cut into words by
jieba (search mode, so 停水 and 噪音 are words of their own). SQLite keeps them in an
FTS5 table (``kb_article_fts``, ranked by bm25 with the title weighing most, then the
category, then the body); PostgreSQL in a ``tsvector`` of the same words with a GIN
index (``kb_article_search``, weights A-D, ``ts_rank``); no extension either way. A
one-character query matches the articles' characters, indexed as words of their own.
A small boost goes to articles that answered many calls. On SQLite a question's very
common words (问题, 处理: in thousands of articles and far more than its rarest word, by
``kb_article_fts_vocab``) are left out when rarer ones are there: they rank little and
cost most (bench/kb_bench.py: p99 43 -> 18 ms at 50,000 articles, the same recall).
A query typed in pinyin (tingshui) or with a wrong homophone (停税) finds the title
words with the same toneless pinyin (``kb_word``)."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, selectinload

from cases.models import (
    Category,
    Department,
    District,
    KnowledgeAnswer,
    KnowledgeArticle,
    KnowledgeVersion,
    KnowledgeWord,
    User,
)
from cases.search import BEIJING
from cases.service import utcnow
from cases.users import log_action

REVIEWERS = frozenset({"admin", "knowledge_editor"})
ARTICLE_STATUSES = ("draft", "proposed", "published", "retired")
VERSION_STATES = ("draft", "proposed", "published", "superseded", "rejected", "withdrawn")
FLAGS = ("expired", "not-yet-valid", "review-overdue")
MAX_LIMIT = 50
MAX_QUERY = 200  # characters of a query looked at
MAX_TERMS = 16
# A word in more articles than this, and than 20 times the articles of the question's
# rarest word, is left out of the query (SQLite): it ranks little and costs the most.
COMMON_WORD_ARTICLES = 5000
HOMOPHONE_QUERY = 32  # characters: a longer text is not second-guessed for homophones
ANSWER_BOOST = 0.05  # per e-fold of calls answered: a tie-breaker, never a trump
# bm25 weights of kb_article_fts's columns: title, category, body, title_chars, body_chars
FTS_WEIGHTS = (10.0, 4.0, 1.0, 6.0, 1.0)
# ts_rank's weights, in PostgreSQL's order {D, C, B, A}: body characters, body,
# category, title (words and characters)
TS_WEIGHTS = "{0.05, 0.2, 0.5, 1.0}"
# Words of a question that say nothing about its matter.
STOPWORDS = frozenset(
    "的 了 吗 呢 啊 吧 么 呀 嘛 哦 是 有 在 和 与 及 或 我 我们 你 您 他 她 它 这 那 这个 那个 "
    "怎么 怎么办 怎样 怎么样 什么 如何 哪里 哪儿 为什么 为何 可以 能 能否 能不能 会 要 想 问 请 "
    "请问 一下 时候 什么时候 多久 谁 吗 还 就 都 也 又 被 把 给 让 没 没有 不 不是 "
    # How callers set the scene (家里突然停水了): rarer than the topic word, they made
    # 家里突然停电 outrank every water-cut article.
    "家里 我家 家中 突然 今天 昨天 刚才 刚刚 现在 已经 一直 好像 老是 总是 最近 这边 那边 "
    "这里 那里 发现 出现 一点 有点 好几天 几天".split()
)

log = logging.getLogger(__name__)
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(f"[0-9a-z{_CJK}]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_CJK_RUN = re.compile(f"[{_CJK}]+")
_LATIN_RUN = re.compile(r"[a-z]+")
_MAX_WORD = 32


class KnowledgeError(ValueError):
    """A refused change or a bad question. ``code`` names it for the screens."""

    def __init__(self, message: str, code: str = "invalid", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Editor:
    """Who acts on the knowledge base: a user's name, role and unit."""

    username: str
    role: str
    department_id: int | None = None

    @property
    def reviews(self) -> bool:
        return self.role in REVIEWERS


def editor_for(user: User) -> Editor:
    return Editor(user.username, user.role, user.department_id)


@dataclass(frozen=True)
class ArticleDraft:
    """An article's content as written. ``unit_code`` None: the category's unit (a
    category handled by the district's government needs a unit named)."""

    title: str
    body: str
    category_code: str
    unit_code: str | None = None
    district_code: str | None = None  # None: citywide
    valid_from: date | None = None  # None: today
    valid_until: date | None = None
    review_on: date | None = None


@dataclass(frozen=True)
class ArticleHit:
    id: int
    title: str
    body: str
    category_code: str
    category: str
    unit_code: str
    unit: str
    district: str
    version: int
    answered_count: int
    valid_until: date | None
    review_on: date | None
    flags: tuple[str, ...]
    score: float = 0.0


@dataclass(frozen=True)
class _Terms:
    """A query cut into what the index is asked for."""

    words: list[str] = field(default_factory=list)  # matched against words
    chars: list[str] = field(default_factory=list)  # one-character fallback


# -- words ----------------------------------------------------------------------------

_jieba_lock = threading.Lock()
_jieba: Any = None


def _tokenizer() -> Any:
    """jieba's tokenizer, loaded once per process (its dictionary takes about a second)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return _jieba


def segment(text_: str) -> list[str]:
    """Words of a text, in search mode (停水, 噪音; 社保卡 also as 社保), lower case,
    punctuation and spaces left out."""
    return list(_segment(text_))


@lru_cache(maxsize=8192)  # the seed, category names, repeated questions: cut once
def _segment(text_: str) -> tuple[str, ...]:
    return tuple(
        token
        for token in _tokenizer().cut_for_search(text_.lower())
        if _TOKEN.fullmatch(token) and len(token) <= _MAX_WORD
    )


def characters(text_: str) -> list[str]:
    """Each Chinese character of a text once, in order: the one-character index."""
    return list(dict.fromkeys(_CJK_CHAR.findall(text_)))


@lru_cache(maxsize=1)
def _syllables() -> frozenset[str]:
    from pypinyin.constants import PINYIN_DICT
    from pypinyin.contrib.tone_convert import to_normal

    found = {to_normal(p) for v in PINYIN_DICT.values() for p in v.split(",")}
    return frozenset(s for s in found if re.search("[aeiouv]", s) and s.isascii())


def split_pinyin(letters: str) -> list[str] | None:
    """Pinyin typed without tones or spaces, cut into syllables (fewest wins):
    tingshui -> [ting, shui]; None when it is not pinyin."""
    syllables = _syllables()
    n = len(letters)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for end in range(1, n + 1):
        for start in range(max(0, end - 6), end):
            head = best[start]
            piece = letters[start:end]
            if head is not None and piece in syllables:
                if best[end] is None or len(head) + 1 < len(best[end] or []):
                    best[end] = [*head, piece]
    return best[n]


@lru_cache(maxsize=8192)
def pinyin_of(word: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return "".join(lazy_pinyin(word, style=Style.NORMAL))


def _title_words(title: str, category: str) -> set[str]:
    """Words the pinyin index knows: a title's and its category's Chinese words."""
    return {w for w in segment(f"{title} {category}") if len(w) >= 2 and _CJK_RUN.fullmatch(w)}


def _ngrams(items: Sequence[str], low: int = 2, high: int = 4) -> list[tuple[int, int]]:
    return [
        (start, start + size)
        for size in range(low, high + 1)
        for start in range(0, len(items) - size + 1)
    ]


def _sounds_like(session: Session, query: str) -> list[str]:
    """Title words the query may have meant: pinyin typed for them (tingshui, ting shui),
    or a homophone typed in their place (停税). Parts of the query that already are
    known words are not second-guessed. Homophones only in a short query (what is typed
    in the search box): a whole description would sound like too many other words."""
    runs: list[tuple[str, list[str]]] = []  # (the run's characters or "", its syllables)
    for match in re.finditer(f"[{_CJK}]+|[a-z]+(?: +[a-z]+)*", query):
        piece = match.group()
        if _CJK_RUN.fullmatch(piece):
            if len(query) <= HOMOPHONE_QUERY:
                runs.append((piece, pinyin_of_chars(piece)))
        else:
            syllables = split_pinyin(piece.replace(" ", ""))
            if syllables and len(syllables) >= 2:
                runs.append(("", syllables))
    if not runs:
        return []
    as_written = {piece[a:b] for piece, _ in runs if piece for a, b in _ngrams(piece, 2, 6)}
    known = (
        set(session.scalars(select(KnowledgeWord.word).where(KnowledgeWord.word.in_(as_written))))
        if as_written
        else set()
    )
    wanted: set[str] = set()
    for piece, syllables in runs:
        covered = [False] * len(syllables)
        if piece:
            for a, b in _ngrams(piece, 2, 6):
                if piece[a:b] in known:
                    covered[a:b] = [True] * (b - a)
        for a, b in _ngrams(syllables):
            if not any(covered[a:b]):
                wanted.add("".join(syllables[a:b]))
    if not wanted:
        return []
    return sorted(
        session.scalars(
            select(KnowledgeWord.word).where(KnowledgeWord.pinyin.in_(wanted)).limit(MAX_TERMS)
        )
    )


def pinyin_of_chars(run: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return [str(p) for p in lazy_pinyin(run, style=Style.NORMAL)]


def _terms(session: Session, query: str) -> _Terms:
    query = query.strip().lower()[:MAX_QUERY]
    tokens = [t for t in dict.fromkeys(segment(query)) if t not in STOPWORDS]
    words = [t for t in tokens if len(t) >= 2 or not _CJK_CHAR.fullmatch(t)]
    chars = [t for t in tokens if len(t) == 1 and _CJK_CHAR.fullmatch(t)]
    for word in _sounds_like(session, query):
        if word not in words:
            words.append(word)
    if words:  # a single character beside words is mostly noise (了, 水 of 停了水 aside)
        return _Terms(words[:MAX_TERMS])
    return _Terms([], chars[:MAX_TERMS])


# -- dates ----------------------------------------------------------------------------


def beijing_today() -> date:
    return datetime.now(BEIJING).date()


def flags(item: KnowledgeArticle | ArticleHit, today: date | None = None) -> tuple[str, ...]:
    """Why an article should not be read out as it stands: past its valid-until date,
    before its valid-from date, or past its review date."""
    today = today or beijing_today()
    found = []
    if item.valid_until is not None and item.valid_until < today:
        found.append("expired")
    valid_from = getattr(item, "valid_from", None)
    if valid_from is not None and valid_from > today:
        found.append("not-yet-valid")
    if item.review_on is not None and item.review_on < today:
        found.append("review-overdue")
    return tuple(found)


# -- the word index -------------------------------------------------------------------


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _index_rows(
    session: Session, articles: Sequence[KnowledgeArticle], categories: dict[int, str]
) -> None:
    """(Re)index published articles; anything else is taken out of the index."""
    if not articles:
        return
    ids = [a.id for a in articles]
    sqlite = _dialect(session) == "sqlite"
    table = "kb_article_fts" if sqlite else "kb_article_search"
    key = "rowid" if sqlite else "article_id"
    for start in range(0, len(ids), 500):
        listed = ",".join(str(int(i)) for i in ids[start : start + 500])
        session.execute(text(f"DELETE FROM {table} WHERE {key} IN ({listed})"))
    rows: list[dict[str, Any]] = []
    words: dict[str, str] = {}
    for item in articles:
        if item.status != "published":
            continue
        category = categories.get(item.category_id, "")
        title_words, body_words = segment(item.title), segment(item.body)
        row: dict[str, Any] = {"id": item.id}
        if sqlite:
            row |= {
                "title": " ".join(title_words),
                "category": " ".join(segment(category)),
                "body": " ".join(body_words),
                "title_chars": " ".join(characters(item.title)),
                "body_chars": " ".join(characters(item.body)),
            }
        else:
            row["document"] = tsvector_literal(
                [
                    (title_words + characters(item.title), "A"),
                    (segment(category), "B"),
                    (body_words, "C"),
                    (characters(item.body), "D"),
                ]
            )
        rows.append(row)
        for word in _title_words(item.title, category):
            if word not in words:
                words[word] = pinyin_of(word)
    if rows:
        if sqlite:
            session.execute(
                text(
                    "INSERT INTO kb_article_fts"
                    "(rowid, title, category, body, title_chars, body_chars) "
                    "VALUES (:id, :title, :category, :body, :title_chars, :body_chars)"
                ),
                rows,
            )
        else:
            session.execute(
                text(
                    "INSERT INTO kb_article_search (article_id, document) "
                    "VALUES (:id, CAST(:document AS tsvector))"
                ),
                rows,
            )
    if words:
        _add_words(session, words)


def tsvector_literal(parts: Sequence[tuple[Sequence[str], str]]) -> str:
    """A tsvector, as PostgreSQL reads it, of words already cut by jieba: each word with
    its positions and its part's weight ('停水':3A,17C). This is what
    ``setweight(to_tsvector('simple', ...))`` makes of space-separated words, without
    leaving the cutting to the server's parser and locale. Positions keep the weights
    (a tsvector without positions ranks every word as D)."""
    positions: dict[str, list[str]] = {}
    position = 0
    for words, weight in parts:
        for word in words:
            position = min(position + 1, 16383)  # PostgreSQL's limits
            found = positions.setdefault(word, [])
            if len(found) < 256:
                found.append(f"{position}{weight}")
    return " ".join(
        "'" + word.replace("\\", "\\\\").replace("'", "''") + "':" + ",".join(at)
        for word, at in positions.items()
    )


def _add_words(session: Session, words: dict[str, str]) -> None:
    if _dialect(session) == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        sqlite_statement = sqlite_insert(KnowledgeWord).on_conflict_do_nothing()
        session.execute(sqlite_statement, [{"word": w, "pinyin": p} for w, p in words.items()])
    else:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg_statement = pg_insert(KnowledgeWord).on_conflict_do_nothing()
        session.execute(pg_statement, [{"word": w, "pinyin": p} for w, p in words.items()])


def _category_names(session: Session) -> dict[int, str]:
    return {int(i): str(n) for i, n in session.execute(select(Category.id, Category.name))}


def reindex(session: Session, article_ids: Iterable[int] | None = None) -> int:
    """Rebuild the word index (of some articles, or all); returns how many are indexed."""
    statement = select(KnowledgeArticle)
    if article_ids is not None:
        statement = statement.where(KnowledgeArticle.id.in_(list(article_ids)))
    articles = list(session.scalars(statement))
    session.flush()
    _index_rows(session, articles, _category_names(session))
    return sum(1 for a in articles if a.status == "published")


# -- changes --------------------------------------------------------------------------


@dataclass
class _Catalogue:
    """Codes to ids, read once for many drafts."""

    categories: dict[str, tuple[int, int | None]]
    units: dict[str, int]
    districts: dict[str, int]

    @classmethod
    def read(cls, session: Session) -> _Catalogue:
        return cls(
            {
                c: (i, d)
                for c, i, d in session.execute(
                    select(Category.code, Category.id, Category.department_id)
                )
            },
            {c: i for c, i in session.execute(select(Department.code, Department.id))},
            {c: i for c, i in session.execute(select(District.code, District.id))},
        )


def _resolve(
    session: Session, draft: ArticleDraft, known: _Catalogue | None = None
) -> tuple[int, int, int | None]:
    """The draft's category, unit and district ids; refuses what does not exist."""
    known = known or _Catalogue.read(session)
    title, body = draft.title.strip(), draft.body.strip()
    if not title or len(title) > 200:
        raise KnowledgeError("a title is 1-200 characters", "bad-title")
    if not body or len(body) > 20000:
        raise KnowledgeError("an answer is 1-20,000 characters", "bad-body")
    category = known.categories.get(draft.category_code)
    if category is None:
        raise KnowledgeError(f"no category {draft.category_code!r}", "no-category")
    category_id, category_unit = category
    if draft.unit_code:
        unit_id = known.units.get(draft.unit_code)
        if unit_id is None:
            raise KnowledgeError(f"no unit {draft.unit_code!r}", "no-unit")
    elif category_unit is not None:
        unit_id = category_unit
    else:
        raise KnowledgeError("this category's unit is the district's: name the unit", "no-unit")
    district_id = None
    if draft.district_code:
        district_id = known.districts.get(draft.district_code)
        if district_id is None:
            raise KnowledgeError(f"no district {draft.district_code!r}", "no-district")
    start = draft.valid_from or beijing_today()
    if draft.valid_until is not None and draft.valid_until < start:
        raise KnowledgeError("valid-until is before valid-from", "bad-dates")
    return category_id, unit_id, district_id


def _may_propose(editor: Editor, unit_id: int) -> None:
    if editor.reviews:
        return
    if editor.role != "department":
        raise KnowledgeError("your role cannot change the knowledge base", "forbidden-role", 403)
    if editor.department_id != unit_id:
        raise KnowledgeError("a unit changes only its own articles", "not-your-unit", 403)


def _audit(
    session: Session, editor: Editor | str, action: str, article_id: int, detail: str
) -> None:
    actor = editor.username if isinstance(editor, Editor) else editor
    log_action(session, actor, action, f"kb:{article_id}", detail[:500])


# Ids are 32-bit columns on PostgreSQL (64-bit on SQLite): a larger one names nothing,
# and asking the database for it would fail instead of finding nothing.
MAX_ID = 2**31 - 1


def article(session: Session, article_id: int) -> KnowledgeArticle:
    found = session.get(KnowledgeArticle, article_id) if 0 < article_id <= MAX_ID else None
    if found is None:
        raise KnowledgeError(f"no article {article_id}", "no-article", 404)
    return found


def _version(session: Session, version_id: int) -> KnowledgeVersion:
    found = session.get(KnowledgeVersion, version_id) if 0 < version_id <= MAX_ID else None
    if found is None:
        raise KnowledgeError(f"no version {version_id}", "no-version", 404)
    return found


def _open_version(session: Session, article_id: int) -> KnowledgeVersion | None:
    return session.scalar(
        select(KnowledgeVersion).where(
            KnowledgeVersion.article_id == article_id,
            KnowledgeVersion.state.in_(("draft", "proposed")),
        )
    )


def propose(
    session: Session,
    editor: Editor,
    draft: ArticleDraft,
    article_id: int | None = None,
    note: str = "",
    submit: bool = True,
) -> KnowledgeVersion:
    """A new article (``article_id`` None) or a change to one, as a proposal for a
    reviewer (or a draft its writer submits later)."""
    category_id, unit_id, district_id = _resolve(session, draft)
    _may_propose(editor, unit_id)
    now = utcnow()
    if article_id is None:
        item = KnowledgeArticle(
            title=draft.title.strip(),
            body=draft.body.strip(),
            category_id=category_id,
            department_id=unit_id,
            district_id=district_id,
            valid_from=draft.valid_from or beijing_today(),
            valid_until=draft.valid_until,
            review_on=draft.review_on,
            status="proposed" if submit else "draft",
            version=0,
            answered_count=0,
            created_at=now,
            updated_at=now,
        )
        session.add(item)
        session.flush()
    else:
        item = article(session, article_id)
        _may_propose(editor, item.department_id)  # and the unit it goes to, above
        if _open_version(session, item.id) is not None:
            raise KnowledgeError("this article has an open proposal", "open-proposal", 409)
    number = 1 + (
        session.scalar(
            select(func.max(KnowledgeVersion.number)).where(KnowledgeVersion.article_id == item.id)
        )
        or 0
    )
    version = KnowledgeVersion(
        article_id=item.id,
        number=number,
        title=draft.title.strip(),
        body=draft.body.strip(),
        category_id=category_id,
        department_id=unit_id,
        district_id=district_id,
        valid_from=draft.valid_from or beijing_today(),
        valid_until=draft.valid_until,
        review_on=draft.review_on,
        state="proposed" if submit else "draft",
        written_by=editor.username,
        written_at=now,
        note=note.strip()[:2000],
    )
    session.add(version)
    session.flush()
    action = "kb-proposed" if submit else "kb-drafted"
    _audit(session, editor, action, item.id, f"v{number} {version.title}")
    return version


def submit(session: Session, editor: Editor, version_id: int) -> KnowledgeVersion:
    """A draft goes to the reviewers; only its writer sends it."""
    version = _version(session, version_id)
    if version.state != "draft":
        raise KnowledgeError("only a draft is submitted", "not-draft", 409)
    if version.written_by != editor.username:
        raise KnowledgeError("only its writer submits a draft", "not-yours", 403)
    version.state = "proposed"
    item = article(session, version.article_id)
    if item.status == "draft":
        item.status = "proposed"
    _audit(session, editor, "kb-submitted", item.id, f"v{version.number}")
    session.flush()
    return version


def _decidable(session: Session, editor: Editor, version_id: int) -> KnowledgeVersion:
    if not editor.reviews:
        raise KnowledgeError(
            "an admin or a knowledge editor decides on changes", "forbidden-role", 403
        )
    version = _version(session, version_id)
    if version.state != "proposed":
        raise KnowledgeError("this version is not awaiting a decision", "not-proposed", 409)
    if version.written_by == editor.username:
        raise KnowledgeError("nobody approves their own proposal", "own-proposal", 403)
    return version


def approve(session: Session, editor: Editor, version_id: int, note: str = "") -> KnowledgeArticle:
    """Publish a proposal: the article reads as it from now on."""
    version = _decidable(session, editor, version_id)
    item = article(session, version.article_id)
    now = utcnow()
    session.execute(
        update(KnowledgeVersion)
        .where(KnowledgeVersion.article_id == item.id, KnowledgeVersion.state == "published")
        .values(state="superseded")
    )
    version.state, version.decided_by, version.decided_at = "published", editor.username, now
    version.review_note = note.strip()[:2000]
    for name in (
        "title",
        "body",
        "category_id",
        "department_id",
        "district_id",
        "valid_from",
        "valid_until",
        "review_on",
    ):
        setattr(item, name, getattr(version, name))
    item.status, item.version, item.updated_at = "published", version.number, now
    session.flush()
    _index_rows(session, [item], _category_names(session))
    _audit(
        session,
        editor,
        "kb-published",
        item.id,
        f"v{version.number} by {version.written_by}: {version.title}",
    )
    return item


def reject(session: Session, editor: Editor, version_id: int, note: str) -> KnowledgeVersion:
    """Refuse a proposal, saying why; the published version stays as it is."""
    if not note.strip():
        raise KnowledgeError("say why the proposal is rejected", "needs-note")
    version = _decidable(session, editor, version_id)
    version.state, version.decided_by, version.decided_at = "rejected", editor.username, utcnow()
    version.review_note = note.strip()[:2000]
    item = article(session, version.article_id)
    if item.version == 0 and item.status == "proposed":
        item.status = "draft"
    session.flush()
    _audit(session, editor, "kb-rejected", item.id, f"v{version.number}: {note.strip()}")
    return version


def withdraw(session: Session, editor: Editor, version_id: int) -> KnowledgeVersion:
    """The writer takes back a draft or a proposal."""
    version = _version(session, version_id)
    if version.state not in ("draft", "proposed"):
        raise KnowledgeError("only an open draft or proposal is withdrawn", "not-open", 409)
    if version.written_by != editor.username:
        raise KnowledgeError("only its writer withdraws a proposal", "not-yours", 403)
    version.state = "withdrawn"
    item = article(session, version.article_id)
    if item.version == 0:
        item.status = "draft"
    session.flush()
    _audit(session, editor, "kb-withdrawn", item.id, f"v{version.number}")
    return version


def retire(session: Session, editor: Editor, article_id: int, note: str) -> KnowledgeArticle:
    """Take an article out of use (search, suggestions, the public view); its history
    stays. A later approved proposal publishes it again."""
    if not editor.reviews:
        raise KnowledgeError("an admin or a knowledge editor retires", "forbidden-role", 403)
    if not note.strip():
        raise KnowledgeError("say why the article is retired", "needs-note")
    item = article(session, article_id)
    item.status, item.updated_at = "retired", utcnow()
    session.flush()
    _index_rows(session, [item], {})
    _audit(session, editor, "kb-retired", item.id, note.strip())
    return item


def record_answer(session: Session, case_id: int, article_id: int, by: str) -> KnowledgeAnswer:
    """Link a case to the article it was answered from, and count the answer. Asking
    again with the same article changes nothing; another article is refused."""
    existing = session.scalar(select(KnowledgeAnswer).where(KnowledgeAnswer.case_id == case_id))
    if existing is not None:
        if existing.article_id != article_id:
            raise KnowledgeError("this case was answered from another article", "answered", 409)
        return existing
    item = article(session, article_id)
    if item.status != "published":
        raise KnowledgeError("only a published article answers a call", "not-published", 409)
    answer = KnowledgeAnswer(
        case_id=case_id,
        article_id=item.id,
        version=item.version,
        answered_by=by[:64],
        answered_at=utcnow(),
    )
    session.add(answer)
    # Counted in SQL (two operators answering at once both count); reloaded on next read.
    item.answered_count = KnowledgeArticle.answered_count + 1  # type: ignore[assignment]
    session.flush()
    _audit(session, by, "kb-answered", item.id, f"case {case_id} v{item.version}")
    return answer


def import_published(session: Session, drafts: Sequence[ArticleDraft], by: str) -> int:
    """Publish articles in bulk, each as a first version written and approved by
    ``by`` (the seed's author, a migration from another system). Returns how many."""
    now = utcnow()
    items: list[KnowledgeArticle] = []
    known = _Catalogue.read(session)
    categories = _category_names(session)
    for start in range(0, len(drafts), 1000):
        batch = []
        for draft in drafts[start : start + 1000]:
            category_id, unit_id, district_id = _resolve(session, draft, known)
            batch.append(
                KnowledgeArticle(
                    title=draft.title.strip(),
                    body=draft.body.strip(),
                    category_id=category_id,
                    department_id=unit_id,
                    district_id=district_id,
                    valid_from=draft.valid_from or beijing_today(),
                    valid_until=draft.valid_until,
                    review_on=draft.review_on,
                    status="published",
                    version=1,
                    answered_count=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        session.add_all(batch)
        session.flush()
        session.add_all(
            KnowledgeVersion(
                article_id=item.id,
                number=1,
                title=item.title,
                body=item.body,
                category_id=item.category_id,
                department_id=item.department_id,
                district_id=item.district_id,
                valid_from=item.valid_from,
                valid_until=item.valid_until,
                review_on=item.review_on,
                state="published",
                written_by=by,
                written_at=now,
                decided_by=by,
                decided_at=now,
                note="imported",
            )
            for item in batch
        )
        session.flush()
        _index_rows(session, batch, categories)
        items.extend(batch)
    if items:
        log_action(session, by, "kb-imported", "kb", f"{len(items)} articles")
    return len(items)


# -- reading --------------------------------------------------------------------------


def history(session: Session, article_id: int) -> list[KnowledgeVersion]:
    """Every version of an article, oldest first: who wrote it, who decided, when."""
    article(session, article_id)
    return list(
        session.scalars(
            select(KnowledgeVersion)
            .where(KnowledgeVersion.article_id == article_id)
            .order_by(KnowledgeVersion.number)
        )
    )


def open_proposals(session: Session, editor: Editor) -> list[KnowledgeVersion]:
    """Proposals awaiting a decision: all of them for a reviewer, the unit's own for a
    unit's staff (and, for anyone, their own drafts)."""
    statement = select(KnowledgeVersion).order_by(KnowledgeVersion.written_at)
    if editor.reviews:
        statement = statement.where(
            (KnowledgeVersion.state == "proposed")
            | (
                (KnowledgeVersion.state == "draft")
                & (KnowledgeVersion.written_by == editor.username)
            )
        )
    else:
        statement = statement.where(
            (
                (KnowledgeVersion.state == "proposed")
                & (KnowledgeVersion.department_id == (editor.department_id or -1))
            )
            | (
                (KnowledgeVersion.state == "draft")
                & (KnowledgeVersion.written_by == editor.username)
            )
        )
    return list(session.scalars(statement))


def flagged(session: Session, today: date | None = None) -> list[KnowledgeArticle]:
    """Published articles that need an editor: expired, not yet valid, or past review."""
    today = today or beijing_today()
    return list(
        session.scalars(
            select(KnowledgeArticle)
            .where(
                KnowledgeArticle.status == "published",
                (KnowledgeArticle.valid_until < today)
                | (KnowledgeArticle.valid_from > today)
                | (KnowledgeArticle.review_on < today),
            )
            .order_by(KnowledgeArticle.id)
        )
    )


def _hits(
    session: Session, scored: dict[int, float], today: date, usable_only: bool
) -> list[ArticleHit]:
    if not scored:
        return []
    articles = session.scalars(
        select(KnowledgeArticle)
        .where(KnowledgeArticle.id.in_(list(scored)), KnowledgeArticle.status == "published")
        .options(
            selectinload(KnowledgeArticle.category),
            selectinload(KnowledgeArticle.department),
            selectinload(KnowledgeArticle.district),
        )
        .execution_options(populate_existing=True)  # counts change under a long session
    )
    hits = []
    for item in articles:
        found = flags(item, today)
        if usable_only and found:
            continue
        boost = 1.0 + ANSWER_BOOST * math.log1p(item.answered_count)
        hits.append(
            ArticleHit(
                id=item.id,
                title=item.title,
                body=item.body,
                category_code=item.category.code,
                category=item.category.name,
                unit_code=item.department.code,
                unit=item.department.name,
                district=item.district.name if item.district else "",
                version=item.version,
                answered_count=item.answered_count,
                valid_until=item.valid_until,
                review_on=item.review_on,
                flags=found,
                score=scored[item.id] * boost,
            )
        )
    hits.sort(key=lambda h: (-h.score, h.id))
    return hits


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _matches(
    session: Session, terms: _Terms, category_id: int | None, wanted: int
) -> dict[int, float]:
    """Article id -> relevance (higher is better) for the best ``wanted`` matches."""
    if not terms.words and not terms.chars:
        return {}
    in_category = "" if category_id is None else " AND a.category_id = :category"
    params: dict[str, Any] = {"wanted": wanted, "category": category_id}
    if _dialect(session) == "sqlite":
        if terms.words:
            words = _telling_words(session, terms.words)
            match = "{title category body} : (" + " OR ".join(map(_quoted, words)) + ")"
        else:
            match = "{title_chars body_chars} : (" + " OR ".join(map(_quoted, terms.chars)) + ")"
        weights = ", ".join(str(w) for w in FTS_WEIGHTS)
        statement = (
            f"SELECT f.rowid, bm25(kb_article_fts, {weights}) AS rank "
            "FROM kb_article_fts f"
            + ("" if category_id is None else " JOIN kb_article a ON a.id = f.rowid")
            + f" WHERE kb_article_fts MATCH :match{in_category} ORDER BY rank LIMIT :wanted"
        )
        params["match"] = match
        rows = session.execute(text(statement), params).all()
        return {int(r[0]): -float(r[1]) for r in rows}
    lexemes = terms.words or terms.chars
    params["query"] = " | ".join("'" + t.replace("'", "''") + "'" for t in lexemes)
    statement = (
        f"SELECT s.article_id, ts_rank('{TS_WEIGHTS}', s.document, q.query) AS rank "
        "FROM kb_article_search s CROSS JOIN (SELECT CAST(:query AS tsquery) AS query) q"
        + ("" if category_id is None else " JOIN kb_article a ON a.id = s.article_id")
        + f" WHERE s.document @@ q.query{in_category} ORDER BY rank DESC LIMIT :wanted"
    )
    rows = session.execute(text(statement), params).all()
    return {int(r[0]): float(r[1]) * 100 for r in rows}


def _telling_words(session: Session, words: list[str]) -> list[str]:
    """The query's words without those found nowhere, and without the very common ones
    when rarer ones are there (see COMMON_WORD_ARTICLES)."""
    if len(words) < 2:
        return words
    names = {f"w{i}": w for i, w in enumerate(words)}
    counts = {
        str(term): int(doc)
        for term, doc in session.execute(
            text(
                "SELECT term, doc FROM kb_article_fts_vocab WHERE term IN "
                f"({', '.join(':' + n for n in names)})"
            ),
            names,
        )
    }
    found = [w for w in words if counts.get(w, 0) > 0]
    if not found:
        return words
    rarest = min(counts[w] for w in found)
    limit = max(COMMON_WORD_ARTICLES, 20 * rarest)
    return [w for w in found if counts[w] <= limit]


def _category_id(session: Session, category: str | None) -> int | None:
    if not category:
        return None
    found = session.scalar(select(Category.id).where(Category.code == category))
    if found is None:
        raise KnowledgeError(f"no category {category!r}", "no-category", 404)
    return found


def search(
    session: Session,
    query: str,
    category: str | None = None,
    limit: int = 10,
    *,
    today: date | None = None,
    usable_only: bool = False,
) -> list[ArticleHit]:
    """Published articles answering the query, best first (within a category's code if
    given). Flagged articles are shown with their flags unless ``usable_only``."""
    if not 1 <= limit <= MAX_LIMIT:
        raise KnowledgeError(f"limit is 1 to {MAX_LIMIT}", "bad-limit")
    terms = _terms(session, query)
    wanted = max(4 * limit, 20)
    scored = _matches(session, terms, _category_id(session, category), wanted)
    return _hits(session, scored, today or beijing_today(), usable_only)[:limit]


def suggest(
    session: Session,
    category: str | None,
    description_text: str,
    limit: int = 5,
    *,
    today: date | None = None,
) -> list[ArticleHit]:
    """What to offer beside the pop: articles matching the words of the description,
    those of the case's category first, then the category's most used articles.
    Never an expired, not yet valid or overdue-for-review article."""
    if not 1 <= limit <= MAX_LIMIT:
        raise KnowledgeError(f"limit is 1 to {MAX_LIMIT}", "bad-limit")
    today = today or beijing_today()
    category_id = _category_id(session, category)
    terms = _terms(session, description_text) if description_text.strip() else _Terms()
    found: list[ArticleHit] = []
    if terms.words or terms.chars:
        wanted = max(4 * limit, 20)
        if category_id is not None:
            found = _hits(session, _matches(session, terms, category_id, wanted), today, True)
        seen = {h.id for h in found}
        found += [
            h
            for h in _hits(session, _matches(session, terms, None, wanted), today, True)
            if h.id not in seen
        ]
    if category_id is not None and len(found) < limit:
        seen = {h.id for h in found}
        popular = session.scalars(
            select(KnowledgeArticle.id)
            .where(
                KnowledgeArticle.category_id == category_id,
                KnowledgeArticle.status == "published",
            )
            .order_by(KnowledgeArticle.answered_count.desc(), KnowledgeArticle.id)
            .limit(4 * limit)
        ).all()
        extra = _hits(session, {i: 0.0 for i in popular if i not in seen}, today, True)
        extra.sort(key=lambda h: (-h.answered_count, h.id))
        found += extra
    return found[:limit]


# -- the seed -------------------------------------------------------------------------

SEED_AUTHOR = "seed"


def seed_drafts() -> list[ArticleDraft]:
    """The Haikou articles shipped with the product (cases/data/knowledge_seed.json)."""
    import json
    from importlib.resources import files

    data = json.loads((files("cases") / "data" / "knowledge_seed.json").read_text("utf-8"))
    valid_from = date.fromisoformat(data["valid_from"])
    review_on = date.fromisoformat(data["review_on"])
    return [
        ArticleDraft(
            title=item["title"],
            body=item["body"],
            category_code=item["category"],
            unit_code=item.get("unit"),
            district_code=item.get("district"),
            valid_from=date.fromisoformat(item["valid_from"])
            if "valid_from" in item
            else valid_from,
            valid_until=date.fromisoformat(item["valid_until"]) if "valid_until" in item else None,
            review_on=date.fromisoformat(item["review_on"]) if "review_on" in item else review_on,
        )
        for item in data["articles"]
    ]


def seed_articles(session: Session) -> int:
    """Publish the shipped articles into an empty knowledge base (never into one that
    has any article: editors' work is theirs). Returns how many were added."""
    if session.scalar(select(KnowledgeArticle.id).limit(1)) is not None:
        return 0
    return import_published(session, seed_drafts(), SEED_AUTHOR)
