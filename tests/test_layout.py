"""The package layering: hotline/ is the composition root (configuration, CLI,
supervisor, process entry points) and nothing below it imports it; the packages below
import each other without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ivr", "queueing", "cases", "calls", "web", "agi_scripts", "simulator", "hotline")


def imported_packages(package: str) -> dict[str, set[str]]:
    """For each module of the package, the project packages it imports (at any depth,
    including imports inside functions)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = (names & set(PACKAGES)) - {package}
    return found


def test_nothing_below_the_composition_root_imports_it() -> None:
    upward = {
        module: sorted(names)
        for package in PACKAGES
        if package != "hotline"
        for module, names in imported_packages(package).items()
        if "hotline" in names
    }
    assert upward == {}


def test_the_packages_import_each_other_without_cycles() -> None:
    graph = {package: set().union(*imported_packages(package).values()) for package in PACKAGES}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(package: str) -> None:
        assert package not in visiting, " -> ".join([*visiting, package])
        if package in done:
            return
        visiting.append(package)
        for dependency in sorted(graph[package]):
            visit(dependency)
        visiting.pop()
        done.add(package)

    for package in PACKAGES:
        visit(package)
    assert graph["ivr"] == set()  # the flows are pure
    assert graph["queueing"] == set()


def test_cases_is_the_sql_record_only() -> None:
    """cases/ holds the SQL system of record: no Redis, no queue, no jobs (calls/ does
    that work), and nothing from the application layer or the surfaces above it."""
    graph = imported_packages("cases")
    assert {m: sorted(n) for m, n in graph.items() if n} == {}
    for path in sorted((ROOT / "cases").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not [n for n in names if n.split(".")[0] in ("redis", "rq")], path


def test_the_surfaces_reach_the_database_through_the_desk() -> None:
    """No view reaches for the call handler's directory to open its own sessions."""
    for path in sorted((ROOT / "web").rglob("*.py")):
        if path.name == "context.py":  # where the desk is made
            continue
        assert "handler.directory.sessions" not in path.read_text(encoding="utf-8"), path


def test_every_queue_key_is_built_in_queueing_keys() -> None:
    """The queue's keys share a hash tag and are named once (queueing.keys): nothing
    else appends to the queue's prefix (``keys.prefix``) to make a key of its own."""
    builders: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "queueing" / "keys.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Attribute) and node.attr == "prefix"):
                    continue
                owner = node.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name == "keys":
                    builders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert builders == []
