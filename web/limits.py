"""Rate limits (Flask-Limiter) kept in the service's own Redis, so that every web
worker and every instance behind the proxy counts against the same budget.

Limits are declared where they apply (``@limiter.limit(...)`` on a view, or
``limiter.limit(...)`` on a blueprint); the key is the client's address as the
trusted proxies report it (``ProxyFix`` with the configured number of hops), never a
header a client can set for itself."""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter
from redis import Redis
from werkzeug.middleware.proxy_fix import ProxyFix


def client_address() -> str:
    """The caller's address: the socket peer, or what the trusted proxies forwarded."""
    return request.remote_addr or "unknown"


limiter = Limiter(
    key_func=client_address,
    default_limits=[],  # only what a view or blueprint declares
    headers_enabled=True,  # Retry-After on 429
    strategy="moving-window",
    key_prefix="hotline-limits",
)


def init_limits(app: Flask, redis: Redis, trusted_proxy_hops: int) -> None:
    """Count in ``redis`` (its connection pool: a Unix socket or TCP alike) and trust
    ``trusted_proxy_hops`` reverse proxies' X-Forwarded-For/-Proto/-Host."""
    if trusted_proxy_hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=trusted_proxy_hops,
            x_proto=trusted_proxy_hops,
            x_host=trusted_proxy_hops,
        )
    # The limiter is one object for the views' decorators; each app says for itself
    # whether limits are on (Flask-Limiter keeps the last app's choice otherwise).
    app.config.setdefault("RATELIMIT_ENABLED", True)
    app.config.setdefault("RATELIMIT_STORAGE_URI", "redis://")
    app.config.setdefault(
        "RATELIMIT_STORAGE_OPTIONS", {"connection_pool": redis.connection_pool}
    )
    limiter.init_app(app)
