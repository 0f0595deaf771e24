"""`hotline simulate` for outbound calls: scripted citizens answer (or not) the dialer's
return visits and call-backs, through the real dialer (its rules and work list), the
real outbound flow and handler, the real queue and case database. The dialer's clock
is simulated, so retries half an hour apart and a night outside calling hours pass in
moments; the telephony is the scenario's script.

A scenario (TOML, see examples/scenarios/visit-*.toml):

    [dialer]   start = "2026-11-30T10:00"  (Beijing time), max_attempts, ...
    [[visit]]  phone, category, answers = ["busy", "human:1"], opted_out = false
    [[callback]] phone, answers = ["human"], seat = "1001"   (an operator waiting)

An answer per attempt: "human:<keys>" (answered, then presses the keys, one per
question; "" is silence), "machine", "fax", "no-answer", "busy", "failed".
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from redis import Redis
from rq import Queue as JobQueue
from sqlalchemy import select

from calls import RQ_QUEUE, CallerDirectory, CallHandler
from calls.dialer import Dialer
from calls.dialing import DialerSettings
from calls.outbound import OutboundHandler
from cases.db import engine_for, session_factory, upgrade
from cases.dispatch import resolve, sign_for
from cases.models import Case, OptOut, OutboundItem
from cases.phones import mask_phone, normalise
from cases.seed import seed
from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch
from ivr import actions as a
from ivr import events as e
from ivr.prompts import render
from queueing import CallQueue, QueueSettings
from simulator.simulation import ScenarioError

BJ = ZoneInfo("Asia/Shanghai")


class ScriptedTelephony:
    """Places nothing: records each attempt for the simulation to play out."""

    def __init__(self) -> None:
        self.placed: list[tuple[str, str, str]] = []

    def originate(self, call_id: str, phone: str, kind: str) -> None:
        self.placed.append((call_id, phone, kind))


def _planned(item: OutboundItem | None) -> OutboundItem:
    # None only if a planned row vanished between two statements: not in a private database.
    if item is None:
        raise ScenarioError("the dialer planned no item")
    return item


def is_outbound(path: Path) -> bool:
    """A scenario of return visits or call-backs rather than of inbound calls."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return bool(data.get("visit") or data.get("callback"))


def load(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if not data.get("visit") and not data.get("callback"):
        raise ScenarioError(f"{path}: an outbound scenario needs a [[visit]] or a [[callback]]")
    return data


class OutboundSimulation:
    def __init__(
        self,
        scenario: dict[str, Any],
        redis: Redis,
        database_url: str,
        out: Callable[[str], None] = print,
        queue_name: str = "sim-out",
    ) -> None:
        self.scenario, self.out = scenario, out
        settings = scenario.get("dialer", {})
        self.clock_at = datetime.fromisoformat(settings.get("start", "2026-11-30T10:00")).replace(
            tzinfo=BJ
        )
        upgrade(database_url)
        self.sessions = session_factory(engine_for(database_url))
        self.queue = CallQueue(redis, QueueSettings(name=queue_name, wrapup_s=0.0))
        self.calls = CallHandler(
            self.queue, JobQueue(RQ_QUEUE, connection=redis), CallerDirectory(self.sessions)
        )
        self.telephony = ScriptedTelephony()
        rules = DialerSettings(
            max_attempts=int(settings.get("max_attempts", 3)), calls_per_s=1000.0
        )
        self.dialer = Dialer(
            redis, self.queue.keys, self.sessions, self.telephony, rules, now=lambda: self.clock_at
        )
        self.outbound = OutboundHandler(self.calls, self.dialer)
        self.scripts: dict[str, list[str]] = {}  # phone -> answers left
        self.seats: dict[str, str] = {}  # phone -> the seat that should take their call-back
        self.results: dict[str, dict[str, Any]] = {}

    def say(self, who: str, text: str) -> None:
        self.out(f"[{self.clock_at.astimezone(BJ):%m-%d %H:%M}] {mask_phone(who)}: {text}")

    def prepare(self) -> None:
        with self.sessions() as db:
            seed(db)
            db.commit()
            for n, visit in enumerate(self.scenario.get("visit", [])):
                phone = normalise(visit["phone"])
                self.scripts[phone] = list(visit.get("answers", []))
                case = create_case_for_call(
                    db,
                    CallInfo(f"sim-visit-{n}", phone, "sim", "1001"),
                    CaseDraft(
                        description=visit.get("description", "路灯不亮"),
                        category_code=visit.get("category", "street-vending"),
                        dispatch=False,
                    ),
                )
                dispatch(db, case, "1001")
                sign_for(db, case, "sim-unit", case.department_id)
                resolve(db, case, "sim-unit", case.department_id, "已处理")
                if visit.get("opted_out"):
                    db.add(OptOut(phone=phone, added_at=self.clock_at, added_by="simulator"))
                item = self.dialer.plan(
                    db, f"visit:{case.id}", "return_visit", phone, self.clock_at, case_id=case.id
                )
                db.commit()
                self.dialer.index(_planned(item))
                self.results[phone] = {"kind": "return_visit", "case": case.number}
            for n, callback in enumerate(self.scenario.get("callback", [])):
                phone = normalise(callback["phone"])
                self.scripts[phone] = list(callback.get("answers", []))
                if callback.get("seat"):
                    self.seats[phone] = callback["seat"]
                    self.queue.seat_login(callback["seat"])
                item = self.dialer.plan(
                    db,
                    f"callback:sim-{n}",
                    "callback",
                    phone,
                    self.clock_at,
                    call_id=f"sim-missed-{n}",
                )
                db.commit()
                self.dialer.index(_planned(item))
                self.results[phone] = {"kind": "callback"}

    def _play(self, phone: str, actions: list[a.Action]) -> None:
        for action in actions:
            if isinstance(action, a.Play | a.Gather):
                self.say(phone, f"hears 「{render(action.prompt, 'zh', **action.args)}」")
            elif isinstance(action, a.Hold):
                self.say(phone, "waits for an operator")
            elif isinstance(action, a.Bridge):
                self.say(phone, f"is put through to seat {action.seat}")
            elif isinstance(action, a.HangUp):
                self.say(phone, "is hung up by the hotline")

    def _attempt(self, call_id: str, phone: str) -> None:
        script = self.scripts.get(phone) or ["no-answer"]
        answer = script.pop(0) if script else "no-answer"
        sid = "SIM" + call_id.replace("-", "")
        self.outbound.begin(sid, call_id, "sim")
        kind, _, keys = answer.partition(":")
        if kind in ("no-answer", "busy", "failed"):
            self.say(phone, f"does not pick up ({kind})")
            self.outbound.handle(sid, e.OutboundFailed(kind, at=0.0))
            return
        answered_by = "human" if kind == "human" else kind
        self.say(phone, "answers" if kind == "human" else f"answers: {kind}")
        actions = self.outbound.handle(sid, e.OutboundAnswered(answered_by, at=0.0))
        self._play(phone, actions)
        presses = list(keys)
        while any(isinstance(x, a.Gather) for x in actions):
            if presses:
                key = presses.pop(0)
                self.say(phone, f"presses {key}")
                actions = self.outbound.handle(sid, e.Digits(key, at=0.0))
            else:
                self.say(phone, "says nothing")
                actions = self.outbound.handle(sid, e.InputTimeout(at=0.0))
            self._play(phone, actions)
        if any(isinstance(x, a.Hold | a.Bridge) for x in actions):
            record = self.queue.call(sid)
            self.results[phone]["reached_seat"] = record.get("seat") or None
            if record.get("seat"):
                self.say(phone, f"is offered to seat {record['seat']}")
        self.outbound.handle(sid, e.Hangup(at=0.0))

    def run(self, limit: int = 200) -> dict[str, Any]:
        self.prepare()
        handled = 0
        for _ in range(limit):
            self.dialer.run_once()
            while handled < len(self.telephony.placed):
                call_id, phone, _kind = self.telephony.placed[handled]
                handled += 1
                self._attempt(call_id, phone)
            nxt = self.dialer.redis.zrange(self.queue.keys.dial_due, 0, 0, withscores=True)
            if not nxt:
                break
            due = datetime.fromtimestamp(float(nxt[0][1]) / 1000, BJ)
            self.clock_at = max(self.clock_at + timedelta(seconds=1), due)  # time passes
        with self.sessions() as db:
            for item in db.scalars(select(OutboundItem)):
                result = self.results[item.phone]
                result.update(status=item.status, attempts=item.attempts, last=item.last_result)
                if item.case_id:
                    case = db.get(Case, item.case_id)
                    result.update(case_status=case.status, satisfaction=case.satisfaction)
        return {"calls_placed": len(self.telephony.placed), "results": self.results}


def simulate_outbound(
    path: Path, redis_url: str, database_url: str, out: Callable[[str], None] = print
) -> dict[str, Any]:
    scenario = load(path)
    sim = OutboundSimulation(scenario, Redis.from_url(redis_url), database_url, out)
    figures = sim.run()
    out(mask_phone(json.dumps(figures, ensure_ascii=False, default=str)))
    return figures
