"""The leaders' daily, weekly and monthly reports: one set of figures for a period,
shown three ways that must agree: the Excel workbook (openpyxl), the browser page
(web/reports) and ``hotline report``.

The figures are the national indicators (calls.figures), the units' rankings and the
people charged with late cases (cases.rankings), the three rates (cases.reports), the
hot topics and special topics (cases.topics), and the same for the period before, for
the trend. Every number is computed here once, in ``report_figures``; the surfaces
only lay it out.

The reaper asks for ``upkeep`` every few minutes; it writes the newest complete day's,
week's and month's workbooks that are not kept yet, under HOTLINE_REPORTS_DIR (default
HOTLINE_VAR_DIR/reports), one ``KeptReport`` row each.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from calls.figures import case_figures, figures
from cases import reports as kept
from cases.models import Case
from cases.rankings import overdue_people, rankings
from cases.reports import RateSettings, city_totals, three_rates
from cases.service import HOTLINE_TZ, utcnow
from cases.topics import current_hot_topics, special_topic_figures

log = logging.getLogger("hotline.reports")

UPKEEP_EVERY_S = 600.0  # how often the reaper asks for ``upkeep``
ONE_MS = timedelta(milliseconds=1)
KIND_WORDS = {"daily": "日报", "weekly": "周报", "monthly": "月报"}

# The figures a trend compares, in the order the sheets and pages show them:
# (key in the overview, zh-CN label, kind: count | rate | seconds | score).
OVERVIEW = (
    ("wanted_person", "呼入人工请求量", "count"),
    ("answered", "人工接听量", "count"),
    ("abandoned", "放弃量", "count"),
    ("connection_rate", "人工接通率", "rate"),
    ("answered_within_15s_rate", "15秒人工应答及时率", "rate"),
    ("avg_wait_s", "平均等待时长（秒）", "seconds"),
    ("avg_handle_s", "平均处理时长（秒）", "seconds"),
    ("cases_created", "新建工单量", "count"),
    ("dispatched", "派单量", "count"),
    ("knowledge_answer_rate", "知识库直接答复率", "rate"),
    ("first_contact_rate", "一次办结率", "rate"),
    ("response_rate", "响应率", "rate"),
    ("resolution_rate", "解决率", "rate"),
    ("satisfaction_rate", "满意率", "rate"),
    ("score", "三率综合得分", "score"),
    ("returned", "退单量", "count"),
    ("overdue", "超时量", "count"),
)
LABELS = {key: label for key, label, _ in OVERVIEW}
KINDS_OF = {key: kind for key, _, kind in OVERVIEW}
# Which way a figure should move to be good news: "up", "down", or None for volumes
# that are neither (more calls is not better or worse work).
BETTER = {
    "abandoned": "down",
    "connection_rate": "up",
    "answered_within_15s_rate": "up",
    "avg_wait_s": "down",
    "knowledge_answer_rate": "up",
    "first_contact_rate": "up",
    "response_rate": "up",
    "resolution_rate": "up",
    "satisfaction_rate": "up",
    "score": "up",
    "returned": "down",
    "overdue": "down",
}


def verdict(key: str, change: float | None) -> str | None:
    """Whether a change of the figure ``key`` is "good" or "bad" news; None when neither."""
    better = BETTER.get(key)
    if better is None or not change:
        return None
    return "good" if (change > 0) == (better == "up") else "bad"


def weights_as_percent(weights: Any) -> str:
    """The three rates' weights as shares of their sum: "10% / 45% / 45%"."""
    total = sum(weights) or 1
    return " / ".join(f"{round(w / total * 100, 1):g}%" for w in weights)


def _beijing(moment: datetime) -> str:
    return moment.astimezone(HOTLINE_TZ).strftime("%Y-%m-%d %H:%M")


def _overview(
    db: Session, start: datetime, end: datetime, settings: RateSettings, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    calls = figures(db, start, end).as_dict()
    cases = case_figures(db, start, end).as_dict()
    units = rankings(db, start, end, now=now)
    totals = city_totals(units)
    rates = three_rates(totals, settings)
    lo, hi = start.astimezone(UTC), end.astimezone(UTC)
    created = db.scalar(
        select(func.count()).select_from(Case).where(Case.created_at >= lo, Case.created_at < hi)
    )
    overview = {
        **{k: calls[k] for k in ("wanted_person", "answered", "abandoned", "connection_rate")},
        **{k: calls[k] for k in ("answered_within_15s_rate", "avg_wait_s", "avg_handle_s")},
        "cases_created": created or 0,
        "dispatched": totals["received"],
        "knowledge_answer_rate": cases["knowledge_answer_rate"],
        "first_contact_rate": cases["first_contact_rate"],
        **{k: rates[k] for k in ("response_rate", "resolution_rate", "satisfaction_rate")},
        "score": rates["score"],
        "returned": totals["returned"],
        "overdue": totals["overdue"],
    }
    return overview, units, rates


def report_figures(
    db: Session,
    kind: str,
    start: datetime,
    end: datetime,
    settings: RateSettings | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every figure of the report for ``[start, end)`` (Beijing), JSON-ready: numbers,
    shares in [0, 1] (None when nothing is due yet), and text in zh-CN."""
    settings = settings or RateSettings.from_env()
    now = now or utcnow()
    overview, units, rates = _overview(db, start, end, settings, now)
    before_start, before_end = (
        kept.previous(kind, start)
        if kind in kept.KINDS
        else (
            start - (end - start),
            start,
        )
    )
    before, _, _ = _overview(db, before_start, before_end, settings, now)
    trend = [
        {
            "key": key,
            "label": label,
            "kind": what,
            "current": overview[key],
            "previous": before[key],
            "change": _change(overview[key], before[key]),
            "verdict": verdict(key, _change(overview[key], before[key])),
        }
        for key, label, what in OVERVIEW
    ]
    unit_rows = []
    for row in units:
        unit_rates = three_rates(row, settings)
        unit_rows.append(
            {
                "unit": row["unit"],
                "code": row["code"],
                "received": row["received"],
                "signed_in_time": row["signed_in_time"],
                "resolved_in_time": row["resolved_in_time"],
                "returned": row["returned"],
                "overdue": row["overdue"],
                "response_rate": unit_rates["response_rate"],
                "resolution_rate": unit_rates["resolution_rate"],
                "satisfaction_rate": unit_rates["satisfaction_rate"],
                "score": unit_rates["score"],
            }
        )
    # Ranked by the score, as the assessment ranks them; units with no score last.
    unit_rows.sort(
        key=lambda r: (r["score"] is None, -(r["score"] or 0), -r["received"], r["code"])
    )
    for n, row in enumerate(unit_rows, 1):
        row["rank"] = n
    hot_at = min(end, now)  # a past period: the topics open as it ended
    return {
        "kind": kind,
        "title": f"12345热线{KIND_WORDS.get(kind, '报表')}",
        "start": start.astimezone(HOTLINE_TZ).date().isoformat(),
        "end": (end.astimezone(HOTLINE_TZ) - ONE_MS).date().isoformat(),
        "previous_start": before_start.astimezone(HOTLINE_TZ).date().isoformat(),
        "previous_end": (before_end.astimezone(HOTLINE_TZ) - ONE_MS).date().isoformat(),
        "generated_at": _beijing(now),
        "rates_settings": {
            "weights": list(settings.weights),
            "response_basis": settings.response_basis,
            "resolution_basis": settings.resolution_basis,
        },
        "overview": overview,
        "rates": rates,
        "trend": trend,
        "units": unit_rows,
        "people": overdue_people(db, start, end),
        "hot_topics": [
            {
                "title": t.title,
                "raised_at": _beijing(t.raised_at),
                "cases": t.case_count,
                "baseline": t.baseline,
                "suggested_unit": t.suggested_unit,
            }
            for t in current_hot_topics(db, hot_at)
        ],
        "special_topics": [
            {
                "name": s.name,
                "cases": s.cases,
                "resolved": s.resolved,
                "overdue": s.overdue,
                "satisfied": s.satisfied,
                "rated": s.rated,
                "satisfaction_rate": round(s.satisfied / s.rated, 4) if s.rated else None,
            }
            for s in special_topic_figures(db, start, end)
        ],
        "days": [
            {"day": day.isoformat(), **_day_counts(db, day_start)}
            for day, day_start in _day_starts(start, end)
        ],
    }


def _day_starts(start: datetime, end: datetime) -> list[tuple[Any, datetime]]:
    return [(day, kept.period("daily", day)[0]) for day in kept.days_of(start, end)]


def _day_counts(db: Session, day_start: datetime) -> dict[str, int]:
    """One day's calls answered and asked for, and cases made: the trend chart's bars."""
    calls = figures(db, day_start, day_start + timedelta(days=1))
    lo = day_start.astimezone(UTC)
    made = db.scalar(
        select(func.count())
        .select_from(Case)
        .where(Case.created_at >= lo, Case.created_at < lo + timedelta(days=1))
    )
    return {"wanted_person": calls.wanted_person, "answered": calls.answered, "cases": made or 0}


def _change(current: Any, before: Any) -> float | None:
    """current − previous (for a share, in percentage points ×0.01, as stored)."""
    if current is None or before is None:
        return None
    return round(current - before, 4)


# -- the workbook -------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A figure as a cell: None as an empty cell; text that a spreadsheet would run as a
    formula quoted (OWASP, CSV/formula injection)."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@")):
        return "'" + value
    return value


RATE_FORMAT = "0.0%"
DASH = "—"  # an empty figure, as the page shows it


def _or_dash(value: Any) -> Any:
    return DASH if value is None else value


def _text_width(text: str) -> int:
    """Columns a text takes in a spreadsheet: CJK and full-width characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _shown_text(cell: Any) -> str:
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, float) and cell.number_format == RATE_FORMAT:
        return f"{value * 100:.1f}%"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _lay_out(ws: Any, header_row: int = 1, measure_from: int = 1) -> None:
    """Every sheet alike: columns as wide as their widest cell, the header row frozen,
    printed on A4 landscape, fitted to the page's width."""
    from openpyxl.utils import get_column_letter

    widths: dict[int, int] = {}
    for row in ws.iter_rows(min_row=measure_from):
        for cell in row:
            widths[cell.column] = max(widths.get(cell.column, 0), _text_width(_shown_text(cell)))
    for column, width in widths.items():
        ws.column_dimensions[get_column_letter(column)].width = min(60, max(8, width + 2))
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as it takes


def write_workbook(report: Mapping[str, Any], path: Path) -> None:
    """The report as an .xlsx workbook: 概览, 单位排名, 个人排名, 热点与专题, 每日趋势."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    bold = Font(bold=True)

    def sheet(title: str, first: bool = False):  # type: ignore[no-untyped-def]
        ws = book.active if first else book.create_sheet()
        ws.title = title
        return ws

    def header(ws, *names: str) -> None:  # type: ignore[no-untyped-def]
        ws.append(list(names))
        for c in ws[ws.max_row]:
            c.font = bold

    def rates_as_percent(ws, columns: list[int]) -> None:  # type: ignore[no-untyped-def]
        for row in ws.iter_rows(min_row=2):
            for i in columns:
                if isinstance(row[i].value, float):
                    row[i].number_format = RATE_FORMAT

    ws = sheet("概览", first=True)
    ws.append([report["title"]])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(["统计周期", f"{report['start']} 至 {report['end']}"])
    ws.append(["对比周期", f"{report['previous_start']} 至 {report['previous_end']}"])
    ws.append(["生成时间（北京时间）", report["generated_at"]])
    weights = report["rates_settings"]["weights"]
    ws.append(["三率权重（响应率/解决率/满意率）", weights_as_percent(weights)])
    ws.append([])
    header(ws, "指标", "本期", "上期", "变化")
    top = ws.max_row
    for row in report["trend"]:
        ws.append([row["label"], *(_or_dash(row[k]) for k in ("current", "previous", "change"))])
        if row["kind"] == "rate":
            for c in ws[ws.max_row][1:]:
                if isinstance(c.value, float):
                    c.number_format = RATE_FORMAT
    _lay_out(ws, header_row=top, measure_from=2)  # the title may run over

    ws = sheet("单位排名")
    header(
        ws,
        "名次",
        "单位",
        "派单量",
        "按时签收率",
        "按时办结率",
        "退单量",
        "超时量",
        "响应率",
        "解决率",
        "满意率",
        "综合得分",
    )
    for r in report["units"]:
        ws.append(
            [
                r["rank"],
                _cell(r["unit"]),
                r["received"],
                _or_dash(r["signed_in_time"]),
                _or_dash(r["resolved_in_time"]),
                r["returned"],
                r["overdue"],
                _or_dash(r["response_rate"]),
                _or_dash(r["resolution_rate"]),
                _or_dash(r["satisfaction_rate"]),
                _or_dash(r["score"]),
            ]
        )
    rates_as_percent(ws, [3, 4, 7, 8, 9])
    _lay_out(ws)

    ws = sheet("个人排名")
    header(ws, "名次", "单位", "责任人", "超时量")
    for n, p in enumerate(report["people"], 1):
        ws.append([n, _cell(p["unit"]), _cell(p["person"] or DASH), p["overdue"]])
    _lay_out(ws)

    ws = sheet("热点与专题")
    header(ws, "热点", "发现时间", "工单量", "基线", "建议牵头单位")
    for t in report["hot_topics"]:
        ws.append(
            [
                _cell(t["title"]),
                t["raised_at"],
                t["cases"],
                t["baseline"],
                _cell(_or_dash(t["suggested_unit"])),
            ]
        )
    if not report["hot_topics"]:
        ws.append(["（本期无热点）"])
    ws.append([])
    header(ws, "专题", "工单量", "已办结", "超时量", "满意数", "回访有效数", "满意率")
    for s in report["special_topics"]:
        ws.append(
            [
                _cell(s["name"]),
                s["cases"],
                s["resolved"],
                s["overdue"],
                s["satisfied"],
                s["rated"],
                _or_dash(s["satisfaction_rate"]),
            ]
        )
        if isinstance(s["satisfaction_rate"], float):
            ws.cell(row=ws.max_row, column=7).number_format = RATE_FORMAT
    if not report["special_topics"]:
        ws.append(["（本期无专题）"])
    _lay_out(ws)

    ws = sheet("每日趋势")
    header(ws, "日期", "呼入人工请求量", "人工接听量", "新建工单量")
    for d in report["days"]:
        ws.append([d["day"], d["wanted_person"], d["answered"], d["cases"]])
    _lay_out(ws)

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    book.save(partial)
    os.replace(partial, path)


# -- kept reports and the job ------------------------------------------------------------


@dataclass(frozen=True)
class ReportEnv:
    """What the job needs, from the worker's environment."""

    database_url: str
    directory: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReportEnv:
        from cases.db import database_url_from_env

        env = os.environ if env is None else env
        var_dir = Path(env.get("HOTLINE_VAR_DIR", "var"))
        return cls(
            database_url=database_url_from_env(env),
            directory=Path(env.get("HOTLINE_REPORTS_DIR") or var_dir / "reports").resolve(),
        )


def reports_dir(env: Mapping[str, str] | None = None) -> Path:
    return ReportEnv.from_env(env).directory


def generate(
    db: Session,
    kind: str,
    start: datetime,
    directory: Path,
    now: datetime | None = None,
    by: str = "system",
    settings: RateSettings | None = None,
) -> kept.KeptReport:
    """Write the period's workbook and keep it (again, if it was kept already: the
    newer figures replace the older)."""
    now = now or utcnow()
    start, end = kept.period(kind, start.astimezone(HOTLINE_TZ).date())
    report = report_figures(db, kind, start, end, settings=settings, now=now)
    name = kept.file_name_for(kind, start)
    write_workbook(report, directory / name)
    row = kept.kept(db, kind, start)
    if row is None:
        row = kept.KeptReport(kind=kind, period_start=start.astimezone(UTC), file_name=name)
        db.add(row)
    row.period_end = end.astimezone(UTC)
    row.size_bytes = (directory / name).stat().st_size
    row.generated_at = now
    row.generated_by = by[:64]
    db.commit()
    return row


def generate_due(db: Session, directory: Path, now: datetime | None = None) -> list[str]:
    """The newest complete day, week and month not kept yet, written and kept."""
    now = now or utcnow()
    made = []
    for kind in kept.KINDS:
        start, _ = kept.last_complete(kind, now)
        if kept.kept(db, kind, start) is not None:
            continue
        try:
            row = generate(db, kind, start, directory, now=now)
        except IntegrityError:  # another worker kept it first
            db.rollback()
            continue
        made.append(row.file_name)
    return made


def upkeep() -> dict[str, Any]:
    """Job (the reaper asks for it every few minutes): the reports that are due."""
    from cases.db import engine_for, session_factory

    env = ReportEnv.from_env()
    with session_factory(engine_for(env.database_url))() as db:
        made = generate_due(db, env.directory)
    if made:
        log.info("reports: kept %s", ", ".join(made))
    return {"made": made}


def as_table(report: Mapping[str, Any]) -> str:
    """The report as plain text for a terminal (``hotline report --format table``)."""

    def show(value: Any, kind: str) -> str:
        if value is None:
            return "—"
        if kind == "rate":
            return f"{value * 100:.1f}%"
        return f"{value:g}" if isinstance(value, float) else str(value)

    lines = [
        f"{report['title']}  {report['start']} 至 {report['end']}"
        f"（上期 {report['previous_start']} 至 {report['previous_end']}）",
        "",
        f"{'指标':<16}\t本期\t上期\t变化",
    ]
    for row in report["trend"]:
        change = row["change"]
        shown_change = (
            "—"
            if change is None
            else f"{change * 100:+.1f}"
            if row["kind"] == "rate"
            else f"{change:+g}"
        )
        lines.append(
            f"{row['label']:<16}\t{show(row['current'], row['kind'])}"
            f"\t{show(row['previous'], row['kind'])}\t{shown_change}"
        )
    lines += ["", "名次\t单位\t派单量\t响应率\t解决率\t满意率\t综合得分"]
    for u in report["units"]:
        rates = "\t".join(
            show(u[k], "rate") for k in ("response_rate", "resolution_rate", "satisfaction_rate")
        )
        lines.append(
            f"{u['rank']}\t{u['unit']}\t{u['received']}\t{rates}\t{show(u['score'], 'score')}"
        )
    lines += ["", "单位\t责任人\t超时量"]
    lines += [f"{p['unit']}\t{p['person'] or '—'}\t{p['overdue']}" for p in report["people"]]
    lines += ["", "热点\t工单量"] + [f"{t['title']}\t{t['cases']}" for t in report["hot_topics"]]
    lines += ["", "专题\t工单量\t已办结\t超时量\t满意率"] + [
        f"{s['name']}\t{s['cases']}\t{s['resolved']}\t{s['overdue']}"
        f"\t{show(s['satisfaction_rate'], 'rate')}"
        for s in report["special_topics"]
    ]
    return "\n".join(lines)
