"""What a flow asks its shell to do, in order."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Play:
    prompt: str  # an id from ivr.prompts.CATALOGUE
    args: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Gather:
    """Play the prompts and listen for one keypress; the shell answers with Digits or
    InputTimeout. Speech-slow prompts: the timeout counts after the prompt ends."""

    prompt: str
    valid_digits: str
    timeout_s: float = 6.0
    max_digits: int = 1
    args: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Enqueue:
    priority: str  # vulnerable | repeat | normal
    skill: str
    sticky_seat: str | None = None


@dataclass(frozen=True)
class ChangeSkill:
    """The caller chose a language: same place in line, different seats."""

    skill: str


@dataclass(frozen=True)
class Hold:
    """Music on hold until the next event."""


@dataclass(frozen=True)
class Bridge:
    seat: str


@dataclass(frozen=True)
class RequestCallback:
    """Record that the citizen wants to be called back, and take them out of the queue."""

    reason: str  # long_wait | no_operators


@dataclass(frozen=True)
class ReleaseCall:
    """The caller is gone: end the call's queue state (abandon or complete)."""


@dataclass(frozen=True)
class HangUp:
    """We end the call (after a callback was recorded and confirmed)."""


@dataclass(frozen=True)
class RecordOutbound:
    """An outbound call's result, for the dialer and the case: satisfied | unsatisfied |
    no_response | transfer | connected | machine | no-answer | busy | failed |
    congestion | unreachable."""

    outcome: str


Action = (
    Play
    | Gather
    | Enqueue
    | ChangeSkill
    | Hold
    | Bridge
    | RequestCallback
    | ReleaseCall
    | HangUp
    | RecordOutbound
)
