"""The Asterisk half of calls.transfers: the caller's channel (the inbound AGI kept its
name) moved by AMI Redirect into [hotline-transfer-out] (an emergency line through the
trunk), [hotline-bridge] (the bridge's AGI rings the seat the queue has for the call,
or holds) or [hotline-on-hold] (music). See docker/asterisk/extensions.conf."""

from __future__ import annotations

import time
from collections.abc import Callable

from agi_scripts.ami import AmiConnection, AmiError
from calls import CallHandler
from calls.transfers import TelephonyError, national


class AsteriskMover:
    def __init__(
        self,
        handler: CallHandler,
        ami: AmiConnection | Callable[[], AmiConnection],
        dial_pattern: str = "PJSIP/{number}@trunk",
    ) -> None:
        self.handler = handler
        self._ami = ami
        self.dial_pattern = dial_pattern
        self.settle_s = 5.0

    def _client(self) -> AmiConnection:
        return self._ami() if callable(self._ami) else self._ami

    def _channel(self, call_id: str) -> str:
        raw = self.handler.redis.get(self.handler.queue.keys.channel(call_id))
        if not raw:
            raise TelephonyError(f"no channel known for {call_id}")
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def can_move(self, call_id: str, channel: str) -> bool:
        return channel == "asterisk" and bool(
            self.handler.redis.exists(self.handler.queue.keys.channel(call_id))
        )

    def _act(self, fields: dict[str, object]) -> None:
        # A caller moved a moment ago is "not up" to Redirect until the AGI session that
        # the move ended has returned (the redirect's pending goto): a few retries.
        deadline = time.monotonic() + self.settle_s
        while True:
            try:
                reply = self._client().action(fields)
            except AmiError as exc:
                raise TelephonyError(str(exc)) from None
            if reply.get("Response") == "Success":
                return
            message = str(reply.get("Message", ""))
            if "not up" not in message or time.monotonic() >= deadline:
                raise TelephonyError(f"{fields['Action']} refused: {message}")
            time.sleep(0.2)

    def to_line(self, call_id: str, channel: str, number: str) -> None:
        name = self._channel(call_id)
        dial = self.dial_pattern.format(number=national(number))
        self._act(
            {
                "Action": "Setvar",
                "Channel": name,
                "Variable": "HOTLINE_TRANSFER_DIAL",
                "Value": dial,
            }
        )
        self._act(
            {
                "Action": "Redirect",
                "Channel": name,
                "Context": "hotline-transfer-out",
                "Exten": "s",
                "Priority": "1",
            }
        )

    def back_in_line(self, call_id: str, channel: str) -> None:
        # The bridge's AGI dials the seat the queue offered, or sends the caller to hold.
        self._act(
            {
                "Action": "Redirect",
                "Channel": self._channel(call_id),
                "Context": "hotline-bridge",
                "Exten": "s",
                "Priority": "1",
            }
        )

    def hold(self, call_id: str, channel: str) -> None:
        # Music in [hotline-on-hold]; the operator's leg ends, and resuming is
        # back_in_line: the bridge's AGI rings the seat the call still holds.
        self._act(
            {
                "Action": "Redirect",
                "Channel": self._channel(call_id),
                "Context": "hotline-on-hold",
                "Exten": "s",
                "Priority": "1",
            }
        )
