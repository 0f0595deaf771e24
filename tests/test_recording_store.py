"""Recordings kept in an S3-compatible store (calls.recordings.S3Store): moto's S3 server
over real HTTP stands in for MinIO. A finished Asterisk file is uploaded by the upkeep
job and its local copy removed only once the stored copy is checked; with the store
down the file stays and the next run uploads it. Twilio's fetch job writes to the store.
Quality staff play the audio from the store over real HTTP, seeking by range, audited
once; the retention job deletes it from the store. Migration 0023 marks every earlier
recording as a file in the directory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import select, text

from cases.models import ActionLog, CallRecording, Case
from tests.test_console import PASSWORD, csrf_of
from tests.test_real_asterisk import case_db, make_rig, prefix, sounds  # noqa: F401
from tests.test_recordings import RECORDING, twilio_api, wav_bytes  # noqa: F401  (fixture)
from tests.test_recordings_audit import a_noise_case
from tests.twilio_peer import app_on_twilio

BUCKET = "hotline-recordings"
PREFIX = "city-12345"
CALL = "1764600000.42"  # an Asterisk call id names its file
AUDIO_S = 3
ACCOUNT = "AC" + "6" * 32


class S3Emulator:
    """moto's S3 server on a loopback port; ``stop`` and ``start`` take it away and bring
    it back on the same port (its buckets live in this process and survive)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        self.host, self.port = self.server.get_host_and_port()
        self.url = f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Refused connections from now on (shutdown alone leaves the socket listening)."""
        listening = self.server._server
        self.server.stop()
        if listening is not None:
            listening.server_close()

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self.server.start()

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test-key-not-a-secret",
            aws_secret_access_key="test-secret-not-a-secret",
        )

    def objects(self) -> dict[str, bytes]:
        client = self.client()
        listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return {
            o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed
        }


@pytest.fixture
def s3() -> Iterator[S3Emulator]:
    emulator = S3Emulator()
    emulator.client().create_bucket(Bucket=BUCKET)
    try:
        yield emulator
    finally:
        import urllib.request

        try:  # its buckets are this process's: leave none to the next test
            urllib.request.urlopen(
                urllib.request.Request(f"{emulator.url}/moto-api/reset", method="POST")
            ).close()
        finally:
            emulator.stop()


def s3_env(s3: S3Emulator) -> dict[str, str]:
    return {
        "HOTLINE_RECORDINGS_S3_BUCKET": BUCKET,
        "HOTLINE_RECORDINGS_S3_ENDPOINT": s3.url,
        "HOTLINE_RECORDINGS_S3_PREFIX": PREFIX,
        "AWS_ACCESS_KEY_ID": "test-key-not-a-secret",
        "AWS_SECRET_ACCESS_KEY": "test-secret-not-a-secret",
        "AWS_REGION": "us-east-1",
    }


@pytest.fixture
def app(redis: Redis, redis_server, tmp_path: Path, twilio_api: str, s3: S3Emulator, monkeypatch):  # type: ignore[no-untyped-def]
    people = (  # the quality role's tests (tests/test_quality_role.py) share this app
        ("wang", "operator", "王芳", "1001"),
        ("li", "supervisor", "李班长", None),
        ("zhou", "quality", "周质检", None),
        ("root", "admin", "管理员甲", None),
        ("chen", "leader", "陈值班", None),
    )
    return app_on_twilio(
        redis,
        redis_server.url,
        tmp_path,
        twilio_api,
        monkeypatch,
        ACCOUNT,
        people,
        PUBLIC_BASE_URL="http://127.0.0.1",  # plain HTTP here: cookies not marked Secure
        **s3_env(s3),
    )


@pytest.fixture
def served(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app over real HTTP on a loopback port, in a thread."""
    from tests.served import served_app

    with served_app(app) as url:
        yield url


def signed_in(base: str, username: str) -> Any:
    import requests

    browser = requests.Session()
    token = csrf_of(browser.get(f"{base}/login").text)
    answer = browser.post(
        f"{base}/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    return browser


def recordings_dir(app) -> Path:  # type: ignore[no-untyped-def]
    directory = Path(app.extensions["hotline_settings"].recordings_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def a_case_with_a_finished_recording(  # type: ignore[no-untyped-def]
    app, sid: str, at: datetime, seconds: int = AUDIO_S
) -> tuple[str, int]:
    """A case whose Asterisk call MixMonitor recorded to ``<sid>.wav``, the call over."""
    from calls.recordings import note_recording

    (recordings_dir(app) / f"{sid}.wav").write_bytes(wav_bytes(seconds))
    with app.extensions["hotline"].desk.sessions() as db:
        case = a_noise_case(db, sid)
        recording = note_recording(
            db, sid, sid, "asterisk", file_name=f"{sid}.wav", at=at, status="done"
        )
        recording.duration_s = seconds
        db.commit()
        return case.number, recording.id


def row(app, recording_id: int) -> CallRecording:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].desk.sessions() as db:
        found = db.get(CallRecording, recording_id)
        assert found is not None
        db.expunge(found)
        return found


def test_a_finished_file_is_uploaded_after_the_store_comes_back_and_plays_from_it(  # type: ignore[no-untyped-def]
    app, served, s3
) -> None:
    from calls.recordings import upkeep

    started = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    number, recording_id = a_case_with_a_finished_recording(app, CALL, started)
    local = recordings_dir(app) / f"{CALL}.wav"
    audio = local.read_bytes()

    # The store is away: nothing is lost, the file stays and still plays from here.
    s3.stop()
    assert upkeep()["uploaded"] == 0
    assert local.read_bytes() == audio
    assert (row(app, recording_id).store, row(app, recording_id).store_key) == (
        "dir",
        f"{CALL}.wav",
    )
    zhou = signed_in(served, "zhou")
    assert zhou.get(f"{served}/console/recordings/{recording_id}/audio").content == audio

    # It is back: the next run uploads, checks the copy, and only then removes the file.
    s3.start()
    assert upkeep()["uploaded"] == 1
    key = f"{PREFIX}/2026/11/30/{CALL}.wav"
    assert s3.objects() == {key: audio}
    assert not local.exists()
    stored = row(app, recording_id)
    assert (stored.store, stored.store_key, stored.file_name) == ("s3", key, None)
    assert upkeep()["uploaded"] == 0  # once

    # Played from the store over HTTP: whole, then seeking by range; audited once.
    page = zhou.get(f"{served}/console/cases/{number}").text
    assert f"/console/recordings/{recording_id}/audio" in page
    whole = zhou.get(f"{served}/console/recordings/{recording_id}/audio")
    assert whole.status_code == 200 and whole.content == audio
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert "no-store" in whole.headers["Cache-Control"]
    seek = zhou.get(
        f"{served}/console/recordings/{recording_id}/audio", headers={"Range": "bytes=1000-1099"}
    )
    assert seek.status_code == 206 and seek.content == audio[1000:1100]
    assert seek.headers["Content-Range"] == f"bytes 1000-1099/{len(audio)}"
    tail = zhou.get(
        f"{served}/console/recordings/{recording_id}/audio", headers={"Range": "bytes=-44"}
    )
    assert tail.status_code == 206 and tail.content == audio[-44:]
    beyond = zhou.get(
        f"{served}/console/recordings/{recording_id}/audio",
        headers={"Range": f"bytes={len(audio) + 10}-"},
    )
    assert beyond.status_code == 416
    with app.extensions["hotline"].desk.sessions() as db:
        plays = db.execute(
            select(ActionLog.actor, ActionLog.target, ActionLog.detail).where(
                ActionLog.action == "recording-play"
            )
        ).all()
    # Two playbacks from the start (from the directory, then from the store), not the
    # ranges the player sought to.
    assert [tuple(p) for p in plays] == [("zhou", CALL, f"call {CALL}")] * 2
    page = zhou.get(f"{served}/console/cases/{number}").text
    assert "周质检 · 质检员" in page and "播放或下载" in page

    # The store is away again: the case page says so, and the audio is a page saying so.
    s3.stop()
    try:
        page = zhou.get(f"{served}/console/cases/{number}").text
        assert "录音存储暂时无法访问" in page
        assert f"/console/recordings/{recording_id}/audio" not in page
        away = zhou.get(f"{served}/console/recordings/{recording_id}/audio")
        assert away.status_code == 503 and "录音未丢失" in away.text
    finally:
        s3.start()
    assert f"/console/recordings/{recording_id}/audio" in (
        zhou.get(f"{served}/console/cases/{number}").text
    )


def test_the_case_page_says_which_recording_is_not_available_yet(app, served, s3) -> None:  # type: ignore[no-untyped-def]
    from calls.recordings import note_recording

    number, _ = a_case_with_a_finished_recording(app, CALL, datetime.now(UTC))
    other = "1764600001.43"
    (recordings_dir(app) / f"{CALL}.wav").unlink()  # on the telephony's host only
    with app.extensions["hotline"].desk.sessions() as db:
        case = db.scalars(select(Case).where(Case.number == number)).one()
        twilio = note_recording(db, RECORDING, CALL, "twilio", status="done")  # not fetched
        gone = note_recording(db, other, CALL, "asterisk", status="done")
        gone.store, gone.store_key = "s3", f"{PREFIX}/2026/11/30/{other}.wav"  # not there
        for r in (twilio, gone):
            r.case_id = case.id
        db.commit()
    page = signed_in(served, "li").get(f"{served}/console/cases/{number}").text
    states = re.findall(r'data-state="(\w+)">([^<]+)<', page)
    assert sorted(states) == sorted(
        [
            ("uploading", "录音正在转存到录音存储，暂不能播放，请稍后再试"),
            ("pending", "录音尚未就绪"),
            ("missing", "录音存储中找不到该录音，请联系管理员"),
        ]
    ), states
    assert "/audio" not in page


def test_the_twilio_fetch_job_writes_to_the_store_and_is_retried_when_it_fails(app, s3) -> None:  # type: ignore[no-untyped-def]
    from calls.recordings import StoreError, fetch_twilio_recording, note_recording

    media = f"{app.extensions['hotline_settings'].twilio_api_base_url}/Recordings/{RECORDING}"
    with app.extensions["hotline"].desk.sessions() as db:
        note_recording(
            db,
            RECORDING,
            "CA" + "7" * 32,
            "twilio",
            media_url=media,
            status="done",
            at=datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
        )
        db.commit()
    local = recordings_dir(app) / f"{RECORDING}.wav"

    s3.stop()
    try:
        with pytest.raises(StoreError):  # RQ retries the job (web/twilio/hooks.py)
            fetch_twilio_recording(RECORDING)
    finally:
        s3.start()
    assert local.read_bytes() == wav_bytes(4)  # fetched, and kept until it is stored

    assert fetch_twilio_recording(RECORDING) == "stored"
    key = f"{PREFIX}/2026/12/01/{RECORDING}.wav"
    assert s3.objects() == {key: wav_bytes(4)}
    assert not local.exists()
    with app.extensions["hotline"].desk.sessions() as db:
        stored = db.scalars(select(CallRecording)).one()
        assert (stored.store, stored.store_key, stored.duration_s) == ("s3", key, 4)
    assert fetch_twilio_recording(RECORDING) == "kept"


def test_retention_deletes_from_the_store_and_waits_for_it_when_it_is_away(app, s3) -> None:  # type: ignore[no-untyped-def]
    from calls.recordings import upkeep

    old, young = "1764600002.44", "1764600003.45"
    now = datetime.now(UTC)
    _, old_id = a_case_with_a_finished_recording(app, old, now - timedelta(days=10))
    a_case_with_a_finished_recording(app, young, now - timedelta(days=3))
    assert upkeep()["uploaded"] == 2
    with app.extensions["hotline"].desk.sessions() as db:  # time passes for the first
        db.get(CallRecording, old_id).started_at = now - timedelta(days=200)  # type: ignore[union-attr]
        db.commit()
    old_key = row(app, old_id).store_key
    assert old_key is not None and len(s3.objects()) == 2

    s3.stop()
    try:
        assert upkeep()["deleted"] == 0  # the row keeps its key for the next run
    finally:
        s3.start()
    assert row(app, old_id).status == "done" and old_key in s3.objects()

    assert upkeep()["deleted"] == 1
    assert old_key not in s3.objects() and len(s3.objects()) == 1
    gone = row(app, old_id)
    assert (gone.status, gone.store, gone.store_key) == ("deleted", None, None)
    with app.extensions["hotline"].desk.sessions() as db:
        audit = db.execute(
            select(ActionLog.actor, ActionLog.target).where(ActionLog.action == "recording-deleted")
        ).all()
    assert [tuple(a) for a in audit] == [("system", old)]


def test_migration_0023_marks_earlier_recordings_as_files_here(empty_db_url: str) -> None:
    from alembic import command

    from cases.db import alembic_config, engine_for, upgrade

    command.upgrade(alembic_config(empty_db_url), "0022")
    engine = engine_for(empty_db_url)
    with engine.begin() as db:
        for sid, name, status in (("a.1", "a.1.wav", "done"), ("b.2", None, "recording")):
            db.execute(
                text(
                    "INSERT INTO call_recording (sid, call_id, provider, file_name, status,"
                    " started_at) VALUES (:sid, :sid, 'asterisk', :name, :status, :at)"
                ),
                {"sid": sid, "name": name, "status": status, "at": datetime.now(UTC)},
            )
    upgrade(empty_db_url)
    with engine.connect() as db:
        rows = db.execute(
            text("SELECT sid, store, store_key FROM call_recording ORDER BY sid")
        ).all()
    assert [tuple(r) for r in rows] == [("a.1", "dir", "a.1.wav"), ("b.2", None, None)]
    command.downgrade(alembic_config(empty_db_url), "0022")
    with engine.connect() as db:
        assert db.execute(text("SELECT count(*) FROM call_recording")).scalar() == 2
    engine.dispose()


@pytest.mark.slow
def test_a_real_mixmonitor_file_goes_to_the_store_once_the_call_is_over(  # type: ignore[no-untyped-def]
    make_rig, case_db, s3
) -> None:
    """On a real Asterisk 22: MixMonitor writes the conversation's file; once the call is
    over and the file finished, the upload takes exactly its bytes and removes it."""
    from rq import Queue

    from calls import RQ_QUEUE, CallerDirectory, CallHandler
    from calls.desk import Actor, Desk
    from calls.recordings import DirectoryStore, S3Settings, Stores, link_recordings, wav_seconds
    from cases.db import engine_for, session_factory
    from cases.models import CallRecord
    from tests.conftest import wait_until as eventually
    from tests.test_recordings_asterisk import talking_citizen

    rig = make_rig(services=("agi", "reaper", "worker"))
    recordings = rig.workdir / "var" / "recordings"
    sessions = session_factory(engine_for(case_db))
    handler = CallHandler(
        rig.queue, Queue(RQ_QUEUE, connection=rig.redis), CallerDirectory(sessions)
    )
    rig.seat("1001", login=False, ring_ms=1000, talk_ms=4000)
    Desk(handler, sessions).login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    rig.seats.append("1001")
    talking_citizen(rig, "13800138556")

    def over() -> str | None:
        with sessions() as db:
            ended = db.scalar(select(CallRecord).where(CallRecord.ended_at.is_not(None)))
            return ended.call_id if ended is not None else None

    call_id = str(eventually(over, timeout_s=120, what="a recorded call that is over"))
    file = recordings / f"{call_id}.wav"
    eventually(lambda: wav_seconds(file), timeout_s=60, what="MixMonitor's finished file")
    audio = file.read_bytes()
    s3_settings = S3Settings.from_env(s3_env(s3))
    assert s3_settings is not None
    stores = Stores(DirectoryStore(recordings), s3_settings.store())
    with sessions() as db:
        link_recordings(db, recordings)
        assert stores.upload_pending(db) == 1
        recording = db.scalars(select(CallRecording).where(CallRecording.call_id == call_id)).one()
        assert recording.store == "s3" and recording.store_key is not None
        key = recording.store_key
    assert s3.objects() == {key: audio} and not file.exists()
    assert key.startswith(f"{PREFIX}/") and key.endswith(f"/{call_id}.wav")
