"""What each AGI route does. The dialplan (docker/asterisk/extensions.conf) calls:

- ``inbound``  a citizen's call: greeting, menu, queue; then holding in the dialplan
- ``hold``     from the hold loop: ``?event=timeout`` every announcement interval, or
               ``?event=key&digit=D`` for a keypress (WaitExten never loses one)
- ``bridge``   where AMI Redirect sends a holding caller whose seat was offered
- ``answered`` Gosub on the operator's channel when they pick up (Dial option U)
- ``hangup``   the ``h`` extension: the only place a hang-up is believed
- ``outbound`` the dialer's call answered (return visit or call-back), after AMD()
- ``outbound-failed`` the dialer's call never answered (REASON)

A session tells the dialplan what comes next in the channel variable HOTLINE_NEXT:
``hold`` (go to the hold loop) or ``hangup``. An AGI session that ends because the
channel went away may have been redirected, so it never ends a call itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rq import Retry

from agi_scripts.protocol import ChannelGone, SafeAGI
from agi_scripts.transfers import consult_left, consult_unit_gone
from calls import CallHandler
from calls.handler import job_id_for
from calls.outbound import OutboundHandler
from calls.recordings import file_name_for
from calls.transfers import seat_leg_released
from ivr import actions as a
from ivr import events as e
from ivr.prompts import sound_files
from queueing import QueueError

log = logging.getLogger("hotline.agi")

FAILED_DIAL = ("NOANSWER", "BUSY", "CHANUNAVAIL", "CONGESTION")
# MixMonitor's id on the caller's channel (its i() option) while it records; the
# dialplan's [hotline-agi] passes it to every session as the fourth argument (routes
# take at most three of their own).
RECORDING_VAR = "HOTLINE_RECORDING"
RECORDING_ARG = "agi_arg_4"


@dataclass(frozen=True)
class AgiSettings:
    sounds: str  # where Asterisk finds the rendered prompts, e.g. /var/lib/hotline/sounds/zh
    dial_pattern: str = "PJSIP/{seat}"
    # (seat-id prefix, pattern) for seats registered on another box; the longest wins.
    dial_by_prefix: tuple[tuple[str, str], ...] = ()
    ring_timeout_s: int = 18
    max_talk_s: float = 7200.0  # EXEC Dial returns when the conversation ends
    read_timeout_s: float = 60.0  # Asterisk answers every other command within this
    max_sessions: int = 512
    allow: tuple[str, ...] = ("127.0.0.1", "::1")  # who may open AGI sessions
    env_timeout_s: float = 10.0  # the whole environment, from the connection
    # When set, the AGI URL must carry it: agi://host:4573/SECRET/inbound
    secret: str | None = field(default=None, repr=False)
    # Where MixMonitor writes each conversation, as Asterisk sees it (calls.recordings);
    # None: nothing is recorded.
    recordings_dir: str | None = None

    def seat_endpoint(self, seat: str) -> str:
        """What Dial rings for this seat: its box's pattern, else the default."""
        routes = sorted(self.dial_by_prefix, key=lambda route: len(route[0]), reverse=True)
        pattern = next((p for prefix, p in routes if seat.startswith(prefix)), None)
        return (pattern or self.dial_pattern).format(seat=seat)


def call_id_of(agi: SafeAGI) -> str:
    """The channel's uniqueid: stable across AMI Redirects and in the h extension."""
    unique = agi.var("agi_uniqueid")
    if not unique:
        raise ChannelGone("no agi_uniqueid in the environment")
    return "ast-" + unique


class Session:
    def __init__(
        self,
        agi: SafeAGI,
        handler: CallHandler,
        settings: AgiSettings,
        outbound_calls: OutboundHandler | None = None,
    ) -> None:
        self.agi, self.handler, self.settings = agi, handler, settings
        self.queue = handler.queue
        self.outbound_calls = outbound_calls
        # Whether MixMonitor already runs on this channel: [hotline-agi] says so in the
        # arguments, so that no GET VARIABLE stands between an offer and its Dial. None
        # (a dialplan that does not pass it): ask the channel.
        self.recording = bool(agi.var(RECORDING_ARG)) if RECORDING_ARG in agi.env else None

    # -- routes ------------------------------------------------------------------------

    def inbound(self) -> None:
        self.agi.execute("ANSWER")
        call = call_id_of(self.agi)
        self.queue.redis.set(self.queue.keys.channel(call), self.agi.var("agi_channel"), ex=86400)
        dialed = self.agi.var("agi_dnid") or self.agi.var("agi_extension")
        actions = self.handler.start(
            call, self.agi.var("agi_callerid"), dialed, "asterisk", time.time()
        )
        self.perform(call, actions)

    def hold(self) -> None:
        call = call_id_of(self.agi)
        query = self.agi.query
        if query.get("event") == "key":
            digit = "".join(c for c in query.get("digit", "") if c in "0123456789*#")[:1]
            actions = self.handler.handle(call, e.Digits(digit, at=time.time()))
        else:
            flow = self.handler.load(call)
            if flow is None:  # state lost (our failure): queue the caller afresh
                dialed = self.agi.var("agi_dnid") or self.agi.var("agi_extension")
                actions = self.handler.start(
                    call, self.agi.var("agi_callerid"), dialed, "asterisk", time.time()
                )
            elif flow.phase == "done":
                actions = [a.HangUp()]  # the call is over; do not hold a line open
            else:
                actions, _ = self.handler.queue_update(call, time.time())
        self.perform(call, actions or [a.Hold()])

    def bridge(self) -> None:
        call = call_id_of(self.agi)
        seat = self.handler.seat_to_dial(call, time.time())
        if seat:
            self.dial(call, seat)
            return
        actions, _ = self.handler.queue_update(call, time.time())
        self.perform(call, actions or [a.Hold()])

    def answered(self) -> None:
        """On the operator's channel, before the two are bridged."""
        call, seat = self.agi.var("agi_arg_1"), self.agi.var("agi_arg_2")
        try:
            connected = self.handler.seat_answered(call, seat, time.time())
        except ValueError as exc:  # ids that are not ours
            log.warning("answered route with bad arguments: %s", exc)
            connected = False
        if not connected:
            self.agi.set_var("GOSUB_RESULT", "ABORT")  # hang up the operator's leg

    def hangup(self) -> None:
        """The h extension: the caller's channel is gone. Ends whatever the queue has
        (idempotent), and invents nothing for a call it never saw. An outbound call's
        flow hears of it too (its result, and the dialer's line freed)."""
        call = call_id_of(self.agi)
        if self.outbound_calls is not None and self.outbound_calls.load(call) is not None:
            self.outbound_calls.handle(call, e.Hangup(at=time.time()))
        else:
            self.handler.caller_gone(call)

    def outbound(self) -> None:
        """[hotline-outbound]: the dialer's call was answered; AMD() has listened.
        Arguments: the attempt's id, AMDSTATUS, AMDCAUSE."""
        if self.outbound_calls is None:
            log.error("outbound route without the dialer's handler; hanging up")
            self.agi.set_var("HOTLINE_NEXT", "hangup")
            return
        dial_id = self.agi.var("agi_arg_1")
        status, cause = self.agi.var("agi_arg_2").upper(), self.agi.var("agi_arg_3").upper()
        call = call_id_of(self.agi)
        self.queue.redis.set(self.queue.keys.channel(call), self.agi.var("agi_channel"), ex=86400)
        try:
            state = self.outbound_calls.begin(call, dial_id, "asterisk")
        except ValueError:  # an id that is not ours
            state = None
        if state is None:
            self.agi.set_var("HOTLINE_NEXT", "hangup")  # not a live attempt: say nothing
            return
        answered_by = AMD_ANSWERED_BY.get(status, "unknown")
        if answered_by == "machine" and cause.startswith("INITIALSILENCE"):
            answered_by = "unknown"  # an elderly citizen waiting in silence: speak to them
        actions = self.outbound_calls.handle(call, e.OutboundAnswered(answered_by, time.time()))
        # The return visit is recorded (its opening says so).
        name = self.start_recording(call, bridged_only=False)
        self.note_recording(call, name, case_number=state.case_number)
        self.perform(call, actions, self.outbound_calls.handle)

    def listen_ended(self) -> None:
        """[hotline-listen]'s h extension: a supervisor's listening session ended.
        Arguments: the session's id, who listened, the seat; ?seconds= its length."""
        session_id, who, seat = (self.agi.var(f"agi_arg_{n}") for n in range(1, 4))
        seconds = self.agi.query.get("seconds", "")
        if not session_id:
            return  # not a session we started
        self.handler.jobs.enqueue(
            "calls.listening.listen_ended",
            session_id,
            who,
            seat,
            int(seconds) if seconds.isdigit() else 0,
            retry=Retry(max=5, interval=[1, 3, 10, 30, 60]),
        )

    def outbound_failed(self) -> None:
        """The "failed" extension: the dialer's call was never answered."""
        if self.outbound_calls is None:
            return
        dial_id, reason = self.agi.var("agi_arg_1"), self.agi.var("agi_arg_2")
        self.outbound_calls.dialer.finished(dial_id, ORIGINATE_FAILURES.get(reason, "failed"))

    # -- carrying out the flow's actions ---------------------------------------------------

    def play(self, prompt: str, args: dict[str, object], escape: str = "") -> str:
        for name in sound_files(prompt, args):
            digit = self.agi.play(f"{self.settings.sounds}/{name}", escape)
            if digit:
                return digit
        return ""

    def perform(
        self,
        call: str,
        actions: list[a.Action],
        step: Callable[[str, e.Event], list[a.Action]] | None = None,
    ) -> None:
        """Carry out media actions; the caller's keys go to ``step`` (the inbound flow's
        handler unless an outbound flow runs the call)."""
        step = step or self.handler.handle
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, a.Play):
                self.play(action.prompt, action.args)
            elif isinstance(action, a.Gather):
                files = sound_files(action.prompt, action.args)
                pressed = ""
                for name in files[:-1]:
                    pressed = self.agi.play(f"{self.settings.sounds}/{name}", action.valid_digits)
                    if pressed:
                        break
                if not pressed:
                    pressed = self.agi.read_digits(
                        f"{self.settings.sounds}/{files[-1]}",
                        int(action.timeout_s * 1000),
                        action.max_digits,
                    )
                event: e.Event = (
                    e.Digits(pressed, at=time.time()) if pressed else e.InputTimeout(time.time())
                )
                pending = step(call, event)
            elif isinstance(action, a.Hold):
                self.agi.set_var("HOTLINE_NEXT", "hold")
                return
            elif isinstance(action, a.Bridge):
                self.dial(call, action.seat)
                return
            elif isinstance(action, a.HangUp):
                self.agi.set_var("HOTLINE_NEXT", "hangup")
                return

    def start_recording(self, call: str, bridged_only: bool = True) -> str | None:
        """MixMonitor on the caller's channel, once per call (a redirect back to the
        bridge finds it running), in one EXEC: its i() option marks the channel itself.
        An inbound call's holds only while bridged to a person, so ringing and hold
        music are left out. The file's name if it started now."""
        if not self.settings.recordings_dir:
            return None
        if self.recording is None:
            self.recording = bool(self.agi.get_var(RECORDING_VAR))
        if self.recording:
            return None
        name = file_name_for(call)
        path = f"{self.settings.recordings_dir.rstrip('/')}/{name}"
        options = ("b" if bridged_only else "") + f"i({RECORDING_VAR})"
        if self.agi.exec_app("MixMonitor", path, options) < 0:
            log.warning("MixMonitor did not start for %s", call)
            return None
        self.recording = True
        return name

    def note_recording(self, call: str, name: str | None, case_number: str | None = None) -> None:
        """The recording's row is written by a job: never stands between caller and seat."""
        if name is None:
            return
        try:
            self.handler.jobs.enqueue(
                "calls.recordings.recording_started",
                call,
                "asterisk",
                call,
                name,
                case_number,
                job_id=job_id_for("recording", call),
                retry=Retry(max=5, interval=[1, 3, 10, 30, 60]),
            )
        except Exception:  # the file is being written; the upkeep job cannot find it
            log.exception("could not note the recording of %s", call)

    def dial(self, call: str, seat: str) -> None:
        recording = self.start_recording(call)
        endpoint = self.settings.seat_endpoint(seat)
        # Asterisk gets the Dial first and the ring lease is re-armed while the seat
        # rings: a Redis round trip less between the offer and the Dial. Should a
        # pick-up overtake it, ringing answers 'stale' and changes nothing.
        self.agi.send_exec(
            "Dial",
            endpoint,
            str(self.settings.ring_timeout_s),
            f"U(hotline-answered^{call}^{seat})",
        )
        try:
            self.handler.ringing(call, seat)
        except Exception:  # the Dial's reply is still due: nothing else may be sent
            log.exception("could not re-arm the ring lease of %s; the Dial goes on", call)
        self.note_recording(call, recording)
        with self.agi.patience(self.settings.ring_timeout_s + self.settings.max_talk_s + 60):
            self.agi.exec_result()  # EXEC Dial replies when the conversation ends
        status = self.agi.get_var("DIALSTATUS")  # EXEC Dial's own result means little
        if seat_leg_released(self.queue.call(call), seat):
            return  # the operator moved the caller (AMI Redirect: handed on, on hold)
        if status == "ANSWER":  # they talked, whatever the queue believed meanwhile
            caller_left = self.agi.hungup
            by = "caller" if caller_left else "agent"
            if not self._end_talk(call, by):
                self.handler.seat_talked(call, seat, by, time.time())
            if not caller_left:
                self.play("goodbye", {})
                self.agi.set_var("HOTLINE_NEXT", "hangup")
            return
        if status == "CANCEL" or self.agi.hungup:
            return  # the caller hung up while it rang: the h extension ends the call
        if status not in FAILED_DIAL:
            log.warning("Dial to %s ended with DIALSTATUS %r; treating as no answer", seat, status)
        reason = (status or "unknown").lower()
        self.perform(call, self.handler.seat_missed(call, seat, reason, time.time()))

    def _end_talk(self, call: str, by: str) -> bool:
        """End a talk whose pick-up the queue recorded (the answered route): the seat's
        next caller is offered in that same step, with nothing before it. False when the
        queue does not have the call connected (seat_talked records the pick-up first)."""
        try:
            self.handler.conversation_ended(call, by=by)
        except QueueError:
            return False
        return True


ROUTES = {
    "inbound": Session.inbound,
    "hold": Session.hold,
    "bridge": Session.bridge,
    "answered": Session.answered,
    "hangup": Session.hangup,
    "outbound": Session.outbound,
    "outbound-failed": Session.outbound_failed,
    "listen-ended": Session.listen_ended,
    "consult-left": consult_left,
    "consult-unit-gone": consult_unit_gone,
}

# AMD()'s AMDSTATUS -> the outbound flow's answered_by.
AMD_ANSWERED_BY = {"HUMAN": "human", "MACHINE": "machine", "NOTSURE": "unknown"}
# Originate's REASON when the call never connected (Asterisk's AST_CONTROL codes).
ORIGINATE_FAILURES = {"3": "no-answer", "5": "busy", "8": "congestion", "1": "no-answer"}
