"""The `hotline` console command."""

from __future__ import annotations

import json
import logging
import signal
import time

import click
from redis.exceptions import ConnectionError as RedisConnectionError

from hotline.config import ConfigError, Settings, load_settings
from hotline.logs import setup_logging
from hotline.runtime import call_queue
from queueing import CallQueue, QueueError
from queueing.events import queue_figures

log = logging.getLogger("hotline")


class Context:
    def __init__(self) -> None:
        try:
            self.settings: Settings = load_settings()
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        self._queue: CallQueue | None = None

    @property
    def queue(self) -> CallQueue:
        if self._queue is None:
            self._queue = call_queue(self.settings)
            try:
                self._queue.redis.ping()
            except (RedisConnectionError, OSError):
                raise click.ClickException(
                    "cannot reach Redis: start the service with scripts/run, or set REDIS_URL"
                ) from None
        return self._queue


pass_ctx = click.make_pass_decorator(Context, ensure=True)


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
    from hotline.supervisor import run as run_service

    raise SystemExit(run_service(ctx.settings))


@main.command()
@click.option("--interval", default=0.25, show_default=True, help="seconds between sweeps")
@pass_ctx
def reaper(ctx: Context, interval: float) -> None:
    """Sweep the queue: ring-no-answer, wrap-up ends, lost seats, sticky fallback."""
    running = True

    def stop(signum: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("reaper: sweeping queue %r every %.2fs", ctx.settings.queue.name, interval)
    while running:
        try:
            counts, offers = ctx.queue.tick()
        except (RedisConnectionError, OSError) as exc:
            log.warning("reaper: redis unavailable (%s); retrying", exc)
            time.sleep(1)
            continue
        if any(counts.values()) or offers:
            log.info("reaper: %s, %d new offers", counts, len(offers))
        time.sleep(interval)


@main.group()
def seat() -> None:
    """Operator seats."""


@seat.command("login")
@click.argument("seat_id")
@click.option("--skills", default="", help="comma-separated, e.g. mandarin,hainanese")
@pass_ctx
def seat_login(ctx: Context, seat_id: str, skills: str) -> None:
    """Log a seat in (Mandarin when no skills are given)."""
    wanted = [s.strip() for s in skills.split(",") if s.strip()]
    _run(lambda: _offers(ctx.queue.seat_login(seat_id, wanted)))


@seat.command("state")
@click.argument("seat_id")
@click.argument("state", type=click.Choice(["available", "paused"]))
@click.option("--reason", default="", help="why the seat is paused")
@pass_ctx
def seat_state(ctx: Context, seat_id: str, state: str, reason: str) -> None:
    """Make a seat available, or pause it."""
    _run(lambda: _offers(ctx.queue.seat_state(seat_id, state, reason)))


@seat.command("logout")
@click.argument("seat_id")
@pass_ctx
def seat_logout(ctx: Context, seat_id: str) -> None:
    """Log a seat out."""
    _run(lambda: _offers(ctx.queue.seat_logout(seat_id)))


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


def _run(action) -> None:  # type: ignore[no-untyped-def]
    try:
        action()
    except QueueError as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":
    main()
