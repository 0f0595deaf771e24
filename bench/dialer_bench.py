"""The outbound dialer at volume: 5,000 due items (return visits and call-backs)
through an emulated telephony, against a real redis-server and SQLite.

The emulated telephony is no kinder than a real one: each call rings for a while
(scaled down by ``--time-scale``) and ends answered and surveyed, unanswered, busy, at
an answering machine or failed, in proportions like a real return-visit campaign; its
result comes back on another thread, as a status callback would. It checks, for every
call it is asked to place, that the same number is not already on a call (a double
dial) and that the dialer's clock is within calling hours.

The run starts at 20:59:30 Beijing time on the dialer's clock (running at real speed),
so calling hours close 30 s in; the clock then jumps to 07:59:50 next morning (the
night, skipped), and whenever nothing is due for more than 0.25 s it skips ahead to
0.1 s before the next due item (retry spacing, a number's limits), calls still ringing or
not: their durations are real time, the dialer's clock only says when the next call
may start. Pacing is measured in real seconds, on the telephony's side.

It prints one JSON object as its last line:
{"items", "limit_concurrent", "limit_per_s", "max_concurrent", "max_per_s_observed",
 "double_dials", "outside_hours_calls", "calls", "wall_s", ...}

    .venv/bin/python bench/dialer_bench.py --items 5000 --concurrent 100 --per-s 50
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from calls.dialer import Dialer  # noqa: E402
from calls.dialing import DialerSettings, within_calling_hours  # noqa: E402
from cases.db import engine_for, session_factory, upgrade  # noqa: E402
from cases.models import OutboundItem  # noqa: E402
from hotline.redis_server import RedisServer  # noqa: E402
from queueing.keys import QueueKeys  # noqa: E402

BJ = ZoneInfo("Asia/Shanghai")
OUTCOMES = [
    ("satisfied", 0.45),
    ("unsatisfied", 0.05),
    ("no_response", 0.05),
    ("no-answer", 0.2),
    ("busy", 0.1),
    ("machine", 0.1),
    ("failed", 0.05),
]


class Clock:
    """The dialer's clock: real time from a chosen start, with a jump over the night."""

    def __init__(self, start: datetime) -> None:
        self.base, self.t0, self.lock = start, time.monotonic(), threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            return self.base + timedelta(seconds=time.monotonic() - self.t0)

    def jump_to(self, moment: datetime) -> None:
        with self.lock:
            self.base, self.t0 = moment, time.monotonic()


class EmulatedTelephony:
    def __init__(
        self, clock: Clock, settings: DialerSettings, scale: float, rng: random.Random
    ) -> None:
        self.clock, self.settings, self.scale, self.rng = clock, settings, scale, rng
        self.dialer: Dialer | None = None
        self.lock = threading.Lock()
        self.live: dict[str, str] = {}  # call id -> number
        self.max_concurrent = self.double_dials = self.outside_hours = self.calls = 0
        self.per_second: Counter[int] = Counter()
        self.timers: list[threading.Timer] = []

    def originate(self, call_id: str, phone: str, kind: str) -> None:
        with self.lock:
            if phone in self.live.values():
                self.double_dials += 1
            if not within_calling_hours(self.clock(), self.settings):
                self.outside_hours += 1
            self.live[call_id] = phone
            self.calls += 1
            self.max_concurrent = max(self.max_concurrent, len(self.live))
            self.per_second[int(time.monotonic())] += 1
        outcome = self.rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
        ring_s = (
            self.rng.uniform(3, 25)
            if outcome in ("no-answer", "machine")
            else self.rng.uniform(2, 10)
        )
        talk_s = (
            self.rng.uniform(15, 40)
            if outcome in ("satisfied", "unsatisfied", "no_response")
            else 0
        )
        timer = threading.Timer(
            (ring_s + talk_s) * self.scale, self.report, args=(call_id, outcome)
        )
        timer.daemon = True
        timer.start()

    def report(self, call_id: str, outcome: str) -> None:
        with self.lock:
            self.live.pop(call_id, None)
        assert self.dialer is not None
        self.dialer.finished(call_id, outcome)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--per-s", type=float, default=50.0)
    parser.add_argument(
        "--time-scale", type=float, default=0.05, help="ring and talk times are multiplied by this"
    )
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="hotline-dialer-bench-"))
    server = RedisServer(work / "redis", durable=False).start()
    redis = Redis.from_url(server.url)
    db_url = f"sqlite:///{work / 'hotline.db'}"
    upgrade(db_url)
    sessions = session_factory(engine_for(db_url))
    settings = DialerSettings(max_concurrent=args.concurrent, calls_per_s=args.per_s)
    clock = Clock(datetime(2026, 11, 30, 20, 59, 30, tzinfo=BJ))
    telephony = EmulatedTelephony(clock, settings, args.time_scale, rng)
    dialer = Dialer(redis, QueueKeys("main"), sessions, telephony, settings, now=clock)
    telephony.dialer = dialer

    numbers = [f"+86139{n:08d}" for n in range(int(args.items * 0.8))]  # some called twice
    with sessions() as db:
        items = []
        for n in range(args.items):
            kind = "callback" if n % 5 == 0 else "return_visit"
            items.append(dialer.plan(db, f"bench:{n}", kind, rng.choice(numbers), clock()))
        db.commit()
        for item in items:
            if item is not None:
                dialer.index(item)

    started = time.monotonic()
    jumped = False
    while True:
        dialer.run_once()
        local = clock()
        if not jumped and local.hour >= 21:
            clock.jump_to(datetime(2026, 12, 1, 7, 59, 50, tzinfo=BJ))  # the night passes
            jumped = True
        with sessions() as db:
            open_items = db.scalar(
                select(func.count(OutboundItem.id)).where(
                    OutboundItem.status.in_(("pending", "dialing"))
                )
            )
        if not open_items:
            break
        nxt = redis.zrange(QueueKeys("main").dial_due, 0, 0, withscores=True)
        if nxt:
            gap_s = float(nxt[0][1]) / 1000 - clock().timestamp()
            if gap_s > 0.25:  # everything waits for a retry time: skip ahead, as the night
                clock.jump_to(clock() + timedelta(seconds=gap_s - 0.1))
        time.sleep(0.01)
    wall_s = time.monotonic() - started
    with sessions() as db:
        statuses = dict(
            db.execute(
                select(OutboundItem.status, func.count()).group_by(OutboundItem.status)
            ).all()
        )
    server.stop()
    print(
        json.dumps(
            {
                "items": args.items,
                "limit_concurrent": args.concurrent,
                "limit_per_s": args.per_s,
                "max_concurrent": telephony.max_concurrent,
                "max_per_s_observed": max(telephony.per_second.values())
                if telephony.per_second
                else 0,
                "double_dials": telephony.double_dials,
                "outside_hours_calls": telephony.outside_hours,
                "calls": telephony.calls,
                # real seconds in which calls started: the dialer's own throughput
                "seconds_with_calls": len(telephony.per_second),
                "statuses": statuses,
                "wall_s": round(wall_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
