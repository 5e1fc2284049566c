"""Quotas per user and per group: cpu-hours per period, and jobs running at once.

Set by operators (``wps-gateway quota``, ``/admin/api/quotas``), kept in the
job store so every replica applies them. An Execute over a quota is refused
before it is queued; a job is never stopped half-way by one. Usage counts
what was allocated (cpus times wall time) of every attempt in the period,
failed and retried ones included, and running attempts as they accrue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select

from .auth.identity import Identity
from .limits import LimitExceeded
from .store.db import Store
from .store.models import Job, JobStatus, Quota, Task, TaskAttempt, utcnow

SCOPES = ("user", "group")
_ROLLING = re.compile(r"^(\d+)d$")
MAX_CPU_HOURS, MAX_RUNNING, MAX_DAYS = 1e12, 1_000_000, 9999


class QuotaExceeded(LimitExceeded):
    """Over a quota: jobs at once (429, try later) or cpu-hours of the period (403 until it resets)."""

    def __init__(self, message: str, status: int = 429) -> None:
        super().__init__(message)
        self.status = status
        if status != 429:
            self.retry_after = None


@dataclass(frozen=True)
class QuotaState:
    scope: str
    name: str
    cpu_hours: float | None
    period: str
    max_running: int | None
    used_cpu_hours: float
    running: int
    period_start: datetime


def set_quota(store: Store, scope: str, name: str, cpu_hours: float | None, period: str = "month",
              max_running: int | None = None) -> None:
    if scope not in SCOPES:
        raise ValueError(f"a quota is for a user or a group, not a {scope!r}")
    if not name or not name.strip():
        raise ValueError("a quota needs the name of its user or group")
    if cpu_hours is None and max_running is None:
        raise ValueError("a quota needs --cpu-hours, --max-running or both")
    if cpu_hours is not None and not 0 <= cpu_hours <= MAX_CPU_HOURS:
        raise ValueError(f"cpu-hours must be from 0 to {MAX_CPU_HOURS:g}, not {cpu_hours}")
    if max_running is not None and not 0 <= max_running <= MAX_RUNNING:
        raise ValueError(f"max-running must be from 0 to {MAX_RUNNING}, not {max_running}")
    period_start(period)  # validates
    with store.session() as session:
        row = session.get(Quota, (scope, name.strip()))
        if row is None:
            row = Quota(scope=scope, name=name.strip())
            session.add(row)
        row.cpu_hours, row.period, row.max_running = cpu_hours, period, max_running


def remove_quota(store: Store, scope: str, name: str) -> None:
    with store.session() as session:
        row = session.get(Quota, (scope, name))
        if row is None:
            raise LookupError(f"no quota for {scope} {name!r}")
        session.delete(row)


def list_quotas(store: Store) -> list[QuotaState]:
    with store.sessions() as session:
        rows = session.scalars(select(Quota).order_by(Quota.scope, Quota.name)).all()
        return [_state(session, row) for row in rows]


def describe(state: QuotaState) -> str:
    cpu = (f"{state.used_cpu_hours:.2f} of {state.cpu_hours:g} cpu-hours since {state.period_start:%Y-%m-%d %H:%M}"
           f" ({state.period})" if state.cpu_hours is not None else "no cpu-hour limit")
    running = (f"{state.running} of {state.max_running} jobs at once" if state.max_running is not None
               else "no limit of jobs at once")
    return f"{state.scope} {state.name}: {cpu}; {running}"


def as_json(state: QuotaState) -> dict:
    return {"scope": state.scope, "name": state.name, "cpuHours": state.cpu_hours, "period": state.period,
            "maxRunning": state.max_running, "usedCpuHours": round(state.used_cpu_hours, 4),
            "running": state.running, "periodStart": state.period_start.isoformat()}


def check_quota(store: Store, identity: Identity) -> None:
    """Refuse a new job of ``identity`` (QuotaExceeded) if its user's or its group's quota is used up."""
    keys = [("user", identity.user)] + ([("group", identity.group)] if identity.group else [])
    with store.sessions() as session:
        rows = [row for key in keys if (row := session.get(Quota, key)) is not None]
        for row in rows:
            state = _state(session, row)
            who = f"{row.scope} {row.name}"
            if state.max_running is not None and state.running >= state.max_running:
                raise QuotaExceeded(f"{who} has {state.running} jobs accepted or running, the most its quota allows "
                                    f"({state.max_running}); wait for one to end")
            if state.cpu_hours is not None and state.used_cpu_hours >= state.cpu_hours:
                raise QuotaExceeded(f"{who} has used {state.used_cpu_hours:.2f} of its {state.cpu_hours:g} "
                                    f"cpu-hours since {state.period_start:%Y-%m-%d} ({state.period})", status=403)


def period_start(period: str, now: datetime | None = None) -> datetime:
    """Where the period that holds ``now`` began: the calendar month (UTC), or N days back."""
    now = now or utcnow()
    if period == "month":
        return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    match = _ROLLING.match(period)
    if not match or not 1 <= int(match[1]) <= MAX_DAYS:
        raise ValueError(f"a quota period is month or Nd (a rolling window of N days, up to {MAX_DAYS}), "
                         f"not {period!r}")
    return now - timedelta(days=int(match[1]))


def _state(session, row: Quota) -> QuotaState:
    owner = Job.user == row.name if row.scope == "user" else Job.group == row.name
    start = period_start(row.period)
    running = session.scalar(select(func.count()).select_from(Job).where(owner, Job.status.in_(JobStatus.ACTIVE)))
    used = 0.0
    if row.cpu_hours is not None:
        ended = session.scalar(
            select(func.coalesce(func.sum(TaskAttempt.cpus * TaskAttempt.wall_seconds), 0.0))
            .join(Task, TaskAttempt.task_id == Task.id).join(Job, Task.job_id == Job.id)
            .where(owner, TaskAttempt.finished >= start, TaskAttempt.wall_seconds.is_not(None))) or 0.0
        now = utcnow()
        accruing = session.execute(
            select(TaskAttempt.cpus, TaskAttempt.started).join(Task, TaskAttempt.task_id == Task.id)
            .join(Job, Task.job_id == Job.id)
            .where(owner, TaskAttempt.status == "running", or_(TaskAttempt.started.is_(None),
                                                                 TaskAttempt.started >= start - timedelta(days=366))))
        running_seconds = sum(cpus * (now - max(started, start)).total_seconds()
                              for cpus, started in accruing if started is not None)
        used = (float(ended) + running_seconds) / 3600.0
    return QuotaState(row.scope, row.name, row.cpu_hours, row.period, row.max_running, used, running or 0, start)
