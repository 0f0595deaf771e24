"""One active process per role (the reaper, the dialer) among several on different
hosts, by a lease in Redis; the others stand by and take over when it ends.

The lease is a key (``QueueKeys.lease(role)``) holding the holder's token (host, pid
and a random part) with a time to live. A thread renews it every ``ttl/3`` while the
token still matches; a standby tries to take it every second or so (``SET NX PX``).
A graceful stop deletes it, if still ours, so a standby takes over at its next try;
a holder that dies leaves it to expire, and a standby takes over within the TTL plus
one try.

The holder acts only while the lease is surely its own (``held``): it stops at the
first renewal that fails (Redis away, or the key deleted or taken: after a Sentinel
failover it may be gone with the asynchronous replica) and, on its own clock, once
``ttl - ttl/3`` has passed since the last renewal that succeeded was sent, even if
the next one is still stuck in the client's retries: the key cannot have expired on
the server before then, so no other process can be acting yet. It then stands by and
tries again like any other. A round of work already running finishes; the next one
waits for the lease.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("hotline.lease")

# Extend the lease only if it is still ours.
# KEYS: 1 the lease key. ARGV: 1 our token, 2 time to live (ms). Returns 1, or 0.
RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Give the lease up only if it is still ours (never another holder's).
# KEYS: 1 the lease key. ARGV: 1 our token. Returns 1, or 0.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_token() -> str:
    """Who holds a lease, for people and tools (``holder``): host, pid, random."""
    host = socket.gethostname().replace(" ", "-") or "host"
    return f"{host} {os.getpid()} {secrets.token_hex(8)}"


def holder(redis: Redis, key: str) -> tuple[str, int] | None:
    """The host and pid of the process that holds the lease now, or None."""
    raw = redis.get(key)
    if raw is None:
        return None
    host, _, rest = (raw.decode() if isinstance(raw, bytes) else str(raw)).partition(" ")
    pid = rest.partition(" ")[0]
    return (host, int(pid)) if pid.isdigit() else None


class Lease:
    """Use as a context manager around the work loop, and ask ``active()`` before each
    round of work::

        with Lease(redis, keys.lease("reaper"), "reaper", ttl_s) as lease:
            while running():
                if lease.active():
                    do_one_round()
                time.sleep(interval)
    """

    def __init__(
        self,
        redis: Redis,
        key: str,
        role: str,
        ttl_s: float = 6.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("a lease needs a positive time to live")
        self.redis, self.key, self.role = redis, key, role
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.renew_every_s = ttl_s / 3
        self.valid_s = ttl_s - self.renew_every_s  # after a renewal is sent
        self.poll_every_s = min(1.0, ttl_s / 6)
        self.clock = clock
        self.token = new_token()
        self._renew = redis.register_script(RENEW_LUA)
        self._release = redis.register_script(RELEASE_LUA)
        self._lock = threading.Lock()
        self._ours = False  # the key held our token at the last answer
        self._valid_until = 0.0  # our clock: act only before this
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_active = False

    # -- the holder's view ---------------------------------------------------------------

    @property
    def held(self) -> bool:
        """Whether this process may act now."""
        with self._lock:
            return self._ours and self.clock() < self._valid_until

    def active(self) -> bool:
        """``held``, logging when this process becomes active or stops being so (call it
        from the work loop only)."""
        now_held = self.held
        if now_held != self._was_active:
            self._was_active = now_held
            if now_held:
                log.info("%s: active (holds the lease %s)", self.role, self.key)
            else:
                log.info("%s: lost the lease %s; standing by", self.role, self.key)
        return now_held

    # -- talking to Redis ----------------------------------------------------------------

    def step(self) -> float:
        """Take the lease (standby) or renew it (holder), once. Returns the seconds until
        the next step."""
        sent = self.clock()
        with self._lock:
            ours = self._ours
        try:
            if ours:
                got = bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
                if not got:
                    log.warning("%s: the lease %s is no longer ours", self.role, self.key)
            else:
                # Or ours already: a reply lost on the way back, or a renewal that timed out.
                got = bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms)) or bool(
                    self._renew(keys=[self.key], args=[self.token, self.ttl_ms])
                )
        except RedisError as exc:
            if ours:
                log.warning("%s: could not renew the lease (%s)", self.role, exc)
            got = False
        give_back = False
        with self._lock:
            if got and self._stopping.is_set():
                got, give_back = False, True  # taken while stopping
            self._ours = got
            if got:
                self._valid_until = sent + self.valid_s
        if give_back:
            self._give_back()
        return self.renew_every_s if got else self.poll_every_s

    def _give_back(self) -> None:
        try:
            self._release(keys=[self.key], args=[self.token])
        except RedisError as exc:
            log.warning("%s: could not release the lease (%s); it expires", self.role, exc)

    def _keep(self) -> None:
        while not self._stopping.is_set():
            try:
                delay = self.step()
            except Exception:  # noqa: BLE001 - the thread must live on; stand by
                log.exception("%s: lease thread failed; standing by", self.role)
                with self._lock:
                    self._ours = False
                delay = self.poll_every_s
            self._stopping.wait(delay)

    def start(self) -> Lease:
        log.info("%s: standing by until it holds the lease %s", self.role, self.key)
        self._thread = threading.Thread(target=self._keep, name=f"lease-{self.role}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing and give the lease back (if ours), so a standby takes over at
        its next try instead of after the TTL."""
        self._stopping.set()
        if self._thread is not None:
            # A step stuck in the client's failover retries is left behind (daemon).
            self._thread.join(timeout=self.ttl_ms / 1000)
        with self._lock:
            ours, self._ours = self._ours, False
        if ours:
            self._give_back()
            log.info("%s: released the lease %s", self.role, self.key)

    def __enter__(self) -> Lease:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
