"""The case lifecycle as an explicit state machine.

received -> dispatched -> accepted -> in_progress -> resolved -> closed
received -> resolved                  (直接办结: resolved on the phone)
dispatched -> received                (the department sends back a wrong dispatch)
accepted -> in_progress               (处理中: the first progress note or on site after
                                       signing for)
dispatched/accepted/in_progress -> returned
                                      (退单: a unit returns a wrong dispatch, with a
returned -> dispatched                 reason, even after starting on it; a supervisor
                                       re-dispatches (改派) or upholds, sending it back
                                       to the same unit)
resolved -> reopened -> dispatched    (the citizen was not satisfied)
dispatched/accepted/in_progress -> dispatched
                                      (改派: a supervisor moves a case its unit is
                                       working on; its missed limits are charged first)
"""

from __future__ import annotations

STATUSES = (
    "received",
    "dispatched",
    "accepted",
    "in_progress",
    "returned",
    "resolved",
    "reopened",
    "closed",
)
OPEN_STATUSES = tuple(s for s in STATUSES if s != "closed")  # everything but the end

TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"dispatched", "resolved"}),
    "dispatched": frozenset({"dispatched", "accepted", "received", "returned"}),
    "accepted": frozenset({"dispatched", "in_progress", "resolved", "returned"}),
    "in_progress": frozenset({"dispatched", "resolved", "returned"}),
    "returned": frozenset({"dispatched"}),
    "resolved": frozenset({"closed", "reopened"}),
    "reopened": frozenset({"dispatched"}),
    "closed": frozenset(),
}


class IllegalTransition(ValueError):
    def __init__(self, current: str, wanted: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "nothing (final)"
        super().__init__(
            f"a case in status {current!r} cannot become {wanted!r}; allowed: {allowed}"
        )
        self.current = current
        self.wanted = wanted


def check_transition(current: str, wanted: str) -> None:
    if wanted not in STATUSES:
        raise IllegalTransition(current, wanted)
    if wanted not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(current, wanted)
