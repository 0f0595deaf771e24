"""The README's test command (and so CI) runs ruff and mypy before the suite, and stops
at the first failure; mypy with no arguments checks every product package."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_checks_every_product_package_and_not_the_tests() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packaged = {p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert set(config["tool"]["mypy"]["files"]) == packaged
    assert not {"tests", "bench"} & packaged


def _fake_checkout(tmp_path: Path, failing: str = "") -> Path:
    """A copy of scripts/test beside stand-in tools that log their arguments; the one
    named ``failing`` exits 1."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "test", tmp_path / "scripts" / "test")
    tools = {"scripts/bootstrap.sh": "bootstrap"}
    tools |= {f".venv/bin/{name}": name for name in ("ruff", "mypy", "python")}
    for path, name in tools.items():
        script = tmp_path / path
        script.parent.mkdir(parents=True, exist_ok=True)
        status = 1 if name == failing else 0
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "$CALLS"\nexit {status}\n')
        script.chmod(0o755)
    return tmp_path


def _run(checkout: Path, *args: str) -> tuple[int, list[str]]:
    calls = checkout / "calls.log"
    calls.touch()
    env = {**os.environ, "CALLS": str(calls)}
    done = subprocess.run(
        [str(checkout / "scripts" / "test"), *args], env=env, capture_output=True, timeout=30
    )
    return done.returncode, calls.read_text().splitlines()


def test_the_test_command_lints_and_type_checks_before_the_suite(tmp_path: Path) -> None:
    status, calls = _run(_fake_checkout(tmp_path), "tests/test_cdr.py", "-x")
    assert status == 0
    assert calls == [
        "bootstrap --test",
        "ruff check .",
        "mypy ",
        "python -m pytest tests/test_cdr.py -x",
    ]


@pytest.mark.parametrize("failing", ["ruff", "mypy"])
def test_a_lint_or_type_error_stops_the_test_command(tmp_path: Path, failing: str) -> None:
    status, calls = _run(_fake_checkout(tmp_path, failing))
    assert status != 0
    assert calls[-1].split()[0] == failing
    assert not any(call.startswith("python") for call in calls)
