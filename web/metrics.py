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

import hmac
import ipaddress
import os
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from calls.metrics import PROCESS, ServiceCollector, observe_webhook
from web.context import services

bp = Blueprint("metrics", __name__)

_REGISTRY = "hotline_metrics_registry"
_STARTED = "_hotline_webhook_started"
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


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


def _internal() -> bool:
    settings = services().settings
    if not settings.trusted_proxy_hops and any(h in request.headers for h in PROXY_HEADERS):
        return False  # relayed by a proxy we do not trust: its socket address says nothing
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    networks = (ipaddress.ip_network(n, strict=False) for n in settings.metrics_allow)
    return any(address in network for network in networks)


def _authorised() -> bool:
    token = services().settings.metrics_token
    given = request.headers.get("Authorization", "")
    if given:
        scheme, _, value = given.partition(" ")
        if token and scheme.lower() == "bearer" and hmac.compare_digest(value, token):
            return True
        abort(403)
    return _internal()


@bp.get("/metrics")
def metrics() -> Response:
    if not _authorised():
        abort(404)
    response = Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
