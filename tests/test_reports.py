"""The leaders' reports (calls.reports): a scripted day of calls and cases on a
controlled clock; the workbook the worker keeps, opened with openpyxl, holds the same
figures as the reports page in the browser and ``hotline report`` for that period."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

import calls.reports
import cases.dispatch
import cases.service
import web.reports
from cases.models import CallRecord, Case
from tests.test_console import PASSWORD, sign_in

BEIJING = ZoneInfo("Asia/Shanghai")
T0 = datetime(2025, 6, 9, 9, 0, tzinfo=BEIJING)  # a Monday morning
DAY = "2025-06-09"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(T0)
    monkeypatch.setattr(cases.service, "utcnow", c)
    monkeypatch.setattr(cases.dispatch, "utcnow", c)
    monkeypatch.setattr(calls.reports, "utcnow", c)
    # The page's own name for the clock: bound when web.reports was first imported,
    # which in a whole run is long before this test.
    monkeypatch.setattr(web.reports, "utcnow", c)
    return c


@pytest.fixture
def site(redis_server, redis, tmp_path, monkeypatch, clock, empty_db_url):  # type: ignore[no-untyped-def]
    """The web app and the CLI on one database (SQLite, then PostgreSQL) holding a
    scripted Monday (and the Sunday before it, for the trend)."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user
    from hotline.config import load_settings
    from hotline.webapp import create_app

    db_url = empty_db_url
    upgrade(db_url)
    env = {
        "HOTLINE_VAR_DIR": str(tmp_path),
        "HOTLINE_REPORTS_DIR": str(tmp_path / "reports"),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_server.url,
        "HOTLINE_SECRET_KEY": "test",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sessions = session_factory(engine_for(db_url))
    with sessions() as db:
        seed(db)
        add_user(db, "li", "supervisor", PASSWORD, display_name="李班长")
        add_user(db, "zhang", "leader", PASSWORD, display_name="张区长")
        db.commit()
        script_a_day(db, clock)
    app = create_app({"SETTINGS": load_settings(env), "REDIS": redis, "TESTING": True})
    return {"app": app, "sessions": sessions, "dir": tmp_path / "reports"}


def _case(db, name: str, unit: str) -> Case:  # type: ignore[no-untyped-def]
    from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch

    case = create_case_for_call(
        db,
        CallInfo(f"call-{name}", "+8613800138000", "asterisk", "1001"),
        CaseDraft(
            description=name,
            category_code="street-vending",
            district_code="longhua",
            dispatch=False,
        ),
    )
    dispatch(db, case, "1001", unit)
    db.commit()
    return case


def script_a_day(db, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    from cases.dispatch import apply_return_visit, resolve, sign_for

    def unit(code: str) -> int:
        from cases.models import Department

        return db.scalar(select(Department.id).where(Department.code == code))

    # Calls: three on Monday (two answered, one abandoned after a minute), one on Sunday.
    for n, (day, outcome, wait_ms) in enumerate(
        [(T0, "answered", 8000), (T0, "answered", 20000), (T0, "abandoned", 60000)]
        + [(T0 - timedelta(days=1), "answered", 5000)]
    ):
        queued = day.astimezone(UTC) + timedelta(minutes=n)
        db.add(
            CallRecord(
                call_id=f"r{n}",
                caller="+8613800138000",
                queued_at=queued,
                answered_at=queued + timedelta(milliseconds=wait_ms)
                if outcome == "answered"
                else None,
                ended_at=queued + timedelta(minutes=3),
                outcome=outcome,
                wait_ms=wait_ms,
                talk_ms=120000 if outcome == "answered" else None,
                wrapup_ms=30000 if outcome == "answered" else None,
            )
        )
    db.commit()
    # Cases: urban management signs in time, resolves, and the citizen is satisfied;
    # power supply signs an hour late, resolves, and the citizen is not satisfied.
    quick = _case(db, "quick", "urban-management")
    late = _case(db, "late", "power-supply")
    clock.now = T0 + timedelta(minutes=10)
    sign_for(db, quick, "cg1", unit("urban-management"))
    clock.now = T0 + timedelta(minutes=60)
    sign_for(db, late, "gd1", unit("power-supply"))
    clock.now = T0 + timedelta(hours=3)
    resolve(db, quick, "cg1", unit("urban-management"), "已处理")
    resolve(db, late, "gd1", unit("power-supply"), "已修复")
    db.commit()
    apply_return_visit(db, quick, "satisfied")
    apply_return_visit(db, late, "unsatisfied")
    db.commit()
    clock.now = T0 + timedelta(days=2)  # the report is written on Wednesday


def number(value: Any) -> float | None:
    """A figure from any of the three: a cell ("—" when empty), a JSON value, a page's
    data-value."""
    if value is None or value in ("", "—"):
        return None
    return round(float(value), 4)


def workbook_figures(path: Path) -> dict[str, Any]:
    book = load_workbook(path)
    assert book.sheetnames == ["概览", "单位排名", "个人排名", "热点与专题", "每日趋势"]
    overview = book["概览"]
    rows = list(overview.iter_rows(values_only=True))
    start = rows.index(("指标", "本期", "上期", "变化")) + 1
    trend = {r[0]: [number(v) for v in r[1:4]] for r in rows[start:] if r[0]}
    units_rows = list(book["单位排名"].iter_rows(values_only=True))
    assert units_rows[0][:3] == ("名次", "单位", "派单量")
    units = {r[1]: [number(v) for v in r[2:]] for r in units_rows[1:]}
    people = [tuple(r[1:]) for r in list(book["个人排名"].iter_rows(values_only=True))[1:]]
    return {"trend": trend, "units": units, "people": people, "period": rows[1][1]}


def test_the_workbook_the_page_and_the_cli_give_the_same_figures(site) -> None:  # type: ignore[no-untyped-def]
    from calls.reports import LABELS, generate
    from cases.reports import KeptReport, period
    from hotline.cli import main

    start, _ = period("daily", T0.date())
    with site["sessions"]() as db:
        row = generate(db, "daily", start, site["dir"])
        assert (row.kind, row.file_name) == ("daily", "12345-日报-20250609.xlsx")
        assert db.scalar(select(KeptReport.file_name)) == row.file_name
    book = workbook_figures(site["dir"] / row.file_name)
    assert book["period"] == f"{DAY} 至 {DAY}"

    out = CliRunner().invoke(
        main,
        ["--log-level", "WARNING", "report", "--kind", "daily", "--day", DAY],
        catch_exceptions=False,
    )
    cli = json.loads(out.output)
    report = cli["report"]
    assert (cli["wanted_person"], cli["answered"]) == (3, 2)  # the old keys stay
    cli_trend = {
        LABELS[r["key"]]: [number(r[k]) for k in ("current", "previous", "change")]
        for r in report["trend"]
    }
    cli_units = {
        u["unit"]: [
            number(u[k])
            for k in (
                "received",
                "signed_in_time",
                "resolved_in_time",
                "returned",
                "overdue",
                "response_rate",
                "resolution_rate",
                "satisfaction_rate",
                "score",
            )
        ]
        for u in report["units"]
    }

    client = site["app"].test_client()
    sign_in(client, "zhang")  # a leader reads the reports
    page = client.get(f"/reports/?kind=daily&day={DAY}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    page_trend = {
        LABELS[key]: [number(v) for v in re.findall(r'data-value="([^"]*)"', cells)]
        for key, cells in re.findall(r'<tr data-key="(\w+)">(.*?)</tr>', html, re.S)
    }
    names = {u["code"]: u["unit"] for u in report["units"]}
    page_units = {
        names[code]: [number(v) for v in re.findall(r'data-value="([^"]*)"', cells)]
        for code, cells in re.findall(r'<tr data-code="([^"]*)">(.*?)</tr>', html, re.S)
    }

    assert book["trend"] == cli_trend == page_trend
    assert book["units"] == cli_units == page_units
    # The scripted day, as a person would check it.
    assert book["trend"]["人工接听量"] == [2, 1, 1]
    assert book["trend"]["人工接通率"][0] == number(2 / 3)
    # Three dispatches: the unsatisfied citizen's case went back to power supply, which
    # has not signed for it again by Wednesday (late: not responded).
    assert book["trend"]["派单量"][:2] == [3, 0]
    assert [book["trend"][k][0] for k in ("响应率", "解决率", "满意率")] == [0.3333, 1.0, 0.5]
    assert book["trend"]["三率综合得分"][0] == 70.83  # 100 × (0.1 × ⅓ + 0.45 × 1 + 0.45 × ½)
    assert book["units"]["市综合行政执法局（城管）"][5:] == [1.0, 1.0, 1.0, 100.0]
    assert book["people"] == [("海南电网海口供电局", "—", 1)]
    assert "<svg" in html and "<script" not in html.split("<main>")[1]


def test_the_worker_keeps_the_days_weeks_and_months_reports(site, redis) -> None:  # type: ignore[no-untyped-def]
    from rq import Queue, SimpleWorker

    from calls import RQ_QUEUE
    from cases.reports import KeptReport

    jobs = Queue(RQ_QUEUE, connection=redis)
    jobs.enqueue("calls.reports.upkeep", job_id="reports-upkeep")
    SimpleWorker([jobs], connection=redis).work(burst=True)
    with site["sessions"]() as db:
        kept = {r.kind: r for r in db.scalars(select(KeptReport))}
    # Wednesday 11 June 2025: Tuesday's day, the week before, and May.
    assert {k: r.file_name for k, r in kept.items()} == {
        "daily": "12345-日报-20250610.xlsx",
        "weekly": "12345-周报-20250602.xlsx",
        "monthly": "12345-月报-20250501.xlsx",
    }
    client = site["app"].test_client()
    sign_in(client, "li")
    with client.get(f"/reports/kept/{kept['daily'].id}") as got:
        assert got.status_code == 200 and got.data[:2] == b"PK"  # an xlsx is a zip
        assert "12345-%E6%97%A5%E6%8A%A5" in got.headers["Content-Disposition"]
    # A department's clerk does not read the leaders' reports.
    with site["sessions"]() as db:
        from cases.users import add_user

        add_user(db, "water", "department", PASSWORD, department_code="water-affairs")
        db.commit()
    clerk = site["app"].test_client()
    sign_in(clerk, "water")
    assert clerk.get(f"/reports/kept/{kept['daily'].id}").status_code == 403


def change_cells(html: str) -> dict[str, tuple[str, str]]:
    """The overview's change column: key -> (classes, data-value)."""
    return {
        key: (classes, value)
        for key, classes, value in re.findall(
            r'<tr data-key="(\w+)">.*?<td class="(fig change[^"]*)" data-value="([^"]*)"',
            html,
            re.S,
        )
    }


def test_the_page_says_which_changes_are_good_news_and_opens_a_finished_period(site) -> None:  # type: ignore[no-untyped-def]
    client = site["app"].test_client()
    sign_in(client, "zhang")
    monday = change_cells(client.get(f"/reports/?kind=daily&day={DAY}").get_data(as_text=True))
    tuesday = change_cells(client.get("/reports/?kind=daily&day=2025-06-10").get_data(as_text=True))
    # One overdue case more is bad news, one fewer is good; more calls are neither.
    assert monday["overdue"] == ("fig change bad", "1")
    assert tuesday["overdue"] == ("fig change good", "-1")
    assert monday["connection_rate"][0] == "fig change bad"  # a rate that fell
    assert monday["wanted_person"] == ("fig change", "2")
    html = client.get(f"/reports/?kind=daily&day={DAY}").get_data(as_text=True)
    assert "三率权重 10% / 45% / 45%" in html
    # The units' first figure has the workbook's name for it.
    head = re.search(r'<table id="units-table".*?</thead>', html, re.S).group(0)  # type: ignore[union-attr]
    assert "<th>派单量</th>" in head and "受理量" not in head
    # Switching 日报 to 月报 on Wednesday 11 June, the date untouched: May, which is over.
    html = client.get(
        "/reports/?kind=monthly&day=2025-06-10&was_kind=daily&was_day=2025-06-10"
    ).get_data(as_text=True)
    assert 'id="report-start">2025-05-01<' in html and "report-unfinished" not in html
    # Asked for June by date: it is June, said to be unfinished, with the way to May.
    html = client.get("/reports/?kind=monthly&day=2025-06-10").get_data(as_text=True)
    assert 'id="report-start">2025-06-01<' in html
    notice = re.search(r'id="report-unfinished">.*?</p>', html, re.S).group(0)  # type: ignore[union-attr]
    assert "本期尚未结束" in notice and "day=2025-05-01" in notice


def test_the_workbook_reads_and_prints_well(site, clock) -> None:  # type: ignore[no-untyped-def]
    from calls.reports import generate
    from cases.reports import period

    start, _ = period("daily", T0.date())
    with site["sessions"]() as db:
        # Late on Monday water affairs gets a case not due yet: its rates are empty.
        clock.now = T0.replace(hour=23, minute=50)
        _case(db, "fresh", "water-affairs")
        row = generate(db, "daily", start, site["dir"], now=clock.now + timedelta(minutes=5))
    book = load_workbook(site["dir"] / row.file_name)
    for ws in book.worksheets:
        assert ws.freeze_panes is not None, ws.title
        assert ws.page_setup.orientation == "landscape", ws.title
        assert int(ws.page_setup.paperSize) == 9, ws.title  # A4
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight) == (1, 0), ws.title
    units = book["单位排名"]
    assert units.freeze_panes == "A2"
    # Every header fits its column: a CJK character is about two columns wide.
    for cell in units[1]:
        width = units.column_dimensions[cell.column_letter].width
        assert width >= 2 * len(cell.value), (cell.value, width)
    # An empty rate reads "—" as on the page; rates that exist stay numbers.
    values = [c for r in units.iter_rows(min_row=2, min_col=3) for c in r]
    assert all(c.value is not None for c in values)
    assert any(c.value == "—" for c in values)
    rates = [c for c in values if c.number_format == "0.0%"]
    assert rates and all(isinstance(c.value, int | float) for c in rates)
    overview = list(book["概览"].iter_rows(values_only=True))
    assert ("三率权重（响应率/解决率/满意率）", "10% / 45% / 45%", None, None) in overview
    assert ("响应率", 0.3333, "—", "—") in overview
