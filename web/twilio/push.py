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

from calls import CallHandler
from queueing.offers import offers

log = logging.getLogger("hotline.twilio.push")


class OfferNotifier:
    def __init__(self, handler: CallHandler, client: Client, public_base_url: str) -> None:
        self.handler = handler
        self.client = client
        self.url = public_base_url.rstrip("/") + "/twilio/offered"

    def on_offer(self, call_id: str, seat: str) -> bool:
        """Redirect the call if it is a Twilio call still waiting for this offer."""
        if not self.handler.should_push_offer(call_id, seat, "twilio"):
            return False
        try:
            self.client.calls(call_id).update(url=self.url, method="POST")
        except TwilioRestException as exc:  # the caller hung up meanwhile, most often
            log.info("could not redirect call %s to its seat: %s", call_id, exc.msg)
            return False
        return True

    def run(self, stop: threading.Event) -> None:
        log.info("pushing offers to Twilio")
        for call_id, seat in offers(self.handler.redis, self.handler.queue.keys, stop):
            try:
                self.on_offer(call_id, seat)
            except Exception:  # one bad offer must not stop the others
                log.exception("offer push for %s failed", call_id)
