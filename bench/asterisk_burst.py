"""A burst on a real Asterisk: hotline against Asterisk's own app_queue, side by side.

The same Asterisk 22 (the project's configuration, built as the real-Asterisk tests
build it), the same stand-in operator phones answering at once and talking ``--talk``
seconds (no wrap-up), and the same burst of citizens (SIPp on the trunk, all within a
second) drain twice. The phones (``--phones``) are either

- ``sip``: SIPp, registered with their seat passwords; or
- ``local``: Local channels, Local/SEAT@seat-phones, whose dialplan Answer()s, Wait()s
  the talk time and hangs up (both systems dial the same strings).

The two systems:

- app_queue: ``strategy = leastrecent``, ``ringinuse = no`` (busy-aware members),
  ``retry = 1``, ``wrapuptime = 0``, ``autofill = yes`` (without it app_queue rings one
  waiting caller at a time: 12 s gaps at 200 callers);
- hotline: `hotline agi serve` (FastAGI and the AMI redirector) and `hotline reaper`.

Measured from the phones' own SIP message traces (``sip``), or from the seat-phones
context's own lines in Asterisk's log (``local``), with millisecond times:
- gap: a seat's time from hanging up (its BYE) to answering its next caller (its 200);
- overhead: (last answer - first answer + talk) / (ceil(calls / seats) * talk);
- connected: answered calls; twice: citizens answered more than once;
- stages (hotline): from Asterisk's log, the p99 of each step of a gap (the seat's
  caller leaves the bridge -> the next caller's Dial starts -> the seat answers) and
  the AGI route that started those Dials.

A Local phone's pick-up is when its Answer() starts: Answer() then waits up to 500 ms
for the caller's first voice frame (the citizens send none), so each talk lasts up to
``--talk`` + 0.5 s, for both systems alike.

    HOTLINE_ASTERISK_SOURCE=../shared/vendor/asterisk .venv/bin/python bench/asterisk_burst.py \
        [--phones sip|local]
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
LOCAL_PHONES = "seat-phones"  # the context of the Local-channel phones (--phones local)

_STAMP = re.compile(r"^-+ (\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2}\.\d+)")


def seat_dial_string(phones: str) -> str:
    """How both systems dial a seat ({seat}: its number)."""
    return "PJSIP/{seat}" if phones == "sip" else f"Local/{{seat}}@{LOCAL_PHONES}"


def local_phones_dialplan(talk_s: float) -> str:
    """Phones as Local channels: answer at once, talk, hang up. The NoOp lines are the
    phones' own record (Asterisk logs each with its millisecond time)."""
    return (
        f"\n[{LOCAL_PHONES}]\n"
        "exten => _[12]XXX,1,Answer()\n"
        " same => n,NoOp(seat-phone answer ${CALLERID(num)})\n"
        f" same => n,Wait({talk_s:g})\n"
        " same => n,NoOp(seat-phone hangup)\n"
        " same => n,Hangup()\n"
    )


def app_queue_config(seats: list[str], phones: str = "sip") -> tuple[str, dict[str, str]]:
    dialplan = (
        "\n[hotline-inbound](+)\n"
        f"exten => {APP_QUEUE_NUMBER},1,Answer()\n"
        " same => n,Queue(burst,,,,600)\n"
        " same => n,Hangup()\n"
    )
    dial = seat_dial_string(phones)
    members = "".join(f"member => {dial.format(seat=s)}\n" for s in seats)
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


_LOCAL_LINE = re.compile(
    r"^\[(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+)\].*Executing \[(\d+)@"
    + LOCAL_PHONES
    + r":\d+\] (Answer|NoOp)\(\"([^\"]*)\"(?:, \"seat-phone (answer|hangup) ?([^\"]*)\")?"
)


def local_phone_events(log: str) -> dict[str, list[tuple[float, str, str]]]:
    """Per seat, (time, 'answer'|'hangup', caller) from the seat-phones context's lines
    in Asterisk's full log. The pick-up is when Answer() starts (it then waits up to
    500 ms for the caller's media before the dialplan goes on); the caller is on the
    NoOp after it, matched by the channel's name."""
    answered: dict[str, tuple[float, str]] = {}  # channel -> (time, seat)
    out: dict[str, list[tuple[float, str, str]]] = {}
    for line in log.splitlines():
        found = _LOCAL_LINE.match(line)
        if not found:
            continue
        stamp, seat, app, channel, kind, caller = found.groups()
        at = datetime.fromisoformat(stamp).timestamp()
        if app == "Answer":
            answered[channel] = (at, seat)
        elif kind == "answer" and channel in answered:
            out.setdefault(seat, []).append((answered.pop(channel)[0], "answer", caller))
        elif kind == "hangup":
            out.setdefault(seat, []).append((at, "hangup", ""))
    return out


def measure(
    rig: RealRig, seats: list[str], calls: int, talk_s: float, phones: str = "sip"
) -> dict[str, object]:
    gaps: list[float] = []
    answers: list[float] = []
    callers: Counter[str] = Counter()
    local = local_phone_events(rig.asterisk.log()) if phones == "local" else {}
    for seat in seats:
        if phones == "local":
            events = sorted(local.get(seat, []))
        else:
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


_LOG_LINE = re.compile(r"^\[([\d\- :.]+)\] \w+\[\d+\]\[(C-[0-9a-f]+)\] (.*)$")
_ROUTE = re.compile(r'AGI\("PJSIP/trunk[^"]*", "agi://[^/]+/[^/]+/([a-z-]+)')
_DIAL = re.compile(r"Executing Application: \(Dial\) Options: \((?:PJSIP|Local)/(\d+)")
_ANSWERED = re.compile(r"app_dial\.c: (?:PJSIP|Local)/(\d+)\S* answered PJSIP/trunk")


def stages(log: str) -> dict[str, object]:
    """Where hotline's seat idle gaps go, from Asterisk's log (either kind of phone):
    the seat's caller leaves their bridge (their Dial ends; the AGI then completes the
    call, which offers the seat, and the redirector moves the next caller) -> the next
    caller enters [hotline-bridge] (``to_redirect``) -> its bridge route's Dial starts
    (``redirect_to_dial``; the two make ``to_next_dial``) -> the seat answers
    (``to_answer``). p99 of each step, which AGI route started the Dials that closed a
    gap, and the slowest gaps' steps with their time since the first caller arrived."""
    dial_end: dict[str, float] = {}  # call id -> when its caller left the seat's bridge
    dial_start: dict[str, float] = {}  # seat -> its latest Dial
    seat_call: dict[str, str] = {}  # seat -> the call id of its latest Dial
    route: dict[str, str] = {}  # call id -> the last AGI route on the caller's channel
    redirected: dict[str, float] = {}  # call id -> when it last entered [hotline-bridge]
    steps: dict[str, list[float]] = {
        "to_next_dial": [],
        "to_redirect": [],
        "redirect_to_dial": [],
        "to_answer": [],
    }
    gaps: list[tuple[float, float, float | None, float]] = []  # (gap, at, redirect, dial)
    routes: Counter[str] = Counter()
    first: float | None = None
    for line in log.splitlines():
        found = _LOG_LINE.match(line)
        if not found:
            continue
        at = datetime.fromisoformat(found.group(1)).timestamp()
        call, text = found.group(2), found.group(3)
        if (agi := _ROUTE.search(text)) is not None:
            route[call] = agi.group(1)
            first = at if first is None else first
        elif "Executing [s@hotline-bridge:1]" in text:
            redirected[call] = at
        elif "PJSIP/trunk" in text and "basic-bridge" in text and " left '" in text:
            dial_end.setdefault(call, at)
        elif (dial := _DIAL.search(text)) is not None:
            seat = dial.group(1)
            previous = seat_call.get(seat)
            if previous in dial_end:
                left = dial_end[previous]
                steps["to_next_dial"].append(at - left)
                moved = redirected.get(call)
                if moved is not None and moved >= left:
                    steps["to_redirect"].append(moved - left)
                    steps["redirect_to_dial"].append(at - moved)
                since = left - (first or left)
                gaps.append((at - left, since, None if moved is None else moved - left, at))
                routes[route.get(call, "?")] += 1
            dial_start[seat], seat_call[seat] = at, call
        elif (answered := _ANSWERED.search(text)) is not None and answered.group(1) in dial_start:
            if seat_call.get(answered.group(1)) != call:
                continue
            if len(steps["to_answer"]) < len(steps["to_next_dial"]):
                steps["to_answer"].append(at - dial_start.pop(answered.group(1)))

    def p99(values: list[float]) -> float | None:
        values = sorted(values)
        return round(values[min(len(values) - 1, int(len(values) * 0.99))], 3) if values else None

    slowest = [
        {
            "to_next_dial_s": round(gap, 3),
            "to_redirect_s": None if moved is None else round(moved, 3),
            "after_s": round(since, 1),
        }
        for gap, since, moved, _ in sorted(gaps, reverse=True)[:5]
    ]
    return {
        "p99_s": {name: p99(v) for name, v in steps.items()},
        "dialled_by": dict(routes),
        "slowest": slowest,
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
    phones: str = "sip",
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
    results: dict[str, object] = {
        "calls": calls,
        "seats": seat_count,
        "talk_s": talk_s,
        "phones": phones,
    }
    for system in systems:
        run_dir = workdir / system
        run_dir.mkdir()
        redis_server = RedisServer(run_dir / "redis", durable=False).start()
        redis = Redis.from_url(redis_server.url)
        dialplan, conf = app_queue_config(seats, phones)
        if phones == "local":
            dialplan += local_phones_dialplan(talk_s)
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
        rig = RealRig(
            asterisk,
            redis,
            redis_server.url,
            db_url,
            sounds / "zh",
            run_dir,
            env_overrides={"SEAT_DIAL_PATTERN": seat_dial_string(phones)},
        )
        try:
            asterisk.start()
            if system == "hotline":
                rig.start("agi")
                rig.start("reaper")
                rig.keep_seats_alive()
            for seat in seats:
                if phones == "local":  # the phone is the dialplan: only the login
                    if system == "hotline":
                        rig.queue.seat_login(seat, ("mandarin",))
                        rig.seats.append(seat)
                    continue
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
            results[system] = figures = measure(rig, seats, calls, talk_s, phones)
            if system == "hotline":
                figures["stages"] = stages(asterisk.log())
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
    parser.add_argument(
        "--phones",
        choices=["sip", "local"],
        default="sip",
        help="seat phones: SIPp over PJSIP, or Local channels answered by the dialplan",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep logs in this folder")
    args = parser.parse_args()
    systems = (args.only,) if args.only else ("app_queue", "hotline")
    if args.keep:
        args.keep.mkdir(parents=True)
        result = run(args.calls, args.seats, args.talk, args.keep, systems, args.phones)
    else:
        with tempfile.TemporaryDirectory(prefix="asterisk-burst-") as tmp:
            result = run(args.calls, args.seats, args.talk, Path(tmp), systems, args.phones)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
