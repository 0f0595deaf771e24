"""Attacks on issue 19's operator tools: the public knowledge base's search with FTS5
syntax in it, a call id that tries to climb out of its directory, a unit clerk and an
operator reaching for another's work, and the Twilio recording download, which carries
our account's credentials and must give them to Twilio's API host only."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from sqlalchemy import select

from calls.desk import Actor
from tests.test_knowledge_screens import app, article_id, db_of, signed_in  # noqa: F401
from tests.test_recordings import (  # noqa: F401
    ACCOUNT,
    CALL,
    RECORDING,
    TwilioApi,
    callback,
    console_of,
    run_jobs,
    twilio_api,
    wav_bytes,
)
from tests.test_recordings import app as recording_app  # noqa: F401
from tests.twilio_peer import TwilioSigner, http_peer

HOSTILE_QUERIES = [
    '"',
    '""',
    "*",
    "停水*",
    "NEAR(停水 噪音)",
    "停水 OR",
    "OR OR AND NOT",
    "title:停水",
    "{title body}: 噪音",
    "^停水",
    "停水 - 噪音",
    "(((",
    "'; DROP TABLE kb_article_fts; --",
    "\x00停水",
    "a" * 5000,
    "停" * 5000,
    "%",
    "\\",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_fts_syntax_in_a_public_or_console_search_is_never_a_server_error(app, query) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    public = app.test_client()
    ok = (200, 400) if "\x00" in query else (200,)  # NUL is refused app-wide
    assert public.get("/kb/", query_string={"q": query}).status_code in ok
    operator, _, _ = signed_in(app, "wang", "/console/")
    assert operator.get("/console/kb/search", query_string={"q": query}).status_code in ok
    suggest = operator.get("/console/kb/suggest", query_string={"description": query})
    assert suggest.status_code in ok


def test_markup_in_a_proposal_is_shown_as_text_in_the_portal_review_and_public_view(app) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    water = article_id(app, "小区突然停水怎么办")
    supply, _, token = signed_in(app, "supply", "/portal/kb")
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    form = supply.get(f"/portal/kb/{water}/change").get_data(as_text=True)
    assert "<script>alert" not in form
    change = {
        "title": "小区突然停水怎么办" + evil,
        "body": "请拨打供水热线。" + evil,
        "category_code": "water-outage",
        "valid_from": "2026-01-01",
        "note": evil,
        "csrf_token": token,
    }
    assert supply.post(f"/portal/kb/{water}/change", data=change).status_code == 303
    assert evil not in supply.get("/portal/kb").get_data(as_text=True)
    editor, _, editor_token = signed_in(app, "kbed", "/console/kb/review")
    review = editor.get("/console/kb/review").get_data(as_text=True)
    assert "<script>alert(1)" not in review and "<img src=x" not in review
    from cases.models import KnowledgeVersion

    with db_of(app) as db:
        version = db.scalars(
            select(KnowledgeVersion).where(KnowledgeVersion.state == "proposed")
        ).one()
    decided = editor.post(
        f"/console/kb/versions/{version.id}/decide",
        data={"action": "approve", "note": evil, "csrf_token": editor_token},
    )
    assert decided.status_code in (200, 303)
    history = editor.get(f"/console/kb/articles/{water}/history").get_data(as_text=True)
    assert "<script>alert(1)" not in history and "<img src=x" not in history
    public = app.test_client()
    page = public.get(f"/kb/{water}").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    found = public.get("/kb/", query_string={"q": "停水"}).get_data(as_text=True)
    assert "<script>alert(1)" not in found


@pytest.mark.parametrize("call", ["..%2F..%2Fetc%2Fpasswd", "..", "a%00b", "x" * 300, "%2e%2e"])
def test_a_call_id_with_a_path_in_it_is_refused_by_every_call_control(app, call) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    operator, headers, _ = signed_in(app, "wang", "/console/")
    for action, data in (
        ("recording", {"action": "pause"}),
        ("hold", {"action": "hold"}),
        ("transfer", {"kind": "skill", "skill": "mandarin"}),
        ("emergency", {"line": "110", "note": "fire"}),
        ("kb-answer", {"article_id": "1"}),
    ):
        r = operator.post(f"/console/calls/{call}/{action}", data=data, headers=headers)
        assert r.status_code in (400, 404, 409), (action, r.status_code)


def test_a_department_user_and_an_operator_cannot_review_play_or_listen(app) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    supply, headers, _ = signed_in(app, "supply", "/portal/kb")
    assert supply.get("/console/kb/review").status_code == 403
    assert supply.get("/console/recordings/1/audio").status_code == 403
    assert supply.post("/console/listen", data={}, headers=headers).status_code == 403
    operator, headers, _ = signed_in(app, "wang", "/console/")
    r = operator.post(
        "/console/listen",
        data={"seat": "1002", "phone": "1001", "mode": "listen"},
        headers=headers,
    )
    assert r.status_code == 403
    assert (
        operator.post(
            "/console/kb/versions/1/decide", data={"action": "approve"}, headers=headers
        ).status_code
        == 403
    )


def test_another_operators_call_cannot_be_held_transferred_or_unrecorded(app) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    handler = app.extensions["hotline"].handler
    wang, wang_headers, _ = signed_in(app, "wang", "/console/")
    assert (
        wang.post(
            "/console/seat/login", data={"seat": "1001", "skills": "mandarin"}, headers=wang_headers
        ).status_code
        == 204
    )
    handler.start("c-theirs", "13800000021", "12345", "asterisk", 0.0)
    assert handler.seat_answered("c-theirs", "1001", 1.0)
    zhao, headers, _ = signed_in(app, "zhao", "/console/")
    for action, data in (
        ("recording", {"action": "pause"}),
        ("hold", {"action": "hold"}),
        ("transfer", {"kind": "skill", "skill": "mandarin"}),
        ("emergency", {"line": "110", "note": "fire"}),
    ):
        r = zhao.post(f"/console/calls/c-theirs/{action}", data=data, headers=headers)
        assert r.status_code in (400, 404), (action, r.status_code)
        assert "c-theirs" not in r.get_data(as_text=True)


def test_a_new_post_without_a_csrf_token_is_refused(app) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    wang, _, _ = signed_in(app, "wang", "/console/")
    for path in (
        "/console/calls/c1/hold",
        "/console/calls/c1/recording",
        "/console/calls/c1/transfer",
        "/console/calls/c1/emergency",
        "/console/calls/c1/kb-answer",
        "/console/listen",
        "/console/kb/versions/1/decide",
    ):
        assert wang.post(path, data={}).status_code == 400, path
    supply, _, _ = signed_in(app, "supply", "/portal/kb")
    for path in ("/portal/kb/new", "/portal/kb/versions/1/withdraw"):
        assert supply.post(path, data={}).status_code == 400, path


# -- the Twilio recording download ------------------------------------------------------


class Elsewhere(BaseHTTPRequestHandler):
    """A host that is not Twilio's API: it notes what it was sent."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802
        Elsewhere.seen.append(dict(self.headers))
        body = wav_bytes(1)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def elsewhere() -> Iterator[str]:
    Elsewhere.seen = []
    with http_peer(Elsewhere, host="localhost") as url:
        yield url


def recorded_and_done(app, media: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    twilio = TwilioSigner(app.test_client())
    assert callback(twilio, "in-progress").status_code == 204
    done = callback(twilio, "completed", RecordingUrl=media, RecordingDuration="1")
    assert done.status_code == 204


def test_a_recording_url_off_twilios_api_host_is_never_fetched(recording_app, elsewhere) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from cases.models import CallRecording

    recorded_and_done(recording_app, f"{elsewhere}/Recordings/{RECORDING}")
    run_jobs(recording_app)
    assert Elsewhere.seen == []
    with db_of(recording_app) as db:
        assert db.scalars(select(CallRecording)).one().file_name is None


def test_twilios_credentials_do_not_follow_a_media_redirect_to_another_host(
    recording_app,
    elsewhere,
    monkeypatch,  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    """Twilio answers a recording's media with a redirect to its storage: the audio is
    fetched from there, but our account's Basic credentials stay with the API host."""
    from cases.models import CallRecording

    def redirect(self: TwilioApi) -> None:
        TwilioApi.received.append(("GET", self.path, {}))
        self.send_response(302)
        self.send_header("Location", f"{elsewhere}/media/{RECORDING}.wav?signed=1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    monkeypatch.setattr(TwilioApi, "do_GET", redirect)
    api = recording_app.extensions["hotline_settings"].twilio_api_base_url
    recorded_and_done(recording_app, f"{api}/Recordings/{RECORDING}")
    run_jobs(recording_app)
    assert len(Elsewhere.seen) == 1
    assert "Authorization" not in Elsewhere.seen[0]
    with db_of(recording_app) as db:
        assert db.scalars(select(CallRecording)).one().file_name == f"{RECORDING}.wav"


def test_a_playback_that_skips_the_first_byte_is_audited_all_the_same(recording_app) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The audit once per playback must not hang on the player asking from byte 0: a
    supervisor asking for bytes=1- gets all the audio, and that is a playback."""
    from cases.models import ActionLog, CallRecording

    api = recording_app.extensions["hotline_settings"].twilio_api_base_url
    recorded_and_done(recording_app, f"{api}/Recordings/{RECORDING}")
    run_jobs(recording_app)
    with db_of(recording_app) as db:
        recording_id = db.scalars(select(CallRecording)).one().id
    li, _ = console_of(recording_app, "li")
    for ranges in ("bytes=1-", "bytes=1-", "bytes=40-"):
        heard = li.get(f"/console/recordings/{recording_id}/audio", headers={"Range": ranges})
        assert heard.status_code == 206
        heard.close()
    with db_of(recording_app) as db:
        plays = db.scalars(
            select(ActionLog.actor).where(ActionLog.action == "recording-play")
        ).all()
    assert plays == ["li"]  # audited, and once while the same person listens on
