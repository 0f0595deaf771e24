"""The Asterisk half of calls.recordings: pausing and resuming the MixMonitor that the
bridge's AGI started on the caller's channel, over AMI (MixMonitorMute, both
directions: nothing of the sensitive numbers reaches the file)."""

from __future__ import annotations

from collections.abc import Callable

from agi_scripts.ami import AmiConnection, AmiError
from calls import CallHandler
from calls.recordings import RecordingError


class AsteriskRecorder:
    def __init__(self, handler: CallHandler, ami: AmiConnection | Callable[[], AmiConnection]):
        self.handler = handler
        self._ami = ami

    def _client(self) -> AmiConnection:
        return self._ami() if callable(self._ami) else self._ami

    def _channel(self, call_id: str) -> str | None:
        raw = self.handler.redis.get(self.handler.queue.keys.channel(call_id))
        if not raw:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def can_record(self, call_id: str, channel: str) -> bool:
        return channel == "asterisk" and self._channel(call_id) is not None

    def set_paused(self, call_id: str, channel: str, sid: str, paused: bool) -> None:
        name = self._channel(call_id)
        if name is None:
            raise RecordingError(f"no channel known for {call_id}")
        fields: dict[str, object] = {
            "Action": "MixMonitorMute",
            "Channel": name,
            "Direction": "both",
            "State": "1" if paused else "0",
        }
        try:
            reply = self._client().action(fields)
        except AmiError as exc:
            raise RecordingError(str(exc)) from None
        if reply.get("Response") != "Success":
            raise RecordingError(f"MixMonitorMute refused: {reply.get('Message', '')}")
