"""The web's way to move a live call (calls.transfers), built once per app from the
whole configuration (app.extensions["hotline_settings"]); tests may put their own
Telephony in app.extensions["hotline_telephony"]."""

from __future__ import annotations

from typing import Any

from flask import current_app

from calls.transfers import EMERGENCY_LINES, Telephony, telephony_from_settings
from web.context import services


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
