"""Who opened a stream: the web's signed session cookie, read with Flask's own
serializer and key, then the server-side session record in Redis and the user's row in
SQL, as the web checks them (web.auth). No Flask request globals: the cookie is read
here, the checks are the web's own pure helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from cases.models import User
from web.auth.sessions import SessionStore

SESSION_ID = "sid"  # as web.auth.SESSION_ID: the key naming the server-side session
COOKIE_NAME = "session"  # Flask's default, which the web keeps


@dataclass(frozen=True)
class Viewer:
    """The person behind a stream, while their session lives."""

    sid: str
    user_id: int
    username: str
    role: str
    department_id: int | None
    seat: str | None  # the seat their console logged in to (kept in the cookie)


class CookieReader:
    def __init__(self, secret_key: str) -> None:
        app = Flask("hotline-push")
        app.secret_key = secret_key
        serializer = SecureCookieSessionInterface().get_signing_serializer(app)
        assert serializer is not None
        self._serializer = serializer
        self._max_age = int(app.permanent_session_lifetime.total_seconds())

    def read(self, cookie: str | None) -> dict[str, Any] | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self._max_age)
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None


class Gate:
    """Checks a session the way the web does; blocking (Redis and SQL), so the push
    process calls it in a worker thread."""

    def __init__(
        self,
        cookies: CookieReader,
        redis: Redis,
        sessions: sessionmaker[Session],
        idle_s: int,
        absolute_s: int,
    ) -> None:
        self.cookies = cookies
        self.store = SessionStore(redis, idle_s, absolute_s)
        self.sessions = sessions

    def viewer(self, cookie: str | None) -> Viewer | None:
        data = self.cookies.read(cookie)
        if data is None:
            return None
        sid, user_id = data.get(SESSION_ID), str(data.get("_user_id", ""))
        if not isinstance(sid, str) or not user_id.isdigit():
            return None
        seat = data.get("seat")
        return self.recheck(
            Viewer(sid, int(user_id), "", "", None, seat if isinstance(seat, str) else None)
        )

    def recheck(self, viewer: Viewer) -> Viewer | None:
        """The viewer again, or None once the session ended (退出, revoked, idle,
        absolute) or the user was disabled. An open screen counts as activity."""
        checked = self.store.check(viewer.sid)
        if checked.record is None or checked.record.user_id != viewer.user_id:
            return None
        with self.sessions() as db:
            user = db.get(User, viewer.user_id)
            if user is None or not user.active:
                return None
            return Viewer(
                viewer.sid, user.id, user.username, user.role, user.department_id, viewer.seat
            )
