"""Transfers on a real Asterisk 22 (the project's dialplan, AMI and PJSIP), through the
desk as the console calls it: SIPp plays the citizen on the trunk, the operators'
phones, and the 119 phone behind the trunk (127.0.0.3).

Skipped, with one line saying how to enable it, when no Asterisk is available."""

from __future__ import annotations

from collections.abc import Callable
from socket import SOCK_DGRAM

import pytest
from rq import Queue

from agi_scripts.ami import AmiConnection
from agi_scripts.transfers import AsteriskMover
from calls import RQ_QUEUE, CallerDirectory, CallHandler
from calls.desk import Actor, Desk, DeskError
from calls.transfers import Telephony
from cases.db import engine_for, session_factory
from tests import sipp
from tests.conftest import wait_until as eventually
from tests.real_asterisk import free_port
from tests.real_rig import RealRig
from tests.test_real_asterisk import case_db, make_rig, prefix, sounds  # noqa: F401

pytestmark = pytest.mark.slow

WANG = Actor("wang", "operator")
ZHAO = Actor("zhao", "operator")


def desk_for(rig: RealRig, case_db: str, dial_pattern: str = "PJSIP/{number}@trunk"):  # type: ignore[no-untyped-def]
    """The desk as the web builds it, and the AMI mover it hands transfers to."""
    sessions = session_factory(engine_for(case_db))
    handler = CallHandler(
        rig.queue, Queue(RQ_QUEUE, connection=rig.redis), CallerDirectory(sessions)
    )
    ami = AmiConnection("127.0.0.1", rig.asterisk.ami_port, "hotline", rig.asterisk.ami_secret)
    return Desk(handler, sessions), Telephony((AsteriskMover(handler, ami, dial_pattern),)), ami


def operator(rig: RealRig, desk: Desk, who: Actor, seat: str, skill: str, **phone: object):  # type: ignore[no-untyped-def]
    rig.seat(seat, login=False, **phone)  # type: ignore[arg-type]
    desk.login_seat(who, seat, [skill])
    rig.seats.append(seat)


def connected_call(rig: RealRig, caller: str, seat: str) -> str:
    def talking() -> str | None:
        for call_id, call in rig.calls().items():
            if call.get("state") == "on_call" and call.get("seat") == seat:
                return call_id
        return None

    return eventually(talking, timeout_s=90, what=f"{caller} talking at seat {seat}")


def test_a_blind_transfer_to_119_reaches_the_119_phone_with_the_caller_on_the_line(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    rig = make_rig()
    port = free_port(SOCK_DGRAM, "127.0.0.3")
    desk, telephony, ami = desk_for(rig, case_db, f"PJSIP/trunk/sip:{{number}}@127.0.0.3:{port}")
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=120_000)
    phone_119 = sipp.called(rig.workdir, "phone-119", port, answer=True, ring_ms=1000, digit=None)
    rig.sipps.append(phone_119)
    # The citizen stays on the line until they hang up themselves, 60 s after the answer.
    citizen = rig.citizens("fire", ["13800138119"], hangup_after_ms=60_000)
    call_id = connected_call(rig, "13800138119", "1001")

    with pytest.raises(DeskError) as refused:
        desk.transfer_emergency(WANG, call_id, "119", " ", telephony, {"119": "119"})
    assert refused.value.status == 422
    desk.transfer_emergency(WANG, call_id, "119", "海甸岛某小区起火", telephony, {"119": "119"})

    record = rig.queue.call(call_id)
    assert record["state"] == "ended" and record["outcome"] == "transferred"

    def bridged_to_119() -> bool:
        channels = ami.action_list({"Action": "CoreShowChannels"})
        by_name = {c.get("Channel", ""): c for c in channels}
        caller = [c for n, c in by_name.items() if c.get("CallerIDNum") == "13800138119"]
        up = [c for c in channels if c.get("ChannelStateDesc") == "Up" and c.get("BridgeId")]
        return bool(caller) and any(
            c is not caller[0] and c.get("BridgeId") == caller[0].get("BridgeId") for c in up
        )

    eventually(bridged_to_119, timeout_s=30, what="the caller bridged to the 119 phone")
    # The operator's leg ended with the redirect; the seat is free again (wrap-up 0).
    eventually(
        lambda: rig.queue.seat("1001")["state"] == "available", timeout_s=30, what="seat free"
    )
    # The 119 phone hears the caller's own hang-up: the two stayed connected to the end.
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    assert phone_119.wait(timeout=60) == 0, phone_119.output()[-3000:]
    kinds = [e["type"] for e in rig.events() if e.get("call") == call_id]
    assert "TRANSFER" in kinds and "ABANDON" not in kinds
    assert kinds.count("COMPLETE") == 1
    assert rig.asterisk.module_errors() == []
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()


def test_a_transfer_to_a_hainanese_seat_rings_it_and_the_pop_follows(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    rig = make_rig()
    desk, telephony, ami = desk_for(rig, case_db)
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=120_000)
    operator(rig, desk, ZHAO, "2001", "hainanese", ring_ms=1000, talk_ms=6000)
    citizen = rig.citizens("dialect", ["13800138222"])  # waits for the centre to hang up
    call_id = connected_call(rig, "13800138222", "1001")
    assert desk.call(WANG, call_id)
    with pytest.raises(DeskError) as other:
        desk.call(ZHAO, call_id)
    assert other.value.status == 404

    desk.transfer_call(WANG, call_id, "skill", "hainanese", telephony)
    connected_call(rig, "13800138222", "2001")
    # The pop is zhao's now; wang's screen lets it go.
    assert desk.call(ZHAO, call_id)["seat"] == "2001"
    with pytest.raises(DeskError):
        desk.call(WANG, call_id)
    # zhao's phone hangs up after 6 s: the call completes at 2001, the caller hears goodbye.
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    record = rig.queue.call(call_id)
    assert record["state"] == "ended" and record["outcome"] == "completed"
    connects = [e["seat"] for e in rig.events("CONNECT") if e["call"] == call_id]
    assert connects == ["1001", "2001"]
    assert [e["to"] for e in rig.events("TRANSFER") if e["call"] == call_id] == ["hainanese"]
    assert rig.asterisk.module_errors() == []
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()


def test_hold_plays_music_and_resume_rings_the_operator_back(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    rig = make_rig()
    desk, telephony, ami = desk_for(rig, case_db)
    # Each conversation on this phone lasts 15 s; the hold cuts the first one short.
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=15_000)
    citizen = rig.citizens("held", ["13800138333"])  # waits for the centre to hang up
    call_id = connected_call(rig, "13800138333", "1001")

    assert desk.hold_call(WANG, call_id, True, telephony) == "held"

    def caller_at() -> tuple[str, str]:
        channels = ami.action_list({"Action": "CoreShowChannels"})
        mine = [c for c in channels if c.get("CallerIDNum") == "13800138333"]
        return (mine[0].get("Context", ""), mine[0].get("Application", "")) if mine else ("", "")

    eventually(
        lambda: caller_at() == ("hotline-on-hold", "MusicOnHold"),
        timeout_s=30,
        what="the caller hearing music on hold",
    )
    # The operator's leg ended; the call is still theirs.
    eventually(
        lambda: not [c for c in rig.asterisk.channels() if c.startswith("PJSIP/1001")],
        timeout_s=30,
        what="the operator's leg gone",
    )
    record = rig.queue.call(call_id)
    assert record["state"] == "on_call" and record["seat"] == "1001" and record["held_at"]
    assert rig.queue.seat("1001")["state"] == "on_call"

    assert desk.hold_call(WANG, call_id, False, telephony) == "resumed"
    eventually(
        lambda: [c for c in rig.asterisk.channels() if c.startswith("PJSIP/1001")],
        timeout_s=30,
        what="the operator's phone rung again",
    )
    # The second conversation ends after 15 s: the caller hears goodbye and is hung up.
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    record = rig.queue.call(call_id)
    assert record["state"] == "ended" and record["outcome"] == "completed"
    kinds = [e["type"] for e in rig.events() if e.get("call") == call_id]
    assert kinds.count("HOLD") == 1 and kinds.count("UNHOLD") == 1
    assert kinds.count("CONNECT") == 1 and kinds.count("COMPLETE") == 1
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()


def test_a_busy_emergency_line_is_dialled_again(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    """119 busy twice: the caller is not dropped, the line is dialled a second and a
    third time (the busy phone takes two calls, then the third try finds nobody)."""
    rig = make_rig()
    port = free_port(SOCK_DGRAM, "127.0.0.3")
    desk, telephony, ami = desk_for(rig, case_db, f"PJSIP/trunk/sip:{{number}}@127.0.0.3:{port}")
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=120_000)
    busy_119 = sipp._sipp(
        rig.workdir,
        "busy-119",
        sipp.called_scenario(answer=False),
        ["-i", "127.0.0.3", "-p", str(port), "-mp", str(sipp.media_port()), "-m", "2"],
    )
    rig.sipps.append(busy_119)
    citizen = rig.citizens("busy-line", ["13800138120"])  # waits for the centre to hang up
    call_id = connected_call(rig, "13800138120", "1001")
    desk.transfer_emergency(WANG, call_id, "119", "起火", telephony, {"119": "119"})
    assert busy_119.wait(timeout=60) == 0, busy_119.output()[-3000:]  # two INVITEs, busy
    assert citizen.wait(timeout=180) == 0, citizen.output()[-3000:]
    ami.close()
