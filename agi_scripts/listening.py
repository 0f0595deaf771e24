"""The Asterisk half of calls.listening: AMI Originate to the supervisor's phone, which
runs [hotline-listen] (ChanSpy on the seat's channel) when answered."""

from __future__ import annotations

from collections.abc import Callable

from agi_scripts.ami import AmiConnection, AmiError
from calls.listening import LISTEN_MODES, ListenError


class AsteriskListener:
    def __init__(
        self,
        ami: AmiConnection | Callable[[], AmiConnection],
        phone_pattern: str = "PJSIP/{seat}",
        ring_timeout_s: int = 30,
    ) -> None:
        self._ami = ami
        self.phone_pattern = phone_pattern
        self.ring_timeout_s = ring_timeout_s

    def _client(self) -> AmiConnection:
        return self._ami() if callable(self._ami) else self._ami

    def listen(self, session_id: str, who: str, seat: str, phone: str, mode: str) -> None:
        # The seat's own channels only: "PJSIP/1001-" is not a prefix of PJSIP/10010's.
        target = self.phone_pattern.format(seat=seat) + "-"
        fields: dict[str, object] = {
            "Action": "Originate",
            "Channel": self.phone_pattern.format(seat=phone),
            "Context": "hotline-listen",
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(self.ring_timeout_s * 1000),
            "CallerID": f"listen {seat} <{seat}>",
            "Async": "true",
            "Variable": [
                f"HOTLINE_LISTEN_TARGET={target}",
                f"HOTLINE_LISTEN_OPTIONS={LISTEN_MODES[mode]}",
                f"HOTLINE_LISTEN_ID={session_id}",
                f"HOTLINE_LISTEN_BY={who}",
                f"HOTLINE_LISTEN_SEAT={seat}",
            ],
        }
        try:
            reply = self._client().action(fields)
        except AmiError as exc:
            raise ListenError(str(exc)) from None
        if reply.get("Response") != "Success":
            raise ListenError(f"Originate refused: {reply.get('Message', '')}")
