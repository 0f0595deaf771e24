"""Open311's rate limits: an exact sliding window per API key (or, without one, per
address) over every endpoint together, and one for refused keys per address.

One Lua script per check, on the Redis server's own clock: counting and admitting are
one atomic step, so neither requests arriving at once nor web processes on hosts whose
clocks differ can let one more through than the limit allows within any 60 s."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

from limits import parse

from queueing.keys import QueueKeys

# KEYS[1]: the window's sorted set (member: one admitted request; score: its time in
# ms). ARGV: the limit, the window in ms, a unique member. Returns {1, 0} admitted, or
# {0, ms until the oldest admitted request leaves the window}.
_SLIDING_WINDOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
"""


@dataclass(frozen=True)
class Rate:
    """A limit as configured ("120 per minute", "6/minute")."""

    amount: int
    window_ms: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        item = parse(text)
        return cls(item.amount, int(item.get_expiry() * 1000))

    def __str__(self) -> str:
        return f"{self.amount} per {self.window_ms // 1000} s"


class SlidingWindow:
    """Admits at most ``rate.amount`` requests per name in any ``rate.window_ms``."""

    def __init__(self, redis: Any, keys: QueueKeys) -> None:
        self.keys = keys
        self._check = redis.register_script(_SLIDING_WINDOW)

    def admit(self, scope: str, name: str, rate: Rate) -> int:
        """0 when admitted (and counted), else the whole seconds to wait (Retry-After)."""
        key = self.keys.open311_rate(scope, name)
        admitted, wait_ms = self._check(
            keys=[key], args=[rate.amount, rate.window_ms, secrets.token_hex(8)]
        )
        return 0 if int(admitted) else max(1, math.ceil(int(wait_ms) / 1000))
