"""A Twilio call moved into its conference (listening in, a consult, a three-way call)
stays recorded to its end, its recordings paused there as on the seat's <Dial>; the
conference is updated by its SID only; and whichever of the caller's and the operator's
status callbacks comes first, the hang-up is recorded as whoever hung up.

Over real HTTP with tests/twilio_peer.TwilioCloud, which records a <Dial
record="record-from-answer-dual"> from the bridge and a <Conference
record="record-from-start"> from its start, and sends the recording, conference and call
status callbacks as Twilio documents them."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from calls.recordings import link_recordings
from cases.models import CallRecording, Case
from queueing.events import read_events
from tests.test_consult import ROOM, consult
from tests.test_listening_twilio import (  # noqa: F401  (fixtures)
    ACCOUNT,
    SUPERVISOR_PHONE,
    app,
    cloud,
    listen,
    supervisor_listening,
    wallboard_of,
    wang_talking,
)
from tests.test_transfers import CALL, console_of, run_jobs
from tests.twilio_peer import TwilioCloud

UNIT_PHONE = "+8689866661234"


def recordings_of_call(app) -> list[CallRecording]:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].desk.sessions() as db:
        link_recordings(db)
        rows = db.scalars(
            select(CallRecording).where(CallRecording.call_id == CALL).order_by(CallRecording.id)
        ).all()
        db.expunge_all()
        return list(rows)


def case_of_call(app) -> Case:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].desk.sessions() as db:
        case = db.scalars(select(Case).where(Case.call_id == CALL)).one()
        db.expunge(case)
        return case


def hung_up_by(app) -> list[str]:  # type: ignore[no-untyped-def]
    svc = app.extensions["hotline"]
    return [
        e["by"]
        for _, e in read_events(svc.queue.redis, svc.queue.keys)
        if e["type"] == "COMPLETE" and e.get("call") == CALL
    ]


def assert_recorded_on_the_case(app, seconds: list[int]) -> None:  # type: ignore[no-untyped-def]
    """The call's recordings, one per stretch, each done with its length and linked to
    the call's case, which lists them in order."""
    run_jobs(app)  # the case, and each recording's audio
    case = case_of_call(app)
    rows = recordings_of_call(app)
    assert [r.duration_s for r in rows] == seconds
    assert {(r.status, r.case_id, r.provider) for r in rows} == {("done", case.id, "twilio")}
    assert all(r.store == "dir" for r in rows)  # the fetch job brought each one's audio
    li, _ = wallboard_of(app)
    page = li.get(f"/console/cases/{case.number}").get_data(as_text=True)
    assert re.findall(r'data-recording="(\d+)"', page) == [str(r.id) for r in rows]


def test_a_listened_call_is_recorded_to_its_end(app, cloud: TwilioCloud) -> None:  # type: ignore[no-untyped-def]
    cloud.advance(1)
    svc, li, csrf, seat_leg, li_leg = _listened_after(app, cloud, talked_s=30)
    # The <Dial>'s recording ended with the move; the conference records on from its start.
    [dial] = cloud.recordings_of(call=CALL)
    assert dial.status == "completed" and dial.seconds(cloud.now) == 30
    [room] = cloud.recordings_of(conference=cloud.room_of(CALL).sid)
    assert room.status == "in-progress"
    cloud.advance(20)
    cloud.hang_up(CALL)
    assert room.status == "completed"
    assert_recorded_on_the_case(app, [30, 20])


def _listened_after(app, cloud: TwilioCloud, talked_s: int):  # type: ignore[no-untyped-def]
    svc, _, _, seat_leg = wang_talking(app, cloud)
    cloud.advance(talked_s)
    li, csrf = wallboard_of(app)
    assert listen(li, csrf, "listen").status_code == 200
    [li_leg] = cloud.calls_to(SUPERVISOR_PHONE)
    cloud.answer(li_leg)
    assert cloud.room_of(CALL).name == ROOM and cloud.room_of(CALL).status == "in-progress"
    return svc, li, csrf, seat_leg, li_leg


def test_a_consulted_call_is_recorded_in_its_three_way_call(app, cloud: TwilioCloud) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf, _ = wang_talking(app, cloud)
    cloud.advance(30)
    assert consult(wang, csrf, "start", unit="water-affairs").status_code == 200
    [_, operator] = cloud.calls_to("client:1001")
    [unit] = cloud.calls_to(UNIT_PHONE)
    cloud.answer(operator)
    cloud.answer(unit)
    cloud.advance(10)  # the operator and the unit, the caller hearing music: not recorded
    assert not [r for r in cloud.recordings.values() if r.conference]
    assert consult(wang, csrf, "threeway").status_code == 200
    cloud.advance(25)
    cloud.hang_up(CALL)
    assert cloud.legs[unit].status == cloud.legs[operator].status == "completed"
    assert_recorded_on_the_case(app, [30, 25])


def test_the_recording_is_paused_in_the_conference_after_the_move(app, cloud: TwilioCloud) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = _listened_after(app, cloud, talked_s=12)
    wang, wang_csrf = console_of(app, "wang")
    cloud.advance(5)
    paused = wang.post(
        f"/console/calls/{CALL}/recording", data={"action": "pause"}, headers=wang_csrf
    )
    assert paused.status_code == 200 and "恢复录音" in paused.get_data(as_text=True)
    conference = cloud.room_of(CALL).sid
    [room] = cloud.recordings_of(conference=conference)
    assert room.status == "paused"
    cloud.advance(40)  # the citizen reads out an ID card number
    resumed = wang.post(
        f"/console/calls/{CALL}/recording", data={"action": "resume"}, headers=wang_csrf
    )
    assert resumed.status_code == 200 and "暂停录音" in resumed.get_data(as_text=True)
    assert room.status == "in-progress"
    # Twilio took them through the conference's Recordings, by its SID (the call's own
    # Recordings no longer have it).
    asked = [p for p, _ in cloud.requests if "/Conferences/" in p and "/Recordings/" in p]
    assert asked == [
        f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/{conference}/Recordings/{room.sid}.json"
    ] * 2
    cloud.advance(7)
    cloud.hang_up(CALL)
    assert_recorded_on_the_case(app, [12, 12])  # 5 s + 7 s: the 40 s paused are skipped


def test_participants_are_updated_by_the_conference_sid_only(app, cloud: TwilioCloud) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf, _ = wang_talking(app, cloud)
    assert consult(wang, csrf, "start", unit="water-affairs").status_code == 200
    [_, operator] = cloud.calls_to("client:1001")
    [unit] = cloud.calls_to(UNIT_PHONE)
    cloud.answer(operator)
    cloud.answer(unit)
    assert consult(wang, csrf, "threeway").status_code == 200
    assert consult(wang, csrf, "leave").status_code == 200
    # 退出三方通话: the unit's hang-up now ends the caller's conference, asked by its SID.
    conference = cloud.room_of(CALL).sid
    updated = [p for p, _ in cloud.requests if re.search(r"/Participants/[^/]+\.json$", p)]
    assert updated == [
        f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/{conference}/Participants/{unit}.json"
    ]
    assert cloud.room_of(unit).members[unit].end
    # Twilio itself refuses a participant update by the friendly name.
    status, body = cloud.rest(
        f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/{ROOM}/Participants/{unit}.json",
        {"EndConferenceOnExit": ["false"]},
    )
    assert status == 404 and cloud.room_of(unit).members[unit].end


@pytest.mark.parametrize("first", ["operator", "caller"])
def test_the_citizen_hanging_up_on_a_listened_call_is_the_citizens_hang_up(
    app, cloud: TwilioCloud, first: str
) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = supervisor_listening(app, cloud, "listen")
    cloud.advance(9)
    cloud.hold()
    cloud.hang_up(CALL)
    _deliver_legs_ends(cloud, first, seat_leg)
    cloud.release()
    assert hung_up_by(app) == ["caller"]
    assert svc.queue.call(CALL)["state"] == "ended"
    assert svc.queue.seat("1001")["state"] == "wrap_up"


@pytest.mark.parametrize("first", ["operator", "caller"])
def test_the_operator_hanging_up_on_a_listened_call_is_the_operators_hang_up(
    app, cloud: TwilioCloud, first: str
) -> None:  # type: ignore[no-untyped-def]
    svc, li, csrf, seat_leg, li_leg = supervisor_listening(app, cloud, "whisper")
    cloud.advance(9)
    cloud.hold()
    cloud.hang_up(seat_leg)
    _deliver_legs_ends(cloud, first, seat_leg)
    cloud.release()
    assert hung_up_by(app) == ["agent"]
    assert svc.queue.seat("1001")["state"] == "wrap_up"


def _deliver_legs_ends(cloud: TwilioCloud, first: str, seat_leg: str) -> None:
    """The two legs' status callbacks, ``first`` first, before any of the conference's."""
    operator = ("/twilio/consult-leg", {"CallSid": seat_leg})
    caller = ("/twilio/status", {"CallSid": CALL})
    for url, has in (operator, caller) if first == "operator" else (caller, operator):
        cloud.deliver(url, **has)


def test_listening_during_a_consult_or_a_hold_says_why_and_when(app, cloud: TwilioCloud) -> None:  # type: ignore[no-untyped-def]
    svc, wang, csrf, _ = wang_talking(app, cloud)
    li, li_csrf = wallboard_of(app)
    assert consult(wang, csrf, "start", unit="water-affairs").status_code == 200
    [_, operator] = cloud.calls_to("client:1001")
    cloud.answer(operator)
    cloud.answer(cloud.calls_to(UNIT_PHONE)[0])
    refused = listen(li, li_csrf, "listen")
    assert refused.status_code == 409
    words = refused.get_data(as_text=True)
    assert "正在与单位咨询" in words and "咨询结束" in words and "未能呼叫" not in words
    assert not cloud.calls_to(SUPERVISOR_PHONE)
    assert consult(wang, csrf, "cancel").status_code == 200

    held = wang.post(f"/console/calls/{CALL}/hold", data={"action": "hold"}, headers=csrf)
    assert held.status_code == 200, held.get_data(as_text=True)
    refused = listen(li, li_csrf, "barge")
    assert refused.status_code == 409
    words = refused.get_data(as_text=True)
    assert "保持中" in words and "恢复通话后" in words
    assert not cloud.calls_to(SUPERVISOR_PHONE)


@pytest.mark.parametrize("first", ["dial-ends", "conference-starts"])
def test_a_pause_on_when_the_call_moves_goes_on_in_the_conference(
    app, cloud: TwilioCloud, first: str
) -> None:  # type: ignore[no-untyped-def]
    svc, wang, wang_csrf, seat_leg = wang_talking(app, cloud)
    cloud.advance(10)
    paused = wang.post(
        f"/console/calls/{CALL}/recording", data={"action": "pause"}, headers=wang_csrf
    )
    assert paused.status_code == 200
    cloud.advance(3)
    li, csrf = wallboard_of(app)
    assert listen(li, csrf, "listen").status_code == 200
    [li_leg] = cloud.calls_to(SUPERVISOR_PHONE)
    cloud.hold()
    cloud.answer(li_leg)
    [dial] = cloud.recordings_of(call=CALL)
    [room] = cloud.recordings_of(conference=cloud.room_of(seat_leg).sid)
    # The <Dial>'s recording's end and the conference's recording's start, either first.
    ends = ("/twilio/recording", {"RecordingSid": dial.sid})
    starts = ("/twilio/recording", {"RecordingSid": room.sid})
    for url, has in (ends, starts) if first == "dial-ends" else (starts, ends):
        cloud.deliver(url, **has)
    cloud.release()
    assert room.status == "paused"  # the citizen is still reading out the number
    cloud.advance(20)
    resumed = wang.post(
        f"/console/calls/{CALL}/recording", data={"action": "resume"}, headers=wang_csrf
    )
    assert resumed.status_code == 200 and "暂停录音" in resumed.get_data(as_text=True)
    cloud.advance(6)
    cloud.hang_up(CALL)
    assert_recorded_on_the_case(app, [10, 6])
