"""Seats first: while a freed seat's next caller is on its way to it, the other callers'
prompt steps wait their turn.

A seat's idle gap runs through several threads of one interpreter: the session whose
Dial ended completes the call (which offers the seat), the redirector moves the next
caller, and that caller's bridge route sends the Dial. Each of their round trips to
Redis or Asterisk gives up the interpreter, and gets it back only after every thread
already waiting for it. In a burst the callers reach their prompts' ends together (the
greeting, a menu's timeout), a hundred steps at once, and a freed seat waited behind all
of them, at every round trip: hundreds of milliseconds, where app_queue's gap is 0.1 s.

So the session that frees a seat marks it (``freeing``), the bridge route that dials it
unmarks it (``dialled``), and a caller's prompt step (``wait_turn``) starts only when no
seat is being freed, or after ``max_wait_s``: a menu step is late by at most that, and a
mark whose Dial never comes (the redirect failed, a Twilio caller) lapses after it.
"""

from __future__ import annotations

import threading
import time


class SeatsFirst:
    def __init__(self, max_wait_s: float = 0.3) -> None:
        self.max_wait_s = max_wait_s
        self._freeing: dict[str, float] = {}  # seat -> when its mark lapses (monotonic)
        self._changed = threading.Condition()

    def freeing(self, seat: str) -> None:
        """This seat is free and its next caller is about to be moved to it."""
        with self._changed:
            self._freeing[seat] = time.monotonic() + self.max_wait_s

    def dialled(self, seat: str) -> None:
        """The seat's next Dial is sent (or it has no next caller): steps may go on."""
        with self._changed:
            if self._freeing.pop(seat, None) is not None and not self._freeing:
                self._changed.notify_all()

    def wait_turn(self) -> None:
        """Before a caller's prompt step: wait while a seat is being freed, at most
        ``max_wait_s`` in all (seats freeing one after another never starve a step)."""
        with self._changed:
            deadline = time.monotonic() + self.max_wait_s
            while self._freeing:
                now = time.monotonic()
                for seat in [s for s, until in self._freeing.items() if until <= now]:
                    del self._freeing[seat]
                if not self._freeing or now >= deadline:
                    return
                self._changed.wait(min(deadline, *self._freeing.values()) - now)


# One per process: the FastAGI server's sessions and the redirector share it.
SEATS_FIRST = SeatsFirst()
