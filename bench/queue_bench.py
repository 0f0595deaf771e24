"""Queue benchmark: N calls through enqueue -> offer -> connect -> complete against M
seats, compared with raw PING round trips measured in the same run.

Starts its own redis-server (append-only, as in production) unless REDIS_URL is set.
Runs several rounds, interleaving the PING and lifecycle measurements, and reports
medians. The last line printed is one JSON object.

    .venv/bin/python bench/queue_bench.py --calls 20000 --seats 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis  # noqa: E402

from hotline.redis_server import RedisServer  # noqa: E402
from queueing import CallQueue, Offer  # noqa: E402
from queueing.audit import audit_event_log  # noqa: E402
from queueing.settings import QueueSettings  # noqa: E402


def ping_rate(client: Redis, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        client.ping()
    return n / (time.perf_counter() - start)


def lifecycle_round(
    client: Redis, round_no: int, calls: int, seats: int
) -> tuple[float, list[float], CallQueue]:
    """Lifecycles per second, latencies (ms) of the transitions that matched, the queue."""
    client.flushall()
    queue = CallQueue(client, QueueSettings(name=f"bench{round_no}", wrapup_s=0.0))
    for n in range(seats):
        queue.seat_login(f"seat{n}")
    pending: deque[Offer] = deque()
    latencies: list[float] = []

    def timed(fn, *args) -> None:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        transition = fn(*args)
        elapsed = (time.perf_counter() - t0) * 1000
        if transition.offers:
            latencies.append(elapsed)
            pending.extend(transition.offers)

    start = time.perf_counter()
    for n in range(calls):
        timed(queue.enqueue, f"call{n}")
        if pending:  # steady state: one call in, one call handled
            offer = pending.popleft()
            queue.answer(offer.call_id, offer.seat_id)
            timed(queue.complete, offer.call_id)
    while pending:
        offer = pending.popleft()
        queue.answer(offer.call_id, offer.seat_id)
        timed(queue.complete, offer.call_id)
    rate = calls / (time.perf_counter() - start)
    return rate, latencies, queue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--seats", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = RedisServer(Path(tempfile.mkdtemp(prefix="queue-bench-"))).start()
        url = server.url
    try:
        client = Redis.from_url(url)
        pings, rates, all_latencies = [], [], []
        doubles = lost = 0
        for r in range(args.rounds):
            pings.append(ping_rate(client, args.calls))
            rate, latencies, queue = lifecycle_round(client, r, args.calls, args.seats)
            rates.append(rate)
            all_latencies.extend(latencies)
            audit = audit_event_log(client, queue.keys)
            doubles += audit.double_assignments
            lost += audit.lost_calls + audit.live
            print(f"round {r}: ping/s {pings[-1]:.0f}, lifecycles/s {rate:.0f}", file=sys.stderr)
    finally:
        if server:
            server.stop()

    all_latencies.sort()
    ping = statistics.median(pings)
    rate = statistics.median(rates)
    result = {
        "calls": args.calls,
        "seats": args.seats,
        "rounds": args.rounds,
        "ping_per_s": round(ping),
        "lifecycles_per_s": round(rate),
        "lifecycle_to_ping_ratio": round(rate / ping, 3),
        "match_latency_ms_p50": round(all_latencies[len(all_latencies) // 2], 3),
        "match_latency_ms_p99": round(all_latencies[int(len(all_latencies) * 0.99)], 3),
        "double_assignments": doubles,
        "lost_calls": lost,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
