"""Consult transfers and three-way calls (咨询转接 / 三方通话) on a real Asterisk 22 (the
project's dialplan, confbridge.conf, AMI and PJSIP), through the desk as the console
calls it: SIPp plays the citizen on the trunk, the operator's phone, and a unit's duty
phone behind the trunk (127.0.0.3). ConfbridgeList over AMI says who is in the
caller's room at each step.

Skipped, with one line saying how to enable it, when no Asterisk is available."""

from __future__ import annotations

from collections.abc import Callable
from socket import SOCK_DGRAM

import pytest

from agi_scripts.ami import AmiRefused
from calls.desk import DeskError
from calls.transfers import room_for
from cases.db import engine_for, session_factory
from cases.duty_numbers import set_duty_phone
from tests import sipp
from tests.conftest import wait_until as eventually
from tests.real_asterisk import free_port
from tests.real_rig import RealRig
from tests.test_real_asterisk import case_db, make_rig, prefix, sounds  # noqa: F401
from tests.test_transfers_asterisk import WANG, connected_call, desk_for, operator

pytestmark = pytest.mark.slow

UNIT = "water-affairs"


def with_duty_phone(case_db: str) -> None:  # noqa: F811
    engine = engine_for(case_db)
    with session_factory(engine)() as db:
        set_duty_phone(db, UNIT, "0898-66661234")
        db.commit()
    engine.dispose()


def room_members(ami, call_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The channels in the caller's ConfBridge room (none: no such room). Asterisk
    refuses the list when the room is not there, as for the moment between the caller
    leaving it and joining it again when a second consult starts."""
    try:
        listed = ami.action_list({"Action": "ConfbridgeList", "Conference": room_for(call_id)})
    except AmiRefused as exc:
        if "No active conferences" in str(exc) or "No Conference by that name" in str(exc):
            return []
        raise
    return sorted(m.get("Channel", "") for m in listed if m.get("Event") == "ConfbridgeList")


def unit_legs_up(rig: RealRig, ami, call_id: str) -> int:  # type: ignore[no-untyped-def]
    """Answered legs on the trunk other than the citizen's own: the duty phone's."""
    raw = rig.redis.get(rig.queue.keys.channel(call_id))
    caller = raw.decode() if raw else ""
    return sum(
        c.get("Channel", "").startswith("PJSIP/trunk-")
        and c.get("Channel") != caller
        and c.get("ChannelStateDesc") == "Up"
        for c in ami.action_list({"Action": "CoreShowChannels"})
    )


def application_of(ami, caller: str) -> str:  # type: ignore[no-untyped-def]
    channels = ami.action_list({"Action": "CoreShowChannels"})
    mine = [c for c in channels if c.get("CallerIDNum") == caller]
    return mine[0].get("Application", "") if mine else ""


def test_a_consult_becomes_a_three_way_call_and_the_operator_leaves(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    with_duty_phone(case_db)
    rig = make_rig()
    port = free_port(SOCK_DGRAM, "127.0.0.3")
    desk, telephony, ami = desk_for(rig, case_db, f"PJSIP/trunk/sip:{{number}}@127.0.0.3:{port}")
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=120_000)
    unit_phone = sipp.called(rig.workdir, "duty-phone", port, answer=True, ring_ms=1000, digit=None)
    rig.sipps.append(unit_phone)
    # The citizen hangs up 40 s after the answer, talking to the unit by then.
    citizen = rig.citizens("consult", ["13800138444"], hangup_after_ms=40_000)
    call_id = connected_call(rig, "13800138444", "1001")

    assert desk.consults.step(WANG, call_id, "start", telephony, unit=UNIT) == "consulting"
    # The caller waits alone in their room (music); the operator's phone rings the unit.
    eventually(
        lambda: application_of(ami, "13800138444") == "ConfBridge",
        timeout_s=30,
        what="the caller waiting in their room",
    )
    record = rig.queue.call(call_id)
    assert record["state"] == "on_call" and record["consult"] == "consulting"

    def operator_with_the_unit() -> bool:
        channels = ami.action_list({"Action": "CoreShowChannels"})
        seat = [c for c in channels if c.get("Channel", "").startswith("PJSIP/1001-")]
        trunk = [c for c in channels if c.get("Channel", "").startswith("PJSIP/trunk-")]
        return any(
            s.get("BridgeId") and s.get("BridgeId") == t.get("BridgeId")
            for s in seat
            for t in trunk
        )

    eventually(operator_with_the_unit, timeout_s=30, what="the operator talking to the unit")
    assert len(room_members(ami, call_id)) == 1  # the caller, alone: nobody hears the consult

    assert desk.consults.step(WANG, call_id, "threeway", telephony) == "threeway"
    eventually(
        lambda: len(room_members(ami, call_id)) == 3,
        timeout_s=30,
        what="caller, operator and unit in one room",
    )
    assert any(m.startswith("PJSIP/1001-") for m in room_members(ami, call_id))

    assert desk.consults.step(WANG, call_id, "leave", telephony) == "transferred"
    eventually(
        lambda: (
            len(room_members(ami, call_id)) == 2
            and not any(m.startswith("PJSIP/1001-") for m in room_members(ami, call_id))
        ),
        timeout_s=30,
        what="the operator gone, the caller and the unit still talking",
    )
    record = rig.queue.call(call_id)
    assert record["state"] == "ended" and record["outcome"] == "transferred"
    assert record["transfer_kind"] == "unit" and record["transferred_to"] == UNIT
    eventually(
        lambda: rig.queue.seat("1001")["state"] == "available", timeout_s=30, what="seat free"
    )
    # The citizen hangs up: the unit's phone is let go with them.
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    assert unit_phone.wait(timeout=60) == 0, unit_phone.output()[-3000:]
    kinds = [e["type"] for e in rig.events() if e.get("call") == call_id]
    assert kinds.count("CONSULT") == 2 and "ABANDON" not in kinds
    assert kinds.count("TRANSFER") == 1 and kinds.count("COMPLETE") == 1
    assert rig.asterisk.module_errors() == []
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()


def test_a_consult_cancelled_then_a_transfer_completed(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    """取消 brings the operator back to the caller (the unit's leg ends); a second consult
    then completes: the caller talks to the unit and the operator's leg ends at once."""
    with_duty_phone(case_db)
    rig = make_rig()
    port = free_port(SOCK_DGRAM, "127.0.0.3")
    desk, telephony, ami = desk_for(rig, case_db, f"PJSIP/trunk/sip:{{number}}@127.0.0.3:{port}")
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=120_000)
    unit_phone = sipp._sipp(
        rig.workdir,
        "duty-phone-twice",
        sipp.called_scenario(answer=True, ring_ms=1000, digit=None),
        ["-i", "127.0.0.3", "-p", str(port), "-mp", str(sipp.media_port()), "-m", "2", "-aa"],
    )
    rig.sipps.append(unit_phone)
    citizen = rig.citizens("consult-cancel", ["13800138555"], hangup_after_ms=45_000)
    call_id = connected_call(rig, "13800138555", "1001")

    desk.consults.step(WANG, call_id, "start", telephony, unit=UNIT)
    eventually(
        lambda: unit_legs_up(rig, ami, call_id) == 1, timeout_s=30, what="the unit answering"
    )
    assert desk.consults.step(WANG, call_id, "cancel", telephony) == "cancelled"
    eventually(
        lambda: (
            len(room_members(ami, call_id)) == 2
            and any(m.startswith("PJSIP/1001-") for m in room_members(ami, call_id))
        ),
        timeout_s=30,
        what="the operator back with the caller",
    )
    eventually(lambda: unit_legs_up(rig, ami, call_id) == 0, timeout_s=30, what="unit let go")
    record = rig.queue.call(call_id)
    assert record["state"] == "on_call" and not record["consult"] and not record["held_at"]

    desk.consults.step(WANG, call_id, "start", telephony, unit=UNIT)
    eventually(
        lambda: room_members(ami, call_id) and len(room_members(ami, call_id)) == 1,
        timeout_s=30,
        what="the caller alone again while the operator consults",
    )
    eventually(
        lambda: unit_legs_up(rig, ami, call_id) == 1,
        timeout_s=30,
        what="the unit answering the second consult",
    )
    assert desk.consults.step(WANG, call_id, "complete", telephony) == "transferred"
    eventually(
        lambda: (
            len(room_members(ami, call_id)) == 2
            and not any(m.startswith("PJSIP/1001-") for m in room_members(ami, call_id))
        ),
        timeout_s=30,
        what="the caller with the unit, the operator gone",
    )
    eventually(
        lambda: not [c for c in rig.asterisk.channels() if c.startswith("PJSIP/1001")],
        timeout_s=30,
        what="the operator's leg ended",
    )
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    assert unit_phone.wait(timeout=60) == 0, unit_phone.output()[-3000:]
    record = rig.queue.call(call_id)
    assert record["outcome"] == "transferred" and record["transfer_kind"] == "unit"
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()


def test_the_operator_hanging_up_in_a_three_way_call_leaves_the_caller_with_the_unit(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    """Not 退出三方通话 on the console: the operator's phone simply hangs up (SIPp's BYE
    20 s after the answer). The seat is not stranded on the call; the caller and the unit
    go on talking."""
    with_duty_phone(case_db)
    rig = make_rig()
    port = free_port(SOCK_DGRAM, "127.0.0.3")
    desk, telephony, ami = desk_for(rig, case_db, f"PJSIP/trunk/sip:{{number}}@127.0.0.3:{port}")
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=20_000)
    unit_phone = sipp.called(rig.workdir, "duty-phone", port, answer=True, ring_ms=1000, digit=None)
    rig.sipps.append(unit_phone)
    citizen = rig.citizens("three-way-hang-up", ["13800138666"], hangup_after_ms=45_000)
    call_id = connected_call(rig, "13800138666", "1001")

    desk.consults.step(WANG, call_id, "start", telephony, unit=UNIT)
    eventually(
        lambda: unit_legs_up(rig, ami, call_id) == 1, timeout_s=30, what="the unit answering"
    )
    assert desk.consults.step(WANG, call_id, "threeway", telephony) == "threeway"
    eventually(
        lambda: len(room_members(ami, call_id)) == 3,
        timeout_s=30,
        what="caller, operator and unit in one room",
    )
    eventually(
        lambda: rig.queue.call(call_id).get("state") == "ended",
        timeout_s=60,
        what="the call handed over when the operator's phone hung up",
    )
    record = rig.queue.call(call_id)
    assert record["outcome"] == "transferred" and record["transfer_kind"] == "unit"
    assert record["transferred_to"] == UNIT
    members = room_members(ami, call_id)
    assert len(members) == 2 and not any(m.startswith("PJSIP/1001-") for m in members)
    eventually(
        lambda: rig.queue.seat("1001")["state"] in ("wrap_up", "available"),
        timeout_s=30,
        what="the seat out of the call",
    )
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    assert unit_phone.wait(timeout=60) == 0, unit_phone.output()[-3000:]
    kinds = [e["type"] for e in rig.events() if e.get("call") == call_id]
    assert kinds.count("TRANSFER") == 1 and "ABANDON" not in kinds
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()


def test_the_caller_hanging_up_during_a_consult_ends_the_units_leg_and_frees_the_seat(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    with_duty_phone(case_db)
    rig = make_rig()
    port = free_port(SOCK_DGRAM, "127.0.0.3")
    desk, telephony, ami = desk_for(rig, case_db, f"PJSIP/trunk/sip:{{number}}@127.0.0.3:{port}")
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=120_000)
    unit_phone = sipp.called(rig.workdir, "duty-phone", port, answer=True, ring_ms=1000, digit=None)
    rig.sipps.append(unit_phone)
    citizen = rig.citizens("consult-hang-up", ["13800138777"], hangup_after_ms=15_000)
    call_id = connected_call(rig, "13800138777", "1001")

    desk.consults.step(WANG, call_id, "start", telephony, unit=UNIT)
    eventually(
        lambda: unit_legs_up(rig, ami, call_id) == 1, timeout_s=30, what="the unit answering"
    )
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    eventually(lambda: unit_legs_up(rig, ami, call_id) == 0, timeout_s=30, what="unit let go")
    eventually(
        lambda: not [c for c in rig.asterisk.channels() if c.startswith("PJSIP/1001")],
        timeout_s=30,
        what="the operator's leg ended",
    )
    # The caller's hang-up AGI comes last in their h extension, after the legs end.
    eventually(
        lambda: rig.queue.call(call_id).get("state") == "ended",
        timeout_s=30,
        what="the call ended",
    )
    assert rig.queue.seat("1001")["state"] in ("wrap_up", "available")
    assert unit_phone.wait(timeout=60) == 0, unit_phone.output()[-3000:]
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()


def test_the_operator_hanging_up_while_consulting_puts_the_caller_back_at_the_front(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    """The operator's phone hangs up (SIPp's BYE 8 s after the answer) while they talk to
    the unit: the caller, holding alone in their room, leaves it for the queue, ahead of
    a caller who came later; the unit's leg ends; the seat goes to wrap-up."""
    with_duty_phone(case_db)
    rig = make_rig()
    port = free_port(SOCK_DGRAM, "127.0.0.3")
    desk, telephony, ami = desk_for(rig, case_db, f"PJSIP/trunk/sip:{{number}}@127.0.0.3:{port}")
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=8_000)
    unit_phone = sipp.called(rig.workdir, "duty-phone", port, answer=True, ring_ms=1000, digit=None)
    rig.sipps.append(unit_phone)
    rig.citizens("consult-left", ["13800138888"], hangup_after_ms=60_000)
    call_id = connected_call(rig, "13800138888", "1001")
    desk.consults.step(WANG, call_id, "start", telephony, unit=UNIT)
    rig.citizens("later", ["13800138999"], hangup_after_ms=60_000)
    later = eventually(
        lambda: next((c for c, r in rig.calls().items() if c != call_id), None),
        timeout_s=30,
        what="a second caller waiting",
    )
    eventually(
        lambda: unit_legs_up(rig, ami, call_id) == 1, timeout_s=30, what="the unit answering"
    )

    eventually(
        lambda: rig.queue.call(call_id).get("state") in ("waiting", "offered"),
        timeout_s=30,
        what="the caller back in line when the operator's phone hung up",
    )
    record = rig.queue.call(call_id)
    assert record["transferred_from"] == "1001" and not record["consult"]
    assert rig.queue.position(call_id).position < rig.queue.position(str(later)).position
    eventually(lambda: room_members(ami, call_id) == [], timeout_s=30, what="the room let go")
    eventually(
        lambda: application_of(ami, "13800138888") not in ("", "ConfBridge"),
        timeout_s=30,
        what="the caller holding for a person",
    )
    eventually(lambda: unit_legs_up(rig, ami, call_id) == 0, timeout_s=30, what="unit let go")
    assert rig.queue.seat("1001")["state"] in ("wrap_up", "available")
    kinds = [e["type"] for e in rig.events() if e.get("call") == call_id]
    assert "ABANDON" not in kinds and "TRANSFER" in kinds
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()


def test_a_busy_unit_brings_the_operator_back_and_ends_the_consult_in_the_queue(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    with_duty_phone(case_db)
    rig = make_rig()
    port = free_port(SOCK_DGRAM, "127.0.0.3")
    desk, telephony, ami = desk_for(rig, case_db, f"PJSIP/trunk/sip:{{number}}@127.0.0.3:{port}")
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=120_000)
    unit_phone = sipp.called(rig.workdir, "duty-phone-busy", port, answer=False)
    rig.sipps.append(unit_phone)
    citizen = rig.citizens("consult-busy", ["13800138321"], hangup_after_ms=30_000)
    call_id = connected_call(rig, "13800138321", "1001")

    assert desk.consults.step(WANG, call_id, "start", telephony, unit=UNIT) == "consulting"
    eventually(
        lambda: (
            len(room_members(ami, call_id)) == 2
            and any(m.startswith("PJSIP/1001-") for m in room_members(ami, call_id))
        ),
        timeout_s=30,
        what="the operator back with the caller",
    )
    eventually(
        lambda: not rig.queue.call(call_id).get("consult"),
        timeout_s=30,
        what="the queue's consult over",
    )
    record = rig.queue.call(call_id)
    assert record["state"] == "on_call" and record["seat"] == "1001" and not record["held_at"]
    kinds = [e.get("step") for e in rig.events("CONSULT") if e.get("call") == call_id]
    assert kinds == ["start", "cancel"]
    # The console may consult again (the unit is still busy: back again).
    assert desk.consults.step(WANG, call_id, "start", telephony, unit=UNIT) == "consulting"
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()


def test_the_unit_hanging_up_in_a_three_way_call_leaves_the_operator_with_the_caller(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    """The duty phone hangs up on its own (SIPp's BYE 10 s after the answer) during the
    three-way call: the operator and the caller go on talking, an ordinary call again in
    the queue, which the caller's hang-up later ends as any other."""
    with_duty_phone(case_db)
    rig = make_rig()
    port = free_port(SOCK_DGRAM, "127.0.0.3")
    desk, telephony, ami = desk_for(rig, case_db, f"PJSIP/trunk/sip:{{number}}@127.0.0.3:{port}")
    operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=120_000)
    unit_phone = sipp._sipp(
        rig.workdir,
        "duty-phone-hangs-up",
        sipp.phone_scenario(ring_ms=1000, talk_ms=10_000),
        ["-i", "127.0.0.3", "-p", str(port), "-mp", str(sipp.media_port()), "-m", "1", "-aa"]
        + ["-default_behaviors", "all,-bye"],
    )
    rig.sipps.append(unit_phone)
    citizen = rig.citizens("three-way-unit-gone", ["13800138888"], hangup_after_ms=40_000)
    call_id = connected_call(rig, "13800138888", "1001")

    desk.consults.step(WANG, call_id, "start", telephony, unit=UNIT)
    eventually(
        lambda: unit_legs_up(rig, ami, call_id) == 1, timeout_s=30, what="the unit answering"
    )
    assert desk.consults.step(WANG, call_id, "threeway", telephony) == "threeway"
    eventually(
        lambda: len(room_members(ami, call_id)) == 3,
        timeout_s=30,
        what="caller, operator and unit in one room",
    )
    assert unit_phone.wait(timeout=60) == 0, unit_phone.output()[-3000:]
    eventually(
        lambda: not rig.queue.call(call_id).get("consult"),
        timeout_s=30,
        what="the queue's three-way call over",
    )
    members = room_members(ami, call_id)
    assert len(members) == 2 and any(m.startswith("PJSIP/1001-") for m in members)
    record = rig.queue.call(call_id)
    assert record["state"] == "on_call" and record["seat"] == "1001"
    assert not record["consult_unit"] and not record["held_at"]
    steps = [e.get("step") for e in rig.events("CONSULT") if e.get("call") == call_id]
    assert steps == ["start", "threeway", "unit-left"]
    with pytest.raises(DeskError) as refused:  # nobody left to hand the caller to
        desk.consults.step(WANG, call_id, "leave", telephony)
    assert refused.value.code == "no-consult"

    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    eventually(
        lambda: rig.queue.call(call_id).get("state") == "ended",
        timeout_s=30,
        what="the call ended by the caller",
    )
    assert rig.queue.call(call_id)["outcome"] == "completed"
    kinds = [e["type"] for e in rig.events() if e.get("call") == call_id]
    assert "TRANSFER" not in kinds and "ABANDON" not in kinds
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()
