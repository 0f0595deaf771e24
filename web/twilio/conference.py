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
