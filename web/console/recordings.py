"""Recordings on the screens (calls.recordings): the operator's 暂停录音 / 恢复录音 beside
the call controls, while the citizen reads out an ID card or a bank account; and a
recording's audio for supervisors, admins and quality staff on the case page, every
playback audited (calls.desk). The audio answers range requests (the player seeks) and
is never cached. From an S3 store it is streamed through this app, range by range,
rather than by a presigned link: a link outlives the check of who asked and can be
passed on unaudited, and the bucket stays private."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Response, abort, current_app, render_template, request, send_file
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from calls.desk import PLAYBACK_ROLES, DeskError
from calls.recordings import (
    DirectoryStore,
    Recorder,
    Recorders,
    RecordingStore,
    StoreError,
    Stores,
    TwilioRecorder,
    key_of,
    live_recording,
)
from cases.models import ROLES, ActionLog, CallRecording, User
from web.auth import desk_actor, language, roles_required
from web.console.routes import OPERATORS, SUPERVISORS, bp, my_seat, sessions
from web.context import services
from web.i18n import translate

PLAYBACK_AUDIT_S = 1800  # ranges asked within this of an audited playback are its seeking


PLAYBACK_AUDIT_LINES = 200  # the newest shown on the case page


@dataclass(frozen=True)
class PlaybackLine:
    """One audited playback (or download: the same request) of a case's recording, or
    an attempt refused, for the case page: who by name and role, which, when."""

    at: datetime
    name: str
    role: str
    recording: CallRecording
    refused: bool


def playback_audit(db: Session, recordings: list[CallRecording]) -> list[PlaybackLine]:
    """Who played which of these recordings when, from the action log (calls.desk
    audits each playback by the recording's sid, each refusal by its id), oldest first."""
    by_sid = {r.sid: r for r in recordings}
    by_id = {str(r.id): r for r in recordings}
    if not recordings:
        return []
    rows = db.execute(
        select(ActionLog, User.display_name, User.role)
        .outerjoin(User, User.username == ActionLog.actor)
        .where(
            or_(
                and_(ActionLog.action == "recording-play", ActionLog.target.in_(by_sid)),
                and_(ActionLog.action == "recording-play-refused", ActionLog.target.in_(by_id)),
            )
        )
        .order_by(ActionLog.at.desc(), ActionLog.id.desc())
        .limit(PLAYBACK_AUDIT_LINES)
    ).all()
    lines = [
        PlaybackLine(
            at=entry.at,
            name=name or entry.actor,
            role=role or "",
            recording=by_sid.get(entry.target) or by_id[entry.target],
            refused=entry.action == "recording-play-refused",
        )
        for entry, name, role in rows
    ]
    return lines[::-1]


def recorders_from_settings(settings: Any, handler: Any) -> Recorders:
    """AMI's MixMonitorMute when ASTERISK_AMI_HOST is set; Twilio's REST API when its
    account is."""
    found: list[Recorder] = []
    if settings.ami_host and settings.ami_secret:
        from agi_scripts.ami import AmiConnection
        from agi_scripts.recording import AsteriskRecorder

        ami = AmiConnection(
            settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret
        )
        found.append(AsteriskRecorder(handler, ami))
    if settings.twilio_account_sid and settings.twilio_auth_token:
        from twilio.rest import Client

        client = Client(settings.twilio_account_sid, settings.twilio_auth_token)
        if settings.twilio_api_base_url:
            client.api.base_url = settings.twilio_api_base_url.rstrip("/")
        found.append(TwilioRecorder(client))
    return Recorders(tuple(found))


def recorders() -> Recorders:
    """Built once per app; tests may put their own in app.extensions["hotline_recorders"]."""
    ext = current_app.extensions
    if "hotline_recorders" not in ext:
        settings = ext.get("hotline_settings")
        ext["hotline_recorders"] = (
            recorders_from_settings(settings, services().handler)
            if settings is not None
            else Recorders()
        )
    return ext["hotline_recorders"]  # type: ignore[no-any-return]


def recordings_dir() -> Path:
    settings = current_app.extensions.get("hotline_settings")
    if settings is None:
        abort(404)
    return Path(settings.recordings_dir or settings.var_dir / "recordings")


def recording_stores() -> Stores:
    """The directory and the S3 store (HOTLINE_RECORDINGS_S3_* and the AWS SDK's own
    variables, as the workers read them), built once per app."""
    ext = current_app.extensions
    if "hotline_recording_stores" not in ext:
        ext["hotline_recording_stores"] = Stores.from_env(recordings_dir(), patient=False)
    return ext["hotline_recording_stores"]  # type: ignore[no-any-return]


def availability(recordings: list[CallRecording]) -> dict[int, str]:
    """Each recording's state for the case page: ready to play; pending (no audio yet,
    the call may still be going on); uploading (kept on the telephony's side until it
    is in the store); unreachable (the store did not answer); missing."""
    stores = recording_stores()
    states: dict[int, str] = {}
    away: set[str] = set()  # stores that failed once: not asked again for this page
    for recording in recordings:
        store = stores.of(recording)
        if not key_of(recording):
            states[recording.id] = "pending"
        elif store is None or store.kind in away:
            states[recording.id] = "unreachable"  # or in S3, and no S3 configured here
        else:
            try:
                found = store.size(key_of(recording)) is not None
            except StoreError as exc:
                current_app.logger.warning("recording store: %s", exc)
                states[recording.id] = "unreachable"
                away.add(store.kind)
                continue
            if found:
                states[recording.id] = "ready"
            else:
                states[recording.id] = "missing" if recording.store == "s3" else "uploading"
    return states


def controls(call: str | None, error: str | None = None) -> Any:
    recording = None
    if call:
        with sessions()() as db:
            recording = live_recording(db, call)
            state = recording.status if recording is not None else None
    return render_template(
        "_recording_controls.html",
        call=call if recording is not None else None,
        paused=recording is not None and state == "paused",
        error=error,
    )


@bp.get("/recording-controls")
@roles_required(*OPERATORS)
def recording_controls() -> Any:
    """Redrawn on every seat event: the button while the seat's call is recorded."""
    seats = services().desk.seats_of(desk_actor().username)
    seat = my_seat() or (seats[0] if seats else None)
    record = services().queue.seat(seat) if seat else {}
    call = record.get("call") if record.get("state") == "on_call" else None
    return controls(call or None)


@bp.post("/calls/<call>/recording")
@roles_required(*OPERATORS, *SUPERVISORS)
def pause_recording(call: str) -> Any:
    paused = request.form.get("action") == "pause"
    try:
        services().desk.pause_recording(desk_actor(), call, paused, recorders())
    except DeskError as exc:
        shown = None if exc.status in (400, 403, 404) else call
        return controls(shown, error=exc.words(language())), 409 if exc.status >= 500 else (
            exc.status
        )
    return controls(call)


@bp.get("/recordings/<int:recording_id>/audio")
@roles_required(*ROLES)  # every signed-in role, so that each refusal below is logged
def recording_audio(recording_id: int) -> Any:
    """The audio, to supervisors, admins and quality staff only (anyone else signed in
    is refused, and the refusal is logged). Each playback is audited once: the player's first
    request (no range, or from the first byte), not every range it seeks to."""
    actor = desk_actor()
    if actor.role not in PLAYBACK_ROLES:
        services().desk.record(actor, "recording-play-refused", str(recording_id))
        abort(403)
    first = request.range is None or any(start == 0 for start, _ in request.range.ranges)
    # A player that never asks from byte 0 (bytes=1- is all the audio) is a playback
    # too: the first request by this person for this recording in a while is audited.
    queue = services().queue
    mark = queue.keys.played(actor.username, recording_id)
    marked = bool(queue.redis.set(mark, 1, nx=True, ex=PLAYBACK_AUDIT_S))
    try:
        recording = services().desk.recording_to_play(actor, recording_id, playback=False)
        response = _audio(recording)
    except (DeskError, HTTPException) as exc:
        if marked:  # nothing was played: the next request is still the first
            queue.redis.delete(mark)
        if isinstance(exc, DeskError):
            abort(exc.status)
        raise
    # Audited once the audio is served: a 503 (store away) or 416 was heard by nobody.
    if response.status_code not in (200, 206):
        if marked:
            queue.redis.delete(mark)
    elif marked or first:
        services().desk.record(actor, "recording-play", recording.sid, f"call {recording.call_id}")
    response.headers["Cache-Control"] = "no-store, private"
    return response


def _audio(recording: CallRecording) -> Response:
    """The recording's audio from its store (the whole, or the range asked for)."""
    store = recording_stores().of(recording)
    key = key_of(recording)
    if isinstance(store, DirectoryStore):
        path = store.path(key)
        if path is None:
            abort(404)  # not fetched yet (Twilio), or on its way to the store
        response = send_file(
            path,
            mimetype="audio/wav",
            conditional=True,
            download_name=f"{recording.call_id}.wav",
            max_age=None,
        )
    elif store is not None:
        response = _streamed(store, key, f"{recording.call_id}.wav")
    else:
        abort(404)  # no audio yet, or deleted by the retention job
    return response


def _streamed(store: RecordingStore, key: str, download_name: str) -> Response:
    """The stored audio, whole or the one range the player asks for (seeking)."""
    try:
        size = store.size(key)
        if size is None:
            abort(404)
        start, stop, status = 0, size, 200
        if request.range is not None:
            wanted = request.range.range_for_length(size)
            if wanted is None:
                answer = Response(status=416)
                answer.headers["Content-Range"] = f"bytes */{size}"
                return answer
            start, stop, status = wanted[0], wanted[1], 206
        chunks = store.read(key, start, stop)
        first = next(chunks, b"")  # the store's failure here is a page, not a cut stream
    except StoreError as exc:
        current_app.logger.warning("recording store: %s", exc)
        return _store_unreachable()
    answer = Response(_then(first, chunks), status=status, mimetype="audio/wav")
    answer.headers["Accept-Ranges"] = "bytes"
    answer.headers["Content-Length"] = str(stop - start)
    answer.headers["Content-Disposition"] = f'inline; filename="{download_name}"'
    if status == 206:
        answer.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return answer


def _then(first: bytes, rest: Any) -> Any:
    yield first
    yield from rest


def _store_unreachable() -> Response:
    lang = language()
    html = render_template(
        "error.html",
        code=503,
        title=translate("cs_recording_unreachable", lang),
        text=translate("cs_recording_try_later", lang),
        detail="",
    )
    return Response(html, status=503, mimetype="text/html")
