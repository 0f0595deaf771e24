"""The units' rankings (cases.rankings) on a scripted history with a controlled clock,
against SQLite and PostgreSQL; the rankings CSV over HTTP; the vendored ECharts build."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import cases.dispatch
import cases.service
from cases import clocks
from cases.db import engine_for, session_factory
from cases.dispatch import dispatch_to, resolve, return_case, sign_for, supervise
from cases.models import Case, Department, OverdueRecord
from cases.rankings import overdue_people, rankings
from cases.service import CallInfo, CaseDraft, create_case_for_call, dispatch

BEIJING = ZoneInfo("Asia/Shanghai")
JUNE = (datetime(2025, 6, 1, tzinfo=BEIJING), datetime(2025, 7, 1, tzinfo=BEIJING))
T0 = datetime(2025, 6, 9, 9, 0, tzinfo=BEIJING)  # a Monday morning
ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """The cases' clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)  # as cases.service.utcnow: SQLite keeps no zone


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(T0)
    monkeypatch.setattr(cases.service, "utcnow", c)
    monkeypatch.setattr(cases.dispatch, "utcnow", c)
    return c


@pytest.fixture
def sessions(db_url: str):  # type: ignore[no-untyped-def]
    return session_factory(engine_for(db_url))


def unit_id(db, code: str) -> int:  # type: ignore[no-untyped-def]
    return db.scalar(select(Department.id).where(Department.code == code))


def new_case(db, name: str, unit: str | None = None) -> Case:  # type: ignore[no-untyped-def]
    """A street-vending case (urban-management's by the catalogue), dispatched now."""
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


def by_code(rows: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r["code"]: r for r in rows}


def test_a_return_and_its_lateness_are_charged_to_the_unit_that_returned_it(
    sessions, clock
) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        case = new_case(db, "returned late")  # to urban-management, respond by 09:30
        urban = unit_id(db, "urban-management")
        clock.now = T0 + timedelta(minutes=40)  # returned without signing for: late
        return_case(db, case, "urban", urban, "属供电问题")
        db.commit()
        clock.now = T0 + timedelta(minutes=50)  # the supervisor's 改派
        dispatch_to(db, case, "li", "power-supply")
        db.commit()
        power = unit_id(db, "power-supply")
        clock.now = T0 + timedelta(minutes=60)  # inside power's own 30 minutes
        sign_for(db, case, "power", power)
        clock.now = T0 + timedelta(days=1)
        resolve(db, case, "power", power, "已修复线路")
        db.commit()
        record = db.scalar(select(OverdueRecord))
        assert (record.department_id, record.kind) == (urban, "response")

        rows = by_code(rankings(db, *JUNE, now=clock.now))
    assert rows["urban-management"] == {
        **rows["urban-management"],
        "received": 1,
        "signed_in_time": 0.0,  # its deadline passed while it held the case
        "resolved_in_time": None,  # returned well inside the handling limit: not counted
        "returned": 1,
        "overdue": 1,
    }
    assert rows["power-supply"] == {
        **rows["power-supply"],
        "received": 1,
        "signed_in_time": 1.0,
        "resolved_in_time": 1.0,
        "returned": 0,
        "overdue": 0,
    }


def test_a_case_inside_its_limits_is_not_a_failure(sessions, clock) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        new_case(db, "just dispatched", "water-supply")
        clock.now = T0 + timedelta(minutes=5)
        water = by_code(rankings(db, *JUNE, now=clock.now))["water-supply"]
        assert (water["received"], water["signed_in_time"], water["resolved_in_time"]) == (
            1,
            None,
            None,
        )
        assert (water["responses_due"], water["handlings_due"]) == (0, 0)
        # Once its 30 minutes have passed unsigned, it is a failure, swept or not.
        clock.now = T0 + timedelta(minutes=31)
        water = by_code(rankings(db, *JUNE, now=clock.now))["water-supply"]
        assert (water["signed_in_time"], water["resolved_in_time"]) == (0.0, None)


def test_an_overdue_case_names_the_unit_and_the_person_that_signed_for_it(sessions, clock) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        case = new_case(db, "never resolved", "water-affairs")
        water = unit_id(db, "water-affairs")
        clock.now = T0 + timedelta(minutes=10)
        sign_for(db, case, "zhang", water)
        db.commit()
        due = case.handle_by
        assert due is not None
        clock.now = due + timedelta(minutes=1)
        assert clocks.fire(db, case, "handling_due", clock()) == "overdue"
        db.commit()
        record = db.scalar(select(OverdueRecord))
        assert (record.department_id, record.person, record.kind) == (water, "zhang", "handling")

        row = by_code(rankings(db, *JUNE, now=clock.now))["water-affairs"]
        assert (row["signed_in_time"], row["resolved_in_time"], row["overdue"]) == (1.0, 0.0, 1)
        assert overdue_people(db, *JUNE) == [
            {"unit": "市水务局", "code": "water-affairs", "person": "zhang", "overdue": 1}
        ]
        # A later period sees neither the dispatch nor the missed limit.
        july = (JUNE[1], JUNE[1] + timedelta(days=31))
        assert "water-affairs" not in by_code(rankings(db, *july, now=clock.now))


def test_an_upheld_return_and_a_reopened_case_count_each_dispatch_once(sessions, clock) -> None:  # type: ignore[no-untyped-def]
    from cases.dispatch import apply_return_visit, uphold

    with sessions() as db:
        case = new_case(db, "upheld")
        urban = unit_id(db, "urban-management")
        clock.now = T0 + timedelta(minutes=5)
        return_case(db, case, "urban", urban, "不归我们管")
        clock.now = T0 + timedelta(minutes=10)
        uphold(db, case, "li")  # back to urban, clocks restarted
        clock.now = T0 + timedelta(minutes=20)
        sign_for(db, case, "urban", urban)
        clock.now = T0 + timedelta(hours=3)
        resolve(db, case, "urban", urban, "已清理")
        apply_return_visit(db, case, "unsatisfied")  # back to urban once more
        clock.now = T0 + timedelta(hours=3, minutes=10)
        db.commit()
        row = by_code(rankings(db, *JUNE, now=clock.now))["urban-management"]
    # three dispatches: the first returned in time (counted nowhere), the second signed
    # and resolved in time, the third (after the unsatisfied visit) still inside its limit
    assert (row["received"], row["returned"], row["responses_due"], row["handlings_due"]) == (
        3,
        1,
        1,
        1,
    )
    assert (row["signed_in_time"], row["resolved_in_time"], row["satisfaction"]) == (
        1.0,
        1.0,
        0.0,
    )


# -- the CSV over HTTP, and its cells ---------------------------------------------------


def test_csv_cells_that_start_like_a_formula_are_neutralised() -> None:
    from web.console.supervision import csv_cell

    assert csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    for risky in ("+1+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(risky) == "'" + risky
    # real numbers stay numbers, negative ones included
    assert [csv_cell(v) for v in (-3, -0.25, "-3", "-0.25", 0.5, None, "市水务局")] == [
        -3,
        -0.25,
        "-3",
        "-0.25",
        0.5,
        "",
        "市水务局",
    ]


def test_the_rankings_csv_neutralises_a_unit_named_like_a_formula(
    redis_server, redis, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import make_app, sign_in

    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        db.add(Department(code="-cmd", name='=HYPERLINK("http://evil","点我")', kind="department"))
        db.commit()
        new_case(db, "formula", "-cmd")
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    body = supervisor.get("/console/rankings?format=csv").get_data(as_text=True)
    assert body.startswith("\ufeff单位,受理量")
    line = next(line for line in body.splitlines() if "HYPERLINK" in line)
    assert line.startswith('"\'=HYPERLINK(""http://evil"",""点我"")",1,')
    page = supervisor.get("/console/rankings").get_data(as_text=True)
    assert 'data-code="-cmd"' in page and "尚未到期" in page  # inside its limit: no rate


# -- the chart library ------------------------------------------------------------------

CHART = """
const echarts = require(process.argv[1]);
const chart = echarts.init(null, null, {renderer: "svg", ssr: true, width: 480, height: 320});
chart.setOption({
  tooltip: {trigger: "axis"}, legend: {},
  xAxis: {type: "category", data: ["市水务局"]}, yAxis: {type: "value"},
  series: [
    {name: "按时签收率", type: "bar", data: [50]},
    {name: "按时办结率", type: "bar", data: [75]},
  ],
});
const svg = chart.renderToSVGString();
console.log(JSON.stringify({
  legend: svg.includes("按时签收率") && svg.includes("按时办结率"),
  tooltip: chart.getModel().getComponent("tooltip") !== undefined,
}));
chart.dispose();
process.exit(0);
"""


def test_the_vendored_echarts_has_a_legend_and_a_tooltip() -> None:
    templates = [ROOT / "web/templates/rankings.html", ROOT / "web/templates/wallboard.html"]
    builds = set()
    for template in templates:
        text = template.read_text()
        assert "echarts.simple" not in text
        builds |= {
            part.split("'")[0] for part in text.split("static_url('")[1:] if "echarts" in part
        }
    assert builds == {"vendor/echarts-6.1.0/echarts.min.js"}
    build = ROOT / "web/static" / builds.pop()
    assert (build.parent / "LICENSE").exists() and (build.parent / "NOTICE").exists()
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to run the chart library")
    out = subprocess.run(
        [node, "-e", CHART, str(build)], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"legend": True, "tooltip": True}


def test_notes_written_while_a_case_waits_are_not_transitions(sessions, clock) -> None:  # type: ignore[no-untyped-def]
    """A 督办 written while a case is returned, or a reminder while it is dispatched,
    carries the case's status in the trail: neither is a second return nor a new
    dispatch that would end the unit's hold on the case."""
    from cases.clocks import fire

    with sessions() as db:
        case = new_case(db, "noted", "water-supply")
        clock.now = T0 + timedelta(minutes=25)
        assert fire(db, case, "response_reminder", clock.now) == "reminder"
        clock.now = T0 + timedelta(minutes=26)
        sign_for(db, case, "supply", unit_id(db, "water-supply"))
        clock.now = T0 + timedelta(minutes=40)
        return_case(db, case, "supply", unit_id(db, "water-supply"), "非供水问题")
        supervise(db, case, "li", "请尽快改派")
        db.commit()
        water = by_code(rankings(db, *JUNE, now=clock.now))["water-supply"]
    assert (water["received"], water["signed_in_time"], water["returned"]) == (1, 1.0, 1)
