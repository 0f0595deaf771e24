"""Two real Asterisk boxes sharing one queue: a citizen calls 12345 on box A and is
bridged to an operator whose phone is registered on box B, over the shipped PJSIP trunk
between the boxes (PEER_BOX_* in docker/asterisk/render-config.sh) and the seat's box in
its dial string (SEAT_DIAL_BY_PREFIX).

Both boxes run the same cached build from their own folders and ports on loopback, each
with its own system name and its own FastAGI server (AMI to its own box), on one Redis.
Skipped like tests/test_real_asterisk.py when no Asterisk is available."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select

from cases.db import engine_for, session_factory
from cases.models import Case
from hotline.config import ConfigError, load_settings
from hotline.prompt_audio import render_all
from hotline.runtime import agi_settings
from tests import sipp
from tests.conftest import wait_until as eventually
from tests.real_asterisk import (
    HOW_TO_ENABLE,
    Asterisk,
    AsteriskUnavailable,
    asterisk_prefix,
    free_port,
)
from tests.real_rig import RealRig
from tests.sipp import SIPP

REMOTE_SEAT = "3001"  # its phone registers on box B only


@pytest.fixture(scope="module")
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


@pytest.fixture
def two_boxes(
    prefix: Path,
    redis: Redis,
    redis_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> Iterator[tuple[RealRig, Asterisk]]:
    """Box A (the carrier's trunk) and box B (operator phones), each with the trunk to
    the other. Box A's FastAGI server ("agi") dials seats 3xxx through box B; box B's
    ("agi-2", started by the test) would dial seats 1xxx through box A."""
    from cases.db import upgrade
    from cases.seed import seed

    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as session:
        seed(session)
        session.commit()
    render_all(tmp_path / "sounds", "zh")
    agi_port, agi_port_b = free_port(), free_port()
    port_a, port_b = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    box_b = Asterisk(
        prefix,
        tmp_path / "box-b",
        agi_port=agi_port_b,
        seats=[REMOTE_SEAT],
        system_name="box-b",
        sip_port=port_b,
        peer_box_name="box-a",
        peer_box_port=port_a,
    )
    box_a = Asterisk(
        prefix,
        tmp_path / "box-a",
        agi_port=agi_port,
        seats=["1001"],
        system_name="box-a",
        sip_port=port_a,
        peer_box_name="box-b",
        peer_box_port=port_b,
    )
    rig = RealRig(
        box_a,
        redis,
        redis_server.url,
        db_url,
        tmp_path / "sounds" / "zh",
        tmp_path,
        env_overrides={"SEAT_DIAL_BY_PREFIX": "3=PJSIP/{seat}@box-b"},
    )
    try:
        box_b.start()
        box_a.start()
        for name in ("agi", "reaper", "worker"):
            rig.start(name)
        rig.keep_seats_alive()
        yield rig, box_b
    finally:
        rig.close()
        box_b.stop()


def start_box_b_server(rig: RealRig, box_b: Asterisk) -> None:
    """Box B's FastAGI server: its dialplan's address, its AMI, seats 1xxx on box A."""
    rig.start(
        "agi-2",
        HOTLINE_AGI_PORT=str(box_b.agi_port),
        ASTERISK_AMI_PORT=str(box_b.ami_port),
        SEAT_DIAL_BY_PREFIX="1=PJSIP/{seat}@box-a",
    )


def test_a_seat_is_dialled_through_the_box_its_prefix_names() -> None:
    settings = load_settings({"SEAT_DIAL_BY_PREFIX": "3=PJSIP/{seat}@box-b 30=PJSIP/{seat}@box-c"})
    agi = agi_settings(settings)
    assert agi.seat_endpoint("3101") == "PJSIP/3101@box-b"
    assert agi.seat_endpoint("3001") == "PJSIP/3001@box-c"  # the longest prefix wins
    assert agi.seat_endpoint("1001") == "PJSIP/1001"  # SEAT_DIAL_PATTERN, as before
    for bad in ("3", "3=PJSIP/3001@box-b", "3=PJSIP/{seat},30", "3 4=PJSIP/{seat}"):
        with pytest.raises(ConfigError):
            load_settings({"SEAT_DIAL_BY_PREFIX": bad})


@pytest.mark.slow
def test_a_caller_on_box_a_reaches_a_seat_registered_on_box_b(
    two_boxes: tuple[RealRig, Asterisk],
) -> None:
    rig, box_b = two_boxes
    box_a = rig.asterisk
    # Box A qualifies its trunk to box B; a trunk still unqualified is not dialled.
    eventually(
        lambda: "Avail" in box_a.cli("pjsip show aor box-b"),
        timeout_s=60,
        what="box A reaching box B over the trunk",
    )
    # The operator talks long enough for box B's server to start (see below).
    phone = rig.seat(REMOTE_SEAT, ring_ms=1000, talk_ms=20_000, box=box_b, trace=True)
    citizen = rig.citizens("caller-on-a", ["13800138071"])
    connect = eventually(
        lambda: rig.events("CONNECT"), timeout_s=90, what="the seat on box B answering"
    )
    call_id = connect[0]["call"]  # type: ignore[index]
    assert call_id.startswith("ast-box-a-")  # box A's system name starts its call ids

    # Box B's own FastAGI server starts mid-conversation: its reconciliation, run at
    # once, compares only box B's calls with box B's channels and leaves this one be
    # (it sees the call live: "0 of the queue's 1"; before, it ended it as gone).
    start_box_b_server(rig, box_b)
    eventually(
        lambda: "calls (ast-box-b-*): 0 of the queue's 1" in rig.service_log("agi-2"),
        timeout_s=30,
        what="box B's server reconciling",
    )
    assert rig.queue.call(call_id)["state"] == "on_call"

    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:] + box_a.log_tail()
    _, call = rig.call_of("13800138071")
    assert call["state"] == "ended" and call["outcome"] == "completed", call
    connects = [e for e in rig.events("CONNECT") if e["call"] == call_id]
    assert [e["seat"] for e in connects] == [REMOTE_SEAT]
    assert "is gone from Asterisk" not in rig.service_log("agi-2")
    # Box A rang the seat over the trunk; box B rang the phone it registered.
    assert f"Called PJSIP/{REMOTE_SEAT}@box-b" in box_a.log()
    assert f"Called PJSIP/{REMOTE_SEAT}" in box_b.log()
    invites = (rig.workdir / f"phone-{REMOTE_SEAT}.messages").read_text(errors="replace")
    assert f"127.0.0.1:{box_b.sip_port}" in invites and "INVITE sip:" in invites
    assert phone.process.poll() is None  # still answering: never refused

    # The conversation is over on both boxes, the seat is free, the case names the seat.
    eventually(lambda: box_a.channels() == [] and box_b.channels() == [], timeout_s=30)
    eventually(lambda: rig.queue.seat(REMOTE_SEAT)["state"] == "available", timeout_s=30)
    sessions = session_factory(engine_for(rig.db_url))

    def case_seat() -> str | None:
        with sessions() as db:
            return db.scalar(select(Case.operator_seat).where(Case.call_id == call_id))

    assert eventually(case_seat, timeout_s=60, what="the call's case") == REMOTE_SEAT
    assert box_a.module_errors() == [] and box_b.module_errors() == []


@pytest.mark.slow
def test_a_caller_on_box_b_reaches_a_seat_registered_on_box_a(
    two_boxes: tuple[RealRig, Asterisk],
) -> None:
    """The other way round, with each box's own server: box A's server tries to move
    the box-B caller too, box A's AMI refuses, box B's server's redirect goes through."""
    rig, box_b = two_boxes
    box_a = rig.asterisk
    start_box_b_server(rig, box_b)
    eventually(
        lambda: "Avail" in box_b.cli("pjsip show aor box-a"),
        timeout_s=60,
        what="box B reaching box A over the trunk",
    )
    phone = rig.seat("1001", ring_ms=1000, talk_ms=2000)  # registered on box A
    citizen = sipp.citizens(
        rig.workdir,
        "caller-on-b",
        box_b.sip_port,
        ["13800138072"],
        local_port=free_port(socket.SOCK_DGRAM, "127.0.0.2"),
    )
    rig.sipps.append(citizen)
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:] + box_b.log_tail()

    call_id, call = rig.call_of("13800138072")
    assert call_id.startswith("ast-box-b-")
    assert call["state"] == "ended" and call["outcome"] == "completed", call
    assert [e["seat"] for e in rig.events("CONNECT") if e["call"] == call_id] == ["1001"]
    assert "Called PJSIP/1001@box-a" in box_b.log()
    assert "Called PJSIP/1001" in box_a.log()
    assert "is gone from Asterisk" not in rig.service_log("agi") + rig.service_log("agi-2")
    assert phone.process.poll() is None
    eventually(lambda: box_a.channels() == [] and box_b.channels() == [], timeout_s=30)
    eventually(lambda: rig.queue.seat("1001")["state"] == "available", timeout_s=30)
    assert box_a.module_errors() == [] and box_b.module_errors() == []
