"""Twilio's voice webhooks (signed), the TwiML they answer with, and the offer push."""

from web.twilio import conference, listening, outbound  # noqa: F401  (their routes join the blueprint)
from web.twilio.hooks import bp

__all__ = ["bp"]
