"""Figures read from the job store for ``/metrics`` and the console: each one an indexed range, never a scan.

Queued and running work is small next to the history (tasks by status go
through ``ix_tasks_status``, attempts through ``ix_attempts_status``, the
callback outbox through ``ix_notifications_status_next``), and jobs by
process and status come from ``job_counts``, so none of these grows with the
number of jobs kept.
"""

from __future__ import annotations

from sqlalchemy import func, select

from ..stac.events import DESCRIBE, PUSH
from ..store.db import Store
from ..store.models import Job, Notification, OperatorRequest, Task, TaskAttempt, TaskStatus

ACTIVE_TASKS = (TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.RUNNING)
ACTIVE_ATTEMPTS = ("launched", "running")


def task_counts(store: Store) -> dict[str, int]:
    """Tasks waiting for earlier steps (pending), ready to run (queued) and handed to a backend (running)."""
    with store.sessions() as session:
        counts = dict(session.execute(select(Task.status, func.count()).where(Task.status.in_(ACTIVE_TASKS))
                                      .group_by(Task.status)).all())
    return {status: int(counts.get(status, 0)) for status in ACTIVE_TASKS}


def active_attempts(store: Store) -> dict[tuple[str, str], int]:
    """{(backend, launched | running): attempts}: handed to the engine and not started yet, or running."""
    with store.sessions() as session:
        rows = session.execute(select(TaskAttempt.backend, TaskAttempt.status, func.count())
                               .where(TaskAttempt.status.in_(ACTIVE_ATTEMPTS))
                               .group_by(TaskAttempt.backend, TaskAttempt.status)).all()
    return {(backend, status): int(n) for backend, status, n in rows}


OUTBOX_CHANNELS = ("callbacks", DESCRIBE, PUSH)  # subscribers' callbacks, STAC descriptions, catalogue pushes


def outbox_depth(store: Store) -> dict[str, int]:
    """Outbox rows waiting to be delivered, by channel (every callback event is ``callbacks``)."""
    with store.sessions() as session:
        rows = session.execute(select(Notification.event, func.count()).where(Notification.status == "pending")
                               .group_by(Notification.event)).all()
    depth = dict.fromkeys(OUTBOX_CHANNELS, 0)
    for event, n in rows:
        channel = event if event in depth else "callbacks"
        depth[channel] += int(n)
    return depth


def open_requests(store: Store) -> int:
    """Operators' requests the dispatcher has not carried out yet."""
    with store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(OperatorRequest)
                                  .where(OperatorRequest.handled.is_(None))) or 0)


def queue_by_owner(store: Store, limit: int = 200) -> list[dict[str, object]]:
    """Ready and running tasks by user and process, the longest queues first."""
    with store.sessions() as session:
        rows = session.execute(
            select(Job.user, Job.process_id, Task.status, func.count()).join(Job, Task.job_id == Job.id)
            .where(Task.status.in_((TaskStatus.QUEUED, TaskStatus.RUNNING)))
            .group_by(Job.user, Job.process_id, Task.status)).all()
    owners: dict[tuple[str, str], dict[str, object]] = {}
    for user, process, status, n in rows:
        entry = owners.setdefault((user, process), {"user": user, "process": process, "queued": 0, "running": 0})
        entry[status] = int(n)
    return sorted(owners.values(), key=lambda e: (-int(e["queued"]), -int(e["running"]), e["user"]))[:limit]
