"""The caller's conference's status callback (calls.transfers.room_options): its SID,
kept by friendly name for the participant and recording updates Twilio takes by SID
only, and which call's leaving ended it (calls.twilio_conferences)."""

from __future__ import annotations

from flask import abort, request

from calls.transfers import room_for
from calls.twilio_conferences import CONFERENCE_SID, ConferenceSids
from web.context import services
from web.twilio.hooks import CALL_SID, bp, field, signed


@bp.post("/conference")
@signed
def conference_status() -> tuple[str, int]:
    """Twilio's conference events (start, end, join, leave), each naming the conference
    by SID and friendly name. Repeats and late events change nothing: an ended
    conference's SID is never kept again."""
    call = request.args.get("call", "")
    conference, name = field("ConferenceSid", 64), field("FriendlyName", 128)
    if not CALL_SID.match(call) or not CONFERENCE_SID.match(conference):
        abort(400, description="call or ConferenceSid missing or malformed")
    if name != room_for(call):
        return "", 204  # not this call's conference: nothing of ours
    queue = services().queue
    sids = ConferenceSids(queue.redis, queue.keys)
    event = field("StatusCallbackEvent", 32)
    if event in ("conference-start", "participant-join"):
        sids.started(name, conference)
    elif event == "conference-end":
        ending = field("CallSidEndingConference", 64)
        sids.ended(name, conference, ending if CALL_SID.match(ending) else "")
    return "", 204


# -- a pause that was on when the call moved ----------------------------------------------
# The operator paused the <Dial>'s recording while the citizen read out a number, and the
# call moved into its conference meanwhile (a supervisor listening in, a consult): the
# conference's recording starts unpaused, so it is paused as it starts. The <Dial>'s
# recording's end and the conference's recording's start are reported in either order.

PAUSE_CARRY_S = 3600


def _carry_key(call: str) -> str:
    queue = services().queue
    return queue.keys.prefix + "recording-pause-carries:" + call


def note_pause_carries(call: str) -> None:
    """A recording of the call ended while paused: the next one starts paused."""
    services().queue.redis.set(_carry_key(call), 1, ex=PAUSE_CARRY_S)


def pause_carried(call: str, other_paused: bool) -> bool:
    """Whether a conference recording of the call that starts now must start paused:
    another of its recordings is paused, or ended paused."""
    carried = bool(services().queue.redis.getdel(_carry_key(call)))
    return carried or other_paused


def pause_at_start(conference: str, recording: str) -> bool:
    """Pause the conference's new recording through Twilio (by the conference's SID, as
    the recording callback names it). False when Twilio refused: the operator's 暂停录音
    is there for it."""
    from twilio.base.exceptions import TwilioException

    from web.twilio.hooks import log, twilio_mover

    mover = twilio_mover()
    if mover is None:
        return False
    try:
        mover.client.conferences(conference).recordings(recording).update(
            status="paused", pause_behavior="skip"
        )
    except TwilioException as exc:
        log.error("recording %s not paused as it started: %s", recording, exc)
        return False
    return True
