"""The accounting report as an HTML page: a filter form, three charts and the figures, without any script."""

from __future__ import annotations

from datetime import date, timedelta
from html import escape

from ..ogcapi.html import links_list, page, table
from .charts import bar_chart, column_chart
from .formats import TABLE, cell, query_document
from .query import GROUPS, PERIODS, STATUSES, Report, ReportQuery

MAX_ROWS = 200  # the page lists this many groups; CSV and JSON have them all
TOP = 10


def period_for(query: ReportQuery) -> str:
    """The chart's period: the report's own if it groups by one, else one that gives a readable number of bars."""
    chosen = next((g for g in query.group_by if g in PERIODS), None)
    if chosen:
        return chosen
    if query.start is not None and query.end is not None:
        days = (query.end - query.start).days
        return "day" if days <= 45 else "week" if days <= 200 else "month"
    return "month"


def accounting_page(report: Report, over_time: Report, by_user: Report, by_process: Report,
                    links: list[dict[str, str]], scoped: bool, given: dict[str, str]) -> str:
    """The page; ``given`` holds the request's filter parameters as sent (they refill the form)."""
    period = over_time.query.group_by[0]
    records = _without_gaps(period, over_time.records())
    charts = [
        column_chart("chart-usage-over-time", f"CPU-hours per {period}", [str(r[period]) for r in records],
                     {"allocated": [r["cpu_hours_allocated"] for r in records],
                      "used": [r["cpu_hours_used"] for r in records]}, "cpu-hours"),
        bar_chart("chart-top-users", f"Top {TOP} users by billing",
                  [(str(r["user"]), r["billing"]) for r in by_user.top("billing", TOP)], "units"),
        bar_chart("chart-top-processes", f"Top {TOP} processes by billing",
                  [(str(r["process"]), r["billing"]) for r in by_process.top("billing", TOP)], "units"),
    ]
    body = (_summary(report, scoped) + _form(given, report.query)
            + "".join(f'<div class="chart-box">{chart}</div>' for chart in charts)
            + "<h2>Totals</h2>" + _totals(report) + _rows(report) + links_list(links))
    return page("Accounting", body)


def _without_gaps(period: str, records: list[dict]) -> list[dict]:
    """The periods from the first to the last with usage, those without as zeros (a time axis has no holes)."""
    if not records:
        return records
    by_label = {r[period]: r for r in records}
    labels, label = [], records[0][period]
    while label <= records[-1][period] and len(labels) <= 5000:
        labels.append(label)
        label = _next(period, label)
    zero = dict.fromkeys(records[0], 0.0)
    return [by_label.get(label, {**zero, period: label}) for label in labels]


def _next(period: str, label: str) -> str:
    """The label of the period after ``label`` (2026-01-31 -> 2026-02-01, 2026-W52 -> 2026-W53 or 2027-W01)."""
    if period == "day":
        return (date.fromisoformat(label) + timedelta(days=1)).isoformat()
    if period == "week":
        year, week = int(label[:4]), int(label[6:])
        monday = date.fromisocalendar(year, week, 1) + timedelta(weeks=1)
        iso = monday.isocalendar()
        return f"{iso[0]}-W{iso[1]:02d}"
    year, month = int(label[:4]), int(label[5:])
    return f"{year + month // 12}-{month % 12 + 1:02d}"


def _summary(report: Report, scoped: bool) -> str:
    asked = query_document(report.query)
    period = f"jobs created from {asked['from'] or 'the start'} until before {asked['before'] or 'now'}"
    filters = "; ".join(f"{name} {', '.join(values)}" for name, values in asked["filters"].items())
    weights = ", ".join(f"{k}:{v:g}" for k, v in report.weights.items()) or "none"
    who = "Your usage" if scoped else "Usage of every user"
    return (f"<p>{escape(who)}: {escape(period)}" + (f"; {escape(filters)}" if filters else "")
            + f". Billing weights: {escape(weights)}. A job counts in the period it was created in; "
              "figures of attempts are those of attempts that ended.</p>")


def _form(given: dict[str, str], query: ReportQuery) -> str:
    """The filters as the request gave them, to change and send again (a GET form: no script)."""
    def field(name: str, hint: str) -> str:
        return (f'<label>{name} <input name="{name}" value="{escape(given.get(name, ""), quote=True)}" '
                f'placeholder="{escape(hint, quote=True)}" size="14"></label> ')

    boxes = "".join(f'<label><input type="checkbox" name="group_by" value="{g}"'
                    f'{" checked" if g in query.group_by else ""}> {g}</label> ' for g in GROUPS)
    return ('<form method="get" action="" class="filters"><input type="hidden" name="f" value="html">'
            + field("from", "YYYY-MM[-DD]") + field("to", "YYYY-MM[-DD]") + field("user", "name, ...")
            + field("group", "name, ...") + field("process", "id, ...") + field("backend", "local, mesos, ...")
            + field("status", ", ".join(STATUSES))
            + f"<p>group by: {boxes}</p><button type=\"submit\">report</button></form>")


def _totals(report: Report) -> str:
    total = report.total
    rows = [[escape(title), escape(cell(total[name]))] for title, name in TABLE]
    return table(["figure", "total"], rows)


def _rows(report: Report) -> str:
    keys = list(report.query.group_by)
    if not keys:
        return ""
    records = report.records()
    rows = [[escape(str(r[k])) for k in keys] + [escape(cell(r[name])) for _, name in TABLE]
            for r in records[:MAX_ROWS]]
    more = (f"<p>{len(records) - MAX_ROWS} more groups: see the CSV or JSON report.</p>"
            if len(records) > MAX_ROWS else "")
    return "<h2>By " + escape(", ".join(keys)) + "</h2>" + table(keys + [t for t, _ in TABLE], rows) + more


