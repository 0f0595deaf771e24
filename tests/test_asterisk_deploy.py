"""The process AGI script, the Asterisk outbound provider, and the deployment files
checked against the code that depends on them."""

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from redis import Redis

from agi_scripts.ami import AmiConnection, AsteriskOriginator
from agi_scripts.sessions import ROUTES
from cases.db import upgrade
from queueing import CallQueue
from queueing.settings import QueueSettings
from tests.asterisk_emulator import AmiServer, AsteriskEmulator
from tests.test_agi_protocol import ENV

ROOT = Path(__file__).resolve().parent.parent
DIALPLAN = (ROOT / "docker" / "asterisk" / "extensions.conf").read_text()


def test_process_agi_script_runs_the_inbound_route(redis: Redis, redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db_url = f"sqlite:///{tmp_path / 'agi.db'}"
    upgrade(db_url)
    queue = CallQueue(redis, QueueSettings())
    queue.seat_login("1001")
    queue.seat_state("1001", "paused", "busy")
    replies = (
        "200 result=0\n"  # ANSWER
        "200 result=0 endpos=8000\n"  # STREAM FILE greeting
        "200 result=9\n"  # GET DATA: an invalid key
        "200 result=1\n"
    )  # SET VARIABLE HOTLINE_NEXT "hold"
    process_env = ENV.replace("agi_network: yes\n", "").replace(
        "agi_network_script: ivr?dept=12345\n", ""
    )
    result = subprocess.run(
        [str(Path(sys.executable).with_name("hotline-agi")), "inbound"],
        input=process_env + replies,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "REDIS_URL": redis_server.url,
            "DATABASE_URL": db_url,
            "HOTLINE_VAR_DIR": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        },
    )
    commands = result.stdout.splitlines()
    assert commands[0] == "ANSWER", result.stderr
    assert commands[1].startswith("STREAM FILE ") and "greeting" in commands[1]
    assert commands[2].startswith("GET DATA ") and "language_menu" in commands[2]
    assert commands[3] == 'SET VARIABLE HOTLINE_NEXT "hold"'
    assert queue.call("ast-1795812065.1")["state"] == "waiting"


def test_asterisk_provider_originates_into_the_outbound_context() -> None:
    emulator = AsteriskEmulator(0, {}, lambda *_: None)
    ami_server = AmiServer(emulator, "hotline", "s3cret")
    threading.Thread(target=ami_server.serve_forever, daemon=True).start()
    ami = AmiConnection("127.0.0.1", ami_server.port, "hotline", "s3cret")
    try:
        AsteriskOriginator(ami, "PJSIP/{number}@trunk").originate(
            "out-7-1", "+8613800000001", "return_visit"
        )
    finally:
        ami.close()
        ami_server.shutdown()
        ami_server.server_close()
    originate = next(a for a in ami_server.actions if a.get("Action") == "Originate")
    assert originate["Channel"] == "PJSIP/13800000001@trunk"
    assert originate["Context"] == "hotline-outbound" and originate["Async"] == "true"
    assert "HOTLINE_DIAL_ID=out-7-1" in str(originate.get("Variable"))
    assert "[hotline-outbound]" in DIALPLAN


def test_ami_login_with_a_wrong_secret_fails() -> None:
    import pytest

    from agi_scripts.ami import AmiError

    emulator = AsteriskEmulator(0, {}, lambda *_: None)
    ami_server = AmiServer(emulator, "hotline", "right")
    threading.Thread(target=ami_server.serve_forever, daemon=True).start()
    ami = AmiConnection("127.0.0.1", ami_server.port, "hotline", "wrong")
    try:
        with pytest.raises(AmiError, match="login refused"):
            ami.action({"Action": "Ping"})
    finally:
        ami.close()
        ami_server.shutdown()
        ami_server.server_close()


def test_dialplan_uses_only_routes_the_server_has() -> None:
    used = set(re.findall(r"Gosub\(hotline-agi,s,1\(([a-z_-]+)", DIALPLAN))
    assert used - {"$"} <= set(ROUTES), used - set(ROUTES)
    assert {"inbound", "hold", "bridge", "answered", "hangup"} <= used
    for context in ("hotline-inbound", "hotline-hold", "hotline-bridge", "hotline-answered"):
        assert f"[{context}]" in DIALPLAN
    # Every context a caller can be in reports the hang-up.
    blocks = {b.split("]", 1)[0]: b for b in re.split(r"^\[", DIALPLAN, flags=re.M)[1:]}
    for context in ("hotline-inbound", "hotline-hold", "hotline-bridge"):
        assert "exten => h,1,Gosub(hotline-agi,s,1(hangup))" in blocks[context], context
    assert "U(hotline-answered^" in (ROOT / "agi_scripts" / "sessions.py").read_text()


def test_every_agi_url_carries_the_shared_secret_from_asterisks_environment() -> None:
    """The server hangs up sessions without HOTLINE_AGI_SECRET (tests/test_agi_security.py):
    every AGI() goes through a server's global that puts it before the route, read from
    Asterisk's environment by ENV(), which must be loaded before the dialplan."""
    assert re.search(
        r"^HOTLINE_AGI = agi://[^/\s]+/\$\{ENV\(HOTLINE_AGI_SECRET\)\}$", DIALPLAN, re.M
    )
    assert re.search(
        r"^HOTLINE_AGI_2 = agi://\$\{ENV\(HOTLINE_AGI_SERVER_2\)\}/"
        r"\$\{ENV\(HOTLINE_AGI_SECRET\)\}$",
        DIALPLAN,
        re.M,
    )
    calls = re.findall(r"AGI\(([^)]*)\)", DIALPLAN)
    assert calls and all(c.startswith(("${HOTLINE_AGI}/", "${HOTLINE_AGI_2}/")) for c in calls)
    modules = (ROOT / "docker" / "asterisk" / "modules.conf").read_text()
    assert re.search(r"^preload = func_env\.so", modules, re.M)


def test_every_agi_tries_the_second_fastagi_server_when_the_first_cannot_be_reached() -> None:
    """AGI() runs only in [hotline-agi], which goes to HOTLINE_AGI_2 when Asterisk could not
    connect (AGISTATUS FAILURE) and a second server is configured; compose.ha.yaml gives
    Asterisk the second server's address."""
    blocks = {b.split("]", 1)[0]: b for b in re.split(r"^\[", DIALPLAN, flags=re.M)[1:]}
    subroutine = blocks["hotline-agi"]
    for name, block in blocks.items():
        if name != "hotline-agi":
            assert "AGI(" not in block.replace("Gosub(hotline-agi", ""), name
    steps = re.findall(r"^(?:exten => s,1|\s*same => n(?:\(\w+\))?),(.*)$", subroutine, re.M)
    assert steps[0].startswith("AGI(${HOTLINE_AGI}/${ARG1},")
    assert steps[1] == (
        'GotoIf($["${AGISTATUS}" != "FAILURE" | "${HOTLINE_AGI_SERVER_2}" = ""]?done)'
    )
    assert steps[2].startswith("AGI(${HOTLINE_AGI_2}/${ARG1},")
    assert steps[3] == "Return()" and "n(done),Return()" in subroutine
    # Asterisk runs the h of the context the channel is in, here during an AGI.
    assert "exten => h,1,Gosub(s,1(hangup))" in subroutine
    assert re.search(r"^HOTLINE_AGI_SERVER_2 = \$\{ENV\(HOTLINE_AGI_SERVER_2\)\}$", DIALPLAN, re.M)
    compose = (ROOT / "docker" / "compose.yaml").read_text()
    assert "HOTLINE_AGI_SERVER_2: ${HOTLINE_AGI_SERVER_2:-}" in compose
    ha = (ROOT / "docker" / "compose.ha.yaml").read_text()
    asterisk = re.search(r"^  asterisk:\n((?:    .*\n)+)", ha, re.M)
    assert asterisk and "HOTLINE_AGI_SERVER_2: hotline-agi-2:4573" in asterisk.group(1)


def test_compose_has_every_service_and_no_secret() -> None:
    compose = (ROOT / "docker" / "compose.yaml").read_text()
    for service in ("asterisk", "redis", "postgres", "web", "worker", "agi"):
        assert re.search(rf"^  {service}:", compose, re.M), service
    assert "--appendfsync" in compose and "everysec" in compose
    for template in ("manager.conf.template", "pjsip.conf.template", "compose.yaml"):
        text = ROOT / "docker" / ("asterisk/" if "template" in template else "") / template
        assert not re.search(
            r"(secret|password)\s*[:=]\s*[A-Za-z0-9]{6,}", text.read_text(), re.I
        ), template
    if shutil.which("docker-compose"):
        env = {
            "POSTGRES_PASSWORD": "x",
            "HOTLINE_SECRET_KEY": "x",
            "HOTLINE_API_TOKEN": "x",
            "ASTERISK_AMI_SECRET": "x",
            "HOTLINE_AGI_SECRET": "x",
            "TRUNK_HOST": "h",
            "TRUNK_USERNAME": "u",
            "TRUNK_PASSWORD": "p",
            "SEAT_PASSWORD": "s",
            "PATH": "/usr/bin:/bin",
        }
        check = subprocess.run(
            ["docker-compose", "-f", str(ROOT / "docker" / "compose.yaml"), "config", "-q"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("seat", ["trunk", "box-b"])
def test_a_seat_named_like_a_trunk_is_refused_when_rendered(tmp_path: Path, seat: str) -> None:
    """A seat endpoint named "trunk" would replace the carrier's: refuse it before
    Asterisk ever reads it."""
    deploy = Path(__file__).resolve().parent.parent / "docker" / "asterisk"
    (tmp_path / "etc").mkdir()
    secrets = tmp_path / "seat_passwords"
    secrets.write_text(f"1001 a-long-password-1\n{seat} a-long-password-2\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ASTERISK_AMI_SECRET": "x" * 24,
        "TRUNK_HOST": "127.0.0.1",
        "TRUNK_USERNAME": "t",
        "TRUNK_PASSWORD": "trunk-test-password",
        "SEAT_SECRETS_FILE": str(secrets),
        "PEER_BOX_HOST": "127.0.0.2",
    }
    run = subprocess.run(
        ["sh", str(deploy / "render-config.sh"), str(deploy), str(tmp_path / "etc")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert f"seat id '{seat}' is the name of a trunk" in run.stderr
