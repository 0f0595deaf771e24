"""Server-side sign-in sessions, kept in the service's Redis.

The browser's (signed) Flask cookie carries only a random session id; the record
behind it says who signed in, when, and when they were last seen. Every request checks
it, so a session ends for good when it is signed out (退出), when the user is disabled
or their password reset, after ``idle_s`` without a request, and ``absolute_s`` after
signing in, whatever the activity. A cookie copied before any of these is worthless.

Redis stores the sha256 of the id (a reader of Redis cannot sign in with it), with a
TTL that follows the idle limit, so abandoned sessions clean themselves up. Times are
wall-clock seconds, stored in the record so that the limits survive a restart.

A session ended for a reason its user should hear (disabled, password reset, idle,
absolute limit) stays ``REASON_KEPT_S`` as a record with only ``ended`` set, so the
next request with its cookie learns why and the sign-in page can say so."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

PREFIX = "hotline:web-session"
TOUCH_EVERY_S = 30  # a busy console's heartbeat need not write on every request
# How long after a session ends (or would have, idle) its user can still be told why:
# an operator who went home finds the reason next morning.
REASON_KEPT_S = 24 * 3600
ENDED_REASONS = ("disabled", "password", "idle", "absolute")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _key(sid: str) -> str:
    return f"{PREFIX}:{hashlib.sha256(sid.encode()).hexdigest()}"


def _user_key(username: str) -> str:
    return f"{PREFIX}s-of:{username}"


@dataclass(frozen=True)
class SessionRecord:
    user_id: int
    username: str
    started: float
    seen: float


@dataclass(frozen=True)
class Checked:
    """A session's state: its record when it is alive, else why it is not."""

    record: SessionRecord | None
    # One of ENDED_REASONS, or "unknown" (signed out, long gone, never was)
    ended: str = ""
    just_ended: bool = False  # this check ended it (a limit had passed)


class SessionStore:
    def __init__(self, redis: Redis, idle_s: int, absolute_s: int) -> None:
        self.redis = redis
        self.idle_s = idle_s
        self.absolute_s = absolute_s

    def start(self, user_id: int, username: str, now: float | None = None) -> str:
        """A new session for the user; returns its id (for the cookie only)."""
        now = time.time() if now is None else now
        sid = secrets.token_urlsafe(32)
        key = _key(sid)
        with self.redis.pipeline() as pipe:
            pipe.hset(
                key,
                mapping={"user_id": user_id, "username": username, "started": now, "seen": now},
            )
            pipe.expire(key, self._ttl(now, now))
            pipe.sadd(_user_key(username), key)
            pipe.expire(_user_key(username), self.absolute_s)
            pipe.execute()
        return sid

    def check(self, sid: str, touch: bool = True, now: float | None = None) -> Checked:
        """The live session behind ``sid``, ended here if a limit has passed; a request
        (``touch``) moves its idle clock on."""
        now = time.time() if now is None else now
        key = _key(sid)
        raw = self.redis.hgetall(key)
        if not raw:
            return Checked(None, "unknown")
        fields = {_text(k): _text(v) for k, v in raw.items()}
        if fields.get("ended"):
            return Checked(None, fields["ended"])
        try:
            record = SessionRecord(
                int(fields["user_id"]),
                fields["username"],
                float(fields["started"]),
                float(fields["seen"]),
            )
        except (KeyError, ValueError):
            self.redis.delete(key)
            return Checked(None, "unknown")
        ended = (
            "absolute"
            if now - record.started >= self.absolute_s
            else "idle"
            if now - record.seen >= self.idle_s
            else ""
        )
        if ended:
            self._end_for(key, record.username, ended)
            return Checked(None, ended, just_ended=True)
        if touch and now - record.seen >= TOUCH_EVERY_S:
            with self.redis.pipeline() as pipe:
                pipe.hset(key, "seen", now)
                pipe.expire(key, self._ttl(record.started, now))
                pipe.execute()
        return Checked(record)

    def end(self, sid: str) -> None:
        """退出: this session ends."""
        key = _key(sid)
        username = self.redis.hget(key, "username")
        self._forget(key, _text(username) if username else None)

    def end_for(self, sid: str, reason: str) -> None:
        """This session ends for ``reason`` (one of ENDED_REASONS), kept to tell its user."""
        key = _key(sid)
        username = self.redis.hget(key, "username")
        self._end_for(key, _text(username) if username else None, reason)

    def end_all(self, username: str, keep: str | None = None, reason: str = "") -> int:
        """Every session of the user ends (but ``keep``'s, an admin resetting their own
        password), for ``reason`` when their user is to be told why; returns how many
        did."""
        kept = _key(keep) if keep else None
        keys = [_text(k) for k in self.redis.smembers(_user_key(username))]
        keys = [k for k in keys if k != kept]
        if not keys:
            return 0
        with self.redis.pipeline() as pipe:
            for key in keys:
                self._queue_end(pipe, key, reason)
            pipe.srem(_user_key(username), *keys)
            results = pipe.execute()
        per_key = len(results[:-1]) // len(keys)  # each key's delete comes first
        return sum(int(results[i * per_key]) for i in range(len(keys)))

    def _end_for(self, key: str, username: str | None, reason: str) -> None:
        with self.redis.pipeline() as pipe:
            self._queue_end(pipe, key, reason)
            if username:
                pipe.srem(_user_key(username), key)
            pipe.execute()

    @staticmethod
    def _queue_end(pipe: Any, key: str, reason: str) -> None:
        """The record becomes the reason alone (kept a while), or goes."""
        pipe.delete(key)
        if reason:
            pipe.hset(key, "ended", reason)
            pipe.expire(key, REASON_KEPT_S)

    def _forget(self, key: str, username: str | None) -> None:
        with self.redis.pipeline() as pipe:
            pipe.delete(key)
            if username:
                pipe.srem(_user_key(username), key)
            pipe.execute()

    def _ttl(self, started: float, now: float) -> int:
        """Until the idle limit (never past the absolute one), and then long enough to
        tell a returning user why they were signed out."""
        return max(1, int(min(self.idle_s, self.absolute_s - (now - started))) + 1) + REASON_KEPT_S
