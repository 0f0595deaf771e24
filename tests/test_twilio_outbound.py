"""Return visits and call-backs through Twilio's protocol: the dialer places the call
(the REST boundary is recorded), then Twilio's signed webhooks drive the flow: answered
(with AnsweredBy), the key pressed, the final status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from cases.dispatch import resolve, sign_for
from cases.models import Case, OutboundItem
from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch
from tests.test_twilio_webhooks import app, twilio  # noqa: F401  (fixtures)
from tests.twilio_peer import parse, sid, verbs

CITIZEN = "+8613800138000"


class TwilioRest:
    """The boundary: what calls.create was asked for."""

    def __init__(self) -> None:
        self.placed: list[tuple[str, str, str]] = []

    def originate(self, call_id: str, phone: str, kind: str) -> None:
        self.placed.append((call_id, phone, kind))


@pytest.fixture
def dialled(app):  # type: ignore[no-untyped-def]
    """A resolved case whose return visit the dialer has just placed."""
    outbound = app.extensions["hotline"].outbound
    rest = TwilioRest()
    outbound.dialer.originator = rest
    outbound.dialer.now = lambda: datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Haikou
    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo("earlier", CITIZEN, "twilio", "1001"),
            CaseDraft(description="路灯不亮", category_code="street-vending", dispatch=False),
        )
        dispatch(db, case, "1001")
        sign_for(db, case, "urban", case.department_id)
        resolve(db, case, "urban", case.department_id, "已修复")
        item = outbound.dialer.plan(
            db, f"visit:{case.id}", "return_visit", CITIZEN, outbound.dialer.now(), case_id=case.id
        )
        db.commit()
        outbound.dialer.index(item)
        number = case.number
    assert outbound.dialer.run_once() == 1
    return rest.placed[0][0], number


def case_of(app, number: str) -> Case:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].handler.directory.sessions() as db:
        return db.scalar(select(Case).where(Case.number == number))


def test_a_satisfied_citizen_closes_the_case(app, twilio, dialled) -> None:  # type: ignore[no-untyped-def]
    attempt, number = dialled
    root = parse(
        twilio.post(
            f"/twilio/outbound/return_visit?call={attempt}",
            {"CallSid": sid(7), "AnsweredBy": "human"},
        )
    )
    assert verbs(root) == ["Say", "Gather"]
    assert "关于您" in root[0].text and "满意请按1" in root[1][0].text
    assert root[1].get("action").endswith("/twilio/outbound/input")
    root = parse(twilio.post("/twilio/outbound/input", {"CallSid": sid(7), "Digits": "1"}))
    assert verbs(root) == ["Say", "Hangup"] and "感谢您的评价" in root[0].text
    assert (
        twilio.post(
            f"/twilio/outbound/status?call={attempt}",
            {"CallSid": sid(7), "CallStatus": "completed"},
        ).status_code
        == 204
    )
    case = case_of(app, number)
    assert (case.status, case.satisfaction) == ("closed", "satisfied")
    live = app.extensions["hotline"].redis.hlen(app.extensions["hotline"].queue.keys.dial_live)
    assert live == 0  # capacity and the number are free


def test_silence_twice_is_no_response(app, twilio, dialled) -> None:  # type: ignore[no-untyped-def]
    attempt, number = dialled
    twilio.post(
        f"/twilio/outbound/return_visit?call={attempt}",
        {"CallSid": sid(7), "AnsweredBy": "unknown"},
    )
    assert verbs(parse(twilio.post("/twilio/outbound/input", {"CallSid": sid(7)}))) == ["Gather"]
    root = parse(twilio.post("/twilio/outbound/input", {"CallSid": sid(7)}))
    assert verbs(root) == ["Say", "Hangup"]
    assert case_of(app, number).satisfaction == "no_response"


def test_an_answering_machine_hears_nothing_and_is_tried_again(app, twilio, dialled) -> None:  # type: ignore[no-untyped-def]
    attempt, number = dialled
    root = parse(
        twilio.post(
            f"/twilio/outbound/return_visit?call={attempt}",
            {"CallSid": sid(7), "AnsweredBy": "machine_end_beep"},
        )
    )
    assert verbs(root) == ["Hangup"]
    with app.extensions["hotline"].handler.directory.sessions() as db:
        item = db.scalar(select(OutboundItem))
        assert (item.status, item.last_result, item.attempts) == ("pending", "machine", 1)
    assert case_of(app, number).status == "resolved"


def test_a_busy_line_is_tried_again_later(app, twilio, dialled) -> None:  # type: ignore[no-untyped-def]
    attempt, _ = dialled
    r = twilio.post(
        f"/twilio/outbound/status?call={attempt}", {"CallSid": sid(7), "CallStatus": "busy"}
    )
    assert r.status_code == 204
    with app.extensions["hotline"].handler.directory.sessions() as db:
        item = db.scalar(select(OutboundItem))
        assert (item.status, item.last_result) == ("pending", "busy")
        assert (
            item.next_at.replace(tzinfo=UTC) - datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
        ).total_seconds() == 1800


def test_zero_hands_the_citizen_to_an_operator_as_a_callback(app, twilio, dialled) -> None:  # type: ignore[no-untyped-def]
    attempt, _ = dialled
    twilio.post(
        f"/twilio/outbound/return_visit?call={attempt}", {"CallSid": sid(7), "AnsweredBy": "human"}
    )
    root = parse(twilio.post("/twilio/outbound/input", {"CallSid": sid(7), "Digits": "0"}))
    assert verbs(root) == ["Say", "Enqueue"]
    svc = app.extensions["hotline"]
    record = svc.queue.call(sid(7))
    assert (record["state"], record["priority"], record["caller"]) == ("waiting", "repeat", CITIZEN)
    flow = svc.handler.load(sid(7))  # the screen pop says so; the push can move them
    assert (flow.outbound_kind, flow.channel) == ("return_visit", "twilio")
    # The number stays "on a call" until the citizen hangs up.
    assert svc.redis.hlen(svc.queue.keys.dial_live) == 1
    twilio.post(
        f"/twilio/outbound/status?call={attempt}", {"CallSid": sid(7), "CallStatus": "completed"}
    )
    assert svc.redis.hlen(svc.queue.keys.dial_live) == 0
    assert svc.queue.call(sid(7))["state"] != "waiting"


def test_zero_with_a_free_seat_dials_the_seat_in_the_same_answer(app, twilio, dialled) -> None:  # type: ignore[no-untyped-def]
    """Offered in the very enqueue, the citizen is put through by this TwiML: a
    <Dial> to the seat, not an <Enqueue> waiting for a push that never comes."""
    attempt, _ = dialled
    svc = app.extensions["hotline"]
    svc.queue.seat_login("1001")
    twilio.post(
        f"/twilio/outbound/return_visit?call={attempt}", {"CallSid": sid(7), "AnsweredBy": "human"}
    )
    root = parse(twilio.post("/twilio/outbound/input", {"CallSid": sid(7), "Digits": "0"}))
    assert verbs(root) == ["Say", "Dial"]
    record = svc.queue.call(sid(7))
    assert (record["state"], record["seat"], record["priority"]) == ("offered", "1001", "repeat")


def test_a_stranger_webhook_is_hung_up_on(app, twilio) -> None:  # type: ignore[no-untyped-def]
    root = parse(
        twilio.post(
            "/twilio/outbound/return_visit?call=out-99-1",
            {"CallSid": sid(8), "AnsweredBy": "human"},
        )
    )
    assert verbs(root) == ["Hangup"]
    assert (
        twilio.post("/twilio/outbound/return_visit?call=bad%20id", {"CallSid": sid(8)}).status_code
        == 400
    )


def test_a_call_back_reaches_the_queue_saying_which_call_it_answers(app, twilio) -> None:  # type: ignore[no-untyped-def]
    from cases.models import CallbackRequest

    svc = app.extensions["hotline"]
    outbound = svc.outbound
    rest = TwilioRest()
    outbound.dialer.originator = rest
    outbound.dialer.now = lambda: datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    asked_at = datetime(2026, 11, 30, 1, 40, tzinfo=UTC)
    with svc.handler.directory.sessions() as db:
        db.add(
            CallbackRequest(
                call_id="c-asked", caller_phone=CITIZEN, reason="long_wait", requested_at=asked_at
            )
        )
        item = outbound.dialer.plan(
            db, "callback:c-asked", "callback", CITIZEN, outbound.dialer.now(), call_id="c-asked"
        )
        db.commit()
        outbound.dialer.index(item)
    assert outbound.dialer.run_once() == 1
    attempt = rest.placed[0][0]
    root = parse(
        twilio.post(
            f"/twilio/outbound/callback?call={attempt}", {"CallSid": sid(9), "AnsweredBy": "human"}
        )
    )
    assert verbs(root) == ["Say", "Enqueue"] and "给您回电" in root[0].text
    flow = svc.handler.load(sid(9))
    assert (flow.outbound_kind, flow.callback_of) == ("callback", asked_at.timestamp())
    assert flow.channel == "twilio"
    with svc.handler.directory.sessions() as db:
        assert db.scalar(select(CallbackRequest.status)) == "done"


def test_an_unsatisfied_citizen_sends_the_case_back_to_its_unit(app, twilio, dialled) -> None:  # type: ignore[no-untyped-def]
    attempt, number = dialled
    twilio.post(
        f"/twilio/outbound/return_visit?call={attempt}", {"CallSid": sid(7), "AnsweredBy": "human"}
    )
    root = parse(twilio.post("/twilio/outbound/input", {"CallSid": sid(7), "Digits": "2"}))
    assert verbs(root) == ["Say", "Hangup"] and "重新办理" in root[0].text
    case = case_of(app, number)
    assert (case.status, case.satisfaction) == ("dispatched", "unsatisfied")


def test_three_unanswered_attempts_leave_the_case_unreachable(app, twilio, dialled) -> None:  # type: ignore[no-untyped-def]
    """Each attempt placed by the dialer, each ending in Twilio's final status."""
    from dataclasses import replace
    from datetime import timedelta

    attempt, number = dialled
    outbound = app.extensions["hotline"].outbound
    outbound.dialer.settings = replace(outbound.dialer.settings, calls_per_s=100)
    rest = outbound.dialer.originator
    start = outbound.dialer.now()
    for n, (status, wait) in enumerate((("no-answer", 30), ("busy", 120), ("no-answer", 0))):
        r = twilio.post(
            f"/twilio/outbound/status?call={attempt}",
            {"CallSid": sid(10 + n), "CallStatus": status},
        )
        assert r.status_code == 204
        later = start + timedelta(minutes=wait + 1) if wait else start
        start = later
        outbound.dialer.now = lambda at=later: at  # type: ignore[misc]
        if n < 2:
            assert outbound.dialer.run_once() == 1
            attempt = rest.placed[-1][0]
    assert outbound.dialer.run_once() == 0
    case = case_of(app, number)
    assert (case.status, case.satisfaction) == ("closed", "unreachable")
