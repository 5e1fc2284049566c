"""A report as a JSON document, as CSV, and as a text table for the terminal."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from .query import FIGURES, JOB_FIGURES, Report, ReportQuery
from .usage import COUNTS

DECIMALS = 6
# The text table's columns (CSV and JSON have every figure).
TABLE = (("jobs", "jobs"), ("ok", "jobs_successful"), ("failed", "jobs_failed"), ("tasks", "tasks"),
         ("attempts", "attempts"), ("retried", "attempts_retried"), ("wall h", "wall_hours"),
         ("cpu h alloc", "cpu_hours_allocated"), ("cpu h used", "cpu_hours_used"),
         ("mem GBh alloc", "mem_gb_hours_allocated"), ("mem GBh peak", "mem_gb_hours_peak"),
         ("gpu h", "gpu_hours"), ("billing", "billing"), ("unsucc. billing", "unsuccessful_billing"))


def rounded(name: str, value: Any) -> Any:
    if name in JOB_FIGURES or name in COUNTS:
        return int(value)
    return round(float(value), DECIMALS) if isinstance(value, float | int) else value


def figures_of(values: dict[str, Any]) -> dict[str, Any]:
    return {name: rounded(name, values[name]) for name in FIGURES}


def query_document(query: ReportQuery) -> dict[str, Any]:
    """What was asked: the period (``before`` is exclusive), the filters given, the grouping."""
    filters = {name: list(values) for name, values in (
        ("user", query.users), ("group", query.groups), ("process", query.processes),
        ("backend", query.backends), ("status", query.statuses)) if values}
    if query.job:
        filters["job"] = [query.job]
    return {"from": _iso(query.start), "before": _iso(query.end), "filters": filters,
            "group_by": list(query.group_by)}


def report_document(report: Report, links: list[dict[str, str]]) -> dict[str, Any]:
    """The JSON document: what was asked, one object per group, the total, links."""
    convert = [_converter(name) for name in report.columns]
    columns = report.columns
    rows = [dict(zip(columns, [c(v) for c, v in zip(convert, row, strict=True)], strict=True))
            for row in report.rows]
    return {**query_document(report.query), "billing_weights": report.weights,
            "rows": rows, "total": figures_of(report.total), "links": links}


def _converter(name: str) -> Any:
    if name not in FIGURES:
        return str
    if name in JOB_FIGURES or name in COUNTS:
        return int
    return lambda value: round(float(value), DECIMALS)


def report_csv(report: Report) -> str:
    """One header line, then one line per group (no total line: the rows add up)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(report.columns)
    for row in report.rows:
        writer.writerow([_csv_cell(name, value) for name, value in zip(report.columns, row, strict=True)])
    return out.getvalue()


def report_table(report: Report) -> str:
    """A fixed-width table of the main figures, one line per group and a total line."""
    keys = list(report.query.group_by)
    header = [*keys, *(title for title, _ in TABLE)]
    lines = [[str(record[k]) for k in keys] + [cell(record[name]) for _, name in TABLE]
             for record in report.records()]
    total = report.total
    label = ["total", *[""] * (len(keys) - 1)] if keys else []
    lines.append(label + [cell(total[name]) for _, name in TABLE])
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) for i in range(len(header))]
    numeric = len(keys)

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < numeric else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines]) + "\n"


def job_usage_document(report: Report) -> dict[str, Any]:
    """One job's figures (its ``usage`` member): tasks, attempts and resources, without the job counts."""
    figures = figures_of(report.total)
    return {name: value for name, value in figures.items() if not name.startswith("jobs")}


def cell(value: Any) -> str:
    """A figure as tables, pages and charts show it: thousands separated, small quantities to 3 digits."""
    if isinstance(value, int) or (isinstance(value, float) and value == int(value) and abs(value) < 1e15):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"


def _csv_cell(name: str, value: Any) -> Any:
    return rounded(name, value) if name in FIGURES else value


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None
