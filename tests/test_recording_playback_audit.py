"""A recording's playback is audited when its audio is served, once: not when the S3
store was away (503), the file was missing (404) or the range could not be served
(416), for nobody heard anything then. Over real HTTP, moto's S3 server for the store."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from cases.models import ActionLog
from tests.test_recording_store import (  # noqa: F401  (fixtures)
    CALL,
    S3Emulator,
    a_case_with_a_finished_recording,
    app,
    s3,
    served,
    signed_in,
    twilio_api,
)


def playbacks(app) -> list[str]:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].desk.sessions() as db:
        return list(db.scalars(select(ActionLog.actor).where(ActionLog.action == "recording-play")))


def test_a_playback_is_audited_once_when_its_audio_is_served_not_when_it_failed(  # type: ignore[no-untyped-def]
    app, served: str, s3: S3Emulator
) -> None:
    from calls.recordings import upkeep

    started = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    _, recording_id = a_case_with_a_finished_recording(app, CALL, started)
    assert upkeep()["uploaded"] == 1
    url = f"{served}/console/recordings/{recording_id}/audio"
    zhou = signed_in(served, "zhou")
    s3.stop()
    try:
        for _ in range(2):
            assert zhou.get(url).status_code == 503
    finally:
        s3.start()
    unservable = zhou.get(url, headers={"Range": "bytes=0-0,5-10"})
    assert unservable.status_code == 416
    assert playbacks(app) == []  # nothing was heard
    assert zhou.get(url, headers={"Range": "bytes=1000-"}).status_code == 206
    assert zhou.get(url, headers={"Range": "bytes=2000-2099"}).status_code == 206
    assert playbacks(app) == ["zhou"]  # one playback, its seeking not counted again
