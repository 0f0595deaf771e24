"""Twilio webhooks delivered twice: nginx passes a webhook on to the other web process
when the one that took it died before answering (docker/nginx/nginx.conf.template), so
the second delivery may find everything the first one did. It must queue nothing twice,
lose no caller, and answer with what the caller should hear now."""

from __future__ import annotations

from redis import Redis

from queueing import CallQueue
from tests.test_twilio_webhooks import app, incoming, queue, twilio  # noqa: F401
from tests.twilio_peer import parse, sid, verbs


def kinds_of(redis: Redis, queue: CallQueue, call: str) -> list[bytes]:
    """The queue's events for one call, in order."""
    events = redis.xrange(queue.keys.events)
    return [f[b"type"] for _, f in events if f.get(b"call") == call.encode()]  # type: ignore[union-attr]


def test_a_repeated_incoming_call_webhook_queues_the_call_once(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    first = parse(twilio.post("/twilio/voice", incoming()))
    again = parse(twilio.post("/twilio/voice", incoming()))
    assert verbs(first) == ["Say", "Gather"]
    assert verbs(again) == ["Enqueue"]  # in line already: the caller holds for a person
    assert queue.call(sid(1))["state"] == "waiting"
    assert kinds_of(queue.redis, queue, sid(1)).count(b"ENTERQUEUE") == 1


def test_a_repeated_incoming_call_webhook_dials_the_seat_the_first_one_offered(  # type: ignore[no-untyped-def]
    twilio, queue
) -> None:
    """The first answer (greeting, then the seat) never reached Twilio. Holding the
    caller would keep the seat offered to nobody until its ring timed out, and then
    pause it as if its operator had not picked up."""
    queue.seat_login("1001")
    first = parse(twilio.post("/twilio/voice", incoming()))
    again = parse(twilio.post("/twilio/voice", incoming()))
    assert verbs(first) == ["Say", "Dial"]
    assert verbs(again) == ["Dial"]
    assert again[0][0].tag == "Client" and again[0][0].text.strip() == "1001"
    record = queue.call(sid(1))
    assert (record["state"], record["seat"]) == ("offered", "1001")
    kinds = kinds_of(queue.redis, queue, sid(1))
    assert (kinds.count(b"ENTERQUEUE"), kinds.count(b"OFFER")) == (1, 1), kinds


def test_a_repeated_callback_choice_ends_the_call_instead_of_holding_it(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    """Pressing 1 for a callback ends the flow; the same key delivered again must not put
    the caller back on hold music that nothing will ever end."""
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")  # staffed, but no wait can be told
    twilio.post("/twilio/voice", incoming())
    twilio.post("/twilio/gather", {**incoming(), "Digits": ""})
    assert verbs(parse(twilio.post("/twilio/gather", {**incoming(), "Digits": ""}))) == ["Enqueue"]
    offer = parse(twilio.post("/twilio/wait", incoming()))
    assert verbs(offer) == ["Gather"], "the callback offer"
    press = {**incoming(), "Digits": "1"}
    first = parse(twilio.post("/twilio/gather?in=queue", press))
    again = parse(twilio.post("/twilio/gather?in=queue", press))
    assert verbs(first) == ["Say", "Hangup"]
    assert verbs(again) == ["Say", "Hangup"]  # the confirmation, and the call ends
    assert again[0].text == first[0].text
    assert queue.redis.exists(queue.keys.flow(sid(1)))


def test_a_start_replayed_after_the_flow_expired_is_not_a_new_call(app, twilio, queue) -> None:  # type: ignore[no-untyped-def]
    """Twilio's signature has no time in it: a captured /voice replayed a day later,
    once the call's flow and hang-up mark have expired from Redis, must not queue a
    phantom caller that rings an operator to silence."""
    from calls.figures import record_calls

    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    twilio.post("/twilio/voice", incoming())
    twilio.post("/twilio/status", {**incoming(), "CallStatus": "completed"})
    hotline = app.extensions["hotline"]
    with hotline.desk.sessions() as session:
        while record_calls(session, queue.redis, queue.keys):
            pass
    for key in (queue.keys.flow(sid(1)), queue.keys.gone(sid(1))):
        queue.redis.pexpire(key, 1)  # what a day does to them
    while queue.redis.exists(queue.keys.flow(sid(1)), queue.keys.gone(sid(1))):
        pass
    replay = parse(twilio.post("/twilio/voice", incoming()))
    assert verbs(replay) == ["Hangup"]
    assert kinds_of(queue.redis, queue, sid(1)).count(b"ENTERQUEUE") == 1
    assert queue.call(sid(1)).get("state") != "waiting"
