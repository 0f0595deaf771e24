"""Issue 18's go-live pieces attacked as a hostile caller would: a signed-in user of
the least trusted kind (a department's staff) holding streams open on the push
process until it, and the front proxy's connections in front of it, are spent."""

from __future__ import annotations

import requests

from push.app import MAX_STREAMS_PER_USER
from tests.test_push import Stream, live, signed_in  # noqa: F401


def test_one_user_cannot_hold_more_than_their_share_of_streams(live) -> None:  # type: ignore[no-untyped-def]
    """Each open stream costs the push process a coroutine and a session check every
    15 s, and nginx two connections for an hour at a time; one account (however many
    times it signs in) gets a bounded number, and a stream that closes frees its place."""
    supply = signed_in(live, "supply")
    again = signed_in(live, "supply")  # a second sign-in is the same person
    url = live["push"] + "/portal/events"
    streams = [Stream(supply, url) for _ in range(MAX_STREAMS_PER_USER)]
    try:
        assert all(s.status == 200 for s in streams)
        refused = Stream(again, url)
        assert refused.status == 429
        refused.close()
        # Someone else is not affected by this user's streams.
        li = signed_in(live, "li")
        board = Stream(li, live["push"] + "/console/wallboard/events")
        assert board.status == 200
        board.close()
        streams.pop().close()
        for _ in range(50):  # the closed stream's place comes back once the push sees it
            retry = Stream(again, url)
            if retry.status == 200:
                break
            retry.close()
        assert retry.status == 200
        streams.append(retry)
        health = requests.get(live["push"] + "/healthz", timeout=10).json()
        assert health["inboxes"] == MAX_STREAMS_PER_USER
    finally:
        for s in streams:
            s.close()
