"""Retention: what the gateway deletes, and when (``[gateway] retention``, ``wps-gateway gc``).

Without it, job folders, sandboxes, fetched bundles and rows grow for ever.
One pass (``collect``) removes, oldest first and in bounded batches:

* the files of dismissed jobs, at once (their row stays, so a client still
  reads ``dismissed``, until the row's own retention);
* jobs past their status's retention: their folder (and their results
  folder on HDFS, ``[yarn] results_dir``), their attempts' sandboxes,
  their tasks, attempts, events, callbacks and STAC items (served
  here; the portal's catalogue keeps what was pushed); the job row stays,
  without its inputs and outputs, as the accounting record (its usage in
  ``job_usage``) until ``records`` has passed, then it goes too;
* sandboxes of attempts that ended longer ago than ``sandboxes`` (the local
  backend's; Mesos agents collect their own);
* fetch-cache entries (unpacked processor bundles) unused for ``cache``.

The active dispatcher runs a pass every ``Collector.interval`` seconds beside
the notifier; ``wps-gateway gc`` runs one by hand.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from mesos_backend import BackendError
from mesos_backend.yarn.results import HdfsResults

from .planner import job_paths
from .store.db import Store
from .store.models import Job, JobStatus, Notification, StacItem, Task, TaskAttempt, utcnow
from .streaks import FailureStreak

LOG = logging.getLogger(__name__)
KEYS = (JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.DISMISSED, "sandboxes", "cache", "records")
DEFAULT_RETENTION = "successful:30d, failed:30d, dismissed:7d, sandboxes:7d, cache:30d, records:never"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
BATCH = 200


def parse_retention(text: str) -> dict[str, timedelta | None]:
    """``key:duration, ...`` (durations like ``30d``, ``12h``, ``never``); unnamed keys keep the default."""
    out = _parse(DEFAULT_RETENTION)
    out.update(_parse(text))
    return out


def _parse(text: str) -> dict[str, timedelta | None]:
    out: dict[str, timedelta | None] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        key, _, value = (part.strip() for part in entry.partition(":"))
        if key not in KEYS:
            raise ValueError(f"[gateway] retention: unknown key {key!r} (known: {', '.join(KEYS)})")
        if value == "never":
            out[key] = None
            continue
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"[gateway] retention: {key}:{value!r} is not a duration such as 30d, 12h or never")
        out[key] = timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])
    return out


@dataclass
class Collected:
    """What one pass removed (or, dry, would remove)."""

    jobs: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    dismissed_files: list[str] = field(default_factory=list)
    sandboxes: int = 0
    cache_entries: int = 0

    def __str__(self) -> str:
        return (f"{len(self.jobs)} job(s) past retention, files of {len(self.dismissed_files)} dismissed job(s), "
                f"{self.sandboxes} sandbox(es), {self.cache_entries} fetch-cache entr(ies), "
                f"{len(self.records)} job record(s)")


@dataclass
class Retention:
    store: Store
    jobs_dir: Path
    sandbox_dir: Path
    cache_dir: Path
    keep: dict[str, timedelta | None]
    results: HdfsResults | None = None  # where successful jobs' files are, when on HDFS

    def collect(self, dry_run: bool = False) -> Collected:
        """One pass; safe to run while the gateway works (it never touches an active job or attempt)."""
        done = Collected()
        self._dismissed_files(done, dry_run)
        self._expired_jobs(done, dry_run)
        self._old_records(done, dry_run)
        self._old_sandboxes(done, dry_run)
        self._unused_cache(done, dry_run)
        return done

    def _dismissed_files(self, done: Collected, dry_run: bool) -> None:
        with self.store.sessions() as session:
            ids = session.scalars(select(Job.id).where(Job.status == JobStatus.DISMISSED)
                                  .order_by(Job.finished).limit(BATCH * 5)).all()
            present = [job_id for job_id in ids if job_paths(self.jobs_dir, job_id)["root"].exists()]
            sandboxes = self._sandboxes_of(session, present)
        done.dismissed_files = present
        if not dry_run:
            for job_id in present:
                _remove(job_paths(self.jobs_dir, job_id)["root"])
            for sandbox in sandboxes:
                _remove(sandbox)

    def _expired_jobs(self, done: Collected, dry_run: bool) -> None:
        now = utcnow()
        with self.store.sessions() as session:
            for status in JobStatus.FINAL:
                keep = self.keep.get(status)
                if keep is None:
                    continue
                ids = session.scalars(select(Job.id).where(Job.status == status, Job.expired.is_(None),
                                                           Job.finished < now - keep)
                                      .order_by(Job.finished).limit(BATCH)).all()
                done.jobs += ids
            sandboxes = self._sandboxes_of(session, done.jobs)
        if dry_run or not done.jobs:
            return
        done.jobs = self._delete_results(done.jobs)
        if not done.jobs:
            return
        for job_id in done.jobs:
            _remove(job_paths(self.jobs_dir, job_id)["root"])
        for sandbox in sandboxes:
            _remove(sandbox)
        with self.store.session() as session:  # attempts and their events cascade with the tasks
            session.execute(delete(Task).where(Task.job_id.in_(done.jobs)).execution_options(synchronize_session=False))
            for kind in (Notification, StacItem):  # callbacks and pushes; the items describe files now gone
                session.execute(delete(kind).where(kind.job_id.in_(done.jobs)).execution_options(synchronize_session=False))
            session.execute(update(Job).where(Job.id.in_(done.jobs)).values(expired=now, inputs={}, outputs={})
                            .execution_options(synchronize_session=False))
        LOG.info("retention: removed the files, tasks and attempts of %d job(s); their records stay", len(done.jobs))

    def _delete_results(self, job_ids: list[str]) -> list[str]:
        """Delete the jobs' results folders on HDFS; the jobs whose folder could not go wait for the next pass."""
        if self.results is None:
            return job_ids
        gone = []
        for job_id in job_ids:
            try:
                self.results.delete(job_id)
            except BackendError as exc:  # HDFS away or refusing: the job keeps its row, so the next pass retries
                LOG.warning("retention: cannot delete the HDFS results of job %s yet: %s", job_id, exc)
                continue
            gone.append(job_id)
        return gone

    def _old_records(self, done: Collected, dry_run: bool) -> None:
        """Job rows (and their usage) kept as the accounting record, past ``records``."""
        keep = self.keep.get("records")
        if keep is None:
            return
        with self.store.sessions() as session:
            done.records = list(session.scalars(select(Job.id).where(Job.expired < utcnow() - keep)
                                                .order_by(Job.expired).limit(BATCH)))
        if done.records and not dry_run:
            with self.store.session() as session:  # job_usage cascades
                session.execute(delete(Job).where(Job.id.in_(done.records))
                                .execution_options(synchronize_session=False))

    def _sandboxes_of(self, session, job_ids: list[str]) -> list[Path]:
        if not job_ids:
            return []
        rows = session.scalars(select(TaskAttempt.sandbox).join(Task).where(Task.job_id.in_(job_ids),
                                                                            TaskAttempt.sandbox.is_not(None)))
        return [Path(p) for p in rows if self._ours(Path(p))]

    def _ours(self, path: Path) -> bool:
        """Only sandboxes under our own sandbox folder are ever removed (not an agent's path)."""
        try:
            return path.resolve().parent == self.sandbox_dir.resolve()
        except OSError:
            return False

    def _old_sandboxes(self, done: Collected, dry_run: bool) -> None:
        keep = self.keep.get("sandboxes")
        if keep is None or not self.sandbox_dir.is_dir():
            return
        cutoff = time.time() - keep.total_seconds()
        old = [entry for entry in os.scandir(self.sandbox_dir) if entry.is_dir(follow_symlinks=False)
               and entry.stat(follow_symlinks=False).st_mtime < cutoff]
        if not old:
            return
        with self.store.sessions() as session:
            active = set(session.scalars(select(TaskAttempt.backend_task_id).where(
                TaskAttempt.backend_task_id.in_([e.name for e in old]),
                TaskAttempt.status.in_(("launched", "running")))))
        victims = [Path(e.path) for e in old if e.name not in active]
        done.sandboxes = len(victims)
        if not dry_run:
            for sandbox in victims:
                _remove(sandbox)

    def _unused_cache(self, done: Collected, dry_run: bool) -> None:
        keep = self.keep.get("cache")
        if keep is None or not self.cache_dir.is_dir():
            return
        cutoff = time.time() - keep.total_seconds()
        old = [Path(e.path) for e in os.scandir(self.cache_dir)
               if not e.name.startswith(".") and e.stat(follow_symlinks=False).st_mtime < cutoff]
        done.cache_entries = len(old)
        if not dry_run:
            for entry in old:
                _remove(entry)


def _remove(path: Path) -> None:
    """Remove a folder that may hold read-only entries (an unpacked bundle)."""
    def writable_then_retry(function, name, _excinfo) -> None:
        os.chmod(os.path.dirname(name), 0o700)
        if os.path.isdir(name) and not os.path.islink(name):
            os.chmod(name, 0o700)
        function(name)

    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, onerror=writable_then_retry)


class Collector:
    """Runs a retention pass every ``interval`` seconds until ``stop`` (beside the active dispatcher)."""

    interval = 600.0
    first_pass = 30.0  # seconds after taking over: the store and the backend have settled by then

    def __init__(self, retention: Retention) -> None:
        self.retention = retention

    def run(self, stop: threading.Event) -> None:
        streak = FailureStreak(LOG, "retention pass", self.interval, self.interval)
        wait = self.first_pass
        while not stop.wait(wait):
            wait = streak.delay if streak.count else self.interval
            try:
                collected = self.retention.collect()
                streak.succeeded()
                if any((collected.jobs, collected.records, collected.sandboxes, collected.dismissed_files,
                        collected.cache_entries)):
                    LOG.info("retention pass: %s", collected)
            except Exception as exc:
                streak.failed(exc)
