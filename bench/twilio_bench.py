"""Twilio wait-URL benchmark: N callers waiting in the queue, each polling /twilio/wait
as Twilio does (a new signed POST whenever the wait TwiML ends), against the app served
by gunicorn on loopback with its own redis-server and SQLite.

    .venv/bin/python bench/twilio_bench.py --callers 1000 --seconds 20

Prints progress to stderr and one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from hotline.config import load_settings  # noqa: E402
from hotline.redis_server import RedisServer, free_port  # noqa: E402
from queueing import CallQueue  # noqa: E402

TOKEN = "bench-token"
BASE = "https://hotline.example.org"


def call_sid(n: int) -> str:
    return "CA" + f"{n:032x}"


async def post(
    port: int, path: str, params: dict[str, str], validator: RequestValidator
) -> tuple[int, bytes]:
    body = urlencode(params).encode()
    signature = validator.compute_signature(BASE + path, params)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: hotline.example.org\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {signature}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        + body
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, payload


async def caller(
    n: int, port: int, until: float, validator, latencies, errors, clip_s: float
) -> None:  # type: ignore[no-untyped-def]
    params = {
        "CallSid": call_sid(n),
        "From": f"+86138{n:08d}",
        "To": "+8612345",
        "QueuePosition": "1",
        "QueueTime": "10",
        "AvgQueueTime": "30",
        "CurrentQueueSize": "1000",
        "AccountSid": "AC" + "0" * 32,
    }
    await asyncio.sleep((n % 500) / 50)  # callers did not all arrive at once
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            status, payload = await post(port, "/twilio/wait", params, validator)
            latencies.append((time.perf_counter() - start) * 1000)
            root = ET.fromstring(payload)
            if status != 200 or root.tag != "Response" or len(root) == 0:
                errors.append(f"{status} {payload[:80]!r}")
                await asyncio.sleep(1)
                continue
            for verb in root:  # play the wait TwiML as Twilio would, then ask again
                if verb.tag == "Play":
                    await asyncio.sleep(clip_s)
                elif verb.tag == "Pause":
                    await asyncio.sleep(float(verb.get("length", "1")))
                elif verb.tag == "Gather":  # the callback offer: the caller stays silent
                    await asyncio.sleep(float(verb.get("timeout", "5")))
                    path = verb.get("action").removeprefix(BASE)
                    await post(port, path, {**params, "Digits": ""}, validator)
        except Exception as exc:  # noqa: BLE001 - every failure counts as an error
            errors.append(repr(exc))
            await asyncio.sleep(1)


async def drive(
    callers: int, port: int, seconds: float, clip_s: float
) -> tuple[list[float], list[str]]:
    validator = RequestValidator(TOKEN)
    latencies: list[float] = []
    errors: list[str] = []
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(caller(n, port, until, validator, latencies, errors, clip_s) for n in range(callers))
    )
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="twilio-bench-"))
    redis_server = RedisServer(work / "redis").start()
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "HOTLINE_VAR_DIR": str(work),
        "DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PUBLIC_BASE_URL": BASE,
        "HOTLINE_SECRET_KEY": "bench",
        "HOTLINE_WEB_PORT": str(port),
        "HOTLINE_SEAT_TTL_S": "3600",
    }
    hotline = str(Path(sys.executable).with_name("hotline"))
    subprocess.run([hotline, "db", "upgrade"], env=env, check=True, capture_output=True)
    from hotline.prompt_audio import duration_s, render_hold_music

    clip_s = duration_s(render_hold_music(work / "sounds"))  # as `hotline run` renders it
    # The callers are queued behind busy operators, as the webhooks would have queued them.
    queue = CallQueue(Redis.from_url(redis_server.url), load_settings(env).queue)
    for n in range(20):
        queue.seat_login(f"seat{n}")
        queue.seat_state(f"seat{n}", "paused", "on another call")
    server = subprocess.Popen(
        [hotline, "web", "--workers", str(args.workers), "--threads", str(args.threads)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        validator = RequestValidator(TOKEN)

        async def setup() -> None:
            for n in range(args.callers):  # each caller: /voice, then two silent menus
                base = {"CallSid": call_sid(n), "From": f"+86138{n:08d}", "To": "+8612345"}
                await post(port, "/twilio/voice", base, validator)
                for _ in range(2):
                    await post(port, "/twilio/gather", {**base, "Digits": ""}, validator)

        asyncio.run(setup())
        waiting = sum(1 for c in queue.status()["calls"] if c["state"] == "waiting")
        print(f"{waiting} callers waiting; polling for {args.seconds}s", file=sys.stderr)
        latencies, errors = asyncio.run(drive(args.callers, port, args.seconds, clip_s))
    finally:
        server.terminate()
        server.wait(timeout=30)
        redis_server.stop()
    latencies.sort()
    result = {
        "concurrent_callers": waiting,
        "wait_requests": len(latencies),
        "wait_requests_per_s": round(len(latencies) / args.seconds, 1),
        "wait_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "wait_p99_ms": round(latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
        "errors": len(errors),
        "gunicorn": f"{args.workers} workers x {args.threads} threads",
        "hold_clip_s": round(clip_s, 1),
    }
    if errors:
        print("first errors:", errors[:3], file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
