"""A Chinese SMS gateway (HOTLINE_SMS_PROVIDER=cn-gateway) over real HTTP: the app in a
werkzeug server receives the gateway's signed JSON push of uplink texts, and a local
HTTP server stands in for the gateway's send API. A signed push becomes a request once;
a push with a missing or wrong signature is refused with 403 and changes nothing; STOP
and 退订 opt out; numbers are E.164 and masked in the logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis
from sqlalchemy import select

from calls.sms import SIGNATURE_HEADER, SmsOutbox, SmsSettings, sign_body
from cases.models import Case, OptOut
from cases.service import CallInfo, CaseDraft, create_case_for_call
from cases.sms import SmsMessage
from tests.twilio_peer import app_on_twilio, http_peer

SECRET = "gateway-shared-secret-for-tests"
CITIZEN = "+8613800138000"


class GatewayApi(BaseHTTPRequestHandler):
    """The gateway's send API: checks each text's signature, records it, answers OK
    with a message id (or ``refuse_with``'s code)."""

    sent: list[dict[str, Any]] = []
    refuse_with: str | None = None
    answer_with: bytes | None = None  # the whole answer, as another platform words it

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        text = json.loads(raw)
        text["signed"] = self.headers.get(SIGNATURE_HEADER) == sign_body(SECRET, raw)
        text["type"] = self.headers.get("Content-Type")
        GatewayApi.sent.append(text)
        code = GatewayApi.refuse_with or "OK"
        body = json.dumps(
            {"code": code, "message": "", "message_id": f"m{len(GatewayApi.sent)}"}
        ).encode()
        if GatewayApi.answer_with is not None:
            body = GatewayApi.answer_with
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway_api() -> Iterator[str]:
    GatewayApi.sent, GatewayApi.refuse_with, GatewayApi.answer_with = [], None, None
    with http_peer(GatewayApi) as url:
        yield url + "/sms/send"


@pytest.fixture
def app(redis: Redis, redis_server, tmp_path: Path, gateway_api: str, monkeypatch):  # type: ignore[no-untyped-def]
    redis.flushdb()
    return app_on_twilio(
        redis,
        redis_server.url,
        tmp_path,
        gateway_api,
        monkeypatch,
        "AC" + "7" * 32,
        (("wang", "operator", "王芳", "1001"),),
        HOTLINE_SMS_PROVIDER="cn-gateway",
        HOTLINE_SMS_GATEWAY_URL=gateway_api,
        HOTLINE_SMS_GATEWAY_SECRET=SECRET,
        HOTLINE_SMS_GATEWAY_APP_ID="hotline-12345",
    )


@pytest.fixture
def base(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app over real HTTP on a loopback port."""
    from tests.served import served_app

    with served_app(app) as url:
        yield url


def sessions_of(app):  # type: ignore[no-untyped-def]
    return app.extensions["hotline"].desk.sessions


def outbox_of(app) -> SmsOutbox:  # type: ignore[no-untyped-def]
    settings = SmsSettings.from_env()
    gateway = settings.gateway()
    assert gateway is not None
    return SmsOutbox(sessions_of(app), gateway, settings)


def push(base: str, messages: Any, secret: str = SECRET, **headers: str) -> requests.Response:
    """The gateway's push, signed over the exact body it sends."""
    body = json.dumps(messages, ensure_ascii=False).encode()
    signed = {SIGNATURE_HEADER: sign_body(secret, body)} if secret else {}
    return requests.post(
        f"{base}/sms/gateway/inbound",
        data=body,
        headers={"Content-Type": "application/json", **signed, **headers},
        timeout=10,
    )


def uplink(content: str, phone: str = "13800138000", **more: Any) -> dict[str, Any]:
    return {"phone_number": phone, "content": content, "send_time": "2026-12-01 09:30:00", **more}


def test_a_signed_push_is_a_request_once_answered_through_the_gateway(app, base, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="hotline.sms")
    words = "幸福小区3栋楼下的井盖丢了，晚上很危险"
    answer = push(base, [uplink(words)])
    assert answer.status_code == 200, answer.text
    assert answer.json()["code"] == "OK" and answer.json()["results"][0]["result"] == "request"
    again = push(base, [uplink(words)])  # the gateway retried its push (no id of its own)
    assert again.json()["results"][0]["result"] == "duplicate"
    with sessions_of(app)() as db:
        (case,) = db.scalars(select(Case).where(Case.channel == "sms"))
        assert case.caller_phone == CITIZEN and case.description == words  # E.164
        assert case.status == "received" and case.category_id is None
        number = case.number
    assert outbox_of(app).run_once() == 1
    (text,) = GatewayApi.sent
    assert text["phone_number"] == CITIZEN and number in text["content"]
    assert text["app_id"] == "hotline-12345" and text["signed"]
    assert text["type"].startswith("application/json")
    assert "13800138000" not in caplog.text and "138****8000" in caplog.text  # masked


def test_a_push_with_a_missing_or_wrong_signature_is_refused_and_changes_nothing(
    app, base: str
) -> None:  # type: ignore[no-untyped-def]
    message = [uplink("井盖丢了", sequence_id=7)]
    body = json.dumps(message).encode()
    refused = [
        push(base, message, secret=""),  # none
        push(base, message, secret="another-secret"),
        push(base, message, secret="", **{SIGNATURE_HEADER: "00" * 32}),
        # A signature of another body (a replayed header on altered words).
        push(
            base,
            [uplink("改过的内容", sequence_id=7)],
            secret="",
            **{SIGNATURE_HEADER: sign_body(SECRET, body)},
        ),
    ]
    for answer in refused:
        assert answer.status_code == 403
        error = answer.json()
        assert error["code"] == "bad-signature"
        assert (
            error["message"].startswith("签名无效") and "Invalid signature" in error["message_en"]
        )
    with sessions_of(app)() as db:
        assert db.scalar(select(Case.id)) is None
        assert db.scalar(select(SmsMessage.id)) is None
    # The same push, signed, goes through: nothing of it was spent by the refusals.
    assert push(base, message).json()["results"] == [{"id": "7", "result": "request"}]


def test_a_body_that_is_not_the_push_is_a_400(app, base: str) -> None:  # type: ignore[no-untyped-def]
    for body in (b"not json", b'[{"content": "no phone"}]', b"[1, 2]"):
        answer = requests.post(
            f"{base}/sms/gateway/inbound",
            data=body,
            headers={SIGNATURE_HEADER: sign_body(SECRET, body)},
            timeout=10,
        )
        assert answer.status_code == 400 and answer.json()["code"] == "bad-body"


@pytest.mark.parametrize("word", ["STOP", "退订", "td", "退訂", "T"])
def test_stop_and_tuiding_opt_out_through_the_gateway(app, base: str, word: str) -> None:  # type: ignore[no-untyped-def]
    answer = push(base, [uplink(f" {word} ", sequence_id="u1")])
    assert answer.json()["results"] == [{"id": "u1", "result": "optout"}]
    with sessions_of(app)() as db:
        assert db.scalar(select(OptOut.phone)) == CITIZEN
        assert db.scalar(select(Case.id)) is None  # not a request
        create_case_for_call(
            db,
            CallInfo("CA-after-stop", CITIZEN, "twilio", "1001"),
            CaseDraft(description="路灯不亮", category_code="street-vending", dispatch=True),
        )
    assert outbox_of(app).run_once() == 0 and GatewayApi.sent == []


def test_every_validly_signed_text_of_a_batch_is_kept(app, base: str) -> None:  # type: ignore[no-untyped-def]
    batch = [
        uplink("楼道灯不亮", phone="+8613900139001", sequence_id=1),
        uplink("噪音扰民", phone="8613900139002", sequence_id=2),
        uplink("垃圾没人清运", phone=13900139003, sequence_id=3),
    ]
    answer = push(base, batch)
    assert [r["result"] for r in answer.json()["results"]] == ["request"] * 3
    with sessions_of(app)() as db:
        phones = set(db.scalars(select(Case.caller_phone).where(Case.channel == "sms")))
    assert phones == {"+8613900139001", "+8613900139002", "+8613900139003"}


def test_a_text_the_gateway_refuses_is_retried(app) -> None:  # type: ignore[no-untyped-def]
    with sessions_of(app)() as db:
        create_case_for_call(
            db,
            CallInfo("CA-refused", CITIZEN, "twilio", "1001"),
            CaseDraft(description="路灯不亮", category_code="street-vending", dispatch=True),
        )
    GatewayApi.refuse_with = "isv.BUSINESS_LIMIT_CONTROL"
    assert outbox_of(app).run_once() == 0 and len(GatewayApi.sent) == 1
    with sessions_of(app)() as db:
        (message,) = db.scalars(select(SmsMessage))
        assert (message.status, message.attempts) == ("pending", 1)


def test_the_gateway_needs_its_address_and_secret() -> None:
    with pytest.raises(ValueError, match="HOTLINE_SMS_GATEWAY_SECRET"):
        SmsSettings.from_env({"HOTLINE_SMS_PROVIDER": "cn-gateway"}).gateway()


def test_a_1_to_the_texted_return_visit_closes_it_and_the_thanks_goes_through_the_gateway(
    app, base: str
) -> None:  # type: ignore[no-untyped-def]
    from cases.dispatch import resolve, sign_for
    from cases.service import utcnow

    with sessions_of(app)() as db:
        case = create_case_for_call(
            db,
            CallInfo("CA-visit", CITIZEN, "twilio", "1001"),
            CaseDraft(description="路灯不亮", category_code="street-vending", dispatch=True),
        )
        sign_for(db, case, "urban", case.department_id)
        resolve(db, case, "urban", case.department_id, "已修复。")
        now = utcnow()
        db.add(  # the return visit texted after the phone attempts failed
            SmsMessage(
                source=f"visit:{case.id}",
                direction="out",
                purpose="visit",
                phone=CITIZEN,
                body="满意请回复1",
                case_id=case.id,
                status="sent",
                created_at=now,
                next_at=now,
                sent_at=now,
            )
        )
        db.commit()
        case_id = case.id
    for _ in range(2):  # pushed twice: one answer, one thanks
        answer = push(base, [uplink("１", sequence_id="v1")])
        assert answer.status_code == 200
    with sessions_of(app)() as db:
        case = db.get(Case, case_id)
        assert (case.status, case.satisfaction) == ("closed", "satisfied")
    outbox = outbox_of(app)
    outbox.run_once()
    thanks = [t for t in GatewayApi.sent if "感谢您的评价" in t["content"]]
    assert len(thanks) == 1 and thanks[0]["phone_number"] == CITIZEN


def test_a_malformed_or_unstorable_text_loses_none_of_its_batch(app, base: str) -> None:  # type: ignore[no-untyped-def]
    # A long UCS-2 text split by the network can leave half an emoji (a lone surrogate);
    # a message with no content is the gateway's fault. Neither may cost the others.
    body = (
        '[{"phone_number": "13900139001", "content": "楼道灯不亮", "sequence_id": 1},'
        ' {"phone_number": "13900139002", "content": null, "sequence_id": 2},'
        ' {"phone_number": "13900139003", "content": "井盖丢了\\ud83d", "sequence_id": 3},'
        ' {"phone_number": "13900139004", "content": "噪音\\u0000扰民", "sequence_id": 4}]'
    ).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(SECRET, body)}
    for _ in range(2):  # and the gateway's retry of it files nothing twice
        answer = requests.post(
            f"{base}/sms/gateway/inbound", data=body, headers=headers, timeout=10
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()
        assert error["code"] == "bad-body" and error["message"] == "请求体格式不正确"
        assert "message 2" in error["message_en"]
        results = {r["id"]: r["result"] for r in error["results"]}
        assert results["2"] == "bad-body"
        assert {results[i] for i in "134"} <= {"request", "duplicate"}
    with sessions_of(app)() as db:
        filed = dict(db.execute(select(Case.caller_phone, Case.description)).all())
    assert filed == {
        "+8613900139001": "楼道灯不亮",
        "+8613900139003": "井盖丢了\ufffd",
        "+8613900139004": "噪音扰民",
    }


def test_a_push_over_the_size_limit_is_refused_in_json_zh_cn_and_english(app, base: str) -> None:  # type: ignore[no-untyped-def]
    answer = push(base, [uplink("井盖丢了" * 100, sequence_id=n) for n in range(100)])
    assert answer.status_code == 413
    error = answer.json()
    assert error["code"] == "too-large" and error["message"].startswith("请求体过大")
    assert "64 KB" in error["message_en"]


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # an empty 200
        b"{}",
        b'{"error": "unauthorized"}',  # a proxy's or API gateway's own answer
        b'{"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "flow control"}',
    ],
)
def test_an_answer_that_does_not_say_ok_is_a_refusal_retried(app, answer: bytes) -> None:  # type: ignore[no-untyped-def]
    with sessions_of(app)() as db:
        create_case_for_call(
            db,
            CallInfo("CA-no-code", CITIZEN, "twilio", "1001"),
            CaseDraft(description="路灯不亮", category_code="street-vending", dispatch=True),
        )
    GatewayApi.answer_with = answer
    assert outbox_of(app).run_once() == 0 and len(GatewayApi.sent) == 1
    with sessions_of(app)() as db:
        (message,) = db.scalars(select(SmsMessage))
        assert (message.status, message.attempts) == ("pending", 1)


def test_aliyuns_own_answer_is_understood(app) -> None:  # type: ignore[no-untyped-def]
    with sessions_of(app)() as db:
        create_case_for_call(
            db,
            CallInfo("CA-aliyun", CITIZEN, "twilio", "1001"),
            CaseDraft(description="路灯不亮", category_code="street-vending", dispatch=True),
        )
    GatewayApi.answer_with = b'{"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0"}'
    assert outbox_of(app).run_once() == 1
    with sessions_of(app)() as db:
        (message,) = db.scalars(select(SmsMessage))
        assert (message.status, message.provider_id) == ("sent", "900619746936498440^0")


@pytest.mark.parametrize("word", ["STOP", "1"])
def test_a_push_delivered_twice_at_once_is_answered_as_a_duplicate_not_a_retry(
    app, base: str, word: str
) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    for round_ in range(3):
        message = [uplink(word, phone=f"1390013900{round_}", sequence_id=f"{word}{round_}")]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda batch: push(base, batch), [message] * 8))
        assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
        kinds = sorted(a.json()["results"][0]["result"] for a in answers)
        assert kinds.count("duplicate") == 7, kinds
