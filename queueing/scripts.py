"""Load the Lua transition scripts (prelude + body) and register them on a client.

redis-py's ``Script`` sends EVALSHA and reloads the source on NOSCRIPT, so a Redis
restart (which empties the script cache) is handled.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis import Redis
from redis.commands.core import Script

SCRIPT_NAMES = (
    "enqueue",
    "answer",
    "ringing",
    "no_answer",
    "hangup",
    "complete",
    "seat_login",
    "seat_logout",
    "seat_state",
    "heartbeat",
    "tick",
    "match",
    "position",
    "set_skill",
    "leave",
    "turn_away",
    "pause_next",
    "wrapup_extend",
    "transfer",
    "hold",
    "consult",
)


@cache
def source(name: str) -> str:
    lua = resources.files("queueing") / "lua"
    prelude = (lua / "prelude.lua").read_text(encoding="utf-8")
    return prelude + "\n" + (lua / f"{name}.lua").read_text(encoding="utf-8")


def register_all(redis: Redis) -> dict[str, Script]:
    return {name: redis.register_script(source(name)) for name in SCRIPT_NAMES}
