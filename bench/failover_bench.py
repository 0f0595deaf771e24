"""A compressed peak hour through the real processes while their parts are killed.

Runs, on loopback: Redis under Sentinel (tests/sentinel_rig.py: 1 primary, 1 replica,
3 sentinels, 1 s detection), two FastAGI servers (`hotline agi serve`), two web
processes (`hotline web`) behind Debian's nginx (docker/nginx's template; without
/usr/sbin/nginx the Twilio callers alternate between the two web ports), two reapers,
an RQ worker and the dialer, every one of them finding Redis through the sentinels.

Calls arrive at ``--rate`` a second for ``--minutes``: most through the Asterisk
emulator (tests/asterisk_emulator.py), each to either FastAGI server, the rest as
Twilio callers posting signed webhooks through the proxy. The emulated operators'
phones answer the emulator's Dial and the Twilio callers' <Dial>; their consoles log the
seats in and keep the heartbeats; the case form goes in after each conversation.

Meanwhile, in turn, kill -9: the Redis primary (the sentinels promote the replica; the
old primary comes back as a replica), one FastAGI server (the emulated dialplan then
connects to the other one, as docker/asterisk/extensions.conf's [hotline-agi] does, and
the emulator's AMI lists its channels for the servers' reconciler; the killed server
comes back after a moment), one web process (gunicorn's whole process group), and the
active reaper (the one holding the lease; the other stands by and takes over when the
lease expires; the killed one comes back as the standby). Each kind at least
``--kills`` times.

Ground truth is the driver's own, as in bench/day_replay.py. The last line is a JSON
object: calls, answered, abandoned, redis_failovers, agi_kills, web_kills,
reaper_kills, lost_calls (a call that was neither talked to a seat nor hung up by its
caller), ghost_calls (live in the queue after every caller is gone), cases_missing
(answered calls without a case in SQL), double_assignments (a seat talking on two calls
at once, or the queue's event log saying so), answer_gap_s_max (the longest time a
caller waited while a seat was available, by polling the queue every 100 ms),
failover_s_max (the longest of: kill of the primary to the first write that succeeds
through the sentinels, and kill of the active reaper to the standby holding the lease),
reaper_takeover_s_max (the latter alone), the AGI sessions failed over or cut, and
webhook_errors.

    .venv/bin/python bench/failover_bench.py --minutes 3 --rate 0.5 --seats 8
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import getpass
import http.client
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.exceptions import RedisError  # noqa: E402
from sqlalchemy import select  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

import tests.asterisk_emulator as emulator_module  # noqa: E402
from calls.lease import holder  # noqa: E402
from cases.db import engine_for, session_factory, upgrade  # noqa: E402
from cases.models import Case  # noqa: E402
from cases.seed import seed  # noqa: E402
from hotline.config import load_settings  # noqa: E402
from hotline.redis_server import free_port  # noqa: E402
from hotline.runtime import call_handler, connect_redis  # noqa: E402
from queueing import CallQueue, QueueError  # noqa: E402
from queueing.audit import audit_event_log  # noqa: E402
from tests.asterisk_emulator import (  # noqa: E402
    AgiConnection,
    AmiServer,
    AsteriskEmulator,
    Channel,
    Operator,
)
from tests.sentinel_rig import MASTER_NAME, Node, SentinelRig  # noqa: E402

TOKEN = "failover-bench-token"
BASE = "https://hotline.example.org"
AMI_USER, AMI_SECRET = "hotline", "bench-secret"
NGINX = Path("/usr/sbin/nginx")
HOTLINE = str(Path(sys.executable).with_name("hotline"))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    logdir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.logdir / f"{self.name}.log", "ab") as out:
            # A group of its own: kill -9 takes gunicorn's workers along with the master.
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=out, start_new_session=True
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill9()


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s}s")


# -- the emulated Asterisk, with two FastAGI servers ------------------------------------


class FailoverEmulator(AsteriskEmulator):
    """Each AGI session goes to the call's first server, or the other one when that
    refuses the connection or dies inside the session (the dialplan's ordered list)."""

    def __init__(self, ports: list[int], operators: dict[str, Operator], **kwargs: Any) -> None:
        super().__init__(ports[0], operators, **kwargs)
        self.ports = ports
        self.local = threading.local()
        self.killed_at: dict[int, float] = {}
        self.failed_over = 0  # sessions that went to the other server
        self.unreachable = 0  # sessions that found neither server
        self.cut: collections.Counter[str] = collections.Counter()  # sessions cut by a kill
        self.talks: list[tuple[str, str, float, float]] = []  # seat, call, start, end
        self.talk_lock = threading.Lock()

    @property  # type: ignore[override]
    def agi_port(self) -> int:
        return getattr(self.local, "port", self.ports[0])

    @agi_port.setter
    def agi_port(self, value: int) -> None:
        pass

    def first_server(self, channel: Channel) -> int:
        return hash(channel.uniqueid) % len(self.ports)

    def dial(self, ch: Channel, data: str) -> str:
        seat = data.split(",")[0].split("/", 1)[-1]
        reply = super().dial(ch, data)
        if ch.variables.get("DIALSTATUS") == "ANSWER":
            op = self.operators[seat]
            end = time.monotonic()
            with self.talk_lock:
                self.talks.append((seat, "ast-" + ch.uniqueid, end - op.talk_s, end))
            ch.variables["BENCH_TALKED"] = "1"
        return reply


class FailoverConnection(AgiConnection):
    """docker/asterisk/extensions.conf's [hotline-agi]: a server that refuses the
    connection (AGISTATUS=FAILURE) passes the route to the other one. A server that dies
    inside a session leaves HOTLINE_NEXT unset, and the emulated dialplan goes on as the
    real one does (the inbound retry, back to the hold loop; a cut h session is lost)."""

    def run(self) -> None:
        em = self.channel.emulator
        assert isinstance(em, FailoverEmulator)
        first = em.first_server(self.channel)
        for attempt in range(len(em.ports)):
            port = em.ports[(first + attempt) % len(em.ports)]
            em.local.port = port
            self.dead = self.hangup_sent = False
            talked_before = bool(self.channel.variables.get("BENCH_TALKED"))
            started = time.monotonic()
            try:
                super().run()
            except OSError:  # refused: that server is down, try the next one
                em.failed_over += 1
                continue
            if started <= em.killed_at.get(port, 0.0) <= time.monotonic() + 0.5:
                em.cut[self.route.split("?")[0]] += 1
                log(
                    f"{self.route} session of {self.channel.uniqueid} cut by the kill of :{port}"
                    f" (heard {self.channel.heard[-2:]}, next {self.channel.variables})"
                )
                if self.channel.variables.get("BENCH_TALKED") and not talked_before:
                    # This session's Dial connected (a bridge, or an inbound session
                    # matched at once): after it the caller's channel hangs up (Dial
                    # without g), and the h extension tells a live server.
                    self.channel.variables["HOTLINE_NEXT"] = "hangup"
            return
        em.unreachable += 1


class ActionLog(list[dict[str, str]]):
    """The AMI server's action log, remembering each handler thread's last action."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def append(self, item: dict[str, str]) -> None:
        self.local.last = item
        super().append(item)


class ChannelListingAmiHandler(emulator_module.AmiHandler):
    """The emulator's AMI plus CoreShowChannels, which the FastAGI server's reconciler
    reads to end calls whose channel is gone (a hangup AGI lost with a killed server)."""

    def send(self, **fields: str) -> None:
        last = getattr(self.server.actions.local, "last", {})  # type: ignore[attr-defined]
        if last.get("Action") != "CoreShowChannels" or fields.get("Response") != "Error":
            super().send(**fields)
            return
        action_id = fields.get("ActionID", "")
        live = [c for c in list(self.server.emulator.channels.values()) if not c.done.is_set()]
        super().send(
            Response="Success",
            ActionID=action_id,
            EventList="start",
            Message="Channels will follow",
        )
        for channel in live:
            super().send(
                Event="CoreShowChannel",
                ActionID=action_id,
                Channel=channel.name,
                Uniqueid=channel.uniqueid,
            )
        super().send(
            Event="CoreShowChannelsComplete",
            ActionID=action_id,
            EventList="Complete",
            ListItems=str(len(live)),
        )


emulator_module.AgiConnection = FailoverConnection  # type: ignore[misc]


# -- Twilio callers --------------------------------------------------------------------


class TwilioClient:
    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.validator = RequestValidator(TOKEN)
        self.errors = 0
        self.rr = itertools.count()

    def post(self, url: str, params: dict[str, str]) -> ET.Element | None:
        """POST as Twilio does. Twilio gives up on a failed webhook; here a fallback URL
        that is the same URL is assumed: one retry a second later, errors counted."""
        url = url if url.startswith("http") else BASE + url
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = urlencode(params)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Host": "hotline.example.org",
            "X-Forwarded-Proto": "https",
            "X-Twilio-Signature": self.validator.compute_signature(url, params),
        }
        for attempt in range(3):
            port = self.ports[next(self.rr) % len(self.ports)]
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                payload = response.read()
                conn.close()
                if response.status == 204:
                    return None
                if response.status == 200:
                    return ET.fromstring(payload)
                raise RuntimeError(f"{response.status} {payload[:100]!r}")
            except (OSError, RuntimeError, ET.ParseError) as exc:
                self.errors += 1
                log(f"webhook {parts.path} failed ({exc}); attempt {attempt + 1}")
                time.sleep(1)
        return None


# -- the run ---------------------------------------------------------------------------


@dataclass
class Call:
    id: str
    via: str  # asterisk | twilio
    patience_s: float
    started: float
    truth: str | None = None  # answered | abandoned | lost
    channel: Channel | None = None
    seat: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.rng = random.Random(args.seed)
        self.procs: dict[str, Proc] = {}
        self.calls: dict[str, Call] = {}
        self.stop = threading.Event()
        self.counts = {"redis_failovers": 0, "agi_kills": 0, "web_kills": 0, "reaper_kills": 0}
        self.failover_s: list[float] = []  # Redis failovers and reaper takeovers
        self.takeover_s: list[float] = []
        self.gap_s_max = 0.0
        self.seat_lock = threading.Lock()
        self.seat_busy: dict[str, str | None] = {}
        self.twilio_talks: list[tuple[str, str, float, float]] = []

    # -- set-up ------------------------------------------------------------------------

    def start(self) -> None:
        self.rig = SentinelRig(self.work / "sentinel").start()
        db_url = f"sqlite:///{self.work / 'hotline.db'}"
        upgrade(db_url)
        self.sessions = session_factory(engine_for(db_url))
        with self.sessions() as session:
            seed(session)
            session.commit()
        self.agi_ports = [free_port(), free_port()]
        self.web_ports = [free_port(), free_port()]
        seats = [f"{1001 + n}" for n in range(self.args.seats)]
        self.operators = {
            s: Operator(s, answer_after_s=1.0, talk_s=self.args.talk_s, form={}) for s in seats
        }
        self.emulator = FailoverEmulator(
            self.agi_ports, self.operators, submit_form=self.submit_form, hold_s=3.0
        )
        self.ami = AmiServer(self.emulator, AMI_USER, AMI_SECRET)
        self.ami.RequestHandlerClass = ChannelListingAmiHandler
        self.ami.actions = ActionLog()
        threading.Thread(target=self.ami.serve_forever, daemon=True).start()
        self.env = {
            **os.environ,
            "REDIS_SENTINELS": self.rig.sentinels_env,
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "DATABASE_URL": db_url,
            "HOTLINE_VAR_DIR": str(self.work),
            "HOTLINE_SECRET_KEY": "failover-bench",
            "TWILIO_AUTH_TOKEN": TOKEN,
            "PUBLIC_BASE_URL": BASE,
            "HOTLINE_WRAPUP_S": "2",
            "HOTLINE_SEAT_TTL_S": "30",
            "HOTLINE_OFFER_TIMEOUT_S": "20",
            "ASTERISK_AMI_HOST": "127.0.0.1",
            "ASTERISK_AMI_PORT": str(self.ami.port),
            "ASTERISK_AMI_USERNAME": AMI_USER,
            "ASTERISK_AMI_SECRET": AMI_SECRET,
            "PYTHONPATH": str(ROOT),
        }
        self.env.pop("REDIS_URL", None)
        settings = load_settings(self.env)
        self.redis = connect_redis(settings)
        self.queue = CallQueue(self.redis, settings.queue)
        self.handler = call_handler(settings, self.queue)
        quiet = [HOTLINE, "--log-level", "WARNING"]
        for n, port in enumerate(self.agi_ports):
            self.add(f"agi-{n}", [*quiet, "agi", "serve", "--port", str(port)])
        for n, port in enumerate(self.web_ports):
            self.add(
                f"web-{n}",
                [*quiet, "web", "--workers", "1", "--threads", "16"],
                HOTLINE_WEB_PORT=str(port),
                HOTLINE_TRUSTED_PROXY_HOPS="1",
            )
        for n in range(2):
            self.add(f"reaper-{n}", [*quiet, "reaper"])
        self.add("worker-0", [*quiet, "worker"])
        self.add("dialer", [*quiet, "dialer"])
        for proc in self.procs.values():
            proc.start()
        for port in self.agi_ports + self.web_ports:
            wait_port(port, 60)
        self.front = self.start_nginx()
        self.twilio = TwilioClient(self.front)
        for seat in seats:
            self.queue.seat_login(seat)
            self.seat_busy[seat] = None

    def add(self, name: str, argv: list[str], **env: str) -> None:
        self.procs[name] = Proc(name, argv, {**self.env, **env}, self.work)

    def start_nginx(self) -> list[int]:
        if not NGINX.exists() or not shutil.which("envsubst"):
            log("no /usr/sbin/nginx: the Twilio callers alternate between the web ports")
            return self.web_ports
        state = self.work / "nginx"
        state.mkdir()
        port = free_port()
        env = {
            "PATH": "/usr/bin:/bin",
            "NGINX_LISTEN": f"127.0.0.1:{port}",
            "NGINX_WEB_SERVERS": ",".join(f"127.0.0.1:{p}" for p in self.web_ports),
            "NGINX_STATE_DIR": str(state),
            "NGINX_ACCESS_LOG": str(state / "access.log"),
            "NGINX_ERROR_LOG": str(state / "error.log"),
            "NGINX_USER": getpass.getuser(),
        }
        conf = state / "nginx.conf"
        nginx_dir = ROOT / "docker" / "nginx"
        render = [str(nginx_dir / "render-nginx.sh"), str(nginx_dir / "nginx.conf.template")]
        subprocess.run(["sh", *render, str(conf)], env=env, check=True)
        argv = [str(NGINX), "-e", str(state / "error.log"), "-p", str(state), "-c", str(conf)]
        self.procs["nginx"] = Proc("nginx", [*argv, "-g", "daemon off;"], env, self.work)
        self.procs["nginx"].start()
        wait_port(port)
        return [port]

    def submit_form(self, call_id: str, form: dict[str, Any]) -> None:
        self.retry(
            lambda: self.handler.submit_case_form(
                call_id, {**form, "description": f"来电 {call_id}"}
            )
        )

    def retry(self, action: Any, attempts: int = 40) -> Any:
        """What a console does: try again while Redis fails over."""
        for _ in range(attempts - 1):
            try:
                return action()
            except RedisError:
                time.sleep(0.5)
        return action()

    # -- seats (their consoles) --------------------------------------------------------

    def consoles(self) -> None:
        while not self.stop.wait(2.0):
            for seat in self.operators:
                try:
                    self.queue.heartbeat(seat)
                except QueueError:  # logged out: log in again, as the console does
                    try:
                        self.queue.seat_login(seat)
                    except (QueueError, RedisError):
                        pass
                except RedisError:
                    pass

    def watch_gap(self) -> None:
        """A caller waits, a seat is available, and nothing is offered: for how long."""
        since: float | None = None
        while not self.stop.wait(0.1):
            try:
                status = self.queue.status()
            except RedisError:  # a failover: a gap that had begun goes on meanwhile
                if since is not None:
                    self.gap_s_max = max(self.gap_s_max, time.monotonic() - since)
                continue
            waiting = any(c["state"] == "waiting" for c in status["calls"])
            free = any(s.get("state") == "available" for s in status["seats"])
            now = time.monotonic()
            if waiting and free:
                since = since if since is not None else now
                self.gap_s_max = max(self.gap_s_max, now - since)
            else:
                since = None

    # -- callers -----------------------------------------------------------------------

    def asterisk_call(self, n: int) -> None:
        channel = self.emulator.call(f"139{n:08d}")
        call = Call("ast-" + channel.uniqueid, "asterisk", self.patience(), time.monotonic())
        call.channel = channel
        self.calls[call.id] = call
        threading.Timer(0.3, channel.press, args=("9",)).start()  # skip the menu

        def follow() -> None:
            deadline = call.started + call.patience_s
            while not channel.done.wait(0.5):
                if time.monotonic() > deadline and "BENCH_TALKED" not in channel.variables:
                    if not any("rings seat" in h for h in channel.heard[-1:]):
                        channel.hang_up()
                        call.truth = "abandoned"
            if call.truth is None:
                call.truth = "answered" if "BENCH_TALKED" in channel.variables else "lost"
            call.done.set()

        threading.Thread(target=follow, daemon=True).start()

    def patience(self) -> float:
        return self.rng.uniform(0.8, 1.2) * self.args.patience_s

    def twilio_call(self, n: int) -> None:
        sid = "CA" + f"{n:032x}"
        call = Call(sid, "twilio", self.patience(), time.monotonic())
        self.calls[sid] = call
        threading.Thread(target=self.twilio_caller, args=(call, n), daemon=True).start()

    def twilio_caller(self, call: Call, n: int) -> None:
        base = {
            "CallSid": call.id,
            "From": f"+86138{n:08d}",
            "To": "+8612345",
            "AccountSid": "AC" + "0" * 32,
        }
        try:
            twiml = self.twilio.post("/twilio/voice", {**base, "CallStatus": "in-progress"})
            wait_url: str | None = None
            while twiml is not None and call.truth is None:
                twiml = self.play(call, base, twiml, wait_url)
                if twiml is not None and twiml.find("Enqueue") is not None:
                    wait_url = twiml.find("Enqueue").get("waitUrl")  # type: ignore[union-attr]
        finally:
            if call.truth is None:
                call.truth = "lost"
            self.twilio.post("/twilio/status", {**base, "CallStatus": "completed"})
            call.done.set()

    def play(
        self, call: Call, base: dict[str, str], twiml: ET.Element, wait_url: str | None
    ) -> ET.Element | None:
        """Run one TwiML document as Twilio would; return the next one (None: ended)."""
        for verb in twiml:
            if call.truth is None and time.monotonic() > call.started + call.patience_s:
                call.truth = "abandoned"
                return None
            if verb.tag in ("Play", "Say"):
                time.sleep(0.3)
            elif verb.tag == "Pause":
                time.sleep(min(1.0, float(verb.get("length", "1"))))
            elif verb.tag == "Gather":  # silent: the timeout's own request
                time.sleep(0.3)
                return self.twilio.post(
                    verb.get("action") or "/twilio/gather", {**base, "Digits": ""}
                )
            elif verb.tag == "Redirect":
                return self.twilio.post(verb.text or "", base)
            elif verb.tag == "Hangup":
                return None
            elif verb.tag == "Leave":
                return self.twilio.post(
                    wait_url_after(twiml, wait_url), {**base, "QueueResult": "leave"}
                )
            elif verb.tag == "Enqueue":
                return self.hold(call, base, verb)
            elif verb.tag == "Dial":
                return self.ring(call, base, verb)
        return None  # the document ran out: Twilio hangs up

    def hold(self, call: Call, base: dict[str, str], enqueue: ET.Element) -> ET.Element | None:
        """In Twilio's queue: the wait URL, again and again, until it says leave."""
        wait_url = enqueue.get("waitUrl") or "/twilio/wait"
        action = enqueue.get("action") or "/twilio/after-queue"
        while True:
            if time.monotonic() > call.started + call.patience_s:
                call.truth = "abandoned"
                return self.twilio.post(action, {**base, "QueueResult": "hangup"})
            twiml = self.twilio.post(wait_url, {**base, "QueueTime": "1"})
            if twiml is None:
                time.sleep(1)
                continue
            for verb in twiml:
                if verb.tag == "Leave":
                    return self.twilio.post(action, {**base, "QueueResult": "leave"})
                if verb.tag == "Hangup":
                    return None
                if verb.tag in ("Play", "Pause", "Say"):
                    time.sleep(1.0)  # the hold clip, cut short: the wait URL is asked again

    def ring(self, call: Call, base: dict[str, str], dial: ET.Element) -> ET.Element | None:
        target = dial[0]
        seat = (target.text or "").strip().split("@")[0].removeprefix("sip:")
        action = dial.get("action") or "/twilio/dial-status"
        time.sleep(1.0)  # rings, then the operator picks up
        answered = self.twilio.post(target.get("url") or "", {**base, "CallSid": "CA" + "f" * 32})
        if answered is not None and answered.find("Hangup") is not None:
            return self.twilio.post(action, {**base, "DialCallStatus": "canceled"})
        start = time.monotonic()
        time.sleep(self.args.talk_s)
        with self.seat_lock:
            self.twilio_talks.append((seat, call.id, start, time.monotonic()))
        call.truth, call.seat = "answered", seat
        self.submit_form(call.id, {"seat": seat})
        return self.twilio.post(
            action,
            {
                **base,
                "DialCallStatus": "completed",
                "DialCallDuration": str(int(self.args.talk_s) or 1),
            },
        )

    def arrivals(self) -> None:
        end = time.monotonic() + self.args.minutes * 60
        for n in itertools.count():
            if self.stop.wait(self.rng.expovariate(self.args.rate)) or time.monotonic() > end:
                return
            if self.rng.random() < self.args.twilio_share:
                self.twilio_call(n)
            else:
                self.asterisk_call(n)

    # -- faults ------------------------------------------------------------------------

    def chaos(self) -> None:
        span = self.args.minutes * 60
        kinds = ["redis", "agi", "web", "reaper"] * self.args.kills
        gap = span * 0.85 / len(kinds)
        if self.stop.wait(span * 0.05):
            return
        for n, kind in enumerate(kinds):
            try:
                getattr(self, f"kill_{kind}")(n // 4)
            except Exception as exc:  # noqa: BLE001 - report it, go on with the next
                log(f"kill {kind} failed: {exc!r}")
            if self.stop.wait(gap):
                return
        # The Redis nodes this thread restarted die with it (PR_SET_PDEATHSIG follows the
        # thread that forked): it lives until the end of the run.
        self.stop.wait()

    def current_primary(self) -> tuple[Node, Node]:
        host, port = self.rig.primary_address()
        if port == self.rig.primary.port:
            return self.rig.primary, self.rig.replica
        return self.rig.replica, self.rig.primary

    def kill_redis(self, _n: int) -> None:
        primary, replica = self.current_primary()
        log(f"kill -9 Redis primary :{primary.port}")
        killed = time.monotonic()
        primary.kill()
        self.counts["redis_failovers"] += 1
        probe = self.redis
        while True:
            try:
                probe.set("bench:probe", str(time.time()))
                break
            except RedisError:
                time.sleep(0.05)
        self.failover_s.append(time.monotonic() - killed)
        log(f"writes go through again after {self.failover_s[-1]:.1f}s")
        # The old primary comes back as a replica of the new one.
        argv = [a for a in primary.argv]
        if "--replicaof" in argv:
            i = argv.index("--replicaof")
            del argv[i : i + 3]
        primary.argv = [*argv, "--replicaof", "127.0.0.1", str(replica.port)]
        primary.start()
        client = primary.client()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.info("replication")["master_link_status"] == "up" and all(
                    len(s.client().sentinel_slaves(MASTER_NAME)) == 1 for s in self.rig.sentinels
                ):
                    break
            except RedisError:
                pass
            time.sleep(0.2)

    def restart_later(self, name: str, after_s: float) -> None:
        def again() -> None:
            if not self.stop.is_set():
                self.procs[name].start()

        threading.Timer(after_s, again).start()

    def kill_agi(self, n: int) -> None:
        name = f"agi-{n % 2}"
        log(f"kill -9 {name}")
        self.procs[name].kill9()
        self.emulator.killed_at[self.agi_ports[n % 2]] = time.monotonic()
        self.counts["agi_kills"] += 1
        self.restart_later(name, 3.0)

    def kill_web(self, n: int) -> None:
        name = f"web-{n % 2}"
        log(f"kill -9 {name} (gunicorn's process group)")
        self.procs[name].kill9()
        self.counts["web_kills"] += 1
        self.restart_later(name, 3.0)

    def active_reaper(self, timeout_s: float = 60.0) -> str | None:
        """The reaper process holding the lease (the other stands by), waited for."""
        key = self.queue.keys.lease("reaper")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                holding = holder(self.redis, key)
            except RedisError:
                holding = None
            for name, proc in self.procs.items():
                if (
                    name.startswith("reaper-")
                    and proc.alive()
                    and holding is not None
                    and proc.process is not None
                    and holding[1] == proc.process.pid
                ):
                    return name
            time.sleep(0.05)
        return None

    def kill_reaper(self, _n: int) -> None:
        """Kill -9 the active reaper and time the standby's takeover (the lease expires,
        then its next try takes it): into failover_s_max, like a Redis failover."""
        name = self.active_reaper()
        if name is None:
            raise RuntimeError("no reaper holds the lease")
        log(f"kill -9 {name} (the active reaper)")
        killed = time.monotonic()
        self.procs[name].kill9()
        self.counts["reaper_kills"] += 1
        try:
            standby = self.active_reaper()  # the killed one is not alive: the other
        finally:
            self.restart_later(name, 1.0)  # back as the standby
        if standby is None:
            raise RuntimeError(f"no standby took over from {name}")
        self.takeover_s.append(time.monotonic() - killed)
        self.failover_s.append(self.takeover_s[-1])
        log(f"{standby} took over after {self.takeover_s[-1]:.1f}s")

    # -- the run -----------------------------------------------------------------------

    def run(self) -> dict[str, object]:
        self.start()
        for target in (self.consoles, self.watch_gap):
            threading.Thread(target=target, daemon=True).start()
        chaos = threading.Thread(target=self.chaos, daemon=True)
        chaos.start()
        self.arrivals()
        log(f"{len(self.calls)} calls arrived; waiting for them to end")
        deadline = time.monotonic() + self.args.patience_s + 120
        for call in list(self.calls.values()):
            call.done.wait(max(0.1, deadline - time.monotonic()))
        chaos.join(timeout=1)
        time.sleep(5)  # the reaper and the worker catch up
        return self.finish()

    def finish(self) -> dict[str, object]:
        answered = [c for c in self.calls.values() if c.truth == "answered"]
        deadline = time.monotonic() + 60
        while True:
            with self.sessions() as session:
                filed = set(
                    session.scalars(
                        select(Case.call_id).where(Case.call_id.in_([c.id for c in answered]))
                    )
                )
            if len(filed) == len(answered) or time.monotonic() > deadline:
                break
            time.sleep(1)
        self.stop.set()
        ghosts = self.retry(self.queue.live_calls)
        audit = self.retry(lambda: audit_event_log(self.queue.redis, self.queue.keys))
        talks = sorted(self.emulator.talks + self.twilio_talks, key=lambda t: (t[0], t[2]))
        overlaps = sum(
            1 for a, b in itertools.pairwise(talks) if a[0] == b[0] and b[2] < a[3] - 0.5
        )
        lost = [c.id for c in self.calls.values() if c.truth not in ("answered", "abandoned")]
        for call_id in lost[:5]:
            call = self.calls[call_id]
            heard = call.channel.heard[-8:] if call.channel else []
            log(f"lost {call_id} ({call.via}): heard {heard}; queue {self.queue.call(call_id)}")
        if ghosts:
            log(f"ghosts: {ghosts[:10]}")
        if lost:
            faulthandler.dump_traceback(sys.stderr)
        for a, b in itertools.pairwise(talks):
            if a[0] == b[0] and b[2] < a[3] - 0.5:
                log(f"seat {a[0]} talked on {a[1]} and {b[1]} at once")
        return {
            "calls": len(self.calls),
            "asterisk_calls": sum(1 for c in self.calls.values() if c.via == "asterisk"),
            "twilio_calls": sum(1 for c in self.calls.values() if c.via == "twilio"),
            "answered": len(answered),
            "abandoned": sum(1 for c in self.calls.values() if c.truth == "abandoned"),
            **self.counts,
            "lost_calls": len(lost),
            "ghost_calls": len(ghosts),
            "cases_missing": len(answered) - len(filed),
            "double_assignments": overlaps + audit.double_assignments,
            "audit_double_assignments": audit.double_assignments,
            "audit_lost_calls": audit.lost_calls,
            "answer_gap_s_max": round(self.gap_s_max, 2),
            "failover_s_max": round(max(self.failover_s, default=0.0), 2),
            "reaper_takeover_s_max": round(max(self.takeover_s, default=0.0), 2),
            "agi_sessions_failed_over": self.emulator.failed_over,
            "agi_sessions_unreachable": self.emulator.unreachable,
            "agi_sessions_cut": dict(self.emulator.cut),
            "webhook_errors": self.twilio.errors,
            "front": "nginx" if "nginx" in self.procs else "direct",
        }

    def close(self) -> None:
        self.stop.set()
        for proc in self.procs.values():
            proc.stop()
        if hasattr(self, "ami"):
            self.ami.shutdown()
        if hasattr(self, "rig"):
            self.rig.stop()


def wait_url_after(twiml: ET.Element, wait_url: str | None) -> str:
    return "/twilio/after-queue"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the peak")
    parser.add_argument("--rate", type=float, default=0.5, help="calls a second")
    parser.add_argument("--seats", type=int, default=8)
    parser.add_argument("--talk-s", type=float, default=8.0)
    parser.add_argument("--patience-s", type=float, default=120.0)
    parser.add_argument("--twilio-share", type=float, default=0.3)
    parser.add_argument("--kills", type=int, default=3, help="kills of each kind")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--keep", type=Path, default=None, help="keep logs in this folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="failover-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, work)

    def interrupted(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # through the finally below: every process stops

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        result = bench.run()
    finally:
        bench.close()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
