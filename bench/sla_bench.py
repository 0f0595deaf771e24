"""The dispatch clocks at scale: 100,000 open cases with live clocks (four timers each
in the Redis sorted set), a unit with 5,000 of them.

- ``sweep_ms_p99``: finding the due timers (the sweep's range query on the sorted set
  of all timers), over many sweeps while timers fall due.
- ``missed_timers``: timers not fired within one sweep interval (1 s) of their due time,
  while the reaper's sweep runs once a second for ``--seconds`` with cases falling due
  all along (the real sweep: SQL read, events and accountability rows written).
- ``inbox_ms_p99``: that unit's inbox (5,000 open cases, sorted by deadline, first page)
  rendered by the real app for a signed-in department user.

It prints one JSON object as its last line:
{"open_cases", "timers", "sweep_ms_p99", "inbox_ms_p99", "missed_timers", "fired", ...}

    .venv/bin/python bench/sla_bench.py --cases 100000 --unit-cases 5000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from calls import clocks  # noqa: E402
from cases.db import engine_for, session_factory, upgrade  # noqa: E402
from cases.models import Case, Category, Department  # noqa: E402
from cases.seed import seed  # noqa: E402
from cases.users import add_user  # noqa: E402
from hotline.config import load_settings  # noqa: E402
from hotline.redis_server import RedisServer  # noqa: E402
from queueing.keys import QueueKeys  # noqa: E402

PASSWORD = "bench password 12345"


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--unit-cases", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=20, help="how long the sweep runs")
    parser.add_argument(
        "--due-per-second", type=int, default=50, help="cases falling due each second"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hotline-sla-bench-"))
    server = RedisServer(work / "redis", durable=False).start()
    redis = Redis.from_url(server.url)
    keys = QueueKeys("main")
    db_url = f"sqlite:///{work / 'hotline.db'}"
    upgrade(db_url)
    sessions = session_factory(engine_for(db_url))
    with sessions() as db:
        seed(db)
        db.commit()
        units = list(db.scalars(select(Department.id)))
        busy = db.scalar(select(Department).where(Department.code == "urban-management"))
        add_user(db, "unit", "department", PASSWORD, department_code=busy.code)
        category = db.scalar(select(Category.id).where(Category.code == "street-vending"))
        busy_id = busy.id

    # 100,000 open cases dispatched over the last minutes, every timer still ahead; the
    # first args.seconds * due_per_second get their reminder (80 %) during the sweep run,
    # once setup is done (their deadlines are set then).
    now = datetime.now(UTC)
    window = args.seconds * args.due_per_second
    rows = []
    for i in range(args.cases):
        respond_by = now + timedelta(minutes=10 + (i % 25))
        dispatched = respond_by - timedelta(minutes=30)
        rows.append(
            {
                "number": f"12345-20261128-{i:06d}",
                "caller_phone": f"+86138{i:08d}",
                "caller_name": "",
                "channel": "asterisk",
                "address": "",
                "description": "bench",
                "urgency": "normal",
                "status": "dispatched",
                "created_at": dispatched,
                "updated_at": dispatched,
                "dispatched_at": dispatched,
                "respond_by": respond_by,
                "handle_by": dispatched + timedelta(days=18),
                "department_id": busy_id
                if i % (args.cases // args.unit_cases) == 0
                else units[i % len(units)],
                "category_id": category,
                "response_overdue": False,
                "handling_overdue": False,
                "reply": "",
            }
        )
    setup_started = time.monotonic()
    with sessions() as db:
        for start in range(0, len(rows), 5000):
            db.execute(insert(Case), rows[start : start + 5000])
        db.commit()
        for case in db.scalars(select(Case).execution_options(yield_per=2000)):
            clocks.sync_case(redis, keys, case)
        start = datetime.now(UTC) + timedelta(seconds=2)
        falling_due = list(db.scalars(select(Case).order_by(Case.id).limit(window)))
        for i, case in enumerate(falling_due):
            case.dispatched_at = (
                start - timedelta(minutes=24) + timedelta(seconds=i / args.due_per_second)
            )
            case.respond_by = case.dispatched_at + timedelta(minutes=30)
        db.commit()
        for case in falling_due:
            clocks.sync_case(redis, keys, case)
    setup_s = time.monotonic() - setup_started
    timers = redis.zcard(keys.clocks)

    # The reaper's loop: sweep once a second; note how late each timer fires.
    find_ms: list[float] = []
    missed = fired = 0
    lateness: list[float] = []
    deadline = time.monotonic() + args.seconds + 3
    while time.monotonic() < deadline:
        tick = time.monotonic()
        seconds, micros = redis.time()
        now_ms = seconds * 1000 + micros // 1000
        t0 = time.perf_counter()
        due = redis.zrangebyscore(keys.clocks, "-inf", now_ms, withscores=True, start=0, num=500)
        find_ms.append((time.perf_counter() - t0) * 1000)
        counts = clocks.sweep(sessions, redis, keys)
        fired += counts["reminder"] + counts["overdue"]
        for _member, score in due:
            late_s = (now_ms - score) / 1000
            lateness.append(late_s)
            missed += late_s > 1.0
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))

    # A unit's inbox, rendered by the real app.
    from hotline.webapp import create_app

    settings = load_settings(
        {
            "HOTLINE_VAR_DIR": str(work),
            "DATABASE_URL": db_url,
            "REDIS_URL": server.url,
            "HOTLINE_SECRET_KEY": "bench",
        }
    )
    app = create_app(
        {"SETTINGS": settings, "REDIS": redis, "TESTING": True, "WTF_CSRF_ENABLED": False}
    )
    client = app.test_client()
    client.post("/login", data={"username": "unit", "password": PASSWORD})
    inbox_ms = []
    for _ in range(40):
        t0 = time.perf_counter()
        response = client.get("/portal/")
        inbox_ms.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.status_code
    with sessions() as db:
        unit_open = db.query(Case).filter(Case.department_id == busy_id).count()
    server.stop()
    print(
        json.dumps(
            {
                "open_cases": args.cases,
                "timers": timers,
                "unit_open_cases": unit_open,
                "setup_s": round(setup_s, 1),
                "sweeps": len(find_ms),
                "sweep_ms_p50": round(statistics.median(find_ms), 2),
                "sweep_ms_p99": p99(find_ms),
                "fired": fired,
                "lateness_s_max": round(max(lateness), 3) if lateness else None,
                "missed_timers": missed,
                "inbox_ms_p50": round(statistics.median(inbox_ms), 1),
                "inbox_ms_p99": p99(inbox_ms),
            }
        )
    )


if __name__ == "__main__":
    main()
