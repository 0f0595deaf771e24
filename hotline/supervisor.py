"""`hotline run`: the whole service in the foreground.

Starts the private Redis (unless REDIS_URL or REDIS_SENTINELS is set), then each
service as a child process, restarts a child that dies, and stops everything on Ctrl-C
or SIGTERM.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hotline.config import Settings
from hotline.metrics import use_metrics_dir
from hotline.redis_server import RedisServer, die_with_parent
from hotline.runtime import embedded_redis_dir

log = logging.getLogger("hotline.run")


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)
    restart_at: float | None = None  # a crashed child waits for its back-off


def _bin(name: str) -> str:
    """A console script installed beside this Python (the virtualenv's bin/)."""
    return str(Path(sys.executable).with_name(name))


def service_commands(settings: Settings) -> list[Child]:
    hotline = [sys.executable, "-m", "hotline.cli"]
    children = [
        *(Child(f"worker-{n}", [*hotline, "worker"]) for n in range(1, settings.workers + 1)),
        Child("reaper", [*hotline, "reaper"]),
        Child("web", [*hotline, "web"]),
        Child("push", [*hotline, "push"]),  # the live screens' streams
        Child("agi", [*hotline, "agi", "serve"]),
    ]
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.public_base_url:
        children.append(Child("twilio-notify", [*hotline, "twilio", "notify"]))
        children.append(Child("dialer", [*hotline, "dialer"]))
    elif (settings.ami_host and settings.ami_secret) or os.environ.get("HOTLINE_SMS_PROVIDER"):
        # The dialer's loop also sends the SMS outbox (calls.sms, docs/sms.md).
        children.append(Child("dialer", [*hotline, "dialer"]))
    return children


def run(settings: Settings, children: list[Child] | None = None) -> int:
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    redis: RedisServer | None = None
    use_metrics_dir(settings, empty=True)  # the last run's counts go; children write anew
    env = dict(os.environ)
    # No front proxy here: pages open their streams on the push process's own port
    # (the same host, so the sign-in cookie comes along). Behind a proxy that routes
    # the stream paths, set HOTLINE_PUSH_PUBLIC_PORT empty.
    env.setdefault("HOTLINE_PUSH_PUBLIC_PORT", env.get("HOTLINE_PUSH_PORT") or "8001")
    if not env.get("HOTLINE_SECRET_KEY"):
        # The web and the push process must read the same cookies (scripts/run keeps
        # one key under var/secret_key); without it, one key for this run.
        log.warning("HOTLINE_SECRET_KEY is not set: sign-ins end when the service restarts")
        env["HOTLINE_SECRET_KEY"] = secrets.token_hex(32)
    if settings.redis_sentinels:
        log.info("redis: the primary the sentinels name (%s)", settings.redis_sentinel_master)
    elif not settings.redis_url:
        redis = RedisServer(embedded_redis_dir(settings), unix_socket=True).start()
        env["REDIS_URL"] = redis.url
        log.info("redis: private server at %s (append-only, fsync every second)", redis.url)
    else:
        log.info("redis: using REDIS_URL")

    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import user_count

    upgrade(settings.database_url)
    with session_factory(engine_for(settings.database_url))() as session:
        added = seed(session)
        session.commit()
        users = user_count(session)
    log.info("database: migrated to head; reference rows added: %s", added)
    if users == 0:
        log.warning(
            "no users yet: make the first admin with `.venv/bin/hotline user add admin "
            "--role admin`, then open http://%s:%s/login",
            settings.web_host,
            settings.web_port,
        )
    try:
        from hotline.prompt_audio import render_all, render_hold_music

        sounds = settings.var_dir / "sounds"
        counts = render_all(sounds, "zh")
        render_hold_music(sounds)
        log.info("prompts: %s under %s", counts, sounds)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        log.warning("prompts: not rendered (%s); Twilio still speaks them", exc)

    children = children if children is not None else service_commands(settings)
    try:
        for child in children:
            child.process = subprocess.Popen(
                child.argv, env=env, start_new_session=True, preexec_fn=die_with_parent
            )
            log.info("%s: started (pid %d)", child.name, child.process.pid)
        while not stopping:
            for child in children:
                assert child.process is not None
                code = child.process.poll()
                if code is None:
                    continue
                now = time.monotonic()
                if child.restart_at is None:
                    child.restarts = [t for t in child.restarts if now - t < 60] + [now]
                    # One service crash-looping must not take the others (and Redis) down:
                    # it is restarted ever more slowly, up to once a minute, and said so.
                    backoff = (
                        0.0
                        if len(child.restarts) <= 5
                        else min(60.0, 2.0 ** (len(child.restarts) - 5))
                    )
                    child.restart_at = now + backoff
                    level = logging.ERROR if backoff else logging.WARNING
                    log.log(
                        level, "%s: exited with %s; restarting in %.0fs", child.name, code, backoff
                    )
                if now < child.restart_at:
                    continue
                child.restart_at = None
                child.process = subprocess.Popen(
                    child.argv, env=env, start_new_session=True, preexec_fn=die_with_parent
                )
            time.sleep(0.5)
        return 0
    finally:
        log.info("stopping")
        for child in children:
            if child.process and child.process.poll() is None:
                child.process.terminate()
        for child in children:
            if child.process:
                try:
                    child.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()
                log.info("%s: stopped", child.name)
        if redis:
            redis.stop()
            log.info("redis: stopped")
