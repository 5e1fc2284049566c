"""The accounting report: its filters and groupings, and the one SQL query that answers them.

A job's usage counts in the period the job was created in, with the job's
user, group and process, so that a period's total is the sum of its jobs'
costs (a job still running adds to its period until it ends: the report's
``jobs_accepted`` and ``jobs_running`` say whether a period is closed).
Figures of attempts are those of attempts that ended, summed per job in
``job_usage``; the report reads ``jobs`` (by the covering index
``ix_jobs_accounting``) joined to that one row per job.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, literal, select
from sqlalchemy.sql import Select

from ..auth.identity import Identity
from ..store.db import Store
from ..store.models import Job, JobStatus, JobUsage
from .billing import WEIGHTED
from .usage import COUNTS, RESOURCES

PERIODS = ("day", "week", "month")
GROUPS = ("user", "group", "process", "backend", *PERIODS)
STATUSES = (JobStatus.ACCEPTED, JobStatus.RUNNING, JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.DISMISSED)
JOB_FIGURES = ("jobs", *(f"jobs_{s}" for s in STATUSES), "tasks")
# job_usage column -> (report figure, divisor to hours or GB-hours)
HOURS = {"wall_seconds": ("wall_hours", 3600.0), "cpu_alloc_seconds": ("cpu_hours_allocated", 3600.0),
         "cpu_used_seconds": ("cpu_hours_used", 3600.0), "mem_alloc_mb_seconds": ("mem_gb_hours_allocated", 3686400.0),
         "mem_peak_mb_seconds": ("mem_gb_hours_peak", 3686400.0), "gpu_seconds": ("gpu_hours", 3600.0)}
RESOURCE_FIGURES = tuple(HOURS[name][0] for name in RESOURCES) + ("billing",)
FIGURES = (*JOB_FIGURES, *COUNTS, *RESOURCE_FIGURES, *(f"unsuccessful_{name}" for name in RESOURCE_FIGURES))


class ReportError(ValueError):
    """A report parameter the gateway cannot use; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


VisibleJobs = Callable[[Identity], "ColumnElement[bool] | None"]  # the jobs an identity may see (None: all)


@dataclass(frozen=True)
class ReportQuery:
    """What to report: jobs created in [start, end), filtered, grouped. Empty filters do not filter."""

    start: datetime | None = None
    end: datetime | None = None  # exclusive
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    job: str | None = None
    group_by: tuple[str, ...] = ()

    def grouped(self, *group_by: str) -> ReportQuery:
        """The same filters, grouped otherwise (the page's charts)."""
        return replace(self, group_by=tuple(group_by))


@dataclass
class Report:
    """Rows of figures, one per group (ordered by the group keys); ``columns`` names a row's cells."""

    query: ReportQuery
    weights: dict[str, float]
    rows: list[Sequence[Any]]
    columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.columns = (*self.query.group_by, *FIGURES)

    @cached_property
    def total(self) -> dict[str, float]:
        """Every figure over all rows (all figures add up)."""
        skip = len(self.query.group_by)
        sums = [0.0] * len(FIGURES)
        for row in self.rows:
            for i, value in enumerate(row[skip:]):
                sums[i] += value
        return {name: _number(name, value) for name, value in zip(FIGURES, sums, strict=True)}

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def top(self, figure: str, count: int) -> list[dict[str, Any]]:
        """The ``count`` rows with the most of ``figure``."""
        return sorted(self.records(), key=lambda r: (-r[figure], str(r[self.columns[0]])))[:count]


# -- parsing ------------------------------------------------------------------

def parse_query(values: Callable[[str], Sequence[str]]) -> ReportQuery:
    """A query from request parameters; ``values(name)`` gives a parameter's values (repeated or comma-separated).

    Raises ReportError, naming the parameter, for what cannot be used.
    """
    def listed(name: str) -> tuple[str, ...]:
        out: list[str] = []
        for raw in values(name):
            out += [v.strip() for v in raw.split(",") if v.strip() and v.strip() not in out]
        return tuple(out)

    group_by = listed("group_by")
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise ReportError("group_by", f"group_by: unknown {', '.join(map(repr, unknown))}; "
                                      f"choose from {', '.join(GROUPS)}")
    statuses = listed("status")
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise ReportError("status", f"status: unknown {', '.join(map(repr, unknown))}; "
                                    f"choose from {', '.join(STATUSES)}")
    start = period_bound(_single(values, "from"), "from", end=False)
    end = period_bound(_single(values, "to"), "to", end=True)
    if start is not None and end is not None and start >= end:
        raise ReportError("from", f"from ({_single(values, 'from')}) is after to ({_single(values, 'to')})")
    job = _single(values, "job")
    return ReportQuery(start=start, end=end, users=listed("user"), groups=listed("group"),
                       processes=listed("process"), backends=listed("backend"), statuses=statuses,
                       job=job or None, group_by=group_by)


def _single(values: Callable[[str], Sequence[str]], name: str) -> str | None:
    given = [v for v in values(name) if v.strip()]
    if len(given) > 1:
        raise ReportError(name, f"{name} may be given once, not {len(given)} times")
    return given[0].strip() if given else None


def period_bound(text: str | None, name: str, end: bool) -> datetime | None:
    """``YYYY-MM``, ``YYYY-MM-DD`` or an RFC 3339 date-time as the start (``end`` False) or the exclusive end of
    a period: an end includes the whole month, day or instant. ReportError naming ``name``. The reports' and the
    console's ``from`` and ``to``."""
    if text is None:
        return None
    try:
        if len(text) == 7 and text[4] == "-":
            year, month = int(text[:4]), int(text[5:])
            first = datetime(year, month, 1, tzinfo=UTC)
            return first + timedelta(days=calendar.monthrange(year, month)[1]) if end else first
        if len(text) == 10:
            day = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            return day + timedelta(days=1) if end else day
        value = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
        if value.tzinfo is None:
            raise ValueError("no time zone")
        value = value.astimezone(UTC)
        return value + timedelta(microseconds=1) if end else value
    except OverflowError:  # beyond what a datetime holds: no bound on that side
        return None
    except ValueError:
        raise ReportError(name, f"{name}: {text!r} is not a month (YYYY-MM), a date (YYYY-MM-DD) or an RFC 3339 "
                                "date-time with its time zone (2026-01-31T12:00:00Z)") from None


# -- the query ----------------------------------------------------------------

def run_report(store: Store, query: ReportQuery, weights: dict[str, float],
               visible: ColumnElement[bool] | None = None) -> Report:
    """The figures ``query`` asks for, over the jobs the caller may see: ``visible`` is the tenancy rule's
    condition (``auth.visibility.visible_clause``; None: all)."""
    statement = report_statement(query, weights, visible, store.engine.dialect.name)
    with store.engine.connect() as connection:
        rows: list[Sequence[Any]] = list(connection.execute(statement).fetchall())
    if "week" in query.group_by:
        at = query.group_by.index("week")
        rows = [(*row[:at], _iso_week(row[at]), *row[at + 1:]) for row in rows]
    return Report(query, weights, rows)


def job_report(store: Store, job_id: str, weights: dict[str, float]) -> Report:
    """``run_report`` of one job (its status page's usage), by a statement built once per weights: building
    and keying the sixty-column SELECT costs more than running it."""
    statement = _job_statement(tuple(sorted(weights.items())), store.engine.dialect.name)
    with store.engine.connect() as connection:
        rows: list[Sequence[Any]] = list(connection.execute(statement, {"job_id": job_id}).fetchall())
    return Report(ReportQuery(job=job_id), weights, rows)


@lru_cache(maxsize=16)
def _job_statement(weights: tuple[tuple[str, float], ...], dialect: str) -> Select:
    return report_statement(ReportQuery(), dict(weights), None, dialect).where(
        Job.__table__.c.id == bindparam("job_id"))


def report_statement(query: ReportQuery, weights: dict[str, float], visible: ColumnElement[bool] | None,
                     dialect: str) -> Select:
    """The SELECT: jobs (index only) outer-joined to their one ``job_usage`` row, filtered, grouped."""
    j, u = Job.__table__.c, JobUsage.__table__.c
    keys = [_key(name, dialect).label(name) for name in query.group_by]
    statement = (select(*keys, *_figures(tuple(sorted(weights.items()))))
                 .select_from(Job.__table__.outerjoin(JobUsage.__table__, u.job_id == j.id))
                 .where(*_conditions(query, visible)))
    if keys:
        statement = statement.group_by(*keys).order_by(*keys)
    return statement


def _conditions(query: ReportQuery, visible: ColumnElement[bool] | None) -> list[ColumnElement[bool]]:
    j, u = Job.__table__.c, JobUsage.__table__.c
    conditions: list[ColumnElement[bool]] = []
    if query.start is not None:
        conditions.append(j.created >= query.start)
    if query.end is not None:
        conditions.append(j.created < query.end)
    for column, wanted in ((j.user, query.users), (j.group, query.groups), (j.process_id, query.processes),
                           (j.status, query.statuses), (u.backend, query.backends)):
        if wanted:
            conditions.append(column.in_(wanted))
    if query.job:
        conditions.append(j.id == query.job)
    if visible is not None:
        conditions.append(visible)
    return conditions


@lru_cache(maxsize=16)
def _figures(weights: tuple[tuple[str, float], ...]) -> tuple[ColumnElement[Any], ...]:
    """The figure columns (built once per weights: building sixty expressions costs more than the query)."""
    j, u = Job.__table__.c, JobUsage.__table__.c
    columns: list[ColumnElement[Any]] = [func.count().label("jobs")]
    columns += [func.coalesce(func.sum(case((j.status == s, 1), else_=0)), 0).label(f"jobs_{s}") for s in STATUSES]
    columns.append(func.coalesce(func.sum(j.task_count), 0).label("tasks"))
    columns += [func.coalesce(func.sum(u[name]), 0).label(name) for name in COUNTS]
    for prefix in ("", "unsuccessful_"):
        hours = {HOURS[name][0]: func.coalesce(func.sum(u[prefix + name]), 0.0) / HOURS[name][1]
                 for name in RESOURCES}
        columns += [value.label(prefix + name) for name, value in hours.items()]
        billing = sum((hours[WEIGHTED[w]] * weight for w, weight in weights if weight), literal(0.0))
        columns.append(billing.label(prefix + "billing"))
    return tuple(columns)


def _key(name: str, dialect: str) -> ColumnElement[Any]:
    """A group key: a job column, the backend (empty: no attempt ended), or the UTC day, week or month created."""
    j, u = Job.__table__.c, JobUsage.__table__.c
    simple = {"user": j.user, "group": j.group, "process": j.process_id}
    if name in simple:
        return simple[name]
    if name == "backend":
        return func.coalesce(u.backend, "")
    if dialect == "postgresql":
        utc = func.timezone("UTC", j.created)
        if name == "week":
            return func.to_char(func.date_trunc("week", utc), "YYYY-MM-DD")
        return func.to_char(utc, "YYYY-MM-DD" if name == "day" else "YYYY-MM")
    if name == "week":  # the Monday of the week: the next Sunday (or this one), less six days
        return func.date(j.created, "weekday 0", "-6 days")
    return func.strftime("%Y-%m-%d" if name == "day" else "%Y-%m", j.created)


def _iso_week(monday: str) -> str:
    year, week, _ = date.fromisoformat(monday).isocalendar()
    return f"{year}-W{week:02d}"


def _number(name: str, value: float) -> float:
    return int(value) if name in JOB_FIGURES or name in COUNTS else value
