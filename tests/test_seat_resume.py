"""An operator whose web sign-in ended mid-call gets back to their seat: logging in to
their own seat while it rings, talks or wraps up resumes it as it is (real Redis, the
web app over Flask's client). Also: the sign-in page says why a session was lost."""

from __future__ import annotations

import hashlib
import time

import pytest

from queueing import CallQueue, QueueError
from tests.test_console import PASSWORD, csrf_of, make_app, sign_in

KEPT = ("state", "skills", "login_at", "owner", "call", "wrapup_until")


def kept(queue: CallQueue, seat: str) -> dict[str, str]:
    record = queue.seat(seat)
    return {field: record.get(field, "") for field in KEPT}


@pytest.mark.parametrize("stage", ["offered", "on_call", "wrap_up"])
def test_the_owner_logging_in_again_resumes_the_seat_unchanged(make_queue, stage: str) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(wrapup_s=60)
    queue.seat_login("s1", ["mandarin"], owner="wang")
    queue.enqueue("c1")  # offered to s1
    if stage != "offered":
        queue.answer("c1", "s1")
    if stage == "wrap_up":
        queue.complete("c1")
    before, call_before = kept(queue, "s1"), queue.call("c1")
    assert before["state"] == stage
    assert queue.seat_login("s1", ["english"], owner="wang").result == "resumed"
    assert kept(queue, "s1") == before
    assert queue.call("c1") == call_before


def test_signing_out_mid_call_then_back_keeps_the_seat_taking_calls(queue: CallQueue) -> None:
    """Sign-out mid-call sets a pause after the call; the owner back on the seat means
    to go on working, so that pause is off; a pause they chose themselves stays."""
    queue.seat_login("s1", owner="wang")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    queue.pause_after_call("s1", "signed_out")
    assert queue.seat_login("s1", owner="wang").result == "resumed"
    assert not queue.seat("s1").get("pause_next")
    queue.pause_after_call("s1", "lunch")
    assert queue.seat_login("s1", owner="wang").result == "resumed"
    assert queue.seat("s1").get("pause_next") == "lunch"


def test_signing_out_mid_call_keeps_a_pause_the_operator_chose(app) -> None:  # type: ignore[no-untyped-def]
    """Lunch after this call, then 退出 mid-call, then back: lunch still comes."""
    from calls.desk import Actor

    hotline = app.extensions["hotline"]
    wang = Actor("wang", "operator")
    hotline.desk.login_seat(wang, "1001", ["mandarin"])
    hotline.handler.start("c-lunch", "13800000009", "12345", "asterisk", 0.0)
    hotline.handler.seat_answered("c-lunch", "1001", 1.0)
    hotline.queue.pause_after_call("1001", "lunch")
    assert hotline.desk.sign_out(wang) == "after-call"
    assert hotline.desk.login_seat(wang, "1001", ["mandarin"]).result == "resumed"
    assert hotline.queue.seat("1001").get("pause_next") == "lunch"


def _on_a_call(queue: CallQueue) -> None:
    """wang's seat s1 on call c1."""
    queue.seat_login("s1", ["mandarin"], owner="wang")
    queue.enqueue("c1")
    queue.answer("c1", "s1")


def test_back_after_the_heartbeat_lapsed_mid_call_is_back_on_that_call(make_queue) -> None:  # type: ignore[no-untyped-def]
    """The console was gone longer than the heartbeat's time: the seat went offline with
    its call still on it. Its owner gets it back on that call (not free for a second
    caller); anyone else is refused while that call lasts."""
    queue = make_queue(seat_heartbeat_ttl_s=0.3)
    _on_a_call(queue)
    time.sleep(0.5)  # no heartbeat
    assert queue.tick()[0]["seats_lost"] == 1
    assert (queue.seat("s1")["state"], queue.call("c1")["state"]) == ("offline", "on_call")
    with pytest.raises(QueueError) as taken:
        queue.seat_login("s1", ["mandarin"], owner="zhao")
    assert (taken.value.code, taken.value.detail) == ("seat-taken", "wang")
    assert queue.seat_login("s1", ["mandarin"], owner="wang").result == "resumed"
    seat = queue.seat("s1")
    assert (seat["state"], seat["call"]) == ("on_call", "c1")
    queue.enqueue("c2")
    assert queue.call("c2")["state"] == "waiting"  # not offered to a seat on a call
    queue.complete("c1")
    assert queue.call("c2").get("seat") == "s1"  # free again after it


def test_a_pause_left_by_the_last_operator_is_not_the_next_ones(make_queue) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(seat_heartbeat_ttl_s=0.3)
    _on_a_call(queue)
    queue.pause_after_call("s1", "signed_out")
    time.sleep(0.5)  # no heartbeat
    queue.tick()
    queue.complete("c1")  # the call ends with the seat offline
    assert queue.seat_login("s1", ["mandarin"], owner="zhao").result == "logged-in"
    assert not queue.seat("s1").get("pause_next")
    assert queue.seat("s1")["state"] == "available"


def test_someone_else_or_nobody_is_refused_a_busy_seat(queue: CallQueue) -> None:
    queue.seat_login("s1", owner="wang")
    queue.enqueue("c1")
    queue.answer("c1", "s1")
    with pytest.raises(QueueError) as taken:
        queue.seat_login("s1", owner="zhao")
    assert (taken.value.code, taken.value.detail) == ("seat-taken", "wang")
    queue.seat_login("s2")  # a seat nobody owns (the simulator's), on a call
    queue.enqueue("c2")
    queue.answer("c2", "s2")
    with pytest.raises(QueueError) as busy:
        queue.seat_login("s2", owner="zhao")
    assert busy.value.code == "seat-busy-login"
    assert queue.seat("s2")["state"] == "on_call"


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    return make_app(redis_server, redis, tmp_path)


def _console_headers(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"X-CSRFToken": csrf_of(client.get("/console/").get_data(as_text=True))}


def _seat_login(client, seat: str, skills: str = "mandarin", headers=None):  # type: ignore[no-untyped-def]
    """The console's 签入 form, as the browser posts it."""
    return client.post(
        "/console/seat/login",
        data={"seat": seat, "skills": skills},
        headers=headers or _console_headers(client),
    )


def test_an_operator_signed_in_afresh_mid_call_gets_the_call_back(app) -> None:  # type: ignore[no-untyped-def]
    from cases.users import add_user

    hotline = app.extensions["hotline"]
    with hotline.handler.directory.sessions() as db:
        add_user(db, "zhao", "operator", PASSWORD, display_name="赵敏")
        db.commit()
    first = app.test_client()
    sign_in(first, "wang")
    r = _seat_login(first, "1007")  # not her usual 1001
    assert r.status_code == 204
    hotline.handler.start("c-live", "13800000009", "12345", "asterisk", 0.0)
    hotline.handler.seat_answered("c-live", "1007", 1.0)
    before, call_before = kept(hotline.queue, "1007"), hotline.queue.call("c-live")
    assert before["state"] == "on_call"

    # A new browser (or an expired session): signing in and logging in to 1007 again,
    # the seat she holds, which the console offers (not her usual 1001).
    second = app.test_client()
    sign_in(second, "wang")
    headers = _console_headers(second)
    login_box = second.get("/console/").get_data(as_text=True)
    assert 'id="seat-login"' in login_box and 'name="seat" value="1007"' in login_box
    r = _seat_login(second, "1007", "english", headers)
    assert r.status_code == 204, r.get_data(as_text=True)
    page = second.get("/console/").get_data(as_text=True)
    assert 'id="seat-login"' not in page and 'id="pop"' in page
    assert "/console/calls/c-live/" in page and 'id="no-call"' not in page  # the pop is back
    assert kept(hotline.queue, "1007") == before
    assert hotline.queue.call("c-live") == call_before

    # Another operator is still refused, in words about logging in.
    other = app.test_client()
    sign_in(other, "zhao")
    r = _seat_login(other, "1007")
    assert r.status_code == 409
    assert "正由 王芳 使用" in r.get_data(as_text=True)  # her name, never her login
    assert kept(hotline.queue, "1007") == before


def test_a_busy_seat_nobody_owns_is_refused_in_words_about_logging_in(app) -> None:  # type: ignore[no-untyped-def]
    queue = app.extensions["hotline"].queue
    queue.seat_login("1001")
    queue.enqueue("c1")
    queue.answer("c1", "1001")
    client = app.test_client()
    sign_in(client, "wang")
    r = _seat_login(client, "1001", "mandarin")
    text = r.get_data(as_text=True)
    assert r.status_code == 409 and "通话结束后才能签入" in text and "签出" not in text


def test_the_sign_in_page_says_a_lost_session_expired(app, redis) -> None:  # type: ignore[no-untyped-def]
    from web.auth.sessions import PREFIX

    client = app.test_client()
    sign_in(client, "wang")
    with client.session_transaction() as cookie:
        sid = cookie["sid"]
    redis.delete(f"{PREFIX}:{hashlib.sha256(sid.encode()).hexdigest()}")  # long gone
    r = client.get("/console/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    page = client.get("/login")
    notice = '<p class="notice" role="status" id="session-ended">登录已超时，请重新登录</p>'
    assert notice in page.text
    client.post("/language", data={"lang": "en", "csrf_token": csrf_of(page.text)})
    assert "Your sign-in has expired; please sign in again" in client.get("/login").text
