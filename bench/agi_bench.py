"""Asterisk benchmark: N emulated channels hold in the queue (in the dialplan, as
docker/asterisk/extensions.conf does), then seats are freed. Measures the time from each
seat offer (the queue's OFFER event, Redis server time) to the moment the emulated
Asterisk receives the EXEC Dial line for that caller, the FastAGI server's resident
memory at its peak, and lost calls.

The server runs as its own process (`hotline agi serve`, with the AMI redirector); the
emulated Asterisk (FastAGI client, dialplan, AMI server) runs in this one.

    .venv/bin/python bench/agi_bench.py --calls 2000 --seats 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis  # noqa: E402

from hotline.config import load_settings  # noqa: E402
from hotline.redis_server import RedisServer, free_port  # noqa: E402
from queueing import CallQueue  # noqa: E402
from queueing.audit import audit_event_log  # noqa: E402
from queueing.events import read_events  # noqa: E402
from tests.asterisk_emulator import AmiServer, AsteriskEmulator, Operator  # noqa: E402

AMI_USER, AMI_SECRET = "hotline", "bench-secret"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seats", type=int, default=50)
    # 50 seats x 2 s talks: ~25 offers a second, some 2 million calls a day's worth, far
    # above Hangzhou's record 87,000 while 2,000 callers hold.
    parser.add_argument("--talk-s", type=float, default=2.0)
    parser.add_argument("--stagger-s", type=float, default=0.02, help="0: all seats at once")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="agi-bench-"))
    redis_server = RedisServer(work / "redis").start()
    agi_port = free_port()
    dials: dict[str, float] = {}
    dial_lock = threading.Lock()

    def on_dial(uniqueid: str, at: float) -> None:
        with dial_lock:
            dials.setdefault("ast-" + uniqueid, at)

    operators = {
        f"s{n}": Operator(f"s{n}", answer_after_s=0.05, talk_s=args.talk_s)
        for n in range(args.seats)
    }
    emulator = AsteriskEmulator(agi_port, operators, lambda *_: None, hold_s=30.0, on_dial=on_dial)
    ami = AmiServer(emulator, AMI_USER, AMI_SECRET)
    threading.Thread(target=ami.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "HOTLINE_VAR_DIR": str(work),
        "DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
        "HOTLINE_WRAPUP_S": "0",
        "HOTLINE_SEAT_TTL_S": "3600",
        "ASTERISK_AMI_HOST": "127.0.0.1",
        "ASTERISK_AMI_PORT": str(ami.port),
        "ASTERISK_AMI_USERNAME": AMI_USER,
        "ASTERISK_AMI_SECRET": AMI_SECRET,
        "HOTLINE_OFFER_TIMEOUT_S": "20",
    }
    hotline = str(Path(sys.executable).with_name("hotline"))
    subprocess.run([hotline, "db", "upgrade"], env=env, check=True, capture_output=True)
    queue = CallQueue(Redis.from_url(redis_server.url), load_settings(env).queue)
    for seat in operators:
        queue.seat_login(seat)
        queue.seat_state(seat, "paused", "not yet")
    server = subprocess.Popen(
        [hotline, "--log-level", "WARNING", "agi", "serve", "--port", str(agi_port)], env=env
    )
    peak_rss = 0.0
    try:
        time.sleep(1.5)
        channels = []
        for n in range(args.calls):  # arriving over a few seconds
            channel = emulator.call(f"139{n:08d}")
            channels.append(channel)
            threading.Timer(0.3, channel.press, args=("9",)).start()  # skip the menu
            time.sleep(0.004)
        deadline = time.monotonic() + 120
        while True:  # wait until every caller holds in the dialplan
            holding = sum(
                1 for c in channels if not c.in_agi and c.variables.get("HOTLINE_NEXT") == "hold"
            )
            peak_rss = max(peak_rss, rss_mb(server.pid))
            if holding == args.calls or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        print(f"{holding} callers holding in the dialplan; freeing seats", file=sys.stderr)
        freed_at = time.monotonic()
        for seat in operators:  # operators come free one after another, not all at once
            queue.seat_state(seat, "available")
            time.sleep(args.stagger_s)
        deadline = time.monotonic() + 300
        # Cheap checks only: this loop must not compete with the system it measures.
        while queue.redis.zcard(queue.keys.live_calls) or not all(
            c.done.is_set() for c in channels
        ):
            peak_rss = max(peak_rss, rss_mb(server.pid))
            queue.tick()
            if time.monotonic() > deadline:
                print("timed out waiting for calls to finish", file=sys.stderr)
                break
            time.sleep(0.1)
        peak_rss = max(peak_rss, rss_mb(server.pid))
        drain_s = time.monotonic() - freed_at
    finally:
        server.terminate()
        server.wait(timeout=30)
    offers = {
        e["call"]: int(e["ts"]) / 1000
        for _, e in read_events(queue.redis, queue.keys)
        if e["type"] == "OFFER"
    }
    latencies = sorted((dials[c] - t) * 1000 for c, t in offers.items() if c in dials)
    channel_call = {ch.name: "ast-" + ch.uniqueid for ch in channels}
    redirected = {
        channel_call[a["Channel"]]: float(a["_received"])
        for a in ami.actions
        if a.get("Action") == "Redirect" and a.get("Channel") in channel_call
    }
    to_redirect = sorted((redirected[c] - t) * 1000 for c, t in offers.items() if c in redirected)
    redirect_to_dial = sorted((dials[c] - t) * 1000 for c, t in redirected.items() if c in dials)
    if redirect_to_dial:
        print(
            f"redirect->dial ms p50 {statistics.median(redirect_to_dial):.1f} "
            f"p99 {redirect_to_dial[int(len(redirect_to_dial) * 0.99)]:.1f}; "
            f"not redirected: {len(offers) - len(redirected)}",
            file=sys.stderr,
        )
    audit = audit_event_log(queue.redis, queue.keys)
    redis_server.stop()
    ami.shutdown()
    result = {
        "concurrent_calls": holding,
        "dialled": len(latencies),
        "offer_to_dial_ms_p50": round(statistics.median(latencies), 2) if latencies else None,
        "offer_to_dial_ms_p99": round(latencies[int(len(latencies) * 0.99)], 2)
        if latencies
        else None,
        "offer_to_dial_ms_max": round(latencies[-1], 2) if latencies else None,
        "offer_to_redirect_ms_p50": round(statistics.median(to_redirect), 2)
        if to_redirect
        else None,
        "offer_to_redirect_ms_p99": round(to_redirect[int(len(to_redirect) * 0.99)], 2)
        if to_redirect
        else None,
        "offers_per_s": round(len(offers) / drain_s, 1),
        "seats": args.seats,
        "seat_stagger_s": args.stagger_s,
        "server_rss_mb": round(peak_rss, 1),
        "lost_calls": audit.lost_calls + audit.live,
        "double_assignments": audit.double_assignments,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
