"""Process bodies for the multi-process queue tests (importable by spawned children)."""

from __future__ import annotations

import sys

from redis import Redis

from queueing import CallQueue, Offer
from queueing.settings import QueueSettings


def telephony_worker(url: str, worker: int, calls: int) -> None:
    """Act as one telephony adapter: enqueue callers, and for every offer this process
    receives, answer and complete it. Some callers hang up; some seats do not answer."""
    queue = CallQueue(Redis.from_url(url), QueueSettings(wrapup_s=0.0, offer_timeout_s=600))
    pending: list[Offer] = []
    declined: set[str] = set()
    for n in range(calls):
        call_id = f"w{worker}-{n}"
        pending.extend(
            queue.enqueue(call_id, priority=("normal", "repeat", "vulnerable")[n % 3]).offers
        )
        if n % 10 == 7:
            pending.extend(queue.hangup(call_id).offers)  # may abandon while waiting or ringing
        if n % 50 == 0:
            pending.extend(queue.match())
        while pending:
            offer = pending.pop()
            if queue.call(offer.call_id).get("state") != "offered":
                continue  # the caller hung up meanwhile
            if offer.call_id.endswith("3") and offer.call_id not in declined:
                declined.add(offer.call_id)
                pending.extend(queue.no_answer(offer.call_id, offer.seat_id).offers)
                pending.extend(queue.seat_state(offer.seat_id, "available").offers)
                continue
            queue.answer(offer.call_id, offer.seat_id)
            pending.extend(queue.complete(offer.call_id).offers)


def offer_then_hang(url: str) -> None:
    """Take an offer, ring the seat, and die before answering (the parent kills this
    process)."""
    queue = CallQueue(Redis.from_url(url), QueueSettings(offer_timeout_s=0.5))
    offers = queue.enqueue("doomed").offers
    queue.ringing("doomed", offers[0].seat_id)
    print(f"offered {offers[0].seat_id}", flush=True)
    sys.stdin.read()  # block until killed


if __name__ == "__main__":
    offer_then_hang(sys.argv[1])
