"""The case page's playback audit: supervisors see who played or downloaded which of the
case's recordings when (the action log calls.desk writes for each playback, and for
each refusal), by name and role, in Beijing time, zh-CN first with English a click away.
On the Twilio app of tests/test_recordings.py; the recording row and its file are put in
place as the fetch job leaves them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from cases.models import ActionLog, CallRecording, Case, Category
from cases.service import _record, next_case_number, utcnow
from tests.test_recordings import (  # noqa: F401  (fixtures)
    AUDIO_S,
    CALL,
    RECORDING,
    app,
    console_of,
    twilio_api,
    wav_bytes,
)
from web.formatting import beijing


def a_noise_case(db, call_id: str) -> Case:  # type: ignore[no-untyped-def]
    """A citizen's phone case about building noise, made by wang from ``call_id``."""
    now = utcnow()
    case = Case(
        number=next_case_number(db, now),
        caller_phone="+8613900139000",
        caller_name="王五",
        channel="phone",
        call_id=call_id,
        category=db.scalars(select(Category)).first(),
        address="龙华区国贸路88号",
        description="楼下施工噪音",
        urgency="normal",
        status="received",
        created_at=now,
        updated_at=now,
    )
    db.add(case)
    _record(case, "wang", "create", None, "received", at=now)
    db.flush()
    return case


def a_case_with_a_recording(app) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    svc = app.extensions["hotline"]
    recordings = Path(app.extensions["hotline_settings"].recordings_dir)
    recordings.mkdir(parents=True, exist_ok=True)
    (recordings / f"{RECORDING}.wav").write_bytes(wav_bytes(AUDIO_S))
    with svc.desk.sessions() as db:
        case = a_noise_case(db, CALL)
        recording = CallRecording(
            sid=RECORDING,
            call_id=CALL,
            case_id=case.id,
            provider="twilio",
            file_name=f"{RECORDING}.wav",
            status="done",
            started_at=datetime(2026, 12, 1, 1, 5, 9, tzinfo=UTC),  # 09:05:09 in Beijing
            duration_s=AUDIO_S,
        )
        db.add(recording)
        db.commit()
        return case.number, recording.id


def audit_of(page: str) -> str:
    found = re.search(
        r'<h3>[^<]*</h3>\s*(<table class="plain" id="case-playbacks">.*?</table>)', page, re.S
    )
    assert found, page
    return found[1]


def test_the_case_page_shows_supervisors_who_played_which_recording_when(app) -> None:  # type: ignore[no-untyped-def]
    number, recording_id = a_case_with_a_recording(app)
    li, _ = console_of(app, "li")
    page = li.get(f"/console/cases/{number}").get_data(as_text=True)
    assert "录音播放记录" in page and "尚无人播放或下载" in page

    wang, _ = console_of(app, "wang")
    assert wang.get(f"/console/recordings/{recording_id}/audio").status_code == 403
    played = li.get(f"/console/recordings/{recording_id}/audio")
    assert played.status_code == 200
    played.close()

    svc = app.extensions["hotline"]
    with svc.desk.sessions() as db:
        plays = db.scalars(select(ActionLog).order_by(ActionLog.id)).all()
        refused_at = next(a.at for a in plays if a.action == "recording-play-refused")
        played_at = next(a.at for a in plays if a.action == "recording-play")
    table = audit_of(li.get(f"/console/cases/{number}").get_data(as_text=True))
    rows = re.findall(r'<tr class="playback">(.*?)</tr>', table, re.S)
    cells = [
        [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for r in rows
    ]
    # Oldest first: the operator refused, then the supervisor's playback; Beijing time.
    assert cells == [
        [
            beijing(refused_at, seconds=True),
            "王芳 · 话务员",
            "开始于 2026-12-01 09:05:09",
            "无权播放，已拒绝",
        ],
        [
            beijing(played_at, seconds=True),
            "李班长 · 班长",
            "开始于 2026-12-01 09:05:09",
            "播放或下载",
        ],
    ], cells
    # No slugs: neither user names, roles nor action names as the code spells them.
    for slug in ("li ", "wang", "supervisor", "operator", "recording-play", RECORDING):
        assert slug not in table, slug

    # The operator sees neither the recordings nor who played them.
    assert "case-playbacks" not in wang.get(f"/console/cases/{number}").get_data(as_text=True)

    # English one click away.
    page = li.get(f"/console/cases/{number}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    li.post("/language", data={"lang": "en", "csrf_token": token[1]})
    english = audit_of(li.get(f"/console/cases/{number}").get_data(as_text=True))
    assert "Played or downloaded" in english and "Supervisor" in english
    assert "Refused: not allowed to play" in english
