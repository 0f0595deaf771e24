"""Replay the event log to prove the queue's promises: no call offered to two seats at
once, no seat holding two calls, every call that entered has ended (or is still live).

The stream is the order in which Redis applied the transitions, so replaying it is an
exact check, not a sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis import Redis

from queueing.events import read_events
from queueing.keys import QueueKeys

_ENDINGS = ("COMPLETE", "ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY")


@dataclass
class Audit:
    entered: int = 0
    double_assignments: int = 0
    ended_twice: int = 0
    ended: set[str] = field(default_factory=set)
    live: int = 0  # calls still in the live set when audited

    @property
    def lost_calls(self) -> int:
        """Calls that entered but neither ended nor are still live."""
        return self.entered - len(self.ended) - self.live


def audit_event_log(redis: Redis, keys: QueueKeys) -> Audit:
    audit = Audit(live=int(redis.zcard(keys.live_calls)))
    seat_holds: dict[str, str] = {}
    call_at: dict[str, str] = {}
    for _, e in read_events(redis, keys):
        kind, call, seat = e["type"], e.get("call", ""), e.get("seat", "")
        if kind == "ENTERQUEUE":
            audit.entered += 1
        elif kind == "OFFER":
            if seat in seat_holds or call in call_at:
                audit.double_assignments += 1
            seat_holds[seat] = call
            call_at[call] = seat
        elif kind in ("RINGNOANSWER", "COMPLETE", "TRANSFER") or (kind == "ABANDON" and seat):
            if seat_holds.get(seat) == call:
                del seat_holds[seat]
            call_at.pop(call, None)
        if kind in _ENDINGS:
            if call in audit.ended:
                audit.ended_twice += 1
            audit.ended.add(call)
    return audit
