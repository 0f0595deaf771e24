"""SMS on the web side: the provider's signed inbound webhook, and the gateway the web
form sends its codes with (built once per app from app.extensions["hotline_sms"], the
SmsSettings the composition root read; tests may put their own gateway in
app.extensions["hotline_sms_gateway"])."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, abort, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from calls.casework import arm_clocks
from calls.sms import SmsBudget, SmsGateway, SmsSettings, receive
from cases.phones import mask_phone
from web.context import services
from web.twilio.hooks import signed

log = logging.getLogger("hotline.sms")
bp = Blueprint("sms", __name__)

MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}\Z")


def sms_settings() -> SmsSettings:
    ext = current_app.extensions
    if "hotline_sms" not in ext:
        ext["hotline_sms"] = SmsSettings()  # not configured
    return ext["hotline_sms"]  # type: ignore[no-any-return]


def sms_gateway() -> SmsGateway | None:
    """The provider to send with, or None when SMS is not configured."""
    ext = current_app.extensions
    if "hotline_sms_gateway" not in ext:
        ext["hotline_sms_gateway"] = sms_settings().gateway()
    return ext["hotline_sms_gateway"]  # type: ignore[no-any-return]


def sms_budget() -> SmsBudget:
    """The hourly cap of texts (HOTLINE_SMS_MAX_PER_HOUR), in the app's Redis."""
    ext = current_app.extensions
    if "hotline_sms_budget" not in ext:
        svc = services()
        ext["hotline_sms_budget"] = SmsBudget(
            svc.redis, svc.queue.keys.prefix, sms_settings().max_per_hour
        )
    return ext["hotline_sms_budget"]  # type: ignore[no-any-return]


def _phones() -> Any:
    settings = current_app.extensions.get("hotline_settings")
    return settings.phones if settings is not None else None


@bp.post("/twilio/sms/inbound")
@signed
def inbound() -> Response:
    """A text to the hotline's number (Twilio's Messaging webhook)."""
    sid = request.form.get("MessageSid", "")
    if not MESSAGE_SID.match(sid):
        abort(400, description="MessageSid missing or malformed")
    sender, body = request.form.get("From", "")[:32], request.form.get("Body", "")[:4000]
    svc = services()
    desk = svc.desk
    with desk.sessions() as session:
        received = receive(session, sid, sender, body, phones=_phones())
        number = received.case.number if received.case is not None else None
        if received.reopened and received.case is not None:
            arm_clocks(svc.queue, received.case)
    if received.kind == "request" and number:
        desk.tasks.submit(number, "sms")
    log.info("sms %s from %s: %s", sid, mask_phone(sender), received.kind)
    answer = MessagingResponse()
    if received.reply:
        answer.message(received.reply)
    return Response(str(answer), mimetype="text/xml")
