"""A peak hour of calls mixed with online, SMS and Open311 requests (tasks) in one queue,
on a real redis-server running the queue's own Lua scripts, at an accelerated clock.

- Calls: Poisson arrivals (``--calls`` in the hour), callers who hang up after their
  patience, operators who ring 2-5 s, talk about 2.5 minutes and press "ready" after
  10-30 s of wrap-up; 2 % of rings never answered.
- Tasks: ``--tasks`` requests in the same hour (web, sms, open311), offered by the
  queue to seats with the ``online`` skill between calls. An operator takes an offer
  in 1-4 s (5 % are left to lapse and return), reads and replies (the first response)
  in about 45 s, files and completes in about 25 s more, always between calls: a call
  that rings interrupts the task (the operator needs 2-4 s more to pick up). How long a
  request takes to read and answer is the request's own. While writing the reply (after
  reading for up to 15 s) the operator's console saves the draft every 5 s, which tells
  the queue the operator is there; an operator it is handed on to reads it anew and
  goes on from the last saved draft. 3 % of takes are walk-aways: the operator leaves
  the free seat for 2-5 minutes at once (no draft, calls ring out there and pause the
  seat) and the request is handed on. An operator whose request was handed on stops
  working it 1-3 s after the console says so.
- Time: every duration is divided by ``--speed``; the driver and the reaper's sweeps
  (calls, then tasks, every 250 ms of simulated time) run against Redis's clock.
  Figures are in simulated seconds.

The same hour is run twice, with and without the tasks (the same calls, the same
seed), to compare the calls' 15-second rate. After the hour the operators work on
until every task is done (or 30 simulated minutes have passed).

It prints one JSON object as its last line: calls, tasks, task_first_response_s_p99,
task_first_response_s_p50, lost, double_offers, unfinished, call_answer_within_15s_rate,
call_answer_within_15s_rate_without_tasks, tasks_handed_on (by the queue, reply due),
walk_aways, calls_rung_at_away_seats, drafts_saved, and the run's settings.

    .venv/bin/python bench/channels_bench.py --calls 3600 --tasks 2000 --seats 280

Last runs (2026-12-01, 2-core machine shared, speed 20, 280 seats: about 192 erlangs of
calls and 39 of requests; drafts saved and 3 % of takes walking away): 3,561 calls, 2,000
tasks, task_first_response_s_p99 164.5 and 165.7 (p50 53.6 and 54.2, max 291.5 and
247.5), tasks_handed_on 49 and 62 (walk_aways 48 and 61), unfinished 0, lost 0,
double_offers 0, call_answer_within_15s_rate 0.9711 both against 0.9787 without the
tasks: 37 and 38 calls rang at a seat whose operator had walked away (before drafts and
walk-aways: 0.9798 against 0.9787). With 4dc4dbe's rule (a free seat's request handed on
after its whole time in silence) this bench gives p99 241.6 and 0.9767 (14 calls rang
at walk-aways' seats, kept at the back of the calls' line while they held the request).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis  # noqa: E402

from hotline.redis_server import RedisServer  # noqa: E402
from queueing import CallQueue, QueueError, QueueSettings  # noqa: E402
from queueing.tasks import TaskQueue, TaskSettings  # noqa: E402

HOUR_S = 3600.0
DRAIN_S = 1800.0
SWEEP_S = 0.25  # the reaper's interval, simulated
DRAFT_EVERY_S = 5.0  # the console saves the reply being written (web/static/console.js)
READ_S = 15.0  # reading a request before writing, at most (a third of its time at most)
WALK_AWAY = 0.03  # of takes: the operator leaves the free seat at once


@dataclass
class Call:
    """A caller, drawn in full beforehand: the same in both runs."""

    id: str
    arrive_s: float
    patience_s: float
    ring_s: float
    talk_s: float
    wrapup_s: float
    rings_out: bool
    answered_s: float | None = None
    gone: bool = False


@dataclass
class Job:
    id: str
    arrive_s: float
    channel: str
    read_s: float  # reading and replying: the first response at its end
    file_s: float  # category, unit, completion
    written_s: float = 0.0  # of the reply's writing, in the last draft saved
    responded_s: float | None = None
    done_s: float | None = None


@dataclass
class Operator:
    seat: str
    state: str = "idle"  # idle | ringing | talking | wrap_up | paused
    call: str | None = None  # the call ringing or talking
    held: list[str] = field(default_factory=list)  # tasks taken
    left_s: dict[str, float] = field(default_factory=dict)  # of each one's step in hand
    working: str | None = None  # the task in hand, between calls
    work_started_s: float = 0.0
    work_token: int = 0  # bumps to cancel a scheduled end of work
    step: dict[str, tuple[float, float]] = field(default_factory=dict)  # need, draft at take


@dataclass(order=True)
class Event:
    at: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class Hour:
    def __init__(self, args: argparse.Namespace, redis: Redis, with_tasks: bool) -> None:
        self.args, self.speed, self.with_tasks = args, args.speed, with_tasks
        self.redis = redis
        s = 1 / self.speed
        self.queue = CallQueue(
            redis,
            QueueSettings(
                name="peak" if with_tasks else "calls-only",
                offer_timeout_s=20 * s,
                offer_start_s=30 * s,
                wrapup_s=60 * s,  # the operator presses "ready" before it ends
                seat_heartbeat_ttl_s=10 * HOUR_S,
                sticky_s=0,
                max_wait_s=4 * HOUR_S,
                max_talk_s=2 * HOUR_S,
            ),
        )
        self.tasks = TaskQueue(
            self.queue,
            TaskSettings(per_seat=args.per_seat, offer_s=30 * s, first_response_s=180 * s),
        )
        self.events: list[Event] = []
        self.seq = itertools.count()
        self.t0 = 0.0
        rng = random.Random(args.seed)  # the same calls with and without tasks
        self.calls = self.arrivals(rng)
        task_rng = random.Random(args.seed + 1)
        self.jobs = self.task_arrivals(task_rng) if with_tasks else {}
        self.rng = random.Random(args.seed + 2)
        self.ops = {f"{3000 + n}": Operator(f"{3000 + n}") for n in range(args.seats)}

    # -- the clock --------------------------------------------------------------------

    def now(self) -> float:
        return (time.monotonic() - self.t0) * self.speed

    def after(self, sim_s: float, run: Callable[[], None]) -> None:
        heapq.heappush(self.events, Event(self.now() + sim_s, next(self.seq), run))

    def at(self, sim_s: float, run: Callable[[], None]) -> None:
        heapq.heappush(self.events, Event(sim_s, next(self.seq), run))

    # -- arrivals ---------------------------------------------------------------------

    def arrivals(self, rng: random.Random) -> dict[str, Call]:
        calls, t = {}, 0.0
        rate = self.args.calls / HOUR_S
        for n in range(self.args.calls * 2):
            t += rng.expovariate(rate)
            if t >= HOUR_S:
                break
            call = Call(
                f"call-{n}",
                t,
                patience_s=rng.expovariate(1 / 90) + 10,
                ring_s=rng.uniform(2, 5),
                talk_s=rng.lognormvariate(math.log(150), 0.5),
                wrapup_s=rng.uniform(10, 30),
                rings_out=rng.random() < 0.02,
            )
            calls[call.id] = call
        return calls

    def task_arrivals(self, rng: random.Random) -> dict[str, Job]:
        jobs = {}
        for n in range(self.args.tasks):
            job = Job(
                f"T-{n:05d}",
                rng.uniform(0, HOUR_S),
                rng.choice(("web", "sms", "open311")),
                rng.lognormvariate(math.log(40), 0.4),
                rng.lognormvariate(math.log(25), 0.4),
            )
            jobs[job.id] = job
        return jobs

    # -- calls --------------------------------------------------------------------------

    def arrive(self, call: Call) -> None:
        self.call_offers(self.queue.enqueue(call.id, skill="mandarin").offers)
        self.after(call.patience_s, lambda: self.give_up(call))

    def give_up(self, call: Call) -> None:
        if call.answered_s is None and not call.gone:
            call.gone = True
            self.call_offers(self.queue.hangup(call.id).offers)

    def call_offers(self, offers) -> None:  # type: ignore[no-untyped-def]
        for offer in offers:
            self.ring(self.calls[offer.call_id], self.ops[offer.seat_id])

    def ring(self, call: Call, op: Operator) -> None:
        """A call rings the seat: whatever request the operator is on waits."""
        if call.gone:
            return
        if op.state == "away":  # nobody at the seat: it rings out and pauses the seat
            self.calls_rung_away += 1
            self.queue.ringing(call.id, op.seat)
            self.after(25, lambda: self.rang_out_away(call, op))
            return
        delay = call.ring_s
        if op.working:  # in the middle of a request: a moment to leave it
            delay += self.rng.uniform(2, 4)
        self.pause_work(op)
        op.state, op.call = "ringing", call.id
        self.queue.ringing(call.id, op.seat)
        if call.rings_out:
            self.after(25, lambda: self.missed(call, op))
        else:
            self.after(delay, lambda: self.pick_up(call, op))

    def missed(self, call: Call, op: Operator) -> None:
        if op.call != call.id:
            return
        op.call, op.state = None, "paused"
        if not call.gone and self.queue.call(call.id).get("seat") == op.seat:
            self.call_offers(self.queue.no_answer(call.id, op.seat).offers)
        self.after(40, lambda: self.ready(op))

    def rang_out_away(self, call: Call, op: Operator) -> None:
        if op.state != "away" or call.gone:
            return
        if self.queue.call(call.id).get("seat") == op.seat:  # not yet lapsed in the queue
            self.call_offers(self.queue.no_answer(call.id, op.seat).offers)

    def come_back(self, op: Operator) -> None:
        """The operator is back at the seat: a call ringing there is picked up, a seat a
        call paused made free again."""
        op.state = "idle"
        seat = self.queue.seat(op.seat)
        if seat.get("state") == "offered" and seat.get("call") in self.calls:
            call = self.calls[seat["call"]]
            op.state, op.call = "ringing", call.id
            self.after(self.rng.uniform(1, 2), lambda: self.pick_up(call, op))
            return
        self.ready_again(op)

    def ready_again(self, op: Operator) -> None:
        if self.queue.seat(op.seat).get("state") == "paused":
            self.call_offers(self.queue.seat_state(op.seat, "available").offers)
        self.resume_work(op)

    def pick_up(self, call: Call, op: Operator) -> None:
        if op.call != call.id:
            return
        try:
            self.queue.answer(call.id, op.seat)
        except QueueError:  # the caller hung up as it rang, or its offer lapsed (paused)
            op.call, op.state = None, "idle"
            self.ready_again(op)
            return
        call.answered_s = self.now()
        op.state = "talking"
        self.after(call.talk_s, lambda: self.hang_up(call, op))

    def hang_up(self, call: Call, op: Operator) -> None:
        self.queue.complete(call.id)
        op.call, op.state = None, "wrap_up"
        self.after(call.wrapup_s, lambda: self.ready(op))

    def ready(self, op: Operator) -> None:
        if op.state not in ("wrap_up", "paused"):
            return
        op.state = "idle"
        self.call_offers(self.queue.seat_state(op.seat, "available").offers)
        self.resume_work(op)

    # -- tasks --------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        self.task_offers(self.tasks.submit(job.id, job.channel)[1])

    def task_offers(self, offers) -> None:  # type: ignore[no-untyped-def]
        for offer in offers:
            self.offers_made += 1
            if self.rng.random() < 0.05:
                continue  # not seen in time: the offer lapses and the task returns
            op = self.ops[offer.seat_id]
            self.after(self.rng.uniform(1, 4), lambda o=op, t=offer.task_id: self.take(o, t))

    def take(self, op: Operator, task: str) -> None:
        if op.state != "idle":
            return  # a call came first: the sweep gives the offer back
        try:
            _, offers = self.tasks.take(task, op.seat)
        except QueueError:  # the offer went back meanwhile (it lapsed)
            return
        if task not in op.held:  # handed back before its operator saw it go
            op.held.append(task)
        job = self.jobs[task]
        # Unanswered (new, or handed on): this operator reads it, then writes the rest of
        # the reply from the draft it came with.
        if job.responded_s is None:
            need = reading_s(job) + (job.read_s - reading_s(job) - job.written_s)
            op.step[task] = (need, job.written_s)
            op.left_s[task] = need
        else:
            op.left_s[task] = job.file_s
        self.task_offers(offers)
        if self.rng.random() < WALK_AWAY:  # gone from the seat, leaving the request
            self.walk_aways += 1
            op.state = "away"
            self.after(self.rng.uniform(120, 300), lambda: self.come_back(op))
            return
        self.resume_work(op)

    def resume_work(self, op: Operator) -> None:
        """Between calls, the oldest request in hand."""
        if op.working or not op.held or op.state != "idle":
            return
        # The console's list: requests handed on during a call are no longer there.
        for task in [t for t in op.held if self.tasks.task(t).get("seat") != op.seat]:
            self.drop(op, task)
        if not op.held:
            return
        # Replies first (the citizen waits for one), then filing, oldest first.
        op.held.sort(key=lambda t: (self.jobs[t].responded_s is not None, self.jobs[t].arrive_s))
        op.working = op.held[0]
        op.work_token += 1
        token = op.work_token
        op.work_started_s = self.now()
        self.after(op.left_s[op.working], lambda: self.work_step(op, token))
        if self.jobs[op.working].responded_s is None:
            self.after(DRAFT_EVERY_S, lambda: self.save_draft(op, token))

    def save_draft(self, op: Operator, token: int) -> None:
        """The console saves the reply being written, every few seconds while the
        operator writes it (not while reading it first)."""
        if token != op.work_token or not op.working:
            return
        task = op.working
        job = self.jobs[task]
        need, written_at_take = op.step[task]
        done = need - (op.left_s[task] - (self.now() - op.work_started_s))
        writing = done - reading_s(job) + written_at_take
        if writing > job.written_s:
            try:
                self.tasks.draft(task, op.seat, f"draft of {task}: {writing:.0f} s written")
            except QueueError:  # handed on before its operator saw it on the console
                self.drop(op, task)
                self.resume_work(op)
                return
            self.drafts_saved += 1
            job.written_s = writing
        self.after(DRAFT_EVERY_S, lambda: self.save_draft(op, token))

    def pause_work(self, op: Operator) -> None:
        if op.working:
            task = op.working
            op.left_s[task] = max(0.0, op.left_s[task] - (self.now() - op.work_started_s))
            op.work_token += 1
            op.working = None

    def drop(self, op: Operator, task: str) -> None:
        """The request is no longer the seat's (handed on): the operator leaves it."""
        if task not in op.held:
            return
        if op.working == task:
            op.work_token += 1
            op.working = None
        op.held.remove(task)
        op.left_s.pop(task, None)

    def notice_hand_ons(self) -> None:
        """The console says a request was handed on from the seat: its operator stops
        working it a moment later and goes on to the next."""
        start = f"({self.events_read}" if self.events_read else "-"
        for event_id, raw in self.redis.xrange(self.queue.keys.events, start, "+"):
            self.events_read = event_id.decode()
            if raw.get(b"type") != b"TASK_RETURNED" or raw.get(b"reason") != b"reply due":
                continue
            self.handed_on += 1
            op, task = self.ops.get(raw[b"seat"].decode()), raw[b"task"].decode()
            if op is not None and task in op.held:
                self.after(self.rng.uniform(1, 3), lambda o=op, t=task: self.handed_on_notice(o, t))

    def handed_on_notice(self, op: Operator, task: str) -> None:
        if task in op.held and self.tasks.task(task).get("seat") != op.seat:
            self.drop(op, task)
            self.resume_work(op)

    def work_step(self, op: Operator, token: int) -> None:
        if token != op.work_token or not op.working:
            return
        job = self.jobs[op.working]
        op.working = None
        try:
            if job.responded_s is None:  # read, and replied: the first response
                self.tasks.respond(job.id, op.seat)
                job.responded_s = self.now()
                op.left_s[job.id] = job.file_s
            else:  # filed and completed
                _, offers = self.tasks.done(job.id, op.seat)
                job.done_s = self.now()
                op.held.remove(job.id)
                op.left_s.pop(job.id, None)
                self.task_offers(offers)
        except QueueError:  # handed on before its operator saw it on the console
            self.drop(op, job.id)
        self.resume_work(op)

    # -- the run ------------------------------------------------------------------------

    def sweep(self) -> None:
        _, offers = self.queue.tick()
        self.call_offers(offers)
        if self.with_tasks:
            _, task_offers = self.tasks.tick()
            self.task_offers(task_offers)
            self.notice_hand_ons()

    def run(self) -> dict[str, object]:
        self.offers_made = self.handed_on = 0
        self.walk_aways = self.calls_rung_away = self.drafts_saved = 0
        self.events_read = ""
        for op in self.ops.values():
            self.queue.seat_login(op.seat, ["mandarin", "online"] if self.with_tasks else [])
        self.t0 = time.monotonic()
        for call in self.calls.values():
            self.at(call.arrive_s, lambda c=call: self.arrive(c))
        for job in self.jobs.values():
            self.at(job.arrive_s, lambda j=job: self.submit(j))
        next_sweep = 0.0
        end = HOUR_S + DRAIN_S
        late_ms: list[float] = []
        while True:
            now = self.now()
            while self.events and self.events[0].at <= now:
                event = heapq.heappop(self.events)
                late_ms.append((now - event.at) / self.speed * 1000)
                event.run()
            if now >= next_sweep:
                self.sweep()
                next_sweep = now + SWEEP_S
            if now >= HOUR_S and (
                now >= end or all(j.done_s is not None for j in self.jobs.values())
            ):
                break
            time.sleep(0.001)
        return self.result(now, late_ms)

    def result(self, played_s: float, late_ms: list[float]) -> dict[str, object]:
        calls = list(self.calls.values())
        within = sum(
            1 for c in calls if c.answered_s is not None and c.answered_s - c.arrive_s <= 15
        )
        responses = sorted(j.responded_s - j.arrive_s for j in self.jobs.values() if j.responded_s)
        known = set(self.tasks.live_ids())
        done = {j.id for j in self.jobs.values() if j.done_s is not None}
        lost = [j.id for j in self.jobs.values() if j.id not in done and j.id not in known]
        return {
            "calls": len(calls),
            "answered": sum(1 for c in calls if c.answered_s is not None),
            "call_answer_within_15s_rate": round(within / len(calls), 4) if calls else None,
            "tasks": len(self.jobs),
            "tasks_done": len(done),
            "unfinished": len(self.jobs) - len(done) - len(lost),
            "lost": len(lost),
            "double_offers": double_offers(self.redis, self.queue.keys.events),
            "task_first_response_s_p50": pct(responses, 0.5),
            "task_first_response_s_p99": pct(responses, 0.99),
            "task_first_response_s_max": round(responses[-1], 1) if responses else None,
            "tasks_answered": len(responses),
            "task_offers": self.offers_made,
            "tasks_handed_on": self.handed_on,
            "walk_aways": self.walk_aways,
            "calls_rung_at_away_seats": self.calls_rung_away,
            "drafts_saved": self.drafts_saved,
            "played_s": round(played_s, 1),
            "driver_late_ms_p99": pct(sorted(late_ms), 0.99),
        }


def reading_s(job: Job) -> float:
    """Reading the request before writing the reply (again by each operator)."""
    return min(READ_S, job.read_s / 3)


def pct(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1)


def double_offers(redis: Redis, stream: str) -> int:
    """From the event stream alone: a task offered while another seat still had it
    (offered and neither taken back nor done)."""
    holder: dict[str, str] = {}
    doubles = 0
    last = "-"
    while True:
        batch = redis.xrange(stream, last, "+", count=10_000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            return doubles
        for event_id, raw in batch:
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            kind, task = fields["type"], fields.get("task", "")
            if kind == "TASK_OFFER":
                if task in holder:
                    doubles += 1
                holder[task] = fields["seat"]
            elif kind in ("TASK_RETURNED", "TASK_DONE"):
                holder.pop(task, None)
            last = event_id.decode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3600, help="calls in the peak hour")
    parser.add_argument("--tasks", type=int, default=2000, help="requests in the same hour")
    parser.add_argument("--seats", type=int, default=280)
    parser.add_argument("--per-seat", type=int, default=3, help="tasks a seat may hold")
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hotline-channels-bench-"))
    with RedisServer(work / "redis", durable=False) as server:
        redis = Redis.from_url(server.url)
        without = Hour(args, redis, with_tasks=False).run()
        mixed = Hour(args, redis, with_tasks=True).run()
    rate, base = mixed["call_answer_within_15s_rate"], without["call_answer_within_15s_rate"]
    print(
        json.dumps(
            {
                **mixed,
                "call_answer_within_15s_rate_without_tasks": base,
                "call_rate_drop_points": round((base - rate) * 100, 2)  # type: ignore[operator]
                if rate is not None and base is not None
                else None,
                "answered_without_tasks": without["answered"],
                "seats": args.seats,
                "tasks_per_seat": args.per_seat,
                "speed": args.speed,
            }
        )
    )


if __name__ == "__main__":
    main()
