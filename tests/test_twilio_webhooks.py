"""Twilio webhooks through the Flask app, signed exactly as Twilio signs them."""

from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from twilio.request_validator import RequestValidator

from hotline.config import load_settings
from hotline.webapp import create_app
from queueing import CallQueue
from tests.twilio_peer import AUTH_TOKEN, PUBLIC_BASE, TwilioSigner, parse, sid, verbs

API_TOKEN = "api-token-for-tests"


@pytest.fixture
def app(redis: Redis, redis_server, tmp_path: Path):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed

    db_url = f"sqlite:///{tmp_path / 'web.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as s:
        seed(s)
        s.commit()
    settings = load_settings(
        {
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_server.url,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PUBLIC_BASE_URL": PUBLIC_BASE,
            "HOTLINE_API_TOKEN": API_TOKEN,
            "HOTLINE_WRAPUP_S": "0",
            "HOTLINE_SECRET_KEY": "test",
        }
    )
    return create_app({"SETTINGS": settings, "REDIS": redis, "TESTING": True})


@pytest.fixture
def twilio(app) -> TwilioSigner:  # type: ignore[no-untyped-def]
    return TwilioSigner(app.test_client())


@pytest.fixture
def queue(app) -> CallQueue:  # type: ignore[no-untyped-def]
    return app.extensions["hotline"].queue


def incoming(n: int = 1, caller: str = "+8613800000001", to: str = "+8612345") -> dict[str, str]:
    return {
        "CallSid": sid(n),
        "From": caller,
        "To": to,
        "CallStatus": "ringing",
        "AccountSid": "AC" + "0" * 32,
        "Direction": "inbound",
    }


def test_library_test_vector() -> None:
    """The published vector: our signer is Twilio's algorithm, not a private variant."""
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    validator = RequestValidator("12345")
    assert validator.compute_signature(url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert not validator.validate(
        url.replace("https", "http"), params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )


def test_incoming_call_is_queued_and_hears_greeting_and_menu(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    root = parse(twilio.post("/twilio/voice", incoming()))
    assert verbs(root) == ["Say", "Gather"]
    assert "12345" in root[0].text and root[0].get("language") == "cmn-CN"
    gather = root[1]
    assert gather.get("action") == PUBLIC_BASE + "/twilio/gather"
    assert gather.get("actionOnEmptyResult") == "true" and gather.get("numDigits") == "1"
    assert queue.call(sid(1))["state"] == "waiting"  # queued from the first second


@pytest.mark.parametrize("tamper", ["http", "extra-param", "wrong-token", "no-header"])
def test_bad_signatures_are_refused_and_change_nothing(app, queue, tamper: str) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    params = incoming(7)
    url = PUBLIC_BASE + "/twilio/voice"
    token = "wrong" if tamper == "wrong-token" else AUTH_TOKEN
    signer = RequestValidator(token)
    signed_url = url.replace("https://", "http://") if tamper == "http" else url
    signature = signer.compute_signature(signed_url, params)
    if tamper == "extra-param":
        params = {**params, "Digits": "1"}
    headers = {} if tamper == "no-header" else {"X-Twilio-Signature": signature}
    response = client.post("/twilio/voice", data=params, headers=headers)
    assert response.status_code == 403
    assert queue.call(sid(7)) == {}
    assert queue.redis.get(queue.keys.flow(sid(7))) is None


def test_without_a_configured_token_every_webhook_is_refused(redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        {"HOTLINE_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    )
    app = create_app({"SETTINGS": settings, "REDIS": redis})
    signer = TwilioSigner(app.test_client())
    assert signer.post("/twilio/voice", incoming()).status_code == 403


def test_silence_in_the_menu_ends_in_the_queue(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    twilio.post("/twilio/voice", incoming())
    again = parse(twilio.post("/twilio/gather", {**incoming(), "Digits": ""}))
    assert verbs(again) == ["Gather"]  # the menu, repeated once
    root = parse(twilio.post("/twilio/gather", {**incoming(), "Digits": ""}))
    assert verbs(root) == ["Enqueue"]
    enq = root[0]
    assert enq.get("waitUrl") == PUBLIC_BASE + "/twilio/wait"
    assert enq.get("action") == PUBLIC_BASE + "/twilio/after-queue"


def test_junk_digits_and_oversized_fields_still_reach_a_person(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    twilio.post("/twilio/voice", {**incoming(), "From": "x" * 5000})
    root = parse(twilio.post("/twilio/gather", {**incoming(), "Digits": "<script>9</script>"}))
    assert verbs(root) == ["Enqueue"]
    assert queue.call(sid(1))["state"] == "waiting"


def test_gather_for_an_unknown_call_goes_to_a_person(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    root = parse(twilio.post("/twilio/gather", {**incoming(99), "Digits": "5"}))
    assert verbs(root) in (["Enqueue"], ["Dial"])
    assert queue.call(sid(99))["state"] in ("waiting", "offered")


def test_non_twilio_request_without_call_sid_is_a_clear_400(twilio) -> None:  # type: ignore[no-untyped-def]
    response = twilio.post("/twilio/voice", {"From": "+8613800000001"})
    assert response.status_code == 400


def test_wait_leaves_when_a_seat_is_offered_and_after_queue_dials_it(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    twilio.post("/twilio/voice", incoming())
    wait = {**incoming(), "QueuePosition": "1", "QueueTime": "5", "CurrentQueueSize": "1"}
    assert "Leave" not in verbs(parse(twilio.post("/twilio/wait", wait)))
    queue.seat_state("1001", "available")
    assert verbs(parse(twilio.post("/twilio/wait", wait))) == ["Leave"]
    root = parse(twilio.post("/twilio/after-queue", {**incoming(), "QueueResult": "leave"}))
    (dial,) = root
    assert dial.tag == "Dial"
    assert dial.get("action") == PUBLIC_BASE + "/twilio/dial-status?seat=1001"
    (client,) = dial
    assert client.tag == "Client" and client.text == "1001"
    answered_url = client.get("url")
    assert answered_url.startswith(PUBLIC_BASE + "/twilio/seat-answered?")
    # The seat picks up: Twilio requests the noun's url on the seat's leg.
    seat_leg = {"CallSid": sid("seat1"), "From": "client:1001", "To": "client:1001"}
    assert verbs(parse(twilio.post(answered_url, seat_leg))) == []
    assert queue.call(sid(1))["state"] == "on_call"
    # The operator hangs up: the Dial action arrives while the caller is still there.
    done = parse(
        twilio.post(
            "/twilio/dial-status?seat=1001",
            {**incoming(), "CallStatus": "in-progress", "DialCallStatus": "completed"},
        )
    )
    assert verbs(done) == ["Say", "Hangup"]
    assert queue.call(sid(1))["outcome"] == "completed"


def test_ring_no_answer_goes_back_to_the_queue_with_only_music(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    twilio.post("/twilio/voice", incoming())  # offered to 1001 at once
    root = parse(
        twilio.post(
            "/twilio/dial-status?seat=1001",
            {**incoming(), "CallStatus": "in-progress", "DialCallStatus": "no-answer"},
        )
    )
    assert verbs(root) == ["Enqueue"]
    assert queue.seat("1001")["reason"] == "no answer"
    assert queue.call(sid(1))["state"] == "waiting"


@pytest.mark.parametrize("where", ["waiting", "ringing", "talking"])
def test_status_callback_ends_the_call_once(twilio, queue, where: str) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    if where == "waiting":
        queue.seat_state("1001", "paused", "busy")
    twilio.post("/twilio/voice", incoming())
    if where == "talking":
        queue.answer(sid(1), "1001")
    final = {**incoming(), "CallStatus": "completed", "SequenceNumber": "3"}
    assert twilio.post("/twilio/status", final).status_code == 204
    outcome = queue.call(sid(1))["outcome"]
    assert outcome == ("completed" if where == "talking" else "abandoned")
    events_before = queue.redis.xlen(queue.keys.events)
    twilio.post("/twilio/status", final)  # delivered twice
    late = {**incoming(), "CallStatus": "ringing", "SequenceNumber": "1"}
    twilio.post("/twilio/status", late)  # out of order
    assert queue.redis.xlen(queue.keys.events) == events_before
    assert queue.call(sid(1))["state"] == "ended"
    assert verbs(parse(twilio.post("/twilio/voice", incoming()))) == ["Hangup"]


def api(app, method: str, path: str, token: str | None = API_TOKEN, **kw: Any):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return getattr(app.test_client(), method)(path, headers=headers, **kw)


def test_api_needs_the_token(app) -> None:  # type: ignore[no-untyped-def]
    assert api(app, "get", "/api/queue", token=None).status_code == 401
    assert api(app, "get", "/api/queue", token="nope").status_code == 401
    assert api(app, "get", "/api/queue").status_code == 200


def test_api_seat_and_call_lifecycle(app, twilio, queue) -> None:  # type: ignore[no-untyped-def]
    r = api(app, "post", "/api/seats/2001/login", json={"skills": ["mandarin", "hainanese"]})
    assert r.status_code == 200 and r.json["result"] == "logged-in"
    twilio.post("/twilio/voice", incoming())
    status = api(app, "get", "/api/queue").json
    assert status["seats"][0]["state"] == "offered"
    assert api(app, "post", f"/api/calls/{sid(1)}/answer", json={"seat": "2001"}).status_code == 200
    r = api(
        app,
        "post",
        f"/api/calls/{sid(1)}/complete",
        json={"case": {"description": "路灯不亮", "category_code": "street-lights"}},
    )
    # Twilio reports the end of the conversation itself: the form is filed, and the
    # seat is not put into wrap-up while the operator may still be talking.
    assert r.status_code == 200 and r.json["result"] == "form-filed"
    assert queue.call(sid(1))["state"] == "on_call"
    assert queue.redis.get(queue.keys.case_draft(sid(1))) is not None


@pytest.mark.parametrize(
    ("path", "payload", "status", "error"),
    [
        ("/api/seats/2001/state", {"state": "asleep"}, 400, "bad-field"),
        ("/api/seats/2001/login", {"skills": "mandarin"}, 400, "bad-field"),
        ("/api/seats/a:b/login", {}, 400, "bad-seat-id"),
        ("/api/seats/2001/login", {"skills": ["klingon"]}, 400, "unknown-skill"),
        ("/api/calls/CAnope/answer", {"seat": "2001"}, 404, "no-such-call"),
        ("/api/seats/2001/state", {"state": "available"}, 409, "not-logged-in"),
    ],
)
def test_api_bad_input_is_a_clear_error(app, path, payload, status, error) -> None:  # type: ignore[no-untyped-def]
    r = api(app, "post", path, json=payload)
    assert (r.status_code, r.json["error"]) == (status, error)


def test_api_rejects_a_body_that_is_not_an_object(app) -> None:  # type: ignore[no-untyped-def]
    r = api(app, "post", "/api/seats/2001/login", data="[1,2]", content_type="application/json")
    assert (r.status_code, r.json["error"]) == (400, "bad-json")


def test_a_late_no_answer_does_not_pause_a_seat_offered_since(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    twilio.post("/twilio/voice", incoming())  # rings 1001
    queue.no_answer(sid(1), "1001", "timeout")  # the reaper took it back...
    queue.seat_login("1002")  # ...and it is offered to 1002
    assert queue.call(sid(1))["seat"] == "1002"
    root = parse(
        twilio.post(
            "/twilio/dial-status?seat=1001",
            {**incoming(), "CallStatus": "in-progress", "DialCallStatus": "no-answer"},
        )
    )
    (dial,) = root
    assert dial.tag == "Dial" and dial[0].text == "1002"
    assert queue.seat("1002")["state"] == "offered"


@pytest.mark.parametrize(
    "path",
    [
        "/twilio/voice",
        "/twilio/gather",
        "/twilio/wait",
        "/twilio/after-queue",
        "/twilio/dial-status",
        "/twilio/status",
        "/twilio/offered",
        "/twilio/seat-answered?call=CA" + "0" * 32 + "&seat=1001",
    ],
)
def test_every_twilio_route_refuses_an_unsigned_request(app, queue, path: str) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    response = app.test_client().post(path, data=incoming())
    assert response.status_code == 403
    assert queue.call(sid(1)) == {} and queue.seat("1001")["state"] == "available"


def test_offered_redirect_dials_the_offered_seat_even_if_already_ringing(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    first = parse(twilio.post("/twilio/voice", incoming()))
    assert verbs(first) == ["Say", "Dial"]  # greeting, then the free operator at once
    root = parse(twilio.post("/twilio/offered", incoming()))
    assert verbs(root) == ["Dial"] and root[0][0].text == "1001"


def test_hold_segment_plays_the_configured_clip() -> None:
    from ivr import actions as a
    from web.twilio.twiml import TwimlSettings, render_actions

    music = TwimlSettings(base_url=PUBLIC_BASE, hold_music_url=PUBLIC_BASE + "/twilio/hold.wav")
    root = render_actions([a.Hold()], music, sid(1), in_queue=True)
    assert [type(v).__name__ for v in root.verbs] == ["Play"]
    silent = render_actions([a.Hold()], TwimlSettings(base_url=PUBLIC_BASE), sid(1), in_queue=True)
    assert [type(v).__name__ for v in silent.verbs] == ["Pause"]


def test_hold_clip_route_serves_the_rendered_file(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert client.get("/twilio/hold.wav").status_code == 404
    sounds = app.extensions["hotline"].settings.sounds_dir
    sounds.mkdir(parents=True)
    (sounds / "hold.wav").write_bytes(b"RIFF....WAVE")
    with client.get("/twilio/hold.wav") as response:
        assert response.status_code == 200 and response.mimetype == "audio/wav"
        assert response.get_data() == b"RIFF....WAVE"


def test_a_completed_dial_is_a_conversation_even_if_the_seat_leg_never_reported(  # type: ignore[no-untyped-def]
    app, twilio, queue
) -> None:
    """Twilio's <Dial> action says completed, with a duration, but the seat leg's url
    request was lost: the conversation happened, so the call completes and a case
    follows; nobody is re-dialled and the operator is not paused."""
    queue.seat_login("1001")
    queue.seat_login("1002")
    queue.seat_state("1002", "paused", "meeting")
    twilio.post("/twilio/voice", incoming())  # offered to 1001, which rings
    root = parse(
        twilio.post(
            "/twilio/dial-status?seat=1001",
            {
                **incoming(),
                "CallStatus": "in-progress",
                "DialCallStatus": "completed",
                "DialCallDuration": "95",
            },
        )
    )
    assert verbs(root) == ["Say", "Hangup"]
    call = queue.call(sid(1))
    assert (call["outcome"], call["seat"]) == ("completed", "1001")
    assert queue.seat("1001")["state"] == "available"  # wrap-up 0 in these tests
    assert queue.seat_state("1002", "available").offers == ()  # nothing to dial again
    connect = [e for e in events_of(queue, "CONNECT") if e["call"] == sid(1)]
    assert [(e["seat"], e["late"]) for e in connect] == [("1001", "0")]
    jobs = app.extensions["hotline"].handler.jobs
    assert any(j.startswith("case-") for j in jobs.get_job_ids() + scheduled(jobs))


def test_a_pick_up_after_the_queue_moved_on_is_still_connected(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    twilio.post("/twilio/voice", incoming())  # rings 1001
    queue.no_answer(sid(1), "1001", "timeout")  # the queue gave up on 1001 ...
    # ... but the operator picked up inside the phone's ring time.
    answered = PUBLIC_BASE + f"/twilio/seat-answered?call={sid(1)}&seat=1001"
    seat_leg = {"CallSid": sid("seat1"), "From": "client:1001", "To": "client:1001"}
    assert verbs(parse(twilio.post(answered, seat_leg))) == []
    assert queue.call(sid(1))["state"] == "on_call"
    assert queue.seat("1001")["state"] == "on_call"


def events_of(queue: CallQueue, kind: str) -> list[dict[str, str]]:
    out = []
    for _, fields in queue.redis.xrange(queue.keys.events):
        event = {k.decode(): v.decode() for k, v in fields.items()}
        if event["type"] == kind:
            out.append(event)
    return out


def scheduled(jobs) -> list[str]:  # type: ignore[no-untyped-def]
    return list(jobs.scheduled_job_registry.get_job_ids())


def test_a_final_status_of_a_call_that_never_ran_the_flow_queues_nothing(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    """An outbound call's status callback, or any unknown CallSid: no ghost call."""
    queue.seat_login("1001")
    twilio.post("/twilio/status", {**incoming(7), "CallStatus": "completed"})
    assert queue.live_calls() == [] and queue.call(sid(7)) == {}
    assert queue.seat("1001")["state"] == "available"


def test_a_hang_up_that_overtakes_the_first_webhook_leaves_no_ghost(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    twilio.post("/twilio/status", {**incoming(), "CallStatus": "canceled", "SequenceNumber": "0"})
    root = parse(twilio.post("/twilio/voice", incoming()))  # arrives late
    assert verbs(root) == ["Hangup"]
    assert queue.live_calls() == []


@pytest.mark.parametrize("sequence", ["", "x y", "1" * 40])
def test_a_final_status_with_any_sequence_number_ends_the_call(twilio, queue, sequence) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    twilio.post("/twilio/voice", incoming())
    twilio.post(
        "/twilio/status", {**incoming(), "CallStatus": "completed", "SequenceNumber": sequence}
    )
    assert queue.call(sid(1))["state"] == "ended"


def test_queue_result_hangup_ends_the_call(twilio, queue) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    twilio.post("/twilio/voice", incoming())
    twilio.post("/twilio/after-queue", {**incoming(), "QueueResult": "hangup"})
    assert queue.call(sid(1))["outcome"] == "abandoned"


def test_voice_and_its_hang_up_at_the_same_moment_leave_no_ghosts(app, queue) -> None:  # type: ignore[no-untyped-def]
    """The race the field saw: /voice and the final status in flight together."""
    import threading

    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")  # nobody answers: ghosts would stay
    errors: list[BaseException] = []

    def post(path: str, params: dict[str, str], barrier: threading.Barrier) -> None:
        try:
            signer = TwilioSigner(app.test_client())
            barrier.wait(timeout=10)
            signer.post(path, params)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    for n in range(60):
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=post, args=("/twilio/voice", incoming(n), barrier)),
            threading.Thread(
                target=post,
                args=("/twilio/status", {**incoming(n), "CallStatus": "completed"}, barrier),
            ),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
    assert errors == []
    assert queue.live_calls() == []


@pytest.mark.parametrize("registered", ["13800000009", "+86 138 0000 0009", "8613800000009"])
def test_a_registered_citizen_is_recognised_whatever_the_number_format(  # type: ignore[no-untyped-def]
    app, twilio, queue, registered: str
) -> None:
    """The register is written as typed by staff (normalised by the CLI); Twilio sends
    E.164. Both meet as one number."""
    from cases.db import engine_for, session_factory
    from cases.models import CitizenRegister
    from cases.phones import normalise
    from cases.service import utcnow

    settings = app.extensions["hotline_settings"]
    with session_factory(engine_for(settings.database_url))() as session:
        session.add(
            CitizenRegister(
                phone=normalise(registered),
                name="王阿婆",
                note="",
                added_by="test",
                added_at=utcnow(),
            )
        )
        session.commit()
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    twilio.post("/twilio/voice", incoming(caller="+8613800000009"))
    call = queue.call(sid(1))
    assert (call["priority"], call["caller"]) == ("vulnerable", "+8613800000009")


def run_jobs(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Run the queued RQ jobs as a worker would (they read the environment)."""
    from rq import Queue, SimpleWorker

    settings = app.extensions["hotline_settings"]
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(settings.var_dir))
    redis = app.extensions["hotline"].redis
    SimpleWorker([Queue("hotline", connection=redis)], connection=redis).work(
        burst=True, logging_level="WARNING"
    )


def case_of(app, call_id: str):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory
    from cases.service import case_for_call

    settings = app.extensions["hotline_settings"]
    session = session_factory(engine_for(settings.database_url))()
    return session, case_for_call(session, call_id)


def talk_and_hang_up(twilio, queue, during=None) -> None:  # type: ignore[no-untyped-def]
    """A call answered by seat 1001 and hung up; ``during`` runs while they talk."""
    queue.seat_login("1001")
    twilio.post("/twilio/voice", incoming())
    answered = PUBLIC_BASE + f"/twilio/seat-answered?call={sid(1)}&seat=1001"
    twilio.post(answered, {"CallSid": sid("seat1"), "From": "client:1001", "To": "client:1001"})
    if during is not None:
        during()
    twilio.post(
        "/twilio/dial-status?seat=1001",
        {
            **incoming(),
            "CallStatus": "completed",
            "DialCallStatus": "completed",
            "DialCallDuration": "60",
        },
    )


FORM = {
    "seat": "1001",
    "description": "路灯不亮三天了",
    "category_code": "street-lights",
    "district_code": "longhua",
    "address": "龙华区滨海大道1号",
}


def test_a_form_sent_after_the_hang_up_reaches_the_case(app, twilio, queue, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The normal path: the caller has gone, the case exists, then the operator files."""
    talk_and_hang_up(twilio, queue)
    run_jobs(app, monkeypatch)
    session, case = case_of(app, sid(1))
    assert case is not None and case.description == "" and case.status == "received"
    session.close()
    r = api(app, "post", f"/api/calls/{sid(1)}/case", json=FORM)
    assert r.status_code == 200 and r.json["result"] == "filed"
    session, case = case_of(app, sid(1))
    assert (case.description, case.category.code, case.address) == (
        FORM["description"],
        "street-lights",
        FORM["address"],
    )
    assert case.status == "dispatched"
    r = api(app, "post", f"/api/calls/{sid(1)}/case", json=FORM)  # again: nothing changes
    assert r.json["case"] == case.number
    assert sum(1 for ev in case.events if ev.action == "form") == 1
    session.close()


def test_a_form_sent_before_the_hang_up_makes_one_case(app, twilio, queue, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    twilio.post("/twilio/voice", incoming())
    r = api(app, "post", f"/api/calls/{sid(1)}/case", json={**FORM, "resolved_on_phone": True})
    assert (r.status_code, r.json["result"]) == (202, "form-kept")  # filed once answered
    twilio.post(
        "/twilio/dial-status?seat=1001",
        {
            **incoming(),
            "CallStatus": "completed",
            "DialCallStatus": "completed",
            "DialCallDuration": "60",
        },
    )
    run_jobs(app, monkeypatch)
    session, case = case_of(app, sid(1))
    assert case.status == "resolved" and case.description == FORM["description"]
    session.close()


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"category_code": "no-such-thing"}, "category_code"),
        ({"district_code": "atlantis"}, "district_code"),
        ({"resolved_on_phone": "no"}, "resolved_on_phone"),
        ({"urgency": "whenever"}, "urgency"),
        ({"colour": "blue"}, "field"),
    ],
)
def test_a_bad_form_is_refused_naming_what_is_allowed(app, twilio, queue, form, field) -> None:  # type: ignore[no-untyped-def]
    queue.seat_login("1001")
    twilio.post("/twilio/voice", incoming())
    r = api(app, "post", f"/api/calls/{sid(1)}/case", json=form)
    assert r.status_code == 422 and r.json["field"] == field and r.json["allowed"]
    if field == "category_code":
        assert "street-lights" in r.json["allowed"]
    session, case = case_of(app, sid(1))
    assert case is None
    session.close()


def test_the_api_answers_bad_requests_in_json(app) -> None:  # type: ignore[no-untyped-def]
    deep = "[" * 5_000 + "]" * 5_000  # small, but deeper than the JSON parser recurses
    r = app.test_client().post(
        "/api/seats/2001/login",
        data=deep,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json["error"] == "bad-json"
    assert api(app, "get", "/api/no/such/route").json["error"] == "not-found"
    assert api(app, "delete", "/api/queue").status_code == 405
    assert api(app, "delete", "/api/queue").json["error"] == "method-not-allowed"
    bare = app.test_client().get("/api/queue", headers={"Authorization": API_TOKEN})
    assert bare.status_code == 401


def test_an_answered_call_whose_case_job_was_lost_still_gets_its_case(  # type: ignore[no-untyped-def]
    app, twilio, queue, monkeypatch
) -> None:
    """A crash between completing the call and enqueuing its job, or a worker killed
    with the job: the reaper's sweep finds the answered call with no case."""
    from calls import CaseSweep

    talk_and_hang_up(twilio, queue)
    handler = app.extensions["hotline"].handler
    handler.jobs.empty()  # the job is lost
    sweep = CaseSweep(handler, handler.directory.sessions, grace_s=0.0)
    assert sweep.run_once() == [sid(1)]
    assert sweep.run_once() == []  # the cursor moved on: the stream is not read again
    run_jobs(app, monkeypatch)
    session, case = case_of(app, sid(1))
    assert case is not None
    session.close()
    talk_again = CaseSweep(handler, handler.directory.sessions, grace_s=0.0)
    handler.redis.hdel(handler.queue.keys.stats, CaseSweep.CURSOR_FIELD)
    assert talk_again.run_once() == []  # it has its case now


def test_the_case_sweep_leaves_a_queued_job_alone(app, twilio, queue) -> None:  # type: ignore[no-untyped-def]
    """A backlog is not a loss: enqueuing the same job again would only add load."""
    from calls import CaseSweep

    talk_and_hang_up(twilio, queue)  # its case job waits in the queue
    handler = app.extensions["hotline"].handler
    assert CaseSweep(handler, handler.directory.sessions, grace_s=0.0).run_once() == []
    assert handler.jobs.count == 1


def queued_jobs(app) -> list[str]:  # type: ignore[no-untyped-def]
    from rq import Queue

    jobs = Queue("hotline", connection=app.extensions["hotline"].redis).get_jobs()
    return sorted(job.func_name for job in jobs)


def test_a_form_kept_while_the_case_job_waits_rides_with_it(
    app, twilio, queue, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Late forms sent while the worker is busy add no job: the case job files the
    newest one (one job per answered call)."""
    talk_and_hang_up(twilio, queue)
    handler = app.extensions["hotline"].handler
    handler.submit_case_form(sid(1), {**FORM, "description": "第一稿"})
    handler.submit_case_form(sid(1), FORM)
    assert queued_jobs(app) == ["calls.casework.create_case"]
    run_jobs(app, monkeypatch)
    session, case = case_of(app, sid(1))
    assert case.description == FORM["description"] and case.status == "dispatched"
    session.close()


def test_a_form_after_the_case_job_gets_its_own_job(app, twilio, queue, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    talk_and_hang_up(twilio, queue)
    run_jobs(app, monkeypatch)
    handler = app.extensions["hotline"].handler
    handler.submit_case_form(sid(1), FORM)
    assert queued_jobs(app) == ["calls.casework.file_stored_form"]
    run_jobs(app, monkeypatch)
    session, case = case_of(app, sid(1))
    assert case.description == FORM["description"]
    session.close()


def test_a_form_that_lands_while_the_case_job_runs_is_filed_by_it(
    app, twilio, queue, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The race the handshake exists for: the job has read the draft, the operator
    sends a newer one, the job finishes. Its atomic check sees the newer version and
    files again, so the form neither waits for a job nobody enqueued nor is lost."""
    import calls.casework
    import calls.filing

    talk_and_hang_up(twilio, queue)
    handler = app.extensions["hotline"].handler
    handler.submit_case_form(sid(1), {**FORM, "description": "第一稿"})
    reads: list[str] = []
    real_read = calls.filing.read_draft

    def read_then_operator_types(redis, keys, call_id):  # type: ignore[no-untyped-def]
        result = real_read(redis, keys, call_id)
        reads.append(result[1].get("description", ""))
        if len(reads) == 1:  # the operator's second form lands mid-job
            handler.submit_case_form(sid(1), FORM)
        return result

    monkeypatch.setattr(calls.casework, "read_draft", read_then_operator_types)
    run_jobs(app, monkeypatch)
    assert reads == ["第一稿", FORM["description"]]
    assert queued_jobs(app) == []
    session, case = case_of(app, sid(1))
    assert case.description == FORM["description"]
    session.close()


def open_case_of(app, phone: str = "+8613800000001") -> str:  # type: ignore[no-untyped-def]
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = create_case_for_call(
            db,
            CallInfo("an-earlier-call", phone, "twilio", "1002"),
            CaseDraft(description="楼下噪音扰民", category_code="street-lights"),
        )
        return case.number


def test_a_repeat_callers_call_attached_to_their_open_case_is_an_urging(
    app, twilio, queue, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """催办: the form attaches the call to the caller's open case after the hang-up made a
    case of its own; that one is closed as merged, the open one records the urging, and
    the sweep counts the call as having its case."""
    from sqlalchemy import select

    from calls import CaseSweep
    from cases.models import Case, CaseEvent

    number = open_case_of(app)
    talk_and_hang_up(twilio, queue)
    run_jobs(app, monkeypatch)
    r = api(
        app,
        "post",
        f"/api/calls/{sid(1)}/case",
        json={"attach_to": number, "description": "又打来催"},
    )
    assert r.status_code == 200 and r.json["case"] == number
    again = api(app, "post", f"/api/calls/{sid(1)}/case", json={"attach_to": number})
    assert again.status_code == 200 and again.json["case"] == number  # idempotent
    handler = app.extensions["hotline"].handler
    with handler.directory.sessions() as db:
        urged = db.scalar(select(CaseEvent).where(CaseEvent.call_id == sid(1)))
        assert urged.action == "urged" and urged.case.number == number
        assert "又打来催" in urged.note
        duplicate = db.scalar(select(Case).where(Case.call_id == sid(1)))
        assert duplicate.status == "closed" and duplicate.events[-1].action == "merged"
    sweep = CaseSweep(handler, handler.directory.sessions, grace_s=0)
    assert sweep.run_once() == []


def test_an_urging_sent_during_the_call_makes_no_second_case(
    app, twilio, queue, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from cases.models import Case, CaseEvent

    number = open_case_of(app)

    def urge() -> None:
        r = api(app, "post", f"/api/calls/{sid(1)}/case", json={"attach_to": number})
        assert r.status_code == 200 and r.json["case"] == number

    talk_and_hang_up(twilio, queue, during=urge)
    run_jobs(app, monkeypatch)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        assert db.scalar(select(Case).where(Case.call_id == sid(1))) is None
        assert db.scalar(select(CaseEvent.action).where(CaseEvent.call_id == sid(1))) == "urged"


def test_an_urging_of_a_case_that_is_not_open_is_refused(app, twilio, queue) -> None:  # type: ignore[no-untyped-def]
    talk_and_hang_up(twilio, queue)
    r = api(app, "post", f"/api/calls/{sid(1)}/case", json={"attach_to": "12345-20200101-000001"})
    assert r.status_code == 422 and r.json["field"] == "attach_to"
    other = open_case_of(app, phone="+8613900000002")
    r = api(app, "post", f"/api/calls/{sid(1)}/case", json={"attach_to": other})
    assert r.status_code == 422 and r.json["allowed"] == ["an open case of this caller"]


def test_a_caller_the_queue_forgot_is_queued_again_not_held_for_ever(
    twilio, queue, redis: Redis
) -> None:  # type: ignore[no-untyped-def]
    """A Redis failover can lose the last writes: the caller's flow survived but the
    queue no longer knows the call. The hold loop queues them again."""
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    twilio.post("/twilio/voice", incoming())
    call_id = incoming()["CallSid"]
    wait = {**incoming(), "QueuePosition": "1", "QueueTime": "5", "CurrentQueueSize": "1"}
    twilio.post("/twilio/wait", wait)
    # What the failover lost: the call's record and its place in line.
    redis.delete(queue.keys.call(call_id))
    for key in redis.scan_iter(match="*"):
        if redis.type(key) == b"zset":
            redis.zrem(key, call_id)
    assert "Leave" not in verbs(parse(twilio.post("/twilio/wait", wait)))
    assert queue.position(call_id).state == "waiting"
    queue.seat_state("1001", "available")
    assert verbs(parse(twilio.post("/twilio/wait", wait))) == ["Leave"]
