"""Outbound calls (the satisfaction callback bots): one interface, one implementation
per telephony platform. Twilio's is here; Asterisk's (AMI Originate) joins it."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlencode

from twilio.rest import Client


class TelephonyProvider(Protocol):
    def place_call(self, to: str, flow: str, ref: str) -> str:
        """Call ``to`` and run ``flow`` (e.g. "survey") for ``ref`` (e.g. a case number)
        when answered. Returns the platform's call id."""
        ...


class TwilioProvider:
    def __init__(
        self, client: Client, from_number: str, public_base_url: str, ring_timeout_s: int = 30
    ) -> None:
        self.client = client
        self.from_number = from_number
        self.base = public_base_url.rstrip("/")
        self.ring_timeout_s = ring_timeout_s

    def place_call(self, to: str, flow: str, ref: str) -> str:
        call = self.client.calls.create(
            to=to,
            from_=self.from_number,
            url=f"{self.base}/twilio/outbound/{flow}?{urlencode({'ref': ref})}",
            method="POST",
            status_callback=f"{self.base}/twilio/status",
            status_callback_method="POST",
            # A list here is right: the REST client sends one field per event.
            status_callback_event=["initiated", "ringing", "answered", "completed"],
            timeout=self.ring_timeout_s,
            machine_detection="Enable",
        )
        return str(call.sid)
