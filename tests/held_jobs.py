"""A job for the worker tests: its first run holds on (a job a worker is killed in the
middle of); later runs return at once. Runs are counted in Redis."""

from __future__ import annotations

import time

from rq import get_current_job


def held_on_first_run(counter_key: str) -> int:
    redis = get_current_job().connection  # type: ignore[union-attr]
    runs = int(redis.incr(counter_key))
    if runs == 1:
        time.sleep(600)
    return runs
