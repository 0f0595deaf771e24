"""ivr/ is pure: it imports nothing that does I/O."""

import ast
from pathlib import Path

IVR = Path(__file__).resolve().parent.parent / "ivr"
FORBIDDEN = {
    "flask",
    "twilio",
    "redis",
    "rq",
    "asterisk",
    "sqlalchemy",
    "socket",
    "requests",
    "urllib",
    "http",
    "subprocess",
    "os",
    "io",
    "pathlib",
    "time",
    "threading",
    "asyncio",
    "logging",
    "random",
    "datetime",
    "shutil",
    "tempfile",
    "sqlite3",
    "psycopg",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ivr_imports_no_io_library() -> None:
    files = sorted(IVR.rglob("*.py"))
    assert files, "ivr/ has no Python files"
    leaks = {f.name: imported_modules(f) & FORBIDDEN for f in files}
    assert not any(leaks.values()), leaks


def test_the_purity_check_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import redis\nfrom flask import Flask\nfrom . import sibling\n")
    assert imported_modules(sample) == {"redis", "flask"}
