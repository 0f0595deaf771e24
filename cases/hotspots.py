"""The hot-topic detector's core: pure, no I/O, no clock of its own.

Cases come in as ``Signal``s (when, which case, who filed it, category, street, topic
words). Each signal counts under its keys: category × street, and each of its words
citywide. A window's count is of distinct sources (callers), so one person filing the
same thing again and again is one report, whatever the key.
``Detector.scan(now)`` looks at every key that gained a case since the last scan, over
sliding windows (15 and 60 minutes by default) ending at ``now``, against that key's
count in the same windows of the past weeks (same weekday, same hour). A count is a
spike when a Poisson count at the expected rate would reach it by chance with
probability under ``alpha``; the expected rate is never taken below a floor, so a
key seen once a month does not alarm at its second case, and a spike needs at least
``min_cases`` cases whatever its baseline.

``Tracker`` keeps the raised topics: a spike raises a topic for its key once, later
cases of the key join it while it is open, and a topic whose key has not been
unusual for ``quiet_after`` closes (a busy key keeps getting cases: they alone do not
keep it open).
A word spike whose cases are mostly those of a category × street topic raised already
is the same event and raises nothing. A scan raises at most ``max_raised_per_scan``
topics (the strongest against their baseline) and a topic links at most
``max_cases_per_topic`` cases, so that a flood of junk costs a bounded amount of work.

Production (cases.topics) rebuilds both from SQL at each scan; bench/topics_bench.py
keeps them for 30 simulated days. Times are seconds (any epoch)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

WEEK_S = 7 * 24 * 3600.0
DAY_S = 24 * 3600.0


@dataclass(frozen=True)
class DetectorSettings:
    windows_s: tuple[float, ...] = (15 * 60.0, 30 * 60.0, 60 * 60.0)
    weeks: int = 4  # past weeks forming the baseline
    band_s: float = 3600.0  # and the hour either side of the window, on those weeks
    # Expected cases per hour that a key is never assumed below (rare events).
    floor_per_hour: float = 0.3
    alpha: float = 1e-5  # chance of a count this high at the expected rate
    min_cases: int = 4  # for a category × street spike
    min_word_cases: int = 5  # for a citywide word spike
    # With no past week at all (a new deployment): a day's rate times this, per window.
    peak_factor: float = 2.5
    quiet_after_s: float = 3 * 3600.0
    # A word spike is the same event as a topic raised already when this share of its
    # cases is that topic's.
    same_event_share: float = 0.5
    # A flood's bounds: the strongest spikes of a scan only, and so many cases a topic.
    max_raised_per_scan: int = 10
    max_cases_per_topic: int = 500


@dataclass(frozen=True)
class Key:
    """category × street (``word`` empty), or a word citywide (``category`` empty)."""

    category: str = ""
    street: str = ""
    word: str = ""

    @property
    def is_word(self) -> bool:
        return bool(self.word)


@dataclass(frozen=True)
class Signal:
    at: float
    case_id: int
    category: str  # a category code; "" when the case has none yet
    street: str  # a street or town name; "" when the address gives none
    words: tuple[str, ...] = ()
    # Who filed it (a phone number, or the channel and place when there is none); empty:
    # a source of its own.
    source: str = ""

    @property
    def source_key(self) -> str:
        return self.source or f"#{self.case_id}"


def keys_of(signal: Signal) -> list[Key]:
    keys = [Key(word=w) for w in dict.fromkeys(signal.words) if w]
    if signal.category and signal.street:
        keys.insert(0, Key(category=signal.category, street=signal.street))
    return keys


def poisson_tail(count: int, rate: float) -> float:
    """P(X >= count) for X ~ Poisson(rate)."""
    if count <= 0:
        return 1.0
    if rate <= 0:
        return 0.0
    term = math.exp(-rate)
    below = 0.0
    for i in range(count):
        below += term
        term *= rate / (i + 1)
    return max(0.0, 1.0 - below)


def expected_count(
    past_total: int,
    past_span_s: float,
    window_s: float,
    day_count: int | None,
    settings: DetectorSettings,
) -> float:
    """What the window should hold: the rate of the same hours on the past weeks we
    have (``past_total`` cases over ``past_span_s`` seconds), taken at the top of its
    likely range (a rate read from a few cases is uncertain), never under the floor;
    with no past week, a day's rate at its peak."""
    floor = settings.floor_per_hour * window_s / 3600.0
    if past_span_s > 0:
        upper = past_total + 2.0 * math.sqrt(past_total) + 1.0
        return max(floor, upper / past_span_s * window_s)
    if day_count is not None:
        return max(floor, day_count * window_s / DAY_S * settings.peak_factor)
    return floor


def is_spike(count: int, expected: float, key: Key, settings: DetectorSettings) -> bool:
    least = settings.min_word_cases if key.is_word else settings.min_cases
    return count >= least and poisson_tail(count, expected) < settings.alpha


@dataclass(frozen=True)
class Spike:
    key: Key
    at: float
    count: int  # in the window that spiked
    expected: float
    window_s: float
    case_ids: tuple[int, ...]  # the window's cases


class Detector:
    """The signals of the last ``weeks`` weeks (plus a window), by key, in time order."""

    def __init__(self, settings: DetectorSettings | None = None, history_from: float = 0.0):
        self.settings = settings or DetectorSettings()
        # Before this no signals were kept: past windows earlier than it are unknown,
        # not empty.
        self.history_from = history_from
        self._times: dict[Key, list[float]] = {}
        self._cases: dict[Key, list[int]] = {}
        self._sources: dict[Key, list[str]] = {}
        self._touched: set[Key] = set()

    def add(self, signal: Signal) -> None:
        """Signals may come a little out of order (cases are filed late); they are kept
        sorted per key."""
        for key in keys_of(signal):
            times = self._times.setdefault(key, [])
            cases = self._cases.setdefault(key, [])
            sources = self._sources.setdefault(key, [])
            if not times or times[-1] <= signal.at:
                times.append(signal.at)
                cases.append(signal.case_id)
                sources.append(signal.source_key)
            else:
                i = bisect_left(times, signal.at)
                times.insert(i, signal.at)
                cases.insert(i, signal.case_id)
                sources.insert(i, signal.source_key)
            self._touched.add(key)

    def extend(self, signals: Iterable[Signal]) -> None:
        for signal in signals:
            self.add(signal)

    def count(self, key: Key, start: float, end: float) -> int:
        times = self._times.get(key)
        if not times:
            return 0
        return bisect_left(times, end) - bisect_left(times, start)

    def callers(self, key: Key, start: float, end: float) -> int:
        """Distinct sources of the key's signals in [start, end)."""
        times = self._times.get(key)
        if not times:
            return 0
        return len(set(self._sources[key][bisect_left(times, start) : bisect_left(times, end)]))

    def cases_in(self, key: Key, start: float, end: float) -> tuple[int, ...]:
        times = self._times.get(key)
        if not times:
            return ()
        return tuple(self._cases[key][bisect_left(times, start) : bisect_left(times, end)])

    def scan(self, now: float, keys: Iterable[Key] | None = None) -> list[Spike]:
        """The spikes at ``now`` among the keys that gained a case since the last scan
        (or ``keys``), one per key (its most significant window)."""
        todo = set(keys) if keys is not None else self._touched
        self._touched = set()
        spikes = []
        for key in todo:
            spike = self._spike(key, now)
            if spike is not None:
                spikes.append(spike)
        return spikes

    def spike_at(self, key: Key, now: float) -> Spike | None:
        """The key's spike at ``now``, if it is unusual then."""
        return self._spike(key, now)

    def _spike(self, key: Key, now: float) -> Spike | None:
        s = self.settings
        best: tuple[float, Spike] | None = None
        for window in s.windows_s:
            end = now + 1e-6  # the case filed at ``now`` counts
            least = s.min_word_cases if key.is_word else s.min_cases
            if self.count(key, end - window, end) < least:
                continue
            # One caller filing again and again is one report. The baseline counts
            # cases: a past week's repeats only make it more cautious.
            count = self.callers(key, end - window, end)
            if count < least:
                continue
            # The same hours on past weeks: the window, and a band either side of it.
            past_total, past_span = 0, 0.0
            for k in range(1, s.weeks + 1):
                start, stop = end - window - k * WEEK_S - s.band_s, end - k * WEEK_S + s.band_s
                if start >= self.history_from:
                    past_total += self.count(key, start, stop)
                    past_span += stop - start
            day = None
            if not past_span:
                if now - DAY_S < self.history_from:
                    continue  # under a day of history: nothing to compare with yet
                day = self.count(key, end - window - DAY_S, end - window)
            expected = expected_count(past_total, past_span, window, day, s)
            if not is_spike(count, expected, key, s):
                continue
            tail = poisson_tail(count, expected)
            if best is None or tail < best[0]:
                cases = self.cases_in(key, end - window, end)
                best = (tail, Spike(key, now, count, expected, window, cases))
        return best[1] if best else None

    def forget_before(self, moment: float) -> None:
        """Drop signals older than any baseline needs (the bench's memory)."""
        for key in list(self._times):
            times = self._times[key]
            cut = bisect_left(times, moment)
            if cut:
                del times[:cut]
                del self._cases[key][:cut]
                del self._sources[key][:cut]
            if not times:
                del self._times[key]
                del self._cases[key]
                del self._sources[key]


@dataclass
class OpenTopic:
    key: Key
    raised_at: float
    last_at: float
    count_at_raise: int
    expected: float
    case_ids: set[int] = field(default_factory=set)
    id: int | None = None  # the stored row's, in production
    hot_at: float = 0.0  # the last scan that found its key unusual; 0: when raised

    def __post_init__(self) -> None:
        self.hot_at = self.hot_at or self.raised_at


@dataclass(frozen=True)
class Change:
    """What a scan decided: topics raised, cases that joined, topics closed."""

    raised: list[OpenTopic]
    joined: list[tuple[OpenTopic, list[int]]]
    closed: list[OpenTopic]


class Tracker:
    """The open topics, by key."""

    def __init__(self, settings: DetectorSettings | None = None, open_: Iterable[OpenTopic] = ()):
        self.settings = settings or DetectorSettings()
        self.open: dict[Key, OpenTopic] = {t.key: t for t in open_}

    def apply(self, detector: Detector, spikes: list[Spike], now: float) -> Change:
        raised: list[OpenTopic] = []
        joined: list[tuple[OpenTopic, list[int]]] = []
        most = self.settings.max_cases_per_topic
        # category × street first (a word spike of the same cases is the same event),
        # each the strongest against its baseline first, so that a flood's bound keeps them.
        new = [sp for sp in spikes if sp.key not in self.open]
        new.sort(key=lambda sp: (sp.key.is_word, -sp.count / max(sp.expected, 1e-9)))
        for spike in new:
            if len(raised) >= self.settings.max_raised_per_scan:
                break
            if spike.key.is_word and self._covered(spike):
                continue
            topic = OpenTopic(
                spike.key, now, now, spike.count, spike.expected, set(spike.case_ids[-most:])
            )
            self.open[spike.key] = topic
            raised.append(topic)
        spiking = {spike.key for spike in spikes}
        # Cases of an open topic's key since it last grew join it.
        for topic in self.open.values():
            if topic in raised:
                continue
            if topic.key in spiking or detector.spike_at(topic.key, now) is not None:
                topic.hot_at = now
            room = most - len(topic.case_ids)
            fresh = [
                c
                for c in detector.cases_in(topic.key, topic.last_at - 3600.0, now + 1e-6)
                if c not in topic.case_ids
            ][: max(0, room)]
            if fresh:
                topic.case_ids.update(fresh)
                topic.last_at = now
                joined.append((topic, fresh))
        closed = [t for t in self.open.values() if now - t.hot_at >= self.settings.quiet_after_s]
        for topic in closed:
            del self.open[topic.key]
        return Change(raised, joined, closed)

    def _covered(self, spike: Spike) -> bool:
        cases = set(spike.case_ids)
        for topic in self.open.values():
            if topic.key.is_word:
                continue
            share = len(cases & topic.case_ids) / max(1, len(cases))
            if share >= self.settings.same_event_share:
                return True
        return False


def lead_unit(units: Iterable[str]) -> str:
    """The unit most of a topic's cases went to (or whose category names it)."""
    counted = Counter(u for u in units if u)
    return counted.most_common(1)[0][0] if counted else ""
