"""Listening in on a real Asterisk 22: a supervisor whispers to an operator through the
desk (AMI Originate of ChanSpy with q and w to the supervisor's phone). The operator's
phone hears the whisper and the citizen does not: the RTP Asterisk sends the operator's
phone (to a socket of the test's) carries the supervisor's voice, and the citizen's own
recording (the product's MixMonitor, which holds what the citizen hears) none of it.
The session is audited with who, whom, how, and how long.

SIPp plays the citizen (whose line carries silence), the operator (who sends nothing)
and the supervisor's phone (which speaks: a voice recording played over RTP). Skipped
without Asterisk."""

from __future__ import annotations

import array
import socket
import struct
import threading
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import select

from agi_scripts.ami import AmiConnection
from agi_scripts.listening import AsteriskListener
from calls import RQ_QUEUE, CallerDirectory, CallHandler
from calls.desk import Actor, Desk, DeskError
from cases.db import engine_for, session_factory
from cases.models import ActionLog
from tests import sipp
from tests.conftest import wait_until as eventually
from tests.real_asterisk import free_port, seat_password
from tests.real_rig import RealRig
from tests.test_real_asterisk import case_db, make_rig, prefix, sounds  # noqa: F401

pytestmark = pytest.mark.slow

WANG = Actor("wang", "operator")
LI = Actor("li", "supervisor")


def speaking_phone(rig: RealRig, seat: str, speak_s: int = 12) -> sipp.SippProcess:
    """A phone registered as ``seat`` that answers, speaks (A-law voice) for about
    ``speak_s`` seconds, and hangs up."""
    answer = sipp._PHONE_ANSWER.replace(
        "RTP/AVP 0\n      a=rtpmap:0 PCMU/8000", "RTP/AVP 8\n      a=rtpmap:8 PCMA/8000"
    )
    assert answer != sipp._PHONE_ANSWER, "the phone's SDP moved"
    speech = "".join(
        sipp._PRESS.format(pcap=sipp.VOICE_PCAP) + '  <pause milliseconds="6000"/>\n'
        for _ in range(speak_s // 6)
    )
    answer = answer.replace('  <pause milliseconds="{talk_ms}"/>\n', speech)
    capture = (
        '<action><ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>'
        '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_to"/></action>'
    )
    scenario = (
        sipp._HEAD.format(name="speaker")
        + sipp._PHONE_INVITE.format(capture=capture)
        + answer.format(ring_ms=1000)
        + sipp._TAIL
    )
    port = free_port(socket.SOCK_DGRAM)
    proc = sipp._sipp(
        rig.workdir,
        f"phone-{seat}",
        scenario,
        [
            *("-i", "127.0.0.1", "-p", str(port), "-mp", str(sipp.media_port())),
            # Like an operator's phone: qualify OPTIONS count as calls for SIPp.
            *("-m", "1000", "-aa", "-default_behaviors", "all,-bye"),
        ],
    )
    rig.sipps.append(proc)
    sipp.register(rig.workdir, rig.asterisk.sip_port, seat, seat_password(seat), port)
    return proc


def silence_pcap(path: Path, seconds: int) -> Path:
    """A pcap of A-law silence over RTP, 20 ms a packet, for SIPp to play: a citizen
    whose line carries audio (frames reach the operator, who could hear a whisper
    mixed into them) and says nothing."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for n in range(seconds * 50):
        rtp = struct.pack("!BBHII", 0x80, 8, n & 0xFFFF, n * 160, 0x5EED) + b"\xd5" * 160
        udp = struct.pack("!HHHH", 40000, 40000, 8 + len(rtp), 0) + rtp
        ip = (
            struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(udp),
                n & 0xFFFF,
                0,
                64,
                17,
                0,
                bytes([127, 0, 0, 2]),
                bytes([127, 0, 0, 1]),
            )
            + udp
        )
        frame = b"\0" * 12 + b"\x08\x00" + ip
        usec = n * 20_000
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))
    return path


def quiet_citizen(rig: RealRig, number: str, seconds: int = 90) -> sipp.SippProcess:
    """A citizen whose phone sends silence (A-law) from the answer, and who waits for
    the centre to hang up."""
    invite = sipp._INVITE.replace(
        "RTP/AVP 0 101\n      a=rtpmap:0 PCMU/8000",
        "RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000",
    )
    assert invite != sipp._INVITE, "the citizen's SDP moved"
    pcap = silence_pcap(rig.workdir / "silence.pcap", seconds)
    scenario = (
        sipp._HEAD.format(name="quiet")
        + invite
        + sipp._PRESS.format(pcap=pcap)
        + sipp._AWAIT_BYE.format(timeout_ms=seconds * 1000)
        + sipp._TAIL
    )
    port = free_port(socket.SOCK_DGRAM, "127.0.0.2")
    proc = sipp.custom_citizen(
        rig.workdir, "quiet", rig.asterisk.sip_port, number, scenario, local_port=port
    )
    rig.sipps.append(proc)
    return proc


class RtpEar:
    """What the operator's phone hears: the RTP Asterisk sends to the media address its
    SDP names (a socket of the test's, not SIPp's), decoded from G.711 mu-law."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.loudest = self.packets = 0
        self.running = True
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        while self.running:
            try:
                packet = self.sock.recv(2048)
            except OSError:
                continue
            if len(packet) <= 12 or packet[1] & 0x7F != 0:
                continue  # not mu-law audio (a DTMF event, a comfort noise)
            start = 12 + 4 * (packet[0] & 0x0F)
            self.packets += 1
            self.loudest = max(self.loudest, *(abs(mulaw(b)) for b in packet[start:]))

    def close(self) -> None:
        self.running = False
        self.sock.close()


def mulaw(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + 0x84) << ((byte >> 4) & 7)
    return -(magnitude - 0x84) if byte & 0x80 else magnitude - 0x84


def listening_operator(rig: RealRig, seat: str, ear: RtpEar, talk_ms: int) -> None:
    """The operator's phone: answers, sends nothing, and hangs up after ``talk_ms``;
    its SDP sends the audio it is to hear to ``ear``."""
    scenario = sipp.phone_scenario(ring_ms=1000, talk_ms=talk_ms)
    assert "m=audio [media_port] " in scenario, "the phone's SDP moved"
    scenario = scenario.replace("m=audio [media_port] ", f"m=audio {ear.port} ")
    port = free_port(socket.SOCK_DGRAM)
    proc = sipp._sipp(
        rig.workdir,
        f"phone-{seat}",
        scenario,
        [
            *("-i", "127.0.0.1", "-p", str(port)),
            *("-m", "1000", "-aa", "-default_behaviors", "all,-bye"),
        ],
    )
    rig.sipps.append(proc)
    sipp.register(rig.workdir, rig.asterisk.sip_port, seat, seat_password(seat), port)


def loudest(path: Path) -> int:
    """The largest sample's magnitude in a 16-bit mono WAV (0: silence, or no audio)."""
    with wave.open(str(path), "rb") as audio:
        assert audio.getsampwidth() == 2
        samples = array.array("h", audio.readframes(audio.getnframes()))
    return max((abs(s) for s in samples), default=0)


def test_a_supervisors_whisper_is_heard_by_the_operator_only_and_audited(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    rig = make_rig(services=("agi", "reaper", "worker"))
    sessions = session_factory(engine_for(case_db))
    handler = CallHandler(
        rig.queue, Queue(RQ_QUEUE, connection=rig.redis), CallerDirectory(sessions)
    )
    desk = Desk(handler, sessions)
    ami = AmiConnection("127.0.0.1", rig.asterisk.ami_port, "hotline", rig.asterisk.ami_secret)
    ear = RtpEar()
    listening_operator(rig, "1001", ear, talk_ms=40_000)
    desk.login_seat(WANG, "1001", ["mandarin"])
    rig.seats.append("1001")
    speaking_phone(rig, "1002")
    citizen = quiet_citizen(rig, "13800138666")  # silence; the centre hangs up

    def talking() -> str | None:
        for call_id, call in rig.calls().items():
            if call.get("state") == "on_call" and call.get("seat") == "1001":
                return call_id
        return None

    call_id = str(eventually(talking, timeout_s=90, what="the citizen talking at seat 1001"))
    listener = AsteriskListener(ami)
    with pytest.raises(DeskError) as refused:
        desk.listen_in(WANG, "1001", "1002", "whisper", listener)
    assert refused.value.status == 403
    with pytest.raises(DeskError) as idle:
        desk.listen_in(LI, "1003", "1002", "listen", listener)
    assert idle.value.status == 409

    eventually(lambda: ear.packets > 50, timeout_s=30, what="audio at the operator's phone")
    assert ear.loudest < 200  # the citizen's silence, so far

    session_id = desk.listen_in(LI, "1001", "1002", "whisper", listener)

    def spying() -> bool:
        channels = ami.action_list({"Action": "CoreShowChannels"})
        return any(
            c.get("Application") == "ChanSpy" and "w" in str(c.get("ApplicationData", ""))
            for c in channels
        )

    eventually(spying, timeout_s=30, what="ChanSpy whispering from the supervisor's phone")
    assert citizen.wait(timeout=120) == 0, citizen.output()[-3000:]

    def audited() -> list[tuple[str, str, str, str]]:
        with sessions() as db:
            rows = db.execute(
                select(ActionLog.actor, ActionLog.action, ActionLog.target, ActionLog.detail)
                .where(ActionLog.action.in_(("listen-start", "listen-end")))
                .order_by(ActionLog.id)
            ).all()
        return [tuple(r) for r in rows] if len(rows) == 2 else []  # type: ignore[misc]

    start, end = eventually(audited, timeout_s=60, what="the listening session's audit lines")
    assert start == ("li", "listen-start", "1001", f"whisper phone 1002 {session_id}")
    assert end[:3] == ("li", "listen-end", "1001") and end[3].startswith(session_id)
    assert int(end[3].split()[1]) >= 6  # it lasted while the supervisor spoke

    # The operator heard the supervisor; the citizen's recording holds nothing of it.
    citizen_recording = rig.workdir / "var" / "recordings" / f"{call_id}.wav"
    from calls.recordings import wav_seconds

    eventually(
        lambda: wav_seconds(citizen_recording) is not None, timeout_s=60, what="citizen file"
    )
    ear.close()
    assert ear.loudest > 2000
    assert loudest(citizen_recording) < 200
    assert rig.asterisk.module_errors() == []
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()
