"""What the dispatcher observes as it works: task and job durations, dispatch latency, retries.

Kept as plain counts (no global registry), because the dispatcher may run in
a process of its own (``wps-gateway dispatch``) while ``/metrics`` is served
by the gateway's replicas: the ``StatusPublisher`` writes these counts to the
job store every few seconds, and every replica's ``/metrics`` exposes the
latest copy. A dispatcher that takes over starts from the counts its
predecessor last published, so the counters only ever grow (what a crashed
dispatcher observed in its last seconds is lost, as with any scrape).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store.models import Job, Task, TaskStatus

TASK_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
JOB_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
STARTED_JOBS_KEPT = 100_000  # jobs known to have had their first task start (spares a query per start)


class Histogram:
    """Observations per label values, in fixed buckets (``le``, as Prometheus counts them)."""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.labels, self.buckets = name, help_text, labels, buckets
        self.series: dict[tuple[str, ...], list[float]] = {}  # labels -> per-bucket counts, +Inf, sum

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        counts = self.series.get(labels)
        if counts is None:
            counts = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        counts[bisect.bisect_left(self.buckets, value)] += 1
        counts[-1] += value

    def dump(self) -> list[dict[str, Any]]:
        return [{"labels": list(labels), "counts": counts} for labels, counts in self.series.items()]

    def add(self, dumped: list[dict[str, Any]]) -> None:
        for entry in dumped:
            labels, counts = tuple(entry["labels"]), entry["counts"]
            if len(labels) != len(self.labels) or len(counts) != len(self.buckets) + 2:
                continue  # another version's buckets: start afresh
            mine = self.series.setdefault(labels, [0.0] * len(counts))
            for index, value in enumerate(counts):
                mine[index] += value


class Counter:
    """A counter per label values."""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...]) -> None:
        self.name, self.help, self.labels = name, help_text, labels
        self.series: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self.series[labels] = self.series.get(labels, 0.0) + amount

    def dump(self) -> list[dict[str, Any]]:
        return [{"labels": list(labels), "value": value} for labels, value in self.series.items()]

    def add(self, dumped: list[dict[str, Any]]) -> None:
        for entry in dumped:
            if len(entry["labels"]) == len(self.labels):
                self.inc(tuple(entry["labels"]), float(entry["value"]))


class DispatchMetrics:
    """The dispatcher calls ``observe_turn`` and ``job_finished`` in its transactions; the publisher reads
    ``snapshot`` from another thread."""

    def __init__(self) -> None:
        self.task_duration = Histogram(
            "wps_gateway_task_duration_seconds", "Run time of task attempts that ended, by backend and outcome",
            ("backend", "outcome"), TASK_BUCKETS)
        self.job_duration = Histogram(
            "wps_gateway_job_duration_seconds", "Time from a job's acceptance to its end, by process and status",
            ("process", "status"), JOB_BUCKETS)
        self.dispatch_latency = Histogram(
            "wps_gateway_dispatch_latency_seconds", "Time from a job's acceptance until its first task started",
            ("process",), LATENCY_BUCKETS)
        self.retries = Counter("wps_gateway_task_retries_total",
                               "Task attempts that ended and were followed by another attempt", ("backend", "reason"))
        self._lock = threading.Lock()
        self._started: OrderedDict[str, None] = OrderedDict()

    @property
    def histograms(self) -> tuple[Histogram, ...]:
        return self.task_duration, self.job_duration, self.dispatch_latency

    def observe_turn(self, session: Session, tasks: Iterable[Any], ended: list[tuple[str, Any]]) -> None:
        """One turn's events: ``tasks`` and ``ended`` are the dispatcher's rows (values and the changes the
        turn made, not written yet). Costs a query only for jobs whose first task may have just started."""
        by_id = {task.id: task for task in tasks}
        first: dict[str, datetime] = {}
        for task in by_id.values():
            if "started" in task.changes and task.job_id not in self._started:
                when = task.changes["started"]
                first[task.job_id] = min(when, first.get(task.job_id, when))
        created = self._first_starts(session, first) if first else {}
        with self._lock:
            for _, attempt in ended:
                values = attempt.values
                if values.get("wall_seconds") is not None:
                    self.task_duration.observe((values["backend"], values["status"]), float(values["wall_seconds"]))
                task = by_id.get(values["task_id"])
                if task is not None and task.changes.get("status") == TaskStatus.QUEUED:
                    reason = values.get("reason") or ("exit_code" if values.get("exit_code") is not None
                                                      else values["status"])
                    self.retries.inc((values["backend"], str(reason)[:64]))
            for job_id, (process, accepted) in created.items():
                self.dispatch_latency.observe((process,), max(0.0, (first[job_id] - accepted).total_seconds()))

    def _first_starts(self, session: Session, first: dict[str, datetime]) -> dict[str, tuple[str, datetime]]:
        """The jobs among ``first`` none of whose tasks had started before this turn: (process, created)."""
        earlier = set(session.scalars(select(Task.job_id).where(Task.job_id.in_(first), Task.started.is_not(None))
                                      .distinct()))
        rows = session.execute(select(Job.id, Job.process_id, Job.created).where(Job.id.in_(first))).all()
        for job_id in first:
            self._started[job_id] = None
        while len(self._started) > STARTED_JOBS_KEPT:
            self._started.popitem(last=False)
        return {row.id: (row.process_id, row.created) for row in rows if row.id not in earlier}

    def job_finished(self, session: Session, job_id: str, status: str, when: datetime) -> None:
        row = session.execute(select(Job.process_id, Job.created).where(Job.id == job_id)).first()
        if row is None:
            return
        with self._lock:
            self.job_duration.observe((row.process_id, status), max(0.0, (when - row.created).total_seconds()))
        self._started.pop(job_id, None)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**{h.name: h.dump() for h in self.histograms}, self.retries.name: self.retries.dump()}

    def restore(self, snapshot: dict[str, Any] | None) -> None:
        """Add what an earlier dispatcher published, so that the counters carry on from there."""
        if not snapshot:
            return
        with self._lock:
            for histogram in self.histograms:
                histogram.add(snapshot.get(histogram.name) or [])
            self.retries.add(snapshot.get(self.retries.name) or [])
