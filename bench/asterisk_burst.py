"""A burst on a real Asterisk: hotline against Asterisk's own app_queue, side by side.

The same Asterisk 22 (the project's configuration, built as the real-Asterisk tests
build it), the same stand-in operator phones (SIPp, registered with their seat
passwords, answering at once and talking ``--talk`` seconds, no wrap-up) and the same
burst of citizens (SIPp on the trunk, all within a second) drain twice:

- app_queue: ``strategy = leastrecent``, ``ringinuse = no`` (busy-aware members),
  ``retry = 1``, ``wrapuptime = 0``, ``autofill = yes`` (without it app_queue rings one
  waiting caller at a time: 12 s gaps at 200 callers);
- hotline: `hotline agi serve` (FastAGI and the AMI redirector) and `hotline reaper`.

Measured from the phones' own SIP message traces:
- gap: a seat's time from hanging up (its BYE) to answering its next caller (its 200);
- overhead: (last answer - first answer + talk) / (ceil(calls / seats) * talk);
- connected: answered calls; twice: citizens answered more than once.

    HOTLINE_ASTERISK_SOURCE=../shared/vendor/asterisk .venv/bin/python bench/asterisk_burst.py
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis  # noqa: E402

from cases.db import engine_for, session_factory, upgrade  # noqa: E402
from cases.seed import seed  # noqa: E402
from hotline.prompt_audio import render_all  # noqa: E402
from hotline.redis_server import RedisServer  # noqa: E402
from tests.real_asterisk import Asterisk, asterisk_prefix, free_port  # noqa: E402
from tests.real_rig import RealRig  # noqa: E402

APP_QUEUE_NUMBER = "99999"  # the trunk number routed to app_queue for the comparison

_STAMP = re.compile(r"^-+ (\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2}\.\d+)")


def app_queue_config(seats: list[str]) -> tuple[str, dict[str, str]]:
    dialplan = (
        "\n[hotline-inbound](+)\n"
        f"exten => {APP_QUEUE_NUMBER},1,Answer()\n"
        " same => n,Queue(burst,,,,600)\n"
        " same => n,Hangup()\n"
    )
    members = "".join(f"member => PJSIP/{s}\n" for s in seats)
    queues = (
        # autofill: ring as many waiting callers as there are free members (Asterisk's
        # default is one at a time, which no real centre runs).
        "[general]\npersistentmembers = no\nautofill = yes\n\n[burst]\nstrategy = leastrecent\n"
        "ringinuse = no\nretry = 1\nwrapuptime = 0\ntimeout = 15\nautopause = no\n"
        "announce-frequency = 0\nperiodic-announce-frequency = 0\njoinempty = yes\n"
        "leavewhenempty = no\n" + members
    )
    return dialplan, {"queues.conf": queues}


def phone_events(messages: Path) -> list[tuple[float, str, str]]:
    """(time, 'answer'|'hangup', caller) for each 200 to an INVITE and each BYE the
    phone sent, from SIPp's -trace_msg log."""
    out: list[tuple[float, str, str]] = []
    if not messages.exists():
        return out
    stamp = 0.0
    block: list[str] = []

    def flush() -> None:
        if not block or not block[0].startswith(("UDP message sent", "TCP message sent")):
            return
        first = next((line for line in block[1:] if line.strip()), "")
        cseq = next((line for line in block if line.lower().startswith("cseq:")), "")
        # In a response the phone sends, From: is the caller as Asterisk presents them.
        sender = next((line for line in block if line.lower().startswith("from:")), "")
        caller = re.search(r"sip:([^@>;]+)", sender)
        if first.startswith("SIP/2.0 200") and "INVITE" in cseq:
            out.append((stamp, "answer", caller.group(1) if caller else ""))
        elif first.startswith("BYE "):
            out.append((stamp, "hangup", ""))

    for line in messages.read_text(errors="replace").splitlines():
        found = _STAMP.match(line)
        if found:
            flush()
            block = []
            stamp = datetime.fromisoformat(f"{found.group(1)} {found.group(2)}").timestamp()
            continue
        block.append(line.strip())
    flush()
    return out


def measure(rig: RealRig, seats: list[str], calls: int, talk_s: float) -> dict[str, object]:
    gaps: list[float] = []
    answers: list[float] = []
    callers: Counter[str] = Counter()
    for seat in seats:
        events = sorted(phone_events(rig.workdir / f"phone-{seat}.messages"))
        last_hangup = None
        for at, kind, caller in events:
            if kind == "answer":
                answers.append(at)
                callers[caller] += 1
                if last_hangup is not None:
                    gaps.append(at - last_hangup)
                last_hangup = None
            else:
                last_hangup = at
    gaps.sort()
    rounds = math.ceil(calls / len(seats))
    span = (max(answers) - min(answers) + talk_s) if answers else float("nan")
    return {
        "gap_mean_s": round(statistics.fmean(gaps), 3) if gaps else None,
        "gap_p99_s": round(gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))], 3) if gaps else None,
        "overhead": round(span / (rounds * talk_s), 3),
        "connected": sum(callers.values()),
        "twice": sum(1 for n in callers.values() if n > 1),
    }


def drain(rig: RealRig, name: str, dialed: str, calls: int, timeout_s: float) -> None:
    series = {"hotline": "1371", "app_queue": "1372"}[name]  # mobile numbers, 11 digits
    numbers = [f"{series}{n:07d}" for n in range(calls)]
    citizens = rig.citizens(
        name, numbers, dialed=dialed, rate_per_s=calls, wait_for_bye_ms=int(timeout_s * 1000)
    )
    citizens.wait(timeout=timeout_s + 30)


def run(
    calls: int,
    seat_count: int,
    talk_s: float,
    workdir: Path,
    systems: tuple[str, ...] = ("app_queue", "hotline"),
) -> dict[str, object]:
    prefix = asterisk_prefix()
    if prefix is None:
        raise SystemExit(
            "set ASTERISK_PREFIX or HOTLINE_ASTERISK_SOURCE (see tests/real_asterisk.py)"
        )
    sounds = workdir / "sounds"
    render_all(sounds, "zh")
    db_url = f"sqlite:///{workdir / 'hotline.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as session:
        seed(session)
        session.commit()
    seats = [f"1{n:03d}" for n in range(1, seat_count + 1)]
    results: dict[str, object] = {"calls": calls, "seats": seat_count, "talk_s": talk_s}
    for system in systems:
        run_dir = workdir / system
        run_dir.mkdir()
        redis_server = RedisServer(run_dir / "redis", durable=False).start()
        redis = Redis.from_url(redis_server.url)
        dialplan, conf = app_queue_config(seats)
        asterisk = Asterisk(
            prefix,
            run_dir / "asterisk",
            agi_port=free_port(),
            seats=seats,
            hold_s=10,
            dialplan_extra=dialplan,
            extra_conf=conf,
            extra_modules=("app_queue.so",),
        )
        rig = RealRig(asterisk, redis, redis_server.url, db_url, sounds / "zh", run_dir)
        try:
            asterisk.start()
            if system == "hotline":
                rig.start("agi")
                rig.start("reaper")
                rig.keep_seats_alive()
            for seat in seats:
                rig.seat(
                    seat,
                    ring_ms=0,
                    talk_ms=int(talk_s * 1000),
                    trace=True,
                    login=system == "hotline",
                )
            time.sleep(1)
            dialed = "12345" if system == "hotline" else APP_QUEUE_NUMBER
            drain(rig, system, dialed, calls, timeout_s=60 + 4 * calls / seat_count * talk_s + 60)
            for phone in rig.sipps:
                phone.stop()
            results[system] = measure(rig, seats, calls, talk_s)
        finally:
            rig.close()
            redis.close()
            redis_server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seats", type=int, default=20)
    parser.add_argument("--talk", type=float, default=2.0)
    parser.add_argument("--only", choices=["app_queue", "hotline"], default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep logs in this folder")
    args = parser.parse_args()
    systems = (args.only,) if args.only else ("app_queue", "hotline")
    if args.keep:
        args.keep.mkdir(parents=True)
        result = run(args.calls, args.seats, args.talk, args.keep, systems)
    else:
        with tempfile.TemporaryDirectory(prefix="asterisk-burst-") as tmp:
            result = run(args.calls, args.seats, args.talk, Path(tmp), systems)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
