"""The quality role (质检员) over real HTTP: quality staff search cases, open the case
page, play its recordings (audited) and see who played them; they cannot dispatch,
supervise, reveal the caller's number, file cases, watch the wallboard or manage users
(403, a zh-CN page). `hotline user add --role quality` makes one; the admin's user
screen offers the role by its Chinese name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cases.models import ActionLog, User
from tests.test_console import PASSWORD, csrf_of
from tests.test_recording_store import (  # noqa: F401  (fixtures)
    a_case_with_a_finished_recording,
    app,
    recordings_dir,
    s3,
    served,
    signed_in,
    twilio_api,
)

CALL = "1764600100.7"


def test_quality_staff_search_open_and_play_a_case_audited(app, served) -> None:  # type: ignore[no-untyped-def]
    number, recording_id = a_case_with_a_finished_recording(
        app, CALL, datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    )
    audio = (recordings_dir(app) / f"{CALL}.wav").read_bytes()
    zhou = signed_in(served, "zhou")

    home = zhou.get(f"{served}/", allow_redirects=False)
    assert home.headers["Location"].endswith("/console/cases")  # lands on case search
    found = zhou.get(f"{served}/console/cases", params={"q": "9000"})
    assert found.status_code == 200 and number in found.text
    assert "周质检 · 质检员" in found.text and 'class="nav-search"' in found.text

    page = zhou.get(f"{served}/console/cases/{number}")
    assert page.status_code == 200 and 'id="case-recordings"' in page.text
    assert "139****9000" in page.text and "+8613900139000" not in page.text
    for action in ("reveal-form", "supervise-form", "dispatch-form"):
        assert f'id="{action}"' not in page.text, action

    played = zhou.get(f"{served}/console/recordings/{recording_id}/audio")
    assert played.status_code == 200 and played.content == audio
    seek = zhou.get(
        f"{served}/console/recordings/{recording_id}/audio", headers={"Range": "bytes=44-143"}
    )
    assert seek.status_code == 206 and seek.content == audio[44:144]
    with app.extensions["hotline"].desk.sessions() as db:
        plays = db.execute(
            select(ActionLog.actor, ActionLog.target).where(ActionLog.action == "recording-play")
        ).all()
    assert [tuple(p) for p in plays] == [("zhou", CALL)]  # the seeking is the same playback
    audit = zhou.get(f"{served}/console/cases/{number}").text
    assert 'id="case-playbacks"' in audit and "周质检 · 质检员" in audit


def test_quality_staff_are_refused_what_is_not_theirs_with_a_chinese_page(app, served) -> None:  # type: ignore[no-untyped-def]
    number, recording_id = a_case_with_a_finished_recording(
        app, CALL, datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    )
    zhou = signed_in(served, "zhou")
    token = csrf_of(zhou.get(f"{served}/console/cases/{number}").text)
    refused = {
        "GET /console/": zhou.get(f"{served}/console/"),
        "GET /console/wallboard": zhou.get(f"{served}/console/wallboard"),
        "GET /console/supervision": zhou.get(f"{served}/console/supervision"),
        "GET /console/admin/users": zhou.get(f"{served}/console/admin/users"),
        "POST dispatch": zhou.post(
            f"{served}/console/cases/{number}/dispatch",
            data={"csrf_token": token, "unit": "water-affairs"},
        ),
        "POST supervise": zhou.post(
            f"{served}/console/cases/{number}/supervise",
            data={"csrf_token": token, "note": "请尽快"},
        ),
        "POST reveal": zhou.post(
            f"{served}/console/cases/{number}/reveal", data={"csrf_token": token}
        ),
        "POST case form": zhou.post(
            f"{served}/console/calls/{CALL}/case", data={"csrf_token": token}
        ),
        "POST add user": zhou.post(
            f"{served}/console/admin/users",
            data={"csrf_token": token, "username": "x2", "role": "admin"},
        ),
    }
    for what, answer in refused.items():
        assert answer.status_code == 403, (what, answer.status_code)
        assert "无权访问" in answer.text and "您没有权限" in answer.text, what
    with app.extensions["hotline"].desk.sessions() as db:
        assert db.scalar(select(User).where(User.username == "x2")) is None
        case_actions = db.scalars(select(ActionLog.action).where(ActionLog.actor == "zhou")).all()
    assert "phone-revealed" not in case_actions

    # Anyone else signed in who asks for the audio is refused, and the refusal logged.
    chen = signed_in(served, "chen")
    assert chen.get(f"{served}/console/recordings/{recording_id}/audio").status_code == 403
    with app.extensions["hotline"].desk.sessions() as db:
        refusals = db.scalars(
            select(ActionLog.action).where(
                ActionLog.actor == "chen", ActionLog.target == str(recording_id)
            )
        ).all()
    assert refusals == ["recording-play-refused"]

    # The admin's user screen offers the role by name.
    root = signed_in(served, "root")
    assert "质检员" in root.get(f"{served}/console/admin/users").text


def test_hotline_user_add_makes_quality_staff(redis_server, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory, upgrade
    from hotline.cli import main

    database = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(database)
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path))
    result = CliRunner().invoke(
        main,
        ["user", "add", "zhouqc", "--role", "quality", "--name", "周质检", "--password-stdin"],
        input=PASSWORD + "\n",
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    with session_factory(engine_for(database))() as db:
        made = db.scalars(select(User).where(User.username == "zhouqc")).one()
        assert (made.role, made.display_name) == ("quality", "周质检")


def test_quality_staff_seek_a_stored_recording_in_a_real_browser(app, served) -> None:  # type: ignore[no-untyped-def]
    """Chromium's <audio> on the case page plays a recording kept in the S3 store and
    seeks in it: its range requests reach the store through the audited route."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from calls.recordings import upkeep
    from tests.browser import launch, screenshot

    number, _ = a_case_with_a_finished_recording(
        app, CALL, datetime(2026, 11, 30, 2, 0, tzinfo=UTC), seconds=600
    )
    assert upkeep()["uploaded"] == 1  # now only in the store
    ranges: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        tab = page.new_page()
        tab.on(
            "request",
            lambda r: ranges.append(r.headers.get("range", "")) if "/audio" in r.url else None,
        )
        tab.goto(f"{served}/login?next=/console/cases/{number}")
        tab.fill("input[name=username]", "zhou")
        tab.fill("input[name=password]", PASSWORD)
        tab.click("main button[type=submit]")
        sync_api.expect(tab.locator("#case-recordings audio")).to_have_count(1)
        duration = tab.evaluate(
            """() => new Promise((done, fail) => {
                const audio = document.querySelector('#case-recordings audio');
                audio.addEventListener('error', () => fail(String(audio.error.code)));
                audio.addEventListener('loadedmetadata', () => {
                    audio.addEventListener('seeked', () => done(audio.duration), {once: true});
                    audio.currentTime = audio.duration - 0.5;
                }, {once: true});
                audio.load();
            })"""
        )
        screenshot(tab, "quality-case-recording")
        browser.close()
    assert abs(duration - 600) < 0.1, duration  # ten minutes, read from the store
    # The player asked from the start, then for the end when it sought there.
    assert ranges[0] == "bytes=0-" and any(r.startswith("bytes=") for r in ranges[1:]), ranges
    with app.extensions["hotline"].desk.sessions() as db:
        plays = db.scalars(
            select(ActionLog.actor).where(
                ActionLog.action == "recording-play", ActionLog.target == CALL
            )
        ).all()
    assert plays == ["zhou"]  # one playback, however the player sought
