"""Consult transfers and three-way calls (咨询转接 / 三方通话) on a real Asterisk 22 (the
project's dialplan, confbridge.conf, AMI and PJSIP), through the desk as the console
calls it: SIPp plays the citizen on the trunk, the operator's phone, and a unit's duty
phone behind the trunk (127.0.0.3). ConfbridgeList over AMI says who is in the
caller's room at each step.

Skipped, with one line saying how to enable it, when no Asterisk is available."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from socket import SOCK_DGRAM

import pytest

from agi_scripts.ami import AmiConnection, AmiRefused
from calls.desk import Desk, DeskError
from calls.transfers import Telephony, room_for
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
SEAT_LEG = "PJSIP/1001-"  # wang's phone's channels


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
    """Answered legs on the trunk other than the citizens' own (this call's, and any
    other caller's in the queue): the duty phone's."""
    callers = set()
    for known in {call_id, *rig.calls()}:
        raw = rig.redis.get(rig.queue.keys.channel(known))
        if raw:
            callers.add(raw.decode())
    return sum(
        c.get("Channel", "").startswith("PJSIP/trunk-")
        and c.get("Channel") not in callers
        and c.get("ChannelStateDesc") == "Up"
        for c in ami.action_list({"Action": "CoreShowChannels"})
    )


def application_of(ami, caller: str) -> str:  # type: ignore[no-untyped-def]
    channels = ami.action_list({"Action": "CoreShowChannels"})
    mine = [c for c in channels if c.get("CallerIDNum") == caller]
    return mine[0].get("Application", "") if mine else ""


def finishes(phone: sipp.SippProcess, timeout_s: float) -> None:
    """The SIPp scenario ran to its end (its last message exchanged)."""
    assert phone.wait(timeout=timeout_s) == 0, phone.output()[-3000:]


# The unit's duty phone at 127.0.0.3:port, as each test needs it.


def _duty_phone(rig: RealRig, port: int, name: str, scenario: str, calls: int, *extra: str):  # type: ignore[no-untyped-def]
    media = str(sipp.media_port())
    args = ["-i", "127.0.0.3", "-p", str(port), "-mp", media, "-m", str(calls), "-aa", *extra]
    return sipp._sipp(rig.workdir, name, scenario, args)


def answering_duty_phone(rig: RealRig, port: int) -> sipp.SippProcess:
    return sipp.called(rig.workdir, "duty-phone", port, answer=True, ring_ms=1000, digit=None)


def duty_phone_answering_twice(rig: RealRig, port: int) -> sipp.SippProcess:
    scenario = sipp.called_scenario(answer=True, ring_ms=1000, digit=None)
    return _duty_phone(rig, port, "duty-phone-twice", scenario, 2)


def busy_duty_phone(rig: RealRig, port: int) -> sipp.SippProcess:
    return sipp.called(rig.workdir, "duty-phone-busy", port, answer=False)


def duty_phone_hanging_up_after_10_s(rig: RealRig, port: int) -> sipp.SippProcess:
    scenario = sipp.phone_scenario(ring_ms=1000, talk_ms=10_000)
    return _duty_phone(
        rig, port, "duty-phone-hangs-up", scenario, 1, "-default_behaviors", "all,-bye"
    )


@dataclass
class ConsultCall:
    """A citizen talking to wang at seat 1001, the desk that consults the water unit,
    and the unit's duty phone behind the trunk."""

    rig: RealRig
    desk: Desk
    telephony: Telephony
    ami: AmiConnection
    call_id: str
    citizen: sipp.SippProcess
    unit_phone: sipp.SippProcess

    def step(self, step: str) -> str:
        """The console's consult button: "start" consults the water unit."""
        unit = {"unit": UNIT} if step == "start" else {}
        return self.desk.consults.step(WANG, self.call_id, step, self.telephony, **unit)

    def consult_until_the_unit_answers(self) -> None:
        self.step("start")
        self.wait_for_unit_legs(1, "the unit answering")

    def record(self) -> dict[str, str]:
        return self.rig.queue.call(self.call_id)

    def members(self) -> list[str]:
        return room_members(self.ami, self.call_id)

    def wait_for_room(self, size: int, *, operator: bool | None = None, what: str) -> None:
        """The caller's room holds ``size`` channels, wang's among them (operator True)
        or not (False)."""

        def ready() -> bool:
            members = self.members()
            with_operator = any(m.startswith(SEAT_LEG) for m in members)
            return len(members) == size and operator in (None, with_operator)

        eventually(ready, timeout_s=30, what=what)

    def wait_for_unit_legs(self, up: int, what: str) -> None:
        eventually(lambda: unit_legs_up(self.rig, self.ami, self.call_id) == up, 30, what)

    def wait_for_operator_leg_to_end(self) -> None:
        eventually(
            lambda: not [c for c in self.rig.asterisk.channels() if c.startswith("PJSIP/1001")],
            timeout_s=30,
            what="the operator's leg ended",
        )

    def wait_for_state(self, *states: str, timeout_s: float = 30, what: str) -> None:
        eventually(lambda: self.record().get("state") in states, timeout_s, what)

    def event_types(self) -> list[str]:
        return [e["type"] for e in self.rig.events() if e.get("call") == self.call_id]

    def consult_steps(self) -> list[str | None]:
        return [e.get("step") for e in self.rig.events("CONSULT") if e.get("call") == self.call_id]

    def assert_agi_ran_clean(self) -> None:
        log = self.rig.service_log("agi")
        assert "Traceback" not in log, log[-3000:]


@pytest.fixture
def consult_call(
    make_rig: Callable[..., RealRig],  # noqa: F811
    case_db: str,  # noqa: F811
) -> Iterator[Callable[..., ConsultCall]]:
    """Start a call: the duty phone set, wang's phone (ringing 1 s, hanging up after
    ``talk_ms``), the unit's phone, then the citizen (hanging up ``hangup_after_ms``
    after the answer), connected to seat 1001."""
    amis: list[AmiConnection] = []

    def start(
        name: str,
        number: str,
        *,
        hangup_after_ms: int,
        talk_ms: int = 120_000,
        unit_phone: Callable[[RealRig, int], sipp.SippProcess] = answering_duty_phone,
    ) -> ConsultCall:
        with_duty_phone(case_db)
        rig = make_rig()
        port = free_port(SOCK_DGRAM, "127.0.0.3")
        dial_pattern = f"PJSIP/trunk/sip:{{number}}@127.0.0.3:{port}"
        desk, telephony, ami = desk_for(rig, case_db, dial_pattern)
        amis.append(ami)
        operator(rig, desk, WANG, "1001", "mandarin", ring_ms=1000, talk_ms=talk_ms)
        phone = unit_phone(rig, port)
        rig.sipps.append(phone)
        citizen = rig.citizens(name, [number], hangup_after_ms=hangup_after_ms)
        call_id = connected_call(rig, number, "1001")
        return ConsultCall(rig, desk, telephony, ami, call_id, citizen, phone)

    yield start
    for ami in amis:
        ami.close()


def test_a_consult_becomes_a_three_way_call_and_the_operator_leaves(
    consult_call: Callable[..., ConsultCall],
) -> None:
    # The citizen hangs up 40 s after the answer, talking to the unit by then.
    call = consult_call("consult", "13800138444", hangup_after_ms=40_000)

    assert call.step("start") == "consulting"
    # The caller waits alone in their room (music); the operator's phone rings the unit.
    eventually(
        lambda: application_of(call.ami, "13800138444") == "ConfBridge",
        timeout_s=30,
        what="the caller waiting in their room",
    )
    record = call.record()
    assert record["state"] == "on_call" and record["consult"] == "consulting"

    def operator_with_the_unit() -> bool:
        channels = call.ami.action_list({"Action": "CoreShowChannels"})
        seat = [c for c in channels if c.get("Channel", "").startswith(SEAT_LEG)]
        trunk = [c for c in channels if c.get("Channel", "").startswith("PJSIP/trunk-")]
        return any(
            s.get("BridgeId") and s.get("BridgeId") == t.get("BridgeId")
            for s in seat
            for t in trunk
        )

    eventually(operator_with_the_unit, timeout_s=30, what="the operator talking to the unit")
    assert len(call.members()) == 1  # the caller, alone: nobody hears the consult

    assert call.step("threeway") == "threeway"
    call.wait_for_room(3, what="caller, operator and unit in one room")
    assert any(m.startswith(SEAT_LEG) for m in call.members())

    assert call.step("leave") == "transferred"
    call.wait_for_room(
        2, operator=False, what="the operator gone, the caller and the unit still talking"
    )
    record = call.record()
    assert record["state"] == "ended" and record["outcome"] == "transferred"
    assert record["transfer_kind"] == "unit" and record["transferred_to"] == UNIT
    eventually(
        lambda: call.rig.queue.seat("1001")["state"] == "available", timeout_s=30, what="seat free"
    )
    # The citizen hangs up: the unit's phone is let go with them.
    finishes(call.citizen, 120)
    finishes(call.unit_phone, 60)
    kinds = call.event_types()
    assert kinds.count("CONSULT") == 2 and "ABANDON" not in kinds
    assert kinds.count("TRANSFER") == 1 and kinds.count("COMPLETE") == 1
    assert call.rig.asterisk.module_errors() == []
    call.assert_agi_ran_clean()


def test_a_consult_cancelled_then_a_transfer_completed(
    consult_call: Callable[..., ConsultCall],
) -> None:
    """取消 brings the operator back to the caller (the unit's leg ends); a second consult
    then completes: the caller talks to the unit and the operator's leg ends at once."""
    call = consult_call(
        "consult-cancel",
        "13800138555",
        hangup_after_ms=45_000,
        unit_phone=duty_phone_answering_twice,
    )

    call.consult_until_the_unit_answers()
    assert call.step("cancel") == "cancelled"
    call.wait_for_room(2, operator=True, what="the operator back with the caller")
    call.wait_for_unit_legs(0, "unit let go")
    record = call.record()
    assert record["state"] == "on_call" and not record["consult"] and not record["held_at"]

    call.step("start")
    call.wait_for_room(1, what="the caller alone again while the operator consults")
    call.wait_for_unit_legs(1, "the unit answering the second consult")
    assert call.step("complete") == "transferred"
    call.wait_for_room(2, operator=False, what="the caller with the unit, the operator gone")
    call.wait_for_operator_leg_to_end()
    finishes(call.citizen, 120)
    finishes(call.unit_phone, 60)
    record = call.record()
    assert record["outcome"] == "transferred" and record["transfer_kind"] == "unit"
    call.assert_agi_ran_clean()


def test_the_operator_hanging_up_in_a_three_way_call_leaves_the_caller_with_the_unit(
    consult_call: Callable[..., ConsultCall],
) -> None:
    """Not 退出三方通话 on the console: the operator's phone simply hangs up (SIPp's BYE
    20 s after the answer). The seat is not stranded on the call; the caller and the unit
    go on talking."""
    call = consult_call("three-way-hang-up", "13800138666", hangup_after_ms=45_000, talk_ms=20_000)

    call.consult_until_the_unit_answers()
    assert call.step("threeway") == "threeway"
    call.wait_for_room(3, what="caller, operator and unit in one room")
    call.wait_for_state(
        "ended", timeout_s=60, what="the call handed over when the operator's phone hung up"
    )
    record = call.record()
    assert record["outcome"] == "transferred" and record["transfer_kind"] == "unit"
    assert record["transferred_to"] == UNIT
    members = call.members()
    assert len(members) == 2 and not any(m.startswith(SEAT_LEG) for m in members)
    eventually(
        lambda: call.rig.queue.seat("1001")["state"] in ("wrap_up", "available"),
        timeout_s=30,
        what="the seat out of the call",
    )
    finishes(call.citizen, 120)
    finishes(call.unit_phone, 60)
    kinds = call.event_types()
    assert kinds.count("TRANSFER") == 1 and "ABANDON" not in kinds
    call.assert_agi_ran_clean()


def test_the_caller_hanging_up_during_a_consult_ends_the_units_leg_and_frees_the_seat(
    consult_call: Callable[..., ConsultCall],
) -> None:
    call = consult_call("consult-hang-up", "13800138777", hangup_after_ms=15_000)

    call.consult_until_the_unit_answers()
    finishes(call.citizen, 120)
    call.wait_for_unit_legs(0, "unit let go")
    call.wait_for_operator_leg_to_end()
    # The caller's hang-up AGI comes last in their h extension, after the legs end.
    call.wait_for_state("ended", what="the call ended")
    assert call.rig.queue.seat("1001")["state"] in ("wrap_up", "available")
    finishes(call.unit_phone, 60)
    call.assert_agi_ran_clean()


def test_the_operator_hanging_up_while_consulting_puts_the_caller_back_at_the_front(
    consult_call: Callable[..., ConsultCall],
) -> None:
    """The operator's phone hangs up (SIPp's BYE 8 s after the answer) while they talk to
    the unit: the caller, holding alone in their room, leaves it for the queue, ahead of
    a caller who came later; the unit's leg ends; the seat goes to wrap-up."""
    call = consult_call("consult-left", "13800138888", hangup_after_ms=60_000, talk_ms=8_000)
    rig = call.rig
    call.step("start")
    rig.citizens("later", ["13800138999"], hangup_after_ms=60_000)
    later = eventually(
        lambda: next((c for c, r in rig.calls().items() if c != call.call_id), None),
        timeout_s=30,
        what="a second caller waiting",
    )
    call.wait_for_unit_legs(1, "the unit answering")

    call.wait_for_state(
        "waiting", "offered", what="the caller back in line when the operator's phone hung up"
    )
    record = call.record()
    assert record["transferred_from"] == "1001" and not record["consult"]
    assert rig.queue.position(call.call_id).position < rig.queue.position(str(later)).position
    eventually(lambda: call.members() == [], timeout_s=30, what="the room let go")
    eventually(
        lambda: application_of(call.ami, "13800138888") not in ("", "ConfBridge"),
        timeout_s=30,
        what="the caller holding for a person",
    )
    call.wait_for_unit_legs(0, "unit let go")
    # The seat left that conversation (it may be offered its next caller by now).
    left = [e for e in rig.events("TRANSFER") if e.get("call") == call.call_id]
    assert [e.get("seat") for e in left] == ["1001"]
    assert "ABANDON" not in call.event_types()
    call.assert_agi_ran_clean()


def test_a_busy_unit_brings_the_operator_back_and_ends_the_consult_in_the_queue(
    consult_call: Callable[..., ConsultCall],
) -> None:
    call = consult_call(
        "consult-busy", "13800138321", hangup_after_ms=30_000, unit_phone=busy_duty_phone
    )

    assert call.step("start") == "consulting"
    call.wait_for_room(2, operator=True, what="the operator back with the caller")
    eventually(lambda: not call.record().get("consult"), 30, "the queue's consult over")
    record = call.record()
    assert record["state"] == "on_call" and record["seat"] == "1001" and not record["held_at"]
    assert call.consult_steps() == ["start", "cancel"]
    # The console may consult again (the unit is still busy: back again).
    assert call.step("start") == "consulting"
    finishes(call.citizen, 120)
    call.assert_agi_ran_clean()


def test_the_unit_hanging_up_in_a_three_way_call_leaves_the_operator_with_the_caller(
    consult_call: Callable[..., ConsultCall],
) -> None:
    """The duty phone hangs up on its own (SIPp's BYE 10 s after the answer) during the
    three-way call: the operator and the caller go on talking, an ordinary call again in
    the queue, which the caller's hang-up later ends as any other."""
    call = consult_call(
        "three-way-unit-gone",
        "13800138888",
        hangup_after_ms=40_000,
        unit_phone=duty_phone_hanging_up_after_10_s,
    )

    call.consult_until_the_unit_answers()
    assert call.step("threeway") == "threeway"
    call.wait_for_room(3, what="caller, operator and unit in one room")
    finishes(call.unit_phone, 60)
    eventually(lambda: not call.record().get("consult"), 30, "the queue's three-way call over")
    members = call.members()
    assert len(members) == 2 and any(m.startswith(SEAT_LEG) for m in members)
    record = call.record()
    assert record["state"] == "on_call" and record["seat"] == "1001"
    assert not record["consult_unit"] and not record["held_at"]
    assert call.consult_steps() == ["start", "threeway", "unit-left"]
    with pytest.raises(DeskError) as refused:  # nobody left to hand the caller to
        call.step("leave")
    assert refused.value.code == "no-consult"

    finishes(call.citizen, 120)
    call.wait_for_state("ended", what="the call ended by the caller")
    assert call.record()["outcome"] == "completed"
    kinds = call.event_types()
    assert "TRANSFER" not in kinds and "ABANDON" not in kinds
    call.assert_agi_ran_clean()
