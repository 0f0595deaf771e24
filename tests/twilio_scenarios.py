"""Drive simulator scenarios through the Flask app as Twilio would.

Twilio's side: it follows each TwiML document verb by verb; <Gather> posts its action
(with empty Digits on timeout, as actionOnEmptyResult asks); <Enqueue> polls waitUrl
whenever the wait TwiML ends and posts the Enqueue action after <Leave/> or a hang-up;
<Dial> rings the seat, requests the noun's url when the seat picks up, and posts the
Dial action when the dial ends; a final status callback follows every call.
The operators' side: they log in and out, pause and complete calls through the JSON API.
"""

from __future__ import annotations

import json
import queue as threadsafe
import re
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from tests.twilio_peer import TwilioSigner, parse, sid

TICK_S = 0.05
WAIT_PAUSE_CAP_S = 0.2  # hold music is cut short: the test need not listen to it


@dataclass
class PeerCall:
    spec: dict[str, Any]
    sid: str
    started: bool = False
    done: bool = False
    verbs: list[ET.Element] = field(default_factory=list)
    in_queue: bool = False
    wait_url: str = ""
    enqueue_action: str = ""
    blocked_until: float = 0.0
    gather: ET.Element | None = None
    gather_deadline: float = 0.0
    dial: ET.Element | None = None
    dial_started: float = 0.0
    answered_at: float | None = None
    keys: list[dict[str, Any]] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    sequence: int = 0


class TwilioRestApi:
    """Twilio's REST API, as far as call updates go: a redirect of a live call interrupts
    whatever TwiML it runs and fetches the new URL. Real HTTP, on loopback."""

    def __init__(self) -> None:
        self.redirects: threadsafe.Queue[tuple[str, str]] = threadsafe.Queue()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                match = re.search(r"/Calls/(CA[0-9a-fA-F]{32})\.json$", self.path)
                assert match, self.path
                api.redirects.put((match.group(1), form["Url"][0]))
                body = json.dumps({"sid": match.group(1), "status": "in-progress"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TwilioScenario:
    def __init__(
        self,
        signer: TwilioSigner,
        api: Any,
        queue: Any,
        scenario: dict[str, Any],
        rest: TwilioRestApi | None = None,
    ):
        self.twilio, self.api, self.queue = signer, api, queue
        self.rest = rest
        self.scenario = scenario
        self.calls = [PeerCall(c, sid(n + 1)) for n, c in enumerate(scenario["call"])]
        self.operators = [dict(op) for op in scenario.get("operator", [])]
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def params(self, call: PeerCall, **extra: str) -> dict[str, str]:
        base = {
            "CallSid": call.sid,
            "From": call.spec["caller"] or "anonymous",
            "To": call.spec["dialed"],
            "AccountSid": "AC" + "0" * 32,
            "CallStatus": "in-progress",
            "Direction": "inbound",
        }
        base.update(extra)
        return base

    def post(self, call: PeerCall, url: str, **extra: str) -> list[ET.Element]:
        return list(parse(self.twilio.post(url, self.params(call, **extra))))

    # -- the caller's leg --------------------------------------------------------------

    def finish(self, call: PeerCall) -> None:
        call.done = True
        call.sequence += 1
        final = self.params(call, CallStatus="completed", SequenceNumber=str(call.sequence))
        assert self.twilio.post("/twilio/status", final).status_code == 204

    def hang_up(self, call: PeerCall) -> None:
        call.heard.append("hangs up")
        if call.dial is not None:
            status = "completed" if call.answered_at is not None else "canceled"
            self.post(call, call.dial.get("action"), CallStatus="completed", DialCallStatus=status)
            self.operator_hears_hangup(call)
        elif call.in_queue:
            self.post(call, call.enqueue_action, CallStatus="completed", QueueResult="hangup")
        self.finish(call)

    def run_verbs(self, call: PeerCall) -> None:
        now = self.now()
        while (
            not call.done
            and now >= call.blocked_until
            and call.gather is None
            and call.dial is None
        ):
            if not call.verbs:
                if call.in_queue:  # the wait TwiML ended: Twilio asks again
                    call.verbs = self.post(call, call.wait_url, QueuePosition="1")
                    continue
                self.finish(call)  # the end of the TwiML ends the call
                return
            verb = call.verbs.pop(0)
            if verb.tag == "Say":
                call.heard.append(f"hears {verb.text}")
            elif verb.tag in ("Pause", "Play"):
                length = float(verb.get("length", "1"))
                call.blocked_until = now + min(length, WAIT_PAUSE_CAP_S)
            elif verb.tag == "Gather":
                for say in verb:
                    call.heard.append(f"hears {say.text}")
                call.gather = verb
                call.gather_deadline = now + float(verb.get("timeout", "5"))
            elif verb.tag == "Enqueue":
                call.in_queue = True
                call.wait_url, call.enqueue_action = verb.get("waitUrl"), verb.get("action")
                call.verbs = self.post(call, call.wait_url, QueuePosition="1")
            elif verb.tag == "Leave":
                call.in_queue = False
                call.verbs = self.post(call, call.enqueue_action, QueueResult="leave")
            elif verb.tag == "Dial":
                call.dial, call.dial_started, call.answered_at = verb, now, None
                call.heard.append(f"rings seat {verb[0].text}")
            elif verb.tag == "Hangup":
                call.heard.append("is hung up by the hotline")
                self.finish(call)
            else:
                raise AssertionError(f"unexpected TwiML verb {verb.tag}")

    def take_redirects(self) -> None:
        while self.rest is not None and not self.rest.redirects.empty():
            call_sid, url = self.rest.redirects.get()
            call = next(c for c in self.calls if c.sid == call_sid)
            if call.done or call.dial is not None:
                continue
            call.gather, call.in_queue, call.blocked_until = None, False, 0.0
            call.verbs = self.post(call, url)

    def step_call(self, call: PeerCall) -> None:
        now = self.now()
        spec = call.spec
        if not call.started:
            if now >= spec["at_s"]:
                call.started = True
                call.keys = sorted(spec.get("keys", []), key=lambda k: k["at_s"])
                call.verbs = list(
                    parse(
                        self.twilio.post("/twilio/voice", self.params(call, CallStatus="ringing"))
                    )
                )
            return
        if spec.get("hangup_at_s") is not None and now >= float(spec["hangup_at_s"]):
            self.hang_up(call)
            return
        while call.keys and now >= call.keys[0]["at_s"]:
            key = call.keys.pop(0)
            if call.gather is not None:  # DTMF outside a <Gather> is not heard
                call.heard.append(f"presses {key['digits']}")
                gather, call.gather = call.gather, None
                call.verbs = self.post(call, gather.get("action"), Digits=str(key["digits"]))
        if call.gather is not None and now >= call.gather_deadline:
            gather, call.gather = call.gather, None
            call.verbs = self.post(call, gather.get("action"), Digits="")
        if call.dial is not None:
            self.step_dial(call)
        self.run_verbs(call)

    # -- the seat's leg ----------------------------------------------------------------

    def operator(self, seat: str) -> dict[str, Any]:
        return next(op for op in self.operators if op["seat"] == seat)

    def step_dial(self, call: PeerCall) -> None:
        now = self.now()
        noun = call.dial[0]  # type: ignore[index]
        op = self.operator(noun.text)
        if call.answered_at is None:
            after = op.get("answer_after_s", 1.0)
            if after != "never" and now - call.dial_started >= float(after):
                seat_leg = {
                    "CallSid": "CA" + "f" * 32,
                    "From": f"client:{noun.text}",
                    "To": f"client:{noun.text}",
                    "CallStatus": "in-progress",
                }
                reply = parse(self.twilio.post(noun.get("url"), seat_leg))
                if [v.tag for v in reply] == ["Hangup"]:
                    self.dial_ends(call, "no-answer")
                    return
                call.answered_at = now
                call.heard.append(f"talks with seat {noun.text}")
            elif now - call.dial_started >= float(call.dial.get("timeout", "30")):  # type: ignore[union-attr]
                self.dial_ends(call, "no-answer")
            return
        if now - call.answered_at >= float(op.get("talk_s", 2.0)):
            form = {
                "seat": noun.text,
                "category_code": op.get("category"),
                "district_code": op.get("district"),
                "description": op.get("description", "市民来电反映问题"),
            }
            r = self.api("post", f"/api/calls/{call.sid}/complete", json={"case": form})
            assert r.status_code == 200, r.json
            call.heard.append(f"conversation ends (seat {noun.text} hangs up)")
            self.dial_ends(call, "completed")

    def dial_ends(self, call: PeerCall, status: str) -> None:
        dial, call.dial = call.dial, None
        call.verbs = self.post(call, dial.get("action"), DialCallStatus=status)  # type: ignore[union-attr]

    def operator_hears_hangup(self, call: PeerCall) -> None:
        """The caller hung up mid-conversation: the operator files the form anyway."""
        if call.answered_at is not None:
            seat = call.dial[0].text  # type: ignore[index]
            r = self.api("post", f"/api/calls/{call.sid}/complete", json={"case": {"seat": seat}})
            assert r.status_code == 200, r.json
        call.dial = None

    def step_operator(self, op: dict[str, Any]) -> None:
        now = self.now()
        if not op.get("_in") and now >= op.get("login_at_s", 0):
            r = self.api(
                "post",
                f"/api/seats/{op['seat']}/login",
                json={"skills": op.get("skills", ["mandarin"])},
            )
            assert r.status_code == 200, r.json
            op["_in"] = True
            if now < op.get("ready_at_s", 0):
                self.api(
                    "post",
                    f"/api/seats/{op['seat']}/state",
                    json={"state": "paused", "reason": "not ready"},
                )
        if op.get("_in") and not op.get("_ready") and now >= op.get("ready_at_s", 0):
            op["_ready"] = True
            if op.get("ready_at_s", 0) > 0:
                self.api("post", f"/api/seats/{op['seat']}/state", json={"state": "available"})

    def run(self, timeout_s: float = 20.0) -> None:
        while not all(c.done for c in self.calls):
            assert self.now() < timeout_s, (
                [(c.sid, c.heard[-8:]) for c in self.calls],
                self.queue.status(),
            )
            for op in self.operators:
                self.step_operator(op)
            self.take_redirects()
            for call in self.calls:
                if not call.done:
                    self.step_call(call)
            self.queue.tick()  # the reaper
            time.sleep(TICK_S)
