"""`hotline run`: the whole service comes up, serves, and stops completely, whether
stopped with Ctrl-C or killed outright."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hotline.redis_server import free_port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def start_service(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    web_port, agi_port = free_port(), free_port()
    env = {
        **os.environ,
        "HOTLINE_VAR_DIR": str(tmp_path),
        "HOTLINE_WEB_PORT": str(web_port),
        "HOTLINE_AGI_PORT": str(agi_port),
        "HOTLINE_SECRET_KEY": "test",
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    service = subprocess.Popen(
        [str(Path(sys.executable).with_name("hotline")), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=1) as r:
                assert r.status == 200
            socket.create_connection(("127.0.0.1", agi_port), timeout=1).close()
            return service, web_port, agi_port
        except OSError:
            assert service.poll() is None, "hotline run exited early"
            assert time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.2)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "kill-9"])
def test_run_serves_and_leaves_nothing_behind(tmp_path: Path, how: str) -> None:
    service, web_port, agi_port = start_service(tmp_path)
    children = children_of(service.pid)
    assert len(children) >= 5  # redis, worker, reaper, web, agi
    assert (tmp_path / "redis" / "redis.sock").exists() and (tmp_path / "hotline.db").exists()
    service.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
    code = service.wait(timeout=60)
    assert code == (0 if how == "ctrl-c" else -signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in children):
        assert time.monotonic() < deadline, [pid for pid in children if alive(pid)]
        time.sleep(0.2)
    # gunicorn's workers (grandchildren) share the listening socket and leave a moment
    # after their master, when they see their parent gone.
    while not (port_free(web_port) and port_free(agi_port)):
        assert time.monotonic() < deadline, "a port is still held"
        time.sleep(0.2)


SUPERVISE = """
import sys
from hotline.config import load_settings
from hotline.logs import setup_logging
from hotline.supervisor import Child, run
setup_logging("INFO")
children = [Child("crashes", ["sh", "-c", "exit 3"]), Child("steady", ["sleep", "120"])]
sys.exit(run(load_settings(), children))
"""


def test_a_crash_looping_service_does_not_stop_the_others(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "HOTLINE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}",
    }
    log = tmp_path / "supervisor.log"
    with open(log, "wb") as out:
        sup = subprocess.Popen(
            [sys.executable, "-c", SUPERVISE], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while "restarting in 4s" not in log.read_text() and time.monotonic() < deadline:
            assert sup.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
        text = log.read_text()
        assert "restarting in 4s" in text  # backing off, not giving up
        assert sup.poll() is None
        steady = [
            p for p in children_of(sup.pid) if b"sleep" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert len(steady) == 1 and alive(steady[0])
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=30)


def test_sms_alone_starts_the_dialer_whose_loop_sends_the_texts(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A centre with SMS but no outbound voice still texts case numbers and replies:
    the SMS outbox runs in the dialer's loop."""
    from hotline.config import load_settings
    from hotline.supervisor import service_commands

    settings = load_settings({})
    monkeypatch.delenv("HOTLINE_SMS_PROVIDER", raising=False)
    assert "dialer" not in {c.name for c in service_commands(settings)}
    monkeypatch.setenv("HOTLINE_SMS_PROVIDER", "twilio")
    assert "dialer" in {c.name for c in service_commands(settings)}
