"""SMS in and out, behind one small interface a provider implements (``SmsGateway``):
Twilio Messaging, and a Chinese SMS gateway's HTTP API in the shape Aliyun's and Tencent
Cloud's share (``ChineseGatewaySms``: JSON with an HMAC-SHA256 signature over the body,
HOTLINE_SMS_PROVIDER=cn-gateway); any other is a class with the same ``send`` named by
HOTLINE_SMS_PROVIDER=package.module:Class.

Out (the outbox, run by the dialer process under its lease): the case number and how
to look it up when a case with a phone is filed; the unit's reply when it is resolved;
the return visit by text (1 satisfied, 2 not) when its phone attempts all failed, sent
only within the dialer's calling hours. Each is recorded once (``SmsMessage.source``)
and never sent to a number on the opt-out register, nor to one outside the regions
texted (HOTLINE_SMS_ALLOWED_REGIONS: mainland China's mobiles by default, so that the
web form and Open311 cannot be used to pump texts to premium numbers abroad). An hourly
cap of texts (HOTLINE_SMS_MAX_PER_HOUR, counted in Redis: ``SmsBudget``) refuses the
web form's codes beyond it; the case's own texts are counted and still sent.

In (``receive``): STOP or 退订 puts the number on the register; 1 or 2 answers the
return visit, as the callback bot records it; anything else is a request, a case of
channel "sms" for the operators' queue.

Phone numbers are masked in the logs (cases.phones.mask_phone)."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
import os
import time
import unicodedata
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from calls.dialing import DialerSettings, may_dial_at, next_calling_time
from cases.dispatch import apply_return_visit
from cases.models import Case, DialCursor, OptOut, OutboundItem, add_opt_out
from cases.phones import InvalidPhone, PhoneSettings, mask_phone, normalise
from cases.service import HOTLINE_TZ, blank_case
from cases.sms import SmsMessage
from queueing.keys import QueueKeys

log = logging.getLogger("hotline.sms")

SIGNATURE = "【12345热线】"
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "TD", "T", "退订", "退訂"}
)  # 退訂: the same word typed in traditional characters; T and TD: carriers' short forms
SATISFIED_WORDS = frozenset({"1", "满意"})
UNSATISFIED_WORDS = frozenset({"2", "不满意"})
PLAN_HORIZON = timedelta(days=2)
PLAN_OVERLAP = timedelta(minutes=10)  # rows committed a little after their time stamp
MAX_SEND_ATTEMPTS = 3
PLAN_EVERY_S = 5.0
REPLY_CHARS = 200  # of the unit's reply in the text; the lookup page has it whole
REQUEST_CHARS = 4000
DEFAULT_ALLOWED_REGIONS = ("CN",)
DEFAULT_MAX_PER_HOUR = 5000  # a city's codes and case texts in a busy hour
TEXTABLE_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


class SmsGateway(Protocol):
    """A provider: send one text to an E.164 number; returns the provider's id for it.
    Raises on refusal (the outbox retries, then records it failed)."""

    def send(self, to: str, body: str) -> str: ...


CN_GATEWAY = "cn-gateway"
SIGNATURE_HEADER = "X-Sms-Signature"  # hex HMAC-SHA256 of the body, both ways
GATEWAY_TIMEOUT_S = 10.0
GATEWAY_ACCEPTED = frozenset({"OK", "0"})


def sign_body(secret: str, body: bytes) -> str:
    """The gateway's signature of a body: hex HMAC-SHA256 with the shared secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, given: str | None) -> bool:
    """Whether ``given`` (hex, "sha256=" prefix allowed) signs ``body``; compared in
    constant time. No secret configured: nothing is valid."""
    given = (given or "").strip().removeprefix("sha256=").lower()
    if not secret or not given:
        return False
    return hmac.compare_digest(sign_body(secret, body), given)


class GatewayRefused(Exception):
    """The gateway answered, but did not take the text (its code and message)."""


class ChineseGatewaySms:
    """A Chinese SMS gateway (Aliyun SMS, Tencent Cloud SMS, or a carrier's platform
    behind a small adapter): one JSON POST per text, template-free content, signed
    with the shared secret; the answer's ``code`` (Aliyun's ``Code``) is OK (or 0)
    with a ``message_id`` (or ``biz_id``, ``BizId``), anything else, none included, a
    refusal the outbox retries."""

    def __init__(self, url: str, secret: str, app_id: str = "") -> None:
        self.url, self.secret, self.app_id = url, secret, app_id

    def send(self, to: str, body: str) -> str:
        payload: dict[str, str] = {"phone_number": to, "content": body}
        if self.app_id:
            payload["app_id"] = self.app_id
        data = json.dumps(payload, ensure_ascii=False).encode()
        request = urllib.request.Request(
            self.url,
            data=data,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                SIGNATURE_HEADER: sign_body(self.secret, data),
            },
        )
        with urllib.request.urlopen(request, timeout=GATEWAY_TIMEOUT_S) as response:
            answer = json.loads(response.read() or b"{}")
        if not isinstance(answer, dict):
            raise GatewayRefused("the gateway's answer is not a JSON object")
        # Aliyun writes Code, Message and BizId. No code at all (an empty 200, a proxy's
        # own JSON) is not taken as sent: the text would be lost.
        code = str(answer.get("code", answer.get("Code", ""))).upper()
        if code not in GATEWAY_ACCEPTED:
            words = answer.get("message", answer.get("Message", ""))
            raise GatewayRefused(f"{code or 'no code'}: {str(words)[:200]}")
        given = answer.get("message_id") or answer.get("biz_id") or answer.get("BizId")
        return str(given or "")


@dataclass(frozen=True)
class Uplink:
    """One text to the hotline as the gateway pushes it (its uplink, 上行短信)."""

    provider_id: str
    phone: str
    content: str
    send_time: str


@dataclass(frozen=True)
class BadUplink:
    """A message of a push that is not one (no phone_number or content): its place in
    the push (from 1), the gateway's id when it gave one, and what is wrong."""

    number: int
    given_id: str
    problem: str


def storable(text: str) -> str:
    """Text any database keeps: NUL bytes dropped, and a lone surrogate (half an emoji
    a split UCS-2 text left, sent as JSON's "\\ud83d") made U+FFFD, so the words
    around it are kept."""
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text.replace("\x00", ""))


def parse_uplinks(raw: bytes) -> list[Uplink | BadUplink]:
    """The gateway's uplink push: a JSON list of messages (or one message) with
    ``phone_number``, ``content`` and ``send_time``, and the gateway's own id in
    ``sequence_id`` or ``message_id`` when it gives one. A message without an id is
    named by what it is (phone, time and words), so a push retried is the same
    message. A message that is not that shape is a BadUplink, and costs the others
    nothing. Raises ValueError when the body is not JSON."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("the body is not JSON") from exc
    items = data if isinstance(data, list) else [data]
    out: list[Uplink | BadUplink] = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            out.append(BadUplink(number, "", "not a JSON object"))
            continue
        phone, content = item.get("phone_number"), item.get("content")
        given = item.get("sequence_id") or item.get("message_id")
        if not isinstance(phone, str | int) or not isinstance(content, str):
            named = "" if given is None else storable(str(given))[:120]
            out.append(BadUplink(number, named, "no phone_number or content"))
            continue
        phone, content = storable(str(phone)), storable(content)
        send_time = storable(str(item.get("send_time") or ""))
        if given is None or str(given).strip() == "":
            words = "\x1f".join((phone, send_time, content)).encode()
            given = "h" + hashlib.sha256(words).hexdigest()[:40]
        out.append(Uplink(f"cn:{storable(str(given))[:120]}", phone[:32], content, send_time))
    return out


class TwilioSms:
    """Twilio Messaging: ``messages.create`` from the hotline's number, or from a
    Messaging Service (an MG... sid)."""

    def __init__(self, client: Any, sender: str) -> None:
        self.client, self.sender = client, sender

    def send(self, to: str, body: str) -> str:
        origin = (
            {"messaging_service_sid": self.sender}
            if self.sender.startswith("MG")
            else {"from_": self.sender}
        )
        message = self.client.messages.create(to=to, body=body, **origin)
        return str(message.sid)


@dataclass(frozen=True)
class SmsSettings:
    """From the environment (docs/sms.md): HOTLINE_SMS_PROVIDER (twilio, or
    module:Class), HOTLINE_SMS_FROM (the hotline's number or a Messaging Service sid),
    HOTLINE_SMS_VISIT_WAIT_H (how long a texted return visit waits for its answer),
    HOTLINE_SMS_ALLOWED_REGIONS (whose mobiles are texted: CN, or CN,HK,MO; * for any),
    HOTLINE_SMS_MAX_PER_HOUR (the hourly cap), PUBLIC_BASE_URL (the lookup link), and
    Twilio's account."""

    provider: str = ""
    sender: str = ""
    public_base_url: str = ""
    visit_wait: timedelta = timedelta(hours=48)
    allowed_regions: tuple[str, ...] = DEFAULT_ALLOWED_REGIONS
    max_per_hour: int = DEFAULT_MAX_PER_HOUR
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_api_base_url: str | None = None
    gateway_url: str = ""  # cn-gateway: where texts are POSTed
    gateway_secret: str = field(default="", repr=False)  # cn-gateway: signs both ways
    gateway_app_id: str = ""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SmsSettings:
        env = os.environ if env is None else env
        provider = env.get("HOTLINE_SMS_PROVIDER", "").strip()
        hours = env.get("HOTLINE_SMS_VISIT_WAIT_H", "")
        regions = tuple(
            r.strip().upper()
            for r in env.get("HOTLINE_SMS_ALLOWED_REGIONS", "").split(",")
            if r.strip()
        )
        cap = env.get("HOTLINE_SMS_MAX_PER_HOUR", "").strip()
        return cls(
            provider="" if provider.lower() in ("", "none", "off") else provider,
            sender=env.get("HOTLINE_SMS_FROM", "").strip(),
            public_base_url=(env.get("PUBLIC_BASE_URL") or "").rstrip("/"),
            visit_wait=timedelta(hours=int(hours)) if hours.isdigit() else timedelta(hours=48),
            allowed_regions=regions or DEFAULT_ALLOWED_REGIONS,
            max_per_hour=int(cap) if cap.isdigit() else DEFAULT_MAX_PER_HOUR,
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
            twilio_api_base_url=env.get("TWILIO_API_BASE_URL") or None,
            gateway_url=env.get("HOTLINE_SMS_GATEWAY_URL", "").strip(),
            gateway_secret=env.get("HOTLINE_SMS_GATEWAY_SECRET", ""),
            gateway_app_id=env.get("HOTLINE_SMS_GATEWAY_APP_ID", "").strip(),
            env=dict(env),
        )

    @property
    def configured(self) -> bool:
        return bool(self.provider)

    def textable(self, phone: str) -> bool:
        """Whether texts may go to ``phone`` (see ``sendable``)."""
        return sendable(phone, self.allowed_regions)

    @property
    def lookup_url(self) -> str:
        return f"{self.public_base_url}/lookup" if self.public_base_url else "12345"

    def gateway(self) -> SmsGateway | None:
        """The provider, or None when SMS is not configured."""
        if not self.provider:
            return None
        if self.provider.lower() == "twilio":
            if not (self.twilio_account_sid and self.twilio_auth_token and self.sender):
                raise ValueError(
                    "HOTLINE_SMS_PROVIDER=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN "
                    "and HOTLINE_SMS_FROM"
                )
            from twilio.rest import Client

            client = Client(self.twilio_account_sid, self.twilio_auth_token)
            if self.twilio_api_base_url:
                client.api.base_url = self.twilio_api_base_url.rstrip("/")
            return TwilioSms(client, self.sender)
        if self.provider.lower() == CN_GATEWAY:
            if not (self.gateway_url and self.gateway_secret):
                raise ValueError(
                    "HOTLINE_SMS_PROVIDER=cn-gateway needs HOTLINE_SMS_GATEWAY_URL and "
                    "HOTLINE_SMS_GATEWAY_SECRET"
                )
            return ChineseGatewaySms(self.gateway_url, self.gateway_secret, self.gateway_app_id)
        module, _, name = self.provider.partition(":")
        if not name:
            raise ValueError(
                f"HOTLINE_SMS_PROVIDER: 'twilio', 'cn-gateway' or 'module:Class', not {module!r}"
            )
        gateway: SmsGateway = getattr(importlib.import_module(module), name)(self.env)
        return gateway


# -- the texts (zh-CN: the citizen's language) --------------------------------------------


def acceptance_text(number: str, lookup_url: str) -> str:
    return (
        f"{SIGNATURE}您反映的问题已受理，工单号 {number}。"
        f"查询办理进度请访问 {lookup_url} ，输入工单号和本手机号；也可拨打12345查询。"
        "回复“退订”不再接收短信。"
    )


def reply_text(number: str, reply: str, lookup_url: str) -> str:
    shown = reply.strip()
    if len(shown) > REPLY_CHARS:
        shown = shown[:REPLY_CHARS] + "……"
    return (
        f"{SIGNATURE}您的工单 {number} 已办结。承办单位答复：{shown} 详情请访问 {lookup_url} 查询。"
    )


def visit_text(number: str, raised: datetime) -> str:
    local = raised.astimezone(HOTLINE_TZ)
    return (
        f"{SIGNATURE}您好，您{local.month}月{local.day}日反映的问题（工单号 {number}）已办结。"
        "对办理结果满意请回复1，不满意请回复2。回复“退订”不再接收短信。"
    )


def task_reply_text(number: str, reply: str, lookup_url: str) -> str:
    shown = reply.strip()
    if len(shown) > REPLY_CHARS:
        shown = shown[:REPLY_CHARS] + "……"
    return (
        f"{SIGNATURE}您反映的问题（工单号 {number}）答复如下：{shown} "
        f"查询办理进度请访问 {lookup_url} 。回复“退订”不再接收短信。"
    )


def code_text(code: str) -> str:
    return f"{SIGNATURE}您的验证码是 {code}，10分钟内有效。如非本人操作，请忽略本短信。"


VISIT_THANKS = {
    "satisfied": f"{SIGNATURE}感谢您的评价，祝您生活愉快。",
    "unsatisfied": f"{SIGNATURE}感谢您的反馈，我们已要求承办单位重新办理。",
}


# -- the outbox --------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def opted_out(session: Session, phone: str) -> bool:
    return session.scalar(select(OptOut.id).where(OptOut.phone == phone)) is not None


def is_e164(phone: str) -> bool:
    """A citizen's number (E.164), not a withheld id or a service code."""
    return phone.startswith("+") and phone[1:].isdigit() and len(phone) >= 8


def sendable(phone: str, regions: tuple[str, ...] = DEFAULT_ALLOWED_REGIONS) -> bool:
    """A mobile number (E.164) of one of ``regions`` ("*": any region): texts to
    anything else (landlines, premium and satellite ranges, other countries) are what
    SMS pumping bills the hotline for."""
    if not is_e164(phone):
        return False
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    if "*" not in regions and phonenumbers.region_code_for_number(number) not in regions:
        return False
    return phonenumbers.number_type(number) in TEXTABLE_TYPES


_TAKE_SMS_SLOT = """
local sent = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[2] == '0' and sent >= tonumber(ARGV[1]) then
  return -1
end
sent = redis.call('INCR', KEYS[1])
if sent == 1 then
  redis.call('EXPIRE', KEYS[1], 7200)
end
return sent
"""


# The channels whose requests the operator answers by text at once (TaskDesk.reply).
TEXTED_REPLY_CHANNELS = frozenset({"sms", "web"})


def reply_source(case_id: int, reply: str) -> str:
    """The outbox's one key for a reply to a case, whichever path queues it (the
    operator's task reply, or the resolution the planner sees): the same words are
    texted once. A new reply (a reopened case resolved again) is a new text."""
    digest = hashlib.sha256(reply.strip().encode()).hexdigest()[:24]
    return f"reply:{case_id}:{digest}"


def queue_task_reply(
    session: Session, settings: SmsSettings, case: Case, reply: str, reply_id: int
) -> SmsMessage | None:
    """The operator's reply to a request that came by text or the web form, added to
    ``session`` (the caller commits it with the reply) for the outbox to send at once;
    ``reply_id`` is the reply's trail event. None when SMS is not configured, the
    request came otherwise, the number is not texted (outside the allowed regions or
    opted out), or these words were texted already (``reply_source``). The outbox
    checks the number again when it sends, and counts the text against the hourly cap
    as the case's other texts."""
    phone = case.caller_phone or ""
    if not settings.configured or case.channel not in TEXTED_REPLY_CHANNELS:
        return None
    if not settings.textable(phone) or opted_out(session, phone):
        log.info("task reply on %s not texted to %s", case.number, mask_phone(phone))
        return None
    source = reply_source(case.id, reply)
    if session.scalar(select(SmsMessage.id).where(SmsMessage.source == source)) is not None:
        log.info("reply on %s already texted", case.number)
        return None
    now = datetime.now(UTC)
    message = SmsMessage(
        source=source,
        direction="out",
        purpose="task_reply",
        phone=phone,
        body=task_reply_text(case.number, reply, settings.lookup_url),
        case_id=case.id,
        status="pending",
        created_at=now,
        next_at=now,
    )
    session.add(message)
    return message


class SmsBudget:
    """The hourly cap of outgoing texts, counted in Redis across processes (one key per
    clock hour). Essential texts (a case's own) are counted and always allowed;
    others (the web form's codes) are refused once the hour's count reaches the cap."""

    def __init__(self, redis: Any, keys: QueueKeys, per_hour: int) -> None:
        self.redis, self.keys, self.per_hour = redis, keys, per_hour
        self._take = redis.register_script(_TAKE_SMS_SLOT)

    def key(self, now: datetime) -> str:
        return self.keys.sms_sent(f"{now.astimezone(UTC):%Y%m%d%H}")

    def take(self, essential: bool, now: datetime | None = None) -> bool:
        key = self.key(now or datetime.now(UTC))
        taken = self._take(keys=[key], args=[self.per_hour, "1" if essential else "0"])
        return int(taken) >= 0


class SmsOutbox:
    """Plans the texts owed (idempotent) and sends the due ones."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        gateway: SmsGateway,
        settings: SmsSettings,
        dialing: DialerSettings | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        budget: SmsBudget | None = None,
    ) -> None:
        self.sessions, self.gateway, self.settings = sessions, gateway, settings
        self.dialing = dialing or DialerSettings()
        self.now = now
        self.budget = budget
        self.next_plan = 0.0

    def run_once(self) -> int:
        """Plan (every PLAN_EVERY_S), then send what is due; returns how many texts
        went out."""
        now = self.now()
        if time.monotonic() >= self.next_plan:
            with self.sessions() as session:
                self.plan(session, now)
            self.expire_visits(now)
            self.next_plan = time.monotonic() + PLAN_EVERY_S
        return self.send_due(now)

    # planning

    def plan(self, session: Session, now: datetime) -> int:
        marks = {
            c.source: c
            for c in session.scalars(select(DialCursor).where(DialCursor.source.like("sms-%")))
        }

        def since(name: str) -> datetime:
            cursor = marks.get(name)
            start = now - PLAN_HORIZON
            if cursor is not None:
                start = max(start, _aware(cursor.mark) - PLAN_OVERLAP)
            return start.astimezone(UTC)

        wanted: dict[str, tuple[str, str, str, int, datetime]] = {}
        url = self.settings.lookup_url
        accepted = select(Case).where(
            Case.updated_at >= since("sms-accept"),
            Case.created_at >= now - PLAN_HORIZON,
            Case.caller_phone.like("+%"),
            Case.merged_into_id.is_(None),
            ~blank_case(),
            # A duplicate closed into the caller's open case (催办) has no number of note.
            (Case.status != "closed") | Case.resolved_at.is_not(None),
        )
        for case in session.scalars(accepted):
            wanted[f"accept:{case.id}"] = (
                "acceptance",
                case.caller_phone,
                acceptance_text(case.number, url),
                case.id,
                now,
            )
        resolved = select(Case).where(
            Case.resolved_at >= since("sms-reply"),
            Case.reply != "",
            Case.caller_phone.like("+%"),
        )
        # Texts planned before replies had one key per reply were keyed by the time of
        # resolution: such a one already made stands for its reply.
        earlier: dict[str, str] = {}
        for case in session.scalars(resolved):
            stamp = int(_aware(case.resolved_at or now).timestamp())
            source = reply_source(case.id, case.reply)
            earlier[f"reply:{case.id}:{stamp}"] = source
            wanted[source] = (
                "reply",
                case.caller_phone,
                reply_text(case.number, case.reply, url),
                case.id,
                now,
            )
        given_up = select(OutboundItem).where(
            OutboundItem.kind == "return_visit",
            OutboundItem.status == "gave_up",
            OutboundItem.last_attempt_at >= since("sms-visit"),
        )
        for item in session.scalars(given_up):
            visited = item.case
            if visited is None or visited.status != "resolved" or visited.satisfaction:
                continue
            wanted[f"visit:{visited.id}"] = (
                "visit",
                item.phone,
                visit_text(visited.number, _aware(visited.created_at)),
                visited.id,
                next_calling_time(now, self.dialing),
            )
        known: set[str] = set()
        sources = sorted(wanted)
        asked = sources + sorted(earlier)
        for n in range(0, len(asked), 500):
            chunk = asked[n : n + 500]
            for source in session.scalars(
                select(SmsMessage.source).where(SmsMessage.source.in_(chunk))
            ):
                known.add(earlier.get(source, source))
        fresh = 0
        for source in sources:
            if source in known:
                continue
            purpose, phone, body, case_id, due = wanted[source]
            session.add(
                SmsMessage(
                    source=source,
                    direction="out",
                    purpose=purpose,
                    phone=phone,
                    body=body,
                    case_id=case_id,
                    status="pending",
                    created_at=now,
                    next_at=due,
                )
            )
            fresh += 1
        for name in ("sms-accept", "sms-reply", "sms-visit"):
            if name in marks:
                marks[name].mark = now
            else:
                session.add(DialCursor(source=name, mark=now))
        try:
            session.commit()
        except IntegrityError:  # another planner took the same texts: the next pass
            session.rollback()
            return 0
        return fresh

    # sending

    def send_due(self, now: datetime, batch: int = 50) -> int:
        sent = 0
        with self.sessions() as session:
            due = list(
                session.scalars(
                    select(SmsMessage.id)
                    .where(SmsMessage.status == "pending", SmsMessage.next_at <= now)
                    .order_by(SmsMessage.next_at, SmsMessage.id)
                    .limit(batch)
                )
            )
        for message_id in due:
            sent += self._send_one(message_id, now)
        return sent

    def _send_one(self, message_id: int, now: datetime) -> int:
        with self.sessions() as session:
            # Claimed first, so that two senders never send the same text.
            claimed = session.execute(  # type: ignore[attr-defined]
                update(SmsMessage)
                .where(SmsMessage.id == message_id, SmsMessage.status == "pending")
                .values(status="sending")
            ).rowcount
            session.commit()
            if not claimed:
                return 0
            message = session.get(SmsMessage, message_id)
            assert message is not None
            textable = self.settings.textable(message.phone)
            if not textable or opted_out(session, message.phone):
                message.status = "opted-out" if textable else "not-textable"
                log.info(
                    "sms %s to %s not sent: %s",
                    message.purpose,
                    mask_phone(message.phone),
                    message.status,
                )
                self._settle_visit(session, message, "unreachable")
                session.commit()
                return 0
            if message.purpose == "visit" and not may_dial_at(now, self.dialing):
                message.status = "pending"
                message.next_at = next_calling_time(now + self.dialing.dial_margin, self.dialing)
                session.commit()
                return 0
            message.attempts += 1
            if self.budget is not None:
                self.budget.take(essential=True, now=now)  # counted against the codes' cap
            try:
                message.provider_id = self.gateway.send(message.phone, message.body)[:64]
            except Exception:
                log.exception("sms %s to %s refused", message.purpose, mask_phone(message.phone))
                if message.attempts >= MAX_SEND_ATTEMPTS:
                    message.status = "failed"
                    self._settle_visit(session, message, "unreachable")
                else:
                    message.status = "pending"
                    message.next_at = now + timedelta(minutes=message.attempts)
                session.commit()
                return 0
            message.status, message.sent_at = "sent", now
            session.commit()
            log.info("sms %s sent to %s", message.purpose, mask_phone(message.phone))
            return 1

    def expire_visits(self, now: datetime) -> int:
        """Texted return visits nobody answered within the wait settle as unreachable,
        as the phone attempts would have without SMS."""
        with self.sessions() as session:
            stale = list(
                session.scalars(
                    select(SmsMessage).where(
                        SmsMessage.purpose == "visit",
                        SmsMessage.status == "sent",
                        SmsMessage.sent_at < now - self.settings.visit_wait,
                    )
                )
            )
            for message in stale:
                message.status = "expired"
                self._settle_visit(session, message, "unreachable")
            session.commit()
        return len(stale)

    @staticmethod
    def _settle_visit(session: Session, message: SmsMessage, outcome: str) -> None:
        if message.purpose != "visit" or message.case_id is None:
            return
        case = session.get(Case, message.case_id)
        if case is not None:
            apply_return_visit(session, case, outcome, actor="sms")


# -- in ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """What an incoming text did: kind is optout | visit | request | duplicate | ignored.
    ``reply`` is the text to answer with (None: nothing)."""

    kind: str
    case: Case | None = None
    reply: str | None = None
    reopened: bool = False


def _word(body: str) -> str:
    return unicodedata.normalize("NFKC", body).strip().strip("。.!！").upper()


def receive(
    session: Session,
    provider_id: str,
    raw_phone: str,
    body: str,
    now: datetime | None = None,
    phones: PhoneSettings | None = None,
) -> Received:
    """One incoming text, once per provider id (a webhook retried changes nothing)."""
    from calls.citizen_requests import file_request

    now = now or datetime.now(UTC)
    try:
        phone = normalise(raw_phone, phones) if phones else normalise(raw_phone)
    except InvalidPhone:
        phone = ""
    if not is_e164(phone):
        log.warning("sms from an unusable number %s ignored", mask_phone(raw_phone))
        return Received("ignored")
    source = f"in:{provider_id}"
    if session.scalar(select(SmsMessage.id).where(SmsMessage.source == source)) is not None:
        return Received("duplicate")
    text = body.replace("\x00", "").strip()[:REQUEST_CHARS]
    word = _word(text)
    record = SmsMessage(
        source=source,
        direction="in",
        purpose="inbound",
        phone=phone,
        body=text,
        status="received",
        created_at=now,
        next_at=now,
    )
    session.add(record)
    try:  # first: a STOP's or an answer's queries would flush it outside this guard
        session.flush()
    except IntegrityError:  # the same text delivered twice at once
        session.rollback()
        return Received("duplicate")
    if word in STOP_WORDS:
        record.purpose = "optout"
        add_opt_out(session, phone, "sms", note="短信退订 " + word, at=now, phones=phones)
        session.commit()
        log.info("sms opt-out from %s", mask_phone(phone))
        return Received("optout")
    outcome = (
        "satisfied"
        if word in SATISFIED_WORDS
        else "unsatisfied"
        if word in UNSATISFIED_WORDS
        else None
    )
    if outcome is not None:
        visit = session.scalar(
            select(SmsMessage)
            .where(
                SmsMessage.phone == phone,
                SmsMessage.purpose == "visit",
                SmsMessage.status == "sent",
            )
            .order_by(SmsMessage.sent_at.desc())
            .limit(1)
        )
        case = session.get(Case, visit.case_id) if visit and visit.case_id else None
        if visit is not None and case is not None and case.status == "resolved":
            record.purpose, record.case_id = "visit_answer", case.id
            visit.status = "answered"
            apply_return_visit(session, case, outcome, actor="sms")
            session.commit()
            log.info("sms return visit of %s: %s", case.number, outcome)
            return Received("visit", case, VISIT_THANKS[outcome], reopened=outcome == "unsatisfied")
    case = file_request(session, "sms", provider_id, phone, text)
    record.case_id = case.id
    session.commit()
    log.info("sms request from %s filed as %s", mask_phone(phone), case.number)
    return Received("request", case)


def queue_answer(session: Session, provider_id: str, body: str) -> bool:
    """The answer to an incoming text (the return visit's thanks), for the outbox to
    send, once per incoming text: for a gateway whose webhook cannot answer in its
    response as Twilio's does. Commits; returns whether it was queued now."""
    incoming = session.scalar(select(SmsMessage).where(SmsMessage.source == f"in:{provider_id}"))
    source = f"answer:{provider_id}"
    if incoming is None or session.scalar(select(SmsMessage.id).where(SmsMessage.source == source)):
        return False
    now = datetime.now(UTC)
    session.add(
        SmsMessage(
            source=source,
            direction="out",
            purpose="answer",
            phone=incoming.phone,
            body=body,
            case_id=incoming.case_id,
            status="pending",
            created_at=now,
            next_at=now,
        )
    )
    try:
        session.commit()
    except IntegrityError:  # the same push handled at once elsewhere
        session.rollback()
        return False
    return True


def outbox_for(dialer: Any, env: Mapping[str, str] | None = None) -> SmsOutbox | None:
    """The outbox the dialer process runs (on its sessions, clock and calling hours),
    or None when SMS is not configured."""
    settings = SmsSettings.from_env(env)
    gateway = settings.gateway()
    if gateway is None:
        return None
    budget = SmsBudget(dialer.redis, dialer.keys, settings.max_per_hour)
    return SmsOutbox(
        dialer.sessions, gateway, settings, dialer.settings, now=dialer.now, budget=budget
    )
