"""The simulator's scenarios through the FastAGI server, driven by the Asterisk
emulator (FastAGI and AMI as Asterisk speaks them): the same outcomes as the simulator."""

from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import func, select

from calls import RQ_QUEUE
from cases.db import engine_for, session_factory, upgrade
from cases.models import CallbackRequest, Case
from cases.seed import seed
from queueing import CallQueue
from queueing.settings import QueueSettings
from simulator import Simulation, load_scenario
from simulator.outbound import is_outbound
from tests.asterisk_harness import asterisk_rig, drive_scenario, operators_of

SCENARIOS = Path(__file__).resolve().parent.parent / "examples" / "scenarios"
# Inbound scenarios (the outbound ones, visit-* and callback-*, run in test_simulator
# and over Twilio and real Asterisk in their own tests).
NAMES = sorted(p.stem for p in SCENARIOS.glob("*.toml") if not is_outbound(p))


@pytest.mark.parametrize("name", NAMES)
def test_scenario_through_asterisk_matches_the_simulator(
    name: str,
    redis: Redis,
    redis_server,
    tmp_path: Path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    db_url = f"sqlite:///{tmp_path / 'asterisk.db'}"
    upgrade(db_url)
    sessions = session_factory(engine_for(db_url))
    with sessions() as session:
        seed(session)
        session.commit()
    overrides = {
        "wrapup_s": 0.0,
        "offer_timeout_s": 8.0,
        "seat_heartbeat_ttl_s": 600.0,
        "name": "ast-" + name,
    }
    overrides.update(scenario.get("queue", {}))
    overrides["offer_timeout_s"] = max(8.0, float(overrides["offer_timeout_s"]))
    for key, value in {
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": db_url,
        "HOTLINE_QUEUE": "ast-" + name,
    }.items():
        monkeypatch.setenv(key, value)  # the RQ jobs read them, as in a worker
    Simulation(scenario, redis, db_url, out=lambda _: None, queue_name="unused").prepare_database()
    queue = CallQueue(redis, QueueSettings(**overrides))
    with asterisk_rig(queue, sessions, operators_of(scenario)) as rig:
        channels = drive_scenario(rig, scenario)
        assert rig.server.active == 0  # every session ended; no thread holds a socket
    SimpleWorker([Queue(RQ_QUEUE, connection=redis)], connection=redis).work(
        burst=True, logging_level="WARNING"
    )
    calls = {cid: "ast-" + ch.uniqueid for cid, ch in channels.items()}
    outcomes = {cid: rig.handler.load(call).outcome for cid, call in calls.items()}
    sim = Simulation(
        scenario,
        redis,
        f"sqlite:///{tmp_path / 'sim.db'}",
        out=lambda _: None,
        queue_name="sim-" + name,
    )
    expected = sim.run()["outcomes"]
    assert outcomes == expected, {cid: ch.heard for cid, ch in channels.items()}
    with sessions() as session:
        ids = list(calls.values())
        cases = session.scalar(select(func.count()).select_from(Case).where(Case.call_id.in_(ids)))
        callbacks = session.scalar(
            select(func.count())
            .select_from(CallbackRequest)
            .where(CallbackRequest.call_id.in_(ids))
        )
    assert cases == sum(o == "completed" for o in outcomes.values())
    assert callbacks == sum(o == "callback" for o in outcomes.values())
