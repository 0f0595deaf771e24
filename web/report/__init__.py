"""The citizens' web form (网上反映, /report): what happened, where, a phone for the
reply, an optional photo; no category (the operator chooses it). Public, for a phone's
screen and an elderly reader: large type, three boxes, one button.

Abuse control without a third-party captcha: rate limits per address (and per phone
for codes), and, where SMS is configured, a six-digit code sent to the phone given,
typed on the next page before anything is filed. The pending form waits in Redis for
CODE_TTL_S; its code is kept only as a hash, and a few wrong codes end it. Codes go
only to numbers the hotline texts (calls.sms.sendable: mainland mobiles by default) and
within the hourly cap of texts; a request from another number is filed without a code
(the address's limits guard it, as without SMS) and the citizen told no text will come.

A filed form becomes a case of channel "web" for the operators' queue
(``desk.tasks.submit``); the citizen sees its number and the lookup link."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import time
import unicodedata
from pathlib import Path
from typing import Any

import phonenumbers
from flask import Blueprint, current_app, render_template, request, url_for
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from calls.citizen_requests import file_request
from calls.sms import code_text, is_e164, opted_out
from cases.phones import InvalidPhone, mask_for_screen, mask_phone, normalise
from cases.photos import PhotoRefused, check_photo, photos_dir_from_env
from web.context import services
from web.limits import limiter
from web.sms import sms_budget, sms_gateway, sms_settings

log = logging.getLogger("hotline.report")
bp = Blueprint("report", __name__)

PHOTO_MAX_BYTES = 3 * 1024 * 1024
FORM_MAX_BYTES = PHOTO_MAX_BYTES + 64 * 1024
WHAT_MIN, WHAT_MAX, WHERE_MAX = 5, 1000, 200
CODE_TTL_S = 600
CODE_TRIES = 5
REPORTS_PER_ADDRESS = "5 per hour;20 per day"
CODES_PER_PHONE = "3 per hour"
CONFIRMS_PER_ADDRESS = "30 per hour"
# Names the pending form of this browser, so a citizen who left the code page finds it
# again on /report while its code is still valid.
PENDING_COOKIE = "report_pending"
# Of a body too large to take: how much is read to find the boxes typed before the photo.
TYPED_READ_BYTES = 64 * 1024

# One code check, atomically: parallel wrong codes are each counted (at most CODE_TRIES
# checks), the right one takes the form once, and a form missing its phone or code (a
# key half gone) is over. HINCRBY runs only on a key that exists, so its TTL stays.
# Returns {outcome, fields...}: ok (the whole form, then deleted), wrong (tries left),
# ended (the last try), or expired (what remains of the form, for the page).
_CHECK_CODE = """
local form = redis.call('HGETALL', KEYS[1])
if #form == 0 then
  return {'expired'}
end
local phone = redis.call('HGET', KEYS[1], 'phone')
local code = redis.call('HGET', KEYS[1], 'code')
if not phone or not code then
  redis.call('DEL', KEYS[1])
  local out = {'expired'}
  for i = 1, #form do out[#out + 1] = form[i] end
  return out
end
if code == ARGV[1] then  -- digests of token and code: timing tells nothing of the code
  redis.call('DEL', KEYS[1])
  local out = {'ok'}
  for i = 1, #form do out[#out + 1] = form[i] end
  return out
end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
if tries >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {'ended'}
end
return {'wrong', 'phone', phone}
"""


@bp.url_value_preprocessor
def allow_a_photo(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """This form alone may carry a photo: its larger body limit is set before the app's
    edge and CSRF checks read the body (url value preprocessors run before them)."""
    request.max_content_length = FORM_MAX_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def photo_too_large(exc: RequestEntityTooLarge) -> Any:
    """A photo the browser could not make small enough: the form again, with what was
    typed (read from the body's start: the boxes come before the photo) and a word."""
    typed = _typed_before_the_photo() if request.path == url_for("report.submit") else {}
    return _page("form", {"form": "report_photo_too_large"}, **typed), 413


def _typed_before_the_photo() -> dict[str, str]:
    """The text boxes of a multipart body too large to parse whole: decoded from its
    first TYPED_READ_BYTES, up to the first file; the rest is never read."""
    boundary = request.mimetype_params.get("boundary", "")
    if request.mimetype != "multipart/form-data" or not boundary:
        return {}
    decoder = MultipartDecoder(boundary.encode(), max_form_memory_size=TYPED_READ_BYTES)
    stream = request.environ["wsgi.input"]
    fields: dict[str, bytearray] = {}
    name, left = "", TYPED_READ_BYTES
    try:
        while left > 0:
            event = decoder.next_event()
            if isinstance(event, NeedData):
                chunk = stream.read(min(8192, left))
                left -= len(chunk)
                decoder.receive_data(chunk or None)
            elif isinstance(event, File):
                break
            elif isinstance(event, Field):
                name = event.name
                fields[name] = bytearray()
            elif isinstance(event, Data) and name in fields:
                fields[name] += event.data
            elif isinstance(event, Epilogue):
                break
    except (ValueError, RequestEntityTooLarge):
        pass
    text = {k: v.decode(errors="replace") for k, v in fields.items()}
    return {
        "typed_what": text.get("what", "")[:WHAT_MAX],
        "typed_where": text.get("where", "")[:WHERE_MAX],
        "typed_phone": text.get("phone", "")[:32],
    }


def _pending_form() -> dict[str, str] | None:
    """This browser's pending form (its cookie), while it waits in Redis: the token and
    the phone's screen mask."""
    token = request.cookies.get(PENDING_COOKIE, "")[:64]
    if not token:
        return None
    redis = services().redis
    phone, seconds_left = redis.hget(_pending_key(token), "phone"), redis.ttl(_pending_key(token))
    if not phone or seconds_left <= 0:
        return None
    shown = phone.decode() if isinstance(phone, bytes) else str(phone)
    minutes_left = str(max(1, math.ceil(seconds_left / 60)))
    return {"token": token, "masked_phone": mask_for_screen(shown), "minutes_left": minutes_left}


def _forget_pending(response: Any) -> Any:
    page = current_app.make_response(response)
    page.delete_cookie(PENDING_COOKIE, path=url_for("report.report"))
    return page


def _photos_dir() -> Path:
    """Where cases.photos keeps photos (HOTLINE_PHOTOS_DIR): the app's, or from the
    environment the composition root was started with."""
    ext = current_app.extensions
    if "hotline_photos_dir" not in ext:
        ext["hotline_photos_dir"] = photos_dir_from_env(os.environ)
    return ext["hotline_photos_dir"]  # type: ignore[no-any-return]


def _phone_given() -> str:
    typed = unicodedata.normalize("NFKC", request.form.get("phone", ""))[:32]
    try:
        phone = normalise(typed, _phones())
    except InvalidPhone:
        return ""
    if not is_e164(phone):
        return ""
    try:  # a mobile a digit short is no number: nobody could call or text it back
        valid = phonenumbers.is_valid_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return ""
    return phone if valid else ""


def _no_code_sent() -> bool:
    """No code is texted for this form: no SMS here, or a number we do not text."""
    if sms_gateway() is None:
        return True
    phone = _phone_given()
    return not phone or not sms_settings().textable(phone)


def _phones() -> Any:
    from flask import current_app

    settings = current_app.extensions.get("hotline_settings")
    return settings.phones if settings is not None else None


def _code_key() -> str:
    return "report-code:" + (_phone_given() or "none")


def _pending_key(token: str) -> str:
    return services().queue.keys.report_pending(token)


def _digest(token: str, code: str) -> str:
    return hashlib.sha256(f"{token}:{code}".encode()).hexdigest()


def _typed() -> dict[str, str]:
    return {
        "typed_what": request.form.get("what", "")[:WHAT_MAX],
        "typed_where": request.form.get("where", "")[:WHERE_MAX],
        "typed_phone": request.form.get("phone", "")[:32],
    }


def _page(step: str, errors: dict[str, str], **more: Any) -> str:
    more.setdefault("sms", sms_gateway() is not None)
    more.setdefault("photo_max_bytes", PHOTO_MAX_BYTES)
    return render_template("report.html", step=step, errors=errors, **more)


def _form(errors: dict[str, str], status: int = 400, **more: Any) -> Any:
    return _page("form", errors, **_typed(), **more), status


@bp.errorhandler(RateLimitExceeded)
def too_many(exc: RateLimitExceeded) -> Any:
    from web.portal.lookup import wait_words

    breached = limiter.current_limit
    seconds = breached.reset_at - time.time() if breached else exc.limit.limit.get_expiry()
    from web.auth import language

    wait = wait_words(seconds, language())
    return _form({"form": "report_slow"}, 429, wait=wait)


@bp.get("/report")
def report() -> Any:
    pending = _pending_form() if request.args.get("new") != "1" else None
    if pending is not None:  # back after leaving the code page: the code still works
        return _page("code", {}, returning=True, **pending)
    return _page("form", {})


@bp.post("/report")
@limiter.limit(REPORTS_PER_ADDRESS, scope="report-address")
@limiter.limit(
    CODES_PER_PHONE,
    scope="report-phone",
    key_func=_code_key,
    exempt_when=_no_code_sent,
)
def submit() -> Any:
    what = request.form.get("what", "").strip()
    where = request.form.get("where", "").strip()
    phone = _phone_given()
    errors: dict[str, str] = {}
    if not WHAT_MIN <= len(what) <= WHAT_MAX:
        errors["what"] = "report_what_needed"
    if len(where) > WHERE_MAX:
        errors["where"] = "report_where_long"
    if not phone:
        errors["phone"] = "report_phone_bad"
    photo = None
    upload = request.files.get("photo")
    if upload is not None and upload.filename:
        photo = upload.read(PHOTO_MAX_BYTES + 1)
        try:
            check_photo(photo, PHOTO_MAX_BYTES)
        except PhotoRefused as refused:
            errors["photo"] = "report_photo_big" if "large" in refused.code else "report_photo_type"
    if errors:
        return _form(errors)
    gateway = sms_gateway()
    if gateway is None:  # no SMS here: the rate limits alone guard the form
        return _file(what, where, phone, photo)
    if not sms_settings().textable(phone):  # filed, as without SMS; no text will come
        log.info("web form: %s is not a number we text; filed without a code", mask_phone(phone))
        return _file(what, where, phone, photo, textable=False)
    desk = services().desk
    with desk.sessions() as session:
        if opted_out(session, phone):
            return _form({"phone": "report_phone_opted_out"}, 409)
    if not sms_budget().take(essential=False):
        log.warning(
            "web form: the hourly cap of texts is reached; no code to %s", mask_phone(phone)
        )
        return _form({"form": "report_sms_busy"}, 503)
    token = secrets.token_urlsafe(24)
    code = f"{secrets.randbelow(10**6):06d}"
    pending: dict[str, str | bytes] = {
        "what": what,
        "where": where,
        "phone": phone,
        "code": _digest(token, code),
        "tries": "0",
    }
    if photo is not None:
        pending["photo"] = photo
    redis = services().redis
    key = _pending_key(token)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(key, mapping=pending)  # type: ignore[arg-type]
    pipe.expire(key, CODE_TTL_S)
    pipe.execute()
    try:
        gateway.send(phone, code_text(code))
    except Exception as exc:
        log.exception("web form: the code to %s could not be sent", mask_phone(phone))
        redis.delete(key)
        if _number_refused(exc):  # trying later will not help: the number is the matter
            return _form({"phone": "report_phone_refused"}, 400)
        return _form({"form": "report_sms_failed"}, 503)
    log.info("web form: code sent to %s", mask_phone(phone))
    page = current_app.make_response(
        _page("code", {}, token=token, masked_phone=mask_for_screen(phone))
    )
    page.set_cookie(
        PENDING_COOKIE,
        token,
        max_age=CODE_TTL_S,
        path=url_for("report.report"),
        secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
        httponly=True,
        samesite="Lax",
    )
    return page


def _number_refused(exc: Exception) -> bool:
    """The provider refused this message for good (Twilio answers 400 for a number it
    cannot text: invalid, a landline, unreachable), as opposed to an outage or a busy
    moment (5xx, 429, no answer), where trying later may work."""
    status = getattr(exc, "status", None)
    return isinstance(status, int) and status == 400


@bp.post("/report/confirm")
@limiter.limit(CONFIRMS_PER_ADDRESS, scope="report-confirm")
def confirm() -> Any:
    token = request.form.get("token", "")[:64]
    typed = unicodedata.normalize("NFKC", request.form.get("code", ""))[:32]
    code = "".join(c for c in typed if c.isdigit())[:6]
    if not token:
        return _forget_pending((_page("form", {"form": "report_expired"}), 410))
    redis = services().redis
    script = redis.register_script(_CHECK_CODE)
    reply = script(keys=[_pending_key(token)], args=[_digest(token, code), CODE_TRIES])
    outcome = reply[0].decode()
    fields = {reply[i].decode(): reply[i + 1] for i in range(1, len(reply) - 1, 2)}
    if outcome == "expired":  # what remains of the form is offered again
        kept = {
            "typed_what": fields.get("what", b"").decode(errors="replace"),
            "typed_where": fields.get("where", b"").decode(errors="replace"),
        }
        return _forget_pending((_page("form", {"form": "report_expired"}, **kept), 410))
    if outcome == "ended":
        return _forget_pending((_page("form", {"form": "report_code_ended"}), 403))
    phone = fields["phone"].decode()
    if outcome == "wrong":
        wrong = {"code": "report_code_wrong"}
        return _page("code", wrong, token=token, masked_phone=mask_for_screen(phone)), 400
    return _forget_pending(
        _file(fields["what"].decode(), fields["where"].decode(), phone, fields.get("photo"))
    )


def _file(what: str, where: str, phone: str, photo: bytes | None, textable: bool = True) -> Any:
    desk = services().desk
    with desk.sessions() as session:
        case = file_request(
            session,
            "web",
            secrets.token_hex(16),
            phone,
            what,
            where,
            photo,
            _photos_dir(),
            PHOTO_MAX_BYTES,
        )
        number = case.number
    desk.tasks.submit(number, "web")
    log.info("web form from %s filed as %s", mask_phone(phone), number)
    return _page(
        "done",
        {},
        number=number,
        lookup_url=url_for("lookup.lookup", number=number),
        masked_phone=mask_for_screen(phone),
        sms=textable and sms_gateway() is not None,
        untextable=not textable,
    )
