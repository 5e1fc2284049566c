"""The dispatcher: where the job store and an execution backend meet.

One active instance (see ``leader_lock``) runs a loop that, each turn,
applies the backend's task events to the store, dismisses jobs whose
cancellation was requested, plans newly accepted jobs into tasks, and
launches the tasks that are ready. It is the only writer of task state, and
everything it knows is in the store, so a restarted dispatcher resumes where
the last one stopped: attempts that were active are handed to the backend's
``recover``, which reports them finished or lost, and lost ones run again.

What holds under faults:

* An event leaves memory only when the transaction that records it has
  committed; a turn that fails (store locked, down, disk full) keeps its
  events for the next one, so no job is left running by a failed write.
* Now and then the dispatcher asks the backend what it holds
  (``Backend.active_tasks``) and heals drift both ways: an attempt the store
  believes active that the engine no longer holds goes through ``recover``;
  a task the engine runs that the store does not want is killed. Either must
  be seen twice in a row, so that events in flight are never mistaken for
  drift.
* With a ``Leadership``, every write is fenced by the lease epoch: a
  dispatcher that was replaced cannot record or launch anything.
* A dismissal the store accepted wins: a job is finished successful or
  failed only by a conditional update that sees no dismissal.
* Retry delays run on the monotonic clock; stored times stay UTC.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, insert, select, update
from sqlalchemy.orm import Session, selectinload

from mesos_backend import Backend, BackendError, FetchUri, Resources, TaskEvent, TaskSpec, TaskState
from mesos_backend.yarn.results import HdfsResults, ResultsUnavailable
from processes.bbox import bbox_from_text
from processes.common.fetch import FetchPolicy
from processes.descriptor import DescriptorError, Processor

from .accounting.usage import add_to_jobs, measured_usage
from .batch import BATCH_PROCESS
from .batch.planner import engine_fields
from .control import OperatorRequests
from .job_views import STATUS_OF
from .jobs import processor_of
from .leader_lock import Leadership, LeadershipLost
from .metrics.dispatch import DispatchMetrics
from .notify import enqueue
from .planner import PlanError, job_paths, plan_job, task_environment, task_inputs_text
from .redaction import redact
from .results import put_outputs
from .scheduling import LiveLimits
from .stac.events import enqueue_description
from .store.db import Store
from .store.models import AttemptEvent, Job, JobStatus, Task, TaskAttempt, TaskStatus, utcnow
from .streaks import FailureStreak
from .switches import DispatchSwitch

LOG = logging.getLogger(__name__)
ACTIVE_ATTEMPT = ("launched", "running")
# Attempts that ended because the gateway, its backend or a machine went down, not
# because of the task: they get an extra attempt, at once. (A YARN NodeManager lost,
# an application the ResourceManager forgot; Slurm's NODE_FAIL and preemption.)
NOT_THE_TASKS_FAULT = frozenset({"backend_restarted", "backend_stopped", "never_launched", "node_lost",
                                 "application_unknown", "keeper_lost"})
# Failures no retry can mend: the task is bigger than any machine the engine has.
NO_RETRY = frozenset({"insufficient_resources"})
LAUNCH_CHUNK = 100  # tasks written and launched per transaction (the first of a large job start sooner)
INPUTS_TEXTS_KEPT = 64  # jobs whose encoded inputs are kept (the jobs being launched now)
STARTED_JOBS_KEPT = 10_000  # jobs whose start this dispatcher remembers (it looks again for older ones)
FAILED_TURN_BACKOFF_MAX = 5.0  # seconds between turns while the store keeps failing
PAUSE_RECHECK = 0.5  # seconds an operator's pause switch may take to be seen


@dataclass
class DispatcherOptions:
    jobs_dir: Path
    poll_interval: float = 0.25
    retry_backoff: float = 2.0
    retry_backoff_max: float = 60.0
    max_tasks_per_job: int = 1000
    batch: int = 1000
    min_turn: float = 0.05  # seconds; at most 1/min_turn turns a second
    locality_rules: list[tuple[str, str]] = field(default_factory=list)  # where input data lives
    reconcile_interval: float = 30.0  # seconds between drift checks against the backend
    shutdown_grace: float = 10.0  # seconds running tasks may take to end when the dispatcher stops
    fetch_policy: FetchPolicy | None = None  # what tasks may read (WPS_TASK.fetch); None: tasks are not told
    results: HdfsResults | None = None  # [yarn] results_dir: output files are put there when collected


class Dispatcher:
    """Moves jobs forward; call ``run`` in its own thread or process."""

    HEARTBEAT_SECONDS = 5.0  # the lease is renewed at least this often, so /health sees the dispatcher

    def __init__(self, store: Store, backend: Backend, options: DispatcherOptions,
                 leadership: Leadership | None = None) -> None:
        self.store = store
        self.backend = backend
        self.options = options
        self.leadership = leadership  # None: nothing fences this dispatcher (tests, one-off runs)
        self.paused = False  # in-process override; operators use the store-backed switch
        self.switch = DispatchSwitch(store)
        self._backend_paused = False
        self._pause_reason: str | None = None
        self._pause_checked = -PAUSE_RECHECK
        self._events: queue.SimpleQueue[TaskEvent] = queue.SimpleQueue()
        self._pending: list[TaskEvent] = []  # taken from the queue, not yet committed
        self._wake = threading.Event()
        self._started = False
        self._draining = False
        self._store_changed = True  # a front end in this process changed the store since the last look
        self._next_store_poll = 0.0  # monotonic time of the next look at the store for other processes' changes
        self._hurry = threading.Event()
        self._maybe_ready = True  # something may have made a task ready since the last look (launch then)
        self._started_jobs: dict[str, None] = {}  # jobs known to have a started task (their start is recorded)
        self._processors: dict[str, Processor] = {}  # job id -> its parsed descriptor
        self._inputs_texts: dict[str, str] = {}  # job id -> its inputs as JSON for WPS_TASK (_inputs_text_of)
        self._retry_at: dict[str, float] = {}  # task id -> monotonic time its retry may launch
        self._outputs_due: dict[str, float] = {}  # job id -> monotonic time its outputs are collected (again)
        self._collected: dict[str, Any] = {}  # job id -> its outputs (or why not), collected before its transaction
        self._hdfs_down: tuple[int, float] = (0, 0.0)  # failed tries in a row, monotonic time of the next one
        self._next_drift_check = time.monotonic() + options.reconcile_interval
        self._drift_seen: tuple[set[str], set[str]] = (set(), set())  # (missing, unwanted) at the last check
        self.last_turn: float | None = None  # monotonic time of the last turn that completed
        self.turns = 0  # turns completed (tests wait for turns, not for time)
        self._last_fenced = 0.0
        self.metrics = DispatchMetrics()  # published by the runner's StatusPublisher
        self.live_limits = LiveLimits(store)  # caps and weights operators change while it runs
        self.requests = OperatorRequests(store, options.jobs_dir)  # operators' retries and priority changes

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        """Start the backend and hand it the attempts a previous run left active."""
        if self._started:
            return
        self.backend.start(self._on_event)
        self._started = True
        self._recover()

    def run(self, stop: threading.Event) -> None:
        """Dispatch until ``stop`` is set, then shut down gracefully (see ``_shut_down``).

        Raises LeadershipLost when another dispatcher took over; the backend is
        stopped then too, and nothing more is written.
        """
        self.start()
        streak = FailureStreak(LOG, "dispatcher turn (its events are kept)", self.options.poll_interval,
                               FAILED_TURN_BACKOFF_MAX)
        try:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    if self.leadership is None or self.leadership.holds():
                        self._turn()
                    streak.succeeded()
                except LeadershipLost:
                    raise
                except Exception as exc:  # keep dispatching; the store is consistent per transaction
                    streak.failed(exc)
                self._wake.wait(streak.delay)
                self._wake.clear()
                # Events come in bursts; a turn costs about the same for one event or
                # a hundred, so let them gather for a moment before the next turn.
                stop.wait(max(0.0, began + self.options.min_turn - time.monotonic()))
            self._shut_down()
        except LeadershipLost as exc:
            LOG.error("dispatcher stepping down: %s", exc)
            self.backend.leadership_lost()  # the engine identity (Mesos framework id) is the new leader's now
            self._stop_backend()
            raise

    def run_once(self) -> None:
        """One whole turn: events, cancellations, planning, launching, and now and then a drift check."""
        self._turn(everything=True)

    def _turn(self, everything: bool = False) -> None:
        """A turn of the loop. Events are applied every turn; the store is asked for dismissals and new jobs
        only when a front end in this process said there are some, or ``poll_interval`` has passed (front
        ends in other processes); ready tasks are looked for only when something may have made one ready.
        A burst of events thus costs its bookkeeping, not a scan of the store per turn."""
        now = time.monotonic()
        poll = everything or self._store_changed or now >= self._next_store_poll
        kills, _ = self._apply_events()
        kills += self._collect_due(time.monotonic())  # what the events just made due, too
        if poll:
            self._store_changed = False
            self._next_store_poll = now + self.options.poll_interval
            kills += self._dismiss_requested()
        for backend_id in kills:  # committed as cancelled: kill before anything else can fail
            self.backend.kill(backend_id)
        if self._draining:
            return
        handled = self.requests.apply(self._write, self._advance_job, self.backend)  # may make tasks ready
        planned = self._plan_accepted() if poll or handled else 0
        self.live_limits.apply(self.backend)
        retry_due = any(at <= now for at in self._retry_at.values())
        if not self._sync_pause() and (poll or self._maybe_ready or planned or handled or retry_due):
            self._launch_ready()
        if now >= self._next_drift_check:
            self._next_drift_check = now + self.options.reconcile_interval
            self.check_drift()
        if self.leadership is not None and now - self._last_fenced >= self.HEARTBEAT_SECONDS:
            with self._write():
                pass
        self.last_turn = time.monotonic()
        self.turns += 1

    def wake(self) -> None:
        """A front end changed the store (a job submitted, a dismissal asked for): look at it at once."""
        self._store_changed = True
        self._wake.set()

    def hurry(self) -> None:
        """End the grace period of a shutdown under way (a second SIGTERM)."""
        self._hurry.set()
        self._wake.set()

    def _sync_pause(self) -> bool:
        """Read the pause switch (at most every PAUSE_RECHECK seconds); tell the backend when it flips.
        True while paused."""
        now = time.monotonic()
        if now - self._pause_checked >= PAUSE_RECHECK:
            self._pause_reason, self._pause_checked = self.switch.paused_reason(), now
        reason = self._pause_reason
        paused = self.paused or reason is not None
        if paused != self._backend_paused:
            self.backend.set_paused(paused)
            self._backend_paused = paused
            LOG.info("dispatching %s", f"paused: {reason or 'in process'}" if paused else "resumed")
        return paused

    def _on_event(self, event: TaskEvent) -> None:
        self._events.put(event)
        self._wake.set()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A transaction that writes task state, fenced from its start."""
        with self.store.session() as session:
            self._fence(session)
            yield session

    def _fence(self, session: Session) -> None:
        """Renew the lease at our epoch in this transaction (LeadershipLost if another dispatcher took over)."""
        if self.leadership is not None:
            self.leadership.fence(session)
            self._last_fenced = time.monotonic()

    # -- shutting down ------------------------------------------------------

    def _shut_down(self) -> None:
        """Stop launching; give running tasks ``shutdown_grace`` seconds; stop the backend; record it all.

        Engines whose tasks outlive the backend (Mesos) are stopped at once:
        their tasks are handed back and recovered by the next dispatcher.
        Local tasks get the grace period, then are stopped and recorded as
        lost (``backend_stopped``), so that they run again, without spending
        a retry, when a dispatcher next starts.
        """
        self._draining = True
        self.backend.set_paused(True)  # queued tasks stay queued
        if not self.backend.tasks_survive_stop:
            deadline = time.monotonic() + self.options.shutdown_grace
            while self._running_attempts() and time.monotonic() < deadline and not self._hurry.is_set():
                self._turn_quietly()
                self._wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                self._wake.clear()
            left = self._running_attempts()
            if left:
                LOG.warning("shutting down: %d task(s) still running after %g s; stopping them (they run again "
                            "at the next start)", left, self.options.shutdown_grace)
        self._stop_backend()
        for _ in range(3):  # what stopping the backend reported: lost attempts to requeue
            self._turn_quietly()
            if not self._pending and self._events.empty():
                break
        if self._pending:
            LOG.error("shutting down with %d task event(s) not recorded (the store is failing); the next "
                      "dispatcher recovers those attempts", len(self._pending))

    def _stop_backend(self) -> None:
        try:
            self.backend.stop()
        except Exception:
            LOG.exception("stopping the %s backend failed", self.backend.name)

    def _turn_quietly(self) -> None:
        try:
            self.run_once()
        except LeadershipLost:
            raise
        except Exception:
            LOG.exception("dispatcher turn failed while shutting down")

    def _running_attempts(self) -> int:
        try:
            with self.store.sessions() as session:
                return session.scalar(select(func.count()).select_from(TaskAttempt).where(
                    TaskAttempt.status == "running", TaskAttempt.backend == self.backend.name)) or 0
        except Exception:
            return 0  # the store is down: nothing to wait for that could be recorded

    # -- recovery -----------------------------------------------------------

    def _recover(self) -> None:
        """Hand the backend every attempt a previous run left active (an empty list says there are none)."""
        with self.store.session() as session:
            attempts = session.scalars(select(TaskAttempt).where(TaskAttempt.status.in_(ACTIVE_ATTEMPT))
                                       .options(selectinload(TaskAttempt.task).selectinload(Task.job))).all()
            hints = {a.backend_task_id: _recovery_hint(a) for a in attempts}
            now, now_mono = utcnow(), time.monotonic()
            for task_id, not_before in session.execute(select(Task.id, Task.not_before).where(
                    Task.status == TaskStatus.QUEUED, Task.not_before > now)):
                # The retry clock runs here on the monotonic clock; a stepped wall clock holds nothing longer.
                wait = min((not_before - now).total_seconds(), self.options.retry_backoff_max)
                self._retry_at[task_id] = now_mono + wait
            if self.options.results is not None:  # a previous run may have stopped while HDFS was away
                has_tasks = exists().where(Task.job_id == Job.id)
                unfinished = exists().where(Task.job_id == Job.id, Task.status != TaskStatus.SUCCEEDED)
                for job_id in session.scalars(select(Job.id).where(Job.status.in_(JobStatus.ACTIVE), has_tasks,
                                                                   ~unfinished)):
                    self._outputs_due[job_id] = now_mono
        if hints:
            LOG.info("recovering %d task attempts left active by a previous dispatcher", len(hints))
        self.backend.recover(list(hints), hints)

    def check_drift(self) -> None:
        """Compare what the backend holds with what the store believes active, and heal the difference."""
        held = self.backend.active_tasks()
        if held is None:
            return
        with self.store.sessions() as session:  # the ids of every active attempt; whole rows only of the missing
            active = set(session.connection().execute(_ACTIVE_ATTEMPT_IDS, {"backend": self.backend.name}).scalars())
            in_flight = {e.task_id for e in self._pending}
            missing = {t for t in active if t not in held and t not in in_flight}
            unwanted = held - active
            seen_missing, seen_unwanted = self._drift_seen
            self._drift_seen = (missing, unwanted)
            missing, unwanted = missing & seen_missing, unwanted & seen_unwanted  # seen twice in a row
            hints = {a.backend_task_id: _recovery_hint(a) for a in session.scalars(
                select(TaskAttempt).where(TaskAttempt.backend_task_id.in_(missing))
                .options(selectinload(TaskAttempt.task).selectinload(Task.job)))} if missing else {}
        if missing:
            LOG.warning("%d attempt(s) active in the store are unknown to the %s backend; recovering them",
                        len(missing), self.backend.name)
            self.backend.recover(sorted(missing), hints)
        for task_id in sorted(unwanted):
            LOG.warning("the %s backend runs %s, which the store does not want: killing it",
                        self.backend.name, task_id)
            self.backend.kill(task_id)

    # -- events -------------------------------------------------------------

    def _apply_events(self) -> tuple[list[str], int]:
        """Record a batch of events; they leave ``_pending`` only once their transaction has committed.

        One transaction for the whole batch, in bulk statements: the rows the
        events touch are read at once, changed in memory, and written back as
        one INSERT of history rows and one UPDATE per kind of change.
        """
        while True:
            try:
                self._pending.append(self._events.get_nowait())
            except queue.Empty:
                break
        if not self._pending:
            return [], 0
        events = self._pending[: self.options.batch * 2]
        kills: list[str] = []
        with self._write() as session:
            connection = session.connection()
            attempts, tasks = _load_rows(connection, {e.task_id for e in events})
            history: list[dict[str, Any]] = []
            ended: list[tuple[str, _Row]] = []  # (job id, attempt) of the attempts that ended: their usage
            first_starts: dict[str, datetime] = {}  # job id -> when a task of it started (first in this turn)
            jobs: dict[str, None] = {}
            for event in events:
                attempt = attempts.get(event.task_id)
                if attempt is None:
                    LOG.warning("event for unknown task %s ignored", event.task_id)
                    continue
                task = tasks[attempt.task_id]
                self._apply_event(attempt, task, event, history, ended, first_starts)
                jobs[task.job_id] = None
            self.metrics.observe_turn(session, tasks.values(), ended)
            if history:
                connection.execute(_INSERT_EVENTS, history)
            _write_changes(connection, TaskAttempt, attempts.values())
            _write_changes(connection, Task, tasks.values())
            add_to_jobs(session, ended)
            first_starts = {j: w for j, w in first_starts.items() if j not in self._started_jobs}
            if first_starts:
                connection.execute(_START_JOB, [{"job_id": j, "when": w} for j, w in first_starts.items()])
            for job_id in jobs:
                kills += self._advance_job(session, job_id)
        del self._pending[: len(events)]
        self._started_jobs.update(first_starts)
        while len(self._started_jobs) > STARTED_JOBS_KEPT:
            del self._started_jobs[next(iter(self._started_jobs))]
        return kills, len(events)

    def _apply_event(self, attempt: _Row, task: _Row, event: TaskEvent, history: list[dict[str, Any]],
                     ended: list[tuple[str, _Row]], first_starts: dict[str, datetime]) -> None:
        when = datetime.fromtimestamp(event.timestamp, UTC)
        # A task's last words may quote a URL with its credentials; they reach status documents from here.
        message = redact(event.message)[:4000]
        history.append({"attempt_id": attempt.id, "state": event.state.value, "reason": event.reason,
                        "message": message, "timestamp": when})
        if event.state is TaskState.NOTICE:
            return
        if event.agent:
            attempt.set(agent=event.agent)
        if event.sandbox:
            attempt.set(sandbox=event.sandbox)
        if event.state is TaskState.STARTED:
            if attempt.status != "launched":
                return  # a repeat, or a late one after the end: the history row is enough
            attempt.set(status="running", started=when)
            pid = _pid_from(event)
            if pid is not None:
                attempt.set(pid=pid)
            if task.status == TaskStatus.RUNNING and task.started is None:
                task.set(started=when)
            first_starts.setdefault(task.job_id, when)  # a job reads as accepted until a task starts
            return
        if attempt.status not in ACTIVE_ATTEMPT:
            return  # a duplicate terminal event
        attempt.set(finished=when, exit_code=event.exit_code, reason=event.reason, message=message,
                    status=_attempt_status(event))
        attempt.set(**measured_usage(attempt.backend_task_id, task.job_id, event, self.options.jobs_dir))
        ended.append((task.job_id, attempt))
        if task.status != TaskStatus.RUNNING:
            return  # cancelled meanwhile: keep the record, change nothing else
        if event.succeeded:
            task.set(status=TaskStatus.SUCCEEDED, finished=when, message="")
            return
        self._retry_or_fail(task, attempt, replace(event, message=message))

    def _retry_or_fail(self, task: _Row, attempt: _Row, event: TaskEvent) -> None:
        reason = _describe_failure(event)
        restarted = event.reason in NOT_THE_TASKS_FAULT
        if restarted:
            task.set(max_attempts=task.max_attempts + 1)
        if task.attempts < task.max_attempts and event.reason not in NO_RETRY:
            delay = 0.0 if restarted else min(
                self.options.retry_backoff * 2 ** (task.attempts - 1), self.options.retry_backoff_max)
            # not_before is shown to users; the clock the retry waits on is _retry_at (monotonic)
            task.set(status=TaskStatus.QUEUED, not_before=utcnow() + timedelta(seconds=delay),
                     message=f"attempt {attempt.number} {reason}; retrying in {delay:.0f} s")
            if delay:
                self._retry_at[task.id] = time.monotonic() + delay
            self._maybe_ready = True
            LOG.info("task %s: %s", task.id, task.message)
            return
        task.set(status=TaskStatus.FAILED, finished=utcnow(),
                 message=f"{reason} (after {task.attempts} attempt{'s' if task.attempts != 1 else ''})")

    # -- job progress -------------------------------------------------------

    def _advance_job(self, session: Session, job_id: str) -> list[str]:
        """Promote ready tasks, update progress, finish the job; return attempts to kill.

        Works on counts per step and status (one aggregate query), not on the
        job's task rows: a turn costs the same for a job of ten tasks or ten
        thousand.
        """
        connection = session.connection()
        if connection.execute(STATUS_OF, {"job_id": job_id}).scalar() in JobStatus.FINAL:
            return []
        counts: dict[tuple[str, str], int] = {
            (step, status): n for step, status, n in connection.execute(_TASK_COUNTS, {"job_id": job_id})}
        if any(status == TaskStatus.FAILED for _, status in counts) and not self._runs_on(session, job_id, counts):
            step, index, why = session.execute(
                select(Task.step, Task.index, Task.message).where(Task.job_id == job_id,
                                                                  Task.status == TaskStatus.FAILED)
                .order_by(Task.seq).limit(1)).one()
            return self._finish_job(session, job_id, JobStatus.FAILED, f"Step '{step}' task {index} failed: {why}")
        total = sum(counts.values())
        succeeded = sum(n for (_, status), n in counts.items() if status == TaskStatus.SUCCEEDED)
        if any(status == TaskStatus.PENDING for _, status in counts):
            self._promote(session, job_id, _finished_steps(counts))
        if total and succeeded == total:
            return self._finish_collected(session, job_id)
        running = sorted({step for step, status in counts if status == TaskStatus.RUNNING})
        message = f"{succeeded} of {total} tasks done" + (f"; running step {', '.join(running)}" if running else "")
        connection.execute(_JOB_PROGRESS, {"job_id": job_id, "progress": min(99, int(100 * succeeded / max(1, total))),
                                           "message": message})
        return []

    def _finish_collected(self, session: Session, job_id: str) -> list[str]:
        """End a job whose tasks all succeeded with its outputs.

        With ``results`` (HDFS) the files are put there outside any write transaction: this turn only
        marks the job due, ``_collect_due`` uploads and ends it in a short transaction of its own. While
        HDFS cannot be reached the job stays running, says so, and is collected again a moment later.
        """
        if self.options.results is None:
            outcome = self._collect(session, job_id)
        elif job_id in self._collected:
            outcome = self._collected.pop(job_id)
        else:
            self._outputs_due[job_id] = time.monotonic()
            return []
        if isinstance(outcome, ResultsUnavailable):
            self._outputs_due[job_id] = self._hdfs_down[1]
            session.execute(update(Job).where(Job.id == job_id, Job.status.in_(JobStatus.ACTIVE))
                            .values(message="All tasks done; waiting for HDFS to store the outputs")
                            .execution_options(synchronize_session=False))
            return []
        if isinstance(outcome, OutputMissing):
            return self._finish_job(session, job_id, JobStatus.FAILED, str(outcome))
        if isinstance(outcome, BackendError):  # HDFS refused (permissions, quota): no retry mends that
            return self._finish_job(session, job_id, JobStatus.FAILED,
                                    f"The outputs could not be stored on HDFS: {redact(str(outcome))}")
        return self._finish_job(session, job_id, JobStatus.SUCCESSFUL, "Process succeeded", outcome)

    def _collect(self, session: Session, job_id: str) -> dict[str, Any] | Exception:
        """The job's outputs, or why they cannot be had (missing, HDFS away, HDFS refusing)."""
        failures, next_try = self._hdfs_down
        try:
            if failures and time.monotonic() < next_try:  # one job's try at a time while HDFS is away
                raise ResultsUnavailable("HDFS did not answer the last try")
            outputs = collect_outputs(self._processor(session, job_id), job_id, self.options.jobs_dir,
                                      self.options.results)
        except ResultsUnavailable as exc:
            if not failures or time.monotonic() >= next_try:
                delay = min(self.options.retry_backoff * 2 ** failures, self.options.retry_backoff_max)
                self._hdfs_down = (failures + 1, time.monotonic() + delay)
                LOG.warning("job %s: its outputs cannot be put on HDFS yet: %s", job_id, redact(str(exc)))
            return exc
        except (OutputMissing, BackendError) as exc:
            return exc
        self._hdfs_down = (0, 0.0)
        return outputs

    def _collect_due(self, now: float) -> list[str]:
        """Put on HDFS the outputs of jobs whose tasks all succeeded (outside any write transaction, so a
        large product holds neither the turn's transaction nor the store's write lock), then end them."""
        due = [job_id for job_id, at in self._outputs_due.items() if at <= now]
        if not due:
            return []
        for job_id in due:
            del self._outputs_due[job_id]  # _finish_collected puts it back while HDFS is away
            with self.store.sessions() as session:
                self._collected[job_id] = self._collect(session, job_id)
        kills: list[str] = []
        try:
            with self._write() as session:
                for job_id in due:  # a job ended otherwise meanwhile (dismissed) is not looked at again
                    kills += self._advance_job(session, job_id)
        except BaseException:
            for job_id in due:  # nothing was recorded: collect them again (files already on HDFS count)
                self._outputs_due.setdefault(job_id, time.monotonic())
            raise
        finally:
            for job_id in due:
                self._collected.pop(job_id, None)  # left over when the job ended otherwise
        return kills

    def _runs_on(self, session: Session, job_id: str, counts: dict[tuple[str, str], int]) -> bool:
        """A task list runs every task to its end, as mesos-batch does: a failed task fails its job only once
        no other task is queued or running."""
        return self._processor(session, job_id).id == BATCH_PROCESS and any(
            status in (TaskStatus.QUEUED, TaskStatus.RUNNING) for _, status in counts)

    def _promote(self, session: Session, job_id: str, done_steps: set[str]) -> None:
        """Queue the pending tasks of every step whose dependencies have all succeeded."""
        ready = [step.id for step in self._processor(session, job_id).steps if set(step.depends_on) <= done_steps]
        if ready:
            self._maybe_ready = True
            session.execute(update(Task).where(Task.job_id == job_id, Task.status == TaskStatus.PENDING,
                                               Task.step.in_(ready)).values(status=TaskStatus.QUEUED)
                            .execution_options(synchronize_session=False))

    def _fail_unplanned(self, session: Session, job: Job, why: str) -> None:
        job.status, job.message, job.finished = JobStatus.FAILED, f"Cannot plan job: {why}", utcnow()
        self._processors.pop(job.id, None)
        enqueue(session, job.id, job.subscriber, JobStatus.FAILED)

    def _processor(self, session: Session, job_id: str) -> Processor:
        """The job's workflow, parsed once per job (the descriptor it was submitted with)."""
        processor = self._processors.get(job_id)
        if processor is None:
            processor = self._processors[job_id] = processor_of(session.get(Job, job_id))
        return processor

    def _finish_job(self, session: Session, job_id: str, status: str, message: str,
                    outputs: dict[str, Any] | None = None) -> list[str]:
        """End a job and its unfinished tasks; return the attempts to kill.

        The status is written by one conditional update: a job still active
        and, unless it is being dismissed, with no dismissal requested. A
        dismissal a client was told about therefore always wins over an
        ending that was being decided at the same moment.
        """
        now = utcnow()
        final: dict[str, Any] = {"status": status, "message": message, "finished": now}
        if status == JobStatus.SUCCESSFUL:
            final.update(progress=100, outputs=outputs or {})
        guard = [Job.id == job_id, Job.status.in_(JobStatus.ACTIVE)]
        if status != JobStatus.DISMISSED:
            guard.append(Job.cancel_requested.is_(False))
        done = session.execute(update(Job).where(*guard).values(**final)
                               .execution_options(synchronize_session=False))
        if not done.rowcount:
            if session.scalar(select(Job.status).where(Job.id == job_id)) in JobStatus.FINAL:
                return []
            return self._finish_job(session, job_id, JobStatus.DISMISSED, "Job dismissed")
        self.metrics.job_finished(session, job_id, status, now)
        self._processors.pop(job_id, None)
        self._inputs_texts.pop(job_id, None)
        prefix = f"{job_id}."
        for task_id in [t for t in self._retry_at if t.startswith(prefix)]:
            del self._retry_at[task_id]
        kills = list(session.scalars(
            select(TaskAttempt.backend_task_id).join(Task, TaskAttempt.task_id == Task.id)
            .where(Task.job_id == job_id, Task.status == TaskStatus.RUNNING,
                   TaskAttempt.status.in_(ACTIVE_ATTEMPT))))
        session.execute(update(Task).where(Task.job_id == job_id, Task.status.notin_(TaskStatus.FINAL))
                        .values(status=TaskStatus.CANCELLED, finished=now)
                        .execution_options(synchronize_session=False))
        enqueue(session, job_id, session.scalar(select(Job.subscriber).where(Job.id == job_id)), status)
        if status == JobStatus.SUCCESSFUL:
            enqueue_description(session, job_id)  # its STAC items: described, stored, pushed by the outbox
        LOG.info("job %s %s: %s", job_id, status, message)
        return kills

    def _dismiss_requested(self) -> list[str]:
        """Dismiss the jobs a client asked to; once that is committed, their files go (what is left of
        them as their killed tasks end, the next retention pass takes)."""
        kills: list[str] = []
        with self.store.session() as session:
            job_ids = session.connection().execute(_DISMISSING).scalars().all()
            if job_ids:
                self._fence(session)
            for job_id in job_ids:
                kills += self._finish_job(session, job_id, JobStatus.DISMISSED, "Job dismissed")
        for job_id in job_ids:
            shutil.rmtree(job_paths(self.options.jobs_dir, job_id)["root"], ignore_errors=True)
        return kills

    # -- planning and launching ---------------------------------------------

    def _plan_accepted(self) -> int:
        """Plan the accepted jobs (50 a turn, the most urgent first); how many there were."""
        with self.store.session() as session:
            if session.connection().execute(_ANY_ACCEPTED).first() is None:
                return 0  # the usual answer: a look costs no ORM query
            jobs = session.scalars(select(Job).where(Job.status == JobStatus.ACCEPTED)
                                   .order_by(Job.priority.desc(), Job.created).limit(50)).all()
            if jobs:
                self._fence(session)
            for job in jobs:
                self._plan(session, job)
        if len(jobs) == 50:
            self._store_changed = True  # more are waiting: the next turn plans them
        return len(jobs)

    def _plan(self, session: Session, job: Job) -> None:
        try:
            processor = self._processors[job.id] = self._processors.get(job.id) or processor_of(job)
            planned = plan_job(processor, job.id, job.inputs, self.options.jobs_dir,
                               self.options.max_tasks_per_job, self.options.locality_rules,
                               self.options.fetch_policy)
        except (DescriptorError, PlanError) as exc:
            self._fail_unplanned(session, job, str(exc))
            return
        except Exception as exc:  # one job's odd descriptor must not stop planning for every job
            LOG.exception("planning job %s failed", job.id)
            self._fail_unplanned(session, job, f"{type(exc).__name__}: {exc}")
            return
        now = utcnow()
        session.execute(insert(Task.__table__), [
            {"id": p.id, "job_id": job.id, "seq": p.seq, "step": p.step, "index": p.index, "spec": p.spec,
             "max_attempts": p.max_attempts, "attempts": 0, "message": "", "created": now,
             "status": TaskStatus.QUEUED if p.ready else TaskStatus.PENDING} for p in planned])
        paths = job_paths(self.options.jobs_dir, job.id)
        for step in processor.steps:
            (paths["steps"] / step.id).mkdir(parents=True, exist_ok=True)
        paths["outputs"].mkdir(parents=True, exist_ok=True)
        paths["usage"].mkdir(parents=True, exist_ok=True)
        job.status = JobStatus.RUNNING
        enqueue(session, job.id, job.subscriber, JobStatus.RUNNING)
        job.message = f"Planned {len(planned)} tasks in {len(processor.steps)} steps"

    def _task_spec(self, task: Any, job: Any, processor: Processor, backend_id: str) -> TaskSpec:
        spec = task.spec
        return TaskSpec(
            task_id=backend_id,
            command=list(spec["command"]),
            resources=Resources(**spec["resources"]),
            environment=task_environment(task.id, spec, processor, job.inputs, self.options.jobs_dir,
                                         attempt=backend_id, inputs_text=self._inputs_text_of(job, processor)),
            image=spec.get("image"),
            timeout=spec.get("timeout"),
            locality=list(spec.get("locality", [])),
            uris=[FetchUri(**uri) for uri in spec.get("uris", [])],
            labels={"job_id": task.job_id, "task_id": task.id, "step": task.step},
            writable_paths=[spec["task"][key] for key in ("step_dir", "outputs_dir", "usage_dir")
                            if key in spec.get("task", {})],
            user=job.user,
            process=job.process_id,
            priority=job.priority,
            **engine_fields(spec),  # a task list's volume, volume operation, docker parameters
        )

    def _inputs_text_of(self, job: Any, processor: Processor) -> str:
        """The job's inputs as its tasks get them, encoded once per job (a job of n tasks over a list of n
        inputs would otherwise encode the list n times)."""
        text = self._inputs_texts.get(job.id)
        if text is None:
            if len(self._inputs_texts) >= INPUTS_TEXTS_KEPT:
                del self._inputs_texts[next(iter(self._inputs_texts))]
            text = self._inputs_texts[job.id] = task_inputs_text(processor, job.inputs)
        return text

    def _launch_ready(self) -> None:
        """Hand the ready tasks to the backend, at most ``batch`` a turn: found by one query, then written and
        launched a chunk at a time (each chunk's attempts committed before it is launched), so the first
        tasks of a large job start while the rest are still being written."""
        now = time.monotonic()
        waiting = [task_id for task_id, at in self._retry_at.items() if at > now]
        if len(waiting) < len(self._retry_at):
            self._retry_at = {task_id: self._retry_at[task_id] for task_id in waiting}
        self._maybe_ready = False
        try:
            with self.store.sessions() as session:
                ready = session.connection().execute(_ready_tasks(self.options.batch, bool(waiting)),
                                                     {"waiting": waiting} if waiting else {}).all()
            for start in range(0, len(ready), LAUNCH_CHUNK):
                self._launch_chunk(ready[start:start + LAUNCH_CHUNK])
            self._maybe_ready = len(ready) == self.options.batch  # more may wait: launch on the next turn
        except BaseException:
            self._maybe_ready = True
            raise

    def _launch_chunk(self, ready: list[Any]) -> None:
        """Write the attempts of those of ``ready`` that still are (read again in the write transaction: a
        dismissal may have come since), then launch them."""
        specs: list[TaskSpec] = []
        with self._write() as session:
            connection = session.connection()
            still = set(connection.execute(_STILL_READY, {"task_ids": [t.id for t in ready]}).scalars())
            tasks = [t for t in ready if t.id in still]
            if not tasks:
                return
            jobs = {row.id: row for row in connection.execute(_LAUNCHED_JOBS,
                                                              {"job_ids": list({t.job_id for t in tasks})})}
            attempts, changes = [], []
            for task in tasks:
                number = task.attempts + 1
                backend_id = f"{task.id}.{number}"
                res = task.spec["resources"]
                attempts.append({"task_id": task.id, "number": number, "backend": self.backend.name,
                                 "backend_task_id": backend_id, "status": "launched", "cpus": res["cpus"],
                                 "mem_mb": res["mem"], "disk_mb": res["disk"], "gpus": res["gpus"],
                                 "message": "", "launched": utcnow()})
                changes.append({"row_id": task.id, "attempts": number, "status": TaskStatus.RUNNING})
                job = jobs[task.job_id]
                specs.append(self._task_spec(task, job, self._processor(session, job.id), backend_id))
            connection.execute(_INSERT_ATTEMPTS, attempts)
            connection.execute(_update_by_id(Task, ("attempts", "status")), changes)
        for spec in specs:  # after commit: a crash in between leaves 'launched' rows that recovery reruns
            self.backend.launch(spec)


class _Row:
    """A row's values as a turn reads them, and what the turn changed (written back in bulk)."""

    __slots__ = ("values", "changes")

    def __init__(self, **values: Any) -> None:
        self.values = values
        self.changes: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def set(self, **values: Any) -> None:
        self.values.update(values)
        self.changes.update(values)


def _load_rows(connection: Connection, backend_ids: set[str]) -> tuple[dict[str, _Row], dict[str, _Row]]:
    """The attempts named by events, by backend task id, and their tasks, by id: one query."""
    attempts: dict[str, _Row] = {}
    tasks: dict[str, _Row] = {}
    for row in connection.execute(_EVENT_ROWS, {"backend_ids": list(backend_ids)}):
        attempts[row.backend_task_id] = _Row(id=row.id, backend_task_id=row.backend_task_id, number=row.number,
                                             status=row.status, task_id=row.task_id, backend=row.backend,
                                             cpus=row.cpus, mem_mb=row.mem_mb, gpus=row.gpus)
        tasks.setdefault(row.task_id, _Row(id=row.task_id, status=row.task_status, attempts=row.attempts,
                                           max_attempts=row.max_attempts, job_id=row.job_id,
                                           started=row.task_started))
    return attempts, tasks


# The statements of every turn, built once and run on the session's connection: on SQLite building a
# statement and running it through the ORM session cost several times what running it does.
_EVENT_ROWS = (select(TaskAttempt.id, TaskAttempt.backend_task_id, TaskAttempt.number, TaskAttempt.status,
                      TaskAttempt.backend, TaskAttempt.cpus, TaskAttempt.mem_mb, TaskAttempt.gpus,
                      Task.id.label("task_id"), Task.status.label("task_status"), Task.attempts,
                      Task.max_attempts, Task.job_id, Task.started.label("task_started"))
               .join(Task, TaskAttempt.task_id == Task.id)
               .where(TaskAttempt.backend_task_id.in_(bindparam("backend_ids", expanding=True))))
_INSERT_EVENTS = insert(AttemptEvent.__table__)
_INSERT_ATTEMPTS = insert(TaskAttempt.__table__)
_TASK_COUNTS = (select(Task.step, Task.status, func.count()).where(Task.job_id == bindparam("job_id"))
                .group_by(Task.step, Task.status))
_JOB_PROGRESS = (update(Job.__table__).where(Job.__table__.c.id == bindparam("job_id"),
                                             Job.__table__.c.cancel_requested.is_(False))
                 .values(progress=bindparam("progress"), message=bindparam("message")))
_DISMISSING = select(Job.id).where(Job.cancel_requested.is_(True), Job.status.in_(JobStatus.ACTIVE))
_ANY_ACCEPTED = select(Job.id).where(Job.status == JobStatus.ACCEPTED).limit(1)
_ACTIVE_ATTEMPT_IDS = select(TaskAttempt.backend_task_id).where(TaskAttempt.status.in_(ACTIVE_ATTEMPT),
                                                             TaskAttempt.backend == bindparam("backend"))
_STILL_READY = (select(Task.id).join(Job, Task.job_id == Job.id)
                .where(Task.id.in_(bindparam("task_ids", expanding=True)), Task.status == TaskStatus.QUEUED,
                       Job.status == JobStatus.RUNNING, Job.cancel_requested.is_(False)))
_LAUNCHED_JOBS = (select(Job.id, Job.user, Job.process_id, Job.priority, Job.inputs)
                  .where(Job.id.in_(bindparam("job_ids", expanding=True))))


@lru_cache(maxsize=8)
def _ready_tasks(batch: int, skipping: bool) -> Any:
    """The queued tasks of running jobs, the most urgent first; ``skipping``: but not those in ``waiting``."""
    query = (select(Task.id, Task.job_id, Task.step, Task.attempts, Task.spec).join(Job, Task.job_id == Job.id)
             .where(Task.status == TaskStatus.QUEUED, Job.status == JobStatus.RUNNING,
                    Job.cancel_requested.is_(False))
             .order_by(Job.priority.desc(), Job.created, Task.seq).limit(batch))
    return query.where(Task.id.notin_(bindparam("waiting", expanding=True))) if skipping else query


# A job's start is its first task's: until then it reads as accepted on every protocol.
_START_JOB = (update(Job.__table__).where(Job.__table__.c.id == bindparam("job_id"), Job.__table__.c.started.is_(None))
              .values(started=bindparam("when")))


def _write_changes(connection: Connection, model: type, rows: Any) -> None:
    """UPDATE by primary key, one executemany per set of changed columns (Core: the ORM's bulk path costs
    more than the statements)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row.changes:
            groups.setdefault(tuple(sorted(row.changes)), []).append({"row_id": row.id, **row.changes})
    for columns, batch in groups.items():
        connection.execute(_update_by_id(model, columns), batch)


@lru_cache(maxsize=256)
def _update_by_id(model: type, columns: tuple[str, ...]) -> Any:
    table = model.__table__
    return update(table).where(table.c.id == bindparam("row_id")).values({c: bindparam(c) for c in columns})


def _attempt_status(event: TaskEvent) -> str:
    if event.succeeded:
        return "succeeded"
    if event.state is TaskState.KILLED:
        return "killed"
    if event.state is TaskState.LOST:
        return "lost"
    return "failed"


def _finished_steps(counts: dict[tuple[str, str], int]) -> set[str]:
    steps: dict[str, bool] = {}
    for step, status in counts:
        steps[step] = steps.get(step, True) and status == TaskStatus.SUCCEEDED
    return {step for step, done in steps.items() if done}


def _describe_failure(event: TaskEvent) -> str:
    if event.reason == "timeout":
        text = "timed out and was killed"
    elif event.state is TaskState.LOST:
        text = f"was lost ({event.reason or 'unknown reason'})"
    elif event.exit_code is not None:
        text = f"exited with code {event.exit_code}"
    else:
        text = f"failed ({event.reason or 'unknown reason'})"
    return f"{text}: {event.message}" if event.message else text


def _recovery_hint(attempt: TaskAttempt) -> dict[str, Any]:
    """What a backend needs to take an attempt over: where it ran, what it holds, whose it is, its timeout."""
    task = attempt.task
    return {"pid": attempt.pid, "sandbox": attempt.sandbox, "agent": attempt.agent, "cpus": attempt.cpus,
            "mem": attempt.mem_mb, "user": task.job.user, "process": task.job.process_id,
            "timeout": task.spec.get("timeout"),
            "started": attempt.started.timestamp() if attempt.started else None}


def _pid_from(event: TaskEvent) -> int | None:
    pid = getattr(event, "pid", None)
    return pid if isinstance(pid, int) else None


class OutputMissing(RuntimeError):
    """The workflow finished but did not write an output it declares."""


def collect_outputs(processor: Processor, job_id: str, jobs_dir: Path,
                    results: HdfsResults | None = None) -> dict[str, Any]:
    """Read the declared outputs of a finished job from its outputs folder; with ``results``, put the files
    on HDFS (an entry's ``location``) and remove them here. A file an earlier try put there already counts."""
    outputs_dir = job_paths(jobs_dir, job_id)["outputs"]
    result: dict[str, Any] = {}
    for spec in processor.outputs:
        path = outputs_dir / (spec.file or spec.id)
        stored = None
        if not path.is_file() and results is not None:
            stored = results.location(job_id, path.name)
            stored = stored if results.size(stored) is not None else None
        if not path.is_file() and stored is None:
            if spec.min_occurs == 0:
                continue
            raise OutputMissing(f"The workflow finished without producing output '{spec.id}' ({path.name})")
        entry: dict[str, Any] = {"file": path.name, "media_type": spec.media_type}
        if not spec.is_complex:
            text = results.read(stored).decode() if results is not None and stored else path.read_text()
            entry["value"] = _literal(spec.literal_type, text.strip())
        result[spec.id] = entry
    if results is not None:
        put_outputs(results, job_id, outputs_dir, result)
    return result


def _literal(kind: str, text: str) -> Any:
    try:
        if kind == "number":
            return float(text)
        if kind == "integer":
            return int(text)
        if kind == "boolean":
            return text.lower() in ("true", "1")
        if kind == "bbox":
            return bbox_from_text(text)
    except ValueError as exc:
        raise OutputMissing(f"output value {text!r} is not a {kind}") from exc
    return text
