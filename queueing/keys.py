"""Every Redis key of a call queue, built here and only here.

All keys of one queue share the hash tag ``{q:NAME}`` so that each Lua script, which
touches many of them, runs within one slot on Redis Cluster. Per-entity keys (a call,
a seat, a skill's waiting set) are a fixed prefix plus an id; the Lua scripts receive
those prefixes as KEYS and only append ids, so no key name is spelled twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every id that reaches Redis keys, URLs, TwiML or dialplan arguments. \Z, not $: "$"
# also matches before a final newline. Seat ids are what a phone endpoint may be named,
# so nothing in them can break a URL query or a Dial argument (no & , ; / . or space).
ID_PATTERNS = {
    "call": re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z"),  # CA..., ast-UNIQUEID
    "seat": re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}\Z"),
    "skill": re.compile(r"[a-z][a-z0-9_-]{0,31}\Z"),
    "queue": re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z"),
    "task": re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z"),  # a case number
}


# Names of the Asterisk box's own SIP endpoints (docker/asterisk/pjsip.conf.template):
# a seat of that name would Dial the carrier's trunk, or the peer box, as if a phone.
RESERVED_SEAT_IDS = frozenset({"trunk", "anonymous", "box-a", "box-b"})


def check_id(kind: str, value: str) -> str:
    """The id itself, or ValueError naming what is allowed."""
    pattern = ID_PATTERNS[kind]
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"invalid {kind} id {value!r}: must match {pattern.pattern}")
    if kind == "seat" and value.lower() in RESERVED_SEAT_IDS:
        raise ValueError(f"invalid seat id {value!r}: the name of a SIP trunk, not a phone")
    return value


# The operator's form waits in Redis until it is filed in SQL, and a while after.
DRAFT_TTL_S = 7 * 86400

# Roles one process at a time may hold, by a lease (calls.lease): the others stand by.
LEASE_ROLES = ("reaper", "dialer")


@dataclass(frozen=True)
class QueueKeys:
    queue: str = "main"
    namespace: str = "hotline"

    def __post_init__(self) -> None:
        check_id("queue", self.queue)

    @property
    def prefix(self) -> str:
        return f"{self.namespace}:{{q:{self.queue}}}:"

    # Fixed keys.
    @property
    def events(self) -> str:  # stream: every transition
        return self.prefix + "events"

    @property
    def offers(self) -> str:  # zset: call id -> offer lease deadline (ms)
        return self.prefix + "offers"

    @property
    def sticky(self) -> str:  # zset: call id -> end of its sticky window (ms)
        return self.prefix + "sticky"

    @property
    def wrapups(self) -> str:  # zset: seat id -> end of wrap-up (ms)
        return self.prefix + "wrapups"

    @property
    def heartbeats(self) -> str:  # zset: seat id -> last heartbeat (ms)
        return self.prefix + "heartbeats"

    @property
    def live_calls(self) -> str:  # zset: call id -> entry time (ms), until the call ends
        return self.prefix + "live"

    @property
    def skills(self) -> str:  # set: every skill seen
        return self.prefix + "skills"

    @property
    def stats(self) -> str:  # hash: running averages (handle time)
        return self.prefix + "stats"

    def outbound_flow(self, call_id: str) -> str:  # string: an outbound flow's state, JSON
        return self.prefix + "oflow:" + check_id("call", call_id)

    @property
    def dial_due(self) -> str:  # zset: outbound item id -> next attempt (ms)
        return self.prefix + "dial:due"

    @property
    def dial_live(self) -> str:  # hash: live outbound call id -> item id
        return self.prefix + "dial:live"

    @property
    def dial_pace(self) -> str:  # zset: call ids started in the pacing window -> start (ms)
        return self.prefix + "dial:pace"

    def dial_log(self, phone: str) -> str:  # zset: this number's call attempts (ms)
        return self.prefix + "dial:log:" + phone

    def dial_number(self, phone: str) -> str:  # string: the live call to this number
        return self.prefix + "dial:number:" + phone

    def rate(self, bucket: str) -> str:  # counter with a TTL: a rate limit's window
        return self.prefix + "rate:" + bucket

    @property
    def clocks(self) -> str:  # zset: "case id:timer" -> due (ms); cases.clocks sweeps it
        return self.prefix + "clocks"

    @property
    def counts(self) -> str:  # hash: counters for /metrics and the stream cursor (calls.metrics)
        return self.prefix + "counts"

    @property
    def offer_channel(self) -> str:  # pub/sub channel announcing offers
        return self.prefix + "offers:chan"

    def lease(self, role: str) -> str:  # string: the token of the process holding the role
        if role not in LEASE_ROLES:
            raise ValueError(f"invalid lease role {role!r}: must be one of {LEASE_ROLES}")
        return self.prefix + "lease:" + role

    # Telephony and screens beside the queue (calls.consult, calls.listening,
    # calls.twilio_conferences, the wallboard, the report and playback marks).
    def consult(self, call_id: str) -> str:  # hash: a consult's legs by role
        return self.prefix + "consult:" + check_id("call", call_id)

    def listen_session(self, session_id: str) -> str:  # hash: one Twilio listening session
        return self.prefix + "listen:" + session_id

    def listening(self, call_id: str) -> str:  # hash: a call's live listening sessions
        return self.prefix + "listening:" + check_id("call", call_id)

    def conference_sid(self, name: str) -> str:  # string: a live conference's SID by name
        return self.prefix + "conference:" + name

    def conference_last(self, name: str) -> str:  # string: the newest SID of that name
        return self.conference_sid(name) + ":last"

    def conference_ended(self, sid: str) -> str:  # string: the call that ended it, or '-'
        return self.prefix + "conference-ended:" + sid

    def recording_pause_carry(self, call_id: str) -> str:  # string: next recording starts paused
        return self.prefix + "recording-pause-carries:" + check_id("call", call_id)

    def played(self, username: str, recording_id: object) -> str:  # string: playback audited
        return f"{self.prefix}played:{username}:{recording_id}"

    def report_pending(self, token: str) -> str:  # hash: a web report awaiting its code
        return self.prefix + "report:" + token

    def sms_sent(self, hour: str) -> str:  # counter: texts sent in that clock hour (UTC)
        return self.prefix + "sms:sent:" + hour

    def open311_rate(self, scope: str, name: str) -> str:  # zset: an Open311 sliding window
        return f"{self.prefix}open311:rate:{scope}:{name}"

    @property
    def wallboard_prefix(self) -> str:  # string per language: the shared wallboard drawing
        return self.prefix + "wallboard:"

    # Prefixes of per-entity keys.
    @property
    def call_prefix(self) -> str:
        return self.prefix + "call:"

    @property
    def seat_prefix(self) -> str:
        return self.prefix + "seat:"

    @property
    def waiting_prefix(self) -> str:  # zset per skill: call id -> queue score
        return self.prefix + "waiting:"

    @property
    def available_prefix(self) -> str:  # zset per skill: seat id -> idle since (ms)
        return self.prefix + "available:"

    @property
    def staffed_prefix(self) -> str:  # set per skill: logged-in seats
        return self.prefix + "staffed:"

    @property
    def sticky_by_seat_prefix(self) -> str:  # zset per seat: its sticky calls -> score
        return self.prefix + "sticky-for:"

    @property
    def working_prefix(self) -> str:  # set per skill: seats taking calls (not paused)
        return self.prefix + "working:"

    def call(self, call_id: str) -> str:
        return self.call_prefix + check_id("call", call_id)

    def flow(self, call_id: str) -> str:  # string: the call flow's JSON state
        return self.prefix + "flow:" + check_id("call", call_id)

    def gone(self, call_id: str) -> str:  # string: the telephony said the caller hung up
        return self.prefix + "gone:" + check_id("call", call_id)

    def channel(self, call_id: str) -> str:  # string: the Asterisk channel of a call
        return self.prefix + "chan:" + check_id("call", call_id)

    def case_draft(self, call_id: str) -> str:  # string: the operator's case form, JSON
        return self.prefix + "draft:" + check_id("call", call_id)

    def case_filing(self, call_id: str) -> str:
        """hash: ``version`` of the draft (bumped by each form) and ``done`` once the
        case job has filed the newest one; see cases.filing."""
        return self.prefix + "filing:" + check_id("call", call_id)

    def seat(self, seat_id: str) -> str:
        return self.seat_prefix + check_id("seat", seat_id)

    def waiting(self, skill: str) -> str:
        return self.waiting_prefix + check_id("skill", skill)

    def working(self, skill: str) -> str:
        return self.working_prefix + check_id("skill", skill)

    def available(self, skill: str) -> str:
        return self.available_prefix + check_id("skill", skill)

    def staffed(self, skill: str) -> str:
        return self.staffed_prefix + check_id("skill", skill)

    # Tasks (calls.tasks): online, SMS and Open311 requests in the same queue.
    @property
    def tasks_waiting(self) -> str:  # zset: task id -> entered (ms), oldest first
        return self.prefix + "tasks:waiting"

    @property
    def task_offers(self) -> str:  # zset: task id -> offer lease deadline (ms)
        return self.prefix + "tasks:offers"

    @property
    def tasks_live(self) -> str:  # zset: task id -> entered (ms), until the task is done
        return self.prefix + "tasks:live"

    @property
    def tasks_unanswered(self) -> str:  # zset: task id -> first response due (ms)
        return self.prefix + "tasks:unanswered"

    @property
    def tasks_overdue(self) -> str:  # zset: task id -> first response due (ms), past it
        return self.prefix + "tasks:overdue"

    @property
    def task_offered_to(self) -> str:  # hash: seat id -> the one task offered to it now
        return self.prefix + "tasks:offered-to"

    @property
    def task_seats(self) -> str:  # set: seats holding or offered tasks
        return self.prefix + "tasks:seats"

    @property
    def task_prefix(self) -> str:  # hash per task
        return self.prefix + "task:"

    @property
    def seat_tasks_prefix(self) -> str:  # set per seat: tasks it is offered or holds
        return self.prefix + "seat-tasks:"

    def task(self, task_id: str) -> str:
        return self.task_prefix + check_id("task", task_id)

    def seat_tasks(self, seat_id: str) -> str:
        return self.seat_tasks_prefix + check_id("seat", seat_id)

    def task_script_keys(self) -> list[str]:
        """The KEYS of the task scripts: the queue's, then lua/task_prelude.lua's."""
        return [
            *self.script_keys(),
            self.tasks_waiting,
            self.task_offers,
            self.tasks_live,
            self.tasks_unanswered,
            self.tasks_overdue,
            self.task_offered_to,
            self.task_seats,
            self.task_prefix,
            self.seat_tasks_prefix,
        ]

    def script_keys(self) -> list[str]:
        """The KEYS every queue script receives, in the order lua/prelude.lua names them."""
        return [
            self.events,
            self.offers,
            self.sticky,
            self.wrapups,
            self.heartbeats,
            self.live_calls,
            self.skills,
            self.stats,
            self.call_prefix,
            self.seat_prefix,
            self.waiting_prefix,
            self.available_prefix,
            self.staffed_prefix,
            self.offer_channel,
            self.sticky_by_seat_prefix,
            self.working_prefix,
        ]
