"""A Redis Sentinel deployment on loopback for tests: one primary, one replica and
three sentinels (quorum 2), from Debian's redis-server, each on a free port with its
files in a temporary folder. Failure detection is cut to one second so a failover
takes a few seconds, not the half minute of production defaults."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from redis import Redis

from hotline.redis_server import die_with_parent, free_port

MASTER_NAME = "hotline"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 2000


@dataclass
class Node:
    name: str
    port: int
    directory: Path
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def client(self, **kwargs: object) -> Redis:
        return Redis("127.0.0.1", self.port, socket_timeout=2, **kwargs)  # type: ignore[arg-type]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown, no last AOF write, sockets closed by the kernel."""
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log_tail(self) -> str:
        log = self.directory / "redis.log"
        return log.read_text()[-3000:] if log.exists() else ""


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run scripts/bootstrap.sh")
    return binary


def _data_node(name: str, root: Path, replica_of: int | None = None) -> Node:
    port = free_port()
    directory = root / name
    argv = [
        _binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
        "--daemonize", "no",
        "--save", "",
        "--appendonly", "yes",
        "--appendfsync", "everysec",
    ]  # fmt: skip
    if replica_of is not None:
        argv += ["--replicaof", "127.0.0.1", str(replica_of)]
    return Node(name, port, directory, argv)


def _sentinel_node(name: str, root: Path, primary_port: int) -> Node:
    port = free_port()
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "sentinel.conf"  # Sentinel rewrites its config: a file of its own
    config.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                f"dir {directory}",
                f"logfile {directory / 'redis.log'}",
                "daemonize no",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2",
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
                "",
            ]
        )
    )
    return Node(name, port, directory, [_binary(), str(config), "--sentinel"])


def _wait(predicate, timeout_s: float, what: str, nodes: list[Node]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - a node still starting: ask again
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n.name}\n{n.log_tail()}" for n in nodes)
            raise AssertionError(f"sentinel rig: {what} not within {timeout_s}s\n{logs}")
        time.sleep(0.05)


@dataclass
class SentinelRig:
    root: Path
    primary: Node = field(init=False)
    replica: Node = field(init=False)
    sentinels: list[Node] = field(init=False)

    def __post_init__(self) -> None:
        self.primary = _data_node("primary", self.root)
        self.replica = _data_node("replica", self.root, replica_of=self.primary.port)
        self.sentinels = [
            _sentinel_node(f"sentinel{n}", self.root, self.primary.port) for n in (1, 2, 3)
        ]

    @property
    def nodes(self) -> list[Node]:
        return [self.primary, self.replica, *self.sentinels]

    @property
    def sentinels_env(self) -> str:
        """REDIS_SENTINELS for this rig."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def start(self) -> SentinelRig:
        for node in self.nodes:
            node.start()
        replica = self.replica.client()
        _wait(
            lambda: replica.info("replication")["master_link_status"] == "up",
            20,
            "replica in sync",
            self.nodes,
        )
        # Sentinels find each other and the replica through the primary (hello messages
        # every 2 s); only then can two of them agree and one be elected to fail over.
        for sentinel in self.sentinels:
            client = sentinel.client()
            _wait(
                lambda c=client: (
                    c.sentinel_master(MASTER_NAME)["num-other-sentinels"] == 2
                    and len(c.sentinel_slaves(MASTER_NAME)) == 1
                ),
                20,
                f"{sentinel.name} sees its peers and the replica",
                self.nodes,
            )
        return self

    def primary_address(self) -> tuple[str, int]:
        """What the sentinels answer, as a client asks them."""
        return self._named_primary(self.sentinels[0])

    @staticmethod
    def _named_primary(sentinel: Node) -> tuple[str, int]:
        client = sentinel.client(decode_responses=True)
        host, port = cast(tuple[str, int], client.sentinel_get_master_addr_by_name(MASTER_NAME))
        return host, int(port)

    def kill_primary(self) -> None:
        self.primary.kill()

    def wait_for_promotion(self, timeout_s: float = 30.0) -> None:
        """Until every sentinel names the replica as primary and it takes writes."""
        replica = self.replica.client()

        def promoted() -> bool:
            named = {self._named_primary(s)[1] for s in self.sentinels}
            return named == {self.replica.port} and replica.info("replication")["role"] == "master"

        _wait(promoted, timeout_s, "promotion of the replica", self.nodes)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def __enter__(self) -> SentinelRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def record_run(key: str) -> str:
    """An RQ job for the tests: leaves a mark in the Redis it was fetched from."""
    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    job.connection.set(key, "ran")
    return "ran"
