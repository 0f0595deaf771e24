"""Hot topics and duplicate suggestions over 30 simulated days.

Background: cases arrive as a Poisson process over 30 days (about 3,600 a day, fewer
at night and at weekends, each day's level varying by ±15%), each of a category drawn
by its weight, on a street drawn with Zipf weights among Haikou's 43 streets and
towns, with a caller's description written from its category's phrases. The
description's words are cut by jieba as in production (cases.topics.topic_words).

Spikes: 20 injected bursts, labelled as they are made, at random moments from day 2 on:

- 14 of one category on one street (a burst main, a power cut, a flooded underpass),
  16-80 cases at 30-120 an hour;
- 6 of a new word across several streets and categories (a typhoon's name, a closed
  school's name), 25-90 cases at 30-90 an hour.

A spike is raised at its 4th to 6th case (5th and more for a word, more on a busy
street's busy category): at 20 cases an hour those come 12-20 minutes after its start,
so the 15-minute target holds for bursts of about 30 an hour and more; slower ones
are raised later, not missed.

The detector (cases.hotspots: the same Detector and Tracker as the worker's scan) is
fed every case as it is filed and scanned once a simulated minute, as the worker does.
A raised topic is a detection of the spike most of its cases belong to, else a false
alarm. Latency is from the spike's first case to the scan that raised it.

Duplicates: 4,000 filings checked against the open cases before them with
cases.duplicates.is_duplicate (the rule suggest_duplicates applies to the rows it
reads), labelled as generated: a repeat of an open matter (same place written another
way: spaces, full-width digits, 八十八号, the district in front, 附近 after, the
estate's name alone, one in twenty with the road cut short (龙昆南88号); or the
neighbour's door in the same grid for an area-wide matter), or not (the next door for a
local matter, the same place of another category, a closed case, a matter past the
days). Precision and recall are over (filing, open case) pairs.

It prints one JSON object as its last line:
{"cases", "spikes", "detected", "false_alarms", "false_alarms_per_day",
 "detect_latency_s_p99", "dup_precision", "dup_recall", ...}

    .venv/bin/python bench/topics_bench.py --days 30 --seed 7

A flood (--flood N): the worker's scan (cases.topics.scan_hot_topics) over SQLite holding
N junk cases, half spread over the past 8 days and half in the last hour, each from its
own phone with five random two-character words; ``--flood-kind web`` files them as
citizens' web requests (no category), ``filed`` as phone cases an operator categorised
(a random category on a random street: the worst case for the bounds). Two scans a
minute apart; it prints one JSON object: each scan's seconds, the topics raised, the
case links made and the open topics.

    .venv/bin/python bench/topics_bench.py --flood 100000 --flood-kind web
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cases.duplicates import AREA_WIDE, SUGGEST_DAYS, is_duplicate  # noqa: E402
from cases.hotspots import Detector, DetectorSettings, Signal, Tracker  # noqa: E402
from cases.topics import topic_words  # noqa: E402

STREETS = (
    "中山街道 滨海街道 金宇街道 海垦街道 金贸街道 大同街道 城西镇 新坡镇 遵谭镇 龙泉镇 龙桥镇 "
    "海府街道 博爱街道 和平南街道 白龙街道 蓝天街道 白沙街道 人民街道 新埠街道 海甸街道 演丰镇 "
    "三江镇 大致坡镇 灵山镇 秀英街道 海秀街道 长流镇 西秀镇 海秀镇 石山镇 永兴镇 东山镇 "
    "府城街道 滨江街道 国兴街道 凤翔街道 龙塘镇 云龙镇 红旗镇 三门坡镇 大坡镇 甲子镇 旧州镇"
).split()
ROADS = (
    "海秀路 龙昆南路 国兴大道 滨海大道 南沙路 金盘路 椰海大道 白龙南路 和平大道 长堤路 "
    "海府路 凤翔路 丘海大道 龙华路 解放路 滨江路 世纪大道 美兰大道 琼州大道 府城大道"
).split()
ESTATES = "椰风花园 金海小区 龙泉苑 滨江城 海景公寓 阳光小区 南国花园 椰岛市场".split()
PLACES = "小区 楼下 路口 家里 店门口 单元楼 巷子里 市场边".split()
# category code, weight, phrases a caller says about it
CATEGORIES: list[tuple[str, float, tuple[str, ...]]] = [
    ("water-outage", 6, ("停水了", "水龙头没有水", "没水用", "突然停水")),
    ("power-outage", 6, ("停电了", "整栋楼没电", "跳闸停电", "电一直没来")),
    ("construction-noise", 8, ("工地晚上施工噪音", "打桩声音太吵", "夜间施工扰民")),
    ("waterlogging", 3, ("路面积水很深", "下雨后内涝", "积水淹到膝盖")),
    ("garbage-collection", 7, ("垃圾没人清运", "垃圾桶满了发臭", "垃圾堆放好几天")),
    ("street-lights", 4, ("路灯不亮", "路灯坏了晚上很黑")),
    ("illegal-parking", 8, ("车辆乱停挡住出口", "人行道上违停", "消防通道被车堵")),
    ("street-vending", 6, ("流动摊贩占道", "夜市摊点占用人行道")),
    ("restaurant-fumes", 4, ("饭店油烟熏人", "烧烤油烟很大")),
    ("drain-blockage", 4, ("下水道堵塞反水", "排水管堵了发臭")),
    ("property-management", 7, ("物业不作为", "物业费乱收", "电梯坏了物业不修")),
    ("traffic-lights", 2, ("红绿灯坏了", "信号灯不亮")),
    ("neighbour-disputes", 4, ("邻居装修太吵", "楼上漏水邻居不管")),
    ("social-insurance", 6, ("社保怎么缴纳", "养老保险转移")),
    ("medical-insurance-claims", 5, ("医保报销比例", "异地就医备案")),
    ("unpaid-wages", 4, ("老板拖欠工资", "工资几个月没发")),
    ("consumer-dispute", 6, ("商家不退款", "买到假货")),
    ("bus-service", 4, ("公交车不按时", "公交司机态度差")),
    ("taxi-complaint", 3, ("出租车拒载", "出租车绕路")),
    ("school-admission", 3, ("孩子入学咨询", "学位怎么申请")),
    ("fallen-trees", 1, ("大树倒了压住路", "树枝断了挡路")),
    ("gas-leak", 1, ("闻到燃气味", "煤气泄漏")),
    ("water-quality", 2, ("自来水发黄", "水有异味")),
    ("elevator-trapped", 1, ("电梯困人", "有人被困电梯")),
]
SPIKE_CATEGORIES = (
    "water-outage power-outage waterlogging construction-noise garbage-collection "
    "water-quality street-lights drain-blockage fallen-trees"
).split()
NEW_WORDS = ("摩羯", "登革热", "海甸溪", "椰树小学", "新能源充电桩", "万绿园")
DAY = 86400.0
WEEK = 7 * DAY


@dataclass
class Spike:
    index: int
    start: float
    end: float
    size: int
    kind: str  # category | word
    category: str
    street: str
    word: str


def hour_profile(second_of_day: float) -> float:
    """Calls per hour relative to the day's mean: quiet at night, peaks mid-morning
    and mid-afternoon."""
    hour = second_of_day / 3600.0
    night = 0.15 if hour < 7 else 1.0
    return night * (1.0 + 0.6 * math.sin(math.pi * (hour - 7) / 12.0) ** 2)


def describe(rng: random.Random, phrases: tuple[str, ...], place: str) -> str:
    return f"{rng.choice(('', '你好，', '我要反映', '麻烦一下，'))}{place}{rng.choice(phrases)}"


def background(rng: random.Random, days: int, per_day: float) -> list[tuple[float, str, str, str]]:
    weights = [w for _, w, _ in CATEGORIES]
    street_weights = [1.0 / (i + 1) ** 0.6 for i in range(len(STREETS))]
    mean_profile = sum(hour_profile(h * 3600 + 1800) for h in range(24)) / 24
    cases = []
    for day in range(days):
        level = per_day * rng.uniform(0.85, 1.15) * (0.8 if day % 7 in (5, 6) else 1.0)
        for minute in range(1440):
            rate = level / 1440 * hour_profile(minute * 60) / mean_profile
            for _ in range(_poisson(rng, rate)):
                at = day * DAY + minute * 60 + rng.random() * 60
                code, _, phrases = rng.choices(CATEGORIES, weights)[0]
                street = rng.choices(STREETS, street_weights)[0]
                cases.append((at, code, street, describe(rng, phrases, rng.choice(PLACES))))
    return cases


def _poisson(rng: random.Random, rate: float) -> int:
    n, p, limit = 0, 1.0, math.exp(-rate)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def spikes(rng: random.Random, days: int, count: int) -> list[Spike]:
    made = []
    phrases = {code: p for code, _, p in CATEGORIES}
    for i in range(count):
        start = rng.uniform(2 * DAY, (days - 0.5) * DAY)
        if i % 10 < 7:
            size = rng.randint(16, 80)
            minutes = size / rng.uniform(30, 120) * 60
            code = rng.choice(SPIKE_CATEGORIES)
            made.append(
                Spike(
                    i, start, start + minutes * 60, size, "category", code, rng.choice(STREETS), ""
                )
            )
            assert phrases[code]
        else:
            size = rng.randint(25, 90)
            minutes = size / rng.uniform(30, 90) * 60
            made.append(
                Spike(
                    i,
                    start,
                    start + minutes * 60,
                    size,
                    "word",
                    "",
                    "",
                    NEW_WORDS[i % len(NEW_WORDS)],
                )
            )
    return made


def spike_cases(rng: random.Random, spike: Spike) -> list[tuple[float, str, str, str]]:
    phrases = {code: p for code, _, p in CATEGORIES}
    out = []
    for _ in range(spike.size):
        at = rng.uniform(spike.start, spike.end)
        if spike.kind == "category":
            text = describe(rng, phrases[spike.category], rng.choice(PLACES))
            out.append((at, spike.category, spike.street, text))
        else:
            code, _, ph = rng.choice(CATEGORIES)
            text = f"{spike.word}{rng.choice(('附近', '那边', '这次', ''))}{rng.choice(ph)}"
            out.append((at, code, rng.choice(STREETS[:12]), text))
    return out


def detect(
    cases: list[tuple[float, str, str, str, int]], spike_list: list[Spike], days: int
) -> dict[str, object]:
    settings = DetectorSettings()
    detector = Detector(settings, history_from=0.0)
    tracker = Tracker(settings)
    spike_of: dict[int, int] = {}
    for case_id, (_, _, _, _, spike_index) in enumerate(cases):
        if spike_index >= 0:
            spike_of[case_id] = spike_index
    words_cache: dict[str, tuple[str, ...]] = {}
    raised: list[tuple[float, int | None, str]] = []  # when, which spike (None: false)
    i, n = 0, len(cases)
    tick = 60.0
    now = tick
    forget_at = 0.0
    while now <= days * DAY + tick:
        while i < n and cases[i][0] < now:
            at, code, street, text, _ = cases[i]
            words = words_cache.get(text)
            if words is None:
                words = words_cache[text] = topic_words(text)
            detector.add(Signal(at, i, code, street, words))
            i += 1
        change = tracker.apply(detector, detector.scan(now), now)
        for topic in change.raised:
            labels = Counter(spike_of.get(c, -1) for c in topic.case_ids)
            best, share = labels.most_common(1)[0]
            truth = best if best >= 0 and share * 2 >= len(topic.case_ids) else None
            raised.append((now, truth, str(topic.key)))
        if now - forget_at > DAY:
            detector.forget_before(now - (settings.weeks + 1) * WEEK)
            forget_at = now
        now += tick
    first_alert: dict[int, float] = {}
    false_alarms = []
    for at, truth, key in raised:
        if truth is None:
            false_alarms.append(key)
        elif truth not in first_alert:
            first_alert[truth] = at
    latencies = sorted(first_alert[s.index] - s.start for s in spike_list if s.index in first_alert)
    p99 = (
        latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
        if latencies
        else None
    )
    return {
        "detected": len(first_alert),
        "false_alarms": len(false_alarms),
        "false_alarms_per_day": round(len(false_alarms) / days, 3),
        "detect_latency_s_p99": round(p99, 1) if p99 is not None else None,
        "detect_latency_s_median": round(latencies[len(latencies) // 2], 1) if latencies else None,
        "alerts": len(raised),
        "missed": [
            {
                "kind": s.kind,
                "word": s.word,
                "size": s.size,
                "minutes": round((s.end - s.start) / 60),
            }
            for s in spike_list
            if s.index not in first_alert
        ],
        "false_alarm_keys": false_alarms[:10],
        "latency_by_spike": [
            [
                s.kind,
                s.word or s.category,
                s.size,
                round((s.end - s.start) / 60),
                round(first_alert[s.index] - s.start),
            ]
            for s in spike_list
            if s.index in first_alert
        ],
    }


# -- duplicates ------------------------------------------------------------------------


def written_another_way(rng: random.Random, road: str, number: int, district: str) -> str:
    way = rng.randrange(6)
    if way == 0:
        return f"{road} {number} 号"
    if way == 1:
        return (
            f"{road}{str(number).translate(str.maketrans('0123456789', '０１２３４５６７８９'))}号"
        )
    if way == 2 and number < 100:
        tens, ones = divmod(number, 10)
        spoken = (
            "" if tens == 0 else ("十" if tens == 1 else "零一二三四五六七八九"[tens] + "十")
        ) + ("零一二三四五六七八九"[ones] if ones else "")
        return f"{road}{spoken}号"
    if way == 3:
        return f"海口市{district}{road}{number}号"
    if way == 4:
        return f"{road}{number}号{rng.choice(('附近', '门口', '旁边'))}"
    return f"{road}{number}号"


def estate_of(road: str, number: int) -> str:
    """The estate at a door: one name per twenty doors of a road (龙昆椰风花园)."""
    return road[:2] + ESTATES[(number // 20) % len(ESTATES)]


def grid_of(road: str, number: int) -> int:
    """A grid holds twenty doors of a road."""
    return ROADS.index(road) * 1000 + number // 20


def duplicates(rng: random.Random, filings: int) -> dict[str, object]:
    """Each filing is checked against the cases open before it; labels say which of
    them are the same matter."""
    districts = ("龙华区", "美兰区", "秀英区", "琼山区")
    codes = [c for c, _, _ in CATEGORIES]
    # an open case: (category, address, grid, filed day, open)
    opened: list[tuple[str, str, int, float, bool, tuple[str, int]]] = []
    for _ in range(3000):
        road, number = rng.choice(ROADS), rng.randint(1, 300)
        place = (
            f"{road}{number}号"
            if rng.random() < 0.8
            else f"{road}{number}号{estate_of(road, number)}"
        )
        grid = grid_of(road, number)
        opened.append(
            (
                rng.choice(codes),
                place,
                grid,
                rng.uniform(0, 10),
                rng.random() < 0.85,
                (road, number),
            )
        )
    by_code: dict[str, list[tuple[str, str, int, float, bool, tuple[str, int]]]] = defaultdict(list)
    for case in opened:
        by_code[case[0]].append(case)
    true_pairs = found = suggested = 0
    now = 10.0
    for _ in range(filings):
        kind = rng.random()
        base = rng.choice(opened)
        code, base_address, grid, _, _, (road, number) = base
        district = rng.choice(districts)
        estate = estate_of(road, number) if estate_of(road, number) in base_address else None
        if kind < 0.5:  # a repeat of the same matter, written another way
            address = written_another_way(rng, road, number, district)
            if estate and rng.random() < 0.5:  # the estate's name only
                address = f"{estate}{rng.choice(('', '门口', '里面'))}"
            elif rng.random() < 0.05:  # the road misheard or cut short
                address = f"{road.removesuffix('路').removesuffix('大道')}{number}号"
            same_grid = grid
        elif kind < 0.6 and code in AREA_WIDE:  # the neighbour, same grid, area-wide
            number = number + rng.choice((-2, 2)) if number > 2 else number + 2
            address, same_grid = f"{road}{number}号", grid
        elif kind < 0.8:  # the next door, another matter nearby
            number = number + rng.randint(1, 9)
            address, same_grid = f"{road}{number}号", grid_of(road, number)
        else:  # the same place, another category
            address, same_grid = written_another_way(rng, road, number, district), grid
            code = rng.choice([c for c in codes if c != code])
        for other in by_code[code]:  # as the query does: the same category only
            o_code, o_address, o_grid, o_day, o_open, (o_road, o_number) = other
            recent = now - o_day <= SUGGEST_DAYS
            # the truth: the same matter is the same category at the same door, or in
            # the same grid for an area-wide matter; only open and recent ones count
            same_door = (o_road, o_number) == (road, number)
            truth = (
                o_code == code
                and o_open
                and recent
                and (same_door or (code in AREA_WIDE and o_grid == same_grid))
            )
            said = (
                o_open
                and recent
                and is_duplicate(code, address, same_grid, o_code, o_address, o_grid) is not None
            )
            true_pairs += truth
            suggested += said
            found += truth and said
    return {
        "dup_filings": filings,
        "dup_true_pairs": true_pairs,
        "dup_suggested": suggested,
        "dup_precision": round(found / suggested, 4) if suggested else None,
        "dup_recall": round(found / true_pairs, 4) if true_pairs else None,
    }


def flood(n: int, kind: str, seed: int) -> dict[str, object]:
    import tempfile
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import create_engine, func, insert, select
    from sqlalchemy.orm import sessionmaker

    import cases.channel_tasks  # noqa: F401  (their tables)
    import cases.grid  # noqa: F401
    from cases.models import Base, Case, Category
    from cases.topics import HotTopicCase, HotTopicRecord, scan_hot_topics

    rng = random.Random(seed)
    path = Path(tempfile.mkdtemp(prefix="topics-flood-")) / "flood.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine)
    with sessions() as db:
        db.add_all(Category(code=code, name=code) for code, _, _ in CATEGORIES)
        db.commit()
        category_ids = list(db.scalars(select(Category.id)))
    now = datetime.now(UTC)
    cjk = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    words = ["".join(rng.choice(cjk) for _ in range(2)) for _ in range(2000)]
    rows = []
    for i in range(n):
        if i < n // 2:
            at = now - timedelta(days=8) + timedelta(seconds=i * 8 * DAY / n)
        else:
            at = now - timedelta(seconds=rng.uniform(0, 3600))
        filed = kind == "filed"
        rows.append(
            {
                "number": f"J-{i:08d}",
                "caller_phone": f"+86139{i:08d}",
                "channel": "phone" if filed else "web",
                "category_id": rng.choice(category_ids) if filed else None,
                "description": " ".join(rng.sample(words, 5)),
                "address": f"{rng.choice(STREETS)}某某路{rng.randint(1, 99999)}号",
                "status": "received",
                "created_at": at,
                "updated_at": at,
            }
        )
    with engine.begin() as connection:
        for k in range(0, n, 5000):
            connection.execute(insert(Case), rows[k : k + 5000])
    result: dict[str, object] = {"flood": n, "flood_kind": kind}
    for scan in (1, 2):
        began = time.monotonic()
        with sessions() as db:
            counts = scan_hot_topics(db, now + timedelta(minutes=scan - 1))
        result[f"scan{scan}_s"] = round(time.monotonic() - began, 2)
        result[f"scan{scan}_raised"] = counts["raised"]
        result[f"scan{scan}_joined"] = counts["joined"]
    with sessions() as db:
        result["open_topics"] = db.scalar(
            select(func.count()).where(HotTopicRecord.closed_at.is_(None))
        )
        result["case_links"] = db.scalar(select(func.count()).select_from(HotTopicCase))
    path.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=float, default=3600.0)
    parser.add_argument("--spikes", type=int, default=20)
    parser.add_argument("--filings", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--flood", type=int, default=0, help="time the scan under N junk cases")
    parser.add_argument("--flood-kind", choices=("web", "filed"), default="web")
    args = parser.parse_args()
    if args.flood:
        print(json.dumps(flood(args.flood, args.flood_kind, args.seed), ensure_ascii=False))
        return
    rng = random.Random(args.seed)
    began = time.monotonic()
    spike_list = spikes(rng, args.days, args.spikes)
    cases = [(*c, -1) for c in background(rng, args.days, args.per_day)]
    for spike in spike_list:
        cases.extend((*c, spike.index) for c in spike_cases(rng, spike))
    cases.sort(key=lambda c: c[0])
    by_kind = defaultdict(int)
    for s in spike_list:
        by_kind[s.kind] += 1
    result: dict[str, object] = {
        "cases": len(cases),
        "days": args.days,
        "spikes": len(spike_list),
        "spike_kinds": dict(by_kind),
        "spike_sizes": sorted(s.size for s in spike_list),
    }
    result |= detect(cases, spike_list, args.days)
    result |= duplicates(random.Random(args.seed + 1), args.filings)
    result["wall_s"] = round(time.monotonic() - began, 1)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
