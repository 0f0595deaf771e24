"""The real push process (``hotline push``, uvicorn) for tests: started beside the
real web command, on its own port, as ``scripts/run`` runs it without a proxy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import IO

from hotline.redis_server import free_port
from tests.real_rig import wait_port

ROOT = Path(__file__).resolve().parents[1]


def with_push_port(env: dict[str, str]) -> dict[str, str]:
    """The environment for the web and the push process: pages open their streams on
    the push process's own port."""
    port = str(free_port())
    return {**env, "HOTLINE_PUSH_PORT": port, "HOTLINE_PUSH_PUBLIC_PORT": port}


def start_push(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "hotline.cli", "push"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_port(int(env["HOTLINE_PUSH_PORT"]))
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
