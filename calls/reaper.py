"""The reaper: the loop that keeps the queue and the clocks honest, every quarter second.

Each round it fires the dispatch clocks that are due (to the second), re-arms timers
from SQL in batches (the backstop for a Redis that lost them), sweeps the queue (ring
timeouts, wrap-up ends, lost seats, sticky fallback, talk past the maximum), and every
few seconds makes sure each answered call has its case and folds the event stream into
call detail rows. A database or Redis that is away is waited for, never fatal.

Several reapers may run (on different hosts): one sweeps, holding the "reaper" lease
(calls.lease), and the others stand by to take over."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import SQLAlchemyError

from calls import clocks
from calls.counts import count_clock_timers, count_queue_events
from calls.figures import record_calls
from calls.handler import CallHandler, CaseSweep
from calls.hot_topics import JOB_ID as HOT_TOPICS_JOB
from calls.hot_topics import scan_every_s as hot_topics_every_s
from calls.lease import Lease
from calls.recordings import UPKEEP_EVERY_S
from calls.reports import UPKEEP_EVERY_S as REPORTS_EVERY_S
from calls.tasks import put_back_lost
from cases.cdr import attach_case_numbers
from cases.service import utcnow
from queueing.tasks import TaskQueue, load_task_settings

log = logging.getLogger("hotline.reaper")

RECONCILE_BATCH = 500  # cases re-armed per round, so the queue sweep never waits long
RECONCILE_EVERY_S = 30.0
SWEEP_EVERY_S = 5.0


class Reaper:
    def __init__(self, handler: CallHandler) -> None:
        assert handler.directory is not None, "the reaper needs the case database"
        self.handler = handler
        self.queue = handler.queue
        self.sessions = handler.directory.sessions
        self.case_sweep = CaseSweep(handler, self.sessions)
        self.next_sweep = self.next_clock = self.next_reconcile = 0.0
        self.next_recording_upkeep = 0.0
        self.next_hot_topics = 0.0
        self.next_report_upkeep = 0.0
        self.tasks = TaskQueue(self.queue, load_task_settings())  # online requests
        self.next_task_backstop = 0.0
        # First every open case, then the ones changed since the last pass began.
        self.reconciled_since: datetime | None = None
        self.reconcile_after = 0
        self.pass_started = utcnow()

    def run(
        self, running: Callable[[], bool], interval: float = 0.25, lease: Lease | None = None
    ) -> None:
        """Sweep until ``running()`` says stop; with a lease, only while holding it (one
        reaper active among several: the others stand by)."""
        log.info("reaper: sweeping queue %r every %.2fs", self.queue.settings.name, interval)
        while running():
            if lease is not None and not lease.active():
                time.sleep(interval)
                continue
            try:
                counts, offers = self.round()
            except SQLAlchemyError as exc:
                log.warning("reaper: case database unavailable (%s); retrying", exc)
                self.next_sweep = time.monotonic() + SWEEP_EVERY_S
            except (RedisConnectionError, OSError) as exc:
                log.warning("reaper: redis unavailable (%s); retrying", exc)
                time.sleep(1)
                continue
            else:
                if any(counts.values()) or offers:
                    log.info("reaper: %s, %d new offers", counts, len(offers))
            time.sleep(interval)

    def round(self) -> tuple[dict[str, int], tuple[object, ...]]:
        now = time.monotonic()
        if now >= self.next_clock:  # reminders and overdue, to the second
            fired = clocks.sweep(self.sessions, self.queue.redis, self.queue.keys)
            if fired["reminder"] or fired["overdue"]:
                log.info("reaper: clocks %s", fired)
            count_clock_timers(self.queue.redis, self.queue.keys, fired)
            self.next_clock = now + 1
        if now >= self.next_reconcile:
            self.reconcile()
        counts, offers = self.queue.tick()
        task_counts, _ = self.tasks.tick()  # after the calls' sweep: calls first
        if any(task_counts.values()):
            log.info("reaper: tasks %s", task_counts)
        if now >= self.next_task_backstop:  # tasks a Redis that lost data no longer has
            put_back_lost(self.tasks, self.sessions)
            self.next_task_backstop = now + RECONCILE_EVERY_S
        for call_id in self.queue.last_talked_out:  # past the maximum talk time
            log.warning("reaper: call %s talked past the maximum; completed", call_id)
            self.handler.schedule_case(call_id)
        if time.monotonic() >= self.next_sweep:
            count_queue_events(self.queue.redis, self.queue.keys)  # /metrics: Redis only
            self.case_sweep.run_once()  # answered calls with no case yet
            self.record_call_rows()
            self.next_sweep = time.monotonic() + SWEEP_EVERY_S
        if now >= self.next_recording_upkeep:
            # Recordings linked to their cases, and deleted past retention, by a job.
            self.handler.jobs.enqueue(
                "calls.recordings.upkeep", job_id="recordings-upkeep", result_ttl=0
            )
            self.next_recording_upkeep = now + UPKEEP_EVERY_S
        if now >= self.next_hot_topics:  # hot topics from the cases filed so far
            self.handler.jobs.enqueue("calls.hot_topics.scan", job_id=HOT_TOPICS_JOB, result_ttl=0)
            self.next_hot_topics = now + hot_topics_every_s()
        if now >= self.next_report_upkeep:  # the day's, week's and month's reports
            self.handler.jobs.enqueue("calls.reports.upkeep", job_id="reports-upkeep", result_ttl=0)
            self.next_report_upkeep = now + REPORTS_EVERY_S
        return counts, offers

    def reconcile(self) -> None:
        """One batch of timers re-armed from SQL; a pass done waits RECONCILE_EVERY_S."""
        with self.sessions() as session:
            self.reconcile_after, n = clocks.reconcile(
                session,
                self.queue.redis,
                self.queue.keys,
                self.reconciled_since,
                after_id=self.reconcile_after,
                limit=RECONCILE_BATCH,
            )
        if n < RECONCILE_BATCH:
            self.reconciled_since = self.pass_started - timedelta(seconds=5)
            self.reconcile_after, self.pass_started = 0, utcnow()
            self.next_reconcile = time.monotonic() + RECONCILE_EVERY_S

    def record_call_rows(self, limit: int = 20) -> None:
        """Fold the event stream into call detail rows, catching up in bounded batches."""
        with self.sessions() as session:
            for _ in range(limit):
                if not record_calls(session, self.queue.redis, self.queue.keys):
                    break
            attach_case_numbers(session, datetime.now(UTC) - timedelta(days=1))
