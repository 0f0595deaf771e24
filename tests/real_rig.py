"""The whole Asterisk side for real: Asterisk with the project's configuration,
`hotline agi serve` (FastAGI and the AMI redirector), `hotline reaper`, an RQ worker,
SIPp phones registered with their seat credentials and SIPp citizens on the trunk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from cases.phones import normalise
from queueing import CallQueue
from queueing.settings import QueueSettings
from tests import sipp
from tests.real_asterisk import Asterisk, free_port, seat_password


@dataclass
class RealRig:
    asterisk: Asterisk
    redis: Redis
    redis_url: str
    db_url: str
    sounds: Path
    workdir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    sipps: list[sipp.SippProcess] = field(default_factory=list)
    seats: list[str] = field(default_factory=list)
    _stop_heartbeats: threading.Event = field(default_factory=threading.Event)
    _citizen_ports: int = 0

    # -- the services ---------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.db_url,
            "HOTLINE_VAR_DIR": str(self.workdir / "var"),
            "HOTLINE_ASTERISK_SOUNDS": str(self.sounds),
            "HOTLINE_AGI_PORT": str(self.asterisk.agi_port),
            "HOTLINE_AGI_SECRET": self.asterisk.agi_secret,
            "ASTERISK_AMI_HOST": "127.0.0.1",
            "ASTERISK_AMI_PORT": str(self.asterisk.ami_port),
            "ASTERISK_AMI_SECRET": self.asterisk.ami_secret,
            "HOTLINE_WRAPUP_S": "0",
        }
        env.update(self.env_overrides)
        return env

    @property
    def queue(self) -> CallQueue:
        wrapup = float(self.env["HOTLINE_WRAPUP_S"])
        return CallQueue(self.redis, QueueSettings(wrapup_s=wrapup))

    def start(self, name: str, **env: str) -> None:
        """Start a service; "agi-2" is a second FastAGI server (give it HOTLINE_AGI_PORT)."""
        argv = {
            "agi": [sys.executable, "-m", "hotline.cli", "agi", "serve"],
            "agi-2": [sys.executable, "-m", "hotline.cli", "agi", "serve"],
            "reaper": [sys.executable, "-m", "hotline.cli", "reaper"],
            "worker": [sys.executable, "-m", "hotline.cli", "worker"],
        }[name]
        service_env = {**self.env, **env}
        with open(self.workdir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                argv, env=service_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if name.startswith("agi"):
            wait_port(int(service_env["HOTLINE_AGI_PORT"]))

    def stop(self, name: str, *, kill: bool = False) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def service_log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- people -----------------------------------------------------------------------

    def seat(
        self,
        seat: str,
        *,
        ring_ms: int | None = 1000,
        talk_ms: int = 2000,
        skills: tuple[str, ...] = ("mandarin",),
        login: bool = True,
        trace: bool = False,
        box: Asterisk | None = None,
    ) -> sipp.SippProcess:
        """An operator: the phone registers with the seat's own password (on ``box``,
        default the rig's Asterisk) and answers after ``ring_ms`` (None: never); the
        seat logs in to the queue."""
        port = free_port(socket.SOCK_DGRAM)
        phone = sipp.phone(self.workdir, seat, port, ring_ms=ring_ms, talk_ms=talk_ms, trace=trace)
        self.sipps.append(phone)
        registrar = box or self.asterisk
        sipp.register(self.workdir, registrar.sip_port, seat, seat_password(seat), port)
        if login:
            self.queue.seat_login(seat, skills)
            self.seats.append(seat)
        return phone

    def citizens(self, name: str, numbers: list[str], **scenario: object) -> sipp.SippProcess:
        port = free_port(socket.SOCK_DGRAM, "127.0.0.2")
        proc = sipp.citizens(
            self.workdir, name, self.asterisk.sip_port, numbers, local_port=port, **scenario
        )
        self.sipps.append(proc)
        return proc

    def keep_seats_alive(self) -> None:
        def beat() -> None:
            while not self._stop_heartbeats.wait(2):
                for seat in list(self.seats):
                    try:
                        self.queue.heartbeat(seat)
                    except Exception:
                        pass

        threading.Thread(target=beat, daemon=True).start()

    # -- what happened -----------------------------------------------------------------

    def events(self, kind: str | None = None) -> list[dict[str, str]]:
        out = []
        for _, fields in self.redis.xrange(self.queue.keys.events):
            event = {k.decode(): v.decode() for k, v in fields.items()}
            if kind is None or event["type"] == kind:
                out.append(event)
        return out

    def calls(self) -> dict[str, dict[str, str]]:
        """Every call the queue knows, by call id."""
        out = {}
        for key in self.redis.scan_iter(self.queue.keys.call_prefix + "*", count=1000):
            call_id = key.decode()[len(self.queue.keys.call_prefix) :]
            out[call_id] = self.queue.call(call_id)
        return out

    def call_of(self, caller: str) -> tuple[str, dict[str, str]]:
        """The queue's call from this caller (as the carrier sent it; stored in E.164)."""
        caller = normalise(caller)
        found = [(cid, c) for cid, c in self.calls().items() if c.get("caller") == caller]
        assert len(found) == 1, f"{len(found)} queue calls from {caller}: {found}"
        return found[0]

    def close(self) -> None:
        self._stop_heartbeats.set()
        for proc in self.sipps:
            proc.stop()
        for name in list(self.procs):
            self.stop(name)
        self.asterisk.stop()


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listening on {host}:{port}")
