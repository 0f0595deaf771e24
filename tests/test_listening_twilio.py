"""Listening in on Twilio (监听 / 耳语 / 强插) and a consult started again after a cancel,
on Twilio's protocol: a stand-in for Twilio's calls and conferences
(tests/twilio_peer.TwilioCloud, over real HTTP) rings phones, runs the TwiML the
webhooks answer, keeps each conference's members, and sends its status callbacks and
<Dial> actions back as signed webhooks. Who hears whom is the stand-in's own account
of its conferences: a coach is heard by the coached leg only, a muted leg by nobody."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import select

from calls.desk import Actor
from cases.duty_numbers import set_duty_phone
from tests.test_console import csrf_of, sign_in
from tests.test_consult import ROOM, consult
from tests.test_transfers import CALL, console_of, run_jobs
from tests.twilio_peer import TwilioCloud, TwilioSigner, app_on_twilio, http_peer

ACCOUNT = "AC" + "9" * 32
CITIZEN = {
    "CallSid": CALL,
    "From": "+8613800000001",
    "To": "+8612345",
    "CallStatus": "ringing",
    "AccountSid": ACCOUNT,
    "Direction": "inbound",
}
SUPERVISOR_PHONE = "client:1009"


@pytest.fixture
def cloud() -> TwilioCloud:
    return TwilioCloud(ACCOUNT)


@pytest.fixture
def app(redis: Redis, redis_server, tmp_path: Path, cloud, monkeypatch) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    people = (("wang", "operator", "王芳", "1001"), ("li", "supervisor", "李班长", "1009"))
    with http_peer(cloud.api()) as api_url:
        app = app_on_twilio(
            redis,
            redis_server.url,
            tmp_path,
            api_url,
            monkeypatch,
            ACCOUNT,
            people,
            TWILIO_CALLER_ID="+8689812345",
        )
        with app.extensions["hotline"].desk.sessions() as db:
            set_duty_phone(db, "water-affairs", "0898-66661234")
            db.commit()
        cloud.signer = TwilioSigner(app.test_client())
        cloud.base_url = api_url
        yield app


def wang_talking(app, cloud: TwilioCloud):  # type: ignore[no-untyped-def]
    """A citizen calls; wang's seat 1001 is rung by the <Dial> and picks up. Returns
    the services, wang's console and CSRF header, and the seat's leg."""
    svc = app.extensions["hotline"]
    svc.desk.login_seat(Actor("wang", "operator"), "1001", ["mandarin"])
    cloud.call_in(CALL, CITIZEN)
    seat_leg = cloud.child_of(CALL)
    assert seat_leg and cloud.legs[seat_leg].to == "client:1001"
    cloud.answer(seat_leg)
    assert svc.queue.call(CALL)["state"] == "on_call"
    assert cloud.hears(CALL) == {seat_leg} and cloud.hears(seat_leg) == {CALL}
    wang, csrf = console_of(app, "wang")
    return svc, wang, csrf, seat_leg


def wallboard_of(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    sign_in(client, "li")
    page = client.get("/console/wallboard").get_data(as_text=True)
    return client, {"X-CSRFToken": csrf_of(page)}


def listen(client, csrf, mode: str, seat: str = "1001", phone: str = "1009"):  # type: ignore[no-untyped-def]
    return client.post(
        "/console/listen", data={"seat": seat, "phone": phone, "mode": mode}, headers=csrf
    )


def audit(app, *actions: str) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    from cases.models import ActionLog

    with app.extensions["hotline"].desk.sessions() as db:
        rows = db.scalars(
            select(ActionLog).where(ActionLog.action.in_(actions)).order_by(ActionLog.id)
        )
        return [(r.actor, r.action, r.target, r.detail) for r in rows]


def supervisor_listening(app, cloud: TwilioCloud, mode: str):  # type: ignore[no-untyped-def]
    """wang talking to the citizen; li listens in from phone 1009 in ``mode`` and
    answers. Returns the services, li's wallboard and header, the seat's and li's legs."""
    svc, _, _, seat_leg = wang_talking(app, cloud)
    li, csrf = wallboard_of(app)
    asked = listen(li, csrf, mode)
    assert asked.status_code == 200, asked.get_data(as_text=True)
    assert 'id="listen-started"' in asked.get_data(as_text=True)
    [li_leg] = cloud.calls_to(SUPERVISOR_PHONE)
    cloud.answer(li_leg)
    return svc, li, csrf, seat_leg, li_leg


def test_a_supervisor_listens_and_neither_side_hears_them(app, cloud) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = supervisor_listening(app, cloud, "listen")
    # The call moved into its conference without ringing wang again: the seat's own leg
    # went first, and the citizen followed when their <Dial> ended.
    assert cloud.calls_to("client:1001") == [seat_leg]
    assert cloud.room_of(seat_leg).name == cloud.room_of(CALL).name == ROOM
    assert cloud.room_of(li_leg).name == ROOM
    assert cloud.hears(li_leg) == {CALL, seat_leg}
    assert cloud.hears(CALL) == {seat_leg} and cloud.hears(seat_leg) == {CALL}
    assert svc.queue.call(CALL)["state"] == "on_call"
    [(who, action, seat, detail)] = audit(app, "listen-start")
    assert (who, action, seat) == ("li", "listen-start", "1001")
    assert detail.startswith("listen phone 1009 ")


def test_a_whisper_is_heard_by_the_operator_alone(app, cloud) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = supervisor_listening(app, cloud, "whisper")
    assert cloud.hears(seat_leg) == {CALL, li_leg}
    assert cloud.hears(CALL) == {seat_leg}
    assert cloud.hears(li_leg) == {CALL, seat_leg}
    member = cloud.room_of(li_leg).members[li_leg]
    assert member.coaching and member.coach == seat_leg and not member.muted


def test_a_barge_is_heard_by_both(app, cloud) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = supervisor_listening(app, cloud, "barge")
    assert cloud.hears(seat_leg) == {CALL, li_leg}
    assert cloud.hears(CALL) == {seat_leg, li_leg}
    assert cloud.hears(li_leg) == {CALL, seat_leg}


def test_the_supervisor_switches_mode_without_their_phone_ringing_again(app, cloud) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = supervisor_listening(app, cloud, "listen")
    switched = listen(li, csrf, "whisper")
    assert switched.status_code == 200 and "已切换为耳语" in switched.get_data(as_text=True)
    assert cloud.calls_to(SUPERVISOR_PHONE) == [li_leg]
    assert cloud.hears(seat_leg) == {CALL, li_leg} and cloud.hears(CALL) == {seat_leg}

    assert listen(li, csrf, "barge").status_code == 200
    assert cloud.calls_to(SUPERVISOR_PHONE) == [li_leg]
    assert cloud.hears(CALL) == {seat_leg, li_leg}

    assert listen(li, csrf, "listen").status_code == 200
    assert cloud.hears(CALL) == {seat_leg} and cloud.hears(seat_leg) == {CALL}
    [(_, _, _, started)] = audit(app, "listen-start")
    session = started.rsplit(" ", 1)[-1]
    modes = [(a, d) for _, a, _, d in audit(app, "listen-mode")]
    assert modes == [
        ("listen-mode", f"whisper phone 1009 {session}"),
        ("listen-mode", f"barge phone 1009 {session}"),
        ("listen-mode", f"listen phone 1009 {session}"),
    ]


def test_the_supervisor_hanging_up_ends_the_session_with_its_length(app, cloud) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = supervisor_listening(app, cloud, "whisper")
    cloud.advance(42)
    cloud.hang_up(li_leg)
    run_jobs(app)
    [(_, _, _, started)] = audit(app, "listen-start")
    session = started.rsplit(" ", 1)[-1]
    assert audit(app, "listen-end") == [("li", "listen-end", "1001", f"{session} 42 s")]
    # wang and the citizen talk on.
    assert cloud.hears(CALL) == {seat_leg} and cloud.hears(seat_leg) == {CALL}
    assert svc.queue.call(CALL)["state"] == "on_call"
    # Listening again rings the phone anew: the ended session is not switched.
    assert listen(li, csrf, "listen").status_code == 200
    assert len(cloud.calls_to(SUPERVISOR_PHONE)) == 2


def test_the_operator_hanging_up_while_listened_to_ends_the_supervisors_leg(app, cloud) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = supervisor_listening(app, cloud, "listen")
    cloud.advance(15)
    cloud.hang_up(seat_leg)
    assert cloud.legs[li_leg].status == "completed"
    assert cloud.legs[CALL].status == "completed"
    record = svc.queue.call(CALL)
    assert record["state"] == "ended" and record["outcome"] == "completed"
    assert svc.queue.seat("1001")["state"] == "wrap_up"
    run_jobs(app)
    [(_, _, _, detail)] = audit(app, "listen-end")
    assert detail.endswith(" 15 s")


def test_a_supervisor_whose_phone_is_not_answered_is_audited_with_no_length(app, cloud) -> None:  # type: ignore[no-untyped-def]
    svc, _, _, seat_leg = wang_talking(app, cloud)
    li, csrf = wallboard_of(app)
    assert listen(li, csrf, "listen").status_code == 200
    [li_leg] = cloud.calls_to(SUPERVISOR_PHONE)
    cloud.ring_out(li_leg)
    run_jobs(app)
    [(_, _, _, detail)] = audit(app, "listen-end")
    assert detail.endswith(" 0 s")
    assert cloud.hears(CALL) == {seat_leg} and svc.queue.call(CALL)["state"] == "on_call"


def test_a_second_consult_after_a_cancel_keeps_the_operator_on_the_line(app, cloud) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf, _ = wang_talking(app, cloud)
    assert consult(wang, csrf, "start", unit="water-affairs").status_code == 200
    # The seat's <Dial> gives way to the conferences: wang's phone is called in once.
    [_, operator] = cloud.calls_to("client:1001")
    [unit] = cloud.calls_to("+8689866661234")
    cloud.answer(operator)
    cloud.answer(unit)
    assert cloud.hears(operator) == {unit} and cloud.hears(CALL) == {"music"}
    assert consult(wang, csrf, "cancel").status_code == 200
    assert cloud.hears(operator) == {CALL} and cloud.hears(CALL) == {operator}

    again = consult(wang, csrf, "start", unit="water-affairs")
    assert again.status_code == 200, again.get_data(as_text=True)
    # wang stays on the line: no new call to their phone, and the citizen holds with music.
    assert len(cloud.calls_to("client:1001")) == 2
    assert cloud.legs[operator].status == "in-progress"
    assert cloud.legs[CALL].status == "in-progress"
    assert cloud.hears(CALL) == {"music"}
    [_, second_unit] = cloud.calls_to("+8689866661234")
    cloud.answer(second_unit)
    assert cloud.hears(operator) == {second_unit}
    assert svc.queue.call(CALL)["consult"] == "consulting"

    assert consult(wang, csrf, "threeway").status_code == 200
    assert cloud.hears(CALL) == {operator, second_unit}
    assert cloud.hears(operator) == {CALL, second_unit}
    record = svc.queue.call(CALL)
    assert record["state"] == "on_call" and record["consult"] == "threeway"


def test_the_citizen_hanging_up_while_listened_to_frees_seat_and_supervisor(app, cloud) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = supervisor_listening(app, cloud, "barge")
    cloud.advance(8)
    cloud.hang_up(CALL)
    assert cloud.legs[li_leg].status == cloud.legs[seat_leg].status == "completed"
    assert svc.queue.call(CALL)["state"] == "ended"
    assert svc.queue.seat("1001")["state"] == "wrap_up"
    run_jobs(app)
    [(_, _, _, detail)] = audit(app, "listen-end")
    assert detail.endswith(" 8 s")


def test_a_consult_while_listened_to_ends_the_session_and_keeps_the_operator(app, cloud) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = supervisor_listening(app, cloud, "whisper")
    wang, wang_csrf = console_of(app, "wang")
    assert consult(wang, wang_csrf, "start", unit="water-affairs").status_code == 200
    # The supervisor's leg ends with the operator leaving for the unit; wang's own leg
    # moves to the consult, their phone not rung again, and the citizen holds.
    assert cloud.legs[li_leg].status == "completed"
    assert cloud.calls_to("client:1001") == [seat_leg]
    assert cloud.legs[seat_leg].status == "in-progress" and cloud.hears(CALL) == {"music"}
    [unit] = cloud.calls_to("+8689866661234")
    cloud.answer(unit)
    assert cloud.hears(seat_leg) == {unit}
    assert consult(wang, wang_csrf, "cancel").status_code == 200
    assert cloud.hears(CALL) == {seat_leg} and svc.queue.call(CALL)["state"] == "on_call"
    run_jobs(app)
    assert len(audit(app, "listen-end")) == 1


def test_a_supervisor_leg_ended_before_the_create_is_answered_is_audited(app, cloud) -> None:  # type: ignore[no-untyped-def]
    """Twilio's status callback may reach us before its API's answer to the create does
    (a phone that refuses at once): the session must be there to end and audit."""
    svc, _, _, seat_leg = wang_talking(app, cloud)
    li, csrf = wallboard_of(app)
    add_participant = cloud._add_participant

    def refused_at_once(room: str, one: dict[str, str]) -> Any:
        status, body = add_participant(room, one)
        if one.get("To") == SUPERVISOR_PHONE:
            cloud._end(body["call_sid"], "failed")
            url, params, runs_on = cloud.webhooks.pop()  # its leg's end, sent at once
            assert "/twilio/listen-leg" in url
            cloud._post(url, params, runs_on)
        return status, body

    cloud._add_participant = refused_at_once
    assert listen(li, csrf, "listen").status_code == 200
    cloud.settle()
    run_jobs(app)
    [(_, _, _, detail)] = audit(app, "listen-end")
    assert detail.endswith(" 0 s")
    assert svc.queue.redis.keys("*listen:*") == []  # nothing left behind as live
    assert cloud.hears(CALL) == {seat_leg} and svc.queue.call(CALL)["state"] == "on_call"
