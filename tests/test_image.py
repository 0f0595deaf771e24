"""The service image's contents and the compose files, without a container engine (none
runs on these machines).

The package is built from exactly what docker/hotline/Dockerfile copies into its build
stage (its COPY lines, less .dockerignore), installed into a fresh virtualenv with
--no-deps (the dependencies come from .venv through a path file, never the project), and
every module, entry point and compose command is loaded from that install alone."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "hotline" / "Dockerfile"


# --- what the Dockerfile puts into the image ---------------------------------------


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, rest)


def dockerfile_stages(text: str) -> list[Stage]:
    """The Dockerfile's stages with their instructions, continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued RUN
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


class DockerIgnore:
    """.dockerignore patterns (Go filepath.Match with ``**``, ``!`` exceptions, last
    match wins; a pattern that matches a folder leaves out everything in it)."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = str(PurePosixPath(line.lstrip("!").strip().lstrip("/")))
            self.rules.append((keep, re.compile(self._regex(pattern))))

    @staticmethod
    def _regex(pattern: str) -> str:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return out + "(?:/.*)?$"  # the path itself or anything below it

    def ignored(self, relative: str) -> bool:
        verdict = False
        for keep, rule in self.rules:
            if rule.match(relative):
                verdict = not keep
        return verdict


def _copy_args(rest: str) -> tuple[dict[str, str], list[str]] | None:
    words = shlex.split(rest)
    if rest.lstrip().startswith("["):
        words = json.loads(rest)
    flags = {w[2:].partition("=")[0]: w.partition("=")[2] for w in words if w.startswith("--")}
    paths = [w for w in words if not w.startswith("--")]
    return (flags, paths) if len(paths) >= 2 else None


def image_build_tree(dockerfile: Path, context: Path, out: Path) -> Path:
    """Lay out under ``out`` what the stage that runs ``pip install`` has copied from the
    build context, and return the folder it installs from."""
    ignore_file = context / ".dockerignore"
    ignore = DockerIgnore(ignore_file.read_text() if ignore_file.exists() else "")
    for stage in dockerfile_stages(dockerfile.read_text()):
        workdir = PurePosixPath("/")
        for keyword, rest in stage.instructions:
            if keyword == "WORKDIR":
                workdir = workdir / rest
            elif keyword in ("COPY", "ADD"):
                parsed = _copy_args(rest)
                assert parsed, f"cannot read {keyword} {rest}"
                flags, paths = parsed
                if "from" in flags:
                    continue  # from another stage or image: not the repository
                *sources, dest = paths
                target = workdir / dest
                into_folder = dest.endswith("/") or dest in (".", "./") or len(sources) > 1
                for source in sources:
                    for found in sorted(context.glob(source)) if source != "." else [context]:
                        _copy(found, context, ignore, out, target, into_folder)
            elif keyword == "RUN" and "pip install" in rest:
                command = rest.split("pip install", 1)[1].split("&&")[0].split()
                where = [w for w in command if not w.startswith("-")]
                assert where, f"pip install of what? {rest}"
                path = workdir / where[-1]
                return out / path.relative_to("/")
    raise AssertionError(f"{dockerfile} never runs pip install")


def _copy(
    found: Path, context: Path, ignore: DockerIgnore, out: Path, target: PurePosixPath, into: bool
) -> None:
    relative = found.relative_to(context).as_posix()
    if found.is_dir():
        base = out / target.relative_to("/")
        for path in sorted(found.rglob("*")):
            inner = path.relative_to(context).as_posix()
            if path.is_file() and not ignore.ignored(inner):
                copy_to = base / path.relative_to(found)
                copy_to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy_to)
    elif not ignore.ignored(relative):
        copy_to = out / target.relative_to("/")
        if into:
            copy_to = copy_to / found.name
        copy_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(found, copy_to)


def project_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({p.rstrip("*").rstrip(".") for p in include})


@dataclass
class InstalledImage:
    venv: Path
    site: Path
    source: Path  # what the Dockerfile copied

    def python(self, code: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [str(self.venv / "bin" / "python"), "-I", "-c", code],
            cwd=self.venv,  # not the repository: nothing may come from the work tree
            env={"PATH": "/usr/bin:/bin", **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout

    def run(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.venv / "bin" / argv[0]), *argv[1:]],
            cwd=self.venv,
            env={"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )


def install_image(dockerfile: Path, tmp: Path) -> InstalledImage:
    source = image_build_tree(dockerfile, ROOT, tmp / "image")
    wheels = tmp / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
            "-q", "--no-deps", "--no-index", *map(str, wheels.glob("*.whl")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-4000:]
    # The dependencies (not the project: .venv's own copy is an editable install whose
    # finder is only activated by a .pth in .venv itself, which a path line does not run).
    (site / "zz-hotline-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return InstalledImage(venv, site, source)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> InstalledImage:
    return install_image(DOCKERFILE, tmp_path_factory.mktemp("image"))


IMPORT_EVERYTHING = """
import importlib, importlib.metadata as md, json, pkgutil, sys
from pathlib import Path
site = Path({site!r})
loaded, outside = [], []
for top in {packages!r}:
    package = importlib.import_module(top)
    modules = [top] + [m.name for m in pkgutil.walk_packages(package.__path__, top + ".")]
    for name in modules:
        if name.endswith(".migrations.env"):
            continue  # Alembic runs it, with its context; `db upgrade` covers it
        module = importlib.import_module(name)
        where = Path(module.__file__).resolve()
        if site not in where.parents:
            outside.append(f"{{name}}: {{where}}")
        loaded.append(name)
scripts = {{ep.name: ep.value for ep in md.distribution("hotline").entry_points
           if ep.group == "console_scripts"}}
for value in [*scripts.values(), "hotline.webapp:create_app", "hotline.agi_process:main"]:
    module, _, attr = value.partition(":")
    getattr(importlib.import_module(module), attr)
print(json.dumps({{"loaded": loaded, "outside": outside, "scripts": scripts}}))
"""


def test_every_module_and_entry_point_imports_from_the_image_alone(image: InstalledImage) -> None:
    packages = project_packages()
    code = IMPORT_EVERYTHING.format(site=str(image.site.resolve()), packages=packages)
    report = json.loads(image.python(code).splitlines()[-1])
    assert report["outside"] == [], "loaded from outside the image's install"
    for worker_module in ("calls.workers", "calls.casework", "calls.reaper", "calls.dialer"):
        assert worker_module in report["loaded"]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert report["scripts"] == config["project"]["scripts"]
    for script in report["scripts"]:
        assert (image.venv / "bin" / script).exists(), script
    help_text = image.run("hotline", "--help")
    assert help_text.returncode == 0, help_text.stderr


def test_every_package_file_is_installed(image: InstalledImage) -> None:
    """Templates, static files, Lua scripts and migrations travel with the code."""
    missing = []
    for top in project_packages():
        for path in (image.source / top).rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".md"):
                continue
            relative = path.relative_to(image.source)
            if not (image.site / relative).is_file():
                missing.append(relative.as_posix())
    assert missing == [], f"in the repository but not installed: {missing[:20]}"


def test_the_installed_web_migrates_and_serves_its_pages(  # type: ignore[no-untyped-def]
    image: InstalledImage, redis_server, redis, tmp_path
) -> None:
    """``redis``: the keys the installed web writes are flushed after the test."""
    env = {
        "HOTLINE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'hotline.db'}",
        "REDIS_URL": redis_server.url,
        "HOTLINE_SECRET_KEY": "image-test",
    }
    upgrade = image.run("hotline", "db", "upgrade", env=env)
    assert upgrade.returncode == 0, upgrade.stderr[-3000:]
    statuses = image.python(
        "import json\n"
        "from hotline.webapp import create_app\n"
        "client = create_app().test_client()\n"
        "paths = ['/healthz', '/login', '/static/app.css', '/lookup']\n"
        "print(json.dumps({p: client.get(p).status_code for p in paths}))",
        env=env,
    )
    assert json.loads(statuses.splitlines()[-1]) == {
        "/healthz": 200,
        "/login": 200,
        "/static/app.css": 200,
        "/lookup": 200,
    }


# --- compose ------------------------------------------------------------------------


def _merge(base: object, override: object) -> object:
    """Compose's merge of a later file: mappings merge key by key, anything else is
    replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in override.items()}}
    return override


def compose(*names: str) -> dict:  # type: ignore[type-arg]
    """The compose files merged as compose merges them (``extends`` resolved), enough to
    check what runs and how."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the compose files")
    merged: dict = {}  # type: ignore[type-arg]
    for name in names:
        merged = _merge(merged, yaml.safe_load((DOCKER / name).read_text()))  # type: ignore[assignment]
    services = merged["services"]
    for name, spec in list(services.items()):
        if "extends" in spec:
            origin = spec["extends"]
            base = compose(origin["file"])["services"][origin["service"]]
            rest = {k: v for k, v in spec.items() if k != "extends"}
            services[name] = _merge(base, rest)
    return merged


def hotline_command(spec: dict) -> list[str] | None:  # type: ignore[type-arg]
    command = spec.get("command")
    if isinstance(command, list) and command and command[0] == "hotline":
        return command[1:]
    return None


def test_compose_runs_every_process_of_the_run_command() -> None:
    from hotline.config import load_settings
    from hotline.supervisor import service_commands

    services = compose("compose.yaml")["services"]
    commands = [c for c in (hotline_command(s) for s in services.values()) if c]
    everything = load_settings(
        {
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "x",
            "PUBLIC_BASE_URL": "https://hotline.example.org",
            "ASTERISK_AMI_HOST": "asterisk",
            "ASTERISK_AMI_SECRET": "x",
        }
    )
    for child in service_commands(everything):
        argv = child.argv[child.argv.index("hotline.cli") + 1 :]
        assert any(c[: len(argv)] == argv for c in commands), f"{child.name}: {argv} not in compose"
    for needed in ("nginx", "asterisk", "redis", "postgres", "migrate"):
        assert needed in services, needed


def test_compose_waits_checks_health_and_publishes_only_the_proxy() -> None:
    services = compose("compose.yaml")["services"]
    postgres_wait = services["migrate"]["depends_on"]["postgres"]["condition"]
    assert postgres_wait == "service_healthy"
    for name, spec in services.items():
        if hotline_command(spec) and name != "migrate":
            assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully", (
                name
            )
        if name != "migrate":
            assert "test" in spec.get("healthcheck", {}), f"{name} has no healthcheck"
        for port in spec.get("ports", []):
            if name != "nginx":
                assert str(port).endswith("/udp"), f"{name} publishes {port}: only nginx may"
    for web in ("web", "hooks"):  # pages, and Twilio's webhooks, both behind nginx
        assert str(services[web]["environment"]["HOTLINE_TRUSTED_PROXY_HOPS"]) == "1", web
        assert "ports" not in services[web], web
        assert services["nginx"]["depends_on"][web]["condition"] == "service_healthy", web
    assert services["nginx"]["build"] == "nginx"  # docker/nginx: Debian's nginx, our config
    asterisk_build = services["asterisk"]["build"]
    assert "asterisk-src" in asterisk_build["additional_contexts"]
    assert "asterisk" in services["agi"]["environment"]["HOTLINE_AGI_ALLOW"]


def test_compose_commands_exist_in_the_image(image: InstalledImage) -> None:
    services = {
        **compose("compose.yaml")["services"],
        **compose("compose.yaml", "compose.ha.yaml")["services"],
    }
    for name, spec in services.items():
        command = hotline_command(spec)
        if command:
            subcommand = []
            for word in command:
                if word.startswith("-"):
                    break
                subcommand.append(word)
            result = image.run("hotline", *subcommand, "--help")
            assert result.returncode == 0, (
                f"{name}: hotline {' '.join(subcommand)}: {result.stderr}"
            )


def test_the_ha_overlay_has_no_single_instance() -> None:
    services = compose("compose.yaml", "compose.ha.yaml")["services"]
    assert {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"} <= set(services)
    assert {"agi", "agi-2", "web", "web-2", "hooks", "hooks-2", "push", "push-2"} <= set(services)
    for name, spec in services.items():
        if hotline_command(spec):
            env = spec["environment"]
            assert env["REDIS_SENTINELS"] == "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
            assert env["REDIS_SENTINEL_MASTER"] == "hotline", name
    upstreams = services["nginx"]["environment"]["NGINX_WEB_SERVERS"]
    assert "web:8000" in upstreams and "web-2:8000" in upstreams
    streams = services["nginx"]["environment"]["NGINX_PUSH_SERVERS"]
    assert streams == "push:8001,push-2:8001"
    assert services["nginx"]["environment"]["NGINX_HOOKS_SERVERS"] == "hooks:8000,hooks-2:8000"
    assert hotline_command(services["hooks-2"]) == hotline_command(services["hooks"])


def test_twilios_webhooks_have_web_processes_of_their_own() -> None:
    """A page, a screen pop or the wallboard's drawing holds its process's interpreter;
    webhooks in the same processes waited for it. nginx sends /twilio/ to processes that
    serve nothing else (`hotline web --only twilio`), and pages to the others."""
    services = compose("compose.yaml")["services"]
    hooks, web = hotline_command(services["hooks"]) or [], hotline_command(services["web"]) or []
    assert hooks[:1] == web[:1] == ["web"]
    assert hooks[hooks.index("--only") + 1] == "twilio" and "--only" not in web
    proxy_env = services["nginx"]["environment"]
    assert proxy_env["NGINX_HOOKS_SERVERS"] == "hooks:8000"
    assert proxy_env["NGINX_WEB_SERVERS"] == "web:8000"
    conf = (DOCKER / "nginx" / "nginx.conf.template").read_text()
    assert "upstream hooks {" in conf and "${NGINX_HOOKS_UPSTREAM}" in conf
    for location in ("location /twilio/ {", "location /twilio/outbound/ {"):
        block = conf.split(location, 1)[1].split("}", 1)[0]
        assert "proxy_pass http://hooks;" in block, location
    assert "proxy_pass http://web;" in conf.split("location / {", 1)[1].split("}", 1)[0]


def _compose_cli() -> list[str] | None:
    for candidate in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(candidate[0]):
            continue
        version = subprocess.run([*candidate, "version", "--short"], capture_output=True, text=True)
        if version.returncode == 0 and version.stdout.strip().lstrip("v").split(".")[0] >= "2":
            return candidate
    return None


@pytest.mark.parametrize("files", [["compose.yaml"], ["compose.yaml", "compose.ha.yaml"]])
def test_docker_compose_accepts_the_files(files: list[str], tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no `docker compose` v2 here (no container engine runs on these machines)")
    env = {
        **{k: "x" for k in ("POSTGRES_PASSWORD", "HOTLINE_SECRET_KEY", "HOTLINE_API_TOKEN")},
        **{
            k: "x"
            for k in (
                "ASTERISK_AMI_SECRET",
                "HOTLINE_AGI_SECRET",
                "TRUNK_HOST",
                "TRUNK_USERNAME",
                "TRUNK_PASSWORD",
            )
        },
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
    }
    args = [a for f in files for a in ("-f", str(DOCKER / f))]
    check = subprocess.run([*cli, *args, "config", "-q"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_the_metrics_token_reaches_every_process_prometheus_scrapes() -> None:
    # docs/operations.md has Prometheus read /metrics over the internal network with
    # HOTLINE_METRICS_TOKEN: a token set in .env must reach the web and webhook processes.
    for files in (("compose.yaml",), ("compose.yaml", "compose.ha.yaml")):
        services = compose(*files)["services"]
        for name in ("web", "hooks", "web-2", "hooks-2"):
            if name in services:
                token = services[name]["environment"].get("HOTLINE_METRICS_TOKEN")
                assert token == "${HOTLINE_METRICS_TOKEN:-}", (files, name)


def test_redis_and_its_sentinels_ask_for_a_password() -> None:
    """nginx and the internet-facing Asterisk share the internal network with Redis:
    without a password, either one broken into could mint sessions or repoint the
    Sentinels. Every client gets the password, and every health check uses it."""
    for files in (("compose.yaml",), ("compose.yaml", "compose.ha.yaml")):
        services = compose(*files)["services"]
        for name in [n for n in ("redis", "redis-replica") if n in services]:
            command = services[name]["command"]
            assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
            assert "REDISCLI_AUTH" in services[name]["environment"], name
            assert "grep -q PONG" in " ".join(services[name]["healthcheck"]["test"]), name
        for name, spec in services.items():
            if hotline_command(spec):
                env = spec["environment"]
                assert env["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?"), name
                assert env["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?"), name
                if "REDIS_SENTINELS" in env:
                    assert env["REDIS_SENTINEL_PASSWORD"].startswith("${REDIS_PASSWORD:?"), name
    sentinels = compose("compose.yaml", "compose.ha.yaml")["services"]
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        config = " ".join(sentinels[name]["command"])
        assert "sentinel auth-pass hotline $$REDIS_PASSWORD" in config, name
        assert "requirepass $$REDIS_PASSWORD" in config, name


def test_asterisk_and_the_hotline_services_share_the_recordings() -> None:
    """Asterisk writes a conversation's recording; the web plays it, the workers link
    and delete it: one volume at the path the FastAGI server names to MixMonitor, and
    one group (the same gid in both images) that may read and delete."""
    services = compose("compose.yaml")["services"]
    path = services["web"]["environment"]["HOTLINE_RECORDINGS_DIR"]
    mount = f"recordings:{path}"
    for name, spec in services.items():
        if hotline_command(spec) or name == "asterisk":
            assert mount in spec["volumes"], name
    for image in ("hotline", "asterisk"):
        dockerfile = (DOCKER / image / "Dockerfile").read_text()
        assert "groupadd --system --gid 10100 recordings" in dockerfile, image
        assert "--groups recordings" in dockerfile, image
    entrypoint = (DOCKER / "asterisk" / "entrypoint.sh").read_text()
    assert f"chmod 2775 {path}" in entrypoint
