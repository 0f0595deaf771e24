"""GET /metrics for Prometheus, and the webhook latency it reports.

Not public: the figures say how busy the centre is and how it is staffed. A request is
served when it carries ``Authorization: Bearer <HOTLINE_METRICS_TOKEN>``, or when it
comes straight from an address in HOTLINE_METRICS_ALLOW (default: loopback). A request
that came through a proxy the app was not told to trust (HOTLINE_TRUSTED_PROXY_HOPS)
counts as from outside, whatever the socket's address: the front proxy sits on
loopback. Anything else gets 404 (403 for a wrong token).

A scrape reads every process's files (multiprocess mode) and a snapshot of Redis
(calls.metrics.ServiceCollector, shared by scrapes within a second): a few
milliseconds of a request thread, never a wait on anything but Redis.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from calls.metrics import PROCESS, PROXY_HEADERS, ServiceCollector, observe_webhook, scrape_status
from web.context import services

bp = Blueprint("metrics", __name__)

_REGISTRY = "hotline_metrics_registry"
_STARTED = "_hotline_webhook_started"


class _ThisProcess:
    """This process's own metrics, when there are no multiprocess files to read."""

    def collect(self) -> Iterator[Metric]:
        yield from PROCESS.collect()


def init_metrics(app: Flask) -> None:
    """Serve /metrics and time every Twilio webhook."""
    app.register_blueprint(bp)

    @app.before_request
    def start_webhook_clock() -> None:
        if request.blueprint == "twilio":
            setattr(g, _STARTED, time.perf_counter())

    @app.teardown_request
    def observe_webhook_time(_exc: BaseException | None) -> None:
        started = g.pop(_STARTED, None)
        if started is not None and request.endpoint:
            observe_webhook(request.endpoint.removeprefix("twilio."), time.perf_counter() - started)


def _registry() -> CollectorRegistry:
    registry = current_app.extensions.get(_REGISTRY)
    if registry is None:
        svc = services()
        registry = CollectorRegistry(auto_describe=False)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            MultiProcessCollector(registry)
        else:
            registry.register(_ThisProcess())
        registry.register(ServiceCollector(svc.queue, svc.jobs))
        current_app.extensions[_REGISTRY] = registry
    return registry


def _status() -> int:
    settings = services().settings
    return scrape_status(
        token=settings.metrics_token,
        allow=settings.metrics_allow,
        trusted_proxy_hops=settings.trusted_proxy_hops,
        remote_addr=request.remote_addr or "",
        authorization=request.headers.get("Authorization", ""),
        relayed=any(h in request.headers for h in PROXY_HEADERS),
    )


@bp.get("/metrics")
def metrics() -> Response:
    status = _status()
    if status != 200:
        abort(status)
    response = Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
