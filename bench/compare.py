"""Compare benchmarks between a revision and the working tree, in one run.

Checks REV out into a temporary git worktree and runs each benchmark there and here,
alternating (REV, tree, REV, tree, ...), so both see the same machine load. Prints,
per benchmark, the median of each numeric figure on both sides and their ratio
(tree ÷ REV); the last line is one JSON object.

    .venv/bin/python bench/compare.py 20c6da5
    .venv/bin/python bench/compare.py HEAD~5 queue agi --rounds 3

Each side runs with its own tree first on PYTHONPATH, so processes a benchmark starts
(`python -m hotline.cli ...`, the `hotline` script) import that side's code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Quick settings: each run is a minute or two, not the README's full-size figures.
BENCHES: dict[str, list[str]] = {
    "queue": ["bench/queue_bench.py", "--calls", "5000", "--seats", "50"],
    "agi": ["bench/agi_bench.py", "--calls", "500", "--seats", "25"],
    "twilio": ["bench/twilio_bench.py", "--callers", "300", "--seconds", "10"],
    "console": ["bench/console_bench.py", "--consoles", "100", "--wallboards", "5"],
    "sla": ["bench/sla_bench.py", "--cases", "20000", "--unit-cases", "2000"],
    "dialer": ["bench/dialer_bench.py", "--items", "1000", "--concurrent", "50"],
}


def run_once(tree: Path, argv: list[str], timeout_s: float) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{argv[0]} in {tree} failed ({done.returncode}): {tail}")
    result = json.loads(lines[-1])
    if not isinstance(result, dict):
        raise RuntimeError(f"{argv[0]} did not end with a JSON object")
    return result


def medians(runs: list[dict[str, object]]) -> dict[str, float]:
    keys = {k for run in runs for k, v in run.items() if _number(v)}
    return {
        key: statistics.median(
            [float(run[key]) for run in runs if _number(run.get(key))]  # type: ignore[arg-type]
        )
        for key in sorted(keys)
    }


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare(rev_tree: Path, names: list[str], rounds: int, timeout_s: float) -> dict[str, object]:
    report: dict[str, object] = {}
    for name in names:
        argv = BENCHES[name]
        sides: dict[str, list[dict[str, object]]] = {"rev": [], "tree": []}
        for _ in range(rounds):
            sides["rev"].append(run_once(rev_tree, argv, timeout_s))
            sides["tree"].append(run_once(ROOT, argv, timeout_s))
        before, after = medians(sides["rev"]), medians(sides["tree"])
        figures = {}
        for key in sorted(set(before) & set(after)):
            ratio = after[key] / before[key] if before[key] else None
            figures[key] = {"rev": before[key], "tree": after[key], "ratio": ratio}
            shown = f"{ratio:.3f}" if ratio is not None else "-"
            print(f"{name:8} {key:32} rev {before[key]:>12.3f}  tree {after[key]:>12.3f}  {shown}")
        report[name] = figures
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the revision to compare with, e.g. 20c6da5")
    parser.add_argument("benches", nargs="*", help=f"of {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="runs on each side")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="per run")
    args = parser.parse_args()
    unknown = [name for name in args.benches if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    with tempfile.TemporaryDirectory(prefix="hotline-compare-") as scratch:
        rev_tree = Path(scratch) / "rev"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(rev_tree), args.rev],
            check=True,
            capture_output=True,
        )
        try:
            report = compare(rev_tree, args.benches or list(BENCHES), args.rounds, args.timeout_s)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(rev_tree)],
                capture_output=True,
            )
    print(json.dumps({"rev": args.rev, "rounds": args.rounds, "benches": report}))


if __name__ == "__main__":
    main()
