"""A registered elderly caller reaches a Hainanese seat (examples/scenarios/
elderly-chooses-hainanese.toml): through the simulator, and through the FastAGI server
driven by the Asterisk emulator, where the key lands in the hold loop or the offer."""

from pathlib import Path

from redis import Redis

from cases.db import engine_for, session_factory, upgrade
from cases.seed import seed
from queueing import CallQueue
from queueing.settings import QueueSettings
from simulator import Simulation, load_scenario
from tests.asterisk_harness import asterisk_rig, drive_scenario, operators_of
from tests.test_simulator import heard_by, run

NAME = "elderly-chooses-hainanese"
SCENARIO = Path(__file__).resolve().parent.parent / "examples" / "scenarios" / f"{NAME}.toml"


def test_a_registered_elder_pressing_1_is_answered_by_a_hainanese_seat(
    redis: Redis,
    redis_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    figures, lines, _ = run(NAME, redis_server, tmp_path)
    heard = heard_by(lines, "elderly")
    assert heard[1].startswith("hears 「讲海南话请按1。」"), heard  # the first word, after 10 s
    assert sum("讲海南话" in h for h in heard) == 1
    assert "presses 1" in heard
    assert any(h.startswith("talks with seat 2001") for h in heard), heard
    assert figures["outcomes"]["elderly"] == "completed"


def test_the_same_over_asterisk(redis: Redis, redis_server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    scenario = load_scenario(SCENARIO)
    db_url = f"sqlite:///{tmp_path / 'asterisk.db'}"
    upgrade(db_url)
    sessions = session_factory(engine_for(db_url))
    with sessions() as session:
        seed(session)
        session.commit()
    for key, value in {
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": db_url,
        "HOTLINE_QUEUE": "ast-" + NAME,
    }.items():
        monkeypatch.setenv(key, value)
    Simulation(scenario, redis, db_url, out=lambda _: None, queue_name="unused").prepare_database()
    queue = CallQueue(
        redis,
        QueueSettings(
            wrapup_s=0.0, offer_timeout_s=8.0, seat_heartbeat_ttl_s=600.0, name="ast-" + NAME
        ),
    )
    with asterisk_rig(queue, sessions, operators_of(scenario)) as rig:
        channels = drive_scenario(rig, scenario)
        elderly = rig.handler.load("ast-" + channels["elderly"].uniqueid)
    assert elderly is not None
    assert (elderly.seat, elderly.skill, elderly.priority) == ("2001", "hainanese", "vulnerable")
    assert elderly.outcome == "completed", channels["elderly"].heard
