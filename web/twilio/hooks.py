"""Twilio voice webhooks. Every route checks X-Twilio-Signature against the public URL
(PUBLIC_BASE_URL, so it holds behind a TLS-terminating proxy); a bad or missing
signature is a 403 and changes nothing. Every answer is valid TwiML that keeps the
caller moving toward a person, even when something on our side fails."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, request, send_file
from rq import Retry
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import HTTPException

from calls.transfers import (
    EMERGENCY_TRIES,
    TelephonyError,
    TwilioMover,
    caller_room_twiml,
    line_twiml,
    room_for,
    seat_leg_released,
)
from calls.twilio_conferences import CONFERENCE_SID, PauseCarry
from ivr import actions as a
from ivr import events as e
from ivr.prompts import render, spoken_seconds
from queueing.keys import ID_PATTERNS
from web.context import services
from web.telephony import emergency_number
from web.twilio.twiml import dial_seat, enqueue, hold_music, render_actions

log = logging.getLogger("hotline.twilio")
bp = Blueprint("twilio", __name__, url_prefix="/twilio")

CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}\Z")
SEAT_ID = ID_PATTERNS["seat"]
TERMINAL = {"completed", "busy", "failed", "no-answer", "canceled"}


def twiml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="text/xml")


def signed(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        svc = services()
        if svc.validator is None or not svc.settings.public_base_url:
            log.error("TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL must be set to accept webhooks")
            abort(403)
        signature = request.headers.get("X-Twilio-Signature", "")
        url = svc.settings.public_base_url + request.full_path.rstrip("?")
        if not signature or not svc.validator.validate(url, request.form, signature):
            log.warning("rejected a webhook with a bad signature for %s", request.path)
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def field(name: str, limit: int = 64) -> str:
    return request.form.get(name, "").strip()[:limit]


def call_sid() -> str:
    sid = request.form.get("CallSid", "")
    if not CALL_SID.match(sid):
        abort(400, description="CallSid missing or malformed")
    return sid


def phone(name: str) -> str:
    """Caller ids arrive as +E.164, 'anonymous', or junk: keep digits and a leading +."""
    raw = field(name, 32)
    cleaned = ("+" if raw.startswith("+") else "") + "".join(c for c in raw if c.isdigit())
    return cleaned if len(cleaned.lstrip("+")) >= 3 else ""


def digits() -> str:
    return "".join(c for c in field("Digits", 32) if c in "0123456789*#")[:10]


def respond(actions: list[a.Action], sid: str, *, in_queue: bool) -> Response:
    if not in_queue:  # a Bridge becomes a <Dial>, after whatever is said before it
        spoken = 0.0
        for action in actions:
            if isinstance(action, a.Play | a.Gather):
                spoken += spoken_seconds(action.prompt, "zh", **action.args)
            elif isinstance(action, a.Bridge):
                services().handler.ringing(sid, action.seat, after_s=spoken)
    return twiml(render_actions(actions, services().settings.twiml, sid, in_queue=in_queue))


def dial_now(response: VoiceResponse, sid: str, seat: str) -> None:
    services().handler.ringing(sid, seat)
    dial_seat(response, services().settings.twiml, sid, seat)


@bp.errorhandler(Exception)
def keep_the_caller(exc: Exception) -> Any:
    """Our failure must not drop a caller: answer with TwiML that keeps them waiting
    for a person. HTTP errors (400, 403) are for callers that are not Twilio."""
    if isinstance(exc, HTTPException):
        return exc
    log.exception("webhook %s failed; keeping the caller in line", request.path)
    response = VoiceResponse()
    if request.endpoint in ("twilio.wait",) or request.args.get("in") == "queue":
        hold_music(response, services().settings.twiml)
    else:
        enqueue(response, services().settings.twiml)
    return twiml(response)


@bp.get("/hold.wav")
def hold_clip() -> Response:
    """The hold clip (public music, fetched by Twilio's media player; no secrets)."""
    path = services().settings.sounds_dir / "hold.wav"
    if not path.exists():
        abort(404)
    return send_file(path, mimetype="audio/wav", max_age=86400)


def seat_offered_by_a_first_delivery(sid: str) -> str | None:
    """A repeat of the call's first webhook (nginx passes one on when the web process
    that took it died before answering) after that first one had matched the caller to
    a seat: the seat, to dial now. Holding the caller instead would keep the seat
    offered to nobody until its ring timed out, then pause it for not answering."""
    flow = services().handler.load(sid)
    if flow is None or flow.phase != "ringing" or not flow.seat:
        return None
    record = services().queue.call(sid)
    if record.get("state") == "offered" and record.get("seat") == flow.seat:
        return flow.seat
    return None


@bp.post("/voice")
@signed
def voice() -> Response:
    sid = call_sid()
    seat = seat_offered_by_a_first_delivery(sid)
    if seat:
        response = VoiceResponse()
        dial_now(response, sid, seat)
        return twiml(response)
    actions = services().handler.start(sid, phone("From"), phone("To"), "twilio", time.time())
    return respond(actions, sid, in_queue=False)


@bp.post("/gather")
@signed
def gather() -> Response:
    sid = call_sid()
    pressed = digits()
    event: e.Event = e.Digits(pressed, at=time.time()) if pressed else e.InputTimeout(time.time())
    in_queue = request.args.get("in") == "queue"
    flow = services().handler.load(sid)
    if flow is not None and flow.phase == "done":
        # The key that ended the flow, delivered again (a callback chosen): the call is
        # over, so no hold music that nothing would end. The choice was recorded once.
        ended: list[a.Action] = [a.HangUp()]
        if flow.outcome == "callback":
            ended.insert(0, a.Play("callback_confirmed"))
        return respond(ended, sid, in_queue=in_queue)
    return respond(services().handler.handle(sid, event), sid, in_queue=in_queue)


@bp.post("/wait")
@signed
def wait() -> Response:
    """Polled by every waiting caller: Redis only, constant time."""
    sid = call_sid()
    handler = services().handler
    actions, state = handler.queue_update(sid, time.time())
    if state == "gone" and handler.load(sid) is None:
        # A caller in Twilio's queue that we do not know (lost state): queue them now.
        actions = handler.start(sid, phone("From"), phone("To"), "twilio", time.time())
    return respond(actions, sid, in_queue=True)


@bp.post("/after-queue")
@signed
def after_queue() -> Response:
    """The <Enqueue> ended. Whatever QueueResult says, our queue decides what is next."""
    sid = call_sid()
    svc = services()
    response = VoiceResponse()
    if field("QueueResult", 16) == "hangup":  # the caller hung up while holding
        svc.handler.caller_gone(sid)
        response.hangup()
        return twiml(response)
    record = svc.queue.call(sid)
    state = record.get("state")
    if state == "offered" and record.get("seat"):
        dial_now(response, sid, record["seat"])
    elif state == "waiting":
        enqueue(response, svc.settings.twiml)
    elif state in ("ended", None):
        response.hangup()
    return twiml(response)


@bp.post("/offered")
@signed
def offered() -> Response:
    """Where the offer notifier redirects a caller: dial the seat now. A redirect replaces
    whatever TwiML was running (even a <Dial> a webhook had just returned), so this
    always dials the seat the queue has offered."""
    sid = call_sid()
    svc = services()
    seat = svc.handler.seat_to_dial(sid, time.time())
    if seat:
        response = VoiceResponse()
        dial_now(response, sid, seat)
        return twiml(response)
    actions, _ = svc.handler.queue_update(sid, time.time())
    return respond(actions, sid, in_queue=False)


@bp.post("/seat-answered")
@signed
def seat_answered() -> Response:
    """Runs on the seat's leg when the operator picks up, before the bridge."""
    call, seat = request.args.get("call", ""), request.args.get("seat", "")
    if not CALL_SID.match(call) or not SEAT_ID.match(seat):
        abort(400, description="call and seat query parameters are required")
    response = VoiceResponse()
    if not services().handler.seat_answered(call, seat, time.time()):
        response.hangup()  # the caller has gone; the seat's leg ends
        return twiml(response)
    leg = field("CallSid", 64)
    if CALL_SID.match(leg) and leg != call:
        # The seat's own leg (the <Dial>'s child): listening in moves it into the call's
        # conference by itself, ringing nobody (calls.listening.TwilioListener).
        from calls.consult import ConsultLegs

        handler = services().handler
        ConsultLegs(handler.redis, handler.queue.keys).save(call, seat=leg)
    return twiml(response)


def dial_duration() -> int:
    """Seconds the <Dial> was connected (DialCallDuration); 0 when absent or malformed."""
    raw = field("DialCallDuration", 8)
    return int(raw) if raw.isdigit() else 0


@bp.post("/dial-status")
@signed
def dial_status() -> Response:
    """The <Dial> ended: talked and done, or the seat did not pick up."""
    sid = call_sid()
    svc = services()
    handler = svc.handler
    dialled_seat = request.args.get("seat", "")
    record = svc.queue.call(sid)
    caller_gone = field("CallStatus", 16) in TERMINAL
    response = VoiceResponse()
    if seat_leg_released(record, dialled_seat) and not caller_gone:
        # The operator moved the caller (calls.transfers updated the live call): a <Dial>
        # action after that says where the caller is now, and ends nothing.
        if record.get("consult") or record.get("transfer_kind") == "unit":
            return caller_into_room(sid)
        if record.get("held_at"):
            music = svc.settings.twiml.hold_music_url or svc.settings.twiml.url("/twilio/hold.wav")
            response.play(music, loop=0)
        elif record.get("transfer_kind") == "out":
            number = emergency_number(record.get("transferred_to", ""))
            base = (svc.settings.public_base_url or "").rstrip("/")
            return Response(line_twiml(number, base_url=base), mimetype="text/xml")
        else:
            response.redirect(svc.settings.twiml.url("/twilio/offered"), method="POST")
        return twiml(response)
    if (
        not caller_gone
        and record.get("state") == "on_call"
        and record.get("seat") == dialled_seat
        and consult_legs(sid).get("operator")
    ):
        # Listening in moved the operator's leg into the call's conference: the caller
        # joins them there (calls.listening.TwilioListener).
        return caller_into_room(sid)
    talked = field("DialCallStatus", 16) == "completed" and dial_duration() > 0
    if record.get("state") == "on_call" or (talked and SEAT_ID.match(dialled_seat) and record):
        # A conversation happened, even if the seat leg's answer request never arrived.
        by = "caller" if caller_gone else "agent"
        if record.get("state") == "on_call":
            handler.conversation_ended(sid, by=by)
        else:
            handler.seat_talked(sid, dialled_seat, by, time.time())
        if not caller_gone:
            response.say(
                render("goodbye"),
                voice=svc.settings.twiml.voice,
                language=svc.settings.twiml.language,
            )
        response.hangup()
        return twiml(response)
    if caller_gone or record.get("state") in ("ended", None):
        response.hangup()
        return twiml(response)
    # Back to holding, or straight on to a seat the queue has offered meanwhile.
    reason = field("DialCallStatus", 16) or "no-answer"
    actions = handler.seat_missed(sid, dialled_seat, reason, time.time())
    return respond(actions, sid, in_queue=False)


def caller_into_room(sid: str) -> Response:
    """The caller's <Dial> gave way to their conference: they join it, recorded on from
    there (calls.transfers.room_options)."""
    settings = services().settings
    music = settings.twiml.hold_music_url or settings.twiml.url("/twilio/hold.wav")
    base = (settings.public_base_url or "").rstrip("/")
    return Response(caller_room_twiml(room_for(sid), music, base), mimetype="text/xml")


@bp.post("/emergency-dial")
@signed
def emergency_dial() -> Response:
    """The emergency line's <Dial> ended (?try= which try it was): a line that was busy
    or did not answer is dialled again, EMERGENCY_TRIES in all, as on Asterisk."""
    svc = services()
    record = svc.queue.call(call_sid())
    raw_try = request.args.get("try", "")
    tries = int(raw_try) if raw_try.isdigit() else EMERGENCY_TRIES
    response = VoiceResponse()
    unanswered = field("DialCallStatus", 16) in ("busy", "no-answer", "failed")
    caller_gone = field("CallStatus", 16) in TERMINAL
    if (
        unanswered
        and not caller_gone
        and tries < EMERGENCY_TRIES
        and record.get("transfer_kind") == "out"
    ):
        line = record.get("transferred_to", "")
        log.warning("emergency line %s: %s, try %d", line, field("DialCallStatus", 16), tries + 1)
        mover = twilio_mover()
        again = line_twiml(
            emergency_number(line),
            mover.caller_id if mover is not None else None,
            (svc.settings.public_base_url or "").rstrip("/"),
            tries + 1,
            pause_s=1,
        )
        return Response(again, mimetype="text/xml")
    response.hangup()
    return twiml(response)


@bp.post("/status")
@signed
def status() -> tuple[str, int]:
    """Call status callbacks. Only a final status acts, and ending a call is idempotent,
    so retries, duplicates and any SequenceNumber (or none) are safe; a late 'ringing'
    cannot bring an ended call back, and a status of a call that never ran the inbound
    flow ends nothing and queues nothing."""
    sid = call_sid()
    if field("CallStatus", 16) in TERMINAL:
        operator = operator_in_callers_room(sid)
        mover = twilio_mover()
        if operator and mover is not None and mover.who_ended(sid, "caller") == "operator":
            # The operator hung up first and the conference's end took the caller's leg:
            # this callback only overtook the operator's.
            operator_hung_up(sid, operator, consult_legs(sid))
        caller_left(sid)
    return "", 204


def caller_left(sid: str) -> None:
    """The caller hung up: the call ends as theirs, with every leg of it."""
    services().handler.caller_gone(sid)
    mover = twilio_mover()
    if mover is not None:
        mover.caller_gone(sid)  # a consult's legs end with the caller
        from web.twilio.listening import end_listening_on

        end_listening_on(sid)  # and so does listening in


def operator_in_callers_room(call_id: str) -> str:
    """The operator's leg, when it is in the caller's conference (listening in, after
    a cancelled consult, a three-way call): there either's hang-up ends both legs, and
    their status callbacks come in any order."""
    legs = consult_legs(call_id)
    record = services().queue.call(call_id)
    if record.get("state") != "on_call" or record.get("consult") == "consulting":
        return ""
    return legs.get("operator", "")


def consult_legs(call_id: str) -> dict[str, str]:
    from calls.consult import ConsultLegs

    handler = services().handler
    return ConsultLegs(handler.redis, handler.queue.keys).get(call_id)


def twilio_mover() -> TwilioMover | None:
    from web.telephony import telephony

    return next((m for m in telephony().movers if isinstance(m, TwilioMover)), None)


@bp.post("/consult-leg")
@signed
def consult_leg() -> tuple[str, int]:
    """A consult's participant call ended (its status callback; ?call= the caller's
    call), or the operator's leg that listening in moved into the call's conference
    (calls.listening.TwilioListener). The operator's, ended by their own hang-up
    rather than a desk step, ends their part of the call (calls.consult.operator_left);
    the unit's, hung up, busy or unanswered while the operator consults it, brings the
    operator back to the caller, and hung up in a three-way call leaves the two talking
    (calls.consult.unit_left)."""
    from calls.consult import ConsultLegs, unit_left

    call, leg = request.args.get("call", ""), field("CallSid", 64)
    if not CALL_SID.match(call) or not CALL_SID.match(leg):
        abort(400, description="call or CallSid missing or malformed")
    if field("CallStatus", 16) not in TERMINAL:
        return "", 204
    handler = services().handler
    legs = ConsultLegs(handler.redis, handler.queue.keys)
    before = legs.get(call)
    mover = twilio_mover()
    if leg == before.get("unit"):
        gone = unit_left(handler, legs, call)
        if gone != "none" and mover is not None:
            log.info("the unit of %s left the consult (%s)", call, gone)
            try:
                mover.unit_gone(call, before, gone)
            except TelephonyError as exc:
                log.error("after the unit of %s left: %s", call, exc)
        return "", 204
    if (
        mover is not None
        and leg == operator_in_callers_room(call)
        and mover.who_ended(call, "operator") == "caller"
    ):
        # The caller hung up: the conference's end took the operator's leg with it, and
        # this callback overtook the caller's own.
        caller_left(call)
        return "", 204
    operator_hung_up(call, leg, before)
    return "", 204


def operator_hung_up(call: str, leg: str, before: dict[str, str]) -> None:
    """The operator's own hang-up (calls.consult.operator_left), and the telephony's
    half of it."""
    from calls.consult import ConsultLegs, operator_left

    handler = services().handler
    result = operator_left(handler, ConsultLegs(handler.redis, handler.queue.keys), call, leg)
    mover = twilio_mover()
    if result != "none" and mover is not None:
        log.info("the operator of %s hung up during a consult: %s", call, result)
        from web.twilio.listening import end_listening_on

        end_listening_on(call)  # supervisors listening in leave with the operator
        try:
            mover.operator_gone(call, result, before)
        except TelephonyError as exc:
            log.error("after the operator of %s left: %s", call, exc)


RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}\Z")


@bp.post("/recording")
@signed
def recording_status() -> tuple[str, int]:
    """The recording status callback of <Dial record> and of the caller's conference:
    the recording's SID (as it starts: the desk pauses it by that) and its URL and
    length (when done) noted against the call, which links it to the call's detail row
    and case. A job fetches the audio: never here."""
    from calls.recordings import note_twilio_recording

    # A seat's <Dial> and the caller's conference name the caller's call (a conference's
    # recording has no CallSid); a dialer's call is the CallSid itself.
    call = request.args.get("call") or field("CallSid", 64)
    sid = field("RecordingSid", 64)
    if not CALL_SID.match(call) or not RECORDING_SID.match(sid):
        abort(400, description="call or RecordingSid missing or malformed")
    state = field("RecordingStatus", 16)
    url = field("RecordingUrl", 512)
    if not url.startswith("https://") and not url.startswith("http://"):
        url = ""
    raw_length = field("RecordingDuration", 8)
    length = int(raw_length) if raw_length.isdigit() else None
    if state not in ("in-progress", "completed", "absent"):
        return "", 204  # paused/resumed echoes and the like: the desk already knows
    svc = services()
    visit = svc.outbound.load(call) if svc.outbound is not None else None
    conference = field("ConferenceSid", 64)
    mover = twilio_mover()
    with svc.desk.sessions() as db:
        note_twilio_recording(
            db,
            PauseCarry(svc.queue.redis, svc.queue.keys, mover.client if mover else None),
            call,
            sid,
            state,
            media_url=url or None,
            duration_s=length,
            conference_sid=conference if CONFERENCE_SID.match(conference) else "",
            case_number=visit.case_number if visit is not None else None,
        )
    if state == "completed" and url:
        from calls.handler import job_id_for

        svc.jobs.enqueue(
            "calls.recordings.fetch_twilio_recording",
            sid,
            job_id=job_id_for("fetch-recording", sid),
            retry=Retry(max=8, interval=[5, 15, 60, 300, 900]),
        )
    return "", 204
