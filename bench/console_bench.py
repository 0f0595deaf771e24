"""Screen pops under load: N operator consoles and W wallboards hold their live streams
(Server-Sent Events) open on the real push process (``hotline push``), beside the real
web command (gunicorn, gthread), while a burst of calls runs through the real flow and
queue and is offered to their seats.

Pop latency is measured per call from the moment the bench starts the call (the offer
is made inside that step, so this includes the flow, the queue script and the offer)
to the moment the console holds the pop naming that call: the push process's ``pop``
signal, then the console's GET of the pop fragment from the web. Errors: a stream
that fails or closes, a sign-in or seat login refused, a pop that never comes (10 s).

It prints one JSON object as its last line:
{"consoles", "wallboards", "offers", "pop_latency_ms_p50", "pop_latency_ms_p99",
 "wallboard_updates", "errors"}

    .venv/bin/python bench/console_bench.py --consoles 300 --wallboards 10
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotline.config import load_settings  # noqa: E402
from hotline.redis_server import RedisServer, free_port  # noqa: E402
from hotline.runtime import call_handler, call_queue  # noqa: E402

PASSWORD = "bench password 12345"


class Browser:
    """One signed-in browser session over plain HTTP/1.1, cookies kept by hand."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(self, method: str, path: str, body: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["X-CSRFToken"] = self.csrf
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        text = response.read().decode()
        conn.close()
        token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', text)
        if token:
            self.csrf = token.group(1)
        return response.status, text

    def sign_in(self, username: str) -> None:
        self.request("GET", "/login")
        status, _ = self.request(
            "POST", "/login", {"username": username, "password": PASSWORD, "csrf_token": self.csrf}
        )
        if status != 302:
            raise RuntimeError(f"sign-in refused: {status}")
        self.request("GET", "/login")  # a CSRF token of the signed-in session

    def stream(self, port: int, path: str, on_event, stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "Accept": "text/event-stream",
        }
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"stream {path}: {response.status}")
        event, data = "", []
        while not stop.is_set():
            line = response.fp.readline()
            if not line:
                raise RuntimeError(f"stream {path} closed")
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "":
                if event:
                    on_event(event, "\n".join(data), time.monotonic())
                event, data = "", []
        conn.close()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--consoles", type=int, default=300)
    parser.add_argument("--wallboards", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn processes")
    args = parser.parse_args()

    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user

    work = Path(tempfile.mkdtemp(prefix="hotline-console-bench-"))
    redis_server = RedisServer(work / "redis", durable=False).start()
    db_url = f"sqlite:///{work / 'hotline.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as db:
        seed(db)
        # One person, one seat (calls.desk): an operator for each console.
        for n in range(args.consoles):
            add_user(db, f"op{n}", "operator", PASSWORD)
        add_user(db, "boss", "supervisor", PASSWORD)
        db.commit()
    port, push_port = free_port(), free_port()
    env = {
        **os.environ,
        "HOTLINE_VAR_DIR": str(work),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_server.url,
        "HOTLINE_SECRET_KEY": "bench",
        "HOTLINE_WEB_PORT": str(port),
        "HOTLINE_PUSH_PORT": str(push_port),
        "HOTLINE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "HOTLINE_WRAPUP_S": "0",
    }
    threads = 32  # the streams hold no web thread: they are the push process's
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hotline.cli",
            "web",
            "--workers",
            str(args.workers),
            "--threads",
            str(threads),
        ],
        cwd=ROOT,
        env=env,
        stdout=open(work / "web.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    push = subprocess.Popen(
        [sys.executable, "-m", "hotline.cli", "push"],
        cwd=ROOT,
        env=env,
        stdout=open(work / "push.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    stop = threading.Event()
    errors: list[str] = []
    pops: dict[str, float] = {}
    board_updates = [0]
    lock = threading.Lock()
    try:
        deadline = time.monotonic() + 30
        for serving in (port, push_port):
            while True:
                try:
                    probe = http.client.HTTPConnection("127.0.0.1", serving, timeout=1)
                    probe.request("GET", "/healthz")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

        def on_console_event(browser: Browser, event: str, data: str, at: float) -> None:
            if event == "pop" and data:
                status, text = browser.request("GET", f"/console/calls/{data}/pop")
                found = re.search(r'data-call="([^"]+)"', text)
                if status == 200 and found:
                    with lock:
                        pops.setdefault(found.group(1), time.monotonic())
                else:
                    errors.append(f"pop fragment {data}: {status}")

        def on_board_event(event: str, data: str, at: float) -> None:
            if event == "board":
                with lock:
                    board_updates[0] += 1

        def run_stream(browser: Browser, path: str, handler) -> None:  # type: ignore[no-untyped-def]
            try:
                browser.stream(push_port, path, handler, stop)
            except Exception as exc:  # noqa: BLE001
                if not stop.is_set():
                    errors.append(f"{path}: {exc}")

        seats = [f"{2000 + n}" for n in range(args.consoles)]
        streams: list[threading.Thread] = []
        for n, seat in enumerate(seats):
            browser = Browser(port)
            try:
                browser.sign_in(f"op{n}")
                status, _ = browser.request(
                    "POST", "/console/seat/login", {"seat": seat, "skills": "mandarin"}
                )
                if status != 204:
                    raise RuntimeError(f"seat login {seat}: {status}")
            except Exception as exc:  # noqa: BLE001
                errors.append(str(exc))
                continue
            console = functools.partial(on_console_event, browser)
            t = threading.Thread(
                target=run_stream, args=(browser, "/console/events", console), daemon=True
            )
            t.start()
            streams.append(t)
        for _ in range(args.wallboards):
            browser = Browser(port)
            browser.sign_in("boss")
            t = threading.Thread(
                target=run_stream,
                args=(browser, "/console/wallboard/events", on_board_event),
                daemon=True,
            )
            t.start()
            streams.append(t)
        time.sleep(3)  # every stream open and past its first draw

        settings = load_settings(env)
        handler = call_handler(settings, call_queue(settings))

        def burst(prefix: str) -> tuple[dict[str, float], float]:
            started: dict[str, float] = {}
            at = time.monotonic()
            for n in range(len(seats)):
                call = f"{prefix}-{n:05d}"
                started[call] = time.monotonic()
                handler.start(call, f"1390000{n:04d}", "12345", "asterisk", time.time())
            spent = time.monotonic() - at
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not all(c in pops for c in started):
                time.sleep(0.05)
            return started, spent

        # A first burst warms each process (templates compiled, database connections
        # open, reference data read), as the first calls of a shift do; its calls are
        # then answered and ended, and the seats are free again.
        warm, _ = burst("warm")
        for call in warm:
            record = handler.queue.call(call)
            if record.get("seat"):
                handler.seat_answered(call, record["seat"], time.time())
            handler.caller_gone(call)
        time.sleep(1.0)
        started, burst_s = burst("bench")
        time.sleep(1.5)
        missing = [c for c in started if c not in pops]
        if missing:
            errors.append(f"{len(missing)} pops never came, e.g. {missing[:3]}")
        latencies = [(pops[c] - started[c]) * 1000 for c in started if c in pops]
        result = {
            "consoles": len(seats),
            "wallboards": args.wallboards,
            "offers": len(started),
            "burst_s": round(burst_s, 2),
            "pop_latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
            "pop_latency_ms_p99": percentile(latencies, 0.99),
            "wallboard_updates": board_updates[0],
            "errors": len(errors),
        }
        for line in errors[:10]:
            print("error:", line)
        print(json.dumps(result))
    finally:
        stop.set()
        web.terminate()
        web.wait(timeout=20)
        push.terminate()
        push.wait(timeout=20)
        redis_server.stop()


if __name__ == "__main__":
    main()
