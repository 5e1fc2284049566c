"""What the console, the REST control and the CLI show: a page of jobs, one job in full, the cluster.

Plain JSON-ready documents built from the job store (and the dispatcher's
published status), so that the HTML console, ``/admin/api`` and
``wps-gateway`` never disagree. A page of jobs reads only the narrow columns
it shows, in an order an index gives, and counts through ``job_counts``
where it can (a bounded count otherwise), so it stays fast with a million
jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..accounting.api import job_usage
from ..accounting.query import ReportError, period_bound
from ..control import requests_of
from ..health import health_report
from ..jobs import JobFilter, JobNotFound, filtered_jobs, processor_of, shown_status
from ..metrics.job_counts import job_counts, shown_jobs_by_status
from ..metrics.publisher import read_status
from ..metrics.store_figures import active_attempts, outbox_depth, queue_by_owner, task_counts
from ..redaction import redact
from ..scheduling import KINDS, applied_by, list_limits
from ..store.db import Store
from ..store.models import AttemptEvent, Job, JobStatus, Task, TaskAttempt
from ..switches import DispatchSwitch

SORTS: dict[str, tuple[Any, ...]] = {  # each has an index: (status|process|user, created) or created first
    "created": (), "status": (Job.status,), "process": (Job.process_id,), "user": (Job.user,),
}
MAX_LIMIT = 500
COUNT_CAP = 10_000  # a filtered count that no counter answers stops here ("10,000 or more")
STATUSES = (JobStatus.ACCEPTED, JobStatus.RUNNING, JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.DISMISSED)
LISTED = (Job.id, Job.process_id, Job.status, Job.progress, Job.user, Job.group, Job.priority, Job.created,
          Job.started, Job.finished, Job.message, Job.task_count, Job.cancel_requested)


class QueryError(ValueError):
    """A query parameter the listing cannot take; ``parameter`` names it (a 400)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass
class JobQuery:
    statuses: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    created_from: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    sort: str = "created"
    descending: bool = True
    limit: int = 50
    offset: int = 0
    given: dict[str, str] = field(default_factory=dict)  # the parameters as sent (they refill the console's form)

    @property
    def counted(self) -> bool:
        """Whether ``job_counts`` answers how many jobs match (filters on status and process only).

        The counters count stored statuses, the filter the shown ones (a running job is shown accepted
        until its first task starts): they agree unless the filter takes one of the two without the other.
        """
        split = (JobStatus.ACCEPTED in self.statuses) != (JobStatus.RUNNING in self.statuses)
        return not (self.users or self.created_from or self.created_before or split)


def parse_job_query(get: Callable[[str], list[str]]) -> JobQuery:
    """The listing asked for by query parameters (``get(name)`` gives a parameter's values); QueryError."""
    def values(name: str) -> tuple[str, ...]:
        return tuple(v.strip() for value in get(name) for v in value.split(",") if v.strip())

    def one(name: str, default: str = "") -> str:
        given = get(name)
        return given[-1].strip() if given else default

    def number(name: str, default: int, low: int, high: int) -> int:
        text = one(name, str(default))
        try:
            value = int(text)
        except ValueError:
            raise QueryError(name, f"{name} must be an integer, not {text!r}") from None
        if not low <= value <= high:
            raise QueryError(name, f"{name} must be from {low} to {high}")
        return value

    def instant(name: str, end: bool) -> datetime | None:
        text = one(name)
        if not text:
            return None
        try:
            return period_bound(text, name, end)
        except ReportError as exc:
            raise QueryError(name, str(exc)) from None

    statuses = values("status")
    bad = [s for s in statuses if s not in STATUSES]
    if bad:
        raise QueryError("status", f"unknown status {bad[0]!r}; known: {', '.join(STATUSES)}")
    sort = one("sort", "created")
    if sort not in SORTS:
        raise QueryError("sort", f"jobs are sorted by one of {', '.join(SORTS)}, not {sort!r}")
    order = one("order", "desc")
    if order not in ("asc", "desc"):
        raise QueryError("order", "order is asc or desc")
    query = JobQuery(statuses=statuses, processes=values("process"), users=values("user"),
                     created_from=instant("from", False), created_before=instant("to", True), sort=sort,
                     descending=order == "desc", limit=number("limit", 50, 1, MAX_LIMIT),
                     offset=number("offset", 0, 0, 10_000_000))
    query.given = {name: ",".join(get(name)) for name in ("status", "process", "user", "from", "to", "sort",
                                                          "order", "limit") if get(name)}
    return query


def _where(statement: Any, query: JobQuery) -> Any:
    """The listing's conditions: the OGC API job list's filters, and the console's own (users, an end)."""
    statement = filtered_jobs(statement, JobFilter(statuses=query.statuses, process_ids=query.processes,
                                                   created_from=query.created_from))
    if query.users:
        statement = statement.where(Job.user.in_(query.users))
    if query.created_before is not None:
        statement = statement.where(Job.created < query.created_before)
    return statement


def job_page(store: Store, query: JobQuery) -> dict[str, Any]:
    """One page of jobs, newest first by default, with how many match: ``total``, or ``totalAtLeast`` when a
    bounded count stopped."""
    direction = (lambda column: column.desc()) if query.descending else (lambda column: column.asc())
    order = [direction(column) for column in (*SORTS[query.sort], Job.created, Job.id)]
    statement = _where(select(*LISTED), query).order_by(*order).offset(query.offset).limit(query.limit)
    with store.sessions() as session:
        rows = session.execute(statement).all()
        total, at_least = _count(store, session, query)
    return {"jobs": [_listed(row) for row in rows], "total": total, "totalAtLeast": at_least,
            "offset": query.offset, "limit": query.limit}


def _count(store: Store, session: Session, query: JobQuery) -> tuple[int | None, int | None]:
    if query.counted:
        counts = job_counts(store)
        return sum(n for (process, status), n in counts.items()
                   if (not query.processes or process in query.processes)
                   and (not query.statuses or status in query.statuses)), None
    bounded = _where(select(Job.id), query).limit(COUNT_CAP + 1).subquery()
    n = int(session.scalar(select(func.count()).select_from(bounded)) or 0)
    return (None, COUNT_CAP) if n > COUNT_CAP else (n, None)


def _listed(row: Any) -> dict[str, Any]:
    return {"jobID": row.id, "process": row.process_id, "status": shown_status(row), "progress": int(row.progress or 0),
            "user": row.user, "group": row.group, "priority": row.priority, "created": _time(row.created),
            "started": _time(row.started), "finished": _time(row.finished), "message": row.message or "",
            "tasks": row.task_count, "dismissRequested": bool(row.cancel_requested)}


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def attempt_histories(session: Session, job_id: str) -> dict[int, list[dict[str, Any]]]:
    """The state history of every attempt of a job, by attempt id, oldest first: each state the engine
    reported, with its reason and message (Slurm's job id and reasons, YARN's diagnostics, ...)."""
    events: dict[int, list[dict[str, Any]]] = {}
    for event in session.scalars(select(AttemptEvent)
                                 .join(TaskAttempt, AttemptEvent.attempt_id == TaskAttempt.id)
                                 .join(Task, TaskAttempt.task_id == Task.id)
                                 .where(Task.job_id == job_id).order_by(AttemptEvent.id)):
        events.setdefault(event.attempt_id, []).append(
            {"state": event.state, "reason": event.reason, "message": event.message, "time": _time(event.timestamp)})
    return events


def job_detail(store: Store, job_id: str, base_url: str, weights: dict[str, float]) -> dict[str, Any]:
    """One job in full: its workflow as steps and tasks, each attempt with its state history; JobNotFound."""
    with store.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFound(job_id)
        tasks = session.execute(select(Task.id, Task.step, Task.index, Task.status, Task.attempts, Task.max_attempts,
                                       Task.message, Task.created, Task.started, Task.finished)
                                .where(Task.job_id == job_id).order_by(Task.seq)).all()
        attempts = session.scalars(select(TaskAttempt).join(Task, TaskAttempt.task_id == Task.id)
                                   .where(Task.job_id == job_id).order_by(TaskAttempt.task_id, TaskAttempt.number)
                                   ).all()
        events = attempt_histories(session, job_id)
        by_task: dict[str, list[dict[str, Any]]] = {}
        for attempt in attempts:
            by_task.setdefault(attempt.task_id, []).append(_attempt(attempt, events.get(attempt.id, [])))
        session.expunge(job)
    steps = _steps(job, tasks)
    document = {
        "jobID": job.id, "process": job.process_id, "processVersion": job.process_version,
        "status": shown_status(job),
        "message": job.message, "progress": job.progress, "user": job.user, "group": job.group,
        "priority": job.priority, "protocol": job.protocol, "created": _time(job.created),
        "started": _time(job.started), "finished": _time(job.finished), "updated": _time(job.updated),
        "dismissRequested": job.cancel_requested,
        "inputs": {name: [redact(v) if isinstance(v, str) else v for v in values]
                   for name, values in (job.inputs or {}).items()},
        "outputs": {name: {**entry, "href": f"{base_url}/outputs/{job.id}/{entry['file']}"} if entry.get("file")
                    else entry for name, entry in (job.outputs or {}).items()},
        "steps": steps,
        "tasks": [{"id": t.id, "step": t.step, "index": t.index, "status": t.status, "attempts": t.attempts,
                   "maxAttempts": t.max_attempts, "message": t.message, "created": _time(t.created),
                   "started": _time(t.started), "finished": _time(t.finished), "runs": by_task.get(t.id, [])}
                  for t in tasks],
        "usage": job_usage(store, job.id, weights),
        "requests": requests_of(store, job.id),
        "links": {"status": f"{base_url}/jobs/{job.id}", "wpsStatus": f"{base_url}/wps/status/{job.id}.xml",
                  "accounting": f"{base_url}/accounting?job={job.id}"},
    }
    return document


def _steps(job: Job, tasks: list[Any]) -> list[dict[str, Any]]:
    counts: dict[str, dict[str, int]] = {}
    for task in tasks:
        counts.setdefault(task.step, {})[task.status] = counts.get(task.step, {}).get(task.status, 0) + 1
    try:
        described = processor_of(job).steps
    except Exception:  # a job whose descriptor no longer parses still shows its tasks
        described = []
    known = {step.id for step in described}
    steps = [{"id": step.id, "dependsOn": list(step.depends_on), "tasks": counts.get(step.id, {}),
              "resources": {"cpus": step.resources.cpus, "mem": step.resources.mem},
              "retries": step.retries, "timeout": step.timeout} for step in described]
    return steps + [{"id": name, "dependsOn": [], "tasks": n} for name, n in counts.items() if name not in known]


def _attempt(attempt: TaskAttempt, events: list[dict[str, Any]]) -> dict[str, Any]:
    duration = None
    if attempt.started is not None:
        duration = round(((attempt.finished or datetime.now(attempt.started.tzinfo)) - attempt.started)
                         .total_seconds(), 1)
    return {"attempt": attempt.backend_task_id, "number": attempt.number, "backend": attempt.backend,
            "status": attempt.status, "agent": attempt.agent, "exitCode": attempt.exit_code, "reason": attempt.reason,
            "message": attempt.message, "launched": _time(attempt.launched), "started": _time(attempt.started),
            "finished": _time(attempt.finished), "seconds": duration, "cpus": attempt.cpus, "memMb": attempt.mem_mb,
            "cpuSeconds": attempt.cpu_seconds, "memPeakMb": attempt.mem_peak_mb, "history": events}


def attempt_row(store: Store, attempt_id: str) -> TaskAttempt:
    """An attempt by its id (``<task>.<number>``, the backend's task id); LookupError if there is none."""
    with store.sessions() as session:
        attempt = session.scalar(select(TaskAttempt).where(TaskAttempt.backend_task_id == attempt_id))
        if attempt is None:
            raise LookupError(f"no task attempt {attempt_id}")
        session.expunge(attempt)
        return attempt


def cluster_view(store: Store) -> dict[str, Any]:
    """The backend as the active dispatcher last saw it, the queue by user and process, caps and switches."""
    status = read_status(store)
    supported = (status or {}).get("limits_supported") or []
    return {
        "dispatcher": {**health_report(store)["dispatcher"],
                       **({"statusAge": status["age"], "statusStale": status["stale"],
                           **(status.get("dispatcher") or {})} if status else {"statusAge": None})},
        "paused": DispatchSwitch(store).paused_reason(),
        "backend": (status or {}).get("backend"),
        "engine": (status or {}).get("engine") or {},
        "limits": {"live": [{**limit.as_json(), "applied": applied_by(supported, limit.kind)}
                            for limit in list_limits(store)],
                   "kinds": {kind: {"meaning": meaning, "names": names or None, "nature": nature,
                                    "applied": applied_by(supported, kind)}
                             for kind, (meaning, names, nature) in KINDS.items()}},
        "jobs": dict(shown_jobs_by_status(store, job_counts(store))),
        "tasks": task_counts(store),
        "attempts": [{"backend": backend, "state": state, "count": n}
                     for (backend, state), n in sorted(active_attempts(store).items())],
        "queueByOwner": queue_by_owner(store),
        "outboxPending": outbox_depth(store),
    }
