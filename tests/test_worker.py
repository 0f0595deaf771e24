"""`hotline worker` as a process, against a real redis-server: a worker killed in the
middle of a job loses nothing, and its replacement takes the job back at once (RQ alone
notices only when the job's heartbeat lapses, 90 s later)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from redis import Redis
from rq import Queue

from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_a_killed_workers_job_is_taken_back_by_the_next_worker(
    redis_server, redis: Redis, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "HOTLINE_VAR_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    counter = "test:held-job-runs"
    redis.delete(counter)
    Queue("hotline", connection=redis).enqueue(
        "tests.held_jobs.held_on_first_run", counter, job_timeout=900
    )
    first = start_worker(env, tmp_path / "worker.log")
    try:
        wait_until(lambda: redis.get(counter) == b"1", timeout_s=30, what="the job ran")
        forked = wait_until(lambda: children_of(first.pid), timeout_s=10, what="the scheduler")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        # Its scheduler process does not live on as an orphan.
        wait_until(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in forked),  # type: ignore[union-attr]
            timeout_s=10,
            what="the killed worker's scheduler ended",
        )
        second = start_worker(env, tmp_path / "worker.log")
        try:
            wait_until(lambda: redis.get(counter) == b"2", timeout_s=30, what="the job ran")
        finally:
            second.terminate()
            second.wait(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
    assert "took back 1 jobs" in (tmp_path / "worker.log").read_text()
