"""A day of calls replayed through the real flows, queue, reaper, RQ worker and SQL, at
an accelerated clock, with faults; the driver keeps its own ground truth.

- Arrivals: Poisson over an hourly profile of a 12345 day (quiet at night, peaks in the
  morning and afternoon), ``--calls`` in the whole day; ``--hours 9-11`` replays a
  window of it.
- Callers: limited patience (they hang up), 2 % hang up at the very moment their call
  starts, some press 1 for a callback when offered; registered elderly citizens and
  repeat callers with an open case, their numbers in national or E.164 form.
- Operators: ring, talk and wrap-up times drawn from distributions, a few rings never
  answered, the case form sent after the hang-up (20 % during the call), a 30 s lapse of
  every seat's heartbeat half-way.
- Faults: an RQ worker (two run, as under `hotline run`) or the reaper is killed
  (SIGKILL) at random moments and restarted after 2-6 s (real time).
- Time: every queue duration is divided by ``--speed``; the driver, the reaper and the
  worker run in real time against Redis's clock.

It prints one JSON object as its last line: calls, speed, wall_s, kills, answered,
abandoned, callbacks, lost_calls, ghost_calls, cases_created, cases_missing,
cases_missing_form, case_delay_s_p99 (hang-up to case, real seconds), figures_match
(SQL figures against the driver's truth), recognised_rate, and events_per_call and
event_stream_bytes_per_entry (to size the event stream's cap).

    .venv/bin/python bench/day_replay.py --calls 87000 --speed 50 --hours 9-10
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis  # noqa: E402
from rq import Queue as JobQueue  # noqa: E402
from sqlalchemy import select  # noqa: E402

from calls import (  # noqa: E402
    RQ_QUEUE,  # noqa: E402
    CallerDirectory,
    CallHandler,
)
from calls.figures import figures, record_calls  # noqa: E402
from cases.db import engine_for, session_factory, upgrade  # noqa: E402
from cases.models import CallRecord, Case, CitizenRegister  # noqa: E402
from cases.phones import normalise  # noqa: E402
from cases.seed import seed  # noqa: E402
from cases.service import CallInfo, CaseDraft, create_case_for_call, utcnow  # noqa: E402
from hotline.redis_server import RedisServer  # noqa: E402
from ivr import actions as a  # noqa: E402
from ivr import events as e  # noqa: E402
from queueing import CallQueue, QueueError  # noqa: E402
from queueing.offers import offers as offer_stream  # noqa: E402
from queueing.settings import QueueSettings  # noqa: E402

# Share of a day's calls in each hour (a 12345 line: quiet at night, two peaks).
HOURLY = [
    0.6,
    0.4,
    0.3,
    0.3,
    0.4,
    0.8,
    1.8,
    3.5,
    6.5,
    8.0,
    8.2,
    7.0,
    5.5,
    6.0,
    7.2,
    7.4,
    7.0,
    6.2,
    5.0,
    4.2,
    3.6,
    2.9,
    2.0,
    1.2,
]
CATEGORIES = ["street-lights", "illegal-parking", "construction-noise", "property-management"]


@dataclass
class Call:
    id: str
    raw_caller: str
    arrive_s: float  # simulated seconds from the window start
    patience_s: float
    kind: str  # ordinary | registered | repeat
    racing_hangup: bool
    truth: str | None = None  # answered | abandoned | callback | turned_away
    seat: str | None = None
    hung_up_wall: float | None = None
    form: dict[str, object] | None = None
    recognised: bool = False
    waiting: bool = False


@dataclass
class Operator:
    seat: str
    busy_with: str | None = None


@dataclass(order=True)
class Task:
    at: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class Replay:
    def __init__(self, args: argparse.Namespace, redis_url: str, db_url: str, workdir: Path):
        self.args, self.speed = args, args.speed
        self.rng = random.Random(args.seed)
        self.redis = Redis.from_url(redis_url)
        self.redis_url, self.db_url, self.workdir = redis_url, db_url, workdir
        s = 1 / self.speed
        self.queue = CallQueue(
            self.redis,
            QueueSettings(
                offer_timeout_s=20 * s,
                offer_start_s=30 * s,
                wrapup_s=30 * s,
                sticky_s=30 * s,
                seat_heartbeat_ttl_s=30.0,  # the reaper's own setting decides (env)
                closed_after_s=3600.0,
            ),
        )
        self.sessions = session_factory(engine_for(db_url))
        self.handler = CallHandler(
            self.queue, JobQueue(RQ_QUEUE, connection=self.redis), CallerDirectory(self.sessions)
        )
        self.tasks: list[Task] = []
        self.seq = itertools.count()
        self.lock = threading.Lock()
        self.calls: dict[str, Call] = {}
        self.operators: dict[str, Operator] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills = 0
        self.heartbeats_on = True
        self.forms_due = 0  # forms the operators have yet to send

    # -- clock -------------------------------------------------------------------------

    def now(self) -> float:
        """Simulated seconds since the window started."""
        return (time.monotonic() - self.t0) * self.speed

    def at(self, sim_s: float, run: Callable[[], None]) -> None:
        with self.lock:
            heapq.heappush(self.tasks, Task(sim_s, next(self.seq), run))

    def after(self, sim_s: float, run: Callable[[], None]) -> None:
        self.at(self.now() + sim_s, run)

    # -- set-up ------------------------------------------------------------------------

    def prepare(self) -> None:
        start_h, end_h = self.args.window
        share = sum(HOURLY[start_h:end_h]) / sum(HOURLY)
        expected = self.args.calls * share
        per_hour = [self.args.calls * HOURLY[h] / sum(HOURLY) for h in range(start_h, end_h)]
        self.window_s = (end_h - start_h) * 3600
        # Seats for the busiest hour at about 90 % occupancy (talk 180 s + wrap-up 30 s).
        peak = max(per_hour)
        self.seat_count = self.args.seats or max(5, math.ceil(peak * 210 / 3600 / 0.9))
        registered = [f"1390000{n:04d}" for n in range(200)]
        repeaters = [f"1370000{n:04d}" for n in range(200)]
        with self.sessions() as session:
            seed(session)
            for phone in registered:
                session.add(
                    CitizenRegister(
                        phone=normalise(phone), name="长者", added_by="bench", added_at=utcnow()
                    )
                )
            session.commit()
            for n, phone in enumerate(repeaters):
                create_case_for_call(
                    session,
                    CallInfo(f"earlier-{n}", normalise(phone), "sim"),
                    CaseDraft(description="昨天反映的问题", dispatch=False),
                )
        n = 0
        for h, rate in enumerate(per_hour):
            t = h * 3600.0
            while True:
                t += self.rng.expovariate(rate / 3600)
                if t >= (h + 1) * 3600:
                    break
                roll = self.rng.random()
                if roll < 0.03:
                    kind, number = "registered", self.rng.choice(registered)
                elif roll < 0.06:
                    kind, number = "repeat", self.rng.choice(repeaters)
                else:
                    kind, number = "ordinary", f"13{self.rng.randint(100000000, 899999999)}"
                raw = number if self.rng.random() < 0.5 else "+86" + number  # both forms
                call = Call(
                    f"day-{n:06d}",
                    raw,
                    t,
                    self.rng.expovariate(1 / 240),
                    kind,
                    self.rng.random() < 0.02,
                )
                self.calls[call.id] = call
                n += 1
        self.expected_calls = expected

    # -- processes and faults ---------------------------------------------------------------

    def start_process(self, name: str) -> None:
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.db_url,
            "HOTLINE_VAR_DIR": str(self.workdir),
            "HOTLINE_SEAT_TTL_S": "1",
        }
        argv = (
            [sys.executable, "-m", "hotline.cli", "--log-level", "WARNING", "reaper"]
            if name == "reaper"
            else [sys.executable, "-m", "hotline.cli", "worker"]
        )
        with open(self.workdir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=log)

    def chaos(self, stop: threading.Event, wall_s: float) -> None:
        moments = sorted(self.rng.uniform(0.05, 0.9) * wall_s for _ in range(self.args.kills))
        started = time.monotonic()
        for moment in moments:
            if stop.wait(max(0.0, started + moment - time.monotonic())):
                return
            name = self.rng.choice(list(self.procs))
            self.procs[name].send_signal(signal.SIGKILL)
            self.procs[name].wait()
            self.kills += 1
            if stop.wait(self.rng.uniform(2, 6)):
                return
            self.start_process(name)

    # -- callers -----------------------------------------------------------------------------

    def arrive(self, call: Call) -> None:
        if call.racing_hangup:  # the caller is gone as the first webhook is handled
            racer = threading.Thread(target=self.handler.caller_gone, args=(call.id,))
            racer.start()
            actions = self.handler.start(call.id, call.raw_caller, "12345", "sim", time.time())
            racer.join()
            call.truth, call.hung_up_wall = "abandoned", time.monotonic()
            return
        actions = self.handler.start(call.id, call.raw_caller, "12345", "sim", time.time())
        record = self.queue.call(call.id)
        if call.kind != "ordinary":
            call.recognised = record.get("priority") == (
                "vulnerable" if call.kind == "registered" else "repeat"
            )
        if any(isinstance(x, a.HangUp) for x in actions) and not record:
            call.truth = "turned_away"
            return
        call.waiting = True
        self.follow(call, actions)
        self.after(call.patience_s, lambda: self.give_up(call))

    def follow(self, call: Call, actions: list[a.Action]) -> None:
        for action in actions:
            if isinstance(action, a.Gather):
                if action.prompt == "callback_offer" and self.rng.random() < 0.3:
                    self.after(4, lambda: self.press(call, "1"))
                else:
                    self.after(action.timeout_s, lambda: self.timeout(call))
            elif isinstance(action, a.Bridge):
                self.ring(call, action.seat)
            elif isinstance(action, a.HangUp) and call.truth is None:
                flow = self.handler.load(call.id)
                call.truth = "callback" if flow and flow.outcome == "callback" else call.truth
                call.waiting = False
                # The line goes down, and the telephony says so (Asterisk's h extension,
                # Twilio's final status), a moment after the hotline hung up.
                self.after(0.2 * self.speed, lambda: self.handler.caller_gone(call.id))

    def timeout(self, call: Call) -> None:
        if call.waiting and call.truth is None:
            self.follow(call, self.handler.handle(call.id, e.InputTimeout(at=time.time())))

    def press(self, call: Call, digit: str) -> None:
        if call.waiting and call.truth is None:
            self.follow(call, self.handler.handle(call.id, e.Digits(digit, at=time.time())))

    def give_up(self, call: Call) -> None:
        if call.waiting and call.truth is None and call.seat is None:
            call.waiting = False
            call.truth, call.hung_up_wall = "abandoned", time.monotonic()
            self.handler.caller_gone(call.id)
            for op in self.operators.values():  # a phone ringing for them stops
                if op.busy_with == call.id:
                    op.busy_with = None

    def hold_turn(self) -> None:
        """The hold loop: announcements and the callback offer for waiting callers."""
        for call in list(self.calls.values()):
            if call.waiting and call.truth is None and call.seat is None:
                actions, _ = self.handler.queue_update(call.id, time.time())
                self.follow(call, actions)
        self.after(30, self.hold_turn)

    # -- operators ---------------------------------------------------------------------------

    def ring(self, call: Call, seat: str) -> None:
        op = self.operators.get(seat)
        if op is None or op.busy_with not in (None, call.id) or call.truth is not None:
            return
        op.busy_with = call.id
        self.handler.ringing(call.id, seat)
        if self.rng.random() < 0.03:  # never picked up: the phone rings out
            self.after(18, lambda: self.missed(call, op))
        else:
            self.after(self.rng.uniform(2, 8), lambda: self.pick_up(call, op))

    def missed(self, call: Call, op: Operator) -> None:
        op.busy_with = None
        if call.truth is None:
            self.follow(call, self.handler.seat_missed(call.id, op.seat, "no-answer", time.time()))

    def pick_up(self, call: Call, op: Operator) -> None:
        if call.truth is not None or not self.handler.seat_answered(call.id, op.seat, time.time()):
            op.busy_with = None
            return
        call.truth, call.seat, call.waiting = "answered", op.seat, False
        call.form = {
            "seat": op.seat,
            "description": f"来电 {call.id} 反映的问题",
            "category_code": self.rng.choice(CATEGORIES),
        }
        if self.rng.random() < 0.2:
            self.handler.submit_case_form(call.id, call.form)  # filled in during the call
        self.after(self.rng.lognormvariate(math.log(160), 0.5), lambda: self.hang_up(call, op))

    def hang_up(self, call: Call, op: Operator) -> None:
        self.handler.seat_talked(call.id, op.seat, "agent", time.time())
        call.hung_up_wall = time.monotonic()
        op.busy_with = None
        form = call.form
        self.forms_due += 1

        def send_form() -> None:
            self.handler.submit_case_form(call.id, form)
            self.forms_due -= 1

        self.after(self.rng.uniform(5, 60), send_form)

    def offers(self, stop: threading.Event) -> None:
        for call_id, seat in offer_stream(self.redis, self.queue.keys, stop):
            call = self.calls.get(call_id)
            if call is not None:
                self.at(self.now(), lambda c=call, s=seat: self.offered(c, s))

    def offered(self, call: Call, seat: str) -> None:
        if call.truth is None and self.queue.call(call.id).get("seat") == seat:
            self.follow(call, self.handler.handle(call.id, e.SeatOffered(seat, at=time.time())))

    def staff(self) -> None:
        """Heartbeats (and logging back in after the lapse), as consoles do."""
        for op in self.operators.values():
            if not self.heartbeats_on:
                break
            try:
                self.queue.heartbeat(op.seat)
            except QueueError:  # lost during the lapse: the operator logs in again
                op.busy_with = None
                self.queue.seat_login(op.seat)
        self.after(0.2 * self.speed, self.staff)

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> dict[str, object]:
        self.prepare()
        for name in ["reaper", *(f"worker-{n}" for n in range(1, self.args.workers + 1))]:
            self.start_process(name)
        for n in range(self.seat_count):
            seat = f"{1000 + n}"
            self.operators[seat] = Operator(seat)
            self.queue.seat_login(seat)
        stop = threading.Event()
        threading.Thread(target=self.offers, args=(stop,), daemon=True).start()
        time.sleep(0.3)
        self.t0 = time.monotonic()
        wall_s = self.window_s / self.speed
        threading.Thread(target=self.chaos, args=(stop, wall_s), daemon=True).start()
        for call in self.calls.values():
            self.at(call.arrive_s, lambda c=call: self.arrive(c))
        self.at(self.window_s / 2, self.lapse)
        self.at(0, self.staff)
        self.at(30, self.hold_turn)
        deadline = wall_s + 120 + 600 / self.speed
        while time.monotonic() - self.t0 < deadline:
            with self.lock:
                due = self.tasks[0] if self.tasks and self.tasks[0].at <= self.now() else None
                if due:
                    heapq.heappop(self.tasks)
            if due is None:
                if (
                    self.now() > self.window_s
                    and self.forms_due == 0
                    and all(
                        c.truth and (c.truth != "answered" or c.hung_up_wall)
                        for c in self.calls.values()
                    )
                ):
                    break
                time.sleep(0.002)
                continue
            due.run()
        played_s = time.monotonic() - self.t0
        return self.finish(stop, played_s)

    def lapse(self) -> None:
        """Every console goes quiet for 3 s of real time (past the reaper's 1 s seat TTL):
        seats are logged out, and nobody waiting may be hung up for it."""
        self.heartbeats_on = False
        self.after(3 * self.speed, self.resume)

    def resume(self) -> None:
        self.heartbeats_on = True

    def finish(self, stop: threading.Event, played_s: float) -> dict[str, object]:
        deadline = time.monotonic() + 120  # the worker and the reaper catch up
        truth = {c.id: c for c in self.calls.values()}
        answered = [c for c in truth.values() if c.truth == "answered"]
        forms = {c.id: (c.form or {}).get("description") for c in answered}
        while time.monotonic() < deadline:  # every case, with its form (retries included)
            with self.sessions() as session:
                filed = dict(
                    session.execute(
                        select(Case.call_id, Case.description).where(Case.call_id.in_(list(forms)))
                    ).all()
                )
            if filed == forms:
                break
            time.sleep(1)
        time.sleep(8)  # a last reaper round writes the call rows
        stop.set()
        for proc in self.procs.values():
            proc.terminate()
            proc.wait(timeout=20)
        with self.sessions() as session:
            while record_calls(session, self.redis, self.queue.keys):
                pass
            cases = {
                c.call_id: c
                for c in session.scalars(
                    select(Case).where(Case.call_id.in_([c.id for c in answered]))
                )
            }
            start = datetime.now(UTC) - timedelta(days=2)
            sql = figures(session, start, datetime.now(UTC) + timedelta(days=1))
            rows: dict[str, set[str]] = {}
            for call_id, outcome in session.execute(select(CallRecord.call_id, CallRecord.outcome)):
                rows.setdefault(outcome or "live", set()).add(call_id)
        live = self.queue.live_calls()
        delays = sorted(
            (
                cases[c.id].created_at.replace(tzinfo=UTC).timestamp()
                - (time.time() - (time.monotonic() - c.hung_up_wall))
            )
            for c in answered
            if c.id in cases and c.hung_up_wall
        )
        # The event stream's size, to size HOTLINE_EVENTS_MAXLEN for two days of calls.
        events = int(self.redis.xlen(self.queue.keys.events))
        events_bytes = int(self.redis.memory_usage(self.queue.keys.events, samples=0) or 0)
        counts = {
            k: sum(1 for c in truth.values() if c.truth == k)
            for k in ("answered", "abandoned", "callback", "turned_away")
        }
        special = [
            c
            for c in truth.values()
            if c.kind != "ordinary" and not c.racing_hangup and c.truth != "turned_away"
        ]
        return {
            "calls": len(truth),
            "speed": self.speed,
            "wall_s": round(played_s, 1),
            "seats": self.seat_count,
            "kills": self.kills,
            "answered": counts["answered"],
            "abandoned": counts["abandoned"],
            "callbacks": counts["callback"],
            "lost_calls": sum(1 for c in truth.values() if c.truth is None),
            "ghost_calls": len(live),
            "cases_created": len(cases),
            "cases_missing": len(answered) - len(cases),
            "cases_missing_form": sum(
                1
                for c in answered
                if c.id in cases and cases[c.id].description != (c.form or {}).get("description")
            ),
            "case_delay_s_p99": round(delays[int(len(delays) * 0.99) - 1], 2) if delays else None,
            "figures_match": self.figures_match(truth, rows, sql),
            "recognised_rate": round(sum(c.recognised for c in special) / len(special), 3)
            if special
            else None,
            "events_per_call": round(events / len(truth), 1) if truth else None,
            "event_stream_bytes_per_entry": round(events_bytes / events) if events else None,
        }

    @staticmethod
    def figures_match(truth: dict[str, Call], rows: dict[str, set[str]], sql) -> bool:  # type: ignore[no-untyped-def]
        """The SQL rows say of every call what the driver saw, and the figures count them.
        A hang-up racing the first webhook may or may not have entered the queue first."""

        def ids(kind: str, racing: bool | None = None) -> set[str]:
            return {
                c.id
                for c in truth.values()
                if c.truth == kind and (racing is None or c.racing_hangup == racing)
            }

        racing = ids("abandoned", racing=True)
        abandoned_rows = rows.get("abandoned", set())
        return (
            rows.get("answered", set()) == ids("answered")
            and rows.get("callback", set()) == ids("callback")
            and rows.get("turned_away", set()) == ids("turned_away")
            and ids("abandoned", racing=False) <= abandoned_rows <= ids("abandoned")
            and not rows.get("live")
            and sql.answered == len(ids("answered"))
            and sql.abandoned == len(abandoned_rows)
            and racing >= abandoned_rows - ids("abandoned", racing=False)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=87_000, help="calls in the whole day")
    parser.add_argument("--speed", type=float, default=50.0)
    parser.add_argument("--hours", default="0-24", help="window of the day, e.g. 9-11")
    parser.add_argument("--seats", type=int, default=0, help="default: sized for the peak")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="RQ workers, as `hotline run`")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--keep", type=Path, default=None, help="keep logs in this folder")
    args = parser.parse_args()
    first, _, last = args.hours.partition("-")
    args.window = (int(first), int(last))
    with tempfile.TemporaryDirectory(prefix="day-replay-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        server = RedisServer(workdir / "redis", durable=True).start()
        db_url = f"sqlite:///{workdir / 'hotline.db'}"
        upgrade(db_url)
        try:
            result = Replay(args, server.url, db_url, workdir).run()
        finally:
            server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
