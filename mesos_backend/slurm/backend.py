"""The Slurm backend: one batch job per task attempt, through Slurm's client commands.

With ``sbatch``, ``squeue``, ``scancel`` (and ``sacct`` for accounting) on
PATH and ``SLURM_CONF`` (or the default configuration) naming the cluster,
it needs no other setting and runs on the cluster's default partition.
What an operator can count on:

- Submission. ``launch`` only queues; ``submit_workers`` threads prepare each
  task's sandbox under ``sandbox_root`` (which, like ``data_dir``, must be on a
  file system the nodes share), unpack its cached URIs there (processor
  bundles, once per digest in ``cache_dir``, see ``mesos_backend.fetch``) and
  submit it with ``sbatch`` (see ``script`` for the job and its environment).
  While paused, nothing more is submitted; jobs already in Slurm's queue are
  Slurm's to start. A submission Slurm refuses (unknown partition, gres it has
  not got) fails the task with Slurm's message; one that meets an unreachable
  controller is tried again, after looking up whether it got in after all.
- Status. One thread polls every ``poll_interval`` seconds with one ``squeue``
  for all the jobs it watches (never one call per task), sends the kills asked
  for since the last turn in one ``scancel``, and for the jobs that ended asks
  ``sacct`` once for their figures. A turn in which Slurm cannot be asked
  changes nothing: no task is declared lost because the controller is away.
- Identity. The job name is the attempt id, and the comment
  ``wps-gateway:<instance> job=... task=... step=...`` names this gateway: the
  instance id is made once and kept in the job store (``BackendState``), so
  replicas of one gateway share it and other gateways on the same cluster
  have their own.
- Recovery. ``recover`` looks the previous run's attempts up by name among this
  user's jobs (one ``squeue``) and adopts the ones Slurm still knows, running
  or ended; the others are reported LOST (``backend_restarted``: rerun without
  spending a retry). Jobs of this instance that nobody asked for are cancelled.
- Events. STARTED when Slurm first shows a job running (with the node and
  Slurm's start time), a NOTICE when it is submitted (or adopted) and when its
  Slurm state changes otherwise (waiting for priority or resources is not
  news), and one terminal event, mapped in ``status``.
- Accounting. With slurmdbd (``accounting = auto`` finds out), a terminal event
  carries sacct's Elapsed, TotalCPU and the largest MaxRSS of its steps, and
  its message the allocated TRES; without, the wall time from the
  controller's start and end times.
"""

from __future__ import annotations

import collections
import logging
import os
import shlex
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import (
    Backend,
    BackendError,
    BackendState,
    EventCallback,
    MemoryState,
    TaskEvent,
    TaskSpec,
    TaskState,
    Usage,
)
from ..fetch import FetchCache, FetchError, fetch_into
from .commands import AccountingRow, JobRow, SlurmCommands, SlurmError, SlurmUnavailable
from .script import SubmitOptions, batch_script, instance_of, job_name, sbatch_args
from .status import (
    PENDING_STATES,
    REASON_KILLED,
    REASON_NOT_THE_TASKS_FAULT,
    RUNNING_STATES,
    TERMINAL_STATES,
    accounting_complete,
    describe,
    row_from_accounting,
    to_event,
    usage_from_accounting,
    usage_from_times,
)

LOG = logging.getLogger(__name__)
INSTANCE_KEY = "instance"
ACCOUNTING_MODES = ("auto", "off")
# slurmdbd records a job's figures shortly after the controller reports its end; wait this long at most.
ACCOUNTING_WAIT_SECONDS = 15.0
# Waiting for one's turn is what a submitted job does: only other reasons (limits, a node or partition
# down, a hold) and other states are recorded in the attempt's history.
ROUTINE_WAITS = frozenset({("PENDING", "None"), ("PENDING", "Priority"), ("PENDING", "Resources")})
# A watched job absent from this many answers in a row is one the controller no longer knows.
MISSING_TURNS = 2
_ZERO_USAGE = Usage(cpu_seconds=0.0, mem_peak_mb=0.0, wall_seconds=0.0)


@dataclass(frozen=True)
class PollOptions:
    """How the backend watches and feeds the cluster."""

    poll_interval: float = 1.0
    accounting: str = "auto"  # auto: sacct when slurmdbd answers; off: wall time only
    submit_workers: int = 4

    def __post_init__(self) -> None:
        if self.poll_interval <= 0 or self.submit_workers < 1:
            raise ValueError("poll_interval must be positive and submit_workers at least 1")
        if self.accounting not in ACCOUNTING_MODES:
            raise ValueError(f"accounting must be one of {', '.join(ACCOUNTING_MODES)}, not {self.accounting!r}")


class _NeverSubmitted(Exception):
    """A task killed while its submission waited for Slurm to answer, found not to have got in."""


@dataclass(eq=False)
class _Job:
    """One attempt, from ``launch`` (or ``recover``) to its terminal event."""

    task_id: str
    sandbox: Path
    spec: TaskSpec | None = None  # dropped once submitted
    phase: str = "queued"  # queued | submitting | submitted | ending; recovering for the previous run's
    job_id: str | None = None
    kill_cause: str | None = None
    look_first: bool = False  # a submission may have got in unheard: look it up before submitting again
    seen: str = ""  # the Slurm state last recorded, so that repeats add no history
    news: TaskEvent | None = None  # "submitted as", "adopted": told with the next turn's events, not alone
    started: bool = False
    missing: int = 0
    ended: JobRow | None = None
    ended_at: float = 0.0  # monotonic


class SlurmBackend(Backend):
    """Runs tasks as Slurm batch jobs; see the module docstring."""

    name = "slurm"
    tasks_survive_stop = True  # Slurm jobs run on while the gateway is away; a restart adopts them

    def __init__(self, sandbox_root: str | Path, *, state: BackendState | None = None,
                 submit: SubmitOptions | None = None, poll: PollOptions | None = None,
                 commands: SlurmCommands | None = None, cache_dir: str | Path | None = None) -> None:
        self.commands = commands or SlurmCommands()
        self.commands.check_installed()
        try:  # a configuration the client cannot read is a setting to fix, not a reason to fail every task
            self.commands.squeue(["1"])
        except SlurmUnavailable as exc:
            LOG.warning("slurm backend: Slurm does not answer yet (%s); tasks wait for it", exc)
        except SlurmError as exc:
            raise BackendError(f"slurm backend: Slurm cannot be used: {exc}") from None
        self.submit_options = submit or SubmitOptions()
        self.poll_options = poll or PollOptions()
        self.state = state or MemoryState()
        self.sandbox_root = Path(sandbox_root).absolute()
        self.fetch_cache = FetchCache(Path(cache_dir).absolute() if cache_dir else
                                      self.sandbox_root.parent / "fetch-cache")
        self.instance = ""
        self._accounting = self.poll_options.accounting != "off"
        self._jobs: dict[str, _Job] = {}
        self._queue: collections.deque[_Job] = collections.deque()
        self._cancels: set[str] = set()  # Slurm job ids to scancel next turn
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # submitters wait on it
        self._wake = threading.Event()  # the poller waits on it
        self._stopping = threading.Event()
        self._recovery_due = False
        self._phase = "new"  # new -> started -> stopped
        self._paused = False
        self._reachable = False  # the last squeue answered
        self._on_event: EventCallback | None = None
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"<SlurmBackend instance={self.instance or '?'} jobs={len(self._jobs)}>"

    # -- Backend interface ------------------------------------------------------

    def start(self, on_event: EventCallback) -> None:
        with self._lock:
            if self._phase != "new":
                raise BackendError(f"slurm backend already {self._phase}")
            self._phase = "started"
        self._on_event = on_event
        self.sandbox_root.mkdir(parents=True, exist_ok=True)
        self.instance = self.state.get(INSTANCE_KEY) or ""
        if not self.instance:
            self.instance = uuid.uuid4().hex[:12]
            self.state.put(INSTANCE_KEY, self.instance)
        if self._accounting:
            try:
                self._accounting = self.commands.accounting_enabled()
            except SlurmError as exc:  # slurmdbd configured but away now: ask again when jobs end
                LOG.warning("slurm backend: sacct does not answer (%s); accounting is read when it does", exc)
        self._threads = [threading.Thread(target=self._poll_loop, name="slurm-poller", daemon=True)]
        self._threads += [threading.Thread(target=self._submit_loop, name=f"slurm-submit-{i}", daemon=True)
                          for i in range(self.poll_options.submit_workers)]
        for thread in self._threads:
            thread.start()
        LOG.info("slurm backend started: instance %s, accounting %s, sandboxes in %s", self.instance,
                 "from sacct" if self._accounting else "off (wall time only)", self.sandbox_root)

    def stop(self) -> None:
        """Stop submitting and polling; jobs in Slurm keep running and a restart recovers them."""
        with self._lock:
            if self._phase == "stopped":
                return
            self._phase = "stopped"
            self._work.notify_all()
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=self.commands.timeout + 5)

    def launch(self, spec: TaskSpec) -> None:
        with self._lock:
            if self._phase != "started":
                raise BackendError(f"cannot launch {spec.task_id!r}: slurm backend is {self._phase}")
            if spec.task_id in self._jobs:
                raise BackendError(f"task {spec.task_id!r} is already queued or running")
            job = _Job(spec.task_id, self.sandbox_root / spec.task_id, spec=spec)
            self._jobs[spec.task_id] = job
            self._queue.append(job)
            self._work.notify()

    def kill(self, task_id: str) -> None:
        with self._lock:
            job = self._jobs.get(task_id)
            if job is None or job.kill_cause is not None:
                return
            if job.phase == "queued" and not job.look_first:  # else its last sbatch may have got in: the
                self._queue.remove(job)                      # submitter looks it up and cancels or drops it
                del self._jobs[task_id]
                self._emit(TaskEvent(task_id, TaskState.KILLED, reason=REASON_KILLED,
                                     message="killed before it was submitted", usage=_ZERO_USAGE))
                return
            job.kill_cause = REASON_KILLED
            if job.job_id is not None:
                self._cancels.add(job.job_id)
        self._wake.set()

    def recover(self, task_ids: list[str], hints: dict[str, dict] | None = None) -> None:
        """Hand the previous run's attempts to the poller, which looks them up in Slurm (see module docstring)."""
        hints = hints or {}
        with self._lock:
            if self._phase != "started":
                raise BackendError(f"cannot recover: slurm backend is {self._phase}")
            for task_id in dict.fromkeys(task_ids):
                if task_id in self._jobs:
                    continue
                hint = hints.get(task_id) or {}
                sandbox = Path(hint["sandbox"]) if hint.get("sandbox") else self.sandbox_root / task_id
                # A recorded node means its STARTED was applied already: do not send it again.
                self._jobs[task_id] = _Job(task_id, sandbox, phase="recovering", started=bool(hint.get("agent")))
            self._recovery_due = True
        self._wake.set()

    def active_tasks(self) -> set[str] | None:
        with self._lock:
            if not self._reachable or any(job.phase == "recovering" for job in self._jobs.values()):
                return None
            return set(self._jobs)

    def queued(self) -> int:
        """Tasks not submitted yet, and jobs Slurm has not started yet."""
        with self._lock:
            return len(self._queue) + sum(1 for job in self._jobs.values()
                                          if job.phase in ("submitting", "submitted") and not job.started)

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
            self._work.notify_all()

    def status(self) -> dict[str, Any]:
        """For the operators' console and metrics: this gateway's jobs by phase, whether the last ``squeue``
        answered, and where jobs are submitted. Only what the backend knows already: no Slurm command."""
        with self._lock:
            waiting = len(self._queue)
            submitted = sum(1 for job in self._jobs.values()
                            if job.phase in ("submitting", "submitted") and not job.started)
            running = sum(1 for job in self._jobs.values() if job.started and job.ended is None)
            paused, reachable = self._paused, self._reachable
        options = self.submit_options
        return {"backend": self.name, "queued": waiting + submitted, "not_submitted": waiting,
                "pending_in_slurm": submitted, "running": running, "paused": paused, "slurm_reachable": reachable,
                "accounting": "sacct" if self._accounting else "wall time only",
                "partition": options.partition or "(the cluster's default)", "account": options.account,
                "qos": options.qos, "sandboxes": str(self.sandbox_root)}

    # -- submission -------------------------------------------------------------

    def _submit_loop(self) -> None:
        while True:
            with self._lock:
                while self._phase == "started" and (self._paused or not self._queue):
                    self._work.wait()
                if self._phase != "started":
                    return
                job = self._queue.popleft()
                job.phase = "submitting"
            try:
                job_id = self._submit(job)
            except SlurmUnavailable as exc:
                LOG.warning("slurm backend: cannot submit %s now (%s); trying again", job.task_id, exc)
                with self._lock:
                    if self._jobs.get(job.task_id) is job:
                        job.phase, job.look_first = "queued", True
                        self._queue.appendleft(job)
                        self._emit(TaskEvent(job.task_id, TaskState.NOTICE, reason="submit_delayed",
                                             message=f"Slurm did not answer ({exc}); submitting again"))
                self._stopping.wait(self.poll_options.poll_interval)
                continue
            except _NeverSubmitted:
                with self._lock:
                    self._forget(job)
                    self._emit(TaskEvent(job.task_id, TaskState.KILLED, reason=REASON_KILLED,
                                         message="killed before it was submitted", usage=_ZERO_USAGE))
                continue
            except (BackendError, OSError) as exc:  # refused by Slurm, a bad spec, a fetch that failed
                reason = "fetch_failed" if isinstance(exc, FetchError) else "submit_failed"
                with self._lock:
                    self._forget(job)
                    self._emit(TaskEvent(job.task_id, TaskState.FAILED, reason=reason, message=str(exc),
                                         usage=_ZERO_USAGE, sandbox=str(job.sandbox)))
                continue
            with self._lock:
                job.job_id, job.phase, job.spec = job_id, "submitted", None
                # Told with the poller's next batch: every event wakes the dispatcher for a turn.
                job.news = TaskEvent(job.task_id, TaskState.NOTICE, reason="submitted",
                                     message=f"submitted as Slurm job {job_id}")
                if job.kill_cause is not None:
                    self._cancels.add(job_id)
                    self._wake.set()

    def _submit(self, job: _Job) -> str:
        """Sandbox, fetched files, sbatch; returns the Slurm job id."""
        spec = job.spec
        assert spec is not None
        if job.look_first:  # the last sbatch may have got in although its answer did not come back
            found = self._ours(self.commands.squeue(names=[job_name(spec)], mine=True))
            if found:
                return max(found, key=lambda row: int(row.job_id)).job_id
            if job.kill_cause is not None:  # killed while Slurm was away, and it did not get in
                raise _NeverSubmitted
        script = batch_script(spec, self.submit_options)
        job.sandbox.mkdir(parents=True, exist_ok=True)
        if spec.uris:
            fetch_into(spec.uris, job.sandbox, self.fetch_cache)
        return self.commands.sbatch(sbatch_args(spec, job.sandbox, self.instance, self.submit_options), script,
                                    cwd=str(job.sandbox))

    # -- polling ----------------------------------------------------------------

    def _poll_loop(self) -> None:
        while self._phase == "started":
            self._wake.wait(self.poll_options.poll_interval)
            self._wake.clear()
            if self._phase != "started":
                return
            try:
                self._turn()
            except SlurmUnavailable as exc:
                with self._lock:
                    self._reachable = False
                LOG.warning("slurm backend: Slurm does not answer (%s); asking again", exc)
            except Exception:  # keep polling; a failed turn is tried again next time
                LOG.exception("slurm backend: polling turn failed")

    def _turn(self) -> None:
        """One turn: kills, recovery, one squeue for every watched job, then the ended ones."""
        with self._lock:
            cancels, self._cancels = self._cancels, set()
        try:
            self.commands.scancel(cancels)
        except SlurmUnavailable:
            with self._lock:
                self._cancels |= cancels
            raise
        except SlurmError as exc:  # refused for good: asking again every turn would stop all polling
            LOG.warning("slurm backend: scancel %s refused: %s", " ".join(sorted(cancels)), exc)
        if self._recovery_due:
            self._recover_now()
        with self._lock:
            watched = {job.job_id: job for job in self._jobs.values() if job.phase == "submitted" and job.job_id}
        rows = {row.job_id: row for row in self.commands.squeue(watched)} if watched else {}
        now = time.monotonic()
        with self._lock:
            self._reachable = True
            for job_id, job in watched.items():
                if self._jobs.get(job.task_id) is not job:
                    continue
                row = rows.get(job_id)
                job.missing = 0 if row is not None else job.missing + 1
                if row is not None:
                    self._observe(job, row, now)
            ending = [job for job in self._jobs.values() if job.phase == "ending"
                      or (job.phase == "submitted" and job.missing >= MISSING_TURNS)]
        if ending:
            self._finish(ending, now)

    def _observe(self, job: _Job, row: JobRow, now: float) -> None:
        """Record what squeue says of a watched job (called with the lock held)."""
        if job.news is not None:
            self._emit(job.news)
            job.news = None
        if row.state in TERMINAL_STATES:
            if not job.started and row.start:
                self._started(job, row)
            job.phase, job.ended, job.ended_at = "ending", row, now
            return
        seen = describe(row)
        if seen != job.seen and row.state not in RUNNING_STATES and (row.state, row.reason) not in ROUTINE_WAITS:
            self._emit(TaskEvent(job.task_id, TaskState.NOTICE, reason=row.state.lower(),
                                 message=f"Slurm job {row.job_id} {seen}", agent=row.node))
        job.seen = seen
        if row.state in RUNNING_STATES and not job.started:
            self._started(job, row)

    def _started(self, job: _Job, row: JobRow) -> None:
        job.started = True
        self._emit(TaskEvent(job.task_id, TaskState.STARTED, message=f"Slurm job {row.job_id} {describe(row)}",
                             agent=row.node, sandbox=str(job.sandbox), timestamp=row.start or time.time()))

    def _finish(self, ending: list[_Job], now: float) -> None:
        """Terminal events for the jobs that ended (or vanished), with sacct's figures when there are any."""
        accounting = self._accounting_lines(ending)
        with self._lock:
            for job in ending:
                if self._jobs.get(job.task_id) is not job or job.job_id is None:
                    continue
                lines = [line for line in accounting or [] if line.job_id == job.job_id]
                row = job.ended
                if row is None:  # the controller no longer knows it: did it end, says accounting?
                    row = row_from_accounting(lines, job.job_id, job.task_id)
                    if row is None or row.state not in TERMINAL_STATES:
                        self._lost(job, f"Slurm no longer knows job {job.job_id}")
                        continue
                complete = accounting is not None and accounting_complete(lines, job.job_id)
                if accounting is not None and not complete and now - job.ended_at < ACCOUNTING_WAIT_SECONDS:
                    continue  # slurmdbd has not got the figures yet: next turn
                usage = usage_from_accounting(lines, job.job_id) if complete else usage_from_times(row)
                stderr = last_line(job.sandbox / "stderr") if row.state != "COMPLETED" else ""
                self._forget(job)
                self._emit(to_event(job.task_id, row, job.kill_cause, usage, sandbox=str(job.sandbox),
                                    accounting=lines, last_stderr=stderr))

    def _accounting_lines(self, ending: list[_Job]) -> list[AccountingRow] | None:
        """One sacct for all these jobs; None when accounting is off or does not answer now."""
        if not self._accounting:
            return None
        try:
            return self.commands.sacct(job.job_id for job in ending if job.job_id)
        except SlurmUnavailable as exc:
            LOG.warning("slurm backend: sacct does not answer (%s)", exc)
            return None
        except SlurmError as exc:
            LOG.warning("slurm backend: accounting is off from now on: %s", exc)
            self._accounting = False
            return None

    def _recover_now(self) -> None:
        """Adopt the previous run's jobs that Slurm still knows; report the others lost; cancel strays."""
        rows = self._ours(self.commands.squeue(mine=True))
        by_name: dict[str, JobRow] = {}
        for row in sorted(rows, key=lambda r: int(r.job_id)):
            by_name[row.name] = row  # the newest job of a name wins
        strays: list[str] = []
        with self._lock:
            self._recovery_due = False
            for job in [j for j in self._jobs.values() if j.phase == "recovering"]:
                row = by_name.get(job.task_id)
                if row is None:
                    self._lost(job, "Slurm does not know this attempt (any more)")
                    continue
                job.job_id, job.phase = row.job_id, "submitted"
                job.news = TaskEvent(job.task_id, TaskState.NOTICE, reason="adopted",
                                     message=f"Slurm job {row.job_id} taken over after a restart")
                if job.kill_cause is not None:
                    self._cancels.add(row.job_id)
                LOG.info("slurm backend: adopted Slurm job %s (%s) of %s", row.job_id, row.state, job.task_id)
            strays = [row.job_id for row in rows if (row.state in PENDING_STATES or row.state in RUNNING_STATES)
                      and not self._wanted(row)]
        if strays:
            LOG.warning("slurm backend: cancelling Slurm jobs %s of this gateway that no attempt is waiting for",
                        ", ".join(strays))
            self.commands.scancel(strays)

    def _wanted(self, row: JobRow) -> bool:
        """Some attempt of ours waits for this job: its own, or one being submitted under its name right now."""
        job = self._jobs.get(row.name)
        return job is not None and job.job_id in (None, row.job_id)

    def _ours(self, rows: list[JobRow]) -> list[JobRow]:
        return [row for row in rows if instance_of(row.comment) == self.instance]

    # -- helpers ----------------------------------------------------------------

    def _lost(self, job: _Job, message: str) -> None:
        self._forget(job)
        self._emit(TaskEvent(job.task_id, TaskState.LOST, reason=REASON_NOT_THE_TASKS_FAULT, message=message,
                             sandbox=str(job.sandbox)))

    def _forget(self, job: _Job) -> None:
        if self._jobs.get(job.task_id) is job:
            del self._jobs[job.task_id]

    def _emit(self, event: TaskEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                LOG.exception("event callback failed for %s %s", event.task_id, event.state.value)


def last_line(path: Path, window: int = 4096) -> str:
    """The last non-empty line of a task's stderr, for failure messages ("" if none)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - window))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:1000] if lines else ""


def default_task_path() -> str:
    """The gateway's virtualenv first (the processors' interpreter, on a shared file system), then the system's."""
    system = "/usr/local/bin:/usr/bin:/bin"
    if sys.prefix != sys.base_prefix:
        return os.path.dirname(sys.executable) + os.pathsep + system
    return system


def backend_options(raw: dict[str, str]) -> dict[str, Any]:
    """``create_backend("slurm", sandbox_root=..., **backend_options(settings.slurm))``: the [slurm] section, typed."""

    def text(key: str) -> str | None:
        return (raw.get(key) or "").strip() or None

    def number(key: str, default: float) -> float:
        value = text(key)
        try:
            return float(value) if value else default
        except ValueError:
            raise ValueError(f"[slurm] {key} must be a number, not {value!r}") from None

    def words(key: str) -> tuple[str, ...]:
        try:
            return tuple(shlex.split(raw.get(key) or ""))
        except ValueError as exc:
            raise ValueError(f"[slurm] {key}: {exc}") from None

    timeout = number("command_timeout", 30.0)
    if timeout <= 0:
        raise ValueError("[slurm] command_timeout must be positive")
    submit = SubmitOptions(partition=text("partition"), account=text("account"), qos=text("qos"),
                           extra_args=words("sbatch_args"), container_prefix=words("container_prefix"),
                           image=text("task_image"), path=text("task_path") or default_task_path())
    workers = number("submit_workers", 4)
    if workers != int(workers):
        raise ValueError("[slurm] submit_workers must be a whole number")
    try:
        poll = PollOptions(poll_interval=number("poll_interval", 1.0),
                           accounting=(text("accounting") or "auto").lower(), submit_workers=int(workers))
    except ValueError as exc:
        raise ValueError(f"[slurm] {exc}") from None
    return {"submit": submit, "poll": poll,
            "commands": SlurmCommands(bin_dir=text("bin_dir"), conf=text("conf"), timeout=timeout)}
