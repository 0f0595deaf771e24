import pytest
from redis import Redis
from redis.crc import key_slot

from queueing import CallQueue, QueueKeys
from queueing.keys import check_id


def test_every_key_shares_the_queue_hash_tag() -> None:
    keys = QueueKeys("main")
    names = keys.script_keys() + [
        keys.call("c1"),
        keys.seat("s1"),
        keys.waiting("mandarin"),
        keys.available("english"),
        keys.staffed("hainanese"),
    ]
    slots = {key_slot(name.encode()) for name in names}
    assert len(slots) == 1
    assert all(name.startswith("hotline:{q:main}:") for name in names)


def test_queues_are_separate_keyspaces() -> None:
    assert QueueKeys("main").call("c1") != QueueKeys("other").call("c1")


@pytest.mark.parametrize("bad", ["", "a:b", "a{b}", "a b", "x" * 129, "line\nbreak"])
def test_ids_that_would_break_key_structure_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_id("call", bad)


def test_scripts_write_only_keys_the_builder_names(redis: Redis, queue: CallQueue) -> None:
    queue.seat_login("s1", ["mandarin", "english"])
    queue.seat_login("s2")
    queue.enqueue("c1", caller="13800000001")
    queue.enqueue("c2", sticky_seat="s1")
    queue.enqueue("c3", skill="english")
    queue.answer("c1", "s1")
    queue.hangup("c3")
    queue.tick()
    keys = queue.keys
    expected = (
        set(keys.script_keys())
        | {keys.call(c) for c in ("c1", "c2", "c3")}
        | {keys.seat(s) for s in ("s1", "s2")}
        | {keys.staffed(s) for s in ("mandarin", "english")}
        | {keys.available(s) for s in ("mandarin", "english")}
        | {keys.working(s) for s in ("mandarin", "english")}
        | {keys.waiting(s) for s in ("mandarin", "english")}
        | {keys.sticky_by_seat_prefix + "s1"}
    )
    present = {k.decode() for k in redis.scan_iter("*")}
    assert present, "the scenario wrote nothing"
    assert present <= expected, present - expected
    assert len({key_slot(k.encode()) for k in present}) == 1


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("call", "CA" + "0" * 32 + "\n"),  # "$" would have let this pass
        ("seat", "a&b"),
        ("seat", "<script>"),
        ("seat", ".."),
        ("seat", "10\x0001"),
        ("seat", "1001,2"),  # would reach EXEC Dial's arguments
        ("seat", ""),
        ("call", "ast-1.2 3"),
        ("skill", "Mandarin"),
    ],
)
def test_ids_are_checked_strictly(kind: str, value: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        check_id(kind, value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("call", "CA" + "a" * 32),
        ("call", "ast-1795812065.12"),
        ("seat", "1001"),
        ("seat", "hainan_2"),
    ],
)
def test_real_ids_pass(kind: str, value: str) -> None:
    assert check_id(kind, value) == value


@pytest.mark.parametrize("name", ["trunk", "Trunk", "box-b", "anonymous"])
def test_a_seat_may_not_take_the_name_of_a_trunk(name: str) -> None:
    """Dial(PJSIP/trunk) would ring the carrier, not a phone: a seat so named would send
    callers back out of the centre."""
    with pytest.raises(ValueError, match="trunk"):
        check_id("seat", name)


def test_the_event_streams_cap_holds_two_record_days_and_is_configurable() -> None:
    from queueing.settings import ConfigError, load_queue_settings

    assert load_queue_settings({}).events_maxlen >= 2 * 87_000 * 10
    assert load_queue_settings({"HOTLINE_EVENTS_MAXLEN": "3000000"}).events_maxlen == 3_000_000
    with pytest.raises(ConfigError, match="HOTLINE_EVENTS_MAXLEN"):
        load_queue_settings({"HOTLINE_EVENTS_MAXLEN": "100"})
