"""A private redis-server process: the embedded default of the run command, and the
server the tests and benchmarks start on a random loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from redis import Redis


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if the process that started it dies, even by
    kill -9, so a crashed supervisor leaves no orphan holding ports or Redis' files."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """Starts redis-server bound to loopback with its data in ``directory``.

    ``durable`` turns on the append-only file with fsync every second: after a
    kill -9 at most the last second is lost (Debian's default config loses all).
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        unix_socket: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.unix_socket = unix_socket
        self.port = 0 if unix_socket else (port or free_port())
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        if self.unix_socket:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/bootstrap.sh")
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
            "--appendonly",
            "yes" if self.durable else "no",
            "--appendfsync",
            "everysec",
        ]
        if self.unix_socket:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        # Own session: a Ctrl-C meant for the supervisor must not kill Redis before the
        # services that still write to it.
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        client = Redis.from_url(self.url)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()
                    return self
                except Exception:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        log = self.directory / "redis.log"
                        tail = log.read_text()[-2000:] if log.exists() else ""
                        raise RuntimeError(f"redis-server did not start:\n{tail}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
