"""The leaders' reports in the browser: a period's figures with charts (the same
figures as its workbook and ``hotline report``, from calls.reports), and the kept
workbooks to download. For leaders, supervisors and admins."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, send_file, url_for

from calls.desk import DeskError
from calls.reports import report_figures, reports_dir, weights_as_percent
from cases import reports as kept
from cases.reports import KINDS, RateSettings
from cases.service import HOTLINE_TZ, utcnow
from web.auth import desk_actor, language, roles_required
from web.context import services
from web.i18n import translate
from web.reports import charts

bp = Blueprint("reports", __name__, url_prefix="/reports")

READERS = ("leader", "supervisor", "admin")
WRITERS = ("supervisor", "admin")
RATE_KEYS = ("response_rate", "resolution_rate", "satisfaction_rate")
UNITS_CHARTED = 15


def sessions():  # type: ignore[no-untyped-def]
    return services().desk.sessions


def _kind_and_day() -> tuple[str, date]:
    """?kind=daily|weekly|monthly&day=YYYY-MM-DD (Beijing); by default the newest
    complete period of the kind. The page's form also sends the kind and day it showed
    (was_kind, was_day): a reader who only switches 日报 to 月报 means the last
    complete month, not the unfinished one that holds the day shown."""
    kind = request.values.get("kind") or "daily"
    if kind not in KINDS:
        abort(400, "kind is daily, weekly or monthly")
    raw = request.values.get("day")
    last_complete = kept.last_complete(kind, utcnow())[0].date()
    if not raw:
        return kind, last_complete
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        abort(400, "day is a date, YYYY-MM-DD")
    if not 2000 <= day.year <= 2100:
        abort(400, "day is between 2000 and 2100")
    kind_only = (
        request.values.get("was_kind", kind) != kind and request.values.get("was_day") == raw
    )
    if kind_only and kept.period(kind, day)[1] > utcnow():
        return kind, last_complete
    return kind, day


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def shown(value: Any, kind: str) -> str:
    """A figure as the page shows it (the workbook keeps the number itself)."""
    if value is None:
        return "—"
    if kind == "rate":
        return percent(value)
    if kind == "change_rate":
        return f"{value * 100:+.1f}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _charts(report: dict[str, Any], lang: str) -> dict[str, Any]:
    trend = {row["key"]: row for row in report["trend"]}
    rows, texts = [], []
    for key in (*RATE_KEYS, "score"):
        now, before = trend[key]["current"], trend[key]["previous"]
        scale = 1 if key == "score" else 100  # a score is out of 100; rates are shares
        rows.append((translate(f"rpt_{key}", lang), (now or 0) * scale, (before or 0) * scale))
        kind = "score" if key == "score" else "rate"
        texts.append((shown(now, kind), shown(before, kind)))
    no_rate_yet = all(
        trend[key]["current"] is None and trend[key]["previous"] is None
        for key in (*RATE_KEYS, "score")
    )
    rates_chart = (
        None
        if no_rate_yet  # bars of nothing say nothing; the table says "—"
        else charts.paired_bars(translate("rpt_chart_rates", lang), rows, 100, texts)
    )
    scored = [u for u in report["units"] if u["score"] is not None][:UNITS_CHARTED]
    units_chart = (
        charts.paired_bars(
            translate("rpt_chart_units", lang),
            [(u["unit"], u["score"], None) for u in scored],
            100,
            [(shown(u["score"], "score"), "") for u in scored],
        )
        if scored
        else None
    )
    days = report["days"]
    days_chart = (
        charts.columns(
            translate("rpt_chart_days", lang),
            [d["day"] for d in days],
            [d["wanted_person"] for d in days],
            [d["answered"] for d in days],
        )
        if len(days) > 1
        else None
    )
    return {"rates": rates_chart, "units": units_chart, "days": days_chart}


@bp.get("/")
@roles_required(*READERS)
def index() -> Any:
    kind, day = _kind_and_day()
    start, end = kept.period(kind, day)
    last_start, _ = kept.last_complete(kind, utcnow())
    with sessions()() as db:
        report = report_figures(db, kind, start, end, settings=RateSettings.from_env())
        files = kept.kept_reports(db)
        this_one = kept.kept(db, kind, start)
        rows = [
            {
                "id": f.id,
                "kind": f.kind,
                "start": _day(f.period_start),
                "end": _day(f.period_end - timedelta(milliseconds=1)),
                "name": f.file_name,
                "size_kb": max(1, round(f.size_bytes / 1024)),
                "generated_at": f.generated_at,
            }
            for f in files
        ]
        kept_id = this_one.id if this_one else None
    return render_template(
        "reports.html",
        report=report,
        kind=kind,
        day=day,
        kinds=KINDS,
        files=rows,
        kept_id=kept_id,
        charts=_charts(report, language()),
        shown=shown,
        percent=percent,
        weights=weights_as_percent(report["rates_settings"]["weights"]),
        unfinished=end > utcnow(),
        last_complete_day=last_start.date(),
        may_generate=desk_actor().role in WRITERS,
    )


def _day(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite: naive UTC
    return aware.astimezone(HOTLINE_TZ).date().isoformat()


@bp.get("/kept/<int:report_id>")
@roles_required(*READERS)
def download(report_id: int) -> Any:
    with sessions()() as db:
        row = db.get(kept.KeptReport, report_id)
        if row is None:
            abort(404)
        name = row.file_name
    path = reports_dir() / name
    if "/" in name or not path.is_file():
        abort(404)
    return send_file(
        path,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=name,
    )


@bp.post("/generate")
@roles_required(*WRITERS)
def generate() -> Any:
    kind, day = _kind_and_day()
    try:
        services().desk.duty.generate_report(desk_actor(), kind, day, reports_dir())
    except DeskError as exc:
        abort(exc.status)
    return redirect(url_for("reports.index", kind=kind, day=day.isoformat()))
