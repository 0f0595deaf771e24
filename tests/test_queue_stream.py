"""The event stream holds callers' numbers (the call rows need them to call back a
missed caller), so it keeps only the current and the previous Beijing day: each
transition trims what is older, and a stream nobody writes to expires at the end of
the day after its last event."""

from __future__ import annotations

from redis import Redis

from queueing import CallQueue
from queueing.events import read_events

DAY_MS = 86_400_000
BEIJING_MS = 8 * 3_600_000  # UTC+8 all year


def beijing_day_start(ms: int) -> int:
    return (ms + BEIJING_MS) // DAY_MS * DAY_MS - BEIJING_MS


def redis_ms(redis: Redis) -> int:
    seconds, micros = redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_each_transition_drops_events_older_than_yesterday(redis: Redis, queue: CallQueue) -> None:
    for _attempt in range(2):  # a Beijing midnight between the two readings: again
        before = redis_ms(redis)
        today = beijing_day_start(before)
        yesterday = today - DAY_MS
        old = [yesterday - DAY_MS + 3_600_000, yesterday - 1]  # the day before yesterday
        kept = [yesterday, yesterday + 3_600_000, today]
        redis.delete(queue.keys.events)
        for ms in old + kept:
            redis.xadd(queue.keys.events, {"type": "SEED", "ts": ms}, id=f"{ms}-0")
        queue.turned_away("c1", "+8613900139000", "closed")
        if beijing_day_start(redis_ms(redis)) == today:
            break
    ids = [int(event_id.split("-")[0]) for event_id, _ in read_events(redis, queue.keys)]
    assert ids[: len(kept)] == kept  # yesterday and today stay, readers' cursors with them
    assert len(ids) == len(kept) + 1 and ids[-1] >= before
    assert not set(old) & set(ids)


def test_the_stream_expires_at_the_end_of_the_day_after_its_last_event(
    redis: Redis, queue: CallQueue
) -> None:
    today = beijing_day_start(redis_ms(redis))
    queue.seat_login("s1")
    queue.enqueue("c1", caller="+8613900139000")
    expires = int(redis.execute_command("PEXPIRETIME", queue.keys.events))
    assert expires in (today + 2 * DAY_MS, today + 3 * DAY_MS)  # (a midnight in between)
    entered = [e for _, e in read_events(redis, queue.keys) if e["type"] == "ENTERQUEUE"]
    assert entered[0]["caller"] == "+8613900139000"  # whole: the callback list needs it


def _stream_upkeep_calls(redis: Redis) -> int:
    stats = redis.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("xtrim", "pexpireat"))


def test_only_the_days_first_transition_trims_and_sets_the_expiry(
    redis: Redis, queue: CallQueue
) -> None:
    """Every transition writing XTRIM and PEXPIREAT again cost the queue benchmark a
    tenth of its Lua time and an AOF entry per transition: the expiry already set for
    today says the day's trim is done."""
    queue.seat_login("s1")  # the day's first transition trims and sets the expiry
    expires = int(redis.execute_command("PEXPIRETIME", queue.keys.events))
    redis.config_resetstat()
    queue.enqueue("c1", caller="+8613900139000")
    queue.answer("c1", "s1")
    queue.complete("c1")
    assert _stream_upkeep_calls(redis) == 0
    assert int(redis.execute_command("PEXPIRETIME", queue.keys.events)) == expires


def test_a_stream_kept_for_yesterday_is_trimmed_again_today(redis: Redis, queue: CallQueue) -> None:
    for _attempt in range(2):  # a Beijing midnight between the two readings: again
        today = beijing_day_start(redis_ms(redis))
        redis.delete(queue.keys.events)
        old, kept = today - DAY_MS - 1, today - DAY_MS
        for ms in (old, kept):
            redis.xadd(queue.keys.events, {"type": "SEED", "ts": ms}, id=f"{ms}-0")
        # As yesterday's first transition left it: expiring at the end of today.
        redis.pexpireat(queue.keys.events, today + DAY_MS)
        queue.turned_away("c1", "+8613900139000", "closed")
        if beijing_day_start(redis_ms(redis)) == today:
            break
    ids = [int(event_id.split("-")[0]) for event_id, _ in read_events(redis, queue.keys)]
    assert old not in ids and ids[0] == kept
    assert int(redis.execute_command("PEXPIRETIME", queue.keys.events)) == today + 2 * DAY_MS
