"""Run the real FastAGI server and offer redirector against the Asterisk emulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rq import Queue as JobQueue

from agi_scripts.ami import AmiConnection, OfferRedirector
from agi_scripts.server import FastAGIServer
from agi_scripts.sessions import AgiSettings
from calls import RQ_QUEUE, CallerDirectory, CallHandler
from queueing import CallQueue
from tests.asterisk_emulator import AmiServer, AsteriskEmulator, Channel, Operator

AMI_USER, AMI_SECRET = "hotline", "emulator-secret-not-real"


@dataclass
class Rig:
    queue: CallQueue
    handler: CallHandler
    server: FastAGIServer
    emulator: AsteriskEmulator
    ami: AmiServer
    dial_times: dict[str, float]
    redirect_times: dict[str, float]


@contextmanager
def asterisk_rig(
    queue: CallQueue,
    sessions: Any,
    operators: dict[str, Operator],
    hold_s: float = 1.0,
    recordings_dir: str | None = None,
) -> Iterator[Rig]:
    jobs = JobQueue(RQ_QUEUE, connection=queue.redis)
    handler = CallHandler(queue, jobs, CallerDirectory(sessions) if sessions else None)
    settings = AgiSettings(
        sounds="/var/lib/hotline/sounds/zh",
        ring_timeout_s=queue.settings.ring_timeout_s,
        recordings_dir=recordings_dir,
    )
    server = FastAGIServer(("127.0.0.1", 0), handler, settings)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    dial_times: dict[str, float] = {}
    redirect_times: dict[str, float] = {}

    def on_dial(uniqueid: str, at: float) -> None:
        dial_times.setdefault("ast-" + uniqueid, at)

    emulator = AsteriskEmulator(
        server.server_address[1],
        operators,
        handler.submit_case_form,
        hold_s=hold_s,
        on_dial=on_dial,
    )
    ami_server = AmiServer(emulator, AMI_USER, AMI_SECRET)
    threading.Thread(
        target=ami_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()

    def new_client() -> AmiConnection:
        return AmiConnection("127.0.0.1", ami_server.port, AMI_USER, AMI_SECRET)

    redirector = OfferRedirector(
        handler, new_client, on_redirect=lambda c, t: redirect_times.setdefault(c, t)
    )
    stop = threading.Event()
    pusher = threading.Thread(target=redirector.run, args=(stop,), daemon=True)
    pusher.start()
    time.sleep(0.2)  # the redirector subscribes
    try:
        yield Rig(queue, handler, server, emulator, ami_server, dial_times, redirect_times)
    finally:
        stop.set()
        pusher.join(timeout=5)
        ami_server.shutdown()
        ami_server.server_close()
        server.shutdown()
        server.server_close()


def drive_scenario(
    rig: Rig, scenario: dict[str, Any], timeout_s: float = 60.0
) -> dict[str, Channel]:
    """Callers and operators act at their scripted times; the reaper sweeps."""
    start = time.monotonic()
    channels: dict[str, Channel] = {}
    ops = [dict(op) for op in scenario.get("operator", [])]
    pending_keys = {
        c["id"]: sorted(c.get("keys", []), key=lambda k: k["at_s"]) for c in scenario["call"]
    }
    while True:
        now = time.monotonic() - start
        assert now < timeout_s, {k: ch.heard for k, ch in channels.items()}
        for op in ops:
            if not op.get("_in") and now >= op.get("login_at_s", 0):
                rig.queue.seat_login(op["seat"], op.get("skills", ["mandarin"]))
                op["_in"] = True
                if now < op.get("ready_at_s", 0):
                    rig.queue.seat_state(op["seat"], "paused", "not ready")
            if op.get("_in") and not op.get("_ready") and now >= op.get("ready_at_s", 0):
                op["_ready"] = True
                if op.get("ready_at_s", 0) > 0:
                    rig.queue.seat_state(op["seat"], "available")
        for spec in scenario["call"]:
            cid = spec["id"]
            if cid not in channels and now >= spec["at_s"]:
                channels[cid] = rig.emulator.call(spec["caller"], spec["dialed"])
            channel = channels.get(cid)
            if channel is None:
                continue
            while pending_keys[cid] and now >= pending_keys[cid][0]["at_s"]:
                channel.press(str(pending_keys[cid].pop(0)["digits"]))
            hang = spec.get("hangup_at_s")
            if hang is not None and now >= float(hang) and not channel.hung_up:
                channel.hang_up()
        if len(channels) == len(scenario["call"]) and all(
            c.done.is_set() for c in channels.values()
        ):
            return channels
        rig.queue.tick()
        time.sleep(0.05)


def operators_of(scenario: dict[str, Any]) -> dict[str, Operator]:
    out = {}
    for op in scenario.get("operator", []):
        after = op.get("answer_after_s", 1.0)
        form = {
            "description": op.get("description", "市民来电反映问题"),
            "category_code": op.get("category"),
            "district_code": op.get("district"),
        }
        out[op["seat"]] = Operator(
            op["seat"],
            None if after == "never" else float(after),
            float(op.get("talk_s", 2.0)),
            form,
        )
    return out
