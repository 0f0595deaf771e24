"""A real Asterisk for the test suite, running the project's own configuration.

Where it comes from:
- ASTERISK_PREFIX: an installed Asterisk 22 (PREFIX/sbin/asterisk);
- else HOTLINE_ASTERISK_SOURCE: a folder with the Asterisk and pjproject tarballs, their
  SHA256SUMS and build.sh. It is built once per machine into a cache outside the clone,
  keyed by the tarballs' checksums (HOTLINE_CACHE_DIR, default ~/.cache/hotline).
- else the real-Asterisk tests are skipped, saying how to enable them.

The instance runs as a non-installed tree: its own asterisk.conf points the module and
data folders at the prefix and everything it writes at a temporary folder. It loads
docker/asterisk's extensions.conf, modules.conf, musiconhold.conf, amd.conf and
confbridge.conf as they are, and
manager.conf and pjsip.conf rendered by docker/asterisk/render-config.sh, with only
the addresses of this machine's test processes put in.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from hotline.prompt_audio import render_hold_music

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "docker" / "asterisk"

HOW_TO_ENABLE = (
    "real-Asterisk tests skipped: set ASTERISK_PREFIX to an Asterisk 22 install, or "
    "HOTLINE_ASTERISK_SOURCE to a folder with its tarballs and build.sh "
    "(.ci/run uses ../shared/vendor/asterisk when present)"
)


class AsteriskUnavailable(RuntimeError):
    pass


def cache_dir() -> Path:
    base = os.environ.get("HOTLINE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hotline"
    )
    return Path(base)


def asterisk_prefix() -> Path | None:
    """The Asterisk to test against, building it first when only the source is given."""
    given = os.environ.get("ASTERISK_PREFIX")
    if given:
        prefix = Path(given)
        if not (prefix / "sbin" / "asterisk").exists():
            raise AsteriskUnavailable(f"ASTERISK_PREFIX={given} has no sbin/asterisk")
        return prefix
    source = os.environ.get("HOTLINE_ASTERISK_SOURCE")
    if not source:
        return None
    src = Path(source)
    sums = src / "SHA256SUMS"
    if not sums.exists() or not (src / "build.sh").exists():
        raise AsteriskUnavailable(f"HOTLINE_ASTERISK_SOURCE={source} has no SHA256SUMS/build.sh")
    key = hashlib.sha256(sums.read_bytes()).hexdigest()[:16]
    prefix = cache_dir() / f"asterisk-{key}"
    if (prefix / "sbin" / "asterisk").exists():
        return prefix
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f"asterisk-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per machine, even for parallel runs
        if not (prefix / "sbin" / "asterisk").exists():
            build = subprocess.run(
                ["bash", str(src / "build.sh"), str(prefix)],
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if build.returncode != 0:
                raise AsteriskUnavailable(
                    f"building Asterisk failed:\n{build.stdout[-2000:]}\n{build.stderr[-2000:]}"
                )
    return prefix


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def seat_password(seat: str) -> str:
    """A distinct test password per seat (never a real secret)."""
    return "test-" + hashlib.sha256(f"seat {seat}".encode()).hexdigest()[:20]


@dataclass
class Asterisk:
    prefix: Path
    root: Path
    agi_port: int
    seats: list[str]
    ami_secret: str = "ami-test-secret-not-real"
    # The dialplan reads it from Asterisk's environment, as in the container.
    agi_secret: str = "agi-test-secret-not-real"
    agi_server_2: str = ""  # host:port of the FastAGI server tried next ("": one server)
    trunk_host: str = "127.0.0.2"  # the carrier, on its own loopback address
    hold_s: int = 30
    dialplan_extra: str = ""  # test-only contexts appended (e.g. app_queue for the bench)
    extra_conf: dict[str, str] = field(default_factory=dict)
    extra_modules: tuple[str, ...] = ()
    # A second box sharing the queue: the trunk to it (its name, its SIP port on loopback).
    peer_box_name: str = ""
    peer_box_port: int = 0
    system_name: str = ""  # asterisk.conf systemname: starts every uniqueid ("": none)
    sip_port: int = 0
    ami_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "full"

    def configure(self) -> None:
        self.sip_port = self.sip_port or free_port(socket.SOCK_DGRAM)
        self.ami_port = self.ami_port or free_port()
        for sub in ("etc", "log", "run", "spool", "lib", "data/moh", "agi"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        docs = self.prefix / "var" / "lib" / "asterisk" / "documentation"
        if docs.exists() and not (self.root / "data" / "documentation").exists():
            (self.root / "data" / "documentation").symlink_to(docs)
        # No sounds in an offline build: the project's own hold clip is the music.
        render_hold_music(self.root / "data" / "moh")
        (self.etc / "asterisk.conf").write_text(
            "[directories]\n"
            f"astetcdir => {self.etc}\n"
            f"astmoddir => {self.prefix / 'lib' / 'asterisk' / 'modules'}\n"
            f"astvarlibdir => {self.root / 'lib'}\n"
            f"astdbdir => {self.root / 'lib'}\n"
            f"astkeydir => {self.root / 'lib'}\n"
            f"astdatadir => {self.root / 'data'}\n"
            f"astagidir => {self.root / 'agi'}\n"
            f"astspooldir => {self.root / 'spool'}\n"
            f"astrundir => {self.root / 'run'}\n"
            f"astlogdir => {self.root / 'log'}\n"
            f"astsbindir => {self.prefix / 'sbin'}\n"
            "[options]\nverbose = 3\ndebug = 0\nmaxcalls = 2000\n"
            + (f"systemname = {self.system_name}\n" if self.system_name else "")
        )
        (self.etc / "logger.conf").write_text(
            "[general]\ndateformat = %F %T.%3q\n"
            "[logfiles]\nfull => notice,warning,error,verbose(3)\n"
        )
        (self.etc / "rtp.conf").write_text("[general]\nrtpstart = 20000\nrtpend = 29999\n")
        dialplan = (DEPLOY / "extensions.conf").read_text()
        # Only the server's address changes; the secret's part of the URL stays as shipped.
        agi_line = re.compile(r"^(HOTLINE_AGI = )agi://[^/\s]+(/.*)$", re.M)
        hold_line = re.compile(r"^HOTLINE_HOLD_S = .*$", re.M)
        assert agi_line.search(dialplan) and hold_line.search(dialplan), "dialplan globals moved"
        dialplan = agi_line.sub(rf"\1agi://127.0.0.1:{self.agi_port}\2", dialplan)
        dialplan = hold_line.sub(f"HOTLINE_HOLD_S = {self.hold_s}", dialplan)
        (self.etc / "extensions.conf").write_text(dialplan + self.dialplan_extra)
        modules = (DEPLOY / "modules.conf").read_text()
        modules += "".join(f"load = {m}\n" for m in self.extra_modules)
        (self.etc / "modules.conf").write_text(modules)
        shutil.copy(DEPLOY / "musiconhold.conf", self.etc / "musiconhold.conf")
        shutil.copy(DEPLOY / "amd.conf", self.etc / "amd.conf")
        shutil.copy(DEPLOY / "confbridge.conf", self.etc / "confbridge.conf")
        for name, text in self.extra_conf.items():
            (self.etc / name).write_text(text)
        secrets = self.root / "seat_passwords"
        secrets.write_text("".join(f"{s} {seat_password(s)}\n" for s in self.seats))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ASTERISK_AMI_SECRET": self.ami_secret,
            "TRUNK_HOST": self.trunk_host,
            "TRUNK_PORT": str(free_port(socket.SOCK_DGRAM, self.trunk_host)),
            "TRUNK_USERNAME": "hotline-test",
            "TRUNK_PASSWORD": "trunk-test-password",
            "SIP_BIND": f"127.0.0.1:{self.sip_port}",
            "AMI_BIND": "127.0.0.1",
            "AMI_PORT": str(self.ami_port),
            "AMI_PERMIT": "127.0.0.1/255.255.255.255",
            "SEAT_SECRETS_FILE": str(secrets),
        }
        if self.peer_box_name:
            env.update(
                PEER_BOX_NAME=self.peer_box_name,
                PEER_BOX_HOST="127.0.0.1",
                PEER_BOX_PORT=str(self.peer_box_port),
            )
        subprocess.run(
            ["sh", str(DEPLOY / "render-config.sh"), str(DEPLOY), str(self.etc)],
            env=env,
            check=True,
            capture_output=True,
        )

    def _cli(self, command: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(self.prefix / "sbin" / "asterisk"),
                "-C",
                str(self.etc / "asterisk.conf"),
                "-rx",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cli(self, command: str) -> str:
        return self._cli(command).stdout

    def start(self) -> Asterisk:
        if not (self.etc / "asterisk.conf").exists():
            self.configure()
        with open(self.root / "log" / "console", "ab") as out:
            self.process = subprocess.Popen(
                [
                    str(self.prefix / "sbin" / "asterisk"),
                    "-C",
                    str(self.etc / "asterisk.conf"),
                    "-f",
                    "-n",
                    "-q",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={
                    **os.environ,
                    "HOTLINE_AGI_SECRET": self.agi_secret,
                    "HOTLINE_AGI_SERVER_2": self.agi_server_2,
                },
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AsteriskUnavailable(f"asterisk exited: {self.log_tail()}")
            try:
                if self._cli("core waitfullybooted", timeout=5).returncode == 0:
                    return self
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.2)
        raise AsteriskUnavailable(f"asterisk did not boot: {self.log_tail()}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            try:
                self._cli("core stop now", timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def module_errors(self) -> list[str]:
        pattern = re.compile(
            r"(Error loading module|missing dependency|Failed to resolve dependencies|"
            r"No application|Function \S+ not registered|Unable to load module|declined to load)",
            re.I,
        )
        return [line for line in self.log().splitlines() if pattern.search(line)]

    def channels(self) -> list[str]:
        out = self.cli("core show channels concise")
        return [line.split("!")[0] for line in out.splitlines() if "!" in line]
