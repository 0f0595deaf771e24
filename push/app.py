"""The push process's web app: three event streams and a health check.

Each stream authenticates like the web (push.auth), then sends signals only:

- ``/console/events``: ``pop`` (data: the call id) when a call is offered to the
  operator's seat, ``seat`` whenever the seat changes, ``task`` when one of its online
  requests does (offered, taken, answered, handed on, done), ``gone`` when the seat is
  taken over or logged out, or the session ends;
- ``/console/wallboard/events``: ``board`` (data: the newest queue event id, so the
  web draws a board at least that recent), at most once a second;
- ``/portal/events``: ``inbox`` (id and data: the inbox's version) when the unit's
  inbox changes.

An open stream costs a coroutine and a queue here, and nothing in the web."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import SentinelConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from calls.metrics import PROXY_HEADERS, PushCollector, scrape_status
from hotline.config import Settings
from push.auth import COOKIE_NAME, CookieReader, Gate, Viewer
from push.hub import Hub
from queueing.keys import QueueKeys

log = logging.getLogger("hotline.push")

OPERATORS = ("operator", "admin")
SUPERVISORS = ("supervisor", "admin")
DEPARTMENTS = ("department",)
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
RECHECK_S = 15.0  # how often an open stream asks again whether its session lives
CHECK_THREADS = 16  # session and user checks (Redis and SQL, blocking) run here
# Commands wait for a free connection rather than fail: a thousand consoles opening at
# once share these (the event reader holds one of them, blocked in XREAD).
REDIS_CONNECTIONS = 64
# Streams one user may hold open on one push process (a wall of wallboards fits): each
# costs a session check every RECHECK_S and, behind nginx, two of its connections.
MAX_STREAMS_PER_USER = 100


def connect_async_redis(settings: Settings) -> AsyncRedis:
    """The queue's Redis for asyncio: REDIS_URL, the private server, or the primary the
    sentinels name."""
    if settings.redis_sentinels:
        from redis.asyncio.sentinel import Sentinel

        sentinel = Sentinel(
            list(settings.redis_sentinels),
            sentinel_kwargs={
                "socket_timeout": 1.0,
                "socket_connect_timeout": 1.0,
                "password": settings.redis_sentinel_password,
            },
        )
        return sentinel.master_for(  # type: ignore[no-any-return]
            settings.redis_sentinel_master,
            connection_pool_class=BlockingSentinelPool,
            max_connections=REDIS_CONNECTIONS,
            timeout=20,
            socket_connect_timeout=2.0,
            password=settings.redis_password,
        )
    from hotline.runtime import redis_url

    pool = BlockingConnectionPool.from_url(
        redis_url(settings),
        max_connections=REDIS_CONNECTIONS,
        timeout=20,
        health_check_interval=30,
        password=settings.redis_password,
    )
    return AsyncRedis(connection_pool=pool)


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (follows the primary) with the blocking pool's bounded size."""


class Push:
    """What the streams share: the hub, the gate and the Redis clients."""

    def __init__(self, settings: Settings) -> None:
        from cases.db import engine_for, session_factory
        from hotline.runtime import connect_redis

        if not settings.secret_key:
            raise RuntimeError(
                "the push process needs the web's HOTLINE_SECRET_KEY to read sign-in cookies"
            )
        self.settings = settings
        self.keys = QueueKeys(settings.queue.name)
        self.redis = connect_async_redis(settings)
        sessions = session_factory(engine_for(settings.database_url))
        self.gate = Gate(
            CookieReader(settings.secret_key),
            connect_redis(settings),
            sessions,
            settings.session_idle_s,
            settings.session_absolute_s,
        )

        def inbox_version(unit: int) -> str:
            from web.portal.routes import inbox_version as version_of

            with sessions() as db:
                return version_of(db, unit)

        self.hub = Hub(self.redis, self.keys.events, inbox_version)
        self.metrics = CollectorRegistry(auto_describe=False)
        self.metrics.register(PushCollector(self.hub.counts, lambda: self.hub.following))
        self.streams_of: dict[int, int] = {}  # user id -> streams open here

    def open_stream(self, user_id: int) -> bool:
        """Count a stream for the user, or False when they hold their share already."""
        held = self.streams_of.get(user_id, 0)
        if held >= MAX_STREAMS_PER_USER:
            return False
        self.streams_of[user_id] = held + 1
        return True

    def close_stream(self, user_id: int) -> None:
        held = self.streams_of.get(user_id, 0) - 1
        if held > 0:
            self.streams_of[user_id] = held
        else:
            self.streams_of.pop(user_id, None)

    async def viewer(self, request: Request) -> Viewer | None:
        return await asyncio.to_thread(self.gate.viewer, request.cookies.get(COOKIE_NAME))

    async def recheck(self, viewer: Viewer) -> Viewer | None:
        try:
            return await asyncio.to_thread(self.gate.recheck, viewer)
        except Exception:  # Redis or SQL away: keep serving, ask again later
            log.warning("could not check whether %s's session lives", viewer.username)
            return viewer

    async def seat(self, seat: str) -> tuple[str, str]:
        owner, state = await self.redis.hmget(self.keys.seat(seat), ["owner", "state"])
        return _text(owner), _text(state) or "offline"

    async def ringing(self, seat: str) -> str:
        """The call ringing at the seat now, if any."""
        state, call = await self.redis.hmget(self.keys.seat(seat), ["state", "call"])
        return _text(call) if _text(state) == "offered" else ""


def sse(event: str, data: str = "", event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


class CountedStream(StreamingResponse):
    """A stream that says when it is over, however it ends (even unstarted)."""

    on_close: Callable[[], None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()


def stream_response(request: Request, body: AsyncIterator[str]) -> StreamingResponse:
    headers = {
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
        "X-Content-Type-Options": "nosniff",
        **_cors(request),
    }
    return CountedStream(body, media_type="text/event-stream", headers=headers)


def _cors(request: Request) -> dict[str, str]:
    """Without a proxy (scripts/run), pages on the web's port open their streams on
    this port: the same host, so the same site, and the session cookie (which ignores
    ports) comes along. Only such an origin may read the stream."""
    origin = request.headers.get("origin")
    if not origin:
        return {}
    if urlsplit(origin).hostname != request.url.hostname:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def refused(request: Request, status: int) -> Response:
    return Response(status_code=status, headers={"Cache-Control": "no-store", **_cors(request)})


async def _next(queue: asyncio.Queue[Any], timeout: float) -> Any:
    try:
        return await asyncio.wait_for(queue.get(), timeout)
    except TimeoutError:
        return None


def _signed_in(
    roles: tuple[str, ...],
) -> Callable[
    [Callable[[Push, Request, Viewer], Awaitable[Response]]],
    Callable[[Request], Awaitable[Response]],
]:
    def decorate(
        view: Callable[[Push, Request, Viewer], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            push: Push = request.app.state.push
            viewer = await push.viewer(request)
            if viewer is None:
                return refused(request, 401)
            if viewer.role not in roles:
                return refused(request, 403)
            if not push.open_stream(viewer.user_id):
                log.warning("%s holds too many streams; one more refused", viewer.username)
                return refused(request, 429)
            try:
                response = await view(push, request, viewer)
            except BaseException:
                push.close_stream(viewer.user_id)
                raise
            if isinstance(response, CountedStream):
                response.on_close = lambda: push.close_stream(viewer.user_id)
            else:  # refused after all: nothing stays open
                push.close_stream(viewer.user_id)
            return response

        return endpoint

    return decorate


@_signed_in(OPERATORS)
async def console_events(push: Push, request: Request, viewer: Viewer) -> Response:
    seat = viewer.seat
    if not seat or (await push.seat(seat))[0] != viewer.username:
        return refused(request, 204)  # not this user's seat (now): nothing to stream
    inbox = push.hub.watch_seat(seat)

    async def stream() -> AsyncIterator[str]:
        me: Viewer | None = viewer
        recheck_at = time.monotonic() + RECHECK_S
        try:
            yield "retry: 2000\n\n"
            yield sse("seat", "")  # whatever changed between the page and the stream
            ringing = await push.ringing(seat)
            if ringing:  # offered before the stream opened: the page may not show it
                yield sse("pop", ringing)
            while True:
                first = await _next(inbox, KEEPALIVE_S)
                owner, state = await push.seat(seat)
                if me is not None and time.monotonic() >= recheck_at:
                    me, recheck_at = await push.recheck(me), time.monotonic() + RECHECK_S
                if me is None or owner != viewer.username or state == "offline":
                    # Taken over, logged out under them, signed out or disabled: this
                    # screen sees nothing more of the seat; it reloads and says why.
                    yield sse("gone")
                    return
                if first is None:
                    yield ": keepalive\n\n"
                    continue
                events = [first]
                while not inbox.empty():  # coalesce a burst into one redraw
                    events.append(inbox.get_nowait())
                for event in events:
                    if event.get("type") == "OFFER" and event.get("seat") == seat:
                        yield sse("pop", event.get("call", ""))
                # The seat's requests redraw its task list only, not the seat's panels.
                task_events = [e for e in events if e.get("type", "").startswith("TASK_")]
                if task_events:
                    yield sse("task", "")
                if len(task_events) < len(events):
                    yield sse("seat", state)
        finally:
            push.hub.unwatch_seat(seat, inbox)

    return stream_response(request, stream())


@_signed_in(SUPERVISORS)
async def wallboard_events(push: Push, request: Request, viewer: Viewer) -> Response:
    wakes = push.hub.watch_board()

    async def stream() -> AsyncIterator[str]:
        me: Viewer | None = viewer
        recheck_at = time.monotonic() + RECHECK_S
        try:
            yield "retry: 2000\n\n"
            while True:
                seen = await _next(wakes, KEEPALIVE_S)
                if time.monotonic() >= recheck_at:  # a disabled user's board goes dark
                    me, recheck_at = await push.recheck(viewer), time.monotonic() + RECHECK_S
                    if me is None:
                        yield sse("gone")
                        return
                yield sse("board", seen) if seen is not None else ": keepalive\n\n"
        finally:
            push.hub.unwatch_board(wakes)

    return stream_response(request, stream())


@_signed_in(DEPARTMENTS)
async def inbox_events(push: Push, request: Request, viewer: Viewer) -> Response:
    unit = viewer.department_id
    if unit is None:
        return refused(request, 204)
    seen = request.headers.get("last-event-id") or request.query_params.get("since", "")
    versions = push.hub.watch_unit(unit)

    async def stream() -> AsyncIterator[str]:
        nonlocal seen
        me: Viewer | None = viewer
        recheck_at = time.monotonic() + RECHECK_S
        try:
            yield "retry: 2000\n\n"
            while True:
                now = await _next(versions, KEEPALIVE_S)
                if time.monotonic() >= recheck_at:
                    me, recheck_at = await push.recheck(viewer), time.monotonic() + RECHECK_S
                    if me is None:
                        yield sse("gone")
                        return
                if now is None:
                    yield ": keepalive\n\n"
                elif now != seen:
                    seen = now
                    yield sse("inbox", now, event_id=now)
        finally:
            push.hub.unwatch_unit(unit, versions)

    return stream_response(request, stream())


async def metrics(request: Request) -> Response:
    """Prometheus: this process's open streams and whether it follows the queue, under
    the web's rules for who may scrape (token, or an allowed address)."""
    push: Push = request.app.state.push
    settings = push.settings
    status = scrape_status(
        token=settings.metrics_token,
        allow=settings.metrics_allow,
        trusted_proxy_hops=settings.trusted_proxy_hops,
        remote_addr=request.client.host if request.client else "",
        authorization=request.headers.get("authorization", ""),
        relayed=any(h in request.headers for h in PROXY_HEADERS),
    )
    if status != 200:
        return Response(status_code=status, headers={"Cache-Control": "no-store"})
    body = generate_latest(push.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


async def healthz(request: Request) -> Response:
    push: Push = request.app.state.push
    return JSONResponse({"ok": True, **push.hub.counts()})


def create_app(settings: Settings | None = None) -> Starlette:
    if settings is None:
        from hotline.config import load_settings

        settings = load_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="push-check")
        )
        push = Push(settings)
        app.state.push = push
        await push.hub.start()
        try:
            yield
        finally:
            await push.hub.stop()
            await push.redis.aclose()

    return Starlette(
        routes=[
            Route("/console/events", console_events),
            Route("/console/wallboard/events", wallboard_events),
            Route("/portal/events", inbox_events),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
