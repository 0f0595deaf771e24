"""A private PostgreSQL server for the tests, on a random loopback port."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from hotline.redis_server import free_port


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class PostgresServer:
    """Data in a fresh directory of its own (pytest's are private to root, and initdb
    runs as the postgres user when we are root)."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        self.port = free_port()
        self._as_user: list[str] = []

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as_user, *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL is not installed: run scripts/bootstrap.sh --test")
        data = self.directory / "data"
        self._own_directory()
        self._run(
            initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"
        )
        self.start_again()
        return self

    def _own_directory(self) -> None:
        if os.geteuid() == 0:  # initdb and pg_basebackup refuse to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _pg_ctl(self, *argv: str) -> None:
        pg_ctl = pg_bin("pg_ctl")
        if not pg_ctl:
            raise RuntimeError("PostgreSQL is not installed: run scripts/bootstrap.sh --test")
        self._run(pg_ctl, "-D", str(self.directory / "data"), *argv)

    def start_again(self) -> None:
        """Start the server on its data directory (after start_standby, restart or kill)."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -F"
        # After a kill -9 of the postmaster its backends linger a moment and hold the
        # shared memory: the first start may be refused.
        for attempt in range(50):
            try:
                self._pg_ctl("-o", options, "-l", str(self.directory / "log"), "-w", "start")
                return
            except subprocess.CalledProcessError:
                if attempt == 49:
                    raise
                time.sleep(0.2)

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server and keep its data (pg_ctl stop -m fast: a clean shutdown)."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def kill_postmaster(self) -> None:
        """kill -9 the postmaster, as a crash would, and wait until it is gone."""
        pid = int((self.directory / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"postmaster {pid} survived SIGKILL")

    def start_standby(self, primary: PostgresServer) -> PostgresServer:
        """A streaming standby of ``primary``: pg_basebackup -R (standby.signal and
        primary_conninfo), started on this server's own port."""
        basebackup = pg_bin("pg_basebackup")
        if not basebackup:
            raise RuntimeError("PostgreSQL is not installed: run scripts/bootstrap.sh --test")
        self._own_directory()
        self._run(
            basebackup,
            "-h", "127.0.0.1",
            "-p", str(primary.port),
            "-U", "postgres",
            "-D", str(self.directory / "data"),
            "-R",
            "-X", "stream",
            "-c", "fast",
        )  # fmt: skip
        self.start_again()
        return self

    def promote(self) -> None:
        """Make a standby the primary (pg_ctl promote, waiting until it takes writes)."""
        self._pg_ctl("-w", "promote")

    def stop(self) -> None:
        pg_ctl = pg_bin("pg_ctl")
        if pg_ctl:
            subprocess.run(
                [
                    *self._as_user,
                    pg_ctl,
                    "-D",
                    str(self.directory / "data"),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.directory, ignore_errors=True)

    def drop_database(self, name: str) -> None:
        """Drop a test's database, ending whatever connections it left open."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create_database(self, name: str) -> str:
        import psycopg

        for _ in range(50):
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                    autocommit=True,
                ) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                return self.url(name)
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not accept connections")
