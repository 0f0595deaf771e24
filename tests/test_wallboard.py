"""The wallboard's drawing (web/console/board.py) against a real redis-server: one
snapshot of the queue read server-side, and one drawing a second shared by every web
process, so a thousand seats on twenty wallboards cost the web one render a second."""

from __future__ import annotations

import re

import pytest

from hotline.webapp import create_app
from tests.test_console import make_app, sign_in


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    return make_app(redis_server, redis, tmp_path)


def drawn(html: str) -> str:
    match = re.search(r'data-drawn="([^"]+)"', html)
    assert match, "the board fragment says when it was drawn"
    return match.group(1)


def newest_event(queue) -> str:  # type: ignore[no-untyped-def]
    entry = queue.redis.xrevrange(queue.keys.events, count=1)[0][0]
    return entry.decode() if isinstance(entry, bytes) else str(entry)


def test_two_web_processes_serve_one_drawing_and_a_newer_event_gets_a_new_one(app, redis) -> None:  # type: ignore[no-untyped-def]
    queue = app.extensions["hotline"].queue
    queue.seat_login("1001")
    # A second web process: its own app, caches and threads, the same Redis.
    other = create_app(
        {"SETTINGS": app.extensions["hotline_settings"], "REDIS": redis, "TESTING": True}
    )
    first, second = app.test_client(), other.test_client()
    sign_in(first, "li")
    sign_in(second, "li")

    seen = newest_event(queue)
    a = first.get("/console/wallboard/board", query_string={"seen": seen})
    b = second.get("/console/wallboard/board", query_string={"seen": seen})
    assert a.status_code == b.status_code == 200
    assert drawn(a.text) == drawn(b.text) and a.text == b.text  # drawn once, by one
    assert 'data-seat="1001"' in b.text

    queue.seat_login("1002")  # a queue event newer than that drawing
    c = second.get("/console/wallboard/board", query_string={"seen": newest_event(queue)})
    assert drawn(c.text) != drawn(a.text)
    assert 'data-seat="1002"' in c.text
    d = first.get("/console/wallboard/board", query_string={"seen": newest_event(queue)})
    assert drawn(d.text) == drawn(c.text)


def test_the_board_counts_seats_by_state_and_matches_the_queue(app) -> None:  # type: ignore[no-untyped-def]
    from web.console.routes import board_view

    queue = app.extensions["hotline"].queue
    for seat in ("1001", "1002", "1003", "1004"):
        queue.seat_login(seat)
    queue.seat_state("1004", "paused", "meeting")
    queue.enqueue("call-talk", caller="+8613800138501")  # offered to a free seat
    talking = queue.call("call-talk")["seat"]
    queue.answer("call-talk", talking)
    client = app.test_client()
    sign_in(client, "li")
    html = client.get("/console/wallboard/board").text

    with app.test_request_context("/console/wallboard"):
        board = board_view()
    status = queue.status()
    fields = ("state", "reason", "call", "pause_next")
    assert [(s["id"], *(s.get(f, "") for f in fields)) for s in board["seats"]] == [
        (s["id"], *(s.get(f, "") for f in fields)) for s in status["seats"]
    ]
    counts = dict(board["seat_counts"])
    assert counts["on_call"] == 1 and sum(counts.values()) == 4
    summary = html[html.index('id="seat-counts"') :]
    summary = summary[: summary.index("</p>")]
    assert "通话中 <b>1</b>" in summary and "小休 <b>" in summary
    row = html[html.index(f'data-seat="{talking}"') :]
    row = row[: row.index("</tr>")]
    assert "138****8501" in row and "+86138" not in html  # masked, once, for everyone
