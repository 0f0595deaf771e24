"""The processes without the web's /metrics (the push process, the FastAGI server)
serve their own, under the web's rules for who may scrape, so that Prometheus sees
each one up, and its alert fires when one is down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.redis_server import free_port
from tests.push_rig import start_push, stop, with_push_port
from tests.real_rig import wait_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "scrape-token-for-the-tests-0123456789"


def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def family(text: str, name: str) -> dict[str, float]:
    """The samples of one metric family, by their label text."""
    samples = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key[len(name) :]] = float(value)
    return samples


@pytest.fixture
def env(redis_server, redis, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The processes' environment; ``redis`` empties the shared server after the test
    (the FastAGI server and the push process write to it)."""
    from cases.db import upgrade

    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    return {
        **os.environ,
        "HOTLINE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_server.url,
        "HOTLINE_SECRET_KEY": "metrics-test-" + "k" * 32,
        "HOTLINE_METRICS_TOKEN": TOKEN,
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def push(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    env = with_push_port(env)
    log = open(tmp_path / "push.log", "ab")  # noqa: SIM115
    process = start_push(env, log)
    try:
        yield f"http://127.0.0.1:{env['HOTLINE_PUSH_PORT']}"
    finally:
        stop(process)
        log.close()


def test_the_push_process_reports_its_streams_and_that_it_follows_the_queue(push: str) -> None:
    deadline = time.monotonic() + 30
    while True:  # it follows once its first read of the stream has come back
        status, text = scrape(push + "/metrics")
        assert status == 200
        if family(text, "hotline_push_following").get("") == 1.0:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    assert family(text, "hotline_push_streams") == {
        '{kind="consoles"}': 0.0,
        '{kind="inboxes"}': 0.0,
        '{kind="wallboards"}': 0.0,
    }


def test_the_push_process_refuses_scrapes_as_the_web_does(push: str) -> None:
    relayed = {"X-Forwarded-For": "203.0.113.9"}
    assert scrape(push + "/metrics", relayed)[0] == 404  # through an untrusted proxy
    assert scrape(push + "/metrics", {"Authorization": "Bearer wrong"})[0] == 403
    status, text = scrape(push + "/metrics", {**relayed, "Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "hotline_push_following" in text


def test_the_fastagi_server_reports_its_sessions(env: dict[str, str], tmp_path: Path) -> None:
    agi_port, metrics_port = free_port(), free_port()
    env = {
        **env,
        "HOTLINE_AGI_PORT": str(agi_port),
        "HOTLINE_AGI_METRICS_PORT": str(metrics_port),
    }
    log = open(tmp_path / "agi.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "hotline.cli", "agi", "serve"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(agi_port)  # a connection: itself a session, ended when it closes
        wait_port(metrics_port)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 30
        while True:  # the probe's session over (at once, or later on a loaded machine)
            status, text = scrape(url)
            assert status == 200
            active = family(text, "hotline_agi_sessions_active")
            if active == {"": 0.0}:
                break
            assert active == {"": 1.0} and time.monotonic() < deadline, active
            time.sleep(0.2)
        served = family(text, "hotline_agi_sessions_served_total")
        # A session that says nothing and goes: counted once it has been served.
        with socket.create_connection(("127.0.0.1", agi_port), timeout=5) as agi:
            agi.sendall(b"agi_network: yes\nagi_request: agi://127.0.0.1/inbound\n\n")
        deadline = time.monotonic() + 30
        while family(scrape(url)[1], "hotline_agi_sessions_served_total") == served:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert scrape(url, {"X-Forwarded-For": "203.0.113.9"})[0] == 404
        assert scrape(url, {"Authorization": "Bearer wrong"})[0] == 403
        assert scrape(f"http://127.0.0.1:{metrics_port}/other")[0] == 404
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
