"""The Redis call queue and operator seats.

Each state transition is one Lua script (queueing/lua/), atomic and one round trip;
every key is built by :mod:`queueing.keys`; every transition is appended to a Redis
Stream that :mod:`queueing.events` turns into figures.
"""

from queueing.errors import QueueError
from queueing.keys import QueueKeys
from queueing.service import CallQueue, Offer, Position, Transition
from queueing.settings import QueueSettings, load_queue_settings

__all__ = [
    "CallQueue",
    "Offer",
    "Position",
    "QueueError",
    "QueueKeys",
    "QueueSettings",
    "Transition",
    "load_queue_settings",
]
