"""The `hotline` console command."""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import click
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import SQLAlchemyError

from hotline.cli_context import Context, pass_ctx
from hotline.config import Settings
from hotline.logs import setup_logging
from hotline.metrics import use_metrics_dir
from hotline.runtime import call_handler
from queueing import QueueError
from queueing.events import queue_figures

log = logging.getLogger("hotline")




def _offers(transition) -> None:  # type: ignore[no-untyped-def]
    click.echo(transition.result)
    for offer in transition.offers:
        click.echo(f"offered call {offer.call_id} to seat {offer.seat_id}")


@click.group()
@click.option("--log-level", default="INFO", show_default=True)
def main(log_level: str) -> None:
    """hotline: the 12345 citizen hotline service."""
    setup_logging(log_level.upper())


@main.command()
@pass_ctx
def run(ctx: Context) -> None:
    """Run the whole service in the foreground; Ctrl-C stops it."""
    use_metrics_dir(ctx.settings)  # before anything imports prometheus_client
    from hotline.supervisor import run as run_service

    raise SystemExit(run_service(ctx.settings))


@main.command()
@click.option("--interval", default=0.25, show_default=True, help="seconds between sweeps")
@pass_ctx
def reaper(ctx: Context, interval: float) -> None:
    """Sweep the queue and the clocks: ring-no-answer, wrap-up ends, lost seats, sticky
    fallback, reminders and overdue cases, answered calls without a case.

    Run one on each of several hosts: the one holding the reaper lease sweeps, the
    others stand by (HOTLINE_LEASE_TTL_S)."""
    use_metrics_dir(ctx.settings)  # before anything imports prometheus_client
    from calls.lease import Lease
    from calls.reaper import Reaper

    running = True

    def stop(signum: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    reaper = Reaper(call_handler(ctx.settings, ctx.queue))
    redis, keys = ctx.queue.redis, ctx.queue.keys
    with Lease(redis, keys.lease("reaper"), "reaper", ctx.settings.lease_ttl_s) as lease:
        reaper.run(lambda: running, interval, lease)  # released on the way out


@main.command()
@click.option(
    "--fork/--no-fork",
    default=False,
    show_default=True,
    help="run each job in a forked work-horse (isolation) or in this process (speed)",
)
@pass_ctx
def worker(ctx: Context, fork: bool) -> None:
    """The RQ worker (cases, forms, callbacks) with its scheduler (retries).

    By default jobs run in this process: a fork per job costs ~50 ms, most of a case
    job, and a day of 87,000 calls cannot afford it. The jobs are short, idempotent
    and retried, so a crash loses nothing (the reaper's case sweep finds any answered
    call without a case). The job modules are loaded once, here, either way."""
    from rq import Queue, SimpleWorker, Worker

    import calls.casework  # noqa: F401  (loaded once, warm for every job)
    from calls import RQ_QUEUE
    from calls.workers import HotlineJob, requeue_abandoned
    from hotline.redis_server import die_with_parent

    # RQ forks its scheduler (and, with --fork, each work-horse): they end with this
    # process, even on kill -9, instead of living on as orphans.
    os.register_at_fork(after_in_child=die_with_parent)

    if fork and ctx.settings.redis_sentinels:
        # RQ's work-horse rebuilds a plain client from the pool's settings: it would
        # not follow the sentinels.
        raise click.UsageError("--fork does not work with REDIS_SENTINELS")
    use_metrics_dir(ctx.settings)  # before anything imports prometheus_client
    redis = ctx.queue.redis
    jobs = Queue(RQ_QUEUE, connection=redis, job_class=HotlineJob)
    requeue_abandoned(jobs)  # a predecessor killed mid-job
    worker_class = Worker if fork else SimpleWorker
    worker = worker_class(
        [jobs],
        connection=redis,
        job_class=HotlineJob,
        worker_ttl=60,
        maintenance_interval=10,  # jobs of a killed worker are found within seconds
    )
    worker.work(with_scheduler=True, logging_level="INFO")


@main.command()
@click.option("--day", default=None, help="YYYY-MM-DD (Beijing); default today")
@click.option("--days", default=1, show_default=True, help="how many days from --day")
@click.option(
    "--kind",
    type=click.Choice(["daily", "weekly", "monthly"]),
    default=None,
    help="the day, week or month holding --day (default: the last complete one), as the"
    " kept workbooks and the reports page have it",
)
@click.option("--format", "style", type=click.Choice(["json", "table"]), default="json")
@pass_ctx
def report(ctx: Context, day: str | None, days: int, kind: str | None, style: str) -> None:
    """The national indicators for a period, from the call detail rows in SQL, and the
    leaders' report for it (calls.reports: three rates, rankings, topics, trend) under
    "report"; --format table prints the report for a person."""
    from datetime import datetime

    from calls.figures import figures
    from calls.reports import as_table, report_figures
    from cases.db import engine_for, session_factory
    from cases.reports import last_complete, period
    from cases.service import HOTLINE_TZ

    start = (
        datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=HOTLINE_TZ)
        if day
        else datetime.now(HOTLINE_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    end = start + timedelta(days=days)
    if kind:
        start, end = period(kind, start.date()) if day else last_complete(kind, start)
        days = (end - start).days
    with session_factory(engine_for(ctx.settings.database_url))() as session:
        result = figures(session, start, end)
        full = report_figures(session, kind or "custom", start, end)
    if style == "table":
        click.echo(as_table(full))
        return
    click.echo(
        json.dumps(
            {"from": start.isoformat(), "days": days, **result.as_dict(), "report": full},
            ensure_ascii=False,
        )
    )


@main.command()
@click.option("--workers", default=2, show_default=True, help="processes (one per core)")
@click.option(
    "--threads",
    default=32,
    show_default=True,
    help="threads per process (webhooks, pages, fragments; live streams are `hotline push`'s)",
)
@click.option(
    "--keep-alive",
    default=75,
    show_default=True,
    help="seconds an idle connection stays open: longer than the proxy's (60 s), so it "
    "never reuses one gunicorn is closing",
)
@click.option(
    "--only",
    type=click.Choice(["twilio"]),
    default=None,
    help="serve Twilio's webhooks (/twilio/...) and /healthz, /metrics only; any other "
    "path is a 404 (the proxy's webhook processes)",
)
@pass_ctx
def web(ctx: Context, workers: int, threads: int, keep_alive: int, only: str | None) -> None:
    """Serve the web app (Twilio webhooks, API, console, wallboard) with gunicorn."""
    import os
    import sys

    if workers > 1 and not ctx.settings.secret_key:
        # Each worker would make its own key: sessions and CSRF tokens signed by one
        # worker are refused by the next, and people are signed out at random.
        raise click.ClickException(
            f"{workers} web workers need one shared HOTLINE_SECRET_KEY: scripts/run makes "
            "one under var/secret_key; a deployment sets it from its secrets "
            "(or run with --workers 1)"
        )
    use_metrics_dir(ctx.settings)  # before anything imports prometheus_client
    bind = f"{ctx.settings.web_host}:{ctx.settings.web_port}"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    # Gunicorn's default control socket is one per user: a second instance took it over
    # and deleted it on exit. Each instance has its own under its var dir (none if that
    # path is too long for a Unix socket).
    control = str(ctx.settings.var_dir / "gunicorn.ctl")
    fits = len(control.encode()) <= 107
    control_socket = ["--control-socket", control] if fits else ["--no-control-socket"]
    os.execv(
        gunicorn,
        [
            gunicorn,
            f"hotline.webapp:create_app(only={only!r})",
            "--bind",
            bind,
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--keep-alive",
            str(keep_alive),
            "--timeout",
            "30",
            "--graceful-timeout",
            "10",
            "--access-logfile",
            "-",
            "--access-logformat",
            '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
            "--logger-class",
            "hotline.gunicorn_logs.MaskedLogger",  # its access and error logs masked too
            *control_socket,
        ],
    )


@main.command()
@click.option("--host", default=None, help="default HOTLINE_PUSH_HOST or the web's host")
@click.option("--port", type=int, default=None, help="default HOTLINE_PUSH_PORT or 8001")
@pass_ctx
def push(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the live screens' event streams (consoles, wallboards, portal inboxes)
    asynchronously, so that none holds a web thread; the proxy routes them here."""
    import os

    import uvicorn

    from push.app import create_app as create_push_app

    if not ctx.settings.secret_key:
        raise click.ClickException(
            "the push process reads the web's sign-in cookies: set HOTLINE_SECRET_KEY "
            "(scripts/run makes one under var/secret_key)"
        )
    uvicorn.run(
        create_push_app(ctx.settings),
        host=host or os.environ.get("HOTLINE_PUSH_HOST") or ctx.settings.web_host,
        port=port or int(os.environ.get("HOTLINE_PUSH_PORT") or 8001),
        log_level=os.environ.get("HOTLINE_LOG_LEVEL", "INFO").lower(),
        access_log=False,  # a stream is one line when it opens: none is kept
        timeout_keep_alive=75,  # outlasts nginx's upstream keep-alive (60 s)
        lifespan="on",
    )


@main.group()
def agi() -> None:
    """Asterisk FastAGI."""


@agi.command("serve")
@click.option("--host", default=None, help="default HOTLINE_AGI_HOST or 127.0.0.1")
@click.option("--port", type=int, default=None, help="default HOTLINE_AGI_PORT or 4573")
@pass_ctx
def agi_serve(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve FastAGI: agi://HOST:PORT/inbound for citizens' calls."""
    use_metrics_dir(ctx.settings)  # before anything imports prometheus_client
    import threading

    from agi_scripts.ami import AmiConnection, OfferRedirector, Reconciler
    from agi_scripts.server import FastAGIServer, serve
    from hotline.agi_process import agi_routes

    s = ctx.settings
    routes = agi_routes(s, ctx.queue)  # the same routes as the hotline-agi process
    handler = routes.handler
    server = FastAGIServer(
        (host or s.agi_host, port or s.agi_port),
        handler,
        routes.settings,
        outbound=routes.outbound,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if s.agi_metrics_port:
        serve_agi_metrics(s, server, host or s.agi_host)
    if s.ami_host and s.ami_secret:

        def new_ami_client(events: str = "off") -> AmiConnection:
            return AmiConnection(
                s.ami_host,  # type: ignore[arg-type]
                s.ami_port,
                s.ami_username,
                s.ami_secret,  # type: ignore[arg-type]
                events=events,
            )

        redirector = OfferRedirector(handler, new_ami_client)
        threading.Thread(target=redirector.run, args=(stop,), daemon=True).start()
        reconciler = Reconciler(handler, new_ami_client)
        threading.Thread(target=reconciler.run, args=(stop,), daemon=True).start()
    else:
        log.warning(
            "ASTERISK_AMI_HOST/SECRET not set: offers reach holding callers only "
            "at their next announcement"
        )
    serve(server, stop)


def serve_agi_metrics(s: Settings, server: object, host: str) -> None:
    """GET /metrics for the FastAGI server: its sessions and its own route latencies,
    so that Prometheus sees it up (or down) whatever the web's scrape reads."""
    from prometheus_client import CollectorRegistry

    from calls.metrics import (
        PROCESS,
        PROXY_HEADERS,
        AgiCollector,
        scrape_status,
        start_metrics_server,
    )

    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgiCollector(server))
    registry.register(PROCESS)

    def status(environ: dict[str, object]) -> int:
        return scrape_status(
            token=s.metrics_token,
            allow=s.metrics_allow,
            trusted_proxy_hops=s.trusted_proxy_hops,
            remote_addr=str(environ.get("REMOTE_ADDR", "")),
            authorization=str(environ.get("HTTP_AUTHORIZATION", "")),
            relayed=any(
                "HTTP_" + h.upper().replace("-", "_") in environ for h in PROXY_HEADERS
            ),
        )

    start_metrics_server(registry, host, s.agi_metrics_port, status)
    log.info("FastAGI metrics on %s:%s/metrics", host, s.agi_metrics_port)


@main.command()
@pass_ctx
def dialer(ctx: Context) -> None:
    """The outbound dialer: return visits and call-backs, paced, within calling hours.

    Run one on each of several hosts: the one holding the dialer lease dials, the
    others stand by (HOTLINE_LEASE_TTL_S)."""
    use_metrics_dir(ctx.settings)  # before anything imports prometheus_client
    import os

    from calls.dialer import Originator, plan_work
    from calls.lease import Lease
    from hotline.runtime import dialer as make_dialer
    from web.twilio.outbound import TwilioOriginator

    s = ctx.settings
    originator: Originator | None = None
    if s.twilio_account_sid and s.twilio_auth_token and s.public_base_url and s.twilio_caller_id:
        from twilio.rest import Client

        originator = TwilioOriginator(
            Client(s.twilio_account_sid, s.twilio_auth_token), s.twilio_caller_id, s.public_base_url
        )
    elif s.ami_host and s.ami_secret:
        from agi_scripts.ami import AmiConnection, AsteriskOriginator

        ami = AmiConnection(s.ami_host, s.ami_port, s.ami_username, s.ami_secret)
        originator = AsteriskOriginator(ami, s.asterisk_outbound_dial)
    else:
        log.warning(
            "dialer: no telephony to place calls with (TWILIO_* and TWILIO_CALLER_ID, or "
            "ASTERISK_AMI_*); the work list is kept, nothing is dialled"
        )
    engine = make_dialer(s, ctx.queue, originator)
    from calls.sms import outbox_for

    outbox = outbox_for(engine)  # SMS out, when configured (docs/sms.md)
    min_wait_s = float(os.environ.get("HOTLINE_CALLBACK_MIN_WAIT_S", "30"))
    running = True

    def stop(signum: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    next_plan = next_housekeeping = 0.0
    lease = Lease(engine.redis, engine.keys.lease("dialer"), "dialer", s.lease_ttl_s)
    with lease:  # released on the way out, so a standby takes over at once
        reindexed = False  # since this process last became active
        while running:
            if not lease.active():
                reindexed = False
                time.sleep(0.2)
                continue
            try:
                if not reindexed:  # what a stopped dialer claimed, never dialled, is due again
                    with engine.sessions() as session:
                        engine.reindex(session)
                    reindexed = True
                if time.monotonic() >= next_plan:
                    with engine.sessions() as session:
                        planned = plan_work(session, engine, engine.now(), min_wait_s)
                    if planned:
                        log.info("dialer: %d calls planned", planned)
                    next_plan = time.monotonic() + 10
                if time.monotonic() >= next_housekeeping:
                    engine.expire_stale()
                    next_housekeeping = time.monotonic() + 30
                if originator is not None:
                    engine.run_once()
                if outbox is not None:
                    outbox.run_once()
            except SQLAlchemyError as exc:
                log.warning("dialer: case database unavailable (%s); retrying", exc)
                time.sleep(2)
            except (RedisConnectionError, OSError) as exc:
                log.warning("dialer: redis unavailable (%s); retrying", exc)
                time.sleep(1)
            time.sleep(0.2)


@main.group()
def twilio() -> None:
    """Twilio integration."""


@twilio.command("notify")
@pass_ctx
def twilio_notify(ctx: Context) -> None:
    """Push queue offers to live Twilio calls (redirects them to their seat at once)."""
    use_metrics_dir(ctx.settings)  # before anything imports prometheus_client
    import threading

    from twilio.rest import Client

    from web.twilio.push import OfferNotifier

    s = ctx.settings
    if not (s.twilio_account_sid and s.twilio_auth_token and s.public_base_url):
        raise click.UsageError(
            "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL are needed"
        )
    notifier = OfferNotifier(
        call_handler(s, ctx.queue),
        Client(s.twilio_account_sid, s.twilio_auth_token),
        s.public_base_url,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    notifier.run(stop)


@main.group()
def seat() -> None:
    """Operator seats."""


def _desk(ctx: Context):  # type: ignore[no-untyped-def]
    from calls.desk import Desk

    handler = call_handler(ctx.settings, ctx.queue)
    return Desk(handler, handler.directory.sessions)  # type: ignore[union-attr]


def _cli_actor():  # type: ignore[no-untyped-def]
    """Whoever runs the command on the server: a supervisor's powers, by name."""
    import getpass

    from calls.desk import Actor

    return Actor(f"cli:{getpass.getuser()}", "admin")


@seat.command("login")
@click.argument("seat_id")
@click.option("--skills", default="", help="comma-separated, e.g. mandarin,hainanese")
@pass_ctx
def seat_login(ctx: Context, seat_id: str, skills: str) -> None:
    """Log a seat in (Mandarin when no skills are given); it is then this command's
    user's until logged out. A seat another user has logged in to is refused."""
    wanted = [s.strip() for s in skills.split(",") if s.strip()]
    _run(lambda: _offers(_desk(ctx).login_seat(_cli_actor(), seat_id, wanted)))


@seat.command("state")
@click.argument("seat_id")
@click.argument("state", type=click.Choice(["available", "paused"]))
@click.option("--reason", default="other", help="why the seat is paused (lunch, meeting, ...)")
@pass_ctx
def seat_state(ctx: Context, seat_id: str, state: str, reason: str) -> None:
    """Make a seat available, or pause it."""
    _run(lambda: _offers(_desk(ctx).set_seat_state(_cli_actor(), seat_id, state, reason)))


@seat.command("logout")
@click.argument("seat_id")
@click.option(
    "--force",
    is_flag=True,
    help="a supervisor frees a seat stuck on a call: the call is completed (its case follows)",
)
@pass_ctx
def seat_logout(ctx: Context, seat_id: str, force: bool) -> None:
    """Log a seat out (refused while it is on a call, unless --force, which completes
    the call and schedules its case)."""
    desk = _desk(ctx)

    def logout() -> None:
        if force:
            call_id = ctx.queue.seat(seat_id).get("call", "")
            result = desk.supervise_seat(_cli_actor(), seat_id, "logout")
            if result == "forced" and call_id:
                click.echo(f"call {call_id} completed by the supervisor")
            click.echo(result)
        else:
            _offers(desk.logout_seat(_cli_actor(), seat_id))

    _run(logout)


@main.group()
def queue() -> None:
    """The call queue."""


@queue.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_ctx
def queue_status(ctx: Context, as_json: bool) -> None:
    """Waiting calls with position and wait; seats with state and time in state."""
    status = ctx.queue.status()
    if as_json:
        click.echo(json.dumps(status, ensure_ascii=False))
        return
    calls, seats = status["calls"], status["seats"]
    click.echo(f"calls ({len(calls)})")
    for c in calls:
        where = f"#{c['position']}" if c["state"] == "waiting" else f"seat {c['seat']}"
        click.echo(
            f"  {c['id']:<24} {c['state']:<8} {where:<12} {c['skill']:<10} "
            f"{c['priority']:<10} waited {c['wait_s']}s"
        )
    click.echo(f"seats ({len(seats)})")
    for s in seats:
        reason = f" ({s['reason']})" if s.get("reason") else ""
        click.echo(f"  {s['id']:<16} {s['state']:<10} {s['in_state_s']}s{reason}  [{s['skills']}]")


@queue.command("figures")
@click.option("--minutes", default=60, show_default=True, help="window length, ending now")
@pass_ctx
def queue_figures_cmd(ctx: Context, minutes: int) -> None:
    """Connection rate, service level, waits and handle time for a recent window."""
    seconds, _ = ctx.queue.redis.time()
    start_ms = (seconds - minutes * 60) * 1000
    figures = queue_figures(ctx.queue.redis, ctx.queue.keys, start_ms=start_ms)
    click.echo(json.dumps(figures.as_dict()))


@main.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--redis-url", default=None, help="default: a private redis-server")
@click.option("--database-url", default=None, help="default: a SQLite file in a temp dir")
def simulate(scenario: Path, redis_url: str | None, database_url: str | None) -> None:
    """Run scripted calls through the real flows, queue, RQ worker and database."""
    for name in ("", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from hotline.redis_server import RedisServer
    from simulator import ScenarioError
    from simulator import simulate as run_simulation
    from simulator.outbound import is_outbound

    with tempfile.TemporaryDirectory(prefix="hotline-sim-") as workdir:
        server = None
        if redis_url is None:
            server = RedisServer(Path(workdir) / "redis", durable=False).start()
            redis_url = server.url
        try:
            if is_outbound(scenario):
                from simulator.outbound import simulate_outbound

                simulate_outbound(
                    scenario,
                    redis_url,
                    database_url or f"sqlite:///{Path(workdir) / 'simulation.db'}",
                    click.echo,
                )
            else:
                run_simulation(scenario, redis_url, database_url, Path(workdir), click.echo)
        except ScenarioError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            if server:
                server.stop()


@main.group()
def db() -> None:
    """The case database."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Apply migrations, then add any missing reference data."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed

    upgrade(ctx.settings.database_url)
    with session_factory(engine_for(ctx.settings.database_url))() as session:
        added = seed(session)
        session.commit()
    click.echo(f"database at head; reference rows added: {added}")


@main.group()
def register() -> None:
    """The register of elderly and vulnerable citizens (no prompts, priority)."""


@register.command("add")
@click.argument("phone")
@click.option("--name", default="")
@click.option("--note", default="")
@click.option("--by", "added_by", default="cli")
@pass_ctx
def register_add(ctx: Context, phone: str, name: str, note: str, added_by: str) -> None:
    """Add a citizen by phone number."""
    from sqlalchemy import select

    from cases.db import engine_for, session_factory
    from cases.models import CitizenRegister
    from cases.phones import InvalidPhone, normalise
    from cases.service import utcnow

    try:
        phone = normalise(phone, ctx.settings.phones)
    except InvalidPhone as exc:
        raise click.BadParameter(str(exc)) from None
    if not phone.startswith("+"):
        raise click.BadParameter("a citizen's number, not a service code or a withheld id")
    with session_factory(engine_for(ctx.settings.database_url))() as session:
        if session.scalar(select(CitizenRegister).where(CitizenRegister.phone == phone)):
            click.echo("already registered")
            return
        session.add(
            CitizenRegister(phone=phone, name=name, note=note, added_by=added_by, added_at=utcnow())
        )
        session.commit()
    click.echo("registered")


@main.group()
def optout() -> None:
    """The opt-out register (谢绝回访): numbers never called for a return visit."""


def _optout_phone(ctx: Context, run, phone: str):  # type: ignore[no-untyped-def]
    """Run ``run(session, phone)`` and commit; an invalid number is a usage error."""
    from cases.db import engine_for, session_factory
    from cases.phones import InvalidPhone

    with session_factory(engine_for(ctx.settings.database_url))() as session:
        try:
            result = run(session, phone)
        except InvalidPhone as exc:
            raise click.BadParameter(str(exc), param_hint="PHONE") from None
        session.commit()
        return result


@optout.command("add")
@click.argument("phone")
@click.option("--note", default="", help="why, e.g. 本人来电要求不再回访")
@click.option("--by", "added_by", default="cli")
@pass_ctx
def optout_add(ctx: Context, phone: str, note: str, added_by: str) -> None:
    """Put a number on the register."""
    from cases.models import add_opt_out

    entry, new = _optout_phone(
        ctx,
        lambda s, p: add_opt_out(s, p, added_by, note, phones=ctx.settings.phones),
        phone,
    )
    click.echo(f"{'added' if new else 'already on the register'}: {entry.phone}")


@optout.command("remove")
@click.argument("phone")
@pass_ctx
def optout_remove(ctx: Context, phone: str) -> None:
    """Take a number off the register."""
    from cases.models import remove_opt_out

    removed = _optout_phone(
        ctx, lambda s, p: remove_opt_out(s, p, phones=ctx.settings.phones), phone
    )
    if not removed:
        raise click.ClickException(f"not on the register: {phone}")
    click.echo("removed")


@optout.command("list")
@pass_ctx
def optout_list(ctx: Context) -> None:
    """The register, newest first: number, added (Beijing time), by, note."""
    from datetime import UTC

    from cases.db import engine_for, session_factory
    from cases.models import list_opt_outs
    from cases.service import HOTLINE_TZ

    with session_factory(engine_for(ctx.settings.database_url))() as session:
        entries = list_opt_outs(session)
    for entry in entries:
        added = entry.added_at if entry.added_at.tzinfo else entry.added_at.replace(tzinfo=UTC)
        when = added.astimezone(HOTLINE_TZ).strftime("%Y-%m-%d %H:%M")
        click.echo("\t".join((entry.phone, when, entry.added_by, entry.note)))


@main.group()
def user() -> None:
    """People who sign in to the console, the wallboard and the portal."""


@user.command("add")
@click.argument("username")
@click.option(
    "--role",
    # cases.models.ROLES (not imported here: the CLI starts without SQLAlchemy)
    type=click.Choice(
        [
            "operator",
            "supervisor",
            "department",
            "admin",
            "knowledge_editor",
            "grid",
            "leader",
            "quality",
        ]
    ),
    required=True,
)
@click.option("--name", "display_name", default="", help="shown on screens, e.g. 王芳")
@click.option("--seat", default=None, help="an operator's usual seat (phone endpoint)")
@click.option("--department", default=None, help="a department user's department code")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@pass_ctx
def user_add(
    ctx: Context,
    username: str,
    role: str,
    display_name: str,
    seat: str | None,
    department: str | None,
    password_stdin: bool,
) -> None:
    """Create a user (the password is asked for, never given as an argument)."""
    import sys

    from cases.db import engine_for, session_factory, upgrade
    from cases.users import UserError, add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    upgrade(ctx.settings.database_url)
    with session_factory(engine_for(ctx.settings.database_url))() as session:
        try:
            add_user(
                session,
                username,
                role,
                password,
                display_name=display_name,
                seat=seat,
                department_code=department,
            )
        except UserError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"user {username} ({role}) added")


@user.command("token")
@click.argument("username")
@pass_ctx
def user_token(ctx: Context, username: str) -> None:
    """Make a new personal API token for the user (shown once; the old one stops)."""
    from cases.db import engine_for, session_factory
    from cases.users import UserError, issue_token

    with session_factory(engine_for(ctx.settings.database_url))() as session:
        try:
            click.echo(issue_token(session, username))
        except UserError as exc:
            raise click.ClickException(str(exc)) from None


@main.group()
def prompts() -> None:
    """Prompt audio for Asterisk."""


@prompts.command("render")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="default: VAR_DIR/sounds",
)
@click.option("--language", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--force", is_flag=True, help="re-render files this command wrote before")
@pass_ctx
def prompts_render(ctx: Context, out_dir: Path | None, language: str, force: bool) -> None:
    """Render every prompt to 8 kHz WAV with espeak-ng and sox (slow speech)."""
    from hotline.prompt_audio import render_all

    target = out_dir or ctx.settings.var_dir / "sounds"
    counts = render_all(target, language, force)
    click.echo(f"{target / language}: {counts}")


def _run(action) -> None:  # type: ignore[no-untyped-def]
    from calls.desk import DeskError

    try:
        action()
    except QueueError as exc:
        raise click.ClickException(str(exc)) from None
    except DeskError as exc:
        raise click.ClickException(f"{exc.code}: {exc.words('en')}") from None


from hotline.open311_cli import open311  # noqa: E402  (it uses this module's context)

main.add_command(open311)

from hotline.grid_cli import grid  # noqa: E402  (the grid workers and the address table)

main.add_command(grid)

if __name__ == "__main__":
    main()
