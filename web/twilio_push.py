"""Push offers to Twilio: the moment the queue offers a call to a seat, redirect the
live Twilio call to /twilio/offered (REST call update). That interrupts a <Gather> or
an <Enqueue> wait at once; polling the wait URL remains as the fallback if this process
is down, since pub/sub is fire-and-forget.

Run by `hotline twilio notify` (the run command starts it when Twilio is configured).
"""

from __future__ import annotations

import logging
import threading

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from hotline.calls import CallHandler, matched_on_entry

log = logging.getLogger("hotline.twilio.push")

# Redirect only calls that are not yet being dialled: redirecting a call in a <Dial>
# could cut a conversation that started a moment ago.
REDIRECTABLE_PHASES = ("menu", "holding", "callback_offer")


class OfferNotifier:
    def __init__(self, handler: CallHandler, client: Client, public_base_url: str) -> None:
        self.handler = handler
        self.client = client
        self.url = public_base_url.rstrip("/") + "/twilio/offered"

    def on_offer(self, call_id: str, seat: str) -> bool:
        """Redirect the call if it is a Twilio call still waiting for this offer."""
        state = self.handler.load(call_id)
        if state is None or state.channel != "twilio" or state.phase not in REDIRECTABLE_PHASES:
            return False
        record = self.handler.queue.call(call_id)
        if record.get("state") != "offered" or record.get("seat") != seat:
            return False  # already moved on
        if matched_on_entry(record):
            return False  # the request that queued the call is bridging it
        try:
            self.client.calls(call_id).update(url=self.url, method="POST")
        except TwilioRestException as exc:  # the caller hung up meanwhile, most often
            log.info("could not redirect call %s to its seat: %s", call_id, exc.msg)
            return False
        return True

    def run(self, stop: threading.Event) -> None:
        pubsub = self.handler.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.handler.queue.keys.offer_channel)
        log.info("pushing offers to Twilio")
        try:
            while not stop.is_set():
                message = pubsub.get_message(timeout=0.5)
                if not message:
                    continue
                data = message["data"]
                call_id, _, seat = (data.decode() if isinstance(data, bytes) else data).partition(
                    " "
                )
                try:
                    self.on_offer(call_id, seat)
                except Exception:  # one bad offer must not stop the others
                    log.exception("offer push for %s failed", call_id)
        finally:
            pubsub.close()
