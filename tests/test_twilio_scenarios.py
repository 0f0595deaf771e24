"""The simulator's scenarios, driven through the Twilio webhooks as Twilio would drive
them: the same outcomes as the simulator, one case per answered call."""

import threading
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import func, select
from twilio.rest import Client

from calls import RQ_QUEUE
from cases.db import engine_for, session_factory, upgrade
from cases.models import CallbackRequest, Case
from cases.seed import seed
from hotline.config import load_settings
from hotline.webapp import create_app
from simulator import Simulation, load_scenario
from tests.twilio_peer import AUTH_TOKEN, PUBLIC_BASE, TwilioSigner
from tests.twilio_scenarios import TwilioRestApi, TwilioScenario
from web.twilio.push import OfferNotifier

SCENARIOS = Path(__file__).resolve().parent.parent / "examples" / "scenarios"
API_TOKEN = "scenario-api-token"
ENV_FOR = {
    "offer_timeout_s": "HOTLINE_OFFER_TIMEOUT_S",
    "sticky_s": "HOTLINE_STICKY_S",
    "wrapup_s": "HOTLINE_WRAPUP_S",
}


def run_twilio(
    name: str,
    redis: Redis,
    redis_url: str,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):  # type: ignore[no-untyped-def]
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    env = {
        "HOTLINE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "HOTLINE_API_TOKEN": API_TOKEN,
        "HOTLINE_WRAPUP_S": "0",
        "HOTLINE_OFFER_TIMEOUT_S": "5",
        "HOTLINE_SEAT_TTL_S": "600",
        "HOTLINE_QUEUE": "twilio-" + name,
        "HOTLINE_SECRET_KEY": "test",
    }
    for key, value in scenario.get("queue", {}).items():
        env[ENV_FOR[key]] = str(value)
    # Twilio rings a seat for at least 5 s: the lease must be longer (see config).
    env["HOTLINE_OFFER_TIMEOUT_S"] = str(max(8.0, float(env["HOTLINE_OFFER_TIMEOUT_S"])))
    for key, value in env.items():  # the RQ jobs read the environment, as in a worker
        monkeypatch.setenv(key, value)
    # The database as the simulator prepares it (register, earlier open cases).
    sim = Simulation(scenario, redis, db_url, out=lambda _: None, queue_name="unused")
    sim.prepare_database()
    app = create_app({"SETTINGS": load_settings(env), "REDIS": redis, "TESTING": True})
    queue = app.extensions["hotline"].queue
    client = app.test_client()

    def api(method: str, path: str, **kw):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        return getattr(client, method)(path, headers=headers, **kw)

    rest = TwilioRestApi()
    twilio_client = Client("AC" + "0" * 32, AUTH_TOKEN)
    twilio_client.api.base_url = rest.base_url
    notifier = OfferNotifier(app.extensions["hotline"].handler, twilio_client, PUBLIC_BASE)
    stop = threading.Event()
    pusher = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    pusher.start()
    run = TwilioScenario(TwilioSigner(client), api, queue, scenario, rest)
    try:
        time.sleep(0.2)  # let the notifier subscribe
        run.run()
    finally:
        stop.set()
        pusher.join(timeout=5)
        rest.close()
    SimpleWorker([Queue(RQ_QUEUE, connection=redis)], connection=redis).work(
        burst=True, logging_level="WARNING"
    )
    handler = app.extensions["hotline"].handler
    outcomes = {c.spec["id"]: handler.load(c.sid).outcome for c in run.calls}
    sids = [c.sid for c in run.calls]
    with session_factory(engine_for(db_url))() as session:
        cases = session.scalar(select(func.count()).select_from(Case).where(Case.call_id.in_(sids)))
        callbacks = session.scalar(
            select(func.count())
            .select_from(CallbackRequest)
            .where(CallbackRequest.call_id.in_(sids))
        )
    return outcomes, cases, callbacks, run


def run_simulator(name: str, redis: Redis, db_url: str):  # type: ignore[no-untyped-def]
    sim = Simulation(
        load_scenario(SCENARIOS / f"{name}.toml"),
        redis,
        db_url,
        out=lambda _: None,
        queue_name="sim-" + name,
    )
    return sim.run()["outcomes"]


@pytest.mark.parametrize(
    "name",
    [
        "silence-reaches-a-person",
        "invalid-key-reaches-a-person",
        "dialect-choice",
        "vulnerable-caller-priority",
        "repeat-caller-sticky",
        "repeat-caller-fallback",
        "merged-hotline",
        "hangup-everywhere",
        "long-wait-callback",
        "no-seat-logged-in",
        "ring-no-answer",
    ],
)
def test_scenario_through_twilio_matches_the_simulator(
    name: str,
    redis: Redis,
    redis_server,
    tmp_path: Path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    db_url = f"sqlite:///{tmp_path / 'twilio.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as session:
        seed(session)
        session.commit()
    outcomes, cases, callbacks, run = run_twilio(
        name, redis, redis_server.url, db_url, tmp_path, monkeypatch
    )
    expected = run_simulator(name, redis, f"sqlite:///{tmp_path / 'sim.db'}")
    assert outcomes == expected, [c.heard for c in run.calls]
    answered = sum(o == "completed" for o in outcomes.values())
    assert cases == answered
    assert callbacks == sum(o == "callback" for o in outcomes.values())
