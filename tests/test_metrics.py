"""/metrics after real activity: calls through the real queue (Redis), a Twilio webhook,
an AGI session on the real FastAGI server, a case job that fails in a real RQ worker,
a clock timer fired by the real reaper and a dialer attempt; then the families and
their values, no phone number or id in any label, and who may read it. Once more from
a real `hotline web` (gunicorn), whose workers write prometheus_client's multiprocess
files."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import SimpleWorker
from twilio.request_validator import RequestValidator

from agi_scripts.sessions import AgiSettings
from calls.counts import count_queue_events
from calls.dialer import Dialer
from calls.dialing import DialerSettings
from calls.reaper import Reaper
from hotline.config import load_settings
from hotline.redis_server import RedisServer
from hotline.webapp import create_app
from tests.test_agi_protocol import ENV, Peer, connect, serving, wait_idle
from tests.test_dialer import Clock, Telephony, plan_visit, resolved_case

ROOT = Path(__file__).resolve().parents[1]
TWILIO_TOKEN = "metrics-test-twilio-token"
BASE_URL = "https://hotline.example"
METRICS_TOKEN = "metrics-test-token-0123456789"
CALLER = "+8613800138001"
CALL_IDS = ("call-1", "call-2", "call-3", "call-4", "ast-1795812065.1")
SEATS = ("1001", "1002")
SID = "CA" + "0" * 31 + "9"

FAMILIES = (
    "hotline_calls_waiting",
    "hotline_calls_oldest_wait_seconds",
    "hotline_callback_offer_after_seconds",
    "hotline_seats",
    "hotline_seats_logged_in",
    "hotline_calls_offered",
    "hotline_calls_answered",
    "hotline_calls_abandoned",
    "hotline_calls_answered_within_15s",
    "hotline_webhook_duration_seconds",
    "hotline_agi_route_duration_seconds",
    "hotline_rq_jobs",
    "hotline_rq_workers",
    "hotline_clock_timers_due",
    "hotline_clock_timers_late",
    "hotline_clock_timers_fired",
    "hotline_dialer_attempts",
    "hotline_redis_failovers_seen",
)


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples[(name, tuple(sorted(labels.items())))]  # type: ignore[no-any-return]


def family_names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def assert_no_ids_in_labels(text: str) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, label in sample.labels.items():
                assert label not in (*CALL_IDS, *SEATS, SID, CALLER), (sample.name, name, label)
                assert not re.search(r"\d{5,}", label), (sample.name, name, label)


@pytest.fixture
def app(redis_server: RedisServer, redis: Redis, tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    db_url = f"sqlite:///{tmp_path / 'metrics.db'}"
    # The jobs a worker runs (the reaper's recordings upkeep among them) find the
    # database and the var dir in the environment, as under `hotline worker`.
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path))
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as s:
        seed(s)
        s.commit()
    settings = load_settings(
        {
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_server.url,
            "HOTLINE_SECRET_KEY": "test",
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "PUBLIC_BASE_URL": BASE_URL,
            "HOTLINE_METRICS_TOKEN": METRICS_TOKEN,
        }
    )
    return create_app({"SETTINGS": settings, "REDIS": redis, "TESTING": True})


def fail_a_job(jobs) -> None:  # type: ignore[no-untyped-def]
    """A job that raises, run by a real worker until it is in the failed registry."""
    jobs.enqueue("math.sqrt", -1)  # ValueError: math domain error
    SimpleWorker([jobs], connection=jobs.connection, job_class=jobs.job_class).work(
        burst=True, with_scheduler=False
    )


def agi_inbound_caller(queue) -> None:  # type: ignore[no-untyped-def]
    """A caller on the real FastAGI server: greeted, then hangs up mid-greeting."""
    with serving(queue, AgiSettings(sounds="/s")) as server:
        sock = connect(server)
        peer = Peer(sock)
        peer.send(ENV.replace("ivr?dept=12345", "inbound"))
        peer.expect("200 result=0\n")  # ANSWER
        peer.expect("200 result=-1 endpos=1200\nHANGUP\n")
        sock.settimeout(5)
        assert sock.recv(100) == b""
        peer.close()
        wait_idle(server)


def test_metrics_after_real_activity(app) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["hotline"]
    handler, queue, redis = svc.handler, svc.queue, svc.redis
    reaper = Reaper(handler)
    reaper.round()  # the reaper was running before the calls: counting starts here
    client = app.test_client()

    fail_a_job(svc.jobs)
    queue.seat_login("1001", ["mandarin"], owner="wang")
    queue.seat_login("1002", ["english"], owner="li")
    queue.seat_state("1002", "paused", "lunch")
    assert queue.enqueue("call-1", caller=CALLER).offers  # offered to 1001 at once
    queue.answer("call-1", "1001")
    queue.enqueue("call-2", caller=CALLER)
    queue.enqueue("call-3", caller=CALLER)
    queue.enqueue("call-4", skill="english", caller=CALLER)
    queue.hangup("call-3")  # gave up at once: a short abandon
    handler.conversation_ended("call-1", by="agent")  # its case job waits: the backlog
    agi_inbound_caller(queue)  # waits for Mandarin (only the h extension would end it)

    params = {"CallSid": SID, "From": CALLER, "To": "12345"}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(BASE_URL + "/twilio/voice", params)
    answer = client.post("/twilio/voice", data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200

    now_ms = int(time.time() * 1000)
    redis.zadd(queue.keys.clocks, {"999999:handling_due": now_ms - 60_000})  # a case since gone

    sessions = handler.directory.sessions
    telephony = Telephony()
    clock = Clock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))  # 10:00 Beijing
    dialer = Dialer(
        redis, queue.keys, sessions, telephony, DialerSettings(calls_per_s=1000), now=clock
    )
    plan_visit(sessions, dialer, resolved_case(sessions, CALLER), clock.at)
    assert dialer.run_once() == 1
    dialer.finished(telephony.placed[0][0], "busy")

    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.mimetype == "text/plain"
    samples = scrape(before.get_data(as_text=True))
    assert value(samples, "hotline_clock_timers_due") == 1
    assert value(samples, "hotline_clock_timers_late") == 1

    reaper.next_sweep = reaper.next_clock = 0  # its next round sweeps, counts and fires now
    reaper.round()
    time.sleep(1.1)  # past the scrape cache
    text = client.get("/metrics").get_data(as_text=True)
    samples = scrape(text)
    assert family_names(text) >= set(FAMILIES), set(FAMILIES) - family_names(text)

    # call-2, the AGI caller and the Twilio caller (queued while the menu plays)
    assert value(samples, "hotline_calls_waiting", skill="mandarin") == 3
    assert value(samples, "hotline_calls_waiting", skill="english") == 1
    assert value(samples, "hotline_calls_waiting", skill="hainanese") == 0
    assert value(samples, "hotline_calls_oldest_wait_seconds", skill="mandarin") > 0
    assert value(samples, "hotline_calls_oldest_wait_seconds", skill="hainanese") == 0
    assert value(samples, "hotline_callback_offer_after_seconds") == 180
    assert value(samples, "hotline_seats", state="wrap_up") == 1
    assert value(samples, "hotline_seats", state="paused") == 1
    assert value(samples, "hotline_seats", state="available") == 0
    assert value(samples, "hotline_seats_logged_in") == 2
    assert value(samples, "hotline_seats_staffed", skill="english") == 1

    # Four calls, the AGI caller and the Twilio caller entered the queue. Answered:
    # call-1, within 15 s. Abandoned: call-3, within 5 s.
    assert value(samples, "hotline_calls_offered_total") == 6
    assert value(samples, "hotline_calls_answered_total") == 1
    assert value(samples, "hotline_calls_answered_within_15s_total") == 1
    assert value(samples, "hotline_calls_abandoned_total") == 1
    assert value(samples, "hotline_calls_abandoned_short_total") == 1
    assert value(samples, "hotline_calls_completed_total") == 1
    assert value(samples, "hotline_call_answer_wait_seconds_bucket", le="15.0") == 1
    assert value(samples, "hotline_call_answer_wait_seconds_count") == 1

    assert value(samples, "hotline_webhook_duration_seconds_count", route="voice") >= 1
    assert value(samples, "hotline_agi_route_duration_seconds_count", route="inbound") >= 1

    assert value(samples, "hotline_rq_jobs", state="queued") >= 1  # call-1's case job
    assert value(samples, "hotline_rq_jobs", state="failed") == 1
    assert value(samples, "hotline_rq_workers") == 0  # the burst worker has gone

    assert value(samples, "hotline_clock_timers_due") == 0
    assert value(samples, "hotline_clock_timers_late") == 0
    assert value(samples, "hotline_clock_timers_fired_total", result="stale") == 1
    assert value(samples, "hotline_dialer_attempts_total", result="busy") == 1
    assert value(samples, "hotline_redis_failovers_seen_total") >= 0
    assert value(samples, "hotline_redis_up") == 1
    assert time.time() - value(samples, "hotline_reaper_last_count_timestamp_seconds") < 60

    assert_no_ids_in_labels(text)
    assert CALLER not in text and CALLER.lstrip("+") not in text


def test_counting_the_stream_twice_counts_each_event_once(redis: Redis, queue) -> None:  # type: ignore[no-untyped-def]
    count_queue_events(redis, queue.keys)
    queue.seat_login("1001")
    queue.enqueue("call-1")
    queue.answer("call-1", "1001")
    assert count_queue_events(redis, queue.keys) > 0
    assert count_queue_events(redis, queue.keys) == 0  # a second reaper finds nothing new
    assert redis.hget(queue.keys.counts, "calls:answered") == b"1"


def test_metrics_are_not_public(app) -> None:  # type: ignore[no-untyped-def]
    outside = app.test_client()
    outside.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    assert outside.get("/metrics").status_code == 404
    assert outside.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert outside.get("/metrics", headers=bearer).status_code == 200

    inside = app.test_client()  # 127.0.0.1
    assert inside.get("/metrics").status_code == 200
    # Relayed by a proxy on loopback that the app was not told to trust: from outside.
    relayed = {"X-Forwarded-For": "203.0.113.9"}
    assert inside.get("/metrics", headers=relayed).status_code == 404
    assert inside.get("/metrics", headers={**relayed, **bearer}).status_code == 200


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), ""


@pytest.fixture
def served(redis_server: RedisServer, redis: Redis, tmp_path: Path, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from tests.test_web_command import hotline_web

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("HOTLINE_METRICS_TOKEN", METRICS_TOKEN)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("PUBLIC_BASE_URL", BASE_URL)
    with hotline_web(redis_server, tmp_path / "var", tmp_path / "home") as url:
        yield url


@pytest.mark.slow
def test_gunicorn_serves_every_process_metrics_from_the_multiprocess_files(
    served: str, redis: Redis, tmp_path: Path
) -> None:
    params = {"CallSid": SID, "From": CALLER, "To": "12345"}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(BASE_URL + "/twilio/voice", params)
    request = urllib.request.Request(
        served + "/twilio/voice",
        data=urllib.parse.urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    status, text = http_get(served + "/metrics")
    assert status == 200
    assert list((tmp_path / "var" / "metrics").glob("histogram_*.db"))  # the worker's file
    samples = scrape(text)
    assert value(samples, "hotline_webhook_duration_seconds_count", route="voice") == 1
    assert family_names(text) >= {"hotline_calls_waiting", "hotline_seats", "hotline_rq_jobs"}
    assert_no_ids_in_labels(text)

    assert http_get(served + "/metrics", {"X-Forwarded-For": "203.0.113.9"})[0] == 404
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}", "X-Forwarded-For": "203.0.113.9"}
    assert http_get(served + "/metrics", bearer)[0] == 200


def test_every_alert_names_only_metrics_that_exist(app) -> None:  # type: ignore[no-untyped-def]
    """Each rule's expression names only families /metrics serves (or Prometheus's own
    ``up``), so no alert waits forever on a metric that was renamed."""
    from prometheus_client import CollectorRegistry, generate_latest

    from calls.metrics import AgiCollector, PushCollector

    others = CollectorRegistry(auto_describe=False)  # what push and FastAGI serve
    others.register(PushCollector(lambda: {"consoles": 0}, lambda: True))
    others.register(AgiCollector(SimpleNamespace(active=0, served=0, refused=0, unauthenticated=0)))
    text = app.test_client().get("/metrics").get_data(as_text=True)
    text += generate_latest(others).decode()
    served = family_names(text)
    sample_names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    rules = yaml.safe_load((ROOT / "docker" / "prometheus" / "alerts.yml").read_text())
    wanted = {
        "HotlineConnectionRateLow",
        "HotlineOldestWaitOverCallbackThreshold",
        "HotlineNoSeatLoggedIn",
        "HotlineWorkerBacklog",
        "HotlineOverdueCasesRising",
        "HotlineProcessDown",
    }
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert wanted <= set(alerts), wanted - set(alerts)
    for name, expr in alerts.items():
        for metric in set(re.findall(r"\b(hotline_[a-z0-9_]+|up)\b", expr)):
            assert metric == "up" or metric in served or metric in sample_names, (name, metric)


def test_alert_rules_pass_promtool() -> None:
    """promtool (Debian's prometheus package) checks the rules and runs their unit
    tests (docker/prometheus/alerts_test.yml: each alert fires when it should and not
    on a quiet night)."""
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    folder = ROOT / "docker" / "prometheus"
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run(
            [promtool, *command], cwd=folder, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_a_sentinel_failover_is_counted(tmp_path: Path, tmp_path_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Real Sentinel (1 primary, 1 replica, 3 sentinels): after the primary is killed,
    the client that finds the new primary counts one failover, and /metrics says so."""
    from cases.db import upgrade
    from hotline.runtime import connect_redis
    from tests.sentinel_rig import SentinelRig
    from tests.test_sentinel import sentinel_settings

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with SentinelRig(tmp_path_factory.mktemp("sentinel")) as rig:
        settings = sentinel_settings(rig, tmp_path)
        upgrade(settings.database_url)
        client = connect_redis(settings)
        app = create_app({"SETTINGS": settings, "REDIS": client, "TESTING": True})
        metrics = app.test_client()

        def failovers() -> float:
            time.sleep(1.1)  # past the scrape cache
            samples = scrape(metrics.get("/metrics").get_data(as_text=True))
            return value(samples, "hotline_redis_failovers_seen_total")

        before = failovers()
        assert client.ping()
        assert failovers() == before  # finding the first primary is no failover
        rig.kill_primary()
        assert client.ping()  # waits out detection, election and promotion
        assert failovers() == before + 1


def test_a_scrape_does_not_wait_behind_a_stuck_read(  # type: ignore[no-untyped-def]
    app, redis: Redis, redis_server
) -> None:
    """Redis stops answering (its process frozen, as a primary is before a failover):
    the scrape that is reading waits for it, and the next one answers with the last
    snapshot instead of holding another request thread. The freeze lasts until the
    test ends it, so a slow machine cannot end it early."""
    import signal
    import threading

    from calls.metrics import ServiceCollector
    from tests.conftest import wait_until
    from web.metrics import _REGISTRY

    first = app.test_client().get("/metrics")
    assert first.status_code == 200
    registry = app.extensions[_REGISTRY]
    (collector,) = [c for c in registry._collector_to_names if isinstance(c, ServiceCollector)]
    time.sleep(1.1)  # past the scrape cache: the next scrape reads Redis
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    answers: list[object] = []
    try:
        stuck = threading.Thread(target=lambda: app.test_client().get("/metrics"))
        stuck.start()
        # The stuck scrape holds the read, however long a loaded machine takes to start it.
        wait_until(collector._lock.locked, timeout_s=30, what="the first scrape reading Redis")
        # The second in a thread of its own: should it wait for Redis too, the test fails
        # (and resumes Redis) rather than hang the run.
        second_scrape = threading.Thread(
            target=lambda: answers.append(app.test_client().get("/metrics"))
        )
        second_scrape.start()
        second_scrape.join(timeout=30)
        assert answers, "the second scrape waited behind the stuck read"
        assert stuck.is_alive()  # still waiting for Redis, while the second one answered
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    stuck.join()
    second_scrape.join()
    second = answers[0]
    assert second.status_code == 200  # type: ignore[attr-defined]
    assert family_names(second.get_data(as_text=True)) == family_names(  # type: ignore[attr-defined]
        first.get_data(as_text=True)
    )
