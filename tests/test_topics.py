"""Hot topics, special topics and duplicate suggestions (issue 20).

The detector (cases.hotspots) is pure: its tests feed it signals on a made-up clock.
The scan over SQL (cases.topics.scan_hot_topics) runs on SQLite and PostgreSQL with
cases filed at chosen moments. Merged callers' return visits go through the real
dialer on a real redis-server."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from cases.duplicates import address_key, is_duplicate, same_place, suggest_duplicates
from cases.hotspots import (
    DAY_S,
    WEEK_S,
    Detector,
    DetectorSettings,
    Key,
    Signal,
    Tracker,
    poisson_tail,
)
from cases.models import Case, OutboundItem
from cases.service import CallInfo, CaseDraft, create_case_for_call
from cases.topics import (
    add_case_by_hand,
    current_hot_topics,
    leave_out_case,
    open_special_topic,
    refresh_special_topic,
    scan_hot_topics,
    special_topic_figures,
    topic_words,
)
from tests.test_tasks import app  # noqa: F401  (the fixture)

MONDAY = 1_700_000_000.0 - (1_700_000_000.0 % WEEK_S)  # any week's start will do
ids = itertools.count(1)


def quiet_weeks(detector: Detector, key: Key, weeks: int, every_s: float, until: float) -> None:
    """One case of ``key`` every ``every_s`` seconds for ``weeks`` weeks before ``until``."""
    at = until - weeks * WEEK_S
    while at < until:
        detector.add(Signal(at, next(ids), key.category, key.street))
        at += every_s


def burst(detector: Detector, key: Key, start: float, n: int, spacing_s: float) -> list[float]:
    times = [start + i * spacing_s for i in range(n)]
    for at in times:
        detector.add(Signal(at, next(ids), key.category, key.street, ("停水",)))
    return times


WATER = Key(category="water-outage", street="金贸街道")


def test_a_burst_on_one_street_is_raised_within_minutes_of_its_start() -> None:
    start = MONDAY + 3 * WEEK_S + 10 * 3600
    detector = Detector(history_from=MONDAY)
    quiet_weeks(detector, WATER, 3, 6 * 3600, start)  # four a day: the usual
    tracker = Tracker()
    times = [start + i * 120 for i in range(12)]  # one every two minutes
    raised_at = None
    for minute in range(1, 30):
        now = start + minute * 60
        for at in times:  # filed as they come
            if now - 60 <= at < now:
                detector.add(Signal(at, next(ids), WATER.category, WATER.street))
        change = tracker.apply(detector, detector.scan(now), now)
        if any(t.key == WATER for t in change.raised):
            raised_at = now
            break
    assert raised_at is not None and raised_at - start <= 15 * 60
    topic = tracker.open[WATER]
    assert len(topic.case_ids) >= 4 and topic.expected < 1
    assert times[0] <= raised_at


def test_the_same_count_at_an_hour_busy_every_week_is_no_spike() -> None:
    now = MONDAY + 3 * WEEK_S + 10 * 3600
    detector = Detector(history_from=MONDAY)
    # Every Monday at ten, a dozen outages on this street within the hour: the usual.
    for week in range(1, 4):
        for i in range(12):
            detector.add(Signal(now - week * WEEK_S - 3000 + i * 250, next(ids), *_key(WATER)))
    for i in range(12):
        detector.add(Signal(now - 3000 + i * 250, next(ids), *_key(WATER)))
    assert detector.scan(now) == []


def test_a_rare_matter_needs_more_than_two_cases_to_be_a_spike() -> None:
    """The floor: a key never seen before is not raised at its second case."""
    now = MONDAY + 3 * WEEK_S
    detector = Detector(history_from=MONDAY)
    gas = Key(category="gas-leak", street="长流镇")
    for i in range(3):
        detector.add(Signal(now - 600 + i * 60, next(ids), *_key(gas)))
    assert detector.scan(now) == []
    assert poisson_tail(3, 0.3 * 0.25) > DetectorSettings().alpha


def test_nothing_is_raised_before_there_is_a_day_to_compare_with() -> None:
    detector = Detector(history_from=MONDAY)
    burst(detector, WATER, MONDAY + 3600, 20, 30)
    assert detector.scan(MONDAY + 3600 + 600) == []
    later = MONDAY + DAY_S + 3600
    burst(detector, WATER, later, 20, 30)
    assert [s.key for s in detector.scan(later + 600) if s.key == WATER] == [WATER]


def test_a_word_spike_of_the_same_cases_is_the_same_topic_and_a_new_word_is_raised() -> None:
    start = MONDAY + 2 * WEEK_S + 9 * 3600
    detector = Detector(history_from=MONDAY)
    tracker = Tracker()
    burst(detector, WATER, start, 12, 60)  # their words: 停水
    change = tracker.apply(detector, detector.scan(start + 720), start + 720)
    assert [t.key for t in change.raised] == [WATER]  # not 停水 citywide as well
    # A typhoon's name, across streets and matters: a word topic of its own.
    for i, street in enumerate(
        ["海府街道", "白龙街道", "长流镇", "府城街道", "滨海街道", "中山街道"]
    ):
        detector.add(Signal(start + 800 + i * 30, next(ids), "fallen-trees", street, ("摩羯",)))
    change = tracker.apply(detector, detector.scan(start + 1000), start + 1000)
    assert [t.key for t in change.raised] == [Key(word="摩羯")]


def test_later_cases_join_an_open_topic_and_a_quiet_one_closes() -> None:
    start = MONDAY + 2 * WEEK_S + 9 * 3600
    detector = Detector(history_from=MONDAY)
    tracker = Tracker()
    burst(detector, WATER, start, 8, 60)
    tracker.apply(detector, detector.scan(start + 480), start + 480)
    late = burst(detector, WATER, start + 1200, 2, 60)
    change = tracker.apply(detector, detector.scan(late[-1] + 1), late[-1] + 1)
    assert change.raised == [] and [len(fresh) for _, fresh in change.joined] == [2]
    quiet = late[-1] + DetectorSettings().quiet_after_s + 60
    change = tracker.apply(detector, detector.scan(quiet), quiet)
    assert [t.key for t in change.closed] == [WATER] and tracker.open == {}


def test_a_new_name_cut_into_characters_is_one_word() -> None:
    assert "摩羯" in topic_words("摩羯过后小区停电了")
    assert "停电" in topic_words("摩羯过后小区停电了")
    assert "反映" not in topic_words("你好，我要反映一下，家里停水了")


def _key(key: Key) -> tuple[str, str]:
    return key.category, key.street


# -- duplicates --------------------------------------------------------------------------


def test_the_same_address_written_another_way_is_the_same_place() -> None:
    same = address_key("龙昆南路88号")
    for written in (
        "海南省海口市龙华区龙昆南路 88 号",
        "龙昆南路８８号附近",
        "龙昆南路八十八号",
        "龙昆南路88号门口",
    ):
        assert address_key(written) == same, written
    assert same_place(address_key("龙昆南路88号椰风花园"), address_key("椰风花园门口"))
    assert not same_place(address_key("龙昆南路"), address_key("龙昆南路88号"))  # a bare road
    assert not same_place(address_key("海府路2号"), address_key("海府路12号"))


def test_a_grid_is_the_same_place_only_for_a_matter_that_covers_an_area() -> None:
    assert is_duplicate("water-outage", "海府路10号", 7, "water-outage", "海府路14号", 7) == "grid"
    assert is_duplicate("street-lights", "海府路10号", 7, "street-lights", "海府路14号", 7) is None
    assert is_duplicate("street-lights", "海府路10号", 7, "water-outage", "海府路10号", 7) is None


@pytest.fixture
def sessions(db_url: str):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory

    return session_factory(engine_for(db_url))


def filed(  # type: ignore[no-untyped-def]
    db,
    at: datetime,
    category: str,
    address: str,
    description: str = "停水了",
    phone: str = "",
    channel: str = "asterisk",
) -> Case:
    """A case filed at ``at`` (by its own caller unless ``phone`` is given)."""
    n = next(ids)
    case = create_case_for_call(
        db,
        CallInfo(f"call-{n}", phone or f"+86139{n:08d}", channel, "1001"),
        CaseDraft(description=description, category_code=category, address=address, dispatch=False),
    )
    case.created_at = at
    db.flush()
    return case


def test_open_cases_at_the_same_place_are_suggested_newest_first(sessions) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    with sessions() as db:
        older = filed(db, now - timedelta(days=2), "street-lights", "海府路10号")
        newer = filed(db, now - timedelta(hours=1), "street-lights", "海口市美兰区海府路10号附近")
        filed(db, now - timedelta(hours=1), "street-lights", "海府路12号")  # next door
        filed(db, now - timedelta(hours=1), "water-outage", "海府路10号")  # another matter
        filed(db, now - timedelta(days=9), "street-lights", "海府路10号")  # too old
        closed = filed(db, now - timedelta(hours=2), "street-lights", "海府路10号")
        closed.status = "closed"
        db.commit()
        found = suggest_duplicates(db, "street-lights", "海府路 10 号", now)
        assert [s.number for s in found] == [newer.number, older.number]
        assert {s.why for s in found} == {"address"}


def test_the_same_address_is_suggested_before_newer_cases_elsewhere_in_the_grid(sessions) -> None:  # type: ignore[no-untyped-def]
    """An operator typing 玉沙路8号 for a water cut must see the open case at 玉沙路8号,
    however many newer water cuts the grid has at other numbers (the list shows five)."""
    now = datetime.now(UTC)
    with sessions() as db:
        same = filed(db, now - timedelta(days=1), "water-outage", "玉沙路8号幸福花园2栋")
        same.grid_id = grid = 7
        for n in range(6):  # newer, elsewhere in the grid: the same matter by grid only
            other = filed(db, now - timedelta(hours=n + 1), "water-outage", f"玉沙路{20 + n}号")
            other.grid_id = grid
        db.commit()
        found = suggest_duplicates(db, "water-outage", "玉沙路8号幸福花园2栋", now, grid_id=grid)
        assert found[0].number == same.number and found[0].why == "address"
        assert len(found) == 5


# -- hot topics over SQL -----------------------------------------------------------------


def test_a_scan_raises_a_topic_with_its_cases_and_lead_unit_on_a_controlled_clock(
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    start = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 Beijing time, a Monday
    street = {"金贸街道": "金贸街道", "滨海街道": "滨海街道"}

    def street_of(address: str) -> str:
        return next((s for s in street if s in address), "")

    with sessions() as db:
        # Three quiet weeks: a water cut on this street now and then.
        for day in range(21):
            filed(
                db, start - timedelta(days=21 - day, hours=3), "water-outage", "金贸街道玉沙路1号"
            )
        db.commit()
        assert scan_hot_topics(db, start, street_of=street_of)["raised"] == 0
        burst_cases = [
            filed(db, start + timedelta(minutes=2 * i), "water-outage", f"金贸街道玉沙路{i}号")
            for i in range(8)
        ]
        db.commit()
        now = start + timedelta(minutes=15)
        assert scan_hot_topics(db, now, street_of=street_of)["raised"] == 1
        assert scan_hot_topics(db, now + timedelta(minutes=1), street_of=street_of)["raised"] == 0
        topics = current_hot_topics(db, now + timedelta(minutes=1))
        assert len(topics) == 1
        topic = topics[0]
        assert topic.title == "金贸街道 · 停水"
        assert topic.suggested_unit == "海口市供水公司"  # the category's unit: none sent yet
        assert set(topic.case_numbers) == {c.number for c in burst_cases}
        assert topic.baseline < 1
        # A case filed later joins it; hours of quiet close it.
        late = filed(db, now + timedelta(minutes=5), "water-outage", "金贸街道玉沙路9号")
        db.commit()
        assert scan_hot_topics(db, now + timedelta(minutes=6), street_of=street_of)["joined"] == 1
        assert late.number in current_hot_topics(db, now + timedelta(minutes=7))[0].case_numbers
        assert scan_hot_topics(db, now + timedelta(hours=4), street_of=street_of)["closed"] == 1
        assert current_hot_topics(db, now + timedelta(hours=4, minutes=1)) == []
        assert len(current_hot_topics(db, now + timedelta(minutes=30))) == 1  # open then


# -- special topics ----------------------------------------------------------------------


def test_a_special_topic_groups_cases_by_rules_and_by_hand_with_its_figures(sessions) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 9, 6, 4, 0, tzinfo=UTC)
    with sessions() as db:
        fallen = filed(db, now, "fallen-trees", "海府路1号", "台风摩羯过后大树倒了")
        flooded = filed(db, now, "waterlogging", "滨海大道", "摩羯带来的积水")
        filed(db, now, "fallen-trees", "海府路2号", "树枝断了")  # no word of the typhoon
        filed(db, now - timedelta(days=30), "fallen-trees", "海府路3号", "摩羯")  # before
        other = filed(db, now, "street-lights", "海府路4号", "路灯坏了")
        topic = open_special_topic(
            db,
            "台风“摩羯”",
            "li",
            now,
            categories="fallen-trees, waterlogging",
            words="摩羯 台风",
            starts_on=date(2026, 9, 5),
            ends_on=date(2026, 9, 10),
        )
        assert refresh_special_topic(db, topic, now, street_of=lambda a: "") == 2
        assert refresh_special_topic(db, topic, now, street_of=lambda a: "") == 0  # once
        add_case_by_hand(db, topic, other.number, "li", now)
        leave_out_case(db, topic, flooded.id, "li")
        assert refresh_special_topic(db, topic, now, street_of=lambda a: "") == 0  # stays out
        fallen.status, fallen.resolved_at, fallen.satisfaction = "closed", now, "satisfied"
        other.handling_overdue = True
        db.commit()
        [figures] = special_topic_figures(db, now - timedelta(days=1), now + timedelta(days=1))
        assert (figures.name, figures.cases, figures.resolved, figures.overdue) == (
            "台风“摩羯”",
            2,
            1,
            1,
        )
        assert (figures.satisfied, figures.rated) == (1, 1)
        assert special_topic_figures(db, now - timedelta(days=90), now - timedelta(days=60)) == []


# -- merged callers' return visits -------------------------------------------------------


def test_a_caller_merged_into_a_resolved_case_gets_the_return_visit_too(
    db_url: str,
    redis,  # type: ignore[no-untyped-def]
) -> None:
    from zoneinfo import ZoneInfo

    from calls.dialer import Dialer, plan_work
    from calls.dialing import DialerSettings
    from cases.db import engine_for, session_factory
    from cases.dispatch import merge, resolve, sign_for
    from cases.service import dispatch
    from queueing.keys import QueueKeys
    from tests.test_dialer import Clock, Telephony

    keys = QueueKeys("topicsdial")
    for key in redis.scan_iter(match="hotline:{q:topicsdial}*"):
        redis.delete(key)
    sessions = session_factory(engine_for(db_url))
    clock = Clock(datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    telephony = Telephony()
    dialer = Dialer(
        redis,
        keys,
        sessions,
        telephony,
        DialerSettings(max_concurrent=5, calls_per_s=1000),
        now=clock,
    )
    with sessions() as db:
        first = filed(db, datetime.now(UTC), "street-lights", "海府路10号", phone="+8613800138001")
        second = filed(db, datetime.now(UTC), "street-lights", "海府路10号", phone="+8613800138002")
        dispatch(db, first, "1001")
        merge(db, second, first, "1001")
        sign_for(db, first, "urban", first.department_id)
        resolve(db, first, "urban", first.department_id, "已修复")
        db.commit()
        first_id, second_id = first.id, second.id
    with sessions() as db:
        plan_work(db, dialer, datetime.now(UTC))
        visits = {
            i.source: i.phone
            for i in db.scalars(select(OutboundItem).where(OutboundItem.kind == "return_visit"))
        }
    assert visits == {
        f"visit:{first_id}": "+8613800138001",
        f"visit:{second_id}": "+8613800138002",
    }
    clock.at = (datetime.now(UTC) + timedelta(days=3)).astimezone(clock.at.tzinfo)
    clock.at = clock.at.replace(hour=10)  # the visits' day, in calling hours
    assert dialer.run_once() == 2
    calls = {phone: call for call, phone, _ in telephony.placed}
    dialer.finished(calls["+8613800138002"], "unsatisfied")
    with sessions() as db:
        merged, target = db.get(Case, second_id), db.get(Case, first_id)
        assert (merged.status, merged.satisfaction) == ("closed", "unsatisfied")
        assert target.status == "dispatched"  # sent back to its unit, as its own caller's


# -- the supervisors' special-topic screens ----------------------------------------------


def test_a_supervisor_opens_a_special_topic_and_adds_and_leaves_out_cases(
    redis_server,  # type: ignore[no-untyped-def]
    redis,
    tmp_path,
) -> None:
    from cases.db import engine_for, session_factory
    from tests.test_console import csrf_of, make_app, sign_in

    app = make_app(redis_server, redis, tmp_path)
    sessions = session_factory(engine_for(f"sqlite:///{tmp_path / 'web.db'}"))
    now = datetime.now(UTC)
    with sessions() as db:
        fallen = filed(db, now, "fallen-trees", "海府路1号", "台风摩羯过后大树倒了")
        lights = filed(db, now, "street-lights", "海府路4号", "路灯坏了")
        db.commit()
    operator = app.test_client()
    sign_in(operator, "wang")
    assert operator.get("/console/topics").status_code == 403
    client = app.test_client()
    sign_in(client, "li")
    page = client.get("/console/topics")
    assert page.status_code == 200 and "开设专题" in page.get_data(as_text=True)
    token = csrf_of(page.get_data(as_text=True))
    refused = client.post(
        "/console/topics", data={"name": "台风", "categories": "no-such", "csrf_token": token}
    )
    assert refused.status_code == 422 and "没有这些类别" in refused.get_data(as_text=True)
    opened = client.post(
        "/console/topics",
        data={"name": "台风“摩羯”", "words": "摩羯", "csrf_token": token},
    )
    assert opened.status_code == 302
    topic_page = client.get(opened.headers["Location"]).get_data(as_text=True)
    assert fallen.number in topic_page and lights.number not in topic_page
    topic_id = int(opened.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    client.post(
        f"/console/topics/{topic_id}/cases", data={"number": lights.number, "csrf_token": token}
    )
    client.post(
        f"/console/topics/{topic_id}/cases/{fallen.id}/leave-out", data={"csrf_token": token}
    )
    topic_page = client.get(f"/console/topics/{topic_id}").get_data(as_text=True)
    assert lights.number in topic_page and fallen.number not in topic_page
    assert '<dd id="topic-cases">1</dd>' in topic_page
    assert "专题" in client.get("/console/topics").get_data(as_text=True)


def _web_request(db, at: datetime, phone: str, text: str, address: str = "") -> Case:  # type: ignore[no-untyped-def]
    """A citizen's web-form request: their own words, no category (as calls.citizen_requests
    files it), filed at ``at``."""
    case = filed(db, at, "", address, description=text, phone=phone, channel="web")
    case.category_id = None
    db.flush()
    return case


def test_one_caller_and_raw_citizen_text_raise_no_hot_topic(sessions) -> None:  # type: ignore[no-untyped-def]
    """Five requests from one phone sharing a made-up word, or one phone's eight street
    reports, are one report; words that no operator has categorised raise nothing;
    five callers whose requests operators categorised do raise the word."""
    from cases.service import apply_form, parse_form

    now = datetime.now(UTC)
    with sessions() as db:
        filed(db, now - timedelta(days=40), "street-lights", "")  # a month of history
        for i in range(5):  # one phone, the same words
            _web_request(db, now - timedelta(minutes=10 - i), "+8613911112222", "市长辞职fakenews")
        for i in range(8):  # one phone, eight street reports (categorised by an operator)
            filed(
                db,
                now - timedelta(minutes=9 - i),
                "water-outage",
                f"金贸街道玉沙路{i}号",
                phone="+8613911113333",
            )
        for i in range(8):  # no phone, from one place on the web: one source as well
            case = filed(
                db,
                now - timedelta(minutes=9 - i),
                "street-lights",
                "金贸街道玉沙路1号",
                phone="",
                channel="web",
            )
            case.caller_phone = ""
        db.commit()
        assert scan_hot_topics(db, now, street_of=lambda a: "金贸街道" if a else "")["raised"] == 0
        # Five callers, but their raw words only: still nothing.
        requests = [
            _web_request(db, now - timedelta(minutes=5 - i), f"+86137{i:08d}", "椰林谣言传播")
            for i in range(5)
        ]
        db.commit()
        later = now + timedelta(minutes=1)
        assert scan_hot_topics(db, later, street_of=lambda a: "")["raised"] == 0
        # Operators read them and file a category each (one of many): a real word topic.
        for case, code in zip(
            requests,
            ("bus-service", "street-lights", "gas-leak", "traffic-lights", "fallen-trees"),
            strict=True,
        ):
            apply_form(db, case, parse_form(db, {"category_code": code}), "wang")
        db.commit()
        later = now + timedelta(minutes=2)
        assert scan_hot_topics(db, later, street_of=lambda a: "")["raised"] >= 1
        titles = [t.title for t in current_hot_topics(db, later + timedelta(seconds=1))]
        assert "热词 “椰林”" in titles or any("椰林" in t for t in titles), titles
        assert not any(w in t for t in titles for w in ("市长", "辞职", "fakenews"))


def test_a_scan_raises_only_the_strongest_spikes_and_links_a_bounded_number_of_cases() -> None:
    """A flood of spikes at one scan raises the strongest few; a topic's links stop at
    the bound however many cases join."""
    settings = DetectorSettings(max_raised_per_scan=3, max_cases_per_topic=20)
    start = MONDAY + 2 * WEEK_S + 9 * 3600
    detector = Detector(settings, history_from=MONDAY)
    streets = [f"街道{i}" for i in range(12)]
    for n, street in enumerate(streets):  # street i: 5 + i reports
        for k in range(5 + n):
            detector.add(Signal(start + k * 20, next(ids), "water-outage", street))
    tracker = Tracker(settings)
    change = tracker.apply(detector, detector.scan(start + 600), start + 600)
    assert sorted(t.key.street for t in change.raised) == ["街道10", "街道11", "街道9"]
    for k in range(40):
        detector.add(Signal(start + 620 + k, next(ids), "water-outage", "街道11"))
    tracker.apply(detector, detector.scan(start + 700), start + 700)
    assert len(tracker.open[Key("water-outage", "街道11")].case_ids) == 20


def test_the_scan_reads_the_hours_beside_the_window_on_past_weeks(sessions) -> None:  # type: ignore[no-untyped-def]
    """A street where the water goes off every Monday a little earlier than now: the
    baseline counts the hour either side of the window, so today's cases are usual."""
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # a Monday, 11:00 Beijing time
    with sessions() as db:
        for week in (1, 2, 3):
            for i in range(10):
                at = now - timedelta(days=7 * week, minutes=100 - i * 3)
                filed(db, at, "water-outage", f"金贸街道玉沙路{i}号")
        for i in range(8):
            filed(db, now - timedelta(minutes=20 - i * 2), "water-outage", f"金贸街道玉沙路{i}号")
        db.commit()
        assert scan_hot_topics(db, now, street_of=lambda a: "金贸街道")["raised"] == 0


def test_a_topic_closes_when_its_key_is_usual_again_though_cases_still_come() -> None:
    """A busy key keeps getting cases at its usual rate: they join the open topic but
    do not keep it open for ever."""
    start = MONDAY + 2 * WEEK_S + 9 * 3600
    detector = Detector(history_from=MONDAY)
    tracker = Tracker()
    burst(detector, WATER, start, 8, 60)
    tracker.apply(detector, detector.scan(start + 480), start + 480)
    assert WATER in tracker.open
    closed_at = None
    for minute in range(10, 8 * 60, 10):
        now = start + minute * 60
        if minute % 30 == 0:  # one an hour and a half later, as usual
            detector.add(Signal(now - 1, next(ids), WATER.category, WATER.street))
        change = tracker.apply(detector, detector.scan(now), now)
        if change.closed:
            closed_at = now
            break
    assert closed_at is not None
    assert closed_at - start <= DetectorSettings().quiet_after_s + 3600


def test_the_reaper_enqueues_the_hot_topic_scan_once_per_interval(
    redis_server,  # type: ignore[no-untyped-def]
    redis,
    tmp_path,
) -> None:
    from calls.hot_topics import JOB_ID
    from calls.reaper import Reaper
    from tests.test_console import make_app

    svc = make_app(redis_server, redis, tmp_path).extensions["hotline"]
    reaper = Reaper(svc.handler)
    reaper.round()
    assert JOB_ID in svc.jobs.job_ids
    svc.jobs.remove(JOB_ID)
    reaper.round()  # within the minute: not again
    assert JOB_ID not in svc.jobs.job_ids


# -- 并单 checked again on the server ----------------------------------------------------


def test_a_crafted_merge_into_another_matter_or_of_an_urgent_one_is_refused_and_files_nothing(
    app,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    """The suggestion is checked again on the server: a gas leak is never merged away
    undispatched, another place or category is refused, and the form stays as typed;
    the same matter at the same place is merged."""
    from tests.test_desk import signed_in

    desk = app.extensions["hotline"].desk
    with desk.sessions() as db:
        target = create_case_for_call(
            db,
            CallInfo("other", "+8613800138031", "asterisk", "1002"),
            CaseDraft(
                description="路灯不亮",
                category_code="street-lights",
                address="秀英区长流镇长滨路5号",
            ),
        )
        db.commit()
        into = target.number
    client, headers = signed_in(app, "wang")
    client.post("/console/seat/login", data={"seat": "1001", "skills": "mandarin"}, headers=headers)
    queue = app.extensions["hotline"].queue
    queue.enqueue("c1", caller="+8613900000001")
    queue.answer("c1", "1001")

    def merge(**form: str):  # type: ignore[no-untyped-def]
        return client.post(
            "/console/calls/c1/merge-into", headers=headers, data={"into": into, **form}
        )

    gas = merge(
        description="我家楼下燃气泄漏，很危险",
        category_code="gas-leak",
        address="美兰区白龙南路1号",
    )
    page = gas.get_data(as_text=True)
    assert gas.status_code == 409 and "紧急" in page and "我家楼下燃气泄漏" in page
    elsewhere = merge(
        description="路灯不亮", category_code="street-lights", address="美兰区白龙南路1号"
    )
    assert elsewhere.status_code == 409 and "不是同一事项" in elsewhere.get_data(as_text=True)
    other = merge(
        description="垃圾没人收",
        category_code="garbage-collection",
        address="秀英区长流镇长滨路5号",
    )
    assert other.status_code == 409 and "类别不同" in other.get_data(as_text=True)
    with desk.sessions() as db:
        assert db.scalars(select(Case.number)).all() == [into]  # nothing filed, nothing merged
    same = merge(
        description="路灯坏了", category_code="street-lights", address="长流镇长滨路5号附近"
    )
    assert same.status_code == 200
    with desk.sessions() as db:
        own = db.scalar(select(Case).where(Case.number != into))
        assert own is not None and own.merged_into_id == db.scalar(
            select(Case.id).where(Case.number == into)
        )


def test_an_urgent_case_not_yet_dispatched_is_never_merged_away(sessions) -> None:  # type: ignore[no-untyped-def]
    from cases.dispatch import CaseRefused, merge
    from cases.service import dispatch

    now = datetime.now(UTC)
    with sessions() as db:
        target = filed(db, now, "gas-leak", "海府路10号")
        dispatch(db, target, "1001")
        repeat = filed(db, now, "gas-leak", "海府路10号")
        assert repeat.urgency == "urgent"
        with pytest.raises(CaseRefused) as refused:
            merge(db, repeat, target, "1001")
        assert refused.value.code == "merge-urgent" and repeat.status == "received"


def test_one_phone_with_two_merged_cases_is_visited_once_even_after_its_answer(
    db_url: str,
    redis,  # type: ignore[no-untyped-def]
) -> None:
    """Two of one caller's requests merged into one case: one return visit for that
    phone, not a second once the first is answered (the hourly full pass reads all)."""
    from zoneinfo import ZoneInfo

    from calls.dialer import Dialer, plan_work
    from calls.dialing import DialerSettings
    from cases.db import engine_for, session_factory
    from cases.dispatch import merge, resolve, sign_for
    from cases.service import dispatch
    from queueing.keys import QueueKeys
    from tests.test_dialer import Clock, Telephony

    keys = QueueKeys("topicsdial2")
    for key in redis.scan_iter(match="hotline:{q:topicsdial2}*"):
        redis.delete(key)
    sessions = session_factory(engine_for(db_url))
    clock = Clock(datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    telephony = Telephony()
    settings = DialerSettings(max_concurrent=5, calls_per_s=1000)
    dialer = Dialer(redis, keys, sessions, telephony, settings, now=clock)
    now = datetime.now(UTC)
    with sessions() as db:
        first = filed(db, now, "street-lights", "海府路10号", phone="+8613800138001")
        repeats = [
            filed(db, now, "street-lights", "海府路10号", phone="+8613800138009") for _ in range(2)
        ]
        dispatch(db, first, "1001")
        for repeat in repeats:
            merge(db, repeat, first, "1001")
        sign_for(db, first, "urban", first.department_id)
        resolve(db, first, "urban", first.department_id, "已修复")
        db.commit()
        repeat_ids = {r.id for r in repeats}

    def visited() -> list[str]:
        with sessions() as db:
            return [
                i.phone
                for i in db.scalars(select(OutboundItem).where(OutboundItem.kind == "return_visit"))
            ]

    with sessions() as db:
        plan_work(db, dialer, now)
    assert sorted(visited()) == ["+8613800138001", "+8613800138009"]
    clock.at = (now + timedelta(days=3)).astimezone(clock.at.tzinfo).replace(hour=10)
    assert dialer.run_once() == 2
    calls = {phone: call for call, phone, _ in telephony.placed}
    dialer.finished(calls["+8613800138009"], "satisfied")
    with sessions() as db:
        answered = db.scalars(select(Case.satisfaction).where(Case.id.in_(repeat_ids))).all()
        assert sorted(map(str, answered)) == ["None", "satisfied"]
        plan_work(db, dialer, now + timedelta(hours=2))  # the full pass
    assert sorted(visited()) == ["+8613800138001", "+8613800138009"]


def test_the_scan_finds_the_street_the_grid_finds_reading_the_table_once(session) -> None:  # type: ignore[no-untyped-def]
    from cases.grid import street_of_address
    from cases.topics import default_street_of, street_from_text

    street_of = default_street_of(session)
    for address in (
        "国贸路88号",
        "龙华区金贸街道某小区",
        "万绿园东门",
        "中山路5号",
        "长流镇某村",
        "",
    ):
        expected = street_of_address(session, address) or street_from_text(address)
        assert street_of(address) == expected == street_of(address)
    assert street_of("国贸路88号") == "金贸街道"
