"""`hotline reaper` as a process, against a real redis-server and SQLite: it keeps
running, and its clock sweep marks a case overdue when its 30 minutes are up."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from cases.db import engine_for, session_factory, upgrade
from cases.models import Case
from cases.seed import seed
from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch
from queueing.keys import QueueKeys
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]


def test_the_reaper_runs_the_clocks(redis_server, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    sessions = session_factory(engine_for(db_url))
    with sessions() as db:
        seed(db)
        case = create_case_for_call(
            db,
            CallInfo("c1", "+8613800138000", "asterisk", "1001"),
            CaseDraft(category_code="street-vending", dispatch=False),
        )
        dispatch(db, case, "1001")
        case.dispatched_at = datetime.now(UTC) - timedelta(minutes=31)  # its 30 minutes are up
        case.respond_by = case.dispatched_at + timedelta(minutes=30)
        db.commit()
        case_id = case.id
    keys = QueueKeys("reapertest")
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": db_url,
        "HOTLINE_VAR_DIR": str(tmp_path),
        "HOTLINE_QUEUE": "reapertest",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "reaper.log"
    with open(log, "ab") as out:
        reaper = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "reaper"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # No timer was set for this case: the reaper's reconciliation finds it in SQL.
        def overdue() -> bool:
            with sessions() as db:
                return bool(db.get(Case, case_id).response_overdue)

        wait_until(overdue, timeout_s=20, what="the case marked overdue by the reaper")
        assert reaper.poll() is None, log.read_text()
        assert redis.zcard(keys.clocks) == 2  # the handling timers remain
    finally:
        reaper.terminate()
        reaper.wait(timeout=20)
    assert reaper.returncode in (0, -15), log.read_text()
    with sessions() as db:
        assert db.scalar(select(Case.response_overdue).where(Case.id == case_id))


def test_the_dialer_process_plans_its_work_list(redis_server, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Without a telephony configured it places nothing, but it keeps the work list."""
    from cases.models import CallbackRequest, OutboundItem

    db_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(db_url)
    sessions = session_factory(engine_for(db_url))
    with sessions() as db:
        db.add(
            CallbackRequest(
                call_id="c-asked",
                caller_phone="+8613600000001",
                reason="long_wait",
                requested_at=datetime.now(UTC),
            )
        )
        db.commit()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": db_url,
        "HOTLINE_VAR_DIR": str(tmp_path),
        "HOTLINE_QUEUE": "dialertest",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "dialer.log"
    with open(log, "ab") as out:
        dialer = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "dialer"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def planned() -> bool:
            with sessions() as db:
                return db.scalar(select(OutboundItem.source)) == "callback:c-asked"

        wait_until(planned, timeout_s=20, what="the callback planned")
        assert dialer.poll() is None, log.read_text()
        assert redis.zcard(QueueKeys("dialertest").dial_due) == 1
    finally:
        dialer.terminate()
        dialer.wait(timeout=20)
    assert "nothing is dialled" in log.read_text()
