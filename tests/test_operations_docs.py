"""What the IT engineer copies from README.md and docs/operations.md on go-live day
matches what is shipped: every `hotline ...` command and flag shown exists, the upgrade,
restore and scrape steps name every service compose runs, and every variable the
Configuration table names is read by the code."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from hotline.cli import main
from tests.test_image import compose, hotline_command

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def shown_commands(text: str) -> list[str]:
    """`hotline ...` as shown in code spans and shell blocks."""
    spans = re.findall(r"`(hotline [a-z][^`]*)`", text)
    lines, fence = [], None
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fence = None if fence is not None else line.strip()[3:]
        elif fence in ("sh", "bash", ""):
            found = re.search(r"(?:^|\s)(hotline [a-z][^;&|)#]*)", line)
            lines += [found.group(1)] if found else []
    return sorted({c.strip() for c in spans + lines})


@pytest.mark.parametrize("command", shown_commands(README + OPERATIONS))
def test_every_hotline_command_shown_exists_with_its_flags(command: str) -> None:
    words = command.split()[1:]
    group: click.Command = main
    path = ["hotline"]
    while words and isinstance(group, click.Group) and words[0] in group.commands:
        group = group.commands[words.pop(0)]
        path.append(group.name or "")
    assert len(path) > 1, f"{command!r}: no such command"
    flags = {opt for param in group.params for opt in getattr(param, "opts", [])}
    flags |= {opt for param in group.params for opt in getattr(param, "secondary_opts", [])}
    for word in words:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert flag in flags, f"{command!r}: {' '.join(path)} has no {flag}"


def app_services(*files: str) -> set[str]:
    services = compose(*files)["services"]
    return {
        name
        for name, spec in services.items()
        if hotline_command(spec) and name != "migrate" and "profiles" not in spec
    }


def test_the_upgrade_loop_and_the_restore_stop_every_app_service() -> None:
    loop = re.search(r"for s in ([a-z0-9 -]+); do", OPERATIONS)
    assert loop, "the upgrade loop"
    upgraded = set(loop.group(1).split())
    assert app_services("compose.yaml", "compose.ha.yaml") <= upgraded, (
        app_services("compose.yaml", "compose.ha.yaml") - upgraded
    )
    stop = re.search(r"`docker compose -f docker/compose.yaml stop ([a-z0-9 -]+)`", OPERATIONS)
    assert stop, "the restore's stop"
    stopped = set(stop.group(1).split())
    assert app_services("compose.yaml") <= stopped, app_services("compose.yaml") - stopped


def test_prometheus_is_shown_scraping_every_web_and_webhook_process() -> None:
    services = compose("compose.yaml", "compose.ha.yaml")["services"]
    webs = {name for name, spec in services.items() if (hotline_command(spec) or [""])[0] == "web"}
    targets = re.search(r"- targets: \[([^\]]+)\]", OPERATIONS)
    assert targets, "the scrape config"
    scraped = {t.strip().strip('"').split(":")[0] for t in targets.group(1).split(",")}
    assert webs == scraped, (webs, scraped)


def test_every_configuration_variable_is_read_by_the_code_and_the_other_way_round() -> None:
    table = README[README.index("## Configuration") : README.index("## Benchmarks")]
    names = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`(?:, `([A-Z][A-Z0-9_]+)`)?", table, re.M))
    variables = {name for pair in names for name in pair if name}
    code = "\n".join(
        path.read_text()
        for folder in ("hotline", "queueing", "cases", "calls", "web", "agi_scripts", "ivr")
        for path in (ROOT / folder).rglob("*.py")
    )
    unread = sorted(v for v in variables if f'"{v}"' not in code)
    assert not unread, unread
    # Each setting the service reads is explained somewhere an engineer looks.
    settings = "\n".join(
        (ROOT / name).read_text()
        for name in ("hotline/config.py", "queueing/settings.py", "calls/dialing.py")
    )
    read = set(re.findall(r'env(?:\.get|_number)\(\s*(?:env,\s*)?"([A-Z][A-Z0-9_]+)"', settings))
    read -= {"TWILIO_API_BASE_URL"}  # the tests' local stand-in for Twilio's API
    docs = README + OPERATIONS
    undocumented = sorted(v for v in read if not re.search(rf"\b{v}\b", docs))
    assert not undocumented, undocumented
