"""The web's way to move a live call (calls.transfers), built once per app from the
whole configuration (app.extensions["hotline_settings"]); tests may put their own
Telephony in app.extensions["hotline_telephony"]."""

from __future__ import annotations

from typing import Any

from flask import current_app

from agi_scripts.ami import AmiConnection
from agi_scripts.transfers import AsteriskMover
from calls import CallHandler
from calls.consult import ConsultLegs
from calls.transfers import EMERGENCY_LINES, CallMover, Telephony, TwilioMover
from web.context import services


def telephony_from_settings(settings: Any, handler: CallHandler) -> Telephony:
    """The movers a process can use, from hotline.config.Settings: AMI when
    ASTERISK_AMI_HOST is set, Twilio's REST API when its account is."""
    movers: list[CallMover] = []
    if settings.ami_host and settings.ami_secret:
        ami = AmiConnection(
            settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret
        )
        movers.append(AsteriskMover(handler, ami, settings.asterisk_outbound_dial))
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.public_base_url:
        from twilio.rest import Client

        client = Client(settings.twilio_account_sid, settings.twilio_auth_token)
        if settings.twilio_api_base_url:
            client.api.base_url = settings.twilio_api_base_url.rstrip("/")
        movers.append(
            TwilioMover(
                client,
                settings.public_base_url,
                settings.twilio_caller_id,
                settings.twilio_hold_music_url,
                ConsultLegs(handler.redis, handler.queue.keys),
            )
        )
    return Telephony(tuple(movers))


def _settings() -> Any:
    return current_app.extensions.get("hotline_settings")


def telephony() -> Telephony:
    ext = current_app.extensions
    if "hotline_telephony" not in ext:
        settings = _settings()
        ext["hotline_telephony"] = (
            telephony_from_settings(settings, services().handler)
            if settings is not None
            else Telephony(())
        )
    return ext["hotline_telephony"]  # type: ignore[no-any-return]


def emergency_lines() -> dict[str, str]:
    """Line -> the number dialled for it (HOTLINE_EMERGENCY_LINES), console order."""
    settings = _settings()
    if settings is None:
        return {line: line for line in EMERGENCY_LINES}
    return dict(settings.emergency_lines)


def emergency_number(line: str) -> str:
    return emergency_lines().get(line, line)
