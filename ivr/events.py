"""What a shell tells a flow. Times are seconds on any monotonic scale the shell keeps."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpenCase:
    """The caller's most recent open case (looked up by the shell)."""

    number: str
    status: str  # a case status, e.g. "dispatched"
    operator_seat: str | None = None
    skill: str = "mandarin"


@dataclass(frozen=True)
class HotlineRoute:
    """What a dialed legacy hotline number means (the merged-hotline table)."""

    dialed: str
    name: str
    category_code: str | None = None
    department_code: str | None = None


@dataclass(frozen=True)
class CallStarted:
    caller: str  # caller id, "" when withheld
    dialed: str
    at: float
    staffed_seats: int  # operators logged in now
    # The centre is closed (configured: nobody logged in for a while, or out of hours):
    # the caller is told so and called back. A momentary lapse is not closed: they wait.
    closed: bool = False
    channel: str = "phone"  # asterisk | twilio | sim: carried into the case
    vulnerable: bool = False  # on the register of elderly/vulnerable citizens
    open_case: OpenCase | None = None
    hotline: HotlineRoute | None = None


@dataclass(frozen=True)
class Digits:
    digits: str
    at: float


@dataclass(frozen=True)
class InputTimeout:
    at: float


@dataclass(frozen=True)
class QueueUpdate:
    position: int
    estimated_wait_s: float | None
    staffed_seats: int
    at: float


@dataclass(frozen=True)
class SeatOffered:
    seat: str
    at: float


@dataclass(frozen=True)
class SeatConnected:
    seat: str
    at: float


@dataclass(frozen=True)
class SeatNoAnswer:
    seat: str
    at: float


@dataclass(frozen=True)
class Hangup:
    at: float


@dataclass(frozen=True)
class OutboundAnswered:
    """The far end picked up an outbound call. ``answered_by`` is the telephony's
    answering-machine detection: human | machine | fax | unknown (Twilio AnsweredBy,
    Asterisk AMDSTATUS HUMAN/MACHINE/NOTSURE)."""

    answered_by: str
    at: float


@dataclass(frozen=True)
class OutboundFailed:
    """An outbound call never reached a person: no-answer | busy | failed | congestion
    | unreachable (a carrier announcement: 空号, 关机)."""

    reason: str
    at: float


Event = (
    CallStarted
    | OutboundAnswered
    | OutboundFailed
    | Digits
    | InputTimeout
    | QueueUpdate
    | SeatOffered
    | SeatConnected
    | SeatNoAnswer
    | Hangup
)
