"""Where the processes write their Prometheus metrics (prometheus_client's multiprocess
mode): PROMETHEUS_MULTIPROC_DIR, by default VAR_DIR/metrics.

prometheus_client decides at import whether to write files, so the variable is set
before anything imports it: `hotline run` sets it for its children (and empties the
directory once, before they start), and every `hotline` command sets it for itself
and for the gunicorn it execs. A deployment may set it itself (a volume shared by the
web and FastAGI containers, so one scrape sees both). Only counters and histograms
are kept in files, so a process that exits leaves nothing stale that needs
mark_process_dead: its counts stay in the sums, as counters should."""

from __future__ import annotations

import os
from pathlib import Path

from hotline.config import Settings

ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_metrics_dir(settings: Settings, *, empty: bool = False) -> Path:
    """Set PROMETHEUS_MULTIPROC_DIR for this process and its children, make the folder,
    and with ``empty`` remove the files of a previous run."""
    path = Path(os.environ.get(ENV) or settings.var_dir / "metrics")
    path.mkdir(parents=True, exist_ok=True)
    if empty:
        for old in path.glob("*.db"):
            old.unlink(missing_ok=True)
    os.environ[ENV] = str(path)
    return path
