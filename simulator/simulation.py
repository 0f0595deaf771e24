"""`hotline simulate SCENARIO`: scripted callers and operators, run in real time through
the real call flow, the real Redis queue (with its reaper sweep), the real RQ worker and
the real case database. Prints what each caller heard and did, then one JSON line.

A scenario is a TOML file (see examples/scenarios/):

    [queue]                      # optional QueueSettings overrides (offer_timeout_s, ...)
    [[register]]  phone, name     # the vulnerable-citizen register
    [[open_case]] phone, seat, category, status
    [[operator]]  seat, skills, login_at_s, ready_at_s (paused until then),
                  answer_after_s ("never": does not answer),
                  talk_s, logout_at_s, category, district, description, resolved_on_phone
    [[call]]      id, caller, dialed, at_s, keys = [{at_s, digits}], hangup_at_s
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue as JobQueue
from rq import SimpleWorker
from sqlalchemy import func, select

from calls import RQ_QUEUE, CallerDirectory, CallHandler
from calls.desk import SYSTEM, Actor, Desk
from cases.db import engine_for, session_factory, upgrade
from cases.models import CallbackRequest, Case, CitizenRegister
from cases.phones import mask_phone, normalise
from cases.seed import seed
from cases.service import CallInfo, CaseDraft, create_case_for_call, transition, utcnow
from ivr import actions as a
from ivr import events as e
from ivr.prompts import render
from queueing import CallQueue
from queueing.events import queue_figures
from queueing.settings import QueueSettings

TICK_S = 0.05
UPDATE_EVERY_S = 1.0


class ScenarioError(ValueError):
    pass


@dataclass
class SimCall:
    spec: dict[str, Any]
    id: str
    started: bool = False
    finished: bool = False
    gather_deadline: float | None = None
    last_update: float = 0.0
    keys: list[dict[str, Any]] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    outcome: str | None = None


@dataclass
class SimOperator:
    spec: dict[str, Any]
    seat: str
    actor: Actor = SYSTEM
    logged_in: bool = False
    ready: bool = False
    ringing: str | None = None
    ring_started: float = 0.0
    talking: str | None = None
    talk_started: float = 0.0


def load_scenario(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if not data.get("call"):
        raise ScenarioError(f"{path}: a scenario needs at least one [[call]]")
    for n, call in enumerate(data["call"]):
        call.setdefault("id", f"sim-{n + 1}")
        call.setdefault("dialed", "12345")
        call.setdefault("caller", "")
        call.setdefault("at_s", 0.0)
    for op in data.get("operator", []):
        if "seat" not in op:
            raise ScenarioError(f"{path}: every [[operator]] needs a seat")
    return data


class Simulation:
    def __init__(
        self,
        scenario: dict[str, Any],
        redis: Redis,
        database_url: str,
        out: Callable[[str], None] = print,
        queue_name: str | None = None,
    ) -> None:
        self.scenario = scenario
        self.out = out
        overrides: dict[str, Any] = {  # QueueSettings fields, from the scenario's TOML
            "wrapup_s": 0.0,
            "offer_timeout_s": 5.0,
            "seat_heartbeat_ttl_s": 600.0,
        }
        overrides.update(scenario.get("queue", {}))
        if queue_name:
            overrides["name"] = queue_name
        self.queue = CallQueue(redis, QueueSettings(**overrides))
        self.jobs = JobQueue(RQ_QUEUE, connection=redis)
        self.database_url = database_url
        upgrade(database_url)
        self.sessions = session_factory(engine_for(database_url))
        self.handler = CallHandler(self.queue, self.jobs, CallerDirectory(self.sessions))
        self.desk = Desk(self.handler, self.sessions)
        self.calls = [SimCall(spec, spec["id"]) for spec in scenario["call"]]
        self.operators = [
            SimOperator(spec, spec["seat"], Actor(f"operator-{spec['seat']}", "operator"))
            for spec in scenario.get("operator", [])
        ]
        self.t0 = 0.0

    # -- set-up -------------------------------------------------------------------------

    def prepare_database(self) -> None:
        with self.sessions() as session:
            seed(session)
            for entry in self.scenario.get("register", []):
                phone = normalise(entry["phone"])  # as `hotline register add` stores it
                if not session.scalar(
                    select(CitizenRegister).where(CitizenRegister.phone == phone)
                ):
                    session.add(
                        CitizenRegister(
                            phone=phone,
                            name=entry.get("name", ""),
                            added_by="simulator",
                            added_at=utcnow(),
                        )
                    )
            session.commit()
            for n, entry in enumerate(self.scenario.get("open_case", [])):
                info = CallInfo(
                    call_id=f"earlier-{entry['phone']}-{n}",
                    caller_phone=normalise(entry["phone"]),
                    channel="sim",
                    operator_seat=entry.get("seat"),
                )
                case = create_case_for_call(
                    session, info, CaseDraft(category_code=entry.get("category"))
                )
                for status in entry.get("path", []):
                    transition(session, case, status, "simulator")
                session.commit()

    # -- output -------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.t0

    def say(self, call: SimCall, text: str) -> None:
        line = f"[{self.now():5.1f}s] {call.id}: {text}"
        call.transcript.append(text)
        self.out(line)

    def _perform(self, call: SimCall, actions: list[a.Action]) -> None:
        for action in actions:
            if isinstance(action, a.Play):
                self.say(call, f"hears 「{render(action.prompt, 'zh', **action.args)}」")
            elif isinstance(action, a.Gather):
                self.say(
                    call,
                    f"hears 「{render(action.prompt, 'zh', **action.args)}」"
                    f" (listening {action.timeout_s:.0f}s)",
                )
                call.gather_deadline = self.now() + action.timeout_s
            elif isinstance(action, a.Hold):
                call.gather_deadline = None
            elif isinstance(action, a.Bridge):
                call.gather_deadline = None
                self.say(call, f"rings seat {action.seat}")
                self._ring(action.seat, call.id)
            elif isinstance(action, a.HangUp):
                self.say(call, "is hung up by the hotline")
                self._finish(call)

    def _finish(self, call: SimCall) -> None:
        state = self.handler.load(call.id)
        call.outcome = state.outcome if state else "abandoned"
        call.finished = True

    # -- operators ---------------------------------------------------------------------

    def _ring(self, seat: str, call_id: str) -> None:
        self.handler.ringing(call_id, seat)
        for op in self.operators:
            if op.seat == seat:
                op.ringing, op.ring_started = call_id, self.now()

    def _call(self, call_id: str) -> SimCall:
        return next(c for c in self.calls if c.id == call_id)

    def _operator_step(self, op: SimOperator) -> None:
        spec, now = op.spec, self.now()
        if (
            not op.logged_in
            and now >= spec.get("login_at_s", 0)
            and now < spec.get("logout_at_s", float("inf"))
        ):
            skills = spec.get("skills", ["mandarin"])
            self.desk.login_seat(op.actor, op.seat, skills)
            op.logged_in = True
            self.out(f"[{now:5.1f}s] seat {op.seat} logs in ({','.join(skills)})")
            if now < spec.get("ready_at_s", 0):
                self.desk.set_seat_state(op.actor, op.seat, "paused", "other")
        if op.logged_in and not op.ready and now >= spec.get("ready_at_s", 0):
            op.ready = True
            if spec.get("ready_at_s", 0) > 0:
                self.desk.set_seat_state(op.actor, op.seat, "available")
                self.out(f"[{now:5.1f}s] seat {op.seat} is ready")
        if op.logged_in and now >= spec.get("logout_at_s", float("inf")) and not op.talking:
            self.desk.logout_seat(op.actor, op.seat)
            op.logged_in = False
            self.out(f"[{now:5.1f}s] seat {op.seat} logs out")
        if op.ringing:
            call_id = op.ringing
            record = self.queue.call(call_id)
            if record.get("state") != "offered" or record.get("seat") != op.seat:
                op.ringing = None  # caller hung up, or the offer was taken back
                return
            answer_after = spec.get("answer_after_s", 1.0)
            if answer_after != "never" and now - op.ring_started >= float(answer_after):
                _, media = self.desk.answer(op.actor, call_id, op.seat, at=now)
                op.ringing, op.talking, op.talk_started = None, call_id, now
                call = self._call(call_id)
                self._perform(call, media)
                waited = int(record["offered_at"]) - int(record["entered"])
                self.say(call, f"talks with seat {op.seat} (waited {waited / 1000:.1f}s)")
        if op.talking:
            call_id = op.talking
            record = self.queue.call(call_id)
            form = {
                "seat": op.seat,
                "description": spec.get("description", "市民来电反映问题"),
                "category_code": spec.get("category"),
                "district_code": spec.get("district"),
                "resolved_on_phone": bool(spec.get("resolved_on_phone", False)),
            }
            if record.get("state") != "on_call":  # the caller hung up: write it up anyway
                self.desk.file_form(op.actor, call_id, form)
                op.talking = None
            elif now - op.talk_started >= float(spec.get("talk_s", 2.0)):
                self.desk.file_form(op.actor, call_id, form)
                self.desk.complete(op.actor, call_id)
                call = self._call(call_id)
                self.say(call, f"conversation ends (seat {op.seat} hangs up)")
                self._perform(call, self.handler.handle(call_id, e.Hangup(at=now)))
                self._finish(call)
                op.talking = None

    # -- callers ---------------------------------------------------------------------

    def _caller_step(self, call: SimCall) -> None:
        now = self.now()
        spec = call.spec
        if not call.started:
            if now < spec["at_s"]:
                return
            call.started = True
            call.keys = sorted(spec.get("keys", []), key=lambda k: k["at_s"])
            self.say(call, f"{mask_phone(spec['caller']) or '(withheld)'} dials {spec['dialed']}")
            self._perform(
                call, self.handler.start(call.id, spec["caller"], spec["dialed"], "sim", at=now)
            )
            return
        hangup_at = spec.get("hangup_at_s")
        if hangup_at is not None and now >= float(hangup_at):
            self.say(call, "hangs up")
            self._perform(call, self.handler.handle(call.id, e.Hangup(at=now)))
            self._finish(call)
            return
        while call.keys and now >= call.keys[0]["at_s"]:
            key = call.keys.pop(0)
            if call.gather_deadline is None:
                self.say(call, f"presses {key['digits']} (nobody is listening)")
                continue
            self.say(call, f"presses {key['digits']}")
            call.gather_deadline = None
            self._perform(call, self.handler.handle(call.id, e.Digits(str(key["digits"]), at=now)))
        if call.finished:
            return
        if call.gather_deadline is not None and now >= call.gather_deadline:
            call.gather_deadline = None
            self._perform(call, self.handler.handle(call.id, e.InputTimeout(at=now)))
        if call.finished or call.gather_deadline is not None:
            # While a menu plays, only an offer interrupts.
            if (
                call.gather_deadline is not None
                and self.queue.call(call.id).get("state") == "offered"
            ):
                call.gather_deadline = None
                actions, _ = self.handler.queue_update(call.id, at=now)
                self._perform(call, actions)
            return
        if now - call.last_update >= UPDATE_EVERY_S or self._offered(call):
            call.last_update = now
            actions, state = self.handler.queue_update(call.id, at=now)
            self._perform(call, actions)

    def _offered(self, call: SimCall) -> bool:
        state = self.handler.load(call.id)
        return bool(
            state
            and state.phase != "ringing"
            and self.queue.call(call.id).get("state") == "offered"
        )

    # -- run ---------------------------------------------------------------------------

    def run(self, timeout_s: float = 120.0) -> dict[str, Any]:
        self.prepare_database()
        self.t0 = time.monotonic()
        while not all(c.finished for c in self.calls):
            if self.now() > timeout_s:
                for call in self.calls:
                    if not call.finished:
                        self.say(call, "simulation timed out: hangs up")
                        self._perform(call, self.handler.handle(call.id, e.Hangup(at=self.now())))
                        self._finish(call)
                break
            for op in self.operators:
                self._operator_step(op)
            for call in self.calls:
                if not call.finished:
                    self._caller_step(call)
            self.queue.tick()  # the reaper's sweep
            time.sleep(TICK_S)
        for op in self.operators:  # let operators finish their forms
            if op.talking:
                self._operator_step(op)
        SimpleWorker([self.jobs], connection=self.queue.redis).work(
            burst=True, logging_level="WARNING"
        )
        return self.figures()

    def figures(self) -> dict[str, Any]:
        ids = [c.id for c in self.calls]
        with self.sessions() as session:
            cases = session.scalar(
                select(func.count()).select_from(Case).where(Case.call_id.in_(ids))
            )
            callbacks = session.scalar(
                select(func.count())
                .select_from(CallbackRequest)
                .where(CallbackRequest.call_id.in_(ids))
            )
        outcomes = [c.outcome for c in self.calls]
        answered = sum(o in ("completed", "connected") for o in outcomes)
        abandoned = sum(o == "abandoned" for o in outcomes)
        requested = sum(o == "callback" for o in outcomes)
        qf = queue_figures(self.queue.redis, self.queue.keys)
        return {
            "offered": len(self.calls),
            "answered": answered,
            "abandoned": abandoned,
            "callbacks_requested": requested,
            "callbacks_recorded": callbacks,
            "connection_rate": qf.connection_rate,  # defined once: queueing.indicators
            "avg_wait_s": qf.avg_wait_s,
            "ring_no_answer": qf.ring_no_answer,
            "cases_created": cases,
            "outcomes": {c.id: c.outcome for c in self.calls},
        }


def simulate(
    path: Path,
    redis_url: str,
    database_url: str | None,
    workdir: Path,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run a scenario on the given Redis, and on a private SQLite file unless a database
    URL is given. Never touches the production queue: it uses a queue of its own."""
    scenario = load_scenario(path)
    database_url = database_url or f"sqlite:///{workdir / 'simulation.db'}"
    previous = {k: os.environ.get(k) for k in ("REDIS_URL", "DATABASE_URL", "HOTLINE_QUEUE")}
    queue_name = f"sim-{int(time.time() * 1000)}"
    # The RQ jobs read their settings from the environment, as in a real worker.
    os.environ.update(REDIS_URL=redis_url, DATABASE_URL=database_url, HOTLINE_QUEUE=queue_name)
    try:
        sim = Simulation(scenario, Redis.from_url(redis_url), database_url, out, queue_name)
        figures = sim.run()
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    out(json.dumps(figures, ensure_ascii=False))
    return figures
