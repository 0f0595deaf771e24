"""Sign requests exactly as Twilio does, and read TwiML back as XML."""

from __future__ import annotations

import io
import json
import re
import threading
import wave
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email.utils import formatdate
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


# -- a stateful stand-in for Twilio's calls, conferences and recordings ---------------------
# The REST API (calls updated; conference participants created, fetched and updated;
# conferences listed and fetched; recordings paused and resumed; recordings' media) over
# real HTTP, and the phones and conferences behind it, as Twilio documents them:
#
# - Participants are created in a conference named by its SID (which must be active) or
#   by its friendly name (an active one of that name, or a new one); fetched and updated
#   only by the conference's SID (CF...), the participant by call SID or label.
# - A conference starts (audio mixed, ``conference-start``) once it has two participants,
#   one of them starting it; until then its members hear the wait music. A leg that
#   leaves with endConferenceOnExit ends it, and every member whose TwiML has nothing
#   after its <Dial><Conference> then hangs up. Its status callback (URL and events) is
#   the first joining participant's; events carry SequenceNumber and Timestamp, leaves
#   ReasonParticipantLeft, the end CallSidEndingConference and ReasonConferenceEnded; a
#   fetched conference says the same (call_sid_ending_conference).
# - <Dial record="record-from-answer..."> records the parent call from the bridge to its
#   end (callbacks name the parent's CallSid). <Conference record="record-from-start">
#   (or the participants API's ConferenceRecord) records the conference from its start
#   (hold music never is) to its end; those callbacks carry ConferenceSid and no CallSid.
#   A recording is paused or resumed through the call's or the conference's Recordings
#   subresource only (a recording of neither is not found there); paused with
#   PauseBehavior skip, its length leaves the pause out. What a recording holds (who is
#   audible in it, e.g. a coach) Twilio does not document, so the stand-in does not say.
# - A <Dial>'s child redirected away sends the parent to its <Dial action>; a parent
#   redirected hangs its child up; a coach is heard by the coached leg alone; a muted or
#   held leg by nobody; a finished call cannot be updated (21220).
#
# Status callbacks, recording callbacks and <Dial> actions are signed webhooks, queued as
# Twilio sends them (after the fact) and delivered in order by settle(), or one by one
# in any order a test picks (hold(), deliver(), release()). Phones ring until answer(),
# ring_out() or hang_up(); durations count on the stand-in's own clock (advance()).

LIVE = ("queued", "ringing", "in-progress")
CF_SID = re.compile(r"CF[0-9a-fA-F]{32}\Z")
RE_SID = re.compile(r"RE[0-9a-fA-F]{32}\Z")
NOT_FOUND = 404, {"code": 20404, "message": "The requested resource was not found"}


def _stamp(at: float) -> str:
    return formatdate(at, usegmt=True)  # RFC 2822, as Twilio's Timestamp


@dataclass
class Leg:
    sid: str
    to: str
    status: str = "ringing"
    room: str = ""  # the conference it is in
    parent: str = ""  # a <Dial>'s child: its parent, while bridged
    child: str = ""  # a <Dial>'s parent: its child, while ringing or bridged
    dial_action: str = ""
    dial_record: dict[str, str] = field(default_factory=dict)  # its <Dial>'s record attributes
    recording: str = ""  # a <Dial>'s parent: the recording of the bridge, while it runs
    answer_url: str = ""  # a <Dial> noun's url, run on the child as it answers
    joins: tuple[str, Member, RoomOptions] | None = None  # a participant's, on answer
    status_callback: str = ""
    answered_at: float | None = None
    sequence: int = 0


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
class RoomOptions:
    """What a joining participant asks of the conference: its status callback (the
    first participant's counts) and whether and how to record it."""

    status_callback: str = ""
    events: tuple[str, ...] = ()
    record: bool = False
    recording_callback: str = ""
    recording_events: tuple[str, ...] = ("completed",)


@dataclass
class Room:
    name: str
    sid: str
    status: str = "init"  # in-progress once started; completed
    members: dict[str, Member] = field(default_factory=dict)
    options: RoomOptions | None = None  # the first participant's status callback
    record: RoomOptions | None = None  # a participant's asking to record it
    recording: str = ""
    sequence: int = 0
    ended_by: str = ""
    reason_ended: str = ""


@dataclass
class Recording:
    sid: str
    call: str  # the parent call a <Dial>'s records; "" for a conference's
    conference: str  # the conference's SID; "" for a <Dial>'s
    callback: str
    events: tuple[str, ...]
    source: str
    channels: int
    started_at: float
    status: str = "in-progress"  # paused, completed
    kept: float = 0.0  # seconds recorded before the current run
    running_since: float | None = None

    def seconds(self, now: float) -> int:
        return int(self.kept + (now - self.running_since if self.running_since else 0))


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None else value.lower() == "true"


def _events(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(value.replace(",", " ").split()) if value else default


def wav_of(seconds: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\x00\x00" * 8000 * max(seconds, 0))
    return out.getvalue()


class TwilioCloud:
    def __init__(self, account: str, signer: TwilioSigner | None = None) -> None:
        self.account = account
        self.signer = signer
        self.base_url = "https://api.twilio.com"  # the REST API's, for recordings' URLs
        self.legs: dict[str, Leg] = {}
        self.rooms: dict[str, Room] = {}  # the newest of each friendly name
        self.conferences: dict[str, Room] = {}  # every one, by SID
        self.recordings: dict[str, Recording] = {}
        self.webhooks: list[tuple[str, dict[str, str], str]] = []
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.now = 1_800_000_000.0
        self.lock = threading.RLock()
        self.holding = False
        self._next = 9000

    # -- what the tests do: calls arrive, phones answer or hang up, time passes ---------

    def new_sid(self, prefix: str = "CA") -> str:
        self._next += 1
        return prefix + f"{self._next}".rjust(32, "0")

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
            elif leg.parent:
                self._bridged(leg_sid)
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

    def hold(self) -> None:
        """Keep the webhooks Twilio sends from now on, for deliver() in any order."""
        self.holding = True

    def pending(self) -> list[str]:
        return [url for url, _, _ in self.webhooks]

    def deliver(self, url_part: str, **has: str) -> dict[str, str]:
        """Deliver the first kept webhook whose URL holds ``url_part`` (and whose
        parameters hold ``has``); its params."""
        with self.lock:
            found = next(
                i
                for i, (url, params, _) in enumerate(self.webhooks)
                if url_part in url and all(params.get(k) == v for k, v in has.items())
            )
            url, params, runs_on = self.webhooks.pop(found)
        self._post(url, params, runs_on)
        return params

    def release(self) -> None:
        self.holding = False
        self.settle()

    def settle(self) -> None:
        """Deliver the queued webhooks, in order, running the TwiML they answer."""
        assert self.signer is not None
        while not self.holding:
            with self.lock:
                if not self.webhooks:
                    return
                url, params, runs_on = self.webhooks.pop(0)
            self._post(url, params, runs_on)

    def _post(self, url: str, params: dict[str, str], runs_on: str) -> None:
        assert self.signer is not None
        answer = self.signer.post(url, params)
        assert answer.status_code < 500, (url, answer.get_data(as_text=True))
        if runs_on and answer.mimetype == "text/xml":
            with self.lock:
                self._answered(runs_on, answer.get_data(as_text=True))

    def _answered(self, runs_on: str, xml: str) -> None:
        if runs_on.startswith("bridge:"):
            # A <Dial> noun's url ran on the child: bridged unless it hung up.
            child = runs_on.removeprefix("bridge:")
            if ET.fromstring(xml).find("Hangup") is not None:
                self._end(child, "completed")
            else:
                self._bridged(child)
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

    def recordings_of(self, call: str = "", conference: str = "") -> list[Recording]:
        return [
            r
            for r in self.recordings.values()
            if (call and r.call == call) or (conference and r.conference == conference)
        ]

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
            leg.sequence += 1
            params = {
                "CallSid": leg.sid,
                "CallStatus": leg.status,
                "CallDuration": str(length),
                "SequenceNumber": str(leg.sequence),
                "Timestamp": _stamp(self.now),
                "AccountSid": self.account,
            }
            self.webhooks.append((leg.status_callback, params, ""))

    def _end(self, leg_sid: str, status: str, reason: str = "participant_hung_up") -> None:
        leg = self.legs[leg_sid]
        if leg.status not in LIVE:
            return
        leg.status = status if leg.status == "in-progress" or status != "completed" else "canceled"
        if leg.room:
            self._leave(leg_sid, reason)
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

    def _bridged(self, child_sid: str) -> None:
        """The <Dial>'s child picked up and is bridged: a recording <Dial> starts."""
        parent = self.legs[self.legs[child_sid].parent]
        asked = parent.dial_record
        if asked.get("record", "").startswith("record-from-answer") and not parent.recording:
            options = RoomOptions(
                record=True,
                recording_callback=asked.get("recordingStatusCallback", ""),
                recording_events=_events(asked.get("recordingStatusCallbackEvent"), ("completed",)),
            )
            dual = asked["record"].endswith("-dual")
            parent.recording = self._start_recording(
                parent.sid, "", options, "DialVerb", 2 if dual else 1
            )

    def _dial_ended(self, parent: Leg, child: Leg, dial_status: str) -> None:
        self._stop_recording(parent.recording)
        parent.recording = ""
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

    # conferences

    def _new_room(self, name: str) -> Room:
        room = Room(name, self.new_sid("CF"))
        self.rooms[name] = self.conferences[room.sid] = room
        return room

    def _join(self, leg_sid: str, name: str, member: Member, options: RoomOptions) -> None:
        room = self.rooms.get(name)
        if room is None or room.status == "completed":
            room = self._new_room(name)
        if room.options is None and not room.members:
            room.options = options  # the first participant's status callback
        if options.record and room.record is None:
            room.record = options
        room.members[leg_sid] = member
        self.legs[leg_sid].room = name
        self._conference_event(room, "participant-join", leg_sid, member)
        if (
            room.status == "init"
            and len(room.members) >= 2
            and any(m.start for m in room.members.values())
        ):
            room.status = "in-progress"
            self._conference_event(room, "conference-start")
            if room.record is not None:
                room.recording = self._start_recording("", room.sid, room.record, "Conference", 1)

    def _leave(self, leg_sid: str, reason: str) -> None:
        leg = self.legs[leg_sid]
        room = self.rooms[leg.room]
        member = room.members.pop(leg_sid)
        leg.room = ""
        self._conference_event(room, "participant-leave", leg_sid, member, reason)
        if member.end or not room.members:
            why = "participant-with-end-conference-on-exit-left" if member.end else ""
            self._end_room(room, leg_sid, why or "last-participant-left")

    def _end_room(self, room: Room, ending: str, reason: str) -> None:
        room.status, room.ended_by, room.reason_ended = "completed", ending, reason
        self._stop_recording(room.recording)
        for other in list(room.members):
            member = room.members.pop(other)
            self.legs[other].room = ""
            why = "moderator_ended_conference"
            self._conference_event(room, "participant-leave", other, member, why)
            self._end(other, "completed")  # no TwiML after its <Dial><Conference>
        self._conference_event(room, "conference-end")

    def _conference_event(
        self,
        room: Room,
        event: str,
        leg_sid: str = "",
        member: Member | None = None,
        reason: str = "",
    ) -> None:
        options = room.options
        if options is None or not options.status_callback:
            return
        if event.split("-", 1)[1] not in options.events:
            return
        room.sequence += 1
        params = {
            "AccountSid": self.account,
            "ConferenceSid": room.sid,
            "FriendlyName": room.name,
            "StatusCallbackEvent": event,
            "SequenceNumber": str(room.sequence),
            "Timestamp": _stamp(self.now),
        }
        if member is not None:
            params.update(
                CallSid=leg_sid,
                Muted=str(member.muted).lower(),
                Hold=str(member.hold).lower(),
                Coaching=str(member.coaching).lower(),
                EndConferenceOnExit=str(member.end).lower(),
                StartConferenceOnEnter=str(member.start).lower(),
            )
            if member.label:
                params["ParticipantLabel"] = member.label
        if event == "participant-leave":
            params["ReasonParticipantLeft"] = reason
            params["ParticipantCallStatus"] = self.legs[leg_sid].status
        if event == "conference-end":
            params["ReasonConferenceEnded"] = room.reason_ended
            if room.ended_by:
                params["CallSidEndingConference"] = room.ended_by
        self.webhooks.append((options.status_callback, params, ""))

    # recordings

    def _start_recording(
        self, call: str, conference: str, options: RoomOptions, source: str, channels: int
    ) -> str:
        rec = Recording(
            self.new_sid("RE"),
            call,
            conference,
            options.recording_callback,
            options.recording_events,
            source,
            channels,
            started_at=self.now,
            running_since=self.now,
        )
        self.recordings[rec.sid] = rec
        self._recording_callback(rec)
        return rec.sid

    def _stop_recording(self, sid: str) -> None:
        rec = self.recordings.get(sid)
        if rec is None or rec.status == "completed":
            return
        rec.kept, rec.running_since = rec.seconds(self.now), None
        rec.status = "completed"
        self._recording_callback(rec)

    def _recording_callback(self, rec: Recording) -> None:
        if not rec.callback or rec.status not in rec.events:
            return
        media = f"{self.base_url}/2010-04-01/Accounts/{self.account}/Recordings/{rec.sid}"
        params = {
            "AccountSid": self.account,
            "RecordingSid": rec.sid,
            "RecordingUrl": media,
            "RecordingStatus": rec.status,
            "RecordingChannels": str(rec.channels),
            "RecordingSource": rec.source,
            "RecordingStartTime": _stamp(rec.started_at),
        }
        if rec.call:
            params["CallSid"] = rec.call
        if rec.conference:
            params["ConferenceSid"] = rec.conference
        if rec.status == "completed":
            params["RecordingDuration"] = str(rec.seconds(self.now))
        self.webhooks.append((rec.callback, params, ""))

    def _leave_twiml(self, leg: Leg) -> None:
        """The leg's TwiML is replaced (a call update): it leaves what it was doing."""
        if leg.room:
            self._leave(leg.sid, "participant_updated_via_api")
        if leg.child:  # a parent redirected hangs its child up; its <Dial> action is lost
            child = self.legs[leg.child]
            leg.child, child.parent, leg.dial_action = "", "", ""
            self._stop_recording(leg.recording)
            leg.recording = ""
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
                    label=conference.get("participantLabel", ""),
                )
                options = RoomOptions(
                    status_callback=conference.get("statusCallback", ""),
                    events=_events(conference.get("statusCallbackEvent"), ()),
                    record=conference.get("record") == "record-from-start",
                    recording_callback=conference.get("recordingStatusCallback", ""),
                    recording_events=_events(
                        conference.get("recordingStatusCallbackEvent"), ("completed",)
                    ),
                )
                self._join(leg_sid, conference.text or "", member, options)
                return
            noun = next(iter(verb))
            prefix = {"Client": "client:", "Sip": "", "Number": ""}[noun.tag]
            child = Leg(self.new_sid(), prefix + (noun.text or ""), parent=leg_sid)
            child.answer_url = noun.get("url", "")
            self.legs[child.sid] = child
            leg.child, leg.dial_action = child.sid, verb.get("action", "")
            leg.dial_record = {k: v for k, v in verb.attrib.items() if k.startswith("record")}
            return
        self._end(leg_sid, "completed")  # the TwiML ran out

    # -- the REST API --------------------------------------------------------------------

    def rest(
        self, path: str, form: dict[str, list[str]], method: str = "POST"
    ) -> tuple[int, dict[str, Any] | bytes]:
        one = {k: v[0] for k, v in form.items()}
        with self.lock:
            self.requests.append((path, form))
            base = f"/2010-04-01/Accounts/{self.account}/"
            if not path.startswith(base):
                return NOT_FOUND
            if method == "GET" and path.endswith(".wav"):
                rec = self.recordings.get(path[len(base) :].removeprefix("Recordings/")[:-4])
                if rec is None or rec.status != "completed":
                    return NOT_FOUND
                return 200, wav_of(rec.seconds(self.now))
            if not path.endswith(".json"):
                return NOT_FOUND
            parts = path[len(base) : -len(".json")].split("/")
            if method == "GET":
                return self._get(parts, one)
            if parts[0] == "Calls" and len(parts) == 2:
                return self._update_call(parts[1], one)
            if parts[0] == "Calls" and len(parts) == 4 and parts[2] == "Recordings":
                return self._update_recording(parts[3], one, call=parts[1])
            if parts[0] != "Conferences" or len(parts) < 3:
                return NOT_FOUND
            if parts[2] == "Recordings" and len(parts) == 4:
                if not CF_SID.match(parts[1]):
                    return NOT_FOUND  # a conference's recordings go by its SID only
                return self._update_recording(parts[3], one, conference=parts[1])
            if parts[2] != "Participants":
                return NOT_FOUND
            if len(parts) == 3:
                return self._add_participant(parts[1], one)
            room = self._by_sid(parts[1])
            return self._update_participant(room, parts[3], one)

    def _by_sid(self, conference: str) -> Room | None:
        """Fetch, update and delete name the conference by its SID only."""
        return self.conferences.get(conference) if CF_SID.match(conference) else None

    def _conference(self, room: Room) -> dict[str, Any]:
        return {
            "sid": room.sid,
            "account_sid": self.account,
            "friendly_name": room.name,
            "status": room.status,
            "call_sid_ending_conference": room.ended_by or None,
            "reason_conference_ended": room.reason_ended or None,
        }

    def _get(self, parts: list[str], one: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if parts == ["Conferences"]:
            found = [
                self._conference(r)
                for r in reversed(self.conferences.values())
                if r.name == one.get("FriendlyName", r.name)
                and r.status == one.get("Status", r.status)
            ]
            return 200, {"conferences": found, "next_page_uri": None, "page": 0}
        if parts[0] == "Conferences" and len(parts) == 2:
            room = self._by_sid(parts[1])
            return NOT_FOUND if room is None else (200, self._conference(room))
        if parts[0] == "Conferences" and len(parts) == 4 and parts[2] == "Participants":
            room = self._by_sid(parts[1])
            leg = self._member(room, parts[3]) if room is not None else ""
            if room is None or not leg:
                return NOT_FOUND
            return 200, self._participant(room, leg)
        return NOT_FOUND

    def _update_call(self, leg_sid: str, one: dict[str, str]) -> tuple[int, dict[str, Any]]:
        leg = self.legs.get(leg_sid)
        if leg is None:
            return 404, {"code": 20404, "message": f"no call {leg_sid}"}
        if leg.status not in LIVE:
            return 400, {"code": 21220, "message": "Call is not in-progress. Cannot redirect."}
        if "StatusCallback" in one:
            leg.status_callback = one["StatusCallback"]
        if one.get("Status") == "completed":
            self._end(leg_sid, "completed", "participant_updated_via_api")
        elif "Twiml" in one or "Url" in one:
            if leg.status != "in-progress":
                return 400, {"code": 21220, "message": "Call is not in-progress. Cannot redirect."}
            self._leave_twiml(leg)
            if "Twiml" in one:
                self._run(leg_sid, one["Twiml"])
            else:
                self.webhooks.append((one["Url"], {"CallSid": leg_sid}, leg_sid))
        return 200, {"sid": leg_sid, "account_sid": self.account, "status": leg.status}

    def _update_recording(
        self, sid: str, one: dict[str, str], call: str = "", conference: str = ""
    ) -> tuple[int, dict[str, Any]]:
        if sid == "Twilio.CURRENT":
            live = [
                r
                for r in self.recordings.values()
                if r.status != "completed" and (r.call, r.conference) == (call, conference)
            ]
            sid = live[-1].sid if live else ""
        rec = self.recordings.get(sid) if RE_SID.match(sid) else None
        if rec is None or (rec.call, rec.conference) != (call, conference):
            return NOT_FOUND  # a recording of another call or conference, or none
        if rec.status == "completed":
            return 400, {"code": 21220, "message": "The recording is not in progress"}
        wanted = one.get("Status", "")
        if wanted == "paused" and rec.status == "in-progress":
            rec.status = "paused"
            if one.get("PauseBehavior", "silence") == "skip":
                rec.kept, rec.running_since = rec.seconds(self.now), None
        elif wanted == "in-progress" and rec.status == "paused":
            rec.status = "in-progress"
            rec.running_since = rec.running_since or self.now
        elif wanted == "stopped":
            self._stop_recording(rec.sid)
        elif wanted not in ("paused", "in-progress"):
            return 400, {"code": 21220, "message": "Status must be paused, in-progress or stopped"}
        return 200, {
            "sid": rec.sid,
            "account_sid": self.account,
            "call_sid": rec.call or None,
            "conference_sid": rec.conference or None,
            "status": rec.status,
        }

    def _member(self, room: Room, call_or_label: str) -> str:
        if call_or_label in room.members:
            return call_or_label
        return next((s for s, m in room.members.items() if m.label == call_or_label), "")

    def _participant(self, room: Room, leg_sid: str) -> dict[str, Any]:
        joins = self.legs[leg_sid].joins
        m = room.members.get(leg_sid) or (joins[1] if joins else Member())
        return {
            "account_sid": self.account,
            "call_sid": leg_sid,
            "conference_sid": room.sid,
            "label": m.label or None,
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

    def _add_participant(self, name_or_sid: str, one: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not one.get("From") or not one.get("To"):
            return 400, {"code": 21604, "message": "From and To are required"}
        if CF_SID.match(name_or_sid):
            # By SID, the conference must be active; by name, one is made if none is.
            room = self.conferences.get(name_or_sid)
            if room is None or room.status == "completed":
                return NOT_FOUND
        else:
            room = self.rooms.get(name_or_sid)
            if room is not None and room.status == "completed":
                room = None
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
        if room is None:
            room = self._new_room(name_or_sid)
        options = RoomOptions(
            status_callback=one.get("ConferenceStatusCallback", ""),
            events=_events(one.get("ConferenceStatusCallbackEvent"), ("start", "end")),
            record=one.get("ConferenceRecord") in ("true", "record-from-start"),
            recording_callback=one.get("ConferenceRecordingStatusCallback", ""),
            recording_events=_events(
                one.get("ConferenceRecordingStatusCallbackEvent"), ("completed",)
            ),
        )
        leg = Leg(self.new_sid(), one["To"])
        self.legs[leg.sid] = leg
        leg.joins, leg.status_callback = (room.name, member, options), one.get("StatusCallback", "")
        return 201, self._participant(room, leg.sid)

    def _update_participant(
        self, room: Room | None, call_or_label: str, one: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        leg_sid = self._member(room, call_or_label) if room is not None else ""
        if room is None or room.status == "completed" or not leg_sid:
            return 404, {"code": 20404, "message": f"no participant {call_or_label} there"}
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
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                form = parse_qs(self.rfile.read(length).decode() if length else parts.query)
                status, body = cloud.rest(unquote(parts.path), form, method)
                if isinstance(body, bytes):
                    data, kind = body, "audio/x-wav"
                else:
                    if status >= 400:
                        body = {**body, "status": status, "more_info": ""}
                    data, kind = json.dumps(body).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def log_message(self, *args: object) -> None:
                pass

        return Api
