"""SMS on the web side: the providers' signed inbound webhooks (Twilio's, and a Chinese
gateway's JSON push at /sms/gateway/inbound), and the gateway the web form sends its
codes with (built once per app from app.extensions["hotline_sms"], the
SmsSettings the composition root read; tests may put their own gateway in
app.extensions["hotline_sms_gateway"])."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.exceptions import RequestEntityTooLarge

from calls.casework import arm_clocks
from calls.sms import (
    CN_GATEWAY,
    SIGNATURE_HEADER,
    BadUplink,
    SmsBudget,
    SmsGateway,
    SmsSettings,
    parse_uplinks,
    queue_answer,
    receive,
    signature_valid,
)
from cases.phones import mask_phone
from web.context import services
from web.limits import client_address
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
        per_hour = sms_settings().max_per_hour
        ext["hotline_sms_budget"] = SmsBudget(svc.redis, svc.queue.keys, per_hour)
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


# What the gateway's push is told when it is refused: zh-CN first, English beside it.
GATEWAY_ERRORS = {
    "not-enabled": (
        "本接口未启用：短信服务商不是 cn-gateway",
        "Not enabled: the SMS provider is not cn-gateway",
    ),
    "bad-signature": (
        f"签名无效：{SIGNATURE_HEADER} 缺失或与请求体不符，未处理任何短信",
        f"Invalid signature: {SIGNATURE_HEADER} is missing or does not sign the body; "
        "nothing was processed",
    ),
    "bad-body": ("请求体格式不正确", "The body is not the uplink messages' JSON"),
    "too-large": (
        "请求体过大（上限 64 KB），未处理任何短信：请分批推送",
        "The body is larger than 64 KB; nothing was processed: push fewer messages at a time",
    ),
    "retry": ("暂时无法处理，请稍后重试", "Not processed now; retry later"),
}


def _gateway_error(
    code: str, status: int, detail: str = "", results: list[dict[str, str]] | None = None
) -> Response:
    zh, en = GATEWAY_ERRORS[code]
    body: dict[str, Any] = {
        "code": code,
        "message": zh,
        "message_en": en + (f" ({detail})" if detail else ""),
    }
    if results is not None:
        body["results"] = results
    response = jsonify(body)
    response.status_code = status
    return response


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> Any:
    """The gateway is told in its own JSON, not an HTML page (web.MAX_BODY_BYTES)."""
    if request.path.startswith("/sms/gateway/"):
        return _gateway_error("too-large", 413)
    return exc


@bp.post("/sms/gateway/inbound")
def gateway_inbound() -> Response:
    """Texts to the hotline's number as a Chinese SMS gateway pushes them (calls.sms
    ``parse_uplinks``), signed over the body with the shared secret. Each is handled
    once (a push retried changes nothing); should one fail, the answer is 503 and the
    gateway's retry finishes the batch. A message that is not one is answered as
    bad-body (400) beside the others' results: they are handled all the same."""
    settings = sms_settings()
    if settings.provider.lower() != CN_GATEWAY:
        return _gateway_error("not-enabled", 404)
    raw = request.get_data(cache=False)
    if not signature_valid(settings.gateway_secret, raw, request.headers.get(SIGNATURE_HEADER)):
        log.warning("sms gateway push from %s refused: bad signature", client_address())
        return _gateway_error("bad-signature", 403)
    try:
        uplinks = parse_uplinks(raw)
    except ValueError as exc:
        return _gateway_error("bad-body", 400, str(exc))
    svc = services()
    desk = svc.desk
    results = []
    bad = [uplink for uplink in uplinks if isinstance(uplink, BadUplink)]
    for uplink in uplinks:
        if isinstance(uplink, BadUplink):
            log.warning("sms gateway push: message %d refused: %s", uplink.number, uplink.problem)
            results.append({"id": uplink.given_id, "result": "bad-body"})
            continue
        try:
            with desk.sessions() as session:
                received = receive(
                    session, uplink.provider_id, uplink.phone, uplink.content, phones=_phones()
                )
                number = received.case.number if received.case is not None else None
                if received.reopened and received.case is not None:
                    arm_clocks(svc.queue, received.case)
                if received.reply:
                    queue_answer(session, uplink.provider_id, received.reply)
            if received.kind == "request" and number:
                desk.tasks.submit(number, "sms")
        except Exception:
            log.exception(
                "sms %s from %s not handled", uplink.provider_id, mask_phone(uplink.phone)
            )
            return _gateway_error("retry", 503)
        log.info("sms %s from %s: %s", uplink.provider_id, mask_phone(uplink.phone), received.kind)
        results.append({"id": uplink.provider_id.removeprefix("cn:"), "result": received.kind})
    if bad:
        which = ", ".join(f"message {b.number}: {b.problem}" for b in bad[:10])
        return _gateway_error("bad-body", 400, which, results)
    return jsonify({"code": "OK", "message": "已接收 Received", "results": results})
