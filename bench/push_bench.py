"""Live screens on the push process under load (issue 18): 1,000 operator consoles and
20 wallboards hold their streams open on ONE push process (``hotline push``, uvicorn),
100 anonymous connections hold half a request header against the front proxy (Debian's
nginx, rendered from docker/nginx's template, when installed), and a burst of calls is
offered to the consoles' seats while signed Twilio webhooks are answered by the web
(gunicorn, bounded threads).

Everything goes through the proxy as in production when nginx is installed (streams to
the push process, pages and fragments to the web, webhooks to the webhook processes);
without it, streams go to the push port, webhooks to the webhook processes' port and
the rest to the web, and ``slow_clients`` is 0.

``--split`` (the default, as compose runs it): Twilio's webhooks have their own
gunicorn process(es) (``hotline web --only twilio``, ``--hook-workers``) beside the
``--web-workers`` page processes; ``--no-split`` sends them to the page processes, as
before, to compare in one sitting.

- pop latency: from starting the call (the queue offers it inside that step) to the
  console holding the pop fragment, i.e. the ``pop`` signal on the stream plus the
  console's GET of ``/console/calls/<id>/pop`` from the web;
- webhook latency: a signed ``/twilio/voice`` POST (a new call's TwiML), sent during
  the burst at the same rate as the calls, by a process of its own (as Twilio is
  another machine: this one's event loop, busy with 1,020 streams, would add its own
  delays to the figure);
- errors: a stream refused or closed, a fragment or webhook that is not 200, a pop that
  never comes (10 s).

``--warmup`` calls (and webhooks) go first, unmeasured, as a shift's first calls do:
each web process's first pop and webhook pay for what a process does once.

The consoles' sessions are made as a sign-in makes them (a server-side session record,
the signed cookie, Flask-Login's identifier), not by 1,000 scrypt sign-ins; one console
signs in over HTTP to check that path.

It prints one JSON object as its last line:
{"consoles", "wallboards", "slow_clients", "calls", "warmup_calls", "split", "web_workers",
 "hook_workers", "pop_latency_ms_p50", "pop_latency_ms_p99", "webhook_ms_p50",
 "webhook_ms_p99", "board_fetches", "errors", "load_average" (1, 5, 15 min, at the end)}

    .venv/bin/python bench/push_bench.py --consoles 1000 --wallboards 20 --calls 300
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import json
import multiprocessing
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotline.config import load_settings  # noqa: E402
from hotline.redis_server import RedisServer, free_port  # noqa: E402
from hotline.runtime import call_handler, call_queue  # noqa: E402

PASSWORD = "bench password 12345"
SECRET = "push-bench"
AUTH_TOKEN = "bench-twilio-token"
PUBLIC_BASE = "http://hotline.bench"
USER_AGENT = "push-bench"
NGINX = Path("/usr/sbin/nginx")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1)


def wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def forged_cookies(secret: str, sessions: list[dict[str, object]]) -> list[str]:
    """The session cookies a sign-in would set (Flask's own serializer and salt)."""
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    app = Flask("bench")
    app.secret_key = secret
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    assert serializer is not None
    # Flask-Login's "strong" protection: sha512 of the client's address and agent.
    # (flask_login.utils._create_identifier: both as bytes, formatted.)
    ident = hashlib.sha512(f"{b'127.0.0.1'}|{USER_AGENT.encode()}".encode()).hexdigest()
    return [serializer.dumps({**s, "_id": ident, "_fresh": True}) for s in sessions]


async def http_get(port: int, path: str, cookie: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: hotline\r\nUser-Agent: {USER_AGENT}\r\n"
                f"Cookie: session={cookie}\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body


class Bench:
    def __init__(self, stream_port: int, web_port: int) -> None:
        self.stream_port, self.web_port = stream_port, web_port
        self.errors: list[str] = []
        self.started: dict[str, float] = {}  # call id -> when the bench started it
        self.popped: dict[str, float] = {}  # call id -> when its console held the pop
        self.opened = 0
        self.board_fetches = 0
        self.all_open = asyncio.Event()
        self.expected = 0
        self.stop = asyncio.Event()
        self.signals: dict[str, list[str]] = {}  # seat -> the signals its console got

    def error(self, what: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(what)
        else:
            self.errors.append("…")

    async def stream(self, path: str, cookie: str, kind: str, seat: str = "") -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.stream_port)
        except OSError as exc:
            self.error(f"{kind}: connect {exc}")
            return
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: hotline\r\nUser-Agent: {USER_AGENT}\r\n"
                f"Accept: text/event-stream\r\nCookie: session={cookie}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            self.error(f"{kind}: {status.decode().strip()}")
            writer.close()
            return
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        self.opened += 1
        if self.opened == self.expected:
            self.all_open.set()
        event = ""
        fetches: set[asyncio.Task[None]] = set()
        try:
            while not self.stop.is_set():
                line = (await reader.readline()).decode()
                if not line:
                    if not self.stop.is_set():
                        self.error(f"{kind}: stream closed")
                    return
                line = line.strip()
                # chunked framing: size lines are hex, data lines start with a field
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data:") and event:
                    data = line[5:].strip()
                    if seat:
                        self.signals.setdefault(seat, []).append(f"{event} {data}")
                    task = asyncio.create_task(self.on_signal(kind, event, data, cookie))
                    fetches.add(task)
                    task.add_done_callback(fetches.discard)
                    event = ""
        finally:
            writer.close()

    async def on_signal(self, kind: str, event: str, data: str, cookie: str) -> None:
        try:
            await self.fetch(kind, event, data, cookie)
        except Exception as exc:  # noqa: BLE001 - a failed fetch is an error, not silence
            self.error(f"{event} {data}: {exc!r}")

    async def fetch(self, kind: str, event: str, data: str, cookie: str) -> None:
        if event == "pop":
            status, body = await http_get(
                self.web_port, f"/console/calls/{urllib.parse.quote(data)}/pop", cookie
            )
            if status != 200 or data.encode() not in body:
                self.error(f"pop fragment {data}: {status}")
                return
            self.popped.setdefault(data, time.monotonic())
        elif event == "seat" and self.all_open.is_set():
            status, _ = await http_get(self.web_port, "/console/seat", cookie)
            if status != 200:
                self.error(f"seat panel: {status}")
        elif event == "board":
            status, _ = await http_get(
                self.web_port, f"/console/wallboard/board?seen={data}", cookie
            )
            self.board_fetches += 1
            if status != 200:
                self.error(f"board: {status}")
        elif event == "gone":
            self.error(f"{kind}: gone")


def start_nginx(
    work: Path, web_port: int, push_port: int, hooks_port: int
) -> tuple[subprocess.Popen[bytes], int]:
    state = work / "nginx"
    state.mkdir()
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "NGINX_LISTEN": f"127.0.0.1:{port}",
        "NGINX_WEB_SERVERS": f"127.0.0.1:{web_port}",
        "NGINX_PUSH_SERVERS": f"127.0.0.1:{push_port}",
        "NGINX_HOOKS_SERVERS": f"127.0.0.1:{hooks_port}",
        "NGINX_STATE_DIR": str(state),
        "NGINX_ACCESS_LOG": "/dev/null",
        "NGINX_ERROR_LOG": str(state / "error.log"),
        "NGINX_USER": getpass.getuser(),
    }
    conf = state / "nginx.conf"
    template = ROOT / "docker" / "nginx"
    subprocess.run(
        ["sh", str(template / "render-nginx.sh"), str(template / "nginx.conf.template"), str(conf)],
        env=env,
        check=True,
    )
    argv = [str(NGINX), "-e", str(state / "error.log"), "-p", str(state), "-c", str(conf)]
    process = subprocess.Popen([*argv, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, port


def twilio_sender(
    port: int,
    todo: multiprocessing.Queue[tuple[int, bool] | None],
    done: multiprocessing.Queue[tuple[int, bool, int, float]],
) -> None:
    """Twilio, in a process of its own: each webhook asked for on ``todo`` is a signed
    ``/twilio/voice`` POST on a new connection, timed from before connecting to the
    whole answer, its (n, measured, status, ms) put on ``done``."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)

    def send(n: int, measured: bool) -> None:
        params = {
            "CallSid": f"CA{n:032d}",
            "From": f"+86139{n:08d}",
            "To": "+8612345",
            "CallStatus": "ringing",
            "AccountSid": "AC" + "0" * 32,
            "Direction": "inbound",
        }
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": validator.compute_signature(
                PUBLIC_BASE + "/twilio/voice", params
            ),
            "Connection": "close",
        }
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            conn.request("POST", "/twilio/voice", urllib.parse.urlencode(params), headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except OSError:
            status = 0
        finally:
            conn.close()
        done.put((n, measured, status, (time.monotonic() - started) * 1000))

    with ThreadPoolExecutor(32) as pool:
        while (item := todo.get()) is not None:
            pool.submit(send, *item)


async def hold_slow_clients(port: int, count: int) -> list[asyncio.StreamWriter]:
    held = []
    for n in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /healthz?slow={n} HTTP/1.1\r\nHost: hotline\r\nX-Pad: ".encode())
        await writer.drain()
        held.append(writer)
    return held


async def run(  # type: ignore[no-untyped-def]
    args: argparse.Namespace, ports: dict[str, int], cookies: list[str], handler
) -> dict[str, object]:
    bench = Bench(ports["stream"], ports["web"])
    bench.expected = args.consoles + args.wallboards
    streams = [
        asyncio.create_task(bench.stream("/console/events", cookie, "console", f"{2000 + n}"))
        for n, cookie in enumerate(cookies[: args.consoles])
    ]
    streams += [
        asyncio.create_task(bench.stream("/console/wallboard/events", cookies[-1], "wallboard"))
        for _ in range(args.wallboards)
    ]
    try:
        await asyncio.wait_for(bench.all_open.wait(), 120)
    except TimeoutError:
        bench.error(f"only {bench.opened} of {bench.expected} streams opened")
    slow = await hold_slow_clients(ports["proxy"], args.slow_clients) if ports["proxy"] else []
    await asyncio.sleep(3)  # the opening seat panels and boards settle

    # Twilio is another machine: its webhooks are sent and timed by a process of their
    # own, not by this event loop, which is busy reading 1,020 streams and the boards.
    spawn = multiprocessing.get_context("spawn")
    todo: multiprocessing.Queue[tuple[int, bool] | None] = spawn.Queue()
    done: multiprocessing.Queue[tuple[int, bool, int, float]] = spawn.Queue()
    twilio = spawn.Process(target=twilio_sender, args=(ports["hooks"], todo, done), daemon=True)
    twilio.start()
    webhook_ms: list[float] = []

    def webhook(n: int, measured: bool = True) -> None:
        todo.put((n, measured))

    def webhooks_answered(count: int) -> None:
        for _ in range(count):
            try:
                _, measured, status, ms = done.get(timeout=30)
            except queue.Empty:
                bench.error("webhook: no answer in 30 s")
                return
            if measured:
                webhook_ms.append(ms)
            if status != 200:
                bench.error(f"webhook: {status}")

    def start_call(n: int, call: str, started: dict[str, float]) -> None:
        started[call] = time.monotonic()
        handler.start(call, f"+86138{n:08d}", "12345", "asterisk", time.time())

    gap = 1.0 / args.rate
    # Warm-up, as a shift's first calls: each web process's first pop and webhook pay
    # for what a process does once (the case form's catalogue, first queries); the
    # burst measures processes that have served calls, as a live hall's have.
    warm: dict[str, float] = {}
    for n in range(args.calls, args.calls + args.warmup):
        await asyncio.to_thread(start_call, n, f"warm-{n}", warm)
        webhook(n, measured=False)
        await asyncio.sleep(gap)
    await asyncio.to_thread(webhooks_answered, args.warmup)
    deadline = time.monotonic() + 10
    while any(c not in bench.popped for c in warm) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)

    for n in range(args.calls):
        await asyncio.to_thread(start_call, n, f"burst-{n}", bench.started)
        webhook(n)
        await asyncio.sleep(gap)
    await asyncio.to_thread(webhooks_answered, args.calls)
    todo.put(None)
    twilio.join(10)
    # Wait for the burst's own pops: the webhooks start calls too, and their pops must
    # not count towards the burst's (counting them let the wait end with a burst pop
    # still in flight, reported as lost).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        missing = [c for c in bench.started if c not in bench.popped]
        if not missing:
            break
        await asyncio.sleep(0.1)
    for call in missing[:10]:
        record = await asyncio.to_thread(handler.queue.call, call)
        seat = record.get("seat", "")
        seat_state = (await asyncio.to_thread(handler.queue.seat, seat))["state"] if seat else ""
        bench.error(
            f"no pop for {call} (call {record.get('state', 'unknown')}, seat {seat or '-'}"
            f" {seat_state}, signals {bench.signals.get(seat, [])[-4:]})"
        )
    if len(missing) > 10:
        bench.error(f"… {len(missing)} pops missing in all")
    bench.stop.set()
    for task in streams:
        task.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    for writer in slow:
        writer.close()
    popped = bench.popped
    latencies = [(popped[c] - t) * 1000 for c, t in bench.started.items() if c in popped]
    return {
        "consoles": args.consoles,
        "wallboards": args.wallboards,
        "slow_clients": len(slow),
        "calls": args.calls,
        "warmup_calls": args.warmup,
        "split": args.split,
        "web_workers": args.web_workers,
        "hook_workers": args.hook_workers if args.split else 0,
        "pop_latency_ms_p50": percentile(latencies, 0.50),
        "pop_latency_ms_p99": percentile(latencies, 0.99),
        "webhook_ms_p50": percentile(webhook_ms, 0.50),
        "webhook_ms_p99": percentile(webhook_ms, 0.99),
        "board_fetches": bench.board_fetches,
        "errors": len(bench.errors),
        "error_samples": bench.errors[:5],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--consoles", type=int, default=1000)
    parser.add_argument("--wallboards", type=int, default=20)
    parser.add_argument("--slow-clients", type=int, default=100)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument(
        "--warmup", type=int, default=20, help="calls (and webhooks) before the burst"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="calls (and webhooks) a second")
    parser.add_argument("--web-workers", type=int, default=2, help="page processes")
    parser.add_argument("--web-threads", type=int, default=32, help="per web process")
    parser.add_argument(
        "--split",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="webhooks on processes of their own (`hotline web --only twilio`)",
    )
    parser.add_argument("--hook-workers", type=int, default=1, help="webhook processes")
    parser.add_argument("--no-proxy", action="store_true", help="even when nginx is installed")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()

    from sqlalchemy import insert, select

    from calls.desk import Actor, Desk
    from cases.db import engine_for, session_factory, upgrade
    from cases.models import User
    from cases.seed import seed
    from cases.users import add_user
    from web.auth.sessions import SessionStore

    work = Path(tempfile.mkdtemp(prefix="hotline-push-bench-"))
    redis_server = RedisServer(work / "redis", durable=False).start()
    db_url = f"sqlite:///{work / 'hotline.db'}"
    upgrade(db_url)
    sessions = session_factory(engine_for(db_url))
    with sessions() as db:
        seed(db)
        first = add_user(db, "op0", "operator", PASSWORD)
        add_user(db, "boss", "supervisor", PASSWORD)
        db.flush()
        # One scrypt hash for all: the bench measures streams, not password hashing.
        db.execute(
            insert(User),
            [
                {
                    "username": f"op{n}",
                    "role": "operator",
                    "password_hash": first.password_hash,
                    "created_at": first.created_at,
                }
                for n in range(1, args.consoles)
            ],
        )
        db.commit()
        ids = {name: id_ for name, id_ in db.execute(select(User.username, User.id))}
    web_port, push_port, hooks_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "HOTLINE_VAR_DIR": str(work),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_server.url,
        "HOTLINE_SECRET_KEY": SECRET,
        "HOTLINE_WEB_PORT": str(web_port),
        "HOTLINE_PUSH_PORT": str(push_port),
        "HOTLINE_LOG_LEVEL": "WARNING",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "HOTLINE_WRAPUP_S": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log = open(work / "processes.log", "ab")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "hotline.cli", "web", "--workers", str(args.web_workers)]
        + ["--threads", str(args.web_threads)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    hooks = None
    if args.split:
        # Its own var dir: each gunicorn keeps its control socket there.
        hooks_env = {
            **env,
            "HOTLINE_VAR_DIR": str(work / "hooks"),
            "HOTLINE_WEB_PORT": str(hooks_port),
        }
        hooks = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "web", "--only", "twilio"]
            + ["--workers", str(args.hook_workers), "--threads", str(args.web_threads)],
            cwd=ROOT,
            env=hooks_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    else:
        hooks_port = web_port
    push = subprocess.Popen(
        [sys.executable, "-m", "hotline.cli", "push"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    nginx = None
    try:
        wait_port(web_port)
        wait_port(push_port)
        wait_port(hooks_port)
        proxy = 0
        if NGINX.exists() and not args.no_proxy:
            nginx, proxy = start_nginx(work, web_port, push_port, hooks_port)
        ports = {
            "proxy": proxy,
            "stream": proxy or push_port,
            "web": proxy or web_port,
            "hooks": proxy or hooks_port,
        }
        settings = load_settings(env)
        handler = call_handler(settings, call_queue(settings))
        desk = Desk(handler, sessions)
        store = SessionStore(handler.redis, settings.session_idle_s, settings.session_absolute_s)
        made = []
        for n in range(args.consoles):
            username, seat = f"op{n}", f"{2000 + n}"
            desk.login_seat(Actor(username, "operator"), seat, ["mandarin"])
            sid = store.start(ids[username], username)
            made.append({"sid": sid, "_user_id": str(ids[username]), "seat": seat})
        made.append({"sid": store.start(ids["boss"], "boss"), "_user_id": str(ids["boss"])})
        cookies = forged_cookies(SECRET, made)
        result = asyncio.run(run(args, ports, cookies, handler))
        result["proxy"] = "nginx" if proxy else None
    finally:
        for process in (web, hooks, push, nginx):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        log.close()
        redis_server.stop()
        if "result" in locals() and not result["errors"] and not args.keep_logs:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
