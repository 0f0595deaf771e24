"""Media actions of the call flow rendered as TwiML, with Twilio's own builder.

The same action means different TwiML depending on where the caller is: before the
Twilio <Enqueue> (the greeting and menu) or inside its wait URL, where only Play,
Say, Pause, Redirect, Leave, Hangup and Gather are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from ivr import actions as a
from ivr.prompts import render


@dataclass(frozen=True)
class TwimlSettings:
    base_url: str
    voice: str = "Polly.Zhiyu"
    language: str = "cmn-CN"
    seat_dial: str = "client"
    hold_music_url: str | None = None
    ring_timeout_s: int = 18
    queue_name: str = "hotline"
    record: bool = True  # every conversation, after the greeting's notice (calls.recordings)

    def url(self, path: str) -> str:
        return self.base_url + path


def _say(parent: VoiceResponse | Gather, settings: TwimlSettings, prompt: str, args: dict) -> None:  # type: ignore[type-arg]
    parent.say(render(prompt, "zh", **args), voice=settings.voice, language=settings.language)


def hold_music(response: VoiceResponse, settings: TwimlSettings) -> None:
    """One hold segment; Twilio asks the wait URL again when it ends. Offers are pushed
    (web/twilio_push.py), so the segment only bounds the fallback's delay."""
    if settings.hold_music_url:
        response.play(settings.hold_music_url)
    else:
        response.pause(length=5)


def enqueue(response: VoiceResponse, settings: TwimlSettings) -> None:
    response.enqueue(
        settings.queue_name,
        wait_url=settings.url("/twilio/wait"),
        wait_url_method="POST",
        action=settings.url("/twilio/after-queue"),
        method="POST",
    )


def dial_seat(response: VoiceResponse, settings: TwimlSettings, call_id: str, seat: str) -> None:
    """Bridge to the seat. The seat's leg runs /twilio/seat-answered when picked up, so
    the queue learns of the answer at that moment."""
    answered = settings.url("/twilio/seat-answered?" + urlencode({"call": call_id, "seat": seat}))
    recording: dict[str, str] = {}
    if settings.record:
        # Both sides from the seat's answer; the status callback notes the recording's
        # SID as it starts (the desk pauses it by that SID) and its URL when it is done.
        recording = {
            "record": "record-from-answer-dual",
            "recording_status_callback": settings.url(
                "/twilio/recording?" + urlencode({"call": call_id})
            ),
            "recording_status_callback_method": "POST",
            "recording_status_callback_event": "in-progress completed absent",
        }
    dial = Dial(
        # The seat rides along: a late no-answer must not pause a seat offered since.
        action=settings.url("/twilio/dial-status?" + urlencode({"seat": seat})),
        method="POST",
        timeout=settings.ring_timeout_s,
        answer_on_bridge=True,
        **recording,
    )
    kind, _, template = settings.seat_dial.partition(":")
    if kind == "sip":
        dial.sip(template.format(seat=seat), url=answered, method="POST")
    elif kind == "number":
        dial.number(template.format(seat=seat), url=answered, method="POST")
    else:
        dial.client(seat, url=answered, method="POST")
    response.append(dial)


def render_actions(
    actions: list[a.Action],
    settings: TwimlSettings,
    call_id: str,
    *,
    in_queue: bool,
    gather_path: str = "/twilio/gather",
) -> VoiceResponse:
    response = VoiceResponse()
    ends_turn = False
    for action in actions:
        if isinstance(action, a.Play):
            _say(response, settings, action.prompt, action.args)
        elif isinstance(action, a.Gather):
            gather = Gather(
                input="dtmf",
                num_digits=action.max_digits,
                timeout=int(action.timeout_s),
                action=settings.url(gather_path + ("?in=queue" if in_queue else "")),
                method="POST",
                action_on_empty_result=True,
            )
            _say(gather, settings, action.prompt, action.args)
            response.append(gather)
            ends_turn = True
        elif isinstance(action, a.Hold):
            if in_queue:
                hold_music(response, settings)
            else:
                enqueue(response, settings)
            ends_turn = True
        elif isinstance(action, a.Bridge):
            if in_queue:
                response.leave()
            else:
                dial_seat(response, settings, call_id, action.seat)
            ends_turn = True
        elif isinstance(action, a.HangUp):
            response.hangup()
            ends_turn = True
    if not ends_turn:
        # Nothing new to do: keep the caller waiting for a person.
        if in_queue:
            hold_music(response, settings)
        else:
            enqueue(response, settings)
    return response
