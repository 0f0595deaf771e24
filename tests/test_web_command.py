"""`hotline web` as it runs in production (gunicorn): its access and error logs mask
phone numbers like every other log line, and each instance keeps its own control
socket under its var dir, so two instances on one machine leave each other alone."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from redis import Redis

from hotline.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def hotline_web(
    redis_server: RedisServer,
    var_dir: Path,
    home: Path,
    args: tuple[str, ...] = ("--threads", "4"),
    env_extra: dict[str, str] | None = None,
) -> Iterator[str]:
    """A running `hotline web` (one worker, ``args`` added); yields its base URL. Its
    output goes to var_dir/web.log."""
    var_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(home),  # where gunicorn's per-user default control socket would go
        "HOTLINE_VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'hotline.db'}",
        "REDIS_URL": redis_server.url,
        "HOTLINE_SECRET_KEY": "web-command-test",
        "HOTLINE_WEB_PORT": str(port),
        "PYTHONPATH": str(ROOT),
        **(env_extra or {}),
    }
    env.pop("XDG_RUNTIME_DIR", None)
    with open(var_dir / "web.log", "ab") as log:
        web = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "web", "--workers", "1", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                assert web.poll() is None, (var_dir / "web.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "hotline web did not come up"
                time.sleep(0.2)
        yield url
    finally:
        web.terminate()
        web.wait(timeout=30)


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.slow
def test_gunicorn_logs_mask_phone_numbers(
    redis_server: RedisServer,
    redis: Redis,  # flushed afterwards: the app counts requests there
    tmp_path: Path,
) -> None:
    var = tmp_path / "var"
    with hotline_web(redis_server, var, tmp_path) as url:
        get(url + "/lookup?phone=13900139000&case=20261201-0001")
        get(url + "/no-such-page/139-0013-9000?alt=%2B8613900139000")
    # Lines are flushed by the time the master has stopped.
    text = (var / "web.log").read_text()
    assert "GET /lookup?phone=139****9000&case=20261201-0001 HTTP/1.1" in text, text
    assert "GET /no-such-page/139-****-9000?alt=%2B861******9000 HTTP/1.1" in text, text
    assert "Listening at: http://127.0.0.1:" in text  # gunicorn's error log, ports intact
    for full in ("13900139000", "0013-9000", "8613900139000"):
        assert full not in text


# 139 4762 5830 and 0898 6173 8888 as an operator types them into a search box, as a
# browser sends that, and inside other text: each request line keeps the number's
# middle (4762, 6173) hidden however often the line is decoded.
FULL_WIDTH = "".join(f"%EF%BC%{0x90 + int(d):02X}" for d in "13947625830")
TYPED_IN_URLS = [
    "q=139+4762+5830",
    "q=139%204762%205830",
    "q=%2B86+139+4762+5830",
    "q=+86+139+4762+5830",
    "q=0898+6173+8888",
    "q=139.4762.5830",
    "q=tel13947625830",
    "q=%E6%9D%A5%E7%94%B513947625830",  # 来电13947625830
    f"q={FULL_WIDTH}",
    "next=/x%3Fq%3D13947625830",
    "next=/x%253Fq%253D139%252B4762%252B5830",
]


def decoded(text: str) -> str:
    """As far as percent-escapes and '+' go, in ASCII digits."""
    for _ in range(4):
        text = unquote_plus(text)
    return text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))


@pytest.mark.slow
def test_numbers_typed_into_urls_are_masked_in_the_access_log(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    with hotline_web(redis_server, var, tmp_path) as url:
        for n, query in enumerate(TYPED_IN_URLS):
            # Signed out: a 302 to /login?next=<this URL, encoded once more>, followed.
            get(f"{url}/console/cases?n={n}&{query}")
    lines = (var / "web.log").read_text().splitlines()
    for n, query in enumerate(TYPED_IN_URLS):
        mine = [line for line in lines if f"cases?n={n}&" in decoded(line)]
        assert len(mine) == 2, (query, mine)  # the page and the sign-in it sent to
        for line in mine:
            digits = "".join(c for c in decoded(line) if c.isdigit())
            assert "4762" not in digits and "6173" not in digits, (query, line)
            assert "5830" in digits or "8888" in digits, (query, line)  # still recognisable
    text = "\n".join(lines)
    assert "Listening at: http://127.0.0.1:" in text and '"GET /healthz HTTP/1.1" 200' in text


@pytest.mark.slow
def test_two_instances_keep_their_own_control_sockets(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    with hotline_web(redis_server, first, tmp_path):
        with hotline_web(redis_server, second, tmp_path):
            assert (first / "gunicorn.ctl").is_socket()
            assert (second / "gunicorn.ctl").is_socket()
        # The second one stopped and took only its own socket with it.
        assert (first / "gunicorn.ctl").is_socket()
        assert not (second / "gunicorn.ctl").exists()
    assert not (first / "gunicorn.ctl").exists()
    assert not (tmp_path / ".gunicorn").exists()  # nothing in the per-user default place


@pytest.mark.slow
def test_web_threads_are_bounded_and_connections_outlast_the_proxys_keep_alive(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    """Behind nginx (which closes idle upstream connections after 60 s) gunicorn must keep
    them longer, or nginx sends a webhook down a connection gunicorn is closing (a 502
    Twilio plays as an application error); and a process has a bounded pool of threads,
    not one per connection nginx might open."""
    var = tmp_path / "var"
    debug = {"GUNICORN_CMD_ARGS": "--log-level debug"}  # gunicorn lists its settings
    with hotline_web(redis_server, var, tmp_path, args=(), env_extra=debug) as url:
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
        try:
            conn.request("GET", "/healthz")
            first = conn.getresponse()
            first.read()
            assert first.status == 200 and first.getheader("Connection") != "close"
            time.sleep(3)  # past gunicorn's own default keep-alive (2 s)
            conn.request("GET", "/healthz")  # on the same connection, still open
            again = conn.getresponse()
            again.read()
            assert again.status == 200
        finally:
            conn.close()
    # gunicorn's "Current configuration:" lines, "  name: value" each.
    settings = {
        name: value
        for name, _, value in (
            line[2:].partition(": ")
            for line in (var / "web.log").read_text().splitlines()
            if line.startswith("  ")
        )
    }
    assert settings.get("keepalive") == "75", settings
    assert settings.get("threads") == "32", settings


@pytest.mark.slow
def test_a_webhook_process_answers_webhooks_and_refuses_pages(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    """`hotline web --only twilio`: the proxy's webhook processes. A page sent there by
    mistake is a plain 404, not a page quietly sharing the webhooks' processes."""
    var = tmp_path / "var"
    with hotline_web(redis_server, var, tmp_path, args=("--only", "twilio")) as url:
        assert get(url + "/healthz") == 200
        assert get(url + "/metrics") == 200  # loopback: Prometheus scrapes each process
        # An unsigned webhook reaches Twilio's blueprint, which refuses the signature.
        request = urllib.request.Request(url + "/twilio/voice", data=b"CallSid=CA1", method="POST")
        assert get_request(request) == 403
        for page in ("/", "/login", "/console/", "/console/seat", "/api/queue", "/lookup"):
            assert get(url + page) == 404, page
    with hotline_web(redis_server, tmp_path / "all", tmp_path) as url:
        assert get(url + "/login") == 200  # without --only: everything


def get_request(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
