"""Listening in: a supervisor on the wallboard listens to a seat's call, whispers to the
operator (the citizen does not hear it), or barges in (both hear them).

- Asterisk (agi_scripts/listening.py): AMI Originate rings the supervisor's phone and,
  when they answer, runs [hotline-listen] (docker/asterisk/extensions.conf): ChanSpy on
  the seat's channel with ``q`` (quietly), plus ``w`` (whisper) or ``B`` (barge). When
  the supervisor hangs up, the ``h`` extension's AGI reports how long it lasted.

Each session is audited (calls.desk): ``listen-start`` (who, which seat, the mode, the
phone, the session's id) when it is asked for, ``listen-end`` with its duration.
"""

from __future__ import annotations

import os
import re
from typing import Protocol

from cases.users import log_action

# mode -> ChanSpy's options: q no beep or name, E end with the spied-on channel.
LISTEN_MODES = {"listen": "qE", "whisper": "qEw", "barge": "qEB"}
SESSION_ID = re.compile(r"[a-f0-9]{16}\Z")
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}\Z")


class ListenError(Exception):
    """The telephony could not start the listening session."""


class Listener(Protocol):
    def listen(self, session_id: str, who: str, seat: str, phone: str, mode: str) -> None: ...


def new_session_id() -> str:
    return os.urandom(8).hex()


def listen_ended(session_id: str, who: str, seat: str, seconds: int) -> None:
    """Job: the supervisor's phone hung up; the session's length joins the audit."""
    from cases.db import database_url_from_env, engine_for, session_factory

    if not SESSION_ID.match(session_id) or not USERNAME.match(who):
        return
    sessions = session_factory(engine_for(database_url_from_env(os.environ)))
    with sessions() as db:
        log_action(db, who, "listen-end", seat[:32], f"{session_id} {max(0, seconds)} s")
        db.commit()
