"""The front proxy: Debian's nginx, run from docker/nginx's template (rendered by the
image's own render-nginx.sh), in front of the real `hotline web` (gunicorn).

Ninety anonymous connections that send half a request header and hold stop gunicorn,
whose threads wait for the rest; behind nginx the health check and a validly signed
Twilio webhook still answer, because nginx passes a request on only once it is whole."""

from __future__ import annotations

import getpass
import http.client
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis import Redis

from hotline.redis_server import free_port
from queueing import CallQueue
from queueing.settings import QueueSettings
from tests.conftest import wait_until
from tests.real_rig import wait_port
from tests.twilio_peer import AUTH_TOKEN, PUBLIC_BASE, sid, signed_incoming_call

ROOT = Path(__file__).resolve().parents[1]
NGINX_DIR = ROOT / "docker" / "nginx"
NGINX = Path("/usr/sbin/nginx")
SLOW_CLIENTS = 90
# Fewer threads than slow clients: gunicorn alone is then stopped for certain.
WEB_THREADS = 32

pytestmark = pytest.mark.skipif(
    not NGINX.exists(), reason="Debian's nginx is not installed (scripts/bootstrap.sh --test)"
)


@contextmanager
def hotline_web(redis_url: str, db_url: str, var_dir: Path, *args: str) -> Iterator[int]:
    """`hotline web` as compose runs it behind nginx (one worker, ``args`` added), with
    its own var dir (its control socket); yields its port. Its output: var_dir/web.log."""
    var_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "HOTLINE_VAR_DIR": str(var_dir),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "HOTLINE_SECRET_KEY": "front-proxy-test",
        "HOTLINE_WEB_PORT": str(port),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "HOTLINE_TRUSTED_PROXY_HOPS": "1",  # as compose runs it, behind nginx
        "PYTHONPATH": str(ROOT),
    }
    log = open(var_dir / "web.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "hotline.cli", "web", "--workers", "1", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def web(redis_server, redis: Redis, tmp_path: Path) -> Iterator[dict[str, object]]:  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed

    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as db:
        seed(db)
        db.commit()
    with hotline_web(redis_server.url, db_url, tmp_path, "--threads", str(WEB_THREADS)) as port:
        yield {"port": port, "redis": redis, "redis_url": redis_server.url, "db_url": db_url}


@pytest.fixture
def nginx(web: dict[str, object], tmp_path: Path) -> Iterator[int]:
    with front_proxy(f"127.0.0.1:{web['port']}", tmp_path / "nginx") as port:
        yield port


@contextmanager
def front_proxy(web_servers: str, state: Path, hooks_servers: str = "") -> Iterator[int]:
    """nginx from the image's template in front of ``web_servers`` (host:port,...), and
    of ``hooks_servers`` for Twilio's webhooks (the web servers when not given)."""
    state.mkdir()
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "NGINX_LISTEN": f"127.0.0.1:{port}",
        "NGINX_WEB_SERVERS": web_servers,
        **({"NGINX_HOOKS_SERVERS": hooks_servers} if hooks_servers else {}),
        "NGINX_STATE_DIR": str(state),
        "NGINX_ACCESS_LOG": str(state / "access.log"),
        "NGINX_ERROR_LOG": str(state / "error.log"),
        # As root the workers would drop to nobody, who cannot enter pytest's folders.
        "NGINX_USER": getpass.getuser(),
    }
    conf = state / "nginx.conf"
    subprocess.run(
        [
            "sh",
            str(NGINX_DIR / "render-nginx.sh"),
            str(NGINX_DIR / "nginx.conf.template"),
            str(conf),
        ],
        env=env,
        check=True,
    )
    argv = [str(NGINX), "-e", str(state / "error.log"), "-p", str(state), "-c", str(conf)]
    checked = subprocess.run([*argv, "-t", "-q"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([*argv, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        process.terminate()  # SIGTERM: fast shutdown of master and workers
        process.wait(timeout=20)


@contextmanager
def slow_clients(port: int, count: int = SLOW_CLIENTS) -> Iterator[list[socket.socket]]:
    """Anonymous connections that each send half a request header and hold."""
    held = []
    try:
        for n in range(count):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(f"GET /healthz?slow={n} HTTP/1.1\r\nHost: hotline\r\nX-Pad: ".encode())
            held.append(client)
        yield held
    finally:
        for client in held:
            client.close()


def get(port: int, path: str, timeout: float = 10, **headers: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def signed_voice_webhook(port: int, call: int) -> tuple[int, bytes]:
    body, headers = signed_incoming_call(call)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/twilio/voice", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_slow_headers_do_not_stop_the_web_behind_nginx(nginx: int, web) -> None:  # type: ignore[no-untyped-def]
    queue = CallQueue(web["redis"], QueueSettings())
    queue.seat_login("1001")  # someone is on duty, busy: the caller waits in line
    queue.seat_state("1001", "paused", "busy")
    with slow_clients(nginx) as held:
        assert len(held) == SLOW_CLIENTS
        status, body = get(nginx, "/healthz")
        assert (status, b'"ok"' in body) == (200, True)
        status, twiml = signed_voice_webhook(nginx, 1)
        assert status == 200 and b"<Response>" in twiml, twiml
        assert queue.call(sid(1))["state"] == "waiting"
        # Every held connection is still open at nginx, none reached gunicorn.
        for client in held:
            client.setblocking(False)
            with pytest.raises(BlockingIOError):
                client.recv(1)


def test_the_same_slow_headers_stop_gunicorn_alone(web) -> None:  # type: ignore[no-untyped-def]
    """Without the proxy the attack works (so the test above can fail): gunicorn's
    threads each wait for the rest of a header that never comes."""
    port = int(web["port"])
    with slow_clients(port):
        time.sleep(1)  # let gunicorn hand the held connections to its threads
        with pytest.raises((TimeoutError, socket.timeout)):
            get(port, "/healthz", timeout=5)
    assert get(port, "/healthz")[0] == 200  # back once they let go


def test_the_app_sees_the_client_address_nginx_forwards(nginx: int, web) -> None:  # type: ignore[no-untyped-def]
    """nginx appends the peer to X-Forwarded-For; with one trusted hop the app takes that
    (not nginx's own address, not what the client claimed) as the client's address. The
    API's per-address rate limit counts under it."""
    redis: Redis = web["redis"]
    client_address = "127.0.0.5"  # a loopback address of its own, not nginx's 127.0.0.1
    conn = http.client.HTTPConnection(
        "127.0.0.1", nginx, timeout=10, source_address=(client_address, 0)
    )
    try:
        conn.request("GET", "/api/queue", headers={"X-Forwarded-For": "203.0.113.9"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 401
    keys = [k.decode() for k in redis.scan_iter("LIMITS:*hotline-limits*")]
    assert any(client_address in k for k in keys), keys
    assert not any("203.0.113.9" in k or "127.0.0.1" in k for k in keys), keys


def test_streams_pass_unbuffered_and_server_is_anonymous(nginx: int) -> None:
    conf = (NGINX_DIR / "nginx.conf.template").read_text()
    for path in ("/console/events", "/console/wallboard/events", "/portal/events"):
        block = conf.split(f"location = {path} {{", 1)[1].split("}", 1)[0]
        assert "proxy_pass http://push;" in block and "proxy_buffering off;" in block, path
    conn = http.client.HTTPConnection("127.0.0.1", nginx, timeout=10)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.getheader("Server") == "nginx"  # no version (server_tokens off)
    too_big = "x" * (65 * 1024)
    conn = http.client.HTTPConnection("127.0.0.1", nginx, timeout=10)
    try:
        conn.request("POST", "/twilio/voice", body=too_big, headers={"Content-Type": "text/plain"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 413  # refused by nginx before the app reads a byte


def test_metrics_are_not_served_through_the_front_proxy(nginx: int, web) -> None:  # type: ignore[no-untyped-def]
    """/metrics answers loopback callers; through nginx (on loopback itself) it must not
    reach the app at all."""
    conn = http.client.HTTPConnection("127.0.0.1", nginx, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 404 and b"hotline_" not in body


class DyingWeb:
    """A web process that dies with every request in flight: it reads the request, lets
    the real web act on it (the call is queued, a seat offered), and is gone before it
    answers, resetting the connection as a killed gunicorn worker does."""

    def __init__(self, web_port: int) -> None:
        self.web_port = web_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[str] = []  # the bodies it took and never answered
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._die_in_flight, args=(conn,), daemon=True).start()

    def _die_in_flight(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return  # an idle keep-alive connection that nginx closed
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines if ": " in line)
            length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            web = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=10)
            try:
                kept = {k: v for k, v in headers.items() if k.lower() != "connection"}
                web.request(method, path, body=body, headers=kept)
                web.getresponse().read()  # done: the web acted on it
            finally:
                web.close()
            self.seen.append(body.decode())
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("seat", ["busy", "free"])
def test_a_webhook_cut_short_by_a_dying_web_is_answered_by_the_other(  # type: ignore[no-untyped-def]
    web, tmp_path: Path, seat: str
) -> None:
    """Two web processes behind nginx, one of which dies with the new call's webhook in
    flight after acting on it. nginx passes the webhook on to the other, which answers
    with TwiML (not a 502 that Twilio plays as an application error), and the caller is
    queued once: holding for a person, or dialled to the seat the first one offered."""
    redis: Redis = web["redis"]
    queue = CallQueue(redis, QueueSettings())
    dying = DyingWeb(int(web["port"]))
    if seat == "busy":
        queue.seat_login("1001")
        queue.seat_state("1001", "paused", "busy")
    try:
        servers = f"127.0.0.1:{dying.port},127.0.0.1:{web['port']}"
        with front_proxy(f"127.0.0.1:{web['port']}", tmp_path / "nginx", servers) as port:
            for n in range(1, 11):  # until nginx has picked the dying one first
                if seat == "free":
                    queue.seat_login(f"{1000 + n}")  # a free seat for each caller
                status, twiml = signed_voice_webhook(port, n)
                assert status == 200 and b"<Response>" in twiml, twiml
                if dying.seen:
                    break
    finally:
        dying.close()
    assert dying.seen and f"CallSid={sid(n)}" in dying.seen[0], "nginx never tried the dying web"
    kinds = [
        f[b"type"] for _, f in redis.xrange(queue.keys.events) if f.get(b"call") == sid(n).encode()
    ]
    assert kinds.count(b"ENTERQUEUE") == 1, kinds
    record = queue.call(sid(n))
    if seat == "busy":
        assert record["state"] == "waiting" and b"<Enqueue" in twiml, twiml
    else:
        assert kinds.count(b"OFFER") == 1, kinds
        assert (record["state"], record["seat"]) == ("offered", f"{1000 + n}")
        dialled = ET.fromstring(twiml).find("Dial/Client")
        assert dialled is not None and dialled.text == f"{1000 + n}", twiml  # dialled now
        assert queue.seat(f"{1000 + n}")["state"] != "paused"


def test_only_the_inbound_twilio_webhooks_are_passed_on_after_they_were_sent() -> None:
    """A console form or the callback bot's survey answer sent twice could act twice:
    those keep nginx's default (a request already sent is never passed on)."""
    conf = (NGINX_DIR / "nginx.conf.template").read_text()
    assert conf.count("non_idempotent") == 1
    block = conf.split("location /twilio/ {", 1)[1].split("}", 1)[0]
    assert "non_idempotent;" in block and "proxy_next_upstream_tries 2;" in block
    outbound = conf.split("location /twilio/outbound/ {", 1)[1].split("}", 1)[0]
    assert "proxy_next_upstream" not in outbound
    assert "proxy_pass http://hooks;" in block and "proxy_pass http://hooks;" in outbound


def test_webhooks_have_their_own_processes_behind_nginx(web, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """nginx sends Twilio's webhooks to the webhook processes (`hotline web --only
    twilio`) and pages to the page processes, so a page render never holds the
    interpreter a webhook needs; a page sent to the webhook process is a 404 there."""
    queue = CallQueue(web["redis"], QueueSettings())
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    hooks_dir = tmp_path / "hooks"
    with hotline_web(web["redis_url"], web["db_url"], hooks_dir, "--only", "twilio") as hooks:
        with front_proxy(
            f"127.0.0.1:{web['port']}", tmp_path / "nginx", f"127.0.0.1:{hooks}"
        ) as port:
            status, twiml = signed_voice_webhook(port, 1)
            assert status == 200 and b"<Response>" in twiml, twiml
            assert get(port, "/login")[0] == 200
            assert get(hooks, "/login")[0] == 404  # misrouted: refused, not served
    assert queue.call(sid(1))["state"] == "waiting"
    # gunicorn writes a request's access line after its answer has gone: wait for it.
    voice, login = '"POST /twilio/voice HTTP/1.1" 200', '"GET /login HTTP/1.1" 200'
    wait_until(lambda: voice in (hooks_dir / "web.log").read_text(), 30, "the webhook logged")
    wait_until(lambda: login in (tmp_path / "web.log").read_text(), 30, "the page logged")
    pages = (tmp_path / "web.log").read_text()
    webhooks = (hooks_dir / "web.log").read_text()
    assert "/twilio/voice" not in pages and login not in webhooks


@pytest.mark.parametrize(
    "path", ["/report", "/grid/patrol", "/grid/cases/HK1/photos", "/grid/cases/HK1/resolve"]
)
def test_the_photo_forms_pass_a_phone_photo_through_the_proxy(nginx: int, path: str) -> None:
    """A citizen's or a grid worker's photo (megabytes) reaches the app, which checks
    it and answers; nginx's 64 KB limit everywhere else would refuse it with a 413
    page the citizen cannot read."""
    photo = b"\xff\xd8\xff" + b"x" * (2 * 1024 * 1024)
    conn = http.client.HTTPConnection("127.0.0.1", nginx, timeout=30)
    try:
        conn.request("POST", path, body=photo, headers={"Content-Type": "image/jpeg"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status != 413
    assert response.getheader("Server") == "nginx"


def test_a_body_over_the_limit_is_refused_in_chinese_with_a_way_back(nginx: int) -> None:
    """A photo nginx refuses never reaches the app: the citizen or grid worker must
    still read why, in their language, and find the way back to the form."""
    conn = http.client.HTTPConnection("127.0.0.1", nginx, timeout=30)
    try:  # nginx answers on the Content-Length alone, before any of the body
        conn.putrequest("POST", "/report")
        conn.putheader("Content-Type", "image/jpeg")
        conn.putheader("Content-Length", str(7 * 1024 * 1024))
        conn.endheaders()
        response = conn.getresponse()
        page = response.read().decode()
    finally:
        conn.close()
    assert response.status == 413
    assert response.getheader("Content-Type", "").startswith("text/html")
    assert "文件过大" in page and "5 MB" in page and "返回" in page
