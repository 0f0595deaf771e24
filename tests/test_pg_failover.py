"""PostgreSQL restarts and a standby's promotion, with Debian's PostgreSQL on loopback,
under the real `hotline web` (gunicorn) and an RQ worker running in this process.

A case is filed through the API (the desk and casework the console and the workers
use), the database is restarted (a clean stop, or a kill -9 of the postmaster), and
the next form is filed into SQL at once, the worker's case job succeeds, and the
citizens' lookup page reads the case: no process of ours was restarted. Then a
primary with a streaming standby, and one DATABASE_URL naming both with
target_session_attrs=read-write: writes go to the primary, and after the primary is
stopped and the standby promoted, the same URL reaches the new primary; and a case the
asynchronous standby never received is filed again by the reaper's case sweep."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus

from calls.handler import RQ_QUEUE, job_id_for
from hotline.config import load_settings
from hotline.redis_server import free_port
from hotline.runtime import call_handler, call_queue
from tests.conftest import wait_until
from tests.pg import PostgresServer, pg_bin
from tests.real_rig import wait_port

ROOT = Path(__file__).resolve().parents[1]
API_TOKEN = "pg-failover-api-token"
FORM = {
    "description": "路灯不亮三天了",
    "category_code": "street-lights",
    "district_code": "longhua",
    "address": "龙华区滨海大道1号",
}
CALLER = "+8613800138000"

pytestmark = pytest.mark.skipif(
    not all(pg_bin(name) for name in ("initdb", "pg_ctl", "pg_basebackup")),
    reason="PostgreSQL's binaries are not installed (scripts/bootstrap.sh --test)",
)


def prepared(server: PostgresServer) -> str:
    """A migrated, seeded database on the server; its URL."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed

    url = server.create_database("hotline")
    upgrade(url)
    with session_factory(engine_for(url))() as db:
        seed(db)
        db.commit()
    return url


class Site:
    """`hotline web` under gunicorn on DATABASE_URL, and this process's own handler and
    RQ worker on the same database (its engine is the one engine_for keeps)."""

    def __init__(self, db_url: str, redis_url: str, tmp_path: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "HOTLINE_SECRET_KEY": "pg-failover-test",
            "HOTLINE_API_TOKEN": API_TOKEN,
            "HOTLINE_WRAPUP_S": "0",
            "HOTLINE_WEB_PORT": str(self.port),
            "PYTHONPATH": str(ROOT),
        }
        self.url = f"http://127.0.0.1:{self.port}"
        settings = load_settings(self.env)
        self.redis = Redis.from_url(redis_url)
        self.handler = call_handler(settings, call_queue(settings, self.redis))
        self.log_path = tmp_path / "web.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "web", "--workers", "1", "--threads", "4"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_port(self.port)
        self.calls = 0

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.redis.close()

    def api(self, path: str, body: dict[str, object]) -> requests.Response:
        return requests.post(
            self.url + "/api" + path,
            json=body,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=30,
        )

    def take_a_call_and_file_its_case(self) -> str:
        """A call to seat 1001, answered, its form filed while talking (the desk writes
        it into SQL now, or keeps it for a job when SQL fails: that must not happen
        here), hung up, and its case job run by a worker. Returns the case number."""
        self.calls += 1
        call = f"pg-failover-{self.calls}"
        r = self.api("/seats/1001/login", {})
        assert r.status_code == 200, r.text
        self.handler.start(call, CALLER, "12345", "sim", time.time())
        assert self.handler.queue.call(call)["state"] == "offered"
        r = self.api(f"/calls/{call}/answer", {"seat": "1001"})
        assert r.status_code == 200, r.text
        r = self.api(f"/calls/{call}/case", FORM)
        assert (r.status_code, r.json()["result"]) == (200, "filed"), r.text
        number = str(r.json()["case"])
        r = self.api(f"/calls/{call}/complete", {})
        assert (r.status_code, r.json()["result"]) == (200, "completed"), r.text
        SimpleWorker([Queue(RQ_QUEUE, connection=self.redis)], connection=self.redis).work(
            burst=True, logging_level="WARNING"
        )
        job = Job.fetch(job_id_for("case", call), connection=self.redis)
        assert job.get_status() == JobStatus.FINISHED, job.latest_result()
        assert job.return_value() == number
        return number

    def assert_no_database_errors(self, caplog) -> None:  # type: ignore[no-untyped-def]
        """What swallows a database error and goes on (the audit line, the caller
        lookup) logged none: every operation reached SQL, not only the last ones."""
        self.log.flush()
        web_log = (self.log_path).read_text(errors="replace")
        for words in ("could not record", "kept for a retry", "Traceback"):
            assert words not in web_log, web_log
        assert "caller lookup failed" not in caplog.text

    def lookup(self, number: str) -> requests.Response:
        """The citizens' lookup page (anonymous, reads the case from SQL)."""
        browser = requests.Session()
        page = browser.get(self.url + "/lookup", timeout=30).text
        token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
        assert token, "no CSRF token on the lookup page"
        return browser.post(
            self.url + "/lookup",
            data={"csrf_token": token.group(1), "number": number, "phone": CALLER},
            timeout=30,
        )


@pytest.fixture
def site_on(redis_server, redis: Redis, tmp_path: Path, monkeypatch) -> Iterator:  # type: ignore[no-untyped-def]
    sites: list[Site] = []

    def start(db_url: str) -> Site:
        monkeypatch.setenv("DATABASE_URL", db_url)  # the in-process worker's database
        site = Site(db_url, redis_server.url, tmp_path)
        sites.append(site)
        return site

    yield start
    for site in sites:
        site.close()


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


def server_port(url: str) -> int:
    """The port of the server this URL's pooled engine is connected to now."""
    from sqlalchemy import text

    from cases.db import engine_for

    with engine_for(url).connect() as connection:
        return int(connection.execute(text("SELECT inet_server_port()")).scalar_one())


def case_numbers_on(server: PostgresServer) -> set[str]:
    with psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres dbname=hotline") as conn:
        return {row[0] for row in conn.execute("SELECT number FROM case_record")}


@pytest.mark.parametrize("outage", ["restart", "kill-9"])
def test_after_postgresql_restarts_the_next_case_is_filed_without_restarting_us(  # type: ignore[no-untyped-def]
    pg: PostgresServer, site_on, outage: str, caplog
) -> None:
    site = site_on(prepared(pg))
    before = site.take_a_call_and_file_its_case()
    assert site.lookup(before).status_code == 200

    if outage == "restart":
        pg.stop_server("fast")
    else:
        pg.kill_postmaster()
    pg.start_again()

    # Every pooled connection (web, worker, this process) was cut; nothing restarted.
    # The web's first request after it reads SQL.
    assert site.lookup(before).status_code == 200
    after = site.take_a_call_and_file_its_case()
    assert after != before
    page = site.lookup(after)
    assert page.status_code == 200 and after in page.text
    assert case_numbers_on(pg) == {before, after}
    assert site.process.poll() is None
    site.assert_no_database_errors(caplog)


def test_one_url_names_standby_and_primary_and_follows_a_promotion(  # type: ignore[no-untyped-def]
    site_on, caplog
) -> None:
    from cases.db import upgrade

    primary = PostgresServer().start()
    standby = PostgresServer()
    try:
        prepared(primary)
        standby.start_standby(primary)
        # The standby first: with target_session_attrs=read-write libpq passes over it.
        url = (
            "postgresql+psycopg://postgres@/hotline"
            f"?host=127.0.0.1:{standby.port}&host=127.0.0.1:{primary.port}"
            "&target_session_attrs=read-write"
        )
        upgrade(url)  # `hotline db upgrade` takes the same URL (at head: nothing to do)
        assert server_port(url) == primary.port
        site = site_on(url)
        first = site.take_a_call_and_file_its_case()
        assert first in case_numbers_on(primary)
        wait_until(lambda: first in case_numbers_on(standby), what="the standby replays it")

        primary.stop_server("fast")
        standby.promote()

        assert site.lookup(first).status_code == 200  # the web's first read after it
        second = site.take_a_call_and_file_its_case()
        assert case_numbers_on(standby) == {first, second}
        assert server_port(url) == standby.port
        page = site.lookup(second)
        assert page.status_code == 200 and second in page.text
        site.assert_no_database_errors(caplog)
    finally:
        standby.stop()
        primary.stop()


def test_a_case_an_async_standby_never_received_is_refiled_by_the_case_sweep(  # type: ignore[no-untyped-def]
    site_on,
) -> None:
    """Streaming is asynchronous: a case committed on the primary while the standby was
    not receiving is gone after the promotion. Its call's hang-up is still in Redis's
    event stream and its form in Redis: the reaper's case sweep, its cursor set back to
    before the loss (docs/operations.md), files the case again with that form."""
    from calls.handler import CaseSweep
    from cases.db import engine_for, session_factory
    from cases.models import Case

    primary = PostgresServer().start()
    standby = PostgresServer()
    try:
        prepared(primary)
        standby.start_standby(primary)
        url = (
            "postgresql+psycopg://postgres@/hotline"
            f"?host=127.0.0.1:{standby.port}&host=127.0.0.1:{primary.port}"
            "&target_session_attrs=read-write"
        )
        site = site_on(url)
        sweep = CaseSweep(site.handler, session_factory(engine_for(url)), grace_s=0.0)
        kept = site.take_a_call_and_file_its_case()
        wait_until(lambda: kept in case_numbers_on(standby), what="the standby replays it")
        assert sweep.run_once() == []  # every answered call has its case
        rewind_to = site.redis.xinfo_stream(site.handler.queue.keys.events)["last-generated-id"]

        standby.stop_server("fast")  # the standby stops receiving; the primary goes on
        lost = site.take_a_call_and_file_its_case()
        assert sweep.run_once() == []  # the sweep's cursor passes the lost call's hang-up
        primary.kill_postmaster()  # the primary's host is gone, and what only it had
        standby.start_again()
        standby.promote()

        assert case_numbers_on(standby) == {kept}
        assert sweep.run_once() == []  # nothing new in the stream: a plain sweep misses it
        site.redis.hset(site.handler.queue.keys.stats, CaseSweep.CURSOR_FIELD, rewind_to)
        assert sweep.run_once() == [f"pg-failover-{site.calls}"]
        SimpleWorker([Queue(RQ_QUEUE, connection=site.redis)], connection=site.redis).work(
            burst=True, logging_level="WARNING"
        )
        with session_factory(engine_for(url))() as db:
            refiled = db.query(Case).filter(Case.call_id == f"pg-failover-{site.calls}").one()
            assert (refiled.category.code, refiled.address) == (
                FORM["category_code"],
                FORM["address"],
            )
            # The day's numbering continues from what the standby has: the same number.
            assert refiled.number == lost
        assert case_numbers_on(standby) == {kept, lost}
    finally:
        standby.stop()
        primary.stop()
