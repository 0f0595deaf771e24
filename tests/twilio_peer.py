"""Sign requests exactly as Twilio does, and read TwiML back as XML."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from twilio.request_validator import RequestValidator

AUTH_TOKEN = "test-auth-token-not-a-secret"
PUBLIC_BASE = "https://hotline.example.org"


def sid(n: int | str) -> str:
    return "CA" + f"{n}".rjust(32, "0")[-32:].replace(" ", "0")


def signed_incoming_call(call: int, base: str = PUBLIC_BASE) -> tuple[str, dict[str, str]]:
    """A new call's /twilio/voice webhook as Twilio sends it: the urlencoded body and
    the headers, signed for ``base`` (for tests that speak raw HTTP)."""
    params = {
        "CallSid": sid(call),
        "From": "+8613800000001",
        "To": "+8612345",
        "CallStatus": "ringing",
        "AccountSid": "AC" + "0" * 32,
        "Direction": "inbound",
    }
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        base + "/twilio/voice", params
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }
    return urlencode(params), headers


class TwilioSigner:
    def __init__(self, client: Any, token: str = AUTH_TOKEN, base: str = PUBLIC_BASE) -> None:
        self.client = client
        self.validator = RequestValidator(token)
        self.base = base

    def signature(self, url: str, params: dict[str, str]) -> str:
        return self.validator.compute_signature(url, params)

    def post(self, url_or_path: str, params: dict[str, str], **headers: str) -> Any:
        """POST as Twilio would: full public URL signed, request sent to its path."""
        url = url_or_path if url_or_path.startswith("http") else self.base + url_or_path
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        sig = {"X-Twilio-Signature": self.signature(url, params)}
        sig.update(headers)
        return self.client.post(path, data=params, headers=sig)


def parse(response: Any) -> ET.Element:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    return root


def verbs(root: ET.Element) -> list[str]:
    return [child.tag for child in root]


@contextmanager
def http_peer(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """A stand-in HTTP server on loopback (Twilio's REST API, or a host it redirects
    to) for the duration of the block: its base URL, named by ``host``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def app_on_twilio(
    redis: Any,
    redis_url: str,
    tmp_path: Any,
    api_url: str,
    monkeypatch: Any,
    account: str,
    people: tuple[tuple[str, str, str, str | None], ...],
    **more: str,
) -> Any:
    """The web app on a fresh SQLite file, on Twilio (its REST API at ``api_url``),
    with ``people`` as (username, role, display name, seat). The RQ jobs read the same
    settings from the environment, as in a worker."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user
    from hotline.config import load_settings
    from hotline.webapp import create_app
    from tests.test_console import PASSWORD

    db_url = f"sqlite:///{tmp_path / 'web.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as s:
        seed(s)
        s.commit()
        for username, role, name, seat in people:
            add_user(s, username, role, PASSWORD, display_name=name, seat=seat)
    env = {
        "HOTLINE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": account,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_BASE_URL": api_url,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "HOTLINE_WRAPUP_S": "30",
        "HOTLINE_SECRET_KEY": "test",
        **more,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return create_app({"SETTINGS": load_settings(env), "REDIS": redis, "TESTING": True})


# -- a stateful stand-in for Twilio's calls and conferences ---------------------------------
# The REST API (calls updated, conference participants created and updated) over real
# HTTP, and the phones and conferences behind it, as Twilio documents them: a leg that
# leaves a conference with endConferenceOnExit ends it, and every member whose TwiML has
# nothing after its <Dial><Conference> then hangs up; a <Dial>'s child redirected away
# sends the parent to its <Dial action>; a parent redirected hangs its child up; a
# coach is heard by the coached leg alone; a muted or held leg by nobody; a finished
# call cannot be updated (21220), a participant who is not in the conference neither
# (20404). Status callbacks and <Dial> actions are signed webhooks, queued as Twilio
# sends them (after the fact) and delivered by settle(); phones ring until answer(),
# ring_out() or hang_up(); CallDuration counts on the stand-in's own clock (advance()).

LIVE = ("queued", "ringing", "in-progress")


@dataclass
class Leg:
    sid: str
    to: str
    status: str = "ringing"
    room: str = ""  # the conference it is in
    parent: str = ""  # a <Dial>'s child: its parent, while bridged
    child: str = ""  # a <Dial>'s parent: its child, while ringing or bridged
    dial_action: str = ""
    answer_url: str = ""  # a <Dial> noun's url, run on the child as it answers
    joins: tuple[str, Member] | None = None  # a participant's conference, on answer
    status_callback: str = ""
    answered_at: float | None = None


@dataclass
class Member:
    start: bool = True
    end: bool = False
    muted: bool = False
    hold: bool = False
    coaching: bool = False
    coach: str = ""  # call_sid_to_coach
    label: str = ""


@dataclass
class Room:
    name: str
    sid: str
    status: str = "init"  # in-progress once a member who starts it is in; completed
    members: dict[str, Member] = field(default_factory=dict)


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None else value.lower() == "true"


class TwilioCloud:
    def __init__(self, account: str, signer: TwilioSigner | None = None) -> None:
        self.account = account
        self.signer = signer
        self.legs: dict[str, Leg] = {}
        self.rooms: dict[str, Room] = {}
        self.webhooks: list[tuple[str, dict[str, str], str]] = []
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.now = 1_800_000_000.0
        self.lock = threading.RLock()
        self._next = 9000

    # -- what the tests do: calls arrive, phones answer or hang up, time passes ---------

    def new_sid(self) -> str:
        self._next += 1
        return sid(self._next)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def call_in(self, call: str, params: dict[str, str]) -> None:
        """A citizen's call reaches the number: /twilio/voice, its TwiML run."""
        with self.lock:
            self.legs[call] = Leg(call, params.get("To", ""), "in-progress", answered_at=self.now)
            self.legs[call].status_callback = PUBLIC_BASE + "/twilio/status"
        self.webhooks.append((PUBLIC_BASE + "/twilio/voice", params, call))
        self.settle()

    def answer(self, leg_sid: str) -> None:
        with self.lock:
            leg = self.legs[leg_sid]
            assert leg.status in ("queued", "ringing"), leg
            leg.status, leg.answered_at = "in-progress", self.now
            if leg.joins is not None:
                self._join(leg_sid, *leg.joins)
                leg.joins = None
            elif leg.parent and leg.answer_url:
                params = {"CallSid": leg_sid, "ParentCallSid": leg.parent}
                params["CallStatus"] = "in-progress"
                self.webhooks.append((leg.answer_url, params, "bridge:" + leg_sid))
        self.settle()

    def hang_up(self, leg_sid: str) -> None:
        with self.lock:
            self._end(leg_sid, "completed")
        self.settle()

    def ring_out(self, leg_sid: str, status: str = "no-answer") -> None:
        with self.lock:
            assert self.legs[leg_sid].status in ("queued", "ringing")
            self._end(leg_sid, status)
        self.settle()

    def settle(self) -> None:
        """Deliver the queued webhooks, in order, running the TwiML they answer."""
        assert self.signer is not None
        while True:
            with self.lock:
                if not self.webhooks:
                    return
                url, params, runs_on = self.webhooks.pop(0)
            answer = self.signer.post(url, params)
            assert answer.status_code < 500, (url, answer.get_data(as_text=True))
            if runs_on and answer.mimetype == "text/xml":
                with self.lock:
                    self._answered(runs_on, answer.get_data(as_text=True))

    def _answered(self, runs_on: str, xml: str) -> None:
        if runs_on.startswith("bridge:"):
            # A <Dial> noun's url ran on the child: bridged unless it hung up.
            if ET.fromstring(xml).find("Hangup") is not None:
                self._end(runs_on.removeprefix("bridge:"), "completed")
        elif self.legs[runs_on].status == "in-progress":
            self._run(runs_on, xml)

    # -- what a test asks --------------------------------------------------------------

    def child_of(self, parent: str) -> str:
        return self.legs[parent].child

    def calls_to(self, to: str) -> list[str]:
        return [s for s, leg in self.legs.items() if leg.to == to]

    def room_of(self, leg_sid: str) -> Room | None:
        leg = self.legs[leg_sid]
        return self.rooms[leg.room] if leg.room else None

    def hears(self, leg_sid: str) -> set[str]:
        """Whom this leg hears now ('music' while it waits or is held)."""
        with self.lock:
            leg = self.legs[leg_sid]
            if leg.status != "in-progress":
                return set()
            other = leg.parent or leg.child
            if other and self.legs[other].status == "in-progress":
                return {other}
            if not leg.room:
                return set()
            room = self.rooms[leg.room]
            if room.status != "in-progress" or room.members[leg_sid].hold:
                return {"music"}
            return {
                s
                for s, m in room.members.items()
                if s != leg_sid
                and not m.muted
                and not m.hold
                and (not m.coaching or m.coach == leg_sid)
            }

    # -- Twilio's side ------------------------------------------------------------------

    def _callback(self, leg: Leg) -> None:
        if leg.status_callback:
            length = int(self.now - leg.answered_at) if leg.answered_at else 0
            params = {"CallSid": leg.sid, "CallStatus": leg.status, "CallDuration": str(length)}
            self.webhooks.append((leg.status_callback, params, ""))

    def _end(self, leg_sid: str, status: str) -> None:
        leg = self.legs[leg_sid]
        if leg.status not in LIVE:
            return
        leg.status = status if leg.status == "in-progress" or status != "completed" else "canceled"
        if leg.room:
            self._leave(leg_sid)
        if leg.child:
            child = self.legs[leg.child]
            leg.child = ""
            self._dial_ended(leg, child, "completed" if child.answered_at else "canceled")
            child.parent = ""
            self._end(child.sid, "completed")
        if leg.parent:
            parent = self.legs[leg.parent]
            leg.parent, parent.child = "", ""
            self._dial_ended(parent, leg, "completed" if leg.answered_at else status)
        self._callback(leg)

    def _dial_ended(self, parent: Leg, child: Leg, dial_status: str) -> None:
        if not parent.dial_action:
            if parent.status == "in-progress":
                self._end(parent.sid, "completed")  # nothing after the <Dial>
            return
        length = int(self.now - child.answered_at) if child.answered_at else 0
        params = {
            "CallSid": parent.sid,
            "CallStatus": parent.status,
            "DialCallStatus": dial_status,
            "DialCallSid": child.sid,
            "DialCallDuration": str(length),
        }
        self.webhooks.append((parent.dial_action, params, parent.sid))
        parent.dial_action = ""

    def _join(self, leg_sid: str, name: str, member: Member) -> None:
        room = self.rooms.get(name)
        if room is None or room.status == "completed":
            self._next += 1
            room = self.rooms[name] = Room(name, "CF" + f"{self._next}".rjust(32, "0"))
        room.members[leg_sid] = member
        self.legs[leg_sid].room = name
        if member.start and room.status == "init":
            room.status = "in-progress"

    def _leave(self, leg_sid: str) -> None:
        leg = self.legs[leg_sid]
        room = self.rooms[leg.room]
        member = room.members.pop(leg_sid)
        leg.room = ""
        if member.end or not room.members:
            room.status = "completed"
            for other in list(room.members):
                room.members.pop(other)
                self.legs[other].room = ""
                self._end(other, "completed")  # no TwiML after its <Dial><Conference>

    def _leave_twiml(self, leg: Leg) -> None:
        """The leg's TwiML is replaced (a call update): it leaves what it was doing."""
        if leg.room:
            self._leave(leg.sid)
        if leg.child:  # a parent redirected hangs its child up; its <Dial> action is lost
            child = self.legs[leg.child]
            leg.child, child.parent, leg.dial_action = "", "", ""
            self._end(child.sid, "completed")
        if leg.parent:  # a child redirected away: the parent goes on to its <Dial> action
            parent = self.legs[leg.parent]
            leg.parent, parent.child = "", ""
            self._dial_ended(parent, leg, "completed")

    def _run(self, leg_sid: str, xml: str) -> None:
        leg = self.legs[leg_sid]
        for verb in ET.fromstring(xml):
            if verb.tag == "Hangup":
                break
            music = verb.tag == "Play" and verb.get("loop") == "0"
            if verb.tag in ("Enqueue", "Leave", "Gather") or music:
                return  # waits there
            if verb.tag == "Redirect":
                self.webhooks.append((verb.text or "", {"CallSid": leg_sid}, leg_sid))
                return
            if verb.tag != "Dial":
                continue
            conference = verb.find("Conference")
            if conference is not None:
                member = Member(
                    start=_flag(conference.get("startConferenceOnEnter"), True),
                    end=_flag(conference.get("endConferenceOnExit"), False),
                )
                self._join(leg_sid, conference.text or "", member)
                return
            noun = next(iter(verb))
            prefix = {"Client": "client:", "Sip": "", "Number": ""}[noun.tag]
            child = Leg(self.new_sid(), prefix + (noun.text or ""), parent=leg_sid)
            child.answer_url = noun.get("url", "")
            self.legs[child.sid] = child
            leg.child, leg.dial_action = child.sid, verb.get("action", "")
            return
        self._end(leg_sid, "completed")  # the TwiML ran out

    # -- the REST API --------------------------------------------------------------------

    def rest(self, path: str, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        one = {k: v[0] for k, v in form.items()}
        with self.lock:
            self.requests.append((path, form))
            base = f"/2010-04-01/Accounts/{self.account}/"
            if not path.startswith(base) or not path.endswith(".json"):
                return 404, {"code": 20404, "message": "not found"}
            parts = path[len(base) : -len(".json")].split("/")
            if parts[0] == "Calls" and len(parts) == 2:
                return self._update_call(parts[1], one)
            if parts[0] == "Conferences" and parts[2:3] == ["Participants"]:
                room = self._room(parts[1])
                if len(parts) == 3:
                    return self._add_participant(parts[1], room, form, one)
                return self._update_participant(room, parts[3], one)
            return 404, {"code": 20404, "message": "not found"}

    def _room(self, name_or_sid: str) -> Room | None:
        if name_or_sid in self.rooms:
            return self.rooms[name_or_sid]
        return next((r for r in self.rooms.values() if r.sid == name_or_sid), None)

    def _update_call(self, leg_sid: str, one: dict[str, str]) -> tuple[int, dict[str, Any]]:
        leg = self.legs.get(leg_sid)
        if leg is None:
            return 404, {"code": 20404, "message": f"no call {leg_sid}"}
        if leg.status not in LIVE:
            return 400, {"code": 21220, "message": "Call is not in-progress. Cannot redirect."}
        if "StatusCallback" in one:
            leg.status_callback = one["StatusCallback"]
        if one.get("Status") == "completed":
            self._end(leg_sid, "completed")
        elif "Twiml" in one or "Url" in one:
            if leg.status != "in-progress":
                return 400, {"code": 21220, "message": "Call is not in-progress. Cannot redirect."}
            self._leave_twiml(leg)
            if "Twiml" in one:
                self._run(leg_sid, one["Twiml"])
            else:
                self.webhooks.append((one["Url"], {"CallSid": leg_sid}, leg_sid))
        return 200, {"sid": leg_sid, "account_sid": self.account, "status": leg.status}

    def _participant(self, room: Room, leg_sid: str) -> dict[str, Any]:
        m = room.members.get(leg_sid) or (self.legs[leg_sid].joins or ("", Member()))[1]
        return {
            "account_sid": self.account,
            "call_sid": leg_sid,
            "conference_sid": room.sid,
            "label": m.label,
            "muted": m.muted,
            "hold": m.hold,
            "coaching": m.coaching,
            "call_sid_to_coach": m.coach or None,
            "end_conference_on_exit": m.end,
            "start_conference_on_enter": m.start,
            "status": "connected" if leg_sid in room.members else "queued",
        }

    def _coached(self, room: Room | None, member: Member) -> bool:
        """A coach needs the coached call in the conference."""
        return not member.coaching or (room is not None and member.coach in room.members)

    def _add_participant(
        self, name: str, room: Room | None, form: dict[str, list[str]], one: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if not one.get("From") or not one.get("To"):
            return 400, {"code": 21604, "message": "From and To are required"}
        member = Member(
            start=_flag(one.get("StartConferenceOnEnter"), True),
            end=_flag(one.get("EndConferenceOnExit"), False),
            muted=_flag(one.get("Muted"), False),
            hold=_flag(one.get("Hold"), False),
            coach=one.get("CallSidToCoach", ""),
            label=one.get("Label", ""),
        )
        member.coaching = _flag(one.get("Coaching"), bool(member.coach))
        if member.coaching and not self._coached(room, member):
            return 400, {"code": 16025, "message": "CallSidToCoach is not in the conference"}
        if room is None or room.status == "completed":
            self._next += 1
            room = self.rooms[name] = Room(name, "CF" + f"{self._next}".rjust(32, "0"))
        leg = Leg(self.new_sid(), one["To"])
        self.legs[leg.sid] = leg
        leg.joins, leg.status_callback = (room.name, member), one.get("StatusCallback", "")
        return 201, self._participant(room, leg.sid)

    def _update_participant(
        self, room: Room | None, leg_sid: str, one: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if room is None or room.status == "completed" or leg_sid not in room.members:
            return 404, {"code": 20404, "message": f"no participant {leg_sid} in the conference"}
        m = room.members[leg_sid]
        changed = replace(
            m,
            muted=_flag(one.get("Muted"), m.muted),
            hold=_flag(one.get("Hold"), m.hold),
            end=_flag(one.get("EndConferenceOnExit"), m.end),
            coach=one.get("CallSidToCoach", m.coach),
        )
        changed.coaching = _flag(one.get("Coaching"), m.coaching or "CallSidToCoach" in one)
        if changed.coaching and not self._coached(room, changed):
            return 400, {"code": 16025, "message": "CallSidToCoach is not in the conference"}
        room.members[leg_sid] = changed
        return 200, self._participant(room, leg_sid)

    def api(self) -> type[BaseHTTPRequestHandler]:
        cloud = self

        class Api(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                status, body = cloud.rest(unquote(urlsplit(self.path).path), form)
                if status >= 400:
                    body = {**body, "status": status, "more_info": ""}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Api
