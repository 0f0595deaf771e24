"""Conversations' recordings: where they are, what they belong to, and how long they stay.

Every inbound conversation and every return visit is recorded after the greeting's
notice (全程录音, ivr/prompts.py):

- Asterisk: the bridge's AGI starts MixMonitor on the caller's channel before it dials
  the seat (agi_scripts/sessions.py), writing ``<call id>.wav`` under the recordings
  directory (HOTLINE_RECORDINGS_DIR, default var/recordings/), audio only while the
  caller is bridged to a person; a job then notes it here (``recording_started``).
- Twilio: the seat's <Dial> records from the answer, both sides (web/twilio/twiml.py);
  its status callback notes the recording's SID and URL, and a job fetches the media
  into the same directory (``fetch_twilio_recording``), never the webhook's thread.

Each recording is a ``CallRecording`` row linked to the call detail row by call id and
to the call's case once it exists (``link_recordings``). Where its audio is kept is a
``RecordingStore``: the directory itself, or an S3-compatible store (AWS S3, MinIO,
Ceph, OSS; HOTLINE_RECORDINGS_S3_BUCKET). MixMonitor can only write a local file, so
with S3 the upkeep job uploads each finished file, checks the stored copy's size and
MD5, and only then removes the local one; Twilio's fetch job does the same at once.
A store that does not answer leaves the file where it is, for the next run.

The operator pauses a recording while the citizen gives sensitive numbers (calls.desk:
``Desk.pause_recording``, through a ``Recorder``: AMI MixMonitorMute, or Twilio's
Recording update). Supervisors and quality staff (质检员) play it from the case page,
audited. The retention job deletes recordings older than
HOTLINE_RECORDING_RETENTION_DAYS (about six months), from the store too, audited.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import time
import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from calls.twilio_conferences import PauseCarry
from cases.models import CallRecord, CallRecording, Case
from cases.users import log_action
from queueing.keys import check_id

log = logging.getLogger("hotline.recordings")

DEFAULT_RETENTION_DAYS = 183
EXPIRE_BATCH = 500  # rows deleted per run; the next run takes the rest
TWILIO_API = "https://api.twilio.com"
UPKEEP_EVERY_S = 600.0  # how often the reaper asks for ``upkeep``
FINISH_WITHIN = timedelta(hours=1)  # a file still unreadable then is left as it is
UPLOAD_BATCH = 2000  # files looked at per upkeep run
UPLOAD_BUDGET_S = 120.0  # an upkeep run stops uploading after this (RQ's timeout: 180 s)
CHUNK = 1 << 16


class RecordingError(Exception):
    """The telephony could not pause or resume a recording."""


class Recorder(Protocol):
    """Pauses and resumes a live call's recording on its telephony."""

    def can_record(self, call_id: str, channel: str) -> bool: ...

    def set_paused(self, call_id: str, channel: str, sid: str, paused: bool) -> None: ...


class Recorders:
    """The recorders a process has (AMI, Twilio's REST API): the first that can."""

    def __init__(self, recorders: tuple[Recorder, ...] = ()) -> None:
        self.recorders = recorders

    def _for(self, call_id: str, channel: str) -> Recorder | None:
        return next((r for r in self.recorders if r.can_record(call_id, channel)), None)

    def can_record(self, call_id: str, channel: str) -> bool:
        return self._for(call_id, channel) is not None

    def set_paused(self, call_id: str, channel: str, sid: str, paused: bool) -> None:
        recorder = self._for(call_id, channel)
        if recorder is None:
            raise RecordingError(f"no recorder for a {channel} call")
        recorder.set_paused(call_id, channel, sid, paused)


class TwilioRecorder:
    """Twilio's Recording resource of the caller's call, or of its conference once the
    call moved into one (calls.twilio_conferences): status paused or in-progress."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def can_record(self, call_id: str, channel: str) -> bool:
        return channel == "twilio"

    def set_paused(self, call_id: str, channel: str, sid: str, paused: bool) -> None:
        from twilio.base.exceptions import TwilioException

        fields: dict[str, str] = {"status": "paused" if paused else "in-progress"}
        if paused:
            fields["pause_behavior"] = "skip"  # no silence where the numbers were
        try:
            self.client.calls(call_id).recordings(sid).update(**fields)
        except TwilioException as exc:
            if getattr(exc, "status", None) != 404:
                raise RecordingError(str(exc)) from None
            # Not the call's own: the call moved into its conference, which records it.
            from calls.twilio_conferences import conference_recording

            try:
                conference_recording(self.client, call_id, sid).update(**fields)
            except (TwilioException, LookupError) as again:
                raise RecordingError(str(again)) from None


def file_name_for(call_id: str) -> str:
    """The recording's file under the recordings directory: the call id names it."""
    return check_id("call", call_id) + ".wav"


def path_of(directory: Path, recording: CallRecording) -> Path | None:
    """The recording's local file, if it is one of the directory's own and is there."""
    return DirectoryStore(directory).path(recording.file_name) if recording.file_name else None


def wav_seconds(path: Path) -> int | None:
    """The audio's length from the WAV header (None: not a readable WAV)."""
    try:
        with wave.open(str(path), "rb") as audio:
            return round(audio.getnframes() / audio.getframerate())
    except (OSError, EOFError, wave.Error):
        return None


# -- where the audio is kept --------------------------------------------------------------


class StoreError(Exception):
    """The recording store did not answer, or did not keep what it was given."""


class RecordingStore(Protocol):
    """Where recordings' audio is kept, by key. ``kind`` is CallRecording.store's value."""

    kind: str

    def put(self, key: str, source: Path) -> None:
        """Keep the file under ``key`` and check the kept copy (StoreError if not)."""
        ...

    def size(self, key: str) -> int | None:
        """The audio's length in bytes; None when there is none under ``key``."""
        ...

    def read(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        """Bytes ``start`` up to ``stop`` (exclusive), in chunks."""
        ...

    def delete(self, key: str) -> None:
        """Gone for good; a key that is not there is not an error."""
        ...


class DirectoryStore:
    """Files in the recordings directory (HOTLINE_RECORDINGS_DIR); the key is the name."""

    kind = "dir"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, key: str) -> Path | None:
        """The key's file, if it is one of the directory's own and is there."""
        path = (self.directory / key).resolve()
        if path.parent != self.directory.resolve() or not path.is_file():
            return None
        return path

    def put(self, key: str, source: Path) -> None:
        target = self.directory / key
        if source.resolve() == target.resolve():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def size(self, key: str) -> int | None:
        path = self.path(key)
        return path.stat().st_size if path is not None else None

    def read(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        path = self.path(key)
        if path is None:
            raise StoreError(f"{key} is not in {self.directory}")
        with open(path, "rb") as audio:
            audio.seek(start)
            left = stop - start
            while left > 0 and (chunk := audio.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk

    def delete(self, key: str) -> None:
        path = self.path(key)
        if path is not None:
            path.unlink(missing_ok=True)


class S3Store:
    """A bucket of an S3-compatible store (AWS S3, MinIO, Ceph RGW, Aliyun OSS), keys
    under ``prefix``. Objects are private: playback streams them through the web app,
    which checks who asks and audits it; no public or presigned link is handed out."""

    kind = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def key_for(self, recording: CallRecording) -> str:
        """By day (a lifecycle rule or a backup can take whole days), then the file."""
        day = _aware(recording.started_at).strftime("%Y/%m/%d")
        return f"{self.prefix}{day}/{recording.file_name or recording.sid + '.wav'}"

    def put(self, key: str, source: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        digest, length = _md5_of(source)
        try:
            with open(source, "rb") as body:
                # The store refuses a body whose MD5 differs from this (a torn upload).
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType="audio/wav",
                    ContentMD5=base64.b64encode(digest).decode(),
                )
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"upload of {key} to {self.bucket} failed: {exc}") from None
        etag = str(head.get("ETag", "")).strip('"')
        if head.get("ContentLength") != length:
            raise StoreError(f"{key}: stored {head.get('ContentLength')} bytes of {length}")
        # A single PUT's ETag is the body's MD5, unless the store encrypts with KMS.
        if len(etag) == 32 and "-" not in etag and etag != digest.hex():
            raise StoreError(f"{key}: stored ETag {etag} is not the file's MD5")

    def size(self, key: str) -> int | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StoreError(f"{key}: {exc}") from None
        except BotoCoreError as exc:
            raise StoreError(f"{key}: {exc}") from None
        return int(head["ContentLength"])

    def read(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{stop - 1}"
            )
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"{key}: {exc}") from None
        body = answer["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"delete of {key} failed: {exc}") from None


def key_of(recording: CallRecording) -> str:
    """The audio's key in its store (a row written before stores: its file name)."""
    return recording.store_key or recording.file_name or ""


def _md5_of(path: Path) -> tuple[bytes, int]:
    digest, length = hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as audio:
        while chunk := audio.read(1 << 20):
            digest.update(chunk)
            length += len(chunk)
    return digest.digest(), length


@dataclass(frozen=True)
class S3Settings:
    """HOTLINE_RECORDINGS_S3_*; the credentials and region are the AWS SDK's own
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), from the deployment's
    secrets; without a key the SDK looks further (an instance role, ~/.aws)."""

    bucket: str
    endpoint: str | None = None  # MinIO, Ceph, OSS: its URL; None: AWS itself
    prefix: str = ""
    region: str | None = None
    addressing_style: str = "auto"  # "virtual" for OSS, "path" for most MinIO setups
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings | None:
        bucket = env.get("HOTLINE_RECORDINGS_S3_BUCKET", "").strip()
        if not bucket:
            return None
        prefix = env.get("HOTLINE_RECORDINGS_S3_PREFIX", "").strip().strip("/")
        style = env.get("HOTLINE_RECORDINGS_S3_ADDRESSING", "").strip() or "auto"
        if style not in ("auto", "path", "virtual"):
            raise ValueError("HOTLINE_RECORDINGS_S3_ADDRESSING is auto, path or virtual")
        return cls(
            bucket=bucket,
            endpoint=env.get("HOTLINE_RECORDINGS_S3_ENDPOINT", "").strip() or None,
            prefix=prefix + "/" if prefix else "",
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            addressing_style=style,
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        )

    def store(self, patient: bool = True) -> S3Store:
        """A client for jobs (``patient``: retried, long timeouts), or for pages, which
        would rather say at once that the store is away than keep a person waiting."""
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=5 if patient else 2,
            read_timeout=30 if patient else 10,
            retries={"max_attempts": 3 if patient else 1, "mode": "standard"},
            s3={"addressing_style": self.addressing_style},
        )
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=config,
        )
        return S3Store(client, self.bucket, self.prefix)


class Stores:
    """The recordings directory, and the S3 store when one is configured: a recording
    is read from whichever its row names, and finished files move to the S3 store."""

    def __init__(self, directory: DirectoryStore, remote: S3Store | None = None) -> None:
        self.directory = directory
        self.remote = remote

    @classmethod
    def from_env(
        cls, directory: Path, env: Mapping[str, str] | None = None, patient: bool = True
    ) -> Stores:
        s3 = S3Settings.from_env(os.environ if env is None else env)
        return cls(DirectoryStore(directory), s3.store(patient) if s3 is not None else None)

    def of(self, recording: CallRecording) -> RecordingStore | None:
        """The store the recording's audio is in (under ``key_of``); None: none yet, or
        not reachable from here (kept in S3 while this process has no S3 settings)."""
        if recording.store == "dir" or (recording.store is None and recording.file_name):
            return self.directory
        if recording.store == "s3":
            return self.remote
        return None

    def move_to_remote(self, session: Session, recording: CallRecording) -> bool:
        """Upload a finished local file to the S3 store, and remove the local copy only
        once the stored one is checked and the row says so. False: nothing to move."""
        remote = self.remote
        if remote is None or recording.store != "dir" or not recording.store_key:
            return False
        path = self.directory.path(recording.store_key)
        if path is None:
            return False
        key = remote.key_for(recording)
        remote.put(key, path)  # StoreError: the file stays, and the row says "dir"
        recording.store, recording.store_key, recording.file_name = "s3", key, None
        session.commit()
        path.unlink(missing_ok=True)
        log.info("recording %s stored as %s", recording.sid, key)
        return True

    def upload_pending(self, session: Session, budget_s: float = UPLOAD_BUDGET_S) -> int:
        """Move finished recordings still in the directory to the S3 store, oldest
        first, until the time is up or the store fails (the next run tries again)."""
        if self.remote is None:
            return 0
        deadline = time.monotonic() + budget_s
        pending = session.scalars(
            select(CallRecording)
            .where(CallRecording.store == "dir", CallRecording.status == "done")
            .order_by(CallRecording.started_at)
            .limit(UPLOAD_BATCH)
        ).all()
        moved = 0
        for recording in pending:
            if time.monotonic() > deadline:
                break
            if self.directory.path(recording.store_key or "") is None:
                if self.directory.directory.is_dir():  # not a mount missing: the file is
                    log.error("recording %s: %s is missing", recording.sid, recording.store_key)
                    recording.store = recording.store_key = None
                    session.commit()
                continue
            try:
                moved += self.move_to_remote(session, recording)
            except StoreError as exc:
                log.warning("recordings: upload held back, the store failed: %s", exc)
                break
        return moved


def note_recording(
    session: Session,
    sid: str,
    call_id: str,
    provider: str,
    *,
    file_name: str | None = None,
    media_url: str | None = None,
    status: str = "recording",
    duration_s: int | None = None,
    at: datetime | None = None,
    case_number: str | None = None,
) -> CallRecording:
    """The call's recording, made once (a retried job or callback changes only what it
    knows better: the media's URL, the status, the length). Its case is the call's, or
    ``case_number``'s (a return visit's call belongs to the case it asks about)."""
    existing = session.scalar(select(CallRecording).where(CallRecording.sid == sid))
    if existing is None:
        by = Case.number == case_number if case_number else Case.call_id == call_id
        case_id = session.scalar(select(Case.id).where(by))
        existing = CallRecording(
            sid=sid,
            call_id=call_id,
            case_id=case_id,
            provider=provider,
            file_name=file_name,
            store="dir" if file_name else None,
            store_key=file_name,
            status=status,
            started_at=at or datetime.now(UTC),
        )
        session.add(existing)
        try:
            session.flush()
        except IntegrityError:  # a concurrent callback made it first
            session.rollback()
            existing = session.scalars(select(CallRecording).where(CallRecording.sid == sid)).one()
    if existing.status == "deleted":
        return existing
    if media_url:
        existing.media_url = media_url
    if duration_s is not None:
        existing.duration_s = duration_s
    if status != "recording" or existing.status not in ("paused", "done"):
        existing.status = status
    return existing


def note_twilio_recording(
    session: Session,
    conferences: PauseCarry,
    call_id: str,
    sid: str,
    state: str,
    *,
    media_url: str | None,
    duration_s: int | None,
    conference_sid: str = "",
    case_number: str | None = None,
) -> None:
    """Twilio's recording status callback (of a seat's <Dial record>, a conference's
    recording, a dialer's call), noted against the call. A pause goes on across a move
    into the call's conference (``conferences``):
    a conference recording that starts while another of the call's is paused, or after
    one ended paused, is paused as it starts."""
    status = {"in-progress": "recording", "completed": "done", "absent": "done"}[state]
    was = session.scalar(select(CallRecording.status).where(CallRecording.sid == sid))
    recording = note_recording(
        session,
        sid,
        call_id,
        "twilio",
        media_url=media_url,
        status=status,
        duration_s=duration_s,
        case_number=case_number,
    )
    others = select(CallRecording.id).where(
        CallRecording.call_id == call_id, CallRecording.sid != sid
    )
    if state == "in-progress" and conference_sid and was is None:
        paused = session.scalar(others.where(CallRecording.status == "paused"))
        if conferences.starts_paused(call_id, paused is not None) and conferences.pause(
            conference_sid, sid
        ):
            recording.status = "paused"
    # Ended paused with no recording after it yet: the next one starts paused.
    carries = status == "done" and was == "paused"
    if carries:
        carries = not session.scalar(
            others.where(CallRecording.status.in_(("recording", "paused")))
        )
    session.commit()
    if carries:
        conferences.ended_paused(call_id)


def live_recording(session: Session, call_id: str) -> CallRecording | None:
    """The call's recording that is going on (or paused) now."""
    return session.scalar(
        select(CallRecording)
        .where(
            CallRecording.call_id == call_id,
            CallRecording.status.in_(("recording", "paused")),
        )
        .order_by(CallRecording.id.desc())
        .limit(1)
    )


def recordings_of_case(session: Session, case: Case) -> list[CallRecording]:
    """The case's recordings (its own call's, linked or not yet), oldest first."""
    linked = CallRecording.case_id == case.id
    where = linked | (CallRecording.call_id == case.call_id) if case.call_id else linked
    return list(
        session.scalars(
            select(CallRecording)
            .where(where, CallRecording.status != "deleted")
            .order_by(CallRecording.started_at, CallRecording.id)
        )
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite keeps no offset


def link_recordings(session: Session, directory: Path | None = None) -> int:
    """Give recordings their case once it exists, and an Asterisk recording of a call
    that ended its final length from the file. Returns how many rows changed."""
    changed = 0
    unlinked = session.execute(
        select(CallRecording, Case.id)
        .join(Case, Case.call_id == CallRecording.call_id)
        .where(CallRecording.case_id.is_(None))
    ).all()
    for recording, case_id in unlinked:
        recording.case_id = case_id
        changed += 1
    if directory is not None:
        ended = session.execute(
            select(CallRecording, CallRecord.ended_at)
            .join(CallRecord, CallRecord.call_id == CallRecording.call_id)
            .where(
                CallRecording.provider == "asterisk",
                CallRecording.status.in_(("recording", "paused")),
                CallRecord.ended_at.is_not(None),
            )
        ).all()
        give_up = datetime.now(UTC) - FINISH_WITHIN
        for recording, ended_at in ended:
            path = path_of(directory, recording)
            seconds = wav_seconds(path) if path else None
            # MixMonitor writes the WAV header when the channel goes: wait for it a while.
            if seconds is None and ended_at is not None and _aware(ended_at) > give_up:
                continue
            recording.duration_s = seconds
            recording.status = "done"
            changed += 1
    session.commit()
    return changed


def expire_recordings(
    session: Session,
    directory: Path,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    now: datetime | None = None,
    twilio_client: Any = None,
    stores: Stores | None = None,
) -> int:
    """Delete recordings started more than ``retention_days`` ago: the file, the S3
    store's object, Twilio's copy when there is one, and the row's link to media; each
    deletion is audited. A store that fails keeps the rest for the next run."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    old = session.scalars(
        select(CallRecording)
        .where(CallRecording.started_at < cutoff, CallRecording.status != "deleted")
        .order_by(CallRecording.started_at)
        .limit(EXPIRE_BATCH)
    ).all()
    deleted = 0
    for recording in old:
        if recording.store == "s3" and recording.store_key:
            if stores is None or stores.remote is None:
                log.error("recording %s is in S3, and S3 is not configured here", recording.sid)
                break
            try:
                stores.remote.delete(recording.store_key)
            except StoreError as exc:
                log.warning("recordings: retention held back, the store failed: %s", exc)
                break
        path = path_of(directory, recording)
        if path is not None:
            path.unlink(missing_ok=True)
        if recording.provider == "twilio" and twilio_client is not None:
            _delete_at_twilio(twilio_client, recording.sid)
        recording.status, recording.deleted_at = "deleted", now or datetime.now(UTC)
        recording.file_name = recording.media_url = None
        recording.store = recording.store_key = None
        log_action(
            session,
            "system",
            "recording-deleted",
            recording.sid,
            f"call {recording.call_id}, retention {retention_days} days",
        )
        session.commit()  # one by one: a file deleted is a row marked
        deleted += 1
    return deleted


def _delete_at_twilio(client: Any, sid: str) -> None:
    from twilio.base.exceptions import TwilioException

    try:
        client.recordings(sid).delete()
    except TwilioException as exc:  # gone already, or Twilio away: our copy is gone
        log.warning("could not delete Twilio recording %s: %s", sid, exc)


# -- RQ jobs (the worker's environment: DATABASE_URL, HOTLINE_RECORDINGS_DIR, ...) ------


@dataclass(frozen=True)
class RecordingEnv:
    """What the jobs need, from the worker's environment (the names hotline.config
    documents: HOTLINE_RECORDINGS_DIR, HOTLINE_RECORDING_RETENTION_DAYS, Twilio's)."""

    database_url: str
    directory: Path
    retention_days: int = DEFAULT_RETENTION_DAYS
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_api_base_url: str | None = None
    s3: S3Settings | None = None  # HOTLINE_RECORDINGS_S3_BUCKET and the rest

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RecordingEnv:
        from cases.db import database_url_from_env

        env = os.environ if env is None else env
        var_dir = Path(env.get("HOTLINE_VAR_DIR", "var"))
        raw_days = env.get("HOTLINE_RECORDING_RETENTION_DAYS", "")
        days = int(raw_days) if raw_days.isdigit() and int(raw_days) > 0 else 0
        return cls(
            database_url=database_url_from_env(env),
            directory=Path(env.get("HOTLINE_RECORDINGS_DIR") or var_dir / "recordings").resolve(),
            retention_days=days or DEFAULT_RETENTION_DAYS,
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
            twilio_api_base_url=env.get("TWILIO_API_BASE_URL") or None,
            s3=S3Settings.from_env(env),
        )

    def stores(self) -> Stores:
        return Stores(DirectoryStore(self.directory), self.s3.store() if self.s3 else None)

    def twilio_client(self) -> Any:
        if not (self.twilio_account_sid and self.twilio_auth_token):
            return None
        from twilio.rest import Client

        client = Client(self.twilio_account_sid, self.twilio_auth_token)
        if self.twilio_api_base_url:
            client.api.base_url = self.twilio_api_base_url.rstrip("/")
        return client


def _job_context() -> tuple[RecordingEnv, Any]:
    from cases.db import engine_for, session_factory

    env = RecordingEnv.from_env()
    return env, session_factory(engine_for(env.database_url))


def recording_started(
    call_id: str,
    provider: str,
    sid: str,
    file_name: str | None,
    case_number: str | None = None,
) -> int:
    """Job: the telephony started recording the call (MixMonitor's file)."""
    _, sessions = _job_context()
    with sessions() as session:
        recording = note_recording(
            session, sid, call_id, provider, file_name=file_name, case_number=case_number
        )
        session.commit()
        return recording.id


def fetch_twilio_recording(sid: str) -> str:
    """Job: bring a finished Twilio recording's audio (WAV) into the recordings
    directory, then into the S3 store when there is one, so playback and retention treat
    it as any other recording. A store that fails fails the job, which RQ retries; the
    file waits in the directory meanwhile (and the upkeep job tries it too)."""
    import urllib.request

    settings, sessions = _job_context()
    directory = settings.directory
    stores = settings.stores()
    with sessions() as session:
        recording = session.scalar(select(CallRecording).where(CallRecording.sid == sid))
        if recording is None or recording.status == "deleted":
            return "nothing"
        if recording.store == "s3":
            return "kept"
        if path_of(directory, recording) is not None:
            return "stored" if stores.move_to_remote(session, recording) else "kept"
        if not recording.media_url:
            return "nothing"
        api = (settings.twilio_api_base_url or TWILIO_API).rstrip("/") + "/"
        if not recording.media_url.startswith(api):
            # Our Twilio credentials go with the request: to Twilio's API only.
            log.error("recording %s has media outside %s; not fetched", sid, api)
            return "refused"
        directory.mkdir(parents=True, exist_ok=True)
        name = check_id("call", sid) + ".wav"
        request = urllib.request.Request(recording.media_url + ".wav")
        if settings.twilio_account_sid and settings.twilio_auth_token:
            import base64

            pair = f"{settings.twilio_account_sid}:{settings.twilio_auth_token}".encode()
            # Unredirected: Twilio redirects the media to its storage, and urllib would
            # hand our account's credentials to whichever host the redirect names.
            request.add_unredirected_header(
                "Authorization", "Basic " + base64.b64encode(pair).decode()
            )
        partial = directory / (name + ".part")
        with urllib.request.urlopen(request, timeout=60) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 16):
                out.write(chunk)
        os.replace(partial, directory / name)
        recording.file_name = recording.store_key = name
        recording.store = "dir"
        recording.duration_s = recording.duration_s or wav_seconds(directory / name)
        session.commit()
        stores.move_to_remote(session, recording)
        return name


def upkeep() -> dict[str, int]:
    """Job (the reaper asks for it every few minutes): link recordings to their cases,
    move the finished ones to the S3 store (when there is one), then delete those past
    the retention period."""
    settings, sessions = _job_context()
    stores = settings.stores()
    with sessions() as session:
        linked = link_recordings(session, settings.directory)
        uploaded = stores.upload_pending(session)
        deleted = expire_recordings(
            session,
            settings.directory,
            settings.retention_days,
            twilio_client=settings.twilio_client(),
            stores=stores,
        )
    if deleted:
        log.info("recordings: %d deleted past %d days", deleted, settings.retention_days)
    return {"linked": linked, "uploaded": uploaded, "deleted": deleted}
