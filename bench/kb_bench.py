"""The knowledge base's search at scale: 50,000 generated articles and 2,000 queries.

The articles are written from real Chinese words (two-character nouns and verbs of
jieba's dictionary, each a word jieba keeps whole), Haikou road names and the
catalogue's categories: a title of a place and two topic words, a body of more words.
They are published through cases.knowledge.import_published into a SQLite database
migrated to head and seeded (the 238 shipped articles stay in it).

Queries, with their expected answers labelled as they are generated:

- ``word``: one topic word (噪音, 停水); expected: the articles with it in their title.
- ``phrase``: a question naming a place and two topic words of one article, with
  filler words (请问, 怎么办); expected: the articles with both words in their title.
- ``pinyin``: a word or phrase query with one topic word typed as toneless pinyin
  (tingshui), or with one of its characters replaced by a homophone (停税), as a pinyin
  input method lets slip; expected: as for the query it was made from.

recall_at_5 is the mean over queries of |expected in the top 5| / min(5, |expected|).
Each query is timed around ``search(session, query, limit=5)`` (the word index, the
pinyin lookup, and loading the hits), one at a time on one connection.

It prints one JSON object as its last line:
{"articles", "queries", "search_ms_p50", "search_ms_p99", "recall_at_5", ...}

    .venv/bin/python bench/kb_bench.py --articles 50000 --queries 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from cases import knowledge  # noqa: E402
from cases.db import engine_for, session_factory, upgrade  # noqa: E402
from cases.models import KnowledgeArticle, KnowledgeWord  # noqa: E402
from cases.seed import CATEGORIES, DISTRICTS, seed  # noqa: E402

ROADS = (
    "海秀路 龙昆南路 国兴大道 滨海大道 南沙路 金盘路 椰海大道 白龙南路 和平大道 长堤路 "
    "海府路 凤翔路 丘海大道 龙华路 解放路 滨江路 世纪大道 美兰大道 琼州大道 府城大道"
).split()
SUFFIXES = ("的处理", "咨询", "投诉", "办理指南", "问题", "的规定", "怎么办", "申请")
FILLERS_BEFORE = ("", "请问", "我想问", "你好，", "我家")
FILLERS_AFTER = ("", "怎么办", "找谁", "怎么处理", "吗", "的问题")
TEMPLATES = (
    "市民反映{a}问题的，请说明{p}的具体位置，{b}由责任单位在规定时限内处理。",
    "{a}与{b}有关的事项，可通过12345反映，工单派至承办单位，{c}情况会一并核实。",
    "办理{a}需携带身份证，{b}和{c}材料可在线提交，一般{d}后答复。",
)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """Two-character nouns and verbs jieba keeps whole, most frequent first."""
    import jieba

    found = []
    with open(os.path.join(os.path.dirname(jieba.__file__), "dict.txt"), encoding="utf-8") as f:
        for line in f:
            word, freq, tag = line.split()
            if len(word) == 2 and tag in ("n", "vn", "v") and int(freq) > 300:
                if all("\u4e00" <= c <= "\u9fff" for c in word):
                    found.append((int(freq), word))
    found.sort(reverse=True)
    words = [w for _, w in found if knowledge.segment(w) == [w]]
    words = words[: size * 2]
    rng.shuffle(words)
    return words[:size]


def homophone_typo(word: str, rng: random.Random, known: set[str]) -> str | None:
    """The word with one character replaced by another of the same toneless pinyin,
    as a pinyin input method offers it; None when there is none."""
    from pypinyin import Style, lazy_pinyin

    by_sound = homophones()
    for position in rng.sample(range(len(word)), len(word)):
        sound = lazy_pinyin(word[position], style=Style.NORMAL)[0]
        options = [c for c in by_sound.get(sound, ()) if c != word[position]]
        rng.shuffle(options)
        for char in options:
            typo = word[:position] + char + word[position + 1 :]
            if typo not in known:
                return typo
    return None


_HOMOPHONES: dict[str, list[str]] = {}


def homophones() -> dict[str, list[str]]:
    """Common characters by toneless pinyin (those of jieba's dictionary, frequent)."""
    if not _HOMOPHONES:
        import jieba
        from pypinyin import Style, lazy_pinyin

        path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
        with open(path, encoding="utf-8") as f:
            for line in f:
                word, freq, _ = line.split()
                if len(word) == 1 and int(freq) > 5000 and "\u4e00" <= word <= "\u9fff":
                    sound = lazy_pinyin(word, style=Style.NORMAL)[0]
                    _HOMOPHONES.setdefault(sound, []).append(word)
    return _HOMOPHONES


def build(session, count: int, words: list[str], rng: random.Random):  # type: ignore[no-untyped-def]
    """Publish ``count`` articles; returns each new article's title words, by id."""
    categories = [c for c in CATEGORIES if c[2] is not None]
    drafts, topics = [], []
    for n in range(count):
        a, b = rng.sample(words, 2)
        road = rng.choice(ROADS)
        code = rng.choice(categories)[0]
        body_words = rng.sample(words, 4)
        body = "".join(
            rng.choice(TEMPLATES).format(a=a, b=x, c=y, d=z, p=road)
            for x, y, z in ((body_words[0], body_words[1], body_words[2]), (b, body_words[3], a))
        )
        title = f"{road}{a}{b}{rng.choice(SUFFIXES)}"
        district = rng.choice(DISTRICTS)[0] if n % 3 == 0 else None
        drafts.append(knowledge.ArticleDraft(title, body, code, district_code=district))
        topics.append((a, b, road))
    before = session.scalar(select(func.max(KnowledgeArticle.id))) or 0
    started = time.monotonic()
    knowledge.import_published(session, drafts, "bench")
    session.commit()
    ids = list(
        session.scalars(
            select(KnowledgeArticle.id)
            .where(KnowledgeArticle.id > before)
            .order_by(KnowledgeArticle.id)
        )
    )
    assert len(ids) == count
    return dict(zip(ids, topics, strict=True)), time.monotonic() - started


def make_queries(  # type: ignore[no-untyped-def]
    articles: dict[int, tuple[str, str, str]], count: int, rng: random.Random, known: set[str]
):
    from pypinyin import Style, lazy_pinyin

    with_word: dict[str, set[int]] = defaultdict(set)
    for article_id, (a, b, _) in articles.items():
        with_word[a].add(article_id)
        with_word[b].add(article_id)
    ids = list(articles)
    queries: list[tuple[str, str, set[int]]] = []
    while len(queries) < count:
        kind = ("word", "phrase", "pinyin")[len(queries) % 3]
        a, b, road = articles[rng.choice(ids)]
        if kind == "word" or (kind == "pinyin" and rng.random() < 0.5):
            text, expected, typed = a, with_word[a], [a]
        else:
            text = f"{rng.choice(FILLERS_BEFORE)}{road}{a}{b}{rng.choice(FILLERS_AFTER)}"
            expected, typed = with_word[a] & with_word[b], [a, b]
        if kind == "pinyin":
            word = rng.choice(typed)
            if rng.random() < 0.5:
                typo: str | None = "".join(lazy_pinyin(word, style=Style.NORMAL))
            else:
                typo = homophone_typo(word, rng, known)
            if typo is None:
                continue
            text = text.replace(word, typo)
        queries.append((kind, text, expected))
    return queries


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--words", type=int, default=3_000, help="topic vocabulary size")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--database", help="a database URL (default: a new SQLite file)")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="kb-bench-") as directory:
        url = args.database or f"sqlite:///{directory}/kb.db"
        upgrade(url)
        sessions = session_factory(engine_for(url))
        with sessions() as session:
            seed(session)
            session.commit()
            words = vocabulary(args.words, rng)
            articles, build_s = build(session, args.articles, words, rng)
            known = set(session.scalars(select(KnowledgeWord.word)))
            total = session.scalar(select(func.count(KnowledgeArticle.id)))
        queries = make_queries(articles, args.queries, rng, known)

        timings: list[float] = []
        timings_by_kind: dict[str, list[float]] = defaultdict(list)
        recall: dict[str, list[float]] = defaultdict(list)
        misses: list[tuple[str, str]] = []
        with sessions() as session:
            knowledge.search(session, "预热 yure")  # jieba's and pypinyin's dictionaries
            for kind, text, expected in queries:
                started = time.perf_counter()
                hits = knowledge.search(session, text, limit=5)
                timings.append((time.perf_counter() - started) * 1000)
                timings_by_kind[kind].append(timings[-1])
                found = len(expected & {h.id for h in hits}) / min(5, len(expected))
                recall[kind].append(found)
                if found == 0 and len(misses) < 10:
                    misses.append((kind, text))
                session.expunge_all()
    everything = [r for values in recall.values() for r in values]
    for kind, text in misses:
        print(f"miss ({kind}): {text}", file=sys.stderr)
    result = {
        "articles": total,
        "queries": len(queries),
        "search_ms_p50": round(statistics.median(timings), 2),
        "search_ms_p99": p(timings, 0.99),
        "search_ms_max": round(max(timings), 2),
        "search_ms_p99_by_kind": {k: p(v, 0.99) for k, v in timings_by_kind.items()},
        "recall_at_5": round(statistics.fmean(everything), 4),
        "recall_at_5_by_kind": {k: round(statistics.fmean(v), 4) for k, v in recall.items()},
        "database": url.split(":", 1)[0],
        "build_s": round(build_s, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
