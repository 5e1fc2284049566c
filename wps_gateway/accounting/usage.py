"""Recording what an attempt used, when it ends: the dispatcher's one call (``record_usage``).

Where the figures come from, per field: the engine's, when its event carries
them (the local backend measures cpu time and peak memory of the task's
process tree; Mesos gives the wall time from its status timestamps; YARN
its charged vcore- and memory-seconds); else the task's own report, which
the processors' runner leaves in the job's folder (``processes.common.usage``).
Each ended attempt is then added to its job's row in ``job_usage``, in the
same transaction, so reports read one row per job.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from mesos_backend import TaskEvent, Usage
from processes.common.usage import read_report

from ..planner import USAGE_DIR
from ..store.models import USAGE_COUNTS, USAGE_RESOURCES, JobUsage, TaskAttempt

ENDED = ("succeeded", "failed", "lost", "killed")
ENGINE, TASK = "engine", "task"
COUNTS, RESOURCES = USAGE_COUNTS, USAGE_RESOURCES


def usage_report_path(jobs_dir: Path, job_id: str, attempt_id: str) -> Path:
    """Where the task of ``attempt_id`` leaves its usage report (the ``usage_dir`` of its task document)."""
    return Path(os.path.join(jobs_dir, job_id, USAGE_DIR, f"{attempt_id}.json"))  # once per ended attempt


def measured_usage(attempt_id: str, job_id: str, event: TaskEvent, jobs_dir: Path) -> dict[str, Any]:
    """The usage columns of an attempt that just ended, from its terminal event and the task's report.

    CPU and wall time: the engine's, else the task's report. Peak memory: the
    task's report first, for an engine that measures from outside counts what
    the process it started from held (the local backend's ``wait4`` peak is
    at least the gateway's own resident size, see the README), else the
    engine's. ``usage_source`` says who measured: engine, task, or both.
    """
    engine = event.usage or Usage()
    reported = read_report(usage_report_path(jobs_dir, job_id, attempt_id), attempt_id) or {}
    by_engine = engine.cpu_seconds is not None or engine.mem_peak_mb is not None
    sources = [name for name, used in ((ENGINE, by_engine), (TASK, bool(reported))) if used]
    return {"cpu_seconds": _first(engine.cpu_seconds, reported.get("cpu_seconds")),
            "mem_peak_mb": _first(reported.get("mem_peak_mb"), engine.mem_peak_mb),
            "wall_seconds": _first(engine.wall_seconds, reported.get("wall_seconds")),
            "alloc_cpu_seconds": engine.alloc_cpu_seconds,
            "alloc_mem_mb_seconds": engine.alloc_mem_mb_seconds,
            "usage_source": "+".join(sources) or None}


def record_usage(session: Session, attempt: TaskAttempt, event: TaskEvent, jobs_dir: Path) -> None:
    """Store what an ended attempt (a loaded row whose ``status`` says how it ended) used, and add it to its
    job's sums."""
    for name, value in measured_usage(attempt.backend_task_id, attempt.task.job_id, event, jobs_dir).items():
        setattr(attempt, name, value)
    add_to_job(session, attempt)


def attempt_figures(attempt: Any) -> dict[str, float]:
    """One ended attempt's share of its job's sums (``job_usage``'s columns).

    Allocated = what the engine charged where it says, else what was asked
    for (cpus, MiB, gpus) times the wall time. Peak memory counts as held
    for the whole wall time, an upper bound of what the attempt really held.
    """
    wall = attempt.wall_seconds or 0.0
    status = attempt.status
    figures: dict[str, float] = {
        "attempts": 1,
        "attempts_succeeded": int(status == "succeeded"),
        "attempts_failed": int(status == "failed"),
        "attempts_lost": int(status == "lost"),
        "attempts_killed": int(status == "killed"),
        "attempts_retried": int(attempt.number > 1),
        "attempts_measured": int(attempt.cpu_seconds is not None),
        "wall_seconds": wall,
        "cpu_alloc_seconds": _first(attempt.alloc_cpu_seconds, attempt.cpus * wall),
        "cpu_used_seconds": attempt.cpu_seconds or 0.0,
        "mem_alloc_mb_seconds": _first(attempt.alloc_mem_mb_seconds, attempt.mem_mb * wall),
        "mem_peak_mb_seconds": (attempt.mem_peak_mb or 0.0) * wall,
        "gpu_seconds": attempt.gpus * wall,
    }
    unsuccessful = status != "succeeded"
    for name in RESOURCES:
        figures[f"unsuccessful_{name}"] = figures[name] if unsuccessful else 0.0
    return figures


def add_to_job(session: Session, attempt: TaskAttempt) -> None:
    """Add an ended attempt to its job's ``job_usage`` row."""
    add_to_jobs(session, [(attempt.task.job_id, attempt)])


def add_to_jobs(session: Session, ended: list[tuple[str, Any]]) -> None:
    """Add ended attempts (any objects with an attempt's columns) to their jobs' ``job_usage`` rows: the rows
    are made on a job's first and added to in place by one statement per turn (only the dispatcher writes
    them; Core statements on the session's connection, as the dispatcher's hot path costs less so)."""
    sums: dict[str, dict[str, float]] = {}
    backends: dict[str, str] = {}
    for job_id, attempt in ended:
        figures = sums.setdefault(job_id, {})
        for name, value in attempt_figures(attempt).items():
            figures[name] = figures.get(name, 0) + value
        backends[job_id] = attempt.backend
    if not sums:
        return
    connection = session.connection()
    known = set(connection.execute(_USAGE_ROWS, {"job_ids": list(sums)}).scalars())
    fresh = [{"job_id": job_id, "backend": backends[job_id], **figures}
             for job_id, figures in sums.items() if job_id not in known]
    if fresh:
        connection.execute(insert(_USAGE), fresh)
    for job_id in known:
        figures = sums[job_id]
        connection.execute(_add_to_usage(tuple(sorted(figures))),
                           {"row_job_id": job_id, "row_backend": backends[job_id],
                            **{f"add_{name}": value for name, value in figures.items()}})


_USAGE = JobUsage.__table__
_USAGE_ROWS = select(_USAGE.c.job_id).where(_USAGE.c.job_id.in_(bindparam("job_ids", expanding=True)))


@lru_cache(maxsize=16)
def _add_to_usage(names: tuple[str, ...]) -> Any:
    return (update(_USAGE).where(_USAGE.c.job_id == bindparam("row_job_id"))
            .values(backend=bindparam("row_backend"), **{n: _USAGE.c[n] + bindparam(f"add_{n}") for n in names}))


def _first(value: float | None, fallback: float | None) -> float | None:
    return value if value is not None else fallback
