"""Consult transfers and three-way calls (咨询转接 / 三方通话) through the console and the
desk, on Twilio's protocol: signed webhooks (tests/twilio_peer.py) bring a caller to
wang's seat, and a local HTTP server standing in for Twilio's REST API records the call
updates and conference participants the consult asks for. The caller waits in their
conference; the operator and the unit's duty phone are called into a second one, and
moved into the caller's for a three-way call or a handover."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote

import pytest
from redis import Redis
from sqlalchemy import select

from calls.desk import Actor
from cases.duty_numbers import set_duty_phone
from tests.test_transfers import CALL, connect_a_caller, console_of, run_jobs
from tests.twilio_peer import PUBLIC_BASE, TwilioSigner, app_on_twilio, http_peer, parse, sid

ACCOUNT = "AC" + "8" * 32
OPERATOR_LEG, UNIT_LEG = sid(7001), sid(7002)
ROOM = f"hotline-{CALL}"
API = f"/2010-04-01/Accounts/{ACCOUNT}"


def conference_sid(room: str) -> str:
    """The SID Twilio gives the in-progress conference of that name (one per name here).
    Participants may be created by the room's name, but go by the SID afterwards."""
    return "CF" + hashlib.md5(room.encode()).hexdigest()


CF_ROOM = conference_sid(ROOM)


class TwilioApi(BaseHTTPRequestHandler):
    """Twilio's REST API as far as a consult goes: call updates, in-progress conferences
    listed by name, and participants created (the operator's and the unit's legs, by
    label, in a room named or by SID) or updated (by the conference's SID only)."""

    received: list[tuple[str, dict[str, list[str]]]] = []

    def do_GET(self) -> None:  # noqa: N802
        path, _, query = unquote(self.path).partition("?")
        named = parse_qs(query).get("FriendlyName", [""])[0]
        if path.endswith("/Conferences.json") and named.startswith("hotline-"):
            found = [{"sid": conference_sid(named), "friendly_name": named}]
            self._answer(200, {"conferences": found, "next_page_uri": None, "page": 0})
        else:
            self._answer(404, {"code": 20404, "message": "not found", "status": 404})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode())
        path = unquote(self.path)
        TwilioApi.received.append((path, form))
        room = path.split("/Conferences/")[-1].split("/")[0] if "/Conferences/" in path else ""
        # Created by the room's name or its SID; fetched and updated by the SID only.
        conference = room if room.startswith("CF") or not room else conference_sid(room)
        if path.endswith("/Participants.json"):
            leg = OPERATOR_LEG if form.get("Label") == ["operator"] else UNIT_LEG
            label = form["Label"][0]
            body = {"call_sid": leg, "account_sid": ACCOUNT, "label": label}
            self._answer(201, body | {"conference_sid": conference})
        elif "/Participants/" in path:
            if not room.startswith("CF"):  # a name where Twilio wants the SID
                self._answer(404, {"code": 20404, "message": "not found", "status": 404})
                return
            leg = path.rsplit("/", 1)[-1].removesuffix(".json")
            self._answer(200, {"call_sid": leg, "conference_sid": conference})
        else:
            call = path.rsplit("/", 1)[-1].removesuffix(".json")
            self._answer(200, {"sid": call, "account_sid": ACCOUNT, "status": "in-progress"})

    def _answer(self, status: int, body: Mapping[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def twilio_api() -> Iterator[str]:
    TwilioApi.received = []
    with http_peer(TwilioApi) as url:
        yield url


@pytest.fixture
def app(redis: Redis, redis_server, tmp_path: Path, twilio_api: str, monkeypatch):  # type: ignore[no-untyped-def]
    people = (("wang", "operator", "王芳", "1001"),)
    app = app_on_twilio(
        redis,
        redis_server.url,
        tmp_path,
        twilio_api,
        monkeypatch,
        ACCOUNT,
        people,
        TWILIO_CALLER_ID="+8689812345",
    )
    with app.extensions["hotline"].desk.sessions() as db:
        set_duty_phone(db, "water-affairs", "0898-66661234")
        db.commit()
    return app


def requests() -> list[tuple[str, dict[str, str]]]:
    """What the consult asked of Twilio so far, each form's fields single-valued; taken."""
    taken = [(p, {k: v[0] for k, v in f.items()}) for p, f in TwilioApi.received]
    TwilioApi.received = []
    return taken


def conference_of(twiml: str) -> dict[str, str]:
    found = re.search(r"<Conference ([^>]*)>([^<]*)</Conference>", twiml)
    assert found, twiml
    return {**dict(re.findall(r'(\w+)="([^"]*)"', found[1])), "room": found[2]}


def consult(client, headers, step: str, **form: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/console/calls/{CALL}/consult", data={"step": step, **form}, headers=headers
    )


def wang_on_a_call(app):  # type: ignore[no-untyped-def]
    """wang's seat 1001 talking to the caller, and wang's console with its CSRF header."""
    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    connect_a_caller(app)
    wang, csrf = console_of(app, "wang")
    return svc, wang, csrf


def wang_consulting(app, *then: str):  # type: ignore[no-untyped-def]
    """wang on a call, consulting the water unit, then each step in ``then``; what the
    Twilio stand-in received so far is cleared."""
    svc, wang, csrf = wang_on_a_call(app)
    consult(wang, csrf, "start", unit="water-affairs")
    for step in then:
        consult(wang, csrf, step)
    requests()
    return svc, wang, csrf


def leg_ended(app, leg: str, status: str = "completed"):  # type: ignore[no-untyped-def]
    """Twilio's status callback for a consult participant's call that has ended."""
    twilio = TwilioSigner(app.test_client())
    return twilio.post(f"/twilio/consult-leg?call={CALL}", {"CallSid": leg, "CallStatus": status})


def seat_dial_ended(app):  # type: ignore[no-untyped-def]
    """The caller's <Dial> to seat 1001 reporting its end (the caller left it)."""
    twilio = TwilioSigner(app.test_client())
    return twilio.post(
        "/twilio/dial-status?seat=1001",
        {"CallSid": CALL, "CallStatus": "in-progress", "DialCallStatus": "completed"},
    )


def ended(svc, outcome: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The call's record, which ended with ``outcome`` and left wang's seat in wrap-up."""
    record = svc.queue.call(CALL)
    assert record["state"] == "ended" and record["outcome"] == outcome
    assert svc.queue.seat("1001")["state"] == "wrap_up"
    return record


def handed_to_the_unit(svc) -> None:  # type: ignore[no-untyped-def]
    record = ended(svc, "transferred")
    assert record["transfer_kind"] == "unit" and record["transferred_to"] == "water-affairs"


def case_trail(app, svc):  # type: ignore[no-untyped-def]
    """The call's case (its filing job run) and its trail's notes."""
    from cases.models import Case, CaseEvent

    run_jobs(app)
    with svc.desk.sessions() as db:
        case = db.scalar(select(Case).where(Case.call_id == CALL))
        assert case is not None
        trail = [e.note for e in db.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))]
        return case, trail


HANDED_OVER_AFTER_THREE_WAY = "转接 市水务局（值班电话 +8689866661234）：三方通话后退出"


def test_a_consult_becomes_a_three_way_call_and_the_operator_leaves(app) -> None:  # type: ignore[no-untyped-def]
    from calls.figures import record_calls
    from cases.models import CallRecord

    svc, wang, csrf = wang_on_a_call(app)
    page = wang.get("/console/call-controls").get_data(as_text=True)
    assert 'id="consult-transfer"' in page
    assert '<option value="water-affairs">' in page and "0898 6666 1234" in page

    started = consult(wang, csrf, "start", unit="water-affairs")
    assert started.status_code == 200, started.get_data(as_text=True)
    shown = started.get_data(as_text=True)
    assert "正在与" in shown and "0898 6666 1234" in shown and "来电人保持中" in shown
    assert 'value="threeway"' in shown and 'value="cancel"' in shown
    (caller_path, caller), (op_path, op), (unit_path, unit) = requests()
    # The caller waits in their own conference, music until a member starts it.
    assert caller_path == f"{API}/Calls/{CALL}.json"
    room = conference_of(caller["Twiml"])
    assert room["room"] == ROOM and room["startConferenceOnEnter"] == "false"
    assert room["endConferenceOnExit"] == "true" and room["waitUrl"].startswith(PUBLIC_BASE)
    # The operator and the unit are called into the consult room: nobody else hears it.
    assert op_path == unit_path == f"{API}/Conferences/{ROOM}-consult/Participants.json"
    assert op["To"] == "client:1001" and op["StartConferenceOnEnter"] == "true"
    assert unit["To"] == "+8689866661234" and unit["StartConferenceOnEnter"] == "false"
    assert op["From"] == unit["From"] == "+8689812345"
    record = svc.queue.call(CALL)
    assert record["state"] == "on_call" and record["consult"] == "consulting"
    assert record["consult_unit"] == "water-affairs" and record["held_at"]

    # The seat's <Dial> reporting its end keeps the caller in their conference.
    after = seat_dial_ended(app)
    assert conference_of(after.get_data(as_text=True))["room"] == ROOM
    assert svc.queue.call(CALL)["state"] == "on_call"
    # While consulting, hold and the emergency buttons are not offered; a hold is refused.
    assert 'id="call-hold"' not in shown and 'id="emergency-transfer"' not in shown
    held = wang.post(f"/console/calls/{CALL}/hold", data={"action": "hold"}, headers=csrf)
    assert held.status_code == 409 and "正在咨询转接中" in held.get_data(as_text=True)
    assert requests() == []

    three = consult(wang, csrf, "threeway")
    assert three.status_code == 200 and "三方通话中" in three.get_data(as_text=True)
    moves = requests()
    legs = [f"{API}/Calls/{UNIT_LEG}.json", f"{API}/Calls/{OPERATOR_LEG}.json"]
    assert [p for p, _ in moves] == legs
    for _, form in moves:
        joined = conference_of(form["Twiml"])
        assert joined["room"] == ROOM and joined["startConferenceOnEnter"] == "true"
        assert joined["endConferenceOnExit"] == "false"
    assert svc.queue.call(CALL)["consult"] == "threeway" and not svc.queue.call(CALL)["held_at"]

    left = consult(wang, csrf, "leave")
    assert left.status_code == 200 and "已转接 市水务局" in left.get_data(as_text=True)
    (unit_update, ends), (op_update, hung) = requests()
    # The unit stays with the caller, and its hang-up now ends the conference.
    assert unit_update == f"{API}/Conferences/{CF_ROOM}/Participants/{UNIT_LEG}.json"
    assert ends == {"EndConferenceOnExit": "true"}
    assert op_update == f"{API}/Calls/{OPERATOR_LEG}.json" and hung == {"Status": "completed"}
    handed_to_the_unit(svc)
    # Redrawn in wrap-up, the panel still says where the caller went; the case form stays.
    assert "已转接 市水务局" in wang.get("/console/call-controls").get_data(as_text=True)
    assert '<form id="case-form"' in wang.get(f"/console/calls/{CALL}/pop").get_data(as_text=True)

    case, trail = case_trail(app, svc)
    assert case.transferred_to == "water-affairs"
    assert case.handling is None  # not an emergency transfer
    assert HANDED_OVER_AFTER_THREE_WAY in trail, trail
    with svc.desk.sessions() as db:
        while record_calls(db, svc.redis, svc.queue.keys):
            pass
        row = db.get(CallRecord, CALL)
        assert row.transfer_kind == "unit" and row.transferred_to == "water-affairs"
        assert row.outcome == "answered"


def test_a_consult_is_cancelled_then_handed_over(app) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf = wang_on_a_call(app)
    assert consult(wang, csrf, "threeway").status_code == 409  # nothing to make three-way
    assert consult(wang, csrf, "start", unit="no-such-unit").status_code == 404
    assert requests() == []

    consult(wang, csrf, "start", unit="water-affairs")
    requests()
    back = consult(wang, csrf, "cancel")
    assert back.status_code == 200 and 'id="consult-transfer"' in back.get_data(as_text=True)
    (unit_path, hung), (op_path, joined) = requests()
    assert unit_path == f"{API}/Calls/{UNIT_LEG}.json" and hung == {"Status": "completed"}
    assert op_path == f"{API}/Calls/{OPERATOR_LEG}.json"
    room = conference_of(joined["Twiml"])
    # With the operator back, their hang-up ends the call as after any conversation.
    assert room["room"] == ROOM and room["endConferenceOnExit"] == "true"
    record = svc.queue.call(CALL)
    assert record["state"] == "on_call" and not record["consult"] and not record["held_at"]

    consult(wang, csrf, "start", unit="water-affairs")
    # wang is with the caller already: their own leg moves, their phone is not rung again.
    created = [f["To"] for p, f in requests() if p.endswith("/Participants.json")]
    assert created == ["+8689866661234"]
    done = consult(wang, csrf, "complete")
    assert done.status_code == 200 and "已转接 市水务局" in done.get_data(as_text=True)
    (unit_path, joined), (op_path, hung) = requests()
    assert unit_path == f"{API}/Calls/{UNIT_LEG}.json"
    room = conference_of(joined["Twiml"])
    assert room["room"] == ROOM and room["endConferenceOnExit"] == "true"
    assert op_path == f"{API}/Calls/{OPERATOR_LEG}.json" and hung == {"Status": "completed"}
    record = svc.queue.call(CALL)
    assert record["outcome"] == "transferred" and record["transfer_kind"] == "unit"
    kinds = [f[b"type"].decode() for _, f in svc.redis.xrange(svc.queue.keys.events)]
    assert kinds.count("CONSULT") == 3 and "ABANDON" not in kinds
    # The caller's later <Dial> end (their conference over) finds the call handed on.
    assert parse(seat_dial_ended(app)).find("Dial") is not None


def test_the_operator_hanging_up_in_a_three_way_call_leaves_the_caller_with_the_unit(app) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf = wang_consulting(app, "threeway")
    # wang simply hangs up their phone: the seat is not stranded on the call.
    assert leg_ended(app, OPERATOR_LEG).status_code == 204
    handed_to_the_unit(svc)
    # The unit stays with the caller, and its hang-up now ends the conference.
    assert requests() == [
        (
            f"{API}/Conferences/{CF_ROOM}/Participants/{UNIT_LEG}.json",
            {"EndConferenceOnExit": "true"},
        )
    ]
    case, trail = case_trail(app, svc)
    assert case.transferred_to == "water-affairs"
    assert HANDED_OVER_AFTER_THREE_WAY in trail, trail
    # A repeated callback changes nothing.
    assert leg_ended(app, OPERATOR_LEG).status_code == 204 and requests() == []


def test_the_unit_hanging_up_in_a_three_way_call_leaves_the_operator_with_the_caller(app) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf = wang_consulting(app, "threeway")

    assert leg_ended(app, UNIT_LEG).status_code == 204
    # An ordinary call again: wang and the caller talk on in the caller's conference.
    record = svc.queue.call(CALL)
    assert record["state"] == "on_call" and record["seat"] == "1001"
    assert not record["consult"] and not record["consult_unit"] and not record["held_at"]
    steps = [
        f[b"step"].decode()
        for _, f in svc.redis.xrange(svc.queue.keys.events)
        if f[b"type"] == b"CONSULT"
    ]
    assert steps == ["start", "threeway", "unit-left"]
    # Nobody is moved; wang's hang-up now ends the conference, as after a cancel.
    assert requests() == [
        (
            f"{API}/Conferences/{CF_ROOM}/Participants/{OPERATOR_LEG}.json",
            {"EndConferenceOnExit": "true"},
        )
    ]
    page = wang.get("/console/call-controls").get_data(as_text=True)
    assert 'id="consult-transfer"' in page and "三方通话中" not in page
    assert consult(wang, csrf, "leave").status_code == 409
    # A repeated callback changes nothing.
    assert leg_ended(app, UNIT_LEG).status_code == 204 and requests() == []

    leg_ended(app, OPERATOR_LEG)
    ended(svc, "completed")


def test_the_operator_hanging_up_after_a_cancelled_consult_ends_the_call(app) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf = wang_consulting(app, "cancel")
    # The unit's leg, hung up by the cancel, reports its end: nothing changes.
    leg_ended(app, UNIT_LEG)
    assert svc.queue.call(CALL)["state"] == "on_call"

    leg_ended(app, OPERATOR_LEG)
    ended(svc, "completed")
    kinds = [f[b"type"].decode() for _, f in svc.redis.xrange(svc.queue.keys.events)]
    assert "COMPLETE" in kinds and "ABANDON" not in kinds


def test_a_desk_steps_own_hang_up_of_the_operator_ends_nothing_more(app) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf = wang_on_a_call(app)
    consult(wang, csrf, "start", unit="water-affairs")
    consult(wang, csrf, "cancel")
    # A hold after the cancel moves the caller out of the room the operator is in.
    held = wang.post(f"/console/calls/{CALL}/hold", data={"action": "hold"}, headers=csrf)
    assert held.status_code == 200
    leg_ended(app, OPERATOR_LEG)
    record = svc.queue.call(CALL)
    assert record["state"] == "on_call" and record["held_at"]


def test_the_operator_hanging_up_while_consulting_puts_the_caller_back_in_line(app) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf = wang_consulting(app)
    leg_ended(app, OPERATOR_LEG)
    record = svc.queue.call(CALL)
    assert record["state"] in ("waiting", "offered") and not record["consult"]
    assert record["transferred_from"] == "1001" and record["transfer_kind"] == "skill"
    assert svc.queue.seat("1001")["state"] == "wrap_up"
    # The unit's leg ends; the caller leaves their conference for the queue.
    (unit_path, hung), (caller_path, moved) = requests()
    assert unit_path == f"{API}/Calls/{UNIT_LEG}.json" and hung == {"Status": "completed"}
    assert caller_path == f"{API}/Calls/{CALL}.json"
    assert moved["Url"] == f"{PUBLIC_BASE}/twilio/offered"


def test_the_caller_hanging_up_during_a_consult_ends_its_legs_and_frees_the_seat(app) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf = wang_consulting(app)
    twilio = TwilioSigner(app.test_client())
    gone = twilio.post("/twilio/status", {"CallSid": CALL, "CallStatus": "completed"})
    assert gone.status_code == 204
    assert svc.queue.call(CALL)["state"] == "ended"
    assert svc.queue.seat("1001")["state"] == "wrap_up"
    assert requests() == [
        (f"{API}/Calls/{UNIT_LEG}.json", {"Status": "completed"}),
        (f"{API}/Calls/{OPERATOR_LEG}.json", {"Status": "completed"}),
    ]
    # Their ends, reported, change nothing more.
    leg_ended(app, OPERATOR_LEG)
    leg_ended(app, UNIT_LEG)
    assert svc.queue.seat("1001")["state"] == "wrap_up" and requests() == []


@pytest.mark.parametrize("status", ["no-answer", "busy", "completed"])
def test_a_unit_that_hangs_up_or_never_answers_brings_the_operator_back(app, status) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf = wang_consulting(app)
    assert leg_ended(app, UNIT_LEG, status).status_code == 204
    # The queue no longer shows a consult; the call is wang's, with the caller.
    record = svc.queue.call(CALL)
    assert record["state"] == "on_call" and not record["consult"] and not record["held_at"]
    [(op_path, joined)] = requests()
    assert op_path == f"{API}/Calls/{OPERATOR_LEG}.json"
    room = conference_of(joined["Twiml"])
    assert room["room"] == ROOM and room["endConferenceOnExit"] == "true"
    # The console offers a new consult, which starts as the first did.
    assert consult(wang, csrf, "start", unit="water-affairs").status_code == 200
    assert svc.queue.call(CALL)["consult"] == "consulting"
    # The operator hanging up later, with the caller, ends the call as after any other.
    requests()
    consult(wang, csrf, "cancel")
    leg_ended(app, OPERATOR_LEG)
    assert svc.queue.call(CALL)["outcome"] == "completed"
