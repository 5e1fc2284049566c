"""What one client may hold at once: jobs not ended, their tasks, synchronous requests waiting.

A client is the authenticated user, or, for anonymous requests, the address
the request came from. Over a limit, a submission is refused before anything
is written (HTTP 429 with ``Retry-After``, in each protocol's words), so one
runaway script cannot fill the queue for everyone. Quotas of usage per user
and group are the accounting's business; these are limits of concurrency.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import func, select
from werkzeug.wrappers import Request

from .store.db import Store
from .store.models import Job, JobStatus

RETRY_AFTER_SECONDS = 30


class LimitExceeded(Exception):
    """A client is over one of its limits; the message says which and what to do.

    ``status`` is 429 (try again later, after ``retry_after`` seconds) unless a
    subclass says otherwise (403 for a used-up quota: not before it resets).
    """

    status = 429
    retry_after: int | None = RETRY_AFTER_SECONDS


@dataclass(frozen=True)
class ClientLimits:
    max_jobs: int = 1000  # jobs accepted or running; 0: no limit
    max_tasks: int = 10000  # tasks of those jobs; 0: no limit
    max_sync: int = 2  # synchronous requests waiting at once on this replica; 0: no limit


def client_of(request: Request | None, user: str = "anonymous") -> str:
    """The key limits are counted under: the user, or the address of an anonymous request."""
    if user and user != "anonymous":
        return user
    address = request.remote_addr if request is not None else None
    return f"addr:{address or 'unknown'}"


def check_submission(store: Store, client: str, tasks: int, limits: ClientLimits) -> None:
    """Refuse a job of ``tasks`` tasks that would put ``client`` over its limits (LimitExceeded)."""
    if not (limits.max_jobs or limits.max_tasks):
        return
    with store.sessions() as session:
        jobs, held = session.execute(select(func.count(), func.coalesce(func.sum(Job.task_count), 0))
                                     .where(Job.client == client, Job.status.in_(JobStatus.ACTIVE))).one()
    if limits.max_jobs and jobs >= limits.max_jobs:
        raise LimitExceeded(f"you have {jobs} jobs accepted or running, the most one client may have at once "
                            f"({limits.max_jobs}); wait for some to end")
    if limits.max_tasks and held + tasks > limits.max_tasks:
        raise LimitExceeded(f"this job has {tasks} tasks and your unfinished jobs {held}: over the {limits.max_tasks} "
                            "one client may have at once; wait for some to end or send smaller jobs")


class SyncWaits:
    """Synchronous requests waiting per client on this replica."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._waiting: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, client: str) -> Iterator[None]:
        with self._lock:
            if self.limit and self._waiting[client] >= self.limit:
                raise LimitExceeded(f"you have {self._waiting[client]} synchronous requests waiting already, the "
                                    f"most one client may ({self.limit}); ask for asynchronous execution")
            self._waiting[client] += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting[client] -= 1
                if not self._waiting[client]:
                    del self._waiting[client]
