"""What the service counts for Prometheus; web.metrics serves it at /metrics.

Three sources, chosen by where each figure can be counted exactly once:

- Facts about the whole service (calls offered, answered, abandoned; clock timers
  fired; dialer attempts) are counted in Redis, in the queue's ``counts`` hash, by
  whichever process sees them: the reaper folds the queue's event stream into it
  (``count_queue_events``, with its cursor in the same hash), the reaper adds the
  timers it fires, and the dialer adds each attempt's result. So they hold across
  processes and hosts, survive restarts, and any web worker reports them.
- Live state (calls waiting, the oldest wait, seats by state, the RQ backlog, timers
  due) is read from Redis at scrape time by ``ServiceCollector``: nothing to keep in
  step, and a few pipelined reads per scrape.
- Latencies (webhooks, AGI routes) and Redis failovers seen are per process:
  prometheus_client metrics, in multiprocess mode when PROMETHEUS_MULTIPROC_DIR is
  set (the composition root sets it before any of this is imported), so a scrape of
  any web worker sums every process on the host.

Names carry the ``hotline_`` prefix and base units (seconds). No label holds a phone
number or an id of a call, seat, case or person: only skills, states, routes and
results, each from a fixed set.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, values
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from redis.exceptions import RedisError
from rq import Queue as JobQueue
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from calls.counts import CLOCK_RESULTS, DIAL_RESULTS, REAPER_AT, WAIT_BUCKETS
from ivr.inbound import CALLBACK_AFTER_S
from queueing import CallQueue
from queueing.indicators import SERVICE_LEVEL_S, SHORT_ABANDON_S
from queueing.keys import ID_PATTERNS, LEASE_ROLES

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # One file per process; the host name keeps processes of different containers
    # sharing one directory (a volume) apart, where the pids alone would collide.
    _host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]
    values.ValueClass = values.MultiProcessValue(lambda: f"{_host}-{os.getpid()}")

# This process's own metrics (exported through the multiprocess files when enabled).
PROCESS = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

WEBHOOK_SECONDS = Histogram(
    "hotline_webhook_duration_seconds",
    "Time the web app took to answer a Twilio webhook, by route",
    ["route"],
    buckets=LATENCY_BUCKETS,
    registry=PROCESS,
)
AGI_SECONDS = Histogram(
    "hotline_agi_route_duration_seconds",
    "Time one AGI route ran, from the session's environment to its end (Asterisk's "
    "replies included), by route",
    ["route"],
    buckets=LATENCY_BUCKETS,
    registry=PROCESS,
)
REDIS_FAILOVERS = PromCounter(
    "hotline_redis_failovers_seen",
    "Times a Redis client of this service found a new primary (Sentinel failover)",
    registry=PROCESS,
)

ROUTE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}\Z")


def observe_webhook(route: str, seconds: float) -> None:
    WEBHOOK_SECONDS.labels(route=route if ROUTE_NAME.match(route) else "other").observe(seconds)


def observe_agi_route(route: str, seconds: float) -> None:
    AGI_SECONDS.labels(route=route if ROUTE_NAME.match(route) else "other").observe(seconds)


def redis_failover_seen() -> None:
    """A Redis client saw the primary change: call from the Sentinel connection pool."""
    REDIS_FAILOVERS.inc()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- read at scrape time --------------------------------------------------------------

SEAT_STATES = ("available", "offered", "on_call", "wrap_up", "paused")
LIVE_CALL_STATES = ("waiting", "offered", "on_call")
CLOCK_LATE_S = 10.0  # the reaper sweeps every second: later than this, it is behind
CACHE_S = 1.0  # scrapes within this share one read of Redis
LOCK_WAIT_S = 2.0  # a scrape waits this long for another's read, then answers


@dataclass(frozen=True)
class _Snapshot:
    families: list[Metric]
    at: float


class ServiceCollector(Collector):
    """The live state of the queue, the seats, the clocks and the jobs, and the counts
    kept in Redis, read when Prometheus scrapes (about a dozen pipelined commands plus
    one small read per live call and per logged-in seat)."""

    def __init__(self, queue: CallQueue, jobs: JobQueue) -> None:
        self.queue, self.jobs = queue, jobs
        self._lock = threading.Lock()
        self._last: _Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        # Concurrent scrapes share one read. A scrape that finds a read stuck (Redis
        # failing over: the client retries for up to ~30 s) answers with the last
        # snapshot instead of holding one more request thread.
        if self._lock.acquire(timeout=LOCK_WAIT_S):
            try:
                if self._last is None or time.monotonic() - self._last.at >= CACHE_S:
                    self._last = _Snapshot(self._read(), time.monotonic())
            finally:
                self._lock.release()
        last = self._last
        if last is None:
            up = GaugeMetricFamily("hotline_redis_up", "Whether /metrics could read Redis")
            up.add_metric([], 0)
            yield up
            return
        yield from last.families

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily("hotline_redis_up", "Whether /metrics could read Redis")
        try:
            families = self._live() + self._counts()
        except RedisError:
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]

    def _skills(self) -> list[str]:
        seen = {_text(s) for s in self.queue.redis.smembers(self.queue.keys.skills)}
        pattern = ID_PATTERNS["skill"]
        return sorted({*self.queue.settings.skills, *(s for s in seen if pattern.match(s))})

    def _live(self) -> list[Metric]:
        redis, keys = self.queue.redis, self.queue.keys
        skills = self._skills()
        pipe = redis.pipeline(transaction=False)
        pipe.time()
        pipe.zrange(keys.live_calls, 0, -1)
        pipe.zrange(keys.heartbeats, 0, -1)
        for skill in skills:
            pipe.scard(keys.staffed(skill))
            pipe.zcard(keys.available(skill))
        registries = (
            self.jobs.failed_job_registry,
            self.jobs.started_job_registry,
            self.jobs.scheduled_job_registry,
            self.jobs.deferred_job_registry,
        )
        pipe.llen(self.jobs.key)
        for registry in registries:
            pipe.zcard(registry.key)
        pipe.scard(WORKERS_BY_QUEUE_KEY % self.jobs.name)
        (seconds, micros), call_ids, seat_ids, *rest = pipe.execute()
        now_ms = seconds * 1000 + micros // 1000
        per_skill, (queued, failed, started, scheduled, deferred, workers) = (
            rest[: 2 * len(skills)],
            rest[2 * len(skills) :],
        )
        pipe = redis.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.hmget(keys.call(_text(call_id)), "state", "skill", "entered")
        for seat_id in seat_ids:
            pipe.hget(keys.seat(_text(seat_id)), "state")
        pipe.zcard(keys.clocks)
        pipe.zcount(keys.clocks, "-inf", now_ms)
        pipe.zcount(keys.clocks, "-inf", now_ms - int(CLOCK_LATE_S * 1000))
        pipe.hget(keys.counts, REAPER_AT)
        for role in LEASE_ROLES:
            pipe.exists(keys.lease(role))
        replies = pipe.execute()
        calls = replies[: len(call_ids)]
        seat_states = replies[len(call_ids) : len(call_ids) + len(seat_ids)]
        leases = dict(zip(LEASE_ROLES, replies[-len(LEASE_ROLES) :], strict=True))
        armed, due, late, reaper_at = replies[-4 - len(LEASE_ROLES) : -len(LEASE_ROLES)]

        waiting = dict.fromkeys(skills, 0)
        oldest_ms = dict.fromkeys(skills, 0)
        by_state = dict.fromkeys(LIVE_CALL_STATES, 0)
        for state, skill, entered in calls:
            state, skill = _text(state or b""), _text(skill or b"")
            if state in by_state:
                by_state[state] += 1
            if state == "waiting" and skill in waiting and entered:
                waiting[skill] += 1
                oldest_ms[skill] = max(oldest_ms[skill], now_ms - int(entered))
        seats = dict.fromkeys(SEAT_STATES, 0)
        for state in seat_states:
            name = _text(state or b"")
            if name in seats:
                seats[name] += 1

        def gauge(name: str, doc: str, labels: list[str], samples: Mapping) -> Metric:  # type: ignore[type-arg]
            family = GaugeMetricFamily(name, doc, labels=labels)
            for label, value in samples.items():
                family.add_metric([label] if labels else [], value)
            return family

        staffed = {s: per_skill[2 * i] for i, s in enumerate(skills)}
        available = {s: per_skill[2 * i + 1] for i, s in enumerate(skills)}
        families = [
            gauge("hotline_calls_waiting", "Callers waiting for an operator", ["skill"], waiting),
            gauge(
                "hotline_calls_oldest_wait_seconds",
                "How long the longest-waiting caller has waited (0: nobody waits)",
                ["skill"],
                {s: ms / 1000 for s, ms in oldest_ms.items()},
            ),
            gauge(
                "hotline_calls_live", "Calls in the queue's hands, by state", ["state"], by_state
            ),
            gauge(
                "hotline_callback_offer_after_seconds",
                "Estimated wait past which a holding caller is offered a callback",
                [],
                {"": CALLBACK_AFTER_S},
            ),
            gauge("hotline_seats", "Logged-in seats by state", ["state"], seats),
            gauge("hotline_seats_logged_in", "Seats logged in", [], {"": len(seat_ids)}),
            gauge("hotline_seats_staffed", "Seats logged in, by skill", ["skill"], staffed),
            gauge(
                "hotline_seats_available",
                "Seats free to take a call, by skill",
                ["skill"],
                available,
            ),
            gauge(
                "hotline_rq_jobs",
                "Jobs of the case worker queue, by state (queued: the backlog)",
                ["state"],
                {
                    "queued": queued,
                    "started": started,
                    "scheduled": scheduled,
                    "deferred": deferred,
                    "failed": failed,
                },
            ),
            gauge("hotline_rq_workers", "RQ workers registered on the queue", [], {"": workers}),
            gauge("hotline_clock_timers_armed", "Case timers waiting to fire", [], {"": armed}),
            gauge("hotline_clock_timers_due", "Case timers due and not yet fired", [], {"": due}),
            gauge(
                "hotline_clock_timers_late",
                f"Case timers due more than {CLOCK_LATE_S:g} s ago and not yet fired",
                [],
                {"": late},
            ),
        ]
        families.append(
            gauge(
                "hotline_reaper_last_count_timestamp_seconds",
                "When the reaper last counted the event stream (Unix time; 0: never)",
                [],
                {"": int(reaper_at or 0) / 1000},
            )
        )
        families.append(
            gauge(
                "hotline_lease_held",
                "Whether some process holds the role's lease: 1, one is active; 0, none "
                "(none running, or a standby yet to take over)",
                ["role"],
                {role: int(held) for role, held in leases.items()},
            )
        )
        return families

    def _counts(self) -> list[Metric]:
        raw = self.queue.redis.hgetall(self.queue.keys.counts)
        counts = {_text(k): _text(v) for k, v in raw.items()}

        def number(field: str) -> int:
            value = counts.get(field, "0")
            return int(value) if value.lstrip("-").isdigit() else 0

        families: list[Metric] = []
        docs = {
            "offered": "Calls that entered the queue",
            "turned_away": "Calls told the centre is closed (never queued)",
            "answered": "Calls an operator answered",
            "abandoned": "Callers who hung up before an operator answered",
            "abandoned_short": f"Of those, callers who hung up within {SHORT_ABANDON_S:g} s",
            "left_for_callback": "Callers who left the queue for a callback",
            "expired": "Calls that waited past the maximum wait",
            "ring_no_answer": "Offers a seat did not pick up",
            "completed": "Conversations ended",
        }
        for name, doc in docs.items():
            family = CounterMetricFamily(f"hotline_calls_{name}", doc)
            family.add_metric([], number(f"calls:{name}"))
            families.append(family)
        cumulative, buckets = 0, []
        for bound in WAIT_BUCKETS:
            cumulative += number(f"wait_le:{bound:g}")
            buckets.append((floatToGoString(bound), cumulative))
        answered_in_time = sum(
            number(f"wait_le:{b:g}") for b in WAIT_BUCKETS if b <= SERVICE_LEVEL_S
        )
        within = CounterMetricFamily(
            "hotline_calls_answered_within_15s",
            f"Calls answered within {SERVICE_LEVEL_S:g} s of entering the queue",
        )
        within.add_metric([], answered_in_time)
        families.append(within)
        wait = HistogramMetricFamily(
            "hotline_call_answer_wait_seconds", "Queue entry to answer, of answered calls"
        )
        wait.add_metric(
            [],
            [*buckets, ("+Inf", cumulative + number("wait_le:inf"))],
            number("wait_sum_ms") / 1000,
        )
        families.append(wait)
        clock = CounterMetricFamily(
            "hotline_clock_timers_fired",
            "Case timers fired, by result (overdue: a deadline missed)",
            labels=["result"],
        )
        for result in CLOCK_RESULTS:
            clock.add_metric([result], number(f"clock:{result}"))
        families.append(clock)
        dial = CounterMetricFamily(
            "hotline_dialer_attempts", "Outbound attempts ended, by result", labels=["result"]
        )
        for result in (*DIAL_RESULTS, "other"):
            dial.add_metric([result], number(f"dial:{result}"))
        families.append(dial)
        return families


# -- who may scrape ------------------------------------------------------------------

PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def scrape_status(
    *,
    token: str | None,
    allow: tuple[str, ...],
    trusted_proxy_hops: int,
    remote_addr: str,
    authorization: str,
    relayed: bool,
) -> int:
    """200 to serve a scrape, 403 for a wrong token, 404 for anyone else: the one rule
    for every process that serves /metrics (web, push, FastAGI). ``relayed``: the
    request carried a proxy's header (``PROXY_HEADERS``)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if token and scheme.lower() == "bearer" and hmac.compare_digest(value, token):
            return 200
        return 403
    if relayed and not trusted_proxy_hops:
        return 404  # relayed by a proxy we do not trust: its socket address says nothing
    try:
        address = ipaddress.ip_address(remote_addr.split("%", 1)[0])
    except ValueError:
        return 404
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    networks = (ipaddress.ip_network(n, strict=False) for n in allow)
    return 200 if any(address in network for network in networks) else 404


class AgiCollector(Collector):
    """A FastAGI server's own state: sessions open now, and those served or refused."""

    def __init__(self, server: object) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        s = self.server
        yield GaugeMetricFamily(
            "hotline_agi_sessions_active",
            "FastAGI sessions open now",
            value=s.active,  # type: ignore[attr-defined]
        )
        for name, attr, text in (
            ("served", "served", "FastAGI sessions served"),
            ("refused", "refused", "connections from outside the allow-list"),
            ("unauthenticated", "unauthenticated", "sessions without the shared secret"),
        ):
            yield CounterMetricFamily(f"hotline_agi_sessions_{name}", text, value=getattr(s, attr))


class PushCollector(Collector):
    """A push process's open live streams by kind, and whether it follows the queue's
    event stream (a push that stopped following shows nothing new to anyone)."""

    def __init__(self, counts: Callable[[], Mapping[str, int]], following: Callable[[], bool]):
        self.counts, self.following = counts, following

    def collect(self) -> Iterator[Metric]:
        streams = GaugeMetricFamily(
            "hotline_push_streams", "live streams open on this push process", labels=["kind"]
        )
        for kind, count in sorted(self.counts().items()):
            streams.add_metric([kind], count)
        yield streams
        yield GaugeMetricFamily(
            "hotline_push_following",
            "1 while this push process follows the queue's event stream",
            value=1 if self.following() else 0,
        )


def start_metrics_server(
    registry: CollectorRegistry, host: str, port: int, status: Callable[[dict[str, Any]], int]
) -> Any:
    """Serve ``registry`` at GET /metrics on (host, port) in a daemon thread, for the
    processes that have no web framework of their own (FastAGI). ``status`` takes the
    WSGI environ and answers as ``scrape_status`` does. Returns the server."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import make_wsgi_app

    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        code = status(environ) if environ.get("PATH_INFO") == "/metrics" else 404
        if code != 200:
            reason = "403 Forbidden" if code == 403 else "404 Not Found"
            start_response(reason, [("Content-Type", "text/plain")])
            return [b""]
        return metrics(environ, start_response)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    server = make_server(host, port, app, ThreadingServer, QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server
