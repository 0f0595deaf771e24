"""The live screens' streams from the push process (push/, ``hotline push`` under
uvicorn), with the real web command (gunicorn) and a real redis-server: people sign in
over HTTP on the web, their streams open on the push process with the same cookie, and
the fragments they signal are fetched from the web.

No open stream holds a web thread: 80 wallboards open on the push process leave the
web's few threads to the health check and Twilio's webhooks (issue 18's finding)."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from redis import Redis

from hotline.config import load_settings
from hotline.redis_server import free_port
from hotline.runtime import call_handler, call_queue
from tests.push_rig import start_push, stop, with_push_port
from tests.real_rig import wait_port
from tests.twilio_peer import AUTH_TOKEN, signed_incoming_call

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
WEB_THREADS = 8  # fewer than the streams opened below: a stream on the web would starve it
WALLBOARDS = 80
# Plain http, as scripts/run serves it: an https address would make the cookies Secure.
PUBLIC_BASE = "http://hotline.test"


@pytest.fixture
def live(redis_server, redis: Redis, tmp_path: Path) -> Iterator[dict[str, object]]:  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user

    redis.flushdb()
    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as db:
        seed(db)
        add_user(db, "wang", "operator", PASSWORD, display_name="王芳", seat="1001")
        add_user(db, "li", "supervisor", PASSWORD, display_name="李班长")
        add_user(db, "supply", "department", PASSWORD, department_code="water-supply")
        db.commit()
    port = free_port()
    env = with_push_port(
        {
            **os.environ,
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_server.url,
            "HOTLINE_SECRET_KEY": "push-test",
            "HOTLINE_WEB_PORT": str(port),
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PUBLIC_BASE_URL": PUBLIC_BASE,
            "PYTHONPATH": str(ROOT),
        }
    )
    log = open(tmp_path / "web.log", "ab")  # noqa: SIM115
    push = start_push(env, log)
    web = subprocess.Popen(
        [sys.executable, "-m", "hotline.cli", "web", "--workers", "1"]
        + ["--threads", str(WEB_THREADS)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port)
        settings = load_settings(env)
        yield {
            "web": f"http://127.0.0.1:{port}",
            "push": f"http://127.0.0.1:{env['HOTLINE_PUSH_PORT']}",
            "handler": call_handler(settings, call_queue(settings)),
            "db_url": db_url,
        }
    finally:
        stop(web)
        stop(push)
        log.close()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def signed_in(live, username: str) -> requests.Session:  # type: ignore[no-untyped-def]
    browser = requests.Session()
    token = csrf_of(browser.get(live["web"] + "/login", timeout=10).text)
    r = browser.post(
        live["web"] + "/login",
        data={"csrf_token": token, "username": username, "password": PASSWORD},
        timeout=10,
    )
    assert r.ok and "/login" not in r.url
    return browser


class Stream:
    """An open event stream on a plain socket, read line by line in a thread (a socket
    can be shut down under its reader at once; a library's stream waits for a line)."""

    def __init__(
        self, browser: requests.Session, url: str, headers: dict[str, str] | None = None
    ) -> None:
        parts = urlsplit(url)
        cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
        lines = [
            f"GET {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Accept: text/event-stream",
            *(f"{k}: {v}" for k, v in {"Cookie": cookie, **(headers or {})}.items()),
        ]
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.file = self.sock.makefile("rb")
        self.status = int(self.file.readline().split()[1])
        self.headers: dict[str, str] = {}
        while (line := self.file.readline().decode().strip()) != "":
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.lines: queue.Queue[str | None] = queue.Queue()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        chunked = self.headers.get("transfer-encoding") == "chunked"
        try:
            while True:
                if chunked:
                    size = int(self.file.readline().strip() or b"0", 16)
                    if size == 0:
                        break
                    body = self.file.read(size)
                    self.file.readline()
                    for line in body.decode().split("\n"):
                        self.lines.put(line)
                else:
                    line = self.file.readline()
                    if not line:
                        break
                    self.lines.put(line.decode().rstrip("\n"))
        except (OSError, ValueError):  # shut down under the reader
            pass
        self.lines.put(None)

    def event(self, name: str, timeout: float = 25) -> str | None:
        """The data of the next ``name`` event, or None when the stream ends first."""
        deadline = time.monotonic() + timeout
        current = ""
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                return None
            if line.startswith("event: "):
                current = line[7:]
            elif line.startswith("data:") and current == name:
                return line[5:].removeprefix(" ")

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.file.close()


def console_with_seat(live) -> requests.Session:  # type: ignore[no-untyped-def]
    wang = signed_in(live, "wang")
    token = csrf_of(wang.get(live["web"] + "/console/", timeout=10).text)
    r = wang.post(
        live["web"] + "/console/seat/login",
        data={"seat": "1001", "skills": "mandarin"},
        headers={"X-CSRFToken": token},
        timeout=10,
    )
    assert r.status_code == 204
    return wang


def test_a_call_offered_to_the_seat_pops_through_the_push_process(live) -> None:  # type: ignore[no-untyped-def]
    wang = console_with_seat(live)
    page = wang.get(live["web"] + "/console/", timeout=10).text
    assert f'sse-connect="{live["push"]}/console/events"' in page
    csp = wang.get(live["web"] + "/console/", timeout=10).headers["Content-Security-Policy"]
    assert f"connect-src 'self' {live['push']}" in csp
    stream = Stream(wang, live["push"] + "/console/events", headers={"Origin": live["web"]})
    try:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["access-control-allow-origin"] == live["web"]
        assert stream.headers["access-control-allow-credentials"] == "true"
        assert stream.headers["cache-control"] == "no-store"
        assert stream.headers["x-content-type-options"] == "nosniff"
        assert stream.event("seat") is not None
        live["handler"].start("c-pop", "+8613800138000", "12345", "asterisk", time.time())
        assert stream.event("pop") == "c-pop"
        pop = wang.get(live["web"] + "/console/calls/c-pop/pop", timeout=10)
        assert pop.status_code == 200 and "138 0013 8000" in pop.text
        seat = wang.get(live["web"] + "/console/seat", timeout=10)
        assert seat.status_code == 200 and "<html" not in seat.text
    finally:
        stream.close()


def test_a_copied_cookie_after_sign_out_gets_no_stream_and_the_open_one_ends(live) -> None:  # type: ignore[no-untyped-def]
    wang = console_with_seat(live)
    thief = requests.Session()
    thief.cookies.update(wang.cookies)
    stream = Stream(wang, live["push"] + "/console/events")
    assert stream.event("seat") is not None
    token = csrf_of(wang.get(live["web"] + "/console/", timeout=10).text)
    assert wang.post(live["web"] + "/logout", data={"csrf_token": token}, timeout=10).ok
    # The open stream is told at once (signing out frees the seat), and ends.
    assert stream.event("gone") == ""
    assert stream.event("seat", timeout=5) is None
    stream.close()
    refused = thief.get(live["push"] + "/console/events", stream=True, timeout=10)
    assert refused.status_code == 401
    refused = thief.get(live["push"] + "/console/wallboard/events", stream=True, timeout=10)
    assert refused.status_code == 401
    # A forged cookie is nobody either.
    forged = requests.get(
        live["push"] + "/console/events", cookies={"session": "eyJzaWQiOiJ4In0.x.y"}, timeout=10
    )
    assert forged.status_code == 401


def test_each_role_gets_only_its_own_streams(live) -> None:  # type: ignore[no-untyped-def]
    wang, li, supply = (signed_in(live, u) for u in ("wang", "li", "supply"))
    assert wang.get(live["push"] + "/console/wallboard/events", timeout=10).status_code == 403
    assert wang.get(live["push"] + "/portal/events", timeout=10).status_code == 403
    assert li.get(live["push"] + "/portal/events", timeout=10).status_code == 403
    assert supply.get(live["push"] + "/console/events", timeout=10).status_code == 403
    # Signed in but no seat logged in: nothing to stream.
    assert wang.get(live["push"] + "/console/events", timeout=10).status_code == 204


def test_a_wallboard_is_told_to_redraw_and_fetches_the_board_from_the_web(live) -> None:  # type: ignore[no-untyped-def]
    console_with_seat(live)
    li = signed_in(live, "li")
    stream = Stream(li, live["push"] + "/console/wallboard/events")
    try:
        first = stream.event("board")
        assert first is not None and re.fullmatch(r"\d+-\d+", first)
        live["handler"].start("c-board", "+8613800138001", "12345", "asterisk", time.time())
        later = stream.event("board")
        while later == first:
            later = stream.event("board")
        assert later is not None
        assert tuple(map(int, later.split("-"))) > tuple(map(int, first.split("-")))
        board = li.get(live["web"] + "/console/wallboard/board", params={"seen": later})
        assert board.status_code == 200 and "1001" in board.text
        assert "data-hourly-now=" in board.text and "<html" not in board.text
    finally:
        stream.close()


def test_a_department_inbox_hears_of_a_case_dispatched_to_it(live) -> None:  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory
    from cases.service import CallInfo, CaseDraft, create_case_for_call

    supply = signed_in(live, "supply")
    page = supply.get(live["web"] + "/portal/", timeout=10).text
    url = re.search(r'sse-connect="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert url.startswith(live["push"] + "/portal/events?since=")
    stream = Stream(supply, url.replace("&amp;", "&"))
    try:
        with session_factory(engine_for(live["db_url"]))() as db:
            case = create_case_for_call(
                db,
                CallInfo("c-inbox", "+8613800138002", "asterisk", "1001"),
                CaseDraft(description="停水两天", category_code="water-outage", dispatch=True),
            )
            db.commit()
            number = case.number
        version = stream.event("inbox")
        assert version
        rows = supply.get(live["web"] + "/portal/rows", timeout=10).text
        assert number in rows
    finally:
        stream.close()


def signed_voice_webhook(web: str, call: int) -> int:
    body, headers = signed_incoming_call(call, PUBLIC_BASE)
    return requests.post(web + "/twilio/voice", data=body, headers=headers, timeout=10).status_code


def test_eighty_open_wallboards_leave_the_web_to_health_checks_and_webhooks(live) -> None:  # type: ignore[no-untyped-def]
    li = signed_in(live, "li")
    streams = [Stream(li, live["push"] + "/console/wallboard/events") for _ in range(WALLBOARDS)]
    try:
        assert all(s.status == 200 for s in streams)
        assert all(s.event("board") is not None for s in streams)
        health = requests.get(live["push"] + "/healthz", timeout=10).json()
        assert health["wallboards"] == WALLBOARDS
        # The web has WEB_THREADS threads, fewer than the open wallboards: none is held.
        for n in range(WEB_THREADS * 2):
            assert requests.get(live["web"] + "/healthz", timeout=10).status_code == 200
            assert signed_voice_webhook(live["web"], n) == 200
            assert li.get(live["web"] + "/console/wallboard/board", timeout=10).status_code == 200
    finally:
        for s in streams:
            s.close()
