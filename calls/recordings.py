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
to the call's case once it exists (``link_recordings``). The operator pauses it while the
citizen gives sensitive numbers (calls.desk: ``Desk.pause_recording``, through a
``Recorder``: AMI MixMonitorMute, or Twilio's Recording update). Supervisors play it
from the case page, audited. The retention job deletes recordings older than
HOTLINE_RECORDING_RETENTION_DAYS (about six months), audited too.
"""

from __future__ import annotations

import logging
import os
import wave
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cases.models import CallRecord, CallRecording, Case
from cases.users import log_action
from queueing.keys import check_id

log = logging.getLogger("hotline.recordings")

DEFAULT_RETENTION_DAYS = 183
EXPIRE_BATCH = 500  # rows deleted per run; the next run takes the rest
TWILIO_API = "https://api.twilio.com"
UPKEEP_EVERY_S = 600.0  # how often the reaper asks for ``upkeep``
FINISH_WITHIN = timedelta(hours=1)  # a file still unreadable then is left as it is


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
    """Twilio's Recording resource of the caller's call: status paused or in-progress."""

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
            raise RecordingError(str(exc)) from None


def file_name_for(call_id: str) -> str:
    """The recording's file under the recordings directory: the call id names it."""
    return check_id("call", call_id) + ".wav"


def path_of(directory: Path, recording: CallRecording) -> Path | None:
    """The recording's file, if it is one of the directory's own and is there."""
    if not recording.file_name:
        return None
    path = (directory / recording.file_name).resolve()
    if path.parent != directory.resolve() or not path.is_file():
        return None
    return path


def wav_seconds(path: Path) -> int | None:
    """The audio's length from the WAV header (None: not a readable WAV)."""
    try:
        with wave.open(str(path), "rb") as audio:
            return round(audio.getnframes() / audio.getframerate())
    except (OSError, EOFError, wave.Error):
        return None


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
) -> int:
    """Delete recordings started more than ``retention_days`` ago: the file, Twilio's
    copy when there is one, and the row's link to media; each deletion is audited."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    old = session.scalars(
        select(CallRecording)
        .where(CallRecording.started_at < cutoff, CallRecording.status != "deleted")
        .order_by(CallRecording.started_at)
        .limit(EXPIRE_BATCH)
    ).all()
    for recording in old:
        path = path_of(directory, recording)
        if path is not None:
            path.unlink(missing_ok=True)
        if recording.provider == "twilio" and twilio_client is not None:
            _delete_at_twilio(twilio_client, recording.sid)
        recording.status, recording.deleted_at = "deleted", now or datetime.now(UTC)
        recording.file_name = recording.media_url = None
        log_action(
            session,
            "system",
            "recording-deleted",
            recording.sid,
            f"call {recording.call_id}, retention {retention_days} days",
        )
        session.commit()  # one by one: a file deleted is a row marked
    return len(old)


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
        )

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
    directory, so playback and retention treat it as any other file."""
    import urllib.request

    settings, sessions = _job_context()
    directory = settings.directory
    with sessions() as session:
        recording = session.scalar(select(CallRecording).where(CallRecording.sid == sid))
        if recording is None or recording.status == "deleted" or not recording.media_url:
            return "nothing"
        if path_of(directory, recording) is not None:
            return "kept"
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
        recording.file_name = name
        recording.duration_s = recording.duration_s or wav_seconds(directory / name)
        session.commit()
        return name


def upkeep() -> dict[str, int]:
    """Job (the reaper asks for it every few minutes): link recordings to their cases,
    then delete those past the retention period."""
    settings, sessions = _job_context()
    with sessions() as session:
        linked = link_recordings(session, settings.directory)
        deleted = expire_recordings(
            session,
            settings.directory,
            settings.retention_days,
            twilio_client=settings.twilio_client(),
        )
    if deleted:
        log.info("recordings: %d deleted past %d days", deleted, settings.retention_days)
    return {"linked": linked, "deleted": deleted}
