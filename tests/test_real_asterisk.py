"""The call path on a real Asterisk 22 running the project's own dialplan, modules, AMI
and PJSIP configuration, with SIPp as the carrier trunk and the operators' phones.

Skipped, with one line saying how to enable it, when no Asterisk is available
(see tests/real_asterisk.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from hotline.prompt_audio import render_all
from tests.real_asterisk import (
    HOW_TO_ENABLE,
    Asterisk,
    AsteriskUnavailable,
    asterisk_prefix,
    free_port,
)
from tests.real_rig import RealRig, eventually
from tests.sipp import SIPP

pytestmark = pytest.mark.slow

SEATS = [f"10{n:02d}" for n in range(1, 21)] + ["2001"]


@pytest.fixture(scope="session")
def prefix() -> Path:
    try:
        found = asterisk_prefix()
    except AsteriskUnavailable as exc:
        pytest.fail(str(exc))
    if found is None:
        pytest.skip(HOW_TO_ENABLE)
    if SIPP is None:
        pytest.skip("real-Asterisk tests skipped: SIPp missing (apt-get install sip-tester)")
    return found


@pytest.fixture(scope="session")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sounds")
    render_all(out, "zh")
    return out / "zh"


@pytest.fixture(scope="session")
def case_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'hotline.db'}"
    upgrade(url)
    with session_factory(engine_for(url))() as session:
        seed(session)
        session.commit()
    return url


@pytest.fixture
def make_rig(
    prefix: Path,
    sounds: Path,
    case_db: str,
    redis: Redis,
    redis_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> Iterator[Callable[..., RealRig]]:
    rigs: list[RealRig] = []

    def make(
        services: tuple[str, ...] = ("agi", "reaper"), hold_s: int = 30, **env: str
    ) -> RealRig:
        asterisk = Asterisk(
            prefix, tmp_path / "asterisk", agi_port=free_port(), seats=SEATS, hold_s=hold_s
        )
        rig = RealRig(
            asterisk, redis, redis_server.url, case_db, sounds, tmp_path, env_overrides=env
        )
        rigs.append(rig)
        asterisk.start()
        for name in services:
            rig.start(name)
        rig.keep_seats_alive()
        return rig

    yield make
    for rig in rigs:
        rig.close()


def test_shipped_modules_load_without_errors(make_rig: Callable[..., RealRig]) -> None:
    rig = make_rig(services=())
    assert rig.asterisk.module_errors() == []
    loaded = rig.asterisk.cli("module show")
    for module in (
        "res_agi.so",
        "chan_pjsip.so",
        "app_dial.so",
        "res_musiconhold.so",
        "app_stack.so",
        "res_pjsip_registrar.so",
    ):
        assert module in loaded, module
    assert "Manager (AMI):             Yes" in rig.asterisk.cli("manager show settings")
    assert "AGI" in rig.asterisk.cli("core show applications like AGI")


def test_silence_reaches_a_person(make_rig: Callable[..., RealRig]) -> None:
    rig = make_rig()
    phone = rig.seat("1001", ring_ms=1000, talk_ms=2000)
    citizen = rig.citizens("silent", ["13800138001"])
    assert citizen.wait(timeout=60) == 0, citizen.output()[-3000:]
    call_id, call = rig.call_of("13800138001")
    connects = [e for e in rig.events("CONNECT") if e["call"] == call_id]
    assert [e["seat"] for e in connects] == ["1001"]
    assert call["state"] == "ended" and call["outcome"] == "completed"
    assert rig.queue.seat("1001")["state"] == "available"
    assert phone.process.poll() is None  # still answering: it was never refused
    assert rig.asterisk.module_errors() == []


def test_dialect_key_reaches_the_hainanese_seat(make_rig: Callable[..., RealRig]) -> None:
    rig = make_rig()
    rig.seat("2001", ring_ms=500, talk_ms=1000, skills=("hainanese",))
    # The greeting (under 8 s) plays, then the language menu: 1 is Hainanese.
    citizen = rig.citizens("dialect", ["13800138002"], keys=[(10_000, "1")])
    assert citizen.wait(timeout=90) == 0, citizen.output()[-3000:]
    call_id, call = rig.call_of("13800138002")
    assert call["skill"] == "hainanese" and call["outcome"] == "completed"
    assert [e["seat"] for e in rig.events("CONNECT") if e["call"] == call_id] == ["2001"]


def test_a_phone_that_rings_fifteen_seconds_is_accepted(
    make_rig: Callable[..., RealRig],
) -> None:
    rig = make_rig()
    rig.seat("1001", ring_ms=15_000, talk_ms=1000)
    citizen = rig.citizens("slow-pickup", ["13800138003"])
    assert citizen.wait(timeout=90) == 0, citizen.output()[-3000:]
    call_id, call = rig.call_of("13800138003")
    assert call["outcome"] == "completed"
    assert rig.events("RINGNOANSWER") == []
    connect = next(e for e in rig.events("CONNECT") if e["call"] == call_id)
    assert int(connect["ring_ms"]) >= 14_000  # the lease ran from the ring, not the queue
    assert rig.queue.seat("1001")["state"] == "available"
    assert "too late" not in rig.service_log("agi")


def test_a_phone_that_never_answers_pauses_the_seat_and_the_caller_holds(
    make_rig: Callable[..., RealRig],
) -> None:
    rig = make_rig()
    phone = rig.seat("1001", ring_ms=None)
    citizen = rig.citizens("unanswered", ["13800138004"], hangup_after_ms=40_000)
    seat = eventually(
        lambda: rig.queue.seat("1001")["state"] == "paused" and rig.queue.seat("1001"),
        timeout=45,
        what="the seat is paused after ringing out",
    )
    assert seat["reason"] == "no answer"  # type: ignore[index]
    call_id, call = rig.call_of("13800138004")
    assert call["state"] == "waiting"
    # Back on hold, hearing music and nothing else, until they hang up.
    channel = eventually(
        lambda: [c for c in rig.asterisk.channels() if "trunk" in c],
        timeout=5,
        what="the caller's channel is up",
    )
    eventually(
        lambda: "hotline-hold" in rig.asterisk.cli(f"core show channel {channel[0]}"),  # type: ignore[index]
        timeout=10,
        what="the caller is back in the hold loop",
    )
    assert citizen.wait(timeout=60) == 0, citizen.output()[-3000:]
    assert phone.process.poll() is None
    ended = rig.queue.call(call_id)
    assert ended["outcome"] == "abandoned"
    log = rig.asterisk.log()
    plays_after_ring = log[log.rfind("Called PJSIP/1001") :]
    assert "Playing '" not in plays_after_ring.split("hotline-hold")[-1]


def test_a_caller_who_hangs_up_while_holding_never_rings_a_seat(
    make_rig: Callable[..., RealRig],
) -> None:
    rig = make_rig()
    phone = rig.seat("1001", ring_ms=500)
    rig.queue.seat_state("1001", "paused", "meeting")
    citizen = rig.citizens("gives-up", ["13800138005"], hangup_after_ms=12_000)
    assert citizen.wait(timeout=40) == 0, citizen.output()[-3000:]
    call_id, call = rig.call_of("13800138005")
    assert call["outcome"] == "abandoned"
    rig.queue.seat_state("1001", "available")
    time.sleep(3)
    assert rig.events("OFFER") == []
    assert "Called PJSIP/1001" not in rig.asterisk.log()
    assert phone.process.poll() is None


def test_a_caller_who_hangs_up_while_a_seat_rings(make_rig: Callable[..., RealRig]) -> None:
    rig = make_rig()
    rig.seat("1001", ring_ms=None)
    citizen = rig.citizens("hangs-up-ringing", ["13800138006"], hangup_after_ms=13_000)
    assert citizen.wait(timeout=40) == 0, citizen.output()[-3000:]
    call_id, _ = rig.call_of("13800138006")
    eventually(
        lambda: rig.queue.call(call_id).get("outcome") == "abandoned",
        timeout=10,
        what="the call is abandoned",
    )
    abandon = next(e for e in rig.events("ABANDON") if e["call"] == call_id)
    assert abandon["seat"] == "1001"
    assert rig.queue.seat("1001")["state"] == "available"  # not the operator's fault
    assert rig.events("RINGNOANSWER") == []


def test_a_repeat_caller_hears_the_case_and_reaches_their_operator(
    make_rig: Callable[..., RealRig], case_db: str
) -> None:
    from cases.db import engine_for, session_factory
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    with session_factory(engine_for(case_db))() as session:
        case = create_case_for_call(
            session,
            CallInfo("earlier-call-1", "13800138007", "asterisk", operator_seat="1002"),
            CaseDraft(description="路灯不亮", category_code="street-lights"),
        )
        number = case.number
        session.commit()
    rig = make_rig()
    rig.seat("1001", ring_ms=500)
    rig.queue.seat_state("1001", "paused", "meeting")
    rig.seat("1002", ring_ms=10_000, talk_ms=1000)
    citizen = rig.citizens("repeat", ["13800138007"])
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]
    call_id, call = rig.call_of("13800138007")
    assert call["priority"] == "repeat" and call["outcome"] == "completed"
    assert [e["seat"] for e in rig.events("CONNECT") if e["call"] == call_id] == ["1002"]
    played = rig.asterisk.log()
    assert "case_status" in played and number
