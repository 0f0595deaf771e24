"""A Twilio call's conference (calls.transfers.room_for) once it has moved into one:
its SID, what it records, and who ended it.

Twilio creates participants in a conference named by its friendly name, but fetches
and updates them, and pauses its recordings, by the conference's SID (CF...) only. The
SID is kept here, by friendly name, from the conference's own status callback
(/twilio/conference) and from the participants Twilio creates; failing that, Twilio's
list of in-progress conferences of that name gives it.

Listening in, a cancelled consult and a three-way call leave the operator in the
caller's conference, where the two call legs' status callbacks arrive in any order when
either hangs up, and neither says who did. The conference knows: its end names the call
that ended it (CallSidEndingConference, kept here from its status callback, or
call_sid_ending_conference when it is fetched), and a conference that goes on after the
operator's leg ended was left by the operator alone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from redis import Redis

from queueing.keys import QueueKeys

log = logging.getLogger("hotline.twilio.conferences")

CONFERENCE_SID = re.compile(r"CF[0-9a-fA-F]{32}\Z")
KEEP_S = 86400


@dataclass
class ConferenceSids:
    """Each live conference's SID by its friendly name, and who ended each, in Redis."""

    redis: Redis
    keys: QueueKeys

    def _sid_key(self, name: str) -> str:
        return self.keys.conference_sid(name)

    def _ended_key(self, sid: str) -> str:
        return self.keys.conference_ended(sid)

    def sid_of(self, name: str) -> str:
        raw = self.redis.get(self._sid_key(name))
        return raw.decode() if isinstance(raw, bytes) else str(raw or "")

    def started(self, name: str, sid: str) -> None:
        """A conference of that name is live (it started, or a participant joined it);
        one that already ended is not brought back by a late callback."""
        if CONFERENCE_SID.match(sid) and not self.redis.exists(self._ended_key(sid)):
            self.remember(name, sid)

    def ended(self, name: str, sid: str, by: str) -> None:
        """The conference ended, ``by`` that call's leaving (or '' unknown)."""
        if not CONFERENCE_SID.match(sid):
            return
        self.redis.set(self._ended_key(sid), by or "-", ex=KEEP_S)
        # Only this conference's SID is forgotten: a newer one of that name stays.
        self.redis.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end",
            1,
            self._sid_key(name),
            sid,
        )

    def ended_by(self, sid: str) -> str | None:
        """The call whose leaving ended that conference ('' unknown); None: not ended
        as far as its callbacks said."""
        raw = self.redis.get(self._ended_key(sid))
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return "" if text == "-" else text

    def last_of(self, name: str) -> str:
        """The SID of the newest conference of that name, live or ended."""
        for key in (self._sid_key(name), self.keys.conference_last(name)):
            raw = self.redis.get(key)
            if raw:
                return raw.decode() if isinstance(raw, bytes) else str(raw)
        return ""

    def remember(self, name: str, sid: str) -> None:
        """A SID Twilio gave otherwise (a participant's conference_sid, a list)."""
        if CONFERENCE_SID.match(sid):
            self.redis.set(self._sid_key(name), sid, ex=KEEP_S)
            self.redis.set(self.keys.conference_last(name), sid, ex=KEEP_S)


def live_conference_sid(client: Any, sids: ConferenceSids, name: str, fresh: bool = False) -> str:
    """The SID of the in-progress conference of that name: kept, or (``fresh``, or none
    kept) from Twilio's list. '' when Twilio has none."""
    if not fresh:
        kept = sids.sid_of(name)
        if kept:
            return kept
    found = client.conferences.list(friendly_name=name, status="in-progress", limit=1)
    sid = str(found[0].sid) if found else ""
    if sid:
        sids.remember(name, sid)
    return sid


def ended_by(client: Any, sids: ConferenceSids, name: str) -> tuple[str, str]:
    """Whether the newest conference of that name is over and which call's leaving
    ended it: ('completed', call sid or ''), ('in-progress', ''), or ('', '') unknown.
    Its status callback is believed first; else Twilio is asked."""
    from twilio.base.exceptions import TwilioException

    sid = sids.last_of(name)
    if not sid:
        return "", ""
    by = sids.ended_by(sid)
    if by is not None:
        return "completed", by
    try:
        conference = client.conferences(sid).fetch()
    except TwilioException as exc:
        log.warning("conference %s could not be fetched: %s", sid, exc)
        return "", ""
    status = str(getattr(conference, "status", "") or "")
    ending = str(getattr(conference, "call_sid_ending_conference", "") or "")
    return status, ending if status == "completed" else ""


def conference_recording(client: Any, call_id: str, recording_sid: str) -> Any:
    """A recording of the call's conference, to pause or resume: Twilio takes it by the
    in-progress conference's SID only (LookupError when there is none)."""
    from calls.transfers import room_for

    found = client.conferences.list(friendly_name=room_for(call_id), status="in-progress", limit=1)
    if not found:
        raise LookupError(f"no conference in progress for {call_id}")
    return client.conferences(str(found[0].sid)).recordings(recording_sid)


# -- a pause that was on when the call moved ----------------------------------------------
# The operator paused the <Dial>'s recording while the citizen read out a number, and the
# call moved into its conference meanwhile (a supervisor listening in, a consult): the
# conference's recording starts unpaused, so it is paused as it starts. The <Dial>'s
# recording's end and the conference's recording's start are reported in either order.

PAUSE_CARRY_S = 3600


@dataclass
class PauseCarry:
    """A recording's pause, carried into the call's conference's next recording."""

    redis: Redis
    keys: QueueKeys
    client: Any  # Twilio's REST client; None: not configured (nothing can be paused)

    def ended_paused(self, call_id: str) -> None:
        """A recording of the call ended while paused: the next one starts paused."""
        self.redis.set(self.keys.recording_pause_carry(call_id), 1, ex=PAUSE_CARRY_S)

    def starts_paused(self, call_id: str, other_paused: bool) -> bool:
        """Whether a conference recording of the call that starts now must start
        paused: another of its recordings is paused, or ended paused."""
        carried = bool(self.redis.getdel(self.keys.recording_pause_carry(call_id)))
        return carried or other_paused

    def pause(self, conference: str, recording: str) -> bool:
        """Pause the conference's new recording through Twilio (by the conference's
        SID, as the recording callback names it). False when Twilio refused: the
        operator's 暂停录音 is there for it."""
        from twilio.base.exceptions import TwilioException

        if self.client is None:
            return False
        try:
            self.client.conferences(conference).recordings(recording).update(
                status="paused", pause_behavior="skip"
            )
        except TwilioException as exc:
            log.error("recording %s not paused as it started: %s", recording, exc)
            return False
        return True
