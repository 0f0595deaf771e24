"""Recordings on Twilio's protocol and on the screens: the seat's <Dial> records both
sides from the answer; the signed status callback links the recording to the call;
the operator's 暂停录音 asks Twilio's REST API (a local HTTP server standing in for it,
which records each request and serves the recording's audio) to pause it; a job
fetches the audio; a supervisor plays it from the case page (audited, never cached,
range requests answered) and an operator is refused; the retention job deletes old
recordings, here and at Twilio, audited."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from redis import Redis
from sqlalchemy import select

from calls.desk import Actor
from tests.test_console import csrf_of, sign_in
from tests.twilio_peer import (
    PUBLIC_BASE,
    TwilioSigner,
    app_on_twilio,
    http_peer,
    parse,
    sid,
)

ACCOUNT = "AC" + "5" * 32
CALL = sid(5150)
RECORDING = "RE" + "a" * 32
AUDIO_S = 4


def wav_bytes(seconds: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\x01\x00" * 8000 * seconds)
    return out.getvalue()


class TwilioApi(BaseHTTPRequestHandler):
    """Twilio's REST API as far as recordings go: records each request; serves media."""

    received: list[tuple[str, str, dict[str, list[str]]]] = []

    def _answer(self, body: bytes, kind: str = "application/json", status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode())
        TwilioApi.received.append(("POST", self.path, form))
        self._answer(
            b'{"sid": "%s", "account_sid": "%s", "call_sid": "%s", "status": "paused"}'
            % (RECORDING.encode(), ACCOUNT.encode(), CALL.encode())
        )

    def do_DELETE(self) -> None:  # noqa: N802
        TwilioApi.received.append(("DELETE", self.path, {}))
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        TwilioApi.received.append(("GET", self.path, {}))
        self._answer(wav_bytes(AUDIO_S), "audio/x-wav")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def twilio_api() -> Iterator[str]:
    TwilioApi.received = []
    with http_peer(TwilioApi) as url:
        yield url


@pytest.fixture
def app(redis: Redis, redis_server, tmp_path: Path, twilio_api: str, monkeypatch):  # type: ignore[no-untyped-def]
    people = (("wang", "operator", "王芳", "1001"), ("li", "supervisor", "李班长", None))
    return app_on_twilio(
        redis, redis_server.url, tmp_path, twilio_api, monkeypatch, ACCOUNT, people
    )


def console_of(app, username: str) -> tuple[Any, dict[str, str]]:  # type: ignore[no-untyped-def]
    client = app.test_client()
    sign_in(client, username)
    page = "/console/" if username == "wang" else "/console/wallboard"
    headers = {"X-CSRFToken": csrf_of(client.get(page).get_data(as_text=True))}
    return client, headers


def run_jobs(app) -> None:  # type: ignore[no-untyped-def]
    from rq import SimpleWorker

    jobs = app.extensions["hotline"].jobs
    SimpleWorker([jobs], connection=jobs.connection).work(burst=True, logging_level="WARNING")


def callback(twilio: TwilioSigner, status: str, **extra: str) -> Any:
    params = {
        "AccountSid": ACCOUNT,
        "CallSid": CALL,
        "RecordingSid": RECORDING,
        "RecordingStatus": status,
        **extra,
    }
    return twilio.post(f"/twilio/recording?call={CALL}", params)


def test_a_twilio_conversation_is_recorded_paused_fetched_and_played_by_a_supervisor(app) -> None:  # type: ignore[no-untyped-def]
    from cases.models import ActionLog, CallRecording, Case

    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    twilio = TwilioSigner(app.test_client())
    params = {
        "CallSid": CALL,
        "From": "+8613800000001",
        "To": "+8612345",
        "CallStatus": "ringing",
        "AccountSid": ACCOUNT,
        "Direction": "inbound",
    }
    answer = parse(twilio.post("/twilio/voice", params))
    assert "录音" in (answer.findtext("Say") or "")  # the greeting's notice
    [dial] = answer.findall("Dial")
    assert dial.get("record") == "record-from-answer-dual"
    assert dial.get("recordingStatusCallback") == f"{PUBLIC_BASE}/twilio/recording?call={CALL}"
    assert "in-progress" in (dial.get("recordingStatusCallbackEvent") or "")
    parse(
        twilio.post(
            f"/twilio/seat-answered?call={CALL}&seat=1001", {**params, "CallStatus": "in-progress"}
        )
    )

    # Unsigned callbacks change nothing; a signed one links the recording to the call.
    forged = app.test_client().post(
        f"/twilio/recording?call={CALL}",
        data={"RecordingSid": RECORDING, "RecordingStatus": "in-progress"},
    )
    assert forged.status_code == 403
    assert callback(twilio, "in-progress").status_code == 204
    with svc.desk.sessions() as db:
        recording = db.scalars(select(CallRecording)).one()
        assert (recording.call_id, recording.sid, recording.status) == (
            CALL,
            RECORDING,
            "recording",
        )

    # 暂停录音 while the citizen reads out an ID number: Twilio's REST API is asked.
    wang, wang_csrf = console_of(app, "wang")
    assert "暂停录音" in wang.get("/console/recording-controls").get_data(as_text=True)
    paused = wang.post(
        f"/console/calls/{CALL}/recording", data={"action": "pause"}, headers=wang_csrf
    )
    assert paused.status_code == 200 and "恢复录音" in paused.get_data(as_text=True)
    resumed = wang.post(
        f"/console/calls/{CALL}/recording", data={"action": "resume"}, headers=wang_csrf
    )
    assert resumed.status_code == 200 and "暂停录音" in resumed.get_data(as_text=True)
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}/Recordings/{RECORDING}.json"
    updates = [(p, form) for method, p, form in TwilioApi.received if method == "POST"]
    assert [p for p, _ in updates] == [path, path]
    assert updates[0][1]["Status"] == ["paused"] and updates[1][1]["Status"] == ["in-progress"]

    # The conversation ends; the recording is done, and a job (not the webhook) fetches it.
    media = f"{app.extensions['hotline_settings'].twilio_api_base_url}/Recordings/{RECORDING}"
    done = callback(twilio, "completed", RecordingUrl=media, RecordingDuration=str(AUDIO_S))
    assert done.status_code == 204
    assert not [r for r in TwilioApi.received if r[0] == "GET"]
    twilio.post(
        "/twilio/dial-status?seat=1001",
        {
            **params,
            "CallStatus": "in-progress",
            "DialCallStatus": "completed",
            "DialCallDuration": "30",
        },
    )
    run_jobs(app)  # the case, and the recording's audio
    assert [r[1] for r in TwilioApi.received if r[0] == "GET"] == [f"/Recordings/{RECORDING}.wav"]
    recordings = Path(app.extensions["hotline_settings"].recordings_dir)
    with svc.desk.sessions() as db:
        case = db.scalars(select(Case).where(Case.call_id == CALL)).one()
        recording = db.scalars(select(CallRecording)).one()
        assert recording.file_name == f"{RECORDING}.wav" and recording.duration_s == AUDIO_S
        assert (recordings / recording.file_name).exists()
        number, recording_id = case.number, recording.id

    # The operator sees no recording on the case page and may not play it.
    page = wang.get(f"/console/cases/{number}").get_data(as_text=True)
    assert "case-recordings" not in page
    refused = wang.get(f"/console/recordings/{recording_id}/audio")
    assert refused.status_code == 403

    # The supervisor plays it: audited once, however the player seeks; never cached.
    li, _ = console_of(app, "li")
    page = li.get(f"/console/cases/{number}").get_data(as_text=True)
    assert 'id="case-recordings"' in page and f"/console/recordings/{recording_id}/audio" in page
    played = li.get(f"/console/recordings/{recording_id}/audio")
    assert played.status_code == 200 and played.mimetype == "audio/wav"
    assert played.data == (recordings / f"{RECORDING}.wav").read_bytes()
    assert "no-store" in played.headers["Cache-Control"]
    seek = li.get(f"/console/recordings/{recording_id}/audio", headers={"Range": "bytes=100-199"})
    assert seek.status_code == 206 and len(seek.data) == 100
    assert "no-store" in seek.headers["Cache-Control"]
    played.close()
    seek.close()
    with svc.desk.sessions() as db:
        audit = db.execute(
            select(ActionLog.actor, ActionLog.action, ActionLog.target).order_by(ActionLog.id)
        ).all()
    plays = [a for a in audit if a.action == "recording-play"]
    assert [(a.actor, a.target) for a in plays] == [("li", RECORDING)]
    assert ("wang", "recording-play-refused", str(recording_id)) in audit
    assert ("wang", "recording-pause", CALL) in audit
    assert ("wang", "recording-resume", CALL) in audit


def test_the_retention_job_deletes_old_recordings_here_and_at_twilio(app) -> None:  # type: ignore[no-untyped-def]
    from calls.recordings import note_recording, upkeep
    from cases.models import ActionLog, CallRecording

    svc = app.extensions["hotline"]
    recordings = Path(app.extensions["hotline_settings"].recordings_dir)
    recordings.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    with svc.desk.sessions() as db:
        for name, days in (("ast-1.1", 200), ("ast-2.2", 10)):
            (recordings / f"{name}.wav").write_bytes(wav_bytes(1))
            note_recording(
                db,
                name,
                name,
                "asterisk",
                file_name=f"{name}.wav",
                at=now - timedelta(days=days),
            )
        note_recording(db, RECORDING, CALL, "twilio", at=now - timedelta(days=190))
        db.commit()

    assert upkeep()["deleted"] == 2  # default retention: about six months
    assert not (recordings / "ast-1.1.wav").exists() and (recordings / "ast-2.2.wav").exists()
    assert ("DELETE", f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{RECORDING}.json", {}) in (
        TwilioApi.received
    )
    with svc.desk.sessions() as db:
        states = dict(db.execute(select(CallRecording.sid, CallRecording.status)).all())
        assert states == {"ast-1.1": "deleted", "ast-2.2": "recording", RECORDING: "deleted"}
        deleted = db.scalars(
            select(ActionLog.target).where(ActionLog.action == "recording-deleted")
        ).all()
        assert sorted(deleted) == sorted(["ast-1.1", RECORDING])
    assert upkeep()["deleted"] == 0  # deleted once


def test_listening_in_is_offered_on_the_wallboard_to_supervisors_only(app) -> None:  # type: ignore[no-untyped-def]
    from cases.models import ActionLog

    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    wang, wang_csrf = console_of(app, "wang")
    form = {"seat": "1001", "phone": "1009", "mode": "whisper"}
    assert wang.post("/console/listen", data=form, headers=wang_csrf).status_code == 403

    li, li_csrf = console_of(app, "li")
    assert 'id="listen-card"' in li.get("/console/wallboard").get_data(as_text=True)
    panel = li.get("/console/listen").get_data(as_text=True)
    assert "耳语" in panel and "强插" in panel
    idle = li.post("/console/listen", data=form, headers=li_csrf)
    assert idle.status_code == 409 and "现在没有通话" in idle.get_data(as_text=True)
    bad = li.post("/console/listen", data={**form, "mode": "record"}, headers=li_csrf)
    assert bad.status_code == 400
    with svc.desk.sessions() as db:
        assert db.scalars(select(ActionLog).where(ActionLog.action == "listen-start")).all() == []


def test_a_twilio_return_visit_is_recorded_and_its_callback_names_the_call(app) -> None:  # type: ignore[no-untyped-def]
    from twilio.rest import Client

    from cases.models import CallRecording
    from tests.test_telephony_twilio import FakeTwilioApi
    from web.twilio.outbound import TwilioOriginator

    with http_peer(FakeTwilioApi) as url:
        client = Client(ACCOUNT, "secret-token")
        client.api.base_url = url
        TwilioOriginator(client, "+8689812345", PUBLIC_BASE).originate(
            "out-7-1", "+8613800000001", "return_visit"
        )
    (_, form, _) = FakeTwilioApi.received[-1]
    assert form["Record"] == ["true"]
    assert form["RecordingStatusCallback"] == [f"{PUBLIC_BASE}/twilio/recording"]
    assert "in-progress" in form["RecordingStatusCallbackEvent"]

    # The dialer's call: its own CallSid names it (no seat's <Dial> to say which).
    visit_call = sid(808)
    twilio = TwilioSigner(app.test_client())
    params = {"AccountSid": ACCOUNT, "CallSid": visit_call, "RecordingSid": RECORDING}
    answer = twilio.post("/twilio/recording", {**params, "RecordingStatus": "in-progress"})
    assert answer.status_code == 204
    with app.extensions["hotline"].desk.sessions() as db:
        recording = db.scalars(select(CallRecording)).one()
        assert (recording.call_id, recording.provider) == (visit_call, "twilio")
