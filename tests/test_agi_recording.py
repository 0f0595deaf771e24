"""The bridge's AGI between a seat's offer and its Dial: MixMonitor starts in one EXEC
(its i() option marks the channel, and [hotline-agi] passes the mark to every later
session as its fourth argument), so no GET VARIABLE or SET VARIABLE round trip delays
the Dial; a second bridge of the same call dials at once. Against the Asterisk emulator,
and on a real Asterisk 22 whose AGI debug log is the transcript."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rq import Queue

from calls import RQ_QUEUE
from queueing import CallQueue
from tests.asterisk_emulator import Channel, Operator
from tests.asterisk_harness import Rig, asterisk_rig
from tests.conftest import wait_until
from tests.real_rig import RealRig
from tests.test_real_asterisk import case_db, make_rig, prefix, sounds  # noqa: F401
from tests.test_transfers_asterisk import WANG, connected_call, desk_for, operator


def hold_then_free(rig: Rig, seats: list[str]) -> Channel:
    """A caller who skips the menu and holds in the dialplan; then the seats come free,
    one after another."""
    for seat in seats:
        rig.queue.seat_login(seat, ["mandarin"])
        rig.queue.seat_state(seat, "paused", "not yet")
    caller = rig.emulator.call("13800138000")
    wait_until(lambda: "language_menu" in caller.heard, what="the language menu")
    caller.press("9")
    wait_until(
        lambda: not caller.in_agi and caller.variables.get("HOTLINE_NEXT") == "hold",
        timeout_s=15,
        what="the caller holding",
    )
    for seat in seats:
        rig.queue.seat_state(seat, "available")
    return caller


def until_the_dial(commands: list[str]) -> list[str]:
    dial = next(i for i, line in enumerate(commands) if line.startswith("EXEC Dial"))
    return commands[:dial]


def before_dial(rig: Rig) -> list[list[str]]:
    """Each bridge session's commands before its EXEC Dial."""
    return [until_the_dial(s.commands) for s in rig.emulator.sessions if s.route == "bridge"]


def test_the_bridge_starts_mixmonitor_in_one_command_before_the_dial(
    make_queue: Callable[..., CallQueue], tmp_path: Path
) -> None:
    queue = make_queue(seat_heartbeat_ttl_s=600.0)
    recordings = tmp_path / "recordings"
    operators = {"1001": Operator("1001", answer_after_s=0.2, talk_s=0.3)}
    with asterisk_rig(queue, None, operators, hold_s=30.0, recordings_dir=str(recordings)) as rig:
        caller = hold_then_free(rig, ["1001"])
        assert caller.done.wait(30), caller.heard
    call = "ast-" + caller.uniqueid
    assert "talks with seat 1001" in caller.heard
    # Same file, same place, named by the call id; recorded only while bridged (b).
    mixmonitor = f'EXEC MixMonitor "{recordings}/{call}.wav,bi(HOTLINE_RECORDING)"'
    assert before_dial(rig) == [[mixmonitor]]
    assert caller.variables.get("HOTLINE_RECORDING")
    jobs = Queue(RQ_QUEUE, connection=queue.redis).jobs
    noted = [j for j in jobs if j.func_name == "calls.recordings.recording_started"]
    assert [j.args for j in noted] == [(call, "asterisk", call, f"{call}.wav", None)]


def test_a_second_bridge_of_a_recorded_call_dials_at_once(
    make_queue: Callable[..., CallQueue], tmp_path: Path
) -> None:
    """The first seat's phone is unreachable: the caller holds again and is bridged
    later to another seat, whose session learns from its arguments that MixMonitor
    already runs."""
    queue = make_queue(seat_heartbeat_ttl_s=600.0)
    recordings = tmp_path / "recordings"
    operators = {"1002": Operator("1002", answer_after_s=0.2, talk_s=0.3)}  # 1001: none
    with asterisk_rig(queue, None, operators, hold_s=30.0, recordings_dir=str(recordings)) as rig:
        caller = hold_then_free(rig, ["1001"])
        wait_until(
            lambda: "rings seat 1001" in caller.heard and not caller.in_agi,
            what="seat 1001 missed and the caller holding again",
        )
        assert caller.variables.get("HOTLINE_NEXT") == "hold"
        rig.queue.seat_login("1002", ["mandarin"])
        assert caller.done.wait(30), caller.heard
    call = "ast-" + caller.uniqueid
    assert "talks with seat 1002" in caller.heard
    mixmonitor = f'EXEC MixMonitor "{recordings}/{call}.wav,bi(HOTLINE_RECORDING)"'
    assert before_dial(rig) == [[mixmonitor], []]
    jobs = Queue(RQ_QUEUE, connection=queue.redis).jobs
    assert [j.func_name for j in jobs].count("calls.recordings.recording_started") == 1


def agi_sessions(log: str, channel: str) -> list[dict[str, list[str]]]:
    """Each AGI session on ``channel`` from Asterisk's log with 'agi set debug on': the
    environment it sent ("env", "name: value") and the commands it received ("rx")."""
    sessions: list[dict[str, list[str]]] = []
    for line in log.splitlines():
        _, mine, said = line.partition(f"<{channel}>AGI ")
        if not mine:
            continue
        if said.startswith("Tx >> agi_request: "):  # the first line that names the channel
            sessions.append({"env": [], "rx": []})
        if sessions and said.startswith("Tx >> agi_"):
            sessions[-1]["env"].append(said.removeprefix("Tx >> ").strip())
        elif sessions and said.startswith("Rx << "):
            sessions[-1]["rx"].append(said.removeprefix("Rx << ").strip())
    return sessions


@pytest.mark.slow
def test_on_asterisk_the_bridge_sends_one_command_before_the_dial_and_none_when_resumed(
    make_rig: Callable[..., RealRig],  # noqa: F811
    case_db: str,  # noqa: F811
) -> None:
    """The operator holds and resumes the call: Asterisk moves the caller to the bridge
    twice; MixMonitor starts once, before the first Dial, in its only command."""
    rig = make_rig()
    rig.asterisk.cli("agi set debug on")
    desk, telephony, ami = desk_for(rig, case_db)
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=15_000)
    rig.queue.seat_state("1001", "paused", "not yet")  # the caller holds first
    citizen = rig.citizens("recorded-held", ["13800138334"])  # waits for the centre

    def holding() -> bool:
        channels = ami.action_list({"Action": "CoreShowChannels"})
        mine = [c for c in channels if c.get("CallerIDNum") == "13800138334"]
        return bool(mine) and mine[0].get("Application") == "WaitExten"

    wait_until(holding, timeout_s=60, what="the caller holding in the dialplan")
    rig.queue.seat_state("1001", "available")
    call_id = connected_call(rig, "13800138334", "1001")
    assert desk.hold_call(WANG, call_id, True, telephony) == "held"
    wait_until(
        lambda: not [c for c in rig.asterisk.channels() if c.startswith("PJSIP/1001")],
        timeout_s=30,
        what="the operator's leg gone",
    )
    assert desk.hold_call(WANG, call_id, False, telephony) == "resumed"
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    ami.close()

    channel = rig.redis.get(rig.queue.keys.channel(call_id)).decode()
    bridges = [
        s
        for s in agi_sessions(rig.asterisk.log(), channel)
        if any(e.startswith("agi_request: ") and e.endswith("/bridge") for e in s["env"])
    ]
    assert len(bridges) == 2, bridges
    first, resumed = (until_the_dial(s["rx"]) for s in bridges)
    recordings = rig.workdir / "var" / "recordings"
    assert first == [
        f'EXEC MixMonitor "{recordings.resolve()}/{call_id}.wav,bi(HOTLINE_RECORDING)"'
    ]
    assert resumed == []
    assert "agi_arg_4:" in bridges[0]["env"]  # nothing recorded yet
    assert [e for e in bridges[1]["env"] if e.startswith("agi_arg_4:")] != ["agi_arg_4:"]
    assert (recordings / f"{call_id}.wav").exists()
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
