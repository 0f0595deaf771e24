"""Listening for offers: every match a transition makes is published on the queue's
offer channel as "CALL SEAT". Pub/sub is fire-and-forget, so listeners are an
accelerator; the adapters' own polling is what guarantees an offer is found."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from redis import Redis

from queueing.keys import QueueKeys


def offers(redis: Redis, keys: QueueKeys, stop: threading.Event) -> Iterator[tuple[str, str]]:
    """Yield (call id, seat id) for each offer published until ``stop`` is set."""
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.offer_channel)
    try:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.5)
            if message:
                data = message["data"]
                call_id, _, seat = (data.decode() if isinstance(data, bytes) else data).partition(
                    " "
                )
                yield call_id, seat
    finally:
        pubsub.close()
