"""Transfers through the console and the desk, on Twilio's protocol: signed webhooks
(tests/twilio_peer.py) bring a caller to wang's seat, and the REST requests the
transfer makes go to a local HTTP server standing in for Twilio's API, which checks
them. 紧急转办 to 119 ends the call for the centre as transferred (not abandoned),
sends wang's seat to wrap-up, and marks the case and the call's detail row; a
transfer to a Hainanese seat makes the pop follow the call."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
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

ACCOUNT = "AC" + "7" * 32
CALL = sid(4242)


class TwilioApi(BaseHTTPRequestHandler):
    """Twilio's REST API as far as a call update goes: records each request."""

    received: list[tuple[str, dict[str, list[str]]]] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode())
        TwilioApi.received.append((self.path, form))
        call = self.path.rsplit("/", 1)[-1].removesuffix(".json")
        body = json.dumps({"sid": call, "account_sid": ACCOUNT, "status": "in-progress"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def twilio_api() -> Iterator[str]:
    TwilioApi.received = []
    with http_peer(TwilioApi) as url:
        yield url


@pytest.fixture
def app(redis: Redis, redis_server, tmp_path: Path, twilio_api: str, monkeypatch):  # type: ignore[no-untyped-def]
    people = (("wang", "operator", "王芳", "1001"), ("zhao", "operator", "赵敏", "2001"))
    return app_on_twilio(
        redis,
        redis_server.url,
        tmp_path,
        twilio_api,
        monkeypatch,
        ACCOUNT,
        people,
        HOTLINE_EMERGENCY_LINES="110=110,119=+86898119,120=120,122=122",
    )


def console_of(app, username: str) -> tuple[Any, dict[str, str]]:  # type: ignore[no-untyped-def]
    client = app.test_client()
    sign_in(client, username)
    headers = {"X-CSRFToken": csrf_of(client.get("/console/").get_data(as_text=True))}
    return client, headers


def connect_a_caller(app, seat: str = "1001") -> None:  # type: ignore[no-untyped-def]
    """A Twilio caller, offered to ``seat`` at once and picked up there."""
    twilio = TwilioSigner(app.test_client())
    params = {
        "CallSid": CALL,
        "From": "+8613800000001",
        "To": "+8612345",
        "CallStatus": "ringing",
        "AccountSid": ACCOUNT,
        "Direction": "inbound",
    }
    parse(twilio.post("/twilio/voice", params))
    queue = app.extensions["hotline"].queue
    assert queue.call(CALL)["state"] == "offered" and queue.call(CALL)["seat"] == seat
    answered = twilio.post(
        f"/twilio/seat-answered?call={CALL}&seat={seat}", {**params, "CallStatus": "in-progress"}
    )
    parse(answered)
    assert queue.call(CALL)["state"] == "on_call"


def run_jobs(app) -> None:  # type: ignore[no-untyped-def]
    from rq import SimpleWorker

    jobs = app.extensions["hotline"].jobs
    SimpleWorker([jobs], connection=jobs.connection).work(burst=True, logging_level="WARNING")


def test_an_emergency_transfer_to_119_from_the_console(app) -> None:  # type: ignore[no-untyped-def]
    from calls.figures import record_calls
    from cases.models import CallRecord, Case, CaseEvent

    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    svc.desk.login_seat(Actor("zhao", "operator"), "2001", ["mandarin"])
    connect_a_caller(app)
    wang, wang_csrf = console_of(app, "wang")
    page = wang.get("/console/call-controls").get_data(as_text=True)
    assert 'value="119"' in page and "火警" in page and "data-confirm" in page

    # Another operator's call does not exist for them; the note is not optional.
    zhao, zhao_csrf = console_of(app, "zhao")
    other = zhao.post(
        f"/console/calls/{CALL}/emergency", data={"line": "119", "note": "起火"}, headers=zhao_csrf
    )
    assert other.status_code == 404
    bare = wang.post(
        f"/console/calls/{CALL}/emergency", data={"line": "119", "note": "  "}, headers=wang_csrf
    )
    assert bare.status_code == 422
    assert "请填写转办说明" in bare.get_data(as_text=True)
    assert TwilioApi.received == [] and svc.queue.call(CALL)["state"] == "on_call"

    done = wang.post(
        f"/console/calls/{CALL}/emergency",
        data={"line": "119", "note": "美兰区海甸岛某小区3栋起火，有老人被困"},
        headers=wang_csrf,
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "已转接 119" in done.get_data(as_text=True)
    # Redrawn on the seat's wrap-up event, the panel still says what became of the call.
    assert "已转接 119" in wang.get("/console/call-controls").get_data(as_text=True)
    # The case is the emergency transfer's: the pop no longer offers a case form to file,
    # its status line takes the form away, and a form sent anyway is refused.
    status = wang.get(f"/console/calls/{CALL}/status").get_data(as_text=True)
    assert 'hx-swap-oob="outerHTML:#case-form"' in status and "紧急转办" in status
    pop = wang.get(f"/console/calls/{CALL}/pop").get_data(as_text=True)
    assert '<form id="case-form"' not in pop and "提交工单</button>" not in pop
    assert "已按紧急转办登记" in pop
    late = wang.post(
        f"/console/calls/{CALL}/case",
        data={"description": "补充", "outcome": "resolved"},
        headers=wang_csrf,
    )
    assert late.status_code == 409 and "已按紧急转办登记" in late.get_data(as_text=True)

    # Twilio was asked to dial the configured number for 119 on the caller's call.
    [(path, form)] = TwilioApi.received
    assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
    assert ">+86898119</Dial>" in form["Twiml"][0]

    # For the queue a transfer, not an abandon; the seat goes to wrap-up.
    record = svc.queue.call(CALL)
    assert record["state"] == "ended" and record["outcome"] == "transferred"
    assert svc.queue.seat("1001")["state"] == "wrap_up"
    kinds = [f[b"type"].decode() for _, f in svc.redis.xrange(svc.queue.keys.events)]
    assert "TRANSFER" in kinds and "COMPLETE" in kinds and "ABANDON" not in kinds

    # The seat's <Dial> ending afterwards changes nothing and keeps the caller going.
    twilio = TwilioSigner(app.test_client())
    after = parse(
        twilio.post(
            "/twilio/dial-status?seat=1001",
            {"CallSid": CALL, "CallStatus": "in-progress", "DialCallStatus": "completed"},
        )
    )
    assert [child.tag for child in after] == ["Dial"] and after[0].text == "+86898119"
    assert after[0].get("action") == f"{PUBLIC_BASE}/twilio/emergency-dial?try=1"
    assert svc.queue.seat("1001")["state"] == "wrap_up"

    run_jobs(app)
    with svc.desk.sessions() as db:
        case = db.scalar(select(Case).where(Case.call_id == CALL))
        assert case is not None
        assert case.handling == "emergency_transfer" and case.transferred_to == "119"
        trail = [e.note for e in db.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))]
        assert any(n.startswith("紧急转办 119：美兰区") for n in trail), trail
        while record_calls(db, svc.redis, svc.queue.keys):
            pass
        row = db.get(CallRecord, CALL)
        assert row.transfer_kind == "emergency" and row.transferred_to == "119"
        assert row.outcome == "answered" and row.seat == "1001"


def test_a_transfer_to_a_hainanese_seat_takes_the_pop_with_it(app) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    connect_a_caller(app)
    svc.desk.login_seat(Actor("zhao", "operator"), "2001", ["hainanese"])
    wang, wang_csrf = console_of(app, "wang")
    zhao, zhao_csrf = console_of(app, "zhao")
    draft = {"description": "老人讲海南话，反映停水", "outcome": "later"}
    wang.post(f"/console/calls/{CALL}/case", data=draft, headers=wang_csrf)
    assert zhao.get(f"/console/calls/{CALL}/pop").status_code == 404  # not theirs yet

    moved = wang.post(
        f"/console/calls/{CALL}/transfer",
        data={"kind": "skill", "skill": "hainanese"},
        headers=wang_csrf,
    )
    assert moved.status_code == 200, moved.get_data(as_text=True)
    [(path, form)] = TwilioApi.received
    assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
    assert form["Url"] == [PUBLIC_BASE + "/twilio/offered"]

    record = svc.queue.call(CALL)
    assert record["state"] == "offered" and record["seat"] == "2001"
    assert record["skill"] == "hainanese"
    assert svc.queue.seat("1001")["state"] == "wrap_up"
    # The pop is zhao's now, with the case and its draft; wang's screen lets it go.
    pop = zhao.get(f"/console/calls/{CALL}/pop")
    assert pop.status_code == 200 and "138 0000 0001" in pop.get_data(as_text=True)
    assert wang.get(f"/console/calls/{CALL}/pop").status_code == 404
    with svc.desk.sessions() as db:
        from cases.models import Case

        case = db.scalar(select(Case).where(Case.call_id == CALL))
        assert case is not None and case.description == draft["description"]
    more = {**draft, "description": draft["description"] + "，三天了"}
    assert zhao.post(f"/console/calls/{CALL}/case", data=more, headers=zhao_csrf).status_code == 200
    # Sent while the call rings at 2001, the form is the call's draft, which its case
    # job files when zhao's conversation ends.
    from calls.filing import read_draft

    _, kept = read_draft(svc.redis, svc.queue.keys, CALL)
    assert kept["description"] == more["description"] and kept["seat"] == "2001"

    # Twilio follows the redirect: the caller's call dials seat 2001, which answers.
    twilio = TwilioSigner(app.test_client())
    root = parse(twilio.post("/twilio/offered", {"CallSid": CALL, "CallStatus": "in-progress"}))
    dial = root.find("Dial")
    assert dial is not None and dial.find("Client").text.strip() == "2001"
    parse(
        twilio.post(
            f"/twilio/seat-answered?call={CALL}&seat=2001",
            {"CallSid": CALL, "CallStatus": "in-progress"},
        )
    )
    assert svc.queue.call(CALL)["state"] == "on_call"
    assert svc.queue.seat("2001")["state"] == "on_call"
    # wang's old <Dial> reporting its end (late) takes nothing from zhao.
    parse(
        twilio.post(
            "/twilio/dial-status?seat=1001",
            {
                "CallSid": CALL,
                "CallStatus": "in-progress",
                "DialCallStatus": "completed",
                "DialCallDuration": "40",
            },
        )
    )
    assert svc.queue.call(CALL)["seat"] == "2001" and svc.queue.call(CALL)["state"] == "on_call"


def test_a_transfer_to_a_skill_nobody_has_is_refused_in_words(app) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    connect_a_caller(app)
    wang, wang_csrf = console_of(app, "wang")
    refused = wang.post(
        f"/console/calls/{CALL}/transfer",
        data={"kind": "skill", "skill": "english"},
        headers=wang_csrf,
    )
    assert refused.status_code == 409
    assert "没有签入的" in refused.get_data(as_text=True)
    assert TwilioApi.received == [] and svc.queue.call(CALL)["state"] == "on_call"


def test_hold_plays_music_and_resume_rings_the_seat_again(app) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    connect_a_caller(app)
    wang, wang_csrf = console_of(app, "wang")
    held = wang.post(f"/console/calls/{CALL}/hold", data={"action": "hold"}, headers=wang_csrf)
    assert held.status_code == 200 and "恢复通话" in held.get_data(as_text=True)
    [(path, form)] = TwilioApi.received
    assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
    assert '<Play loop="0">' + PUBLIC_BASE + "/twilio/hold.wav</Play>" in form["Twiml"][0]
    record = svc.queue.call(CALL)
    assert record["state"] == "on_call" and record["seat"] == "1001" and record["held_at"]

    # The seat's <Dial> ends with the move: the caller keeps their music, the call its seat.
    twilio = TwilioSigner(app.test_client())
    after = parse(
        twilio.post(
            "/twilio/dial-status?seat=1001",
            {
                "CallSid": CALL,
                "CallStatus": "in-progress",
                "DialCallStatus": "completed",
                "DialCallDuration": "12",
            },
        )
    )
    assert [child.tag for child in after] == ["Play"]
    assert svc.queue.call(CALL)["state"] == "on_call"
    assert svc.queue.seat("1001")["state"] == "on_call"

    resumed = wang.post(f"/console/calls/{CALL}/hold", data={"action": "resume"}, headers=wang_csrf)
    assert resumed.status_code == 200 and "保持" in resumed.get_data(as_text=True)
    assert TwilioApi.received[-1][1]["Url"] == [PUBLIC_BASE + "/twilio/offered"]
    root = parse(twilio.post("/twilio/offered", {"CallSid": CALL, "CallStatus": "in-progress"}))
    dial = root.find("Dial")
    assert dial is not None and dial.find("Client").text.strip() == "1001"
    parse(
        twilio.post(
            f"/twilio/seat-answered?call={CALL}&seat=1001",
            {"CallSid": CALL, "CallStatus": "in-progress"},
        )
    )
    record = svc.queue.call(CALL)
    assert record["state"] == "on_call" and not record["held_at"]
    kinds = [f[b"type"].decode() for _, f in svc.redis.xrange(svc.queue.keys.events)]
    assert kinds.count("HOLD") == 1 and kinds.count("UNHOLD") == 1
    assert kinds.count("CONNECT") == 1  # one answer, however often the phone rang


def test_a_busy_or_silent_emergency_line_is_dialled_again_three_tries_in_all(app) -> None:  # type: ignore[no-untyped-def]
    """As [hotline-transfer-out] does on Asterisk: a caller in an emergency is never
    dropped because 119 was busy once."""
    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    connect_a_caller(app)
    wang, csrf = console_of(app, "wang")
    sent = wang.post(
        f"/console/calls/{CALL}/emergency", data={"line": "119", "note": "厨房起火"}, headers=csrf
    )
    assert sent.status_code == 200, sent.get_data(as_text=True)
    [(_, form)] = TwilioApi.received
    first = ET.fromstring(form["Twiml"][0]).find("Dial")
    assert first is not None and first.text == "+86898119"
    assert first.get("action") == f"{PUBLIC_BASE}/twilio/emergency-dial?try=1"

    twilio = TwilioSigner(app.test_client())
    ended = {"CallSid": CALL, "CallStatus": "in-progress"}
    second = parse(
        twilio.post("/twilio/emergency-dial?try=1", {**ended, "DialCallStatus": "busy"})
    )
    assert [c.tag for c in second] == ["Pause", "Dial"] and second[1].text == "+86898119"
    assert second[1].get("action") == f"{PUBLIC_BASE}/twilio/emergency-dial?try=2"
    third = parse(
        twilio.post("/twilio/emergency-dial?try=2", {**ended, "DialCallStatus": "no-answer"})
    )
    assert third.find("Dial") is not None
    assert third.find("Dial").get("action") == f"{PUBLIC_BASE}/twilio/emergency-dial?try=3"
    # Three tries in all; an answered line, or the caller gone, ends it too.
    for query, status in (("try=3", "busy"), ("try=1", "completed")):
        done = parse(
            twilio.post(f"/twilio/emergency-dial?{query}", {**ended, "DialCallStatus": status})
        )
        assert [c.tag for c in done] == ["Hangup"]
    gone = parse(
        twilio.post(
            "/twilio/emergency-dial?try=1",
            {"CallSid": CALL, "CallStatus": "completed", "DialCallStatus": "no-answer"},
        )
    )
    assert [c.tag for c in gone] == ["Hangup"]
    # Anyone's unsigned request is refused.
    forged = app.test_client().post(
        "/twilio/emergency-dial?try=1", data={**ended, "DialCallStatus": "busy"}
    )
    assert forged.status_code == 403
