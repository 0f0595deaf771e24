"""Recordings on a real Asterisk 22 (the project's dialplan, AMI and PJSIP): the bridge's
AGI starts MixMonitor before it rings the seat; the file, named by the call id, holds
about the conversation's length of audio (read from its WAV header), and is linked to
the call's detail row and case. The operator pauses it through the desk (AMI
MixMonitorMute) while the citizen reads out a number.

SIPp plays the citizen (who talks: a voice recording played over RTP) and the
operator's phone. Skipped, with one line saying how to enable it, without Asterisk."""

from __future__ import annotations

import socket
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import select

from agi_scripts.ami import AmiConnection
from agi_scripts.recording import AsteriskRecorder
from calls import RQ_QUEUE, CallerDirectory, CallHandler
from calls.desk import Actor, Desk
from calls.recordings import link_recordings, wav_seconds
from cases.db import engine_for, session_factory
from cases.models import ActionLog, CallRecord, CallRecording, Case
from tests import sipp
from tests.conftest import wait_until as eventually
from tests.real_asterisk import free_port
from tests.real_rig import RealRig
from tests.test_real_asterisk import case_db, make_rig, prefix, sounds  # noqa: F401

pytestmark = pytest.mark.slow

WANG = Actor("wang", "operator")
TALK_MS = 9000


def talking_citizen(rig: RealRig, number: str, talk_s: int = 60) -> sipp.SippProcess:
    """A citizen who speaks (A-law voice, played again and again) for ``talk_s`` seconds
    after the centre answers, then hangs up (or is hung up on)."""
    invite = sipp._INVITE.replace(
        "RTP/AVP 0 101\n      a=rtpmap:0 PCMU/8000",
        "RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000",
    )
    assert invite != sipp._INVITE, "the citizen's SDP moved"
    speech = "".join(
        sipp._PRESS.format(pcap=sipp.VOICE_PCAP) + '  <pause milliseconds="6000"/>\n'
        for _ in range(talk_s // 6)
    )
    scenario = sipp._HEAD.format(name="talker") + invite + speech + sipp._CALLER_BYE + sipp._TAIL
    port = free_port(socket.SOCK_DGRAM, "127.0.0.2")
    proc = sipp.custom_citizen(
        rig.workdir, "talker", rig.asterisk.sip_port, number, scenario, local_port=port
    )
    rig.sipps.append(proc)
    return proc


def test_a_conversation_is_recorded_paused_on_request_and_linked_to_its_case(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    rig = make_rig(services=("agi", "reaper", "worker"))
    recordings = rig.workdir / "var" / "recordings"
    sessions = session_factory(engine_for(case_db))
    handler = CallHandler(
        rig.queue, Queue(RQ_QUEUE, connection=rig.redis), CallerDirectory(sessions)
    )
    desk = Desk(handler, sessions)
    ami = AmiConnection("127.0.0.1", rig.asterisk.ami_port, "hotline", rig.asterisk.ami_secret)
    rig.seat("1001", login=False, ring_ms=1000, talk_ms=TALK_MS)
    desk.login_seat(WANG, "1001", ["mandarin"])
    rig.seats.append("1001")
    talking_citizen(rig, "13800138555")

    def talking() -> str | None:
        for call_id, call in rig.calls().items():
            if call.get("state") == "on_call" and call.get("seat") == "1001":
                return call_id
        return None

    call_id = str(eventually(talking, timeout_s=90, what="the citizen talking at seat 1001"))
    file = recordings / f"{call_id}.wav"
    eventually(file.exists, timeout_s=30, what=f"MixMonitor's file {file}")

    def noted() -> CallRecording | None:
        with sessions() as db:
            return db.scalar(select(CallRecording).where(CallRecording.call_id == call_id))

    recording = eventually(noted, timeout_s=60, what="the recording's row (the worker's job)")
    assert isinstance(recording, CallRecording) and recording.provider == "asterisk"

    # The citizen reads out an ID number: the operator pauses, then resumes.
    recorder = AsteriskRecorder(handler, ami)
    assert desk.pause_recording(WANG, call_id, True, recorder) == "paused"
    assert desk.pause_recording(WANG, call_id, True, recorder) == "unchanged"
    assert desk.pause_recording(WANG, call_id, False, recorder) == "recording"

    # The operator's phone hangs up after TALK_MS; the case and the call's row follow.
    eventually(
        lambda: rig.queue.call(call_id).get("state") == "ended", timeout_s=90, what="call ended"
    )
    talk_ms = next(int(e["talk_ms"]) for e in rig.events("COMPLETE") if e["call"] == call_id)

    def case_and_row() -> bool:
        with sessions() as db:
            case = db.scalar(select(Case).where(Case.call_id == call_id))
            row = db.get(CallRecord, call_id)
            return case is not None and row is not None and row.ended_at is not None

    eventually(case_and_row, timeout_s=90, what="the case and the call's detail row")
    # MixMonitor finishes the file (its WAV header) when the caller's channel goes.
    eventually(lambda: wav_seconds(file), timeout_s=60, what="the finished WAV file")
    with sessions() as db:
        link_recordings(db, recordings)
        recording = db.scalars(select(CallRecording).where(CallRecording.call_id == call_id)).one()
        case = db.scalars(select(Case).where(Case.call_id == call_id)).one()
        assert recording.case_id == case.id and recording.status == "done"
        audit = db.scalars(select(ActionLog.action).where(ActionLog.target == call_id)).all()
        assert "recording-pause" in audit and "recording-resume" in audit

    with wave.open(str(file), "rb") as audio:
        seconds = audio.getnframes() / audio.getframerate()
        assert audio.getnchannels() == 1 and audio.getframerate() == 8000
    # Only the bridged conversation: no greeting, no ringing (the pause keeps its time).
    assert abs(seconds - talk_ms / 1000) < 2.5, (seconds, talk_ms)
    assert recording.duration_s == round(seconds)
    assert rig.asterisk.module_errors() == []
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
    ami.close()


def test_wav_seconds_reads_the_header(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 8000 * 3)
    assert wav_seconds(path) == 3
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    assert wav_seconds(tmp_path / "bad.wav") is None


def test_a_return_visit_is_recorded_and_linked_to_the_case_it_asks_about(
    make_rig: Callable[..., RealRig],
    case_db: str,  # noqa: F811
) -> None:
    """The dialer's call (AMI Originate, AMD, the visit's questions, a key) is recorded
    whole, bot and all, and the recording belongs to the case the visit is about."""
    from datetime import UTC, datetime

    from tests.test_real_asterisk import _visit_for

    rig = make_rig(services=("agi", "reaper", "worker"))
    port = free_port(socket.SOCK_DGRAM, "127.0.0.3")
    phone = sipp.called(
        rig.workdir, "called-rec", port, answer=True, ring_ms=1500, press_after_ms=22000, digit="1"
    )
    rig.sipps.append(phone)
    when = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    dialer, sessions, case_id = _visit_for(rig, case_db, "+8613800139077", port, when)
    assert dialer.run_once() == 1
    dialer.originator.ami.close()  # type: ignore[attr-defined]
    assert phone.wait(timeout=90) == 0, phone.output()[-3000:]

    def linked() -> CallRecording | None:
        with sessions() as db:
            return db.scalar(select(CallRecording).where(CallRecording.case_id == case_id))

    recording = eventually(linked, timeout_s=60, what="the visit's recording, linked")
    assert isinstance(recording, CallRecording) and recording.file_name
    file = rig.workdir / "var" / "recordings" / recording.file_name
    seconds = eventually(lambda: wav_seconds(file), timeout_s=60, what="the finished WAV")
    assert isinstance(seconds, int) and seconds >= 15  # the visit's sentences and the key
    assert rig.asterisk.module_errors() == []
    assert "Traceback" not in rig.service_log("agi"), rig.service_log("agi")[-3000:]
