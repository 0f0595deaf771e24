"""SMS against a local HTTP server standing in for Twilio's Messages API: the case
number on acceptance, the unit's reply on resolution, the return visit by text after
the phone attempts fail (within calling hours; 1 satisfied, 2 reopens), a text to the
hotline's number as a request, STOP and 退订 honoured by every later text, and the
inbound webhook refusing bad signatures."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from redis import Redis
from sqlalchemy import select

from calls.dialer import Dialer
from calls.dialing import DialerSettings
from calls.sms import SmsBudget, SmsOutbox, SmsSettings
from cases.dispatch import resolve, sign_for
from cases.models import Case, OptOut
from cases.service import CallInfo, CaseDraft, create_case_for_call, utcnow
from cases.sms import SmsMessage
from queueing.keys import QueueKeys
from tests.twilio_peer import PUBLIC_BASE, TwilioSigner, app_on_twilio, http_peer

ACCOUNT = "AC" + "7" * 32
HOTLINE_NUMBER = "+8689812345"
CITIZEN = "+8613800138000"
BJ = ZoneInfo("Asia/Shanghai")


class MessagesApi(BaseHTTPRequestHandler):
    """Twilio's Messages API: records each message asked for, answers with its sid."""

    sent: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        form["path"] = self.path
        MessagesApi.sent.append(form)
        body = json.dumps(
            {
                "sid": "SM" + f"{len(MessagesApi.sent):032x}",
                "account_sid": ACCOUNT,
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body"),
                "status": "queued",
            }
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class Telephony:
    """The phone side of the return visit (the provider boundary): records calls."""

    def __init__(self) -> None:
        self.placed: list[str] = []

    def originate(self, call_id: str, phone: str, kind: str) -> None:
        self.placed.append(call_id)


@pytest.fixture
def twilio_api() -> Iterator[str]:
    MessagesApi.sent = []
    with http_peer(MessagesApi) as url:
        yield url


@pytest.fixture
def app(redis: Redis, redis_server, tmp_path: Path, twilio_api: str, monkeypatch):  # type: ignore[no-untyped-def]
    redis.flushdb()
    return app_on_twilio(
        redis,
        redis_server.url,
        tmp_path,
        twilio_api,
        monkeypatch,
        ACCOUNT,
        (("wang", "operator", "王芳", "1001"),),
        HOTLINE_SMS_PROVIDER="twilio",
        HOTLINE_SMS_FROM=HOTLINE_NUMBER,
    )


def sessions_of(app):  # type: ignore[no-untyped-def]
    return app.extensions["hotline"].desk.sessions


def outbox_of(app, clock: Clock | None = None, dialing: DialerSettings | None = None) -> SmsOutbox:  # type: ignore[no-untyped-def]
    settings = SmsSettings.from_env()
    gateway = settings.gateway()
    assert gateway is not None
    return SmsOutbox(
        sessions_of(app),
        gateway,
        settings,
        dialing,
        now=clock or (lambda: datetime.now(UTC)),
    )


def filed_case(app, call: str, phone: str = CITIZEN) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with sessions_of(app)() as db:
        case = create_case_for_call(
            db,
            CallInfo(call, phone, "twilio", "1001"),
            CaseDraft(description="路灯不亮", category_code="street-vending", dispatch=True),
        )
        return case.id, case.number


def resolved(app, case_id: int, reply: str = "已修复路灯，请您留意。") -> None:  # type: ignore[no-untyped-def]
    with sessions_of(app)() as db:
        case = db.get(Case, case_id)
        sign_for(db, case, "urban", case.department_id)
        resolve(db, case, "urban", case.department_id, reply)
        db.commit()


def inbound(app, body: str, n: int, sender: str = CITIZEN, **headers: str) -> Any:  # type: ignore[no-untyped-def]
    twilio = TwilioSigner(app.test_client())
    params = {
        "MessageSid": "SM" + f"{n:032x}",
        "AccountSid": ACCOUNT,
        "From": sender,
        "To": HOTLINE_NUMBER,
        "Body": body,
        "NumMedia": "0",
    }
    return twilio.post("/twilio/sms/inbound", params, **headers)


def test_the_case_number_is_texted_once_on_acceptance_with_how_to_look_it_up(app, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="hotline.sms")
    _, number = filed_case(app, "CA-accept")
    outbox = outbox_of(app)
    assert outbox.run_once() == 1
    (text,) = MessagesApi.sent
    assert text["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert text["To"] == CITIZEN and text["From"] == HOTLINE_NUMBER
    assert number in text["Body"] and f"{PUBLIC_BASE}/lookup" in text["Body"]
    assert "受理" in text["Body"] and "退订" in text["Body"]
    outbox.next_plan = 0.0
    assert outbox.run_once() == 0 and len(MessagesApi.sent) == 1  # once only
    assert "13800138000" not in caplog.text and "******8000" in caplog.text  # masked


def test_the_units_reply_is_texted_on_resolution(app) -> None:  # type: ignore[no-untyped-def]
    case_id, number = filed_case(app, "CA-reply")
    outbox = outbox_of(app)
    outbox.run_once()
    resolved(app, case_id, "已修复路灯，请您留意。")
    outbox.next_plan = 0.0
    assert outbox.run_once() == 1
    reply = MessagesApi.sent[-1]
    assert reply["To"] == CITIZEN
    assert number in reply["Body"] and "已修复路灯，请您留意。" in reply["Body"]
    assert "办结" in reply["Body"]


def failed_phone_visit(
    app, redis: Redis, clock: Clock, dialing: DialerSettings, case_id: int
) -> None:  # type: ignore[no-untyped-def]
    """The dialer's three unanswered calls of the return visit."""
    telephony = Telephony()
    dialer = Dialer(redis, QueueKeys("smstest"), sessions_of(app), telephony, dialing, now=clock)
    with sessions_of(app)() as db:
        item = dialer.plan(
            db, f"visit:{case_id}", "return_visit", CITIZEN, clock.at, case_id=case_id
        )
        db.commit()
        dialer.index(item)
    for wait in (30, 120, 0):
        assert dialer.run_once() == 1
        dialer.finished(telephony.placed[-1], "no-answer")
        clock.at += timedelta(minutes=wait)


def test_the_return_visit_falls_back_to_sms_within_calling_hours_and_1_closes_satisfied(
    app, redis: Redis
) -> None:  # type: ignore[no-untyped-def]
    today = datetime.now(BJ).date()
    clock = Clock(datetime(today.year, today.month, today.day, 18, 0, tzinfo=BJ))
    dialing = DialerSettings(calls_per_s=1000, sms_fallback=True)
    case_id, number = filed_case(app, "CA-visit-1")
    resolved(app, case_id)
    failed_phone_visit(app, redis, clock, dialing, case_id)  # the last call ends at 20:30
    with sessions_of(app)() as db:
        case = db.get(Case, case_id)
        assert case.status == "resolved" and case.satisfaction is None  # left to the text
    clock.at = clock.at.replace(hour=21, minute=30)  # after calling hours
    outbox = outbox_of(app, clock, dialing)
    outbox.run_once()
    assert not [m for m in MessagesApi.sent if "回复1" in m["Body"]]
    clock.at += timedelta(hours=11)  # 08:30 the next morning
    outbox.run_once()
    (visit,) = [m for m in MessagesApi.sent if "回复1" in m["Body"]]
    assert visit["To"] == CITIZEN and number in visit["Body"] and "回复2" in visit["Body"]

    answer = inbound(app, "１", 1)  # a full-width 1, as a Chinese IME types it
    assert answer.status_code == 200 and "感谢" in answer.get_data(as_text=True)
    with sessions_of(app)() as db:
        case = db.get(Case, case_id)
        assert (case.status, case.satisfaction) == ("closed", "satisfied")
        assert case.events[-1].actor == "sms"


def test_a_2_to_the_texted_return_visit_reopens_the_case_to_its_unit(app, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    today = datetime.now(BJ).date()
    clock = Clock(datetime(today.year, today.month, today.day, 9, 0, tzinfo=BJ))
    dialing = DialerSettings(calls_per_s=1000, sms_fallback=True)
    case_id, _ = filed_case(app, "CA-visit-2")
    resolved(app, case_id)
    failed_phone_visit(app, redis, clock, dialing, case_id)
    outbox_of(app, clock, dialing).run_once()
    assert [m for m in MessagesApi.sent if "回复1" in m["Body"]]
    inbound(app, "2", 2)
    with sessions_of(app)() as db:
        case = db.get(Case, case_id)
        assert case.satisfaction == "unsatisfied" and case.status == "dispatched"
        assert [e.action for e in case.events][-2:] == ["reopened", "dispatched"]


def test_a_text_to_the_hotline_is_a_request_for_the_operators_once(app) -> None:  # type: ignore[no-untyped-def]
    body = "幸福小区3栋楼下的井盖丢了，晚上很危险"
    assert inbound(app, body, 10).status_code == 200
    assert inbound(app, body, 10).status_code == 200  # Twilio delivered it twice
    with sessions_of(app)() as db:
        (case,) = db.scalars(select(Case).where(Case.channel == "sms"))
        assert case.caller_phone == CITIZEN and case.description == body
        assert case.status == "received" and case.category_id is None  # the operator's
        number = case.number
    outbox_of(app).run_once()
    (ack,) = MessagesApi.sent
    assert ack["To"] == CITIZEN and number in ack["Body"]


@pytest.mark.parametrize("word", ["STOP", "退订"])
def test_stop_and_tuiding_opt_out_of_every_later_text(app, word: str) -> None:  # type: ignore[no-untyped-def]
    assert inbound(app, f" {word} ", 20).status_code == 200
    with sessions_of(app)() as db:
        assert db.scalar(select(OptOut.phone)) == CITIZEN
        assert db.scalar(select(Case.id)) is None  # not a request
    case_id, _ = filed_case(app, "CA-after-stop")
    resolved(app, case_id)
    assert outbox_of(app).run_once() == 0
    assert MessagesApi.sent == []
    with sessions_of(app)() as db:
        statuses = set(db.scalars(select(SmsMessage.status).where(SmsMessage.direction == "out")))
        assert statuses == {"opted-out"}


def test_the_inbound_webhook_refuses_bad_signatures(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    params = {
        "MessageSid": "SM" + "1" * 32,
        "From": CITIZEN,
        "Body": "井盖丢了",
        "To": HOTLINE_NUMBER,
    }
    assert client.post("/twilio/sms/inbound", data=params).status_code == 403
    forged = {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    assert client.post("/twilio/sms/inbound", data=params, headers=forged).status_code == 403
    other_url = TwilioSigner(client, base="https://evil.example.org")
    assert other_url.post("/twilio/sms/inbound", params).status_code == 403
    with sessions_of(app)() as db:
        assert db.scalar(select(Case.id)) is None
        assert db.scalar(select(SmsMessage.id)) is None


@pytest.mark.parametrize(
    "phone", ["+88216123456", "+2348031234567", "+447911123456", "+8689866668888"]
)
def test_no_text_goes_abroad_or_to_a_landline(app, phone: str) -> None:  # type: ignore[no-untyped-def]
    """SMS pumping: a case filed with a satellite, foreign or landline number (Open311's
    phone=, the web form) costs the hotline no text."""
    filed_case(app, "CA-abroad", phone)
    assert outbox_of(app).run_once() == 0 and MessagesApi.sent == []
    with sessions_of(app)() as db:
        (message,) = db.scalars(select(SmsMessage))
        assert message.status == "not-textable"


def test_the_regions_texted_are_configurable() -> None:
    assert SmsSettings.from_env({}).allowed_regions == ("CN",)
    hk = SmsSettings.from_env({"HOTLINE_SMS_ALLOWED_REGIONS": "cn, HK"})
    assert hk.textable("+85291234567") and hk.textable("+8613800138000")
    assert not hk.textable("+2348031234567") and not hk.textable("+8689866668888")
    assert SmsSettings.from_env({"HOTLINE_SMS_MAX_PER_HOUR": "40"}).max_per_hour == 40
    assert SmsSettings.from_env({}).max_per_hour == 5000


def test_the_hourly_cap_counts_every_text_and_refuses_only_codes(redis: Redis) -> None:
    redis.flushdb()
    budget = SmsBudget(redis, QueueKeys("budget-test"), 2)
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert budget.take(essential=False, now=at) and budget.take(essential=True, now=at)
    assert not budget.take(essential=False, now=at)  # the cap: no more codes this hour
    assert budget.take(essential=True, now=at)  # a case's own text still goes, counted
    assert int(redis.get(budget.key(at)) or 0) == 3 and redis.ttl(budget.key(at)) > 0
    assert budget.take(essential=False, now=at + timedelta(hours=1))  # the next hour


def test_the_dialers_outbox_counts_its_texts_against_the_hourly_cap(app, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    from calls.sms import outbox_for

    clock = Clock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    dialer = Dialer(redis, QueueKeys("smstest"), sessions_of(app), Telephony(), now=clock)
    outbox = outbox_for(dialer)
    assert outbox is not None and outbox.budget is not None
    filed_case(app, "CA-counted")
    assert outbox.run_once() == 1
    assert int(redis.get(outbox.budget.key(clock.at)) or 0) == 1


def test_a_request_closed_directly_texts_its_reply_once(app) -> None:  # type: ignore[no-untyped-def]
    """The operator answers a texted request and closes it without dispatch (直接办结):
    the reply is texted at once, and the resolution that follows must not text it
    again, however often the outbox plans."""
    from calls.desk import Actor

    inbound(app, "小区门口的路灯坏了三天", 30)
    with sessions_of(app)() as db:
        number = db.scalars(select(Case.number).where(Case.channel == "sms")).one()
    desk = app.extensions["hotline"].desk
    wang = Actor("wang", "operator")
    desk.login_seat(wang, "1001", ["mandarin", "online"])
    desk.tasks.queue.tick()
    desk.tasks.take(wang, "1001", number)
    desk.tasks.reply(wang, "1001", number, "路灯已报修，今晚修复。")
    form = {"category_code": "street-vending", "resolved_on_phone": True, "dispatch": False}
    desk.tasks.file(wang, "1001", number, form)
    desk.tasks.complete(wang, "1001", number)
    outbox = outbox_of(app)
    for _ in range(3):  # planned again and again, as the dialer does every 5 s
        outbox.next_plan = 0.0
        outbox.run_once()
    replies = [m for m in MessagesApi.sent if "路灯已报修，今晚修复。" in m["Body"]]
    assert len(replies) == 1, [m["Body"] for m in MessagesApi.sent]
    assert [m for m in MessagesApi.sent if "受理" in m["Body"]]  # the acceptance, once
    assert len(MessagesApi.sent) == 2


def test_the_same_reply_queued_twice_is_one_text(app) -> None:  # type: ignore[no-untyped-def]
    """A reply queued again (a retried job, a second planner) is the same outbox row."""
    from calls.sms import queue_task_reply

    case_id, _ = filed_case(app, "CA-retried")
    settings = SmsSettings.from_env()
    with sessions_of(app)() as db:
        case = db.get(Case, case_id)
        case.channel = "web"
        assert queue_task_reply(db, settings, case, "已安排人员处理。", 1) is not None
        db.commit()
        assert queue_task_reply(db, settings, case, " 已安排人员处理。 ", 2) is None
        db.commit()
        case.reply = "已安排人员处理。"
        case.status, case.resolved_at = "resolved", utcnow()
        db.commit()
    outbox = outbox_of(app)
    outbox.run_once()
    bodies = [m["Body"] for m in MessagesApi.sent]
    assert sum("已安排人员处理。" in b for b in bodies) == 1, bodies
