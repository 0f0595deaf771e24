"""Whether a job's worker is alive, and taking back the jobs of one that was killed.

RQ notices an abandoned job only when its heartbeat lapses (90 s at the least). A
killed worker on this host is known dead at once by its pid, so the worker that
replaces it puts its jobs back in the queue before it starts: a case is late by the
restart, not by a minute and a half."""

from __future__ import annotations

import logging
import os
import socket

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import import_attribute

log = logging.getLogger("hotline.workers")

# Job names of the release before casework moved from cases/ to calls/: jobs queued by
# it still run. Drop after one release.
LEGACY_JOB_NAMES = {
    "cases.jobs.create_case": "calls.casework.create_case",
    "cases.jobs.file_stored_form": "calls.casework.file_stored_form",
    "cases.jobs.record_callback_request": "calls.casework.record_callback_request",
}


class HotlineJob(Job):
    """RQ's job, resolving the old job names to where their functions live now."""

    @property
    def func(self):  # type: ignore[no-untyped-def]
        moved = LEGACY_JOB_NAMES.get(self.func_name or "")
        return import_attribute(moved) if moved else super().func


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def worker_alive(redis: Redis, worker_name: str | None) -> bool:
    """False when the worker's key is gone, or it ran on this host under a pid that is
    not running (or is ours now: a container restarted as pid 1)."""
    if not worker_name:
        return False
    worker = Worker.find_by_key(
        Worker.redis_worker_namespace_prefix + worker_name, connection=redis
    )
    if worker is None or worker.death_date is not None:
        return False
    if worker.hostname == socket.gethostname() and worker.pid:
        return worker.pid != os.getpid() and _pid_alive(worker.pid)
    return True


def job_running(redis: Redis, job: Job) -> bool:
    """The job is started and its worker still lives."""
    return job.get_status(refresh=False) == JobStatus.STARTED and worker_alive(
        redis, job.worker_name
    )


def requeue_abandoned(queue: Queue) -> list[str]:
    """Put back in the queue every started job whose worker is dead. Jobs are idempotent,
    so one that had in fact finished its work only repeats it."""
    registry = queue.started_job_registry
    requeued: list[str] = []
    for job_id in registry.get_job_ids(cleanup=False):
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) != JobStatus.STARTED or worker_alive(
            queue.connection, job.worker_name
        ):
            continue
        registry.remove_executions(job)
        queue.enqueue_job(job)
        requeued.append(job.id)
    if requeued:
        log.warning("took back %d jobs of a worker that died: %s", len(requeued), requeued[:10])
    return requeued
