"""Operators' requests that change task state: retry a failed job's tasks or the whole job, change a priority.

The dispatcher is the only writer of task state, so the console, the REST
control and the CLI only write a request row (``request_action``); the
active dispatcher carries the open requests out on its next turn, each in a
transaction fenced like its own writes (``OperatorRequests.apply``), and
records what it did or why it did nothing. A request is therefore never
lost (it waits in the store for whichever dispatcher is active) and never
races the dispatcher's own bookkeeping.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mesos_backend import Backend

from .jobs import JobNotFound, processor_of
from .notify import enqueue
from .planner import job_paths
from .store.db import Store
from .store.models import Job, JobStatus, OperatorRequest, Task, TaskAttempt, TaskStatus, utcnow

LOG = logging.getLogger(__name__)
RETRY_FAILED, RETRY_JOB, PRIORITY = "retry_failed", "retry_job", "priority"
ACTIONS = (RETRY_FAILED, RETRY_JOB, PRIORITY)
PRIORITY_RANGE = (-1000, 1000)
CHECK_SECONDS = 0.5  # how often the dispatcher looks for open requests
BATCH = 50


class RequestRefused(ValueError):
    """The job cannot be asked that now (a retry of a job that did not fail, say): a 409."""


def request_action(store: Store, job_id: str, action: str, value: int | None = None, by: str = "") -> dict[str, Any]:
    """Write a request for the dispatcher; JobNotFound, ValueError (bad value) or RequestRefused (not now)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    if action == PRIORITY:
        low, high = PRIORITY_RANGE
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"a priority is an integer from {low} to {high}")
    with store.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFound(job_id)
        if action != PRIORITY:
            refusal = _retry_refusal(job)
            if refusal:
                raise RequestRefused(refusal)
        row = OperatorRequest(job_id=job_id, action=action, value=value if action == PRIORITY else None,
                              requested_by=by[:128], outcome="")
        session.add(row)
        session.flush()
        document = request_json(row)
    LOG.info("%s asked for %s of job %s%s", by or "an operator", action, job_id,
             f" ({value})" if action == PRIORITY else "")
    return document


def _retry_refusal(job: Job) -> str | None:
    if job.status != JobStatus.FAILED:
        return f"job {job.id} is {job.status}: only a failed job is retried"
    if job.cancel_requested:
        return f"job {job.id} was dismissed"
    return None


def request_json(row: OperatorRequest) -> dict[str, Any]:
    state = "pending" if row.handled is None else ("refused" if row.outcome.startswith("not done") else "done")
    return {"id": row.id, "jobID": row.job_id, "action": row.action, "value": row.value,
            "requestedBy": row.requested_by, "created": row.created.isoformat() if row.created else None,
            "handled": row.handled.isoformat() if row.handled else None, "state": state, "outcome": row.outcome}


def get_request(store: Store, request_id: int) -> dict[str, Any]:
    """LookupError if there is none."""
    with store.sessions() as session:
        row = session.get(OperatorRequest, request_id)
        if row is None:
            raise LookupError(f"no request {request_id}")
        return request_json(row)


def requests_of(store: Store, job_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """A job's latest requests, newest first."""
    with store.sessions() as session:
        rows = session.scalars(select(OperatorRequest).where(OperatorRequest.job_id == job_id)
                               .order_by(OperatorRequest.id.desc()).limit(limit)).all()
        return [request_json(row) for row in rows]


def wait_handled(store: Store, request_id: int, timeout: float) -> dict[str, Any]:
    """The request once the dispatcher handled it, or as it is after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        document = get_request(store, request_id)
        if document["state"] != "pending" or time.monotonic() >= deadline:
            return document
        time.sleep(0.1)


Write = Callable[[], AbstractContextManager[Session]]
Advance = Callable[[Session, str], list[str]]


class OperatorRequests:
    """The dispatcher's side: carry out the open requests, one fenced transaction each."""

    def __init__(self, store: Store, jobs_dir, check_seconds: float = CHECK_SECONDS) -> None:
        self.store = store
        self.jobs_dir = jobs_dir
        self.check_seconds = check_seconds
        self._checked = -math.inf

    def apply(self, write: Write, advance: Advance, backend: Backend) -> int:
        """``write`` is the dispatcher's fenced transaction, ``advance`` its step that queues a job's ready
        tasks (and returns attempts to kill). Reads the store at most every ``check_seconds``; returns how
        many requests it carried out (the dispatcher then looks for ready tasks and jobs to plan)."""
        now = time.monotonic()
        if now - self._checked < self.check_seconds:
            return 0
        self._checked = now
        with self.store.sessions() as session:
            ids = session.scalars(select(OperatorRequest.id).where(OperatorRequest.handled.is_(None))
                                  .order_by(OperatorRequest.id).limit(BATCH)).all()
        handled = 0
        for request_id in ids:
            moved: list[str] = []
            kills: list[str] = []
            with write() as session:
                row = session.get(OperatorRequest, request_id)
                if row is None or row.handled is not None:
                    continue
                job = session.get(Job, row.job_id)
                if row.action == PRIORITY:
                    outcome, moved = self._priority(session, job, row.value)
                else:
                    outcome, kills = self._retry(session, job, row.action == RETRY_JOB, row.requested_by, advance)
                row.handled, row.outcome = utcnow(), outcome
            LOG.info("operator request %d (%s of job %s): %s", request_id, row.action, row.job_id, outcome)
            for backend_id in kills:
                backend.kill(backend_id)
            for backend_id in moved:  # after the commit: the new priority is what a relaunch would get too
                backend.set_priority(backend_id, row.value)
            handled += 1
        return handled

    @staticmethod
    def _priority(session: Session, job: Job, priority: int) -> tuple[str, list[str]]:
        old, job.priority = job.priority, priority
        queued = list(session.scalars(select(TaskAttempt.backend_task_id).join(Task, TaskAttempt.task_id == Task.id)
                                      .where(Task.job_id == job.id, TaskAttempt.status == "launched")))
        return f"priority {old} -> {priority}" + (f"; {len(queued)} waiting task(s) reordered" if queued else ""), \
            queued

    def _retry(self, session: Session, job: Job, whole: bool, by: str, advance: Advance) -> tuple[str, list[str]]:
        refusal = _retry_refusal(job)
        paths = job_paths(self.jobs_dir, job.id)
        if refusal is None and not paths["root"].is_dir():
            refusal = f"job {job.id}'s files are gone (retention)"
        if refusal:
            return f"not done: {refusal}", []
        wanted = None if whole else (TaskStatus.FAILED, TaskStatus.CANCELLED)
        query = select(Task.id, Task.step, Task.attempts).where(Task.job_id == job.id)
        tasks = session.execute(query if wanted is None else query.where(Task.status.in_(wanted))).all()
        who = f" (asked by {by})" if by else ""
        now = utcnow()
        if not tasks and whole:  # it failed before it was planned: plan it again
            job.status, job.message, job.finished, job.progress = JobStatus.ACCEPTED, f"Retrying{who}", None, 0
            return "the job is planned again", []
        retries = {step.id: step.retries for step in processor_of(job).steps}
        session.execute(update(Task), [
            {"id": t.id, "status": TaskStatus.PENDING, "max_attempts": t.attempts + retries.get(t.step, 0) + 1,
             "finished": None, "not_before": None, "message": f"retry{who}"} for t in tasks])
        values: dict[str, Any] = {"status": JobStatus.RUNNING, "finished": None, "updated": now,
                                  "message": f"Retrying {len(tasks)} task(s){who}"}
        if whole:
            values.update(progress=0, outputs={})
            _empty(paths["steps"])
            _empty(paths["outputs"])
        session.execute(update(Job).where(Job.id == job.id).values(**values)
                        .execution_options(synchronize_session=False))
        enqueue(session, job.id, job.subscriber, JobStatus.RUNNING)
        kills = advance(session, job.id)
        return f"{len(tasks)} task(s) queued again" + (" (the whole job)" if whole else ""), kills


def _empty(folder) -> None:
    """Remove what a folder holds (a rerun must not find the last run's files), keeping the folder."""
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        return
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            entry.mkdir()
        else:
            entry.unlink(missing_ok=True)
