"""Local backend: task commands run as subprocesses of the gateway's machine.

It is the default engine (no cluster needed) and the reference for what the
others must report. Main choices, so that callers can rely on them:

* Capacity. ``cpus``, ``mem`` (MiB) and ``gpus`` are accounted, not enforced:
  a task may use more than it asked for, but the backend never starts a task
  whose ``Resources`` do not fit in what is free. ``disk`` is not accounted.
  The queue is strictly FIFO: a task that does not fit yet holds back the
  ones behind it, so big tasks are not starved by a stream of small ones. A
  task bigger than the whole capacity gets a FAILED event at once (reason
  ``insufficient_resources``) instead of waiting forever.
* Sandbox. Each task runs in ``sandbox_root/<task_id>/`` (its cwd unless
  ``spec.workdir`` says otherwise; a relative workdir is created inside the
  sandbox). ``stdout`` and ``stderr`` files there are kept after the task
  ends. URIs are copied in before the start, see ``mesos_backend.fetch``.
  ``spec.image``, ``locality`` and ``labels`` are ignored: there are no
  containers and only one machine.
* Environment. Explicit, never the gateway's own (which holds its secrets):
  ``PATH`` (a standard one), ``HOME`` and ``TMPDIR`` (the sandbox), ``LANG``
  (``C.UTF-8``), then the operator's ``environment``, then
  ``spec.environment``, then ``LOCAL_BACKEND_TASK_ID`` and
  ``LOCAL_BACKEND_SANDBOX`` (+ ``CUDA_VISIBLE_DEVICES`` for GPU tasks). The
  task-id variable is how ``recover`` recognises a task's processes. When the
  gateway runs in a virtualenv, that environment's ``bin`` directory is put
  first on the tasks' PATH (as if it were activated), so a processor command
  such as ``python -m processes.x.task`` runs with the interpreter the
  processors are installed in; ``use_gateway_python=False`` turns this off
  and a PATH in ``spec.environment`` always wins.
* User. With ``run_as`` (``user`` or ``user:group``) tasks run as that Unix
  user (the gateway must be root), without the gateway's supplementary
  groups; the sandbox and the task's ``writable_paths`` are given to it.
* Process groups. Every task leads its own session (``start_new_session``).
  Timeouts, kills and ``stop`` signal the whole group (SIGTERM, then SIGKILL
  after ``kill_grace`` seconds), and when a task's main process exits,
  whatever it left running in its group is killed too.
* Events. All callbacks come from one backend thread, one at a time, in the
  order the backend produced them: for each task STARTED (if it started)
  always precedes its single terminal event. A terminal event for a process
  that ran carries measured ``Usage`` (cpu from ``wait4`` rusage, peak RSS,
  wall time); one for a task that never ran carries zero usage.
* A non-zero exit is FINISHED with that ``exit_code`` (negative: killed by
  that signal) and the last non-empty line of stderr as message.
* Exit status on disk. Tasks are started by the backend's task keeper
  (``mesos_backend.task_keeper``), a small process of its own session that is
  their parent and outlives the gateway. When a task ends the keeper writes
  its exit status (and CPU time) to ``exit_status`` in the sandbox, then tells
  the backend. A task that ends while no gateway watches (the gateway was
  killed) thereby leaves its result where the next run reads it: ``recover``
  reports it FINISHED with that exit code, so work that finished is never
  redone. A task still running when the gateway comes back is adopted
  (watched to its end), not killed. Nothing runs between the keeper and the
  task: one fork and exec per task, as ``xargs`` would.

Events are ``LocalTaskEvent`` (a ``TaskEvent`` with the task's ``pid`` once it
started). ``recover`` needs no hints: it finds the previous run's processes by
their task-id variable. Hints may still give ``pid`` (never signalled unless
its environment proves it is that task), ``sandbox``, ``cpus``/``mem`` (what
an adopted task holds), ``timeout`` (counted from the adoption) and
``started`` (epoch seconds, for the wall time).
"""

from __future__ import annotations

import atexit
import collections
import heapq
import itertools
import logging
import math
import os
import re
import select
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue

from .base import (
    Backend,
    BackendError,
    EventCallback,
    Resources,
    TaskEvent,
    TaskSpec,
    TaskState,
    Usage,
)
from .fetch import FetchCache, FetchError, fetch_into, source_path
from .task_keeper import MARKER as KEEPER_MARKER
from .task_keeper import Keeper, KeeperGone

log = logging.getLogger(__name__)

TASK_ID_ENV = "LOCAL_BACKEND_TASK_ID"
SANDBOX_ENV = "LOCAL_BACKEND_SANDBOX"

# Reasons carried by events of this backend.
REASON_TIMEOUT = "timeout"
REASON_LAUNCH_FAILED = "launch_failed"
REASON_FETCH_FAILED = "fetch_failed"
REASON_OVERSIZE = "insufficient_resources"
REASON_KILLED = "killed"
REASON_STOPPED = "backend_stopped"
REASON_RESTARTED = "backend_restarted"
REASON_KEEPER_LOST = "keeper_lost"
# What an end the backend itself caused reads as, when a later run finds it recorded in the sandbox.
_ENDED_BY_US = {REASON_TIMEOUT: (TaskState.FAILED, REASON_TIMEOUT), REASON_KILLED: (TaskState.KILLED, REASON_KILLED),
                REASON_STOPPED: (TaskState.LOST, REASON_STOPPED)}

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXIT_STATUS_FILE = "exit_status"
END_CAUSE_FILE = "end_cause"  # written by the backend before it signals a task: timeout | killed | backend_stopped
# How long an adopted task's keeper may take to record its end once the task has exited.
KEEPER_RECORD_WAIT = 30.0
_ZERO_USAGE = Usage(cpu_seconds=0.0, mem_peak_mb=0.0, wall_seconds=0.0)
# ru_maxrss is in KiB on Linux and in bytes on macOS.
_MAXRSS_TO_MB = 1.0 / (1024 * 1024) if sys.platform == "darwin" else 1.0 / 1024


def machine_memory_mb() -> float:
    """Total physical memory in MiB (the default local capacity)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1024.0 * 1024.0)
    except (ValueError, OSError, AttributeError):
        return 1024.0


@dataclass(frozen=True)
class LocalTaskEvent(TaskEvent):
    """A TaskEvent that also names the task's process (STARTED and after)."""

    pid: int | None = None


@dataclass(eq=False)
class _Task:
    spec: TaskSpec
    sandbox: Path
    need: Resources
    phase: str = "queued"  # queued -> starting -> running -> exited
    pid: int | None = None
    gpu_ids: list[str] = field(default_factory=list)
    # Why we are ending it, first cause wins: killed | timeout | backend_stopped.
    end_cause: str | None = None
    adopted: bool = False  # a previous run's task: not our keeper's child


class LocalBackend(Backend):
    """Runs tasks as local subprocesses, as many at once as the capacity allows.

    ``cpus`` defaults to ``os.cpu_count()`` and ``mem`` (MiB) to the machine's
    memory; ``gpus`` are numbered slots handed out via CUDA_VISIBLE_DEVICES.
    ``kill_grace`` is the time between SIGTERM and SIGKILL on timeout, kill,
    stop and recover.
    """

    name = "local"

    def __init__(
        self,
        sandbox_root: str | Path,
        cpus: float | None = None,
        mem: float | None = None,
        gpus: int = 0,
        kill_grace: float = 3.0,
        use_gateway_python: bool = True,
        cache_dir: str | Path | None = None,
        environment: dict[str, str] | None = None,
        run_as: str | None = None,
    ) -> None:
        cpus = float(os.cpu_count() or 1) if cpus is None else float(cpus)
        mem = machine_memory_mb() if mem is None else float(mem)
        if cpus <= 0 or mem <= 0 or gpus < 0 or kill_grace < 0:
            raise BackendError(f"invalid local capacity cpus={cpus} mem={mem} gpus={gpus} grace={kill_grace}")
        self.sandbox_root = Path(sandbox_root).absolute()
        # Fetched URIs with cache=True (processor bundles), one entry per URI digest.
        self.fetch_cache = FetchCache(Path(cache_dir).absolute() if cache_dir else
                                      self.sandbox_root.parent / "fetch-cache")
        self.capacity = Resources(cpus=cpus, mem=mem, disk=math.inf, gpus=int(gpus))
        self.kill_grace = float(kill_grace)
        self._agent = socket.gethostname()
        in_venv = sys.prefix != sys.base_prefix
        self._python_bin = os.path.dirname(sys.executable) if use_gateway_python and in_venv else None
        self.environment = dict(environment or {})
        self.run_as = _unix_identity(run_as) if run_as else None

        # Map our GPU slots onto the devices the gateway itself may use.
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        self._gpu_names = visible[: self.capacity.gpus] if len(visible) >= self.capacity.gpus else [
            str(i) for i in range(self.capacity.gpus)
        ]

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a task left: stop() waits on it
        self._timer_cond = threading.Condition(self._lock)
        self._state = "new"  # new -> started -> stopping -> stopped
        self._queue: collections.deque[_Task] = collections.deque()
        self._paused = False
        self._tasks: dict[str, _Task] = {}  # queued, starting and running
        self._free = self.capacity
        self._free_gpus = list(self._gpu_names)
        self._timers: list[tuple[float, int, _Task, str]] = []
        self._timer_seq = itertools.count()
        self._events: SimpleQueue[TaskEvent | None] = SimpleQueue()
        self._on_event: EventCallback | None = None
        self._event_thread: threading.Thread | None = None
        self._timer_thread: threading.Thread | None = None
        self._keeper_process: Keeper | None = None

    # ------------------------------------------------------------------ API

    def start(self, on_event: EventCallback) -> None:
        """Start the event and timer threads; tasks can be launched afterwards."""
        with self._lock:
            if self._state != "new":
                raise BackendError(f"local backend already {self._state}")
            self.sandbox_root.mkdir(parents=True, exist_ok=True)
            try:
                self._keeper_process = Keeper()
            except OSError as exc:
                raise BackendError(f"cannot start the local task keeper: {exc}") from exc
            self._on_event = on_event
            self._event_thread = threading.Thread(target=self._deliver_events, name="local-backend-events",
                                                  daemon=True)
            self._timer_thread = threading.Thread(target=self._run_timers, name="local-backend-timers",
                                                  daemon=True)
            self._state = "started"
        atexit.register(self.stop)  # interpreter exit without stop(): still no orphans
        self._event_thread.start()
        self._timer_thread.start()
        log.info("local backend started: capacity cpus=%g mem=%.0f MiB gpus=%d, sandboxes in %s",
                 self.capacity.cpus, self.capacity.mem, self.capacity.gpus, self.sandbox_root)

    def launch(self, spec: TaskSpec) -> None:
        """Queue a task (FIFO); BackendError for a spec this backend cannot run at all."""
        self._validate(spec)
        need = Resources(cpus=spec.resources.cpus, mem=spec.resources.mem, disk=0.0, gpus=spec.resources.gpus)
        task = _Task(spec=spec, sandbox=self.sandbox_root / spec.task_id, need=need)
        with self._lock:
            if self._state != "started":
                raise BackendError(f"cannot launch {spec.task_id!r}: local backend is {self._state}")
            if spec.task_id in self._tasks:
                raise BackendError(f"task {spec.task_id!r} is already queued or running")
            if not need.fits_in(self.capacity):
                self._emit(TaskEvent(spec.task_id, TaskState.FAILED, reason=REASON_OVERSIZE,
                                     message=self._oversize_message(need), usage=_ZERO_USAGE, agent=self._agent))
                return
            self._tasks[spec.task_id] = task
            self._queue.append(task)
            self._schedule_locked()

    def active_tasks(self) -> set[str] | None:
        with self._lock:
            return set(self._tasks)

    def set_paused(self, paused: bool) -> None:
        """Hold queued tasks back (running ones carry on); resuming starts what fits."""
        with self._lock:
            self._paused = paused
            if not paused:
                self._schedule_locked()

    def kill(self, task_id: str) -> None:
        """Kill a queued or running task; KILLED follows (unknown or ending tasks: no-op)."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                log.debug("kill %s: not queued or running", task_id)
                return
            if task.phase == "queued":
                self._queue.remove(task)
                del self._tasks[task_id]
                self._emit(TaskEvent(task_id, TaskState.KILLED, reason=REASON_KILLED,
                                     message="killed before it started", usage=_ZERO_USAGE, agent=self._agent))
                self._changed.notify_all()
                self._schedule_locked()  # the head may have been the one holding others back
            elif task.end_cause is None:
                task.end_cause = REASON_KILLED
                if task.phase == "running":
                    self._terminate_locked(task)
                # "starting": the launching thread sees end_cause and does not start it;
                # "exited": the process ended on its own, its terminal event follows.

    def recover(self, task_ids: list[str], hints: dict[str, dict] | None = None) -> None:
        """Take over what a previous run left: adopt tasks still running, trust exit statuses on disk.

        The previous run's processes are not our children, so they are found
        by the ``LOCAL_BACKEND_TASK_ID`` variable in ``/proc/<pid>/environ``; a
        pid whose environment does not carry that task id is never signalled.
        For each task: if its main process (the leader of its session) still
        runs, it is adopted: it holds its resources and is watched until it
        ends, then its keeper's record is read. If not, stray processes of it
        are killed, and the ``exit_status`` its keeper wrote decides: FINISHED
        with that code, or LOST when there is none (it never ran to its end,
        or its keeper was killed too). Task ids this backend is running right
        now are left alone (no event). This call blocks for at most
        ``kill_grace`` seconds while strays exit.
        """
        hints = hints or {}
        with self._lock:
            if self._state != "started":
                raise BackendError(f"cannot recover: local backend is {self._state}")
            wanted = [t for t in dict.fromkeys(task_ids) if t not in self._tasks]
        if not wanted:
            return
        found = _find_task_processes(set(wanted))
        for task_id in wanted:
            pid = (hints.get(task_id) or {}).get("pid")
            if isinstance(pid, int) and pid not in found.get(task_id, set()) and _pid_alive(pid):
                log.warning("recover %s: pid %d is alive but is not that task; left alone", task_id, pid)
        adopted = {task_id: leader for task_id, pids in found.items()
                   if (leader := _session_leader(pids)) is not None}
        victims = {pid: tid for tid, pids in found.items() if tid not in adopted for pid in pids}
        if victims:
            log.info("recover: killing %d stray process(es) of %d task(s)", len(victims),
                     len({*victims.values()}))
            _kill_orphans(victims, self.kill_grace)
        for task_id in wanted:
            hint = hints.get(task_id) or {}
            sandbox = Path(hint.get("sandbox") or self.sandbox_root / task_id)
            if task_id in adopted and self._adopt(task_id, adopted[task_id], sandbox, hint):
                continue
            self._emit(self._recorded_end(task_id, sandbox, hint, sorted(found.get(task_id, ()))))

    def _adopt(self, task_id: str, pid: int, sandbox: Path, hint: dict) -> bool:
        """Watch a previous run's task to its end; False if it ended meanwhile."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return False
        if _proc_task_id(pid) != task_id:  # ended, and the pid reused, before we held it
            os.close(pidfd)
            return False
        need = Resources(cpus=float(hint.get("cpus") or 0.0), mem=float(hint.get("mem") or 0.0), disk=0.0)
        timeout = hint.get("timeout")
        spec = TaskSpec(task_id, ["(adopted)"], resources=need, timeout=timeout if timeout else None)
        task = _Task(spec=spec, sandbox=sandbox, need=need, phase="running", pid=pid, adopted=True)
        keeper = _keeper_of(pid)
        with self._lock:
            self._tasks[task_id] = task
            self._free = self._free - need
            if spec.timeout is not None:
                self._add_timer_locked(time.monotonic() + spec.timeout, task, "timeout")
        log.info("recover %s: still running (pid %d); adopted", task_id, pid)
        threading.Thread(target=self._watch_adopted, args=(task, pidfd, keeper, hint.get("started")),
                         name="local-backend-adopted", daemon=True).start()
        return True

    def _watch_adopted(self, task: _Task, pidfd: int, keeper: int | None, started: float | None) -> None:
        """Wait for an adopted task's end, then for the record its keeper (if it has one) writes."""
        try:
            _wait_readable(pidfd)
        finally:
            os.close(pidfd)
        with self._lock:
            task.phase = "exited"
            assert task.pid is not None
            if keeper is None:  # a shell wrapper of an earlier version: it ended after writing its record
                _signal_group(task.pid, signal.SIGKILL)  # whatever the task left behind in its group
        recorded = read_exit_status(task.sandbox, started)
        if keeper is not None:
            try:
                deadline = time.monotonic() + KEEPER_RECORD_WAIT
                while recorded is None and time.monotonic() < deadline:
                    keeper_ended = _wait_readable(keeper, 0.02)
                    recorded = read_exit_status(task.sandbox, started)
                    if keeper_ended:
                        break
            finally:
                os.close(keeper)
        if recorded is None:
            event = self._event(task, TaskState.LOST, reason=REASON_RESTARTED,
                                message="the adopted task ended without recording its exit status")
        else:
            event = self._end_event(task, *recorded, str(task.sandbox / "stderr"))
        with self._lock:
            self._finish_locked(task, event)

    def _recorded_end(self, task_id: str, sandbox: Path, hint: dict, strays: list[int]) -> TaskEvent:
        """The terminal event of a previous run's task that no longer runs: what its keeper wrote, or LOST."""
        recorded = read_exit_status(sandbox, hint.get("started"))
        where = str(sandbox) if hint.get("sandbox") or sandbox.is_dir() else None
        cause = _read_text(sandbox / END_CAUSE_FILE)
        if recorded is not None and cause:  # we ended it, before we lost sight of it
            exit_code, usage = recorded
            state, reason = _ENDED_BY_US.get(cause, (TaskState.KILLED, REASON_KILLED))
            return TaskEvent(task_id, state, exit_code=exit_code, reason=reason, usage=usage, agent=self._agent,
                             sandbox=where, message=f"ended by the backend ({cause}) before it lost sight of it")
        if recorded is not None:
            exit_code, usage = recorded
            last = _last_line(sandbox / "stderr") if exit_code else ""
            if exit_code and not last:
                last = _exit_text(exit_code)
            return LocalTaskEvent(task_id, TaskState.FINISHED, exit_code=exit_code, usage=usage, agent=self._agent,
                                  sandbox=where, message=f"{last} (ended unwatched; read from its sandbox)".lstrip())
        message = (f"killed leftover process(es) {', '.join(map(str, strays))} of the previous run"
                   if strays else "no process of the previous run was found")
        return TaskEvent(task_id, TaskState.LOST, reason=REASON_RESTARTED, message=message, agent=self._agent,
                         sandbox=where)

    def stop(self) -> None:
        """Stop launching, end every task and the backend's threads; idempotent.

        Local tasks do not outlive the backend: running ones get SIGTERM (then
        SIGKILL after ``kill_grace``) on their process group. Queued and
        running tasks are reported LOST with reason ``backend_stopped`` (not
        KILLED: nobody cancelled them, the caller should run them again). All
        events are delivered before this returns, unless it is called from the
        event callback itself.
        """
        with self._lock:
            if self._state in ("stopping", "stopped"):
                return
            was_started = self._state == "started"
            self._state = "stopping"
            while self._queue:
                task = self._queue.popleft()
                del self._tasks[task.spec.task_id]
                self._emit(TaskEvent(task.spec.task_id, TaskState.LOST, reason=REASON_STOPPED,
                                     message="backend stopped before the task started", usage=_ZERO_USAGE,
                                     agent=self._agent))
            for task in self._tasks.values():
                if task.end_cause is None:
                    task.end_cause = REASON_STOPPED
                    if task.phase == "running":
                        self._terminate_locked(task)
            deadline = time.monotonic() + self.kill_grace + 10.0
            while self._tasks and time.monotonic() < deadline:
                self._changed.wait(timeout=deadline - time.monotonic())
            if self._tasks:
                log.warning("local backend stopped with %d task(s) not yet reaped: %s",
                            len(self._tasks), ", ".join(sorted(self._tasks)))
            self._state = "stopped"
            self._timer_cond.notify_all()
        if not was_started:
            return
        atexit.unregister(self.stop)
        if self._keeper_process is not None:
            self._keeper_process.close()
        self._events.put(None)
        for thread in (self._timer_thread, self._event_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=10.0)
        log.info("local backend stopped")

    def queued(self) -> int:
        """How many launched tasks wait for resources."""
        with self._lock:
            return len(self._queue)

    def running(self) -> int:
        """How many tasks hold resources (being started or running)."""
        with self._lock:
            return len(self._tasks) - len(self._queue)

    def status(self) -> dict:
        """This machine: its capacity, what running tasks hold, how many wait."""
        with self._lock:
            used = self.capacity - self._free
            queued, running = len(self._queue), len(self._tasks) - len(self._queue)
            keeper = self._keeper_process.pid if self._keeper_process is not None else None
        return {"backend": self.name, "host": self._agent, "queued": queued, "running": running, "paused": self._paused,
                "keeper_pid": keeper,
                "capacity": {"cpus": self.capacity.cpus, "mem": self.capacity.mem, "gpus": self.capacity.gpus},
                "used": {"cpus": round(used.cpus, 3), "mem": round(used.mem, 1), "gpus": used.gpus},
                "sandboxes": str(self.sandbox_root)}

    @property
    def free(self) -> Resources:
        """Capacity not reserved by running tasks (for status pages)."""
        with self._lock:
            return self._free

    # ------------------------------------------------------------- internals

    def _validate(self, spec: TaskSpec) -> None:
        tid = spec.task_id
        if not isinstance(tid, str) or not tid or tid in (".", "..") or "/" in tid or "\0" in tid:
            raise BackendError(f"task id {tid!r} cannot name a sandbox directory")
        if not spec.command or not all(isinstance(a, str) for a in spec.command):
            raise BackendError(f"task {tid!r}: command must be a non-empty list of strings")
        if spec.timeout is not None and not spec.timeout > 0:
            raise BackendError(f"task {tid!r}: timeout must be positive or None, not {spec.timeout!r}")
        res = spec.resources
        if min(res.cpus, res.mem, res.gpus) < 0:
            raise BackendError(f"task {tid!r}: negative resources {res}")
        for uri in spec.uris:
            source_path(uri.value)  # raises BackendError for schemes we cannot fetch

    def _oversize_message(self, need: Resources) -> str:
        cap = self.capacity
        over = [f"{name}={getattr(need, name):g} (machine has {getattr(cap, name):g})"
                for name in ("cpus", "mem", "gpus") if getattr(need, name) > getattr(cap, name) + 1e-9]
        return "task needs more than this machine offers: " + ", ".join(over)

    def _emit(self, event: TaskEvent) -> None:
        self._events.put(event)

    def _deliver_events(self) -> None:
        assert self._on_event is not None
        while True:
            event = self._events.get()
            if event is None:
                return
            try:
                self._on_event(event)
            except Exception:
                log.exception("event callback failed for %s %s", event.task_id, event.state.value)

    def _schedule_locked(self, take_one: bool = False) -> _Task | None:
        """Start queued tasks, in order, while the head fits in what is free.

        With ``take_one`` the first startable task is returned instead of given
        a new thread: a worker whose task just ended runs the next one itself,
        which saves a thread start per task on the hot path.
        """
        taken: _Task | None = None
        while self._queue and self._state == "started" and not self._paused:
            task = self._queue[0]
            if not task.need.fits_in(self._free):
                break
            self._queue.popleft()
            self._free = self._free - task.need
            if task.need.gpus:
                task.gpu_ids = self._free_gpus[: task.need.gpus]
                del self._free_gpus[: task.need.gpus]
            task.phase = "starting"
            if take_one and taken is None:
                taken = task
            else:
                threading.Thread(target=self._worker, args=(task,), name="local-backend-worker",
                                 daemon=True).start()
        return taken

    def _finish_locked(self, task: _Task, event: TaskEvent, take_next: bool = False) -> _Task | None:
        """Report a task's end, give its resources back and start what now fits."""
        self._emit(event)
        del self._tasks[task.spec.task_id]
        if task.phase != "queued":
            self._free = self._free + task.need
            if task.gpu_ids:
                self._free_gpus.extend(task.gpu_ids)
                self._free_gpus.sort(key=self._gpu_names.index)
        if len(self._timers) > 64 and len(self._timers) > 4 * len(self._tasks):
            # Drop timers of ended tasks (long timeouts would otherwise pile up).
            self._timers = [entry for entry in self._timers if entry[2].phase == "running"]
            heapq.heapify(self._timers)
        self._changed.notify_all()
        return self._schedule_locked(take_one=take_next)

    def _worker(self, task: _Task | None) -> None:
        """Run tasks one after the other while there are startable ones."""
        while task is not None:
            try:
                event = self._execute(task)
            except Exception as exc:  # a bug here must not leak the task's resources
                log.exception("local backend: task %s failed unexpectedly", task.spec.task_id)
                event = self._event(task, TaskState.LOST, reason="backend_error", message=str(exc))
            with self._lock:
                task = self._finish_locked(task, event, take_next=True)

    def _event(self, task: _Task, state: TaskState, **kw: object) -> TaskEvent:
        return LocalTaskEvent(task.spec.task_id, state, agent=self._agent, sandbox=str(task.sandbox),
                              pid=task.pid, **kw)

    def _execute(self, task: _Task) -> TaskEvent:
        """Prepare the sandbox, spawn, wait; returns the terminal event."""
        spec = task.spec
        sandbox = str(task.sandbox)
        try:
            try:
                os.mkdir(sandbox)
            except FileExistsError:
                pass
            if spec.uris:
                fetch_into(spec.uris, task.sandbox, self.fetch_cache)
            cwd = task.sandbox
            if spec.workdir:
                cwd = task.sandbox / spec.workdir  # an absolute workdir replaces the sandbox
                if not Path(spec.workdir).is_absolute():
                    cwd.mkdir(parents=True, exist_ok=True)
        except (FetchError, OSError) as exc:
            reason = REASON_FETCH_FAILED if isinstance(exc, FetchError) else REASON_LAUNCH_FAILED
            return self._event(task, TaskState.FAILED, reason=reason, message=str(exc), usage=_ZERO_USAGE)

        env = self._environment(task)
        if self.run_as is not None:
            try:
                _hand_over([task.sandbox, *map(Path, spec.writable_paths)], *self.run_as)
            except OSError as exc:
                return self._event(task, TaskState.FAILED, reason=REASON_LAUNCH_FAILED, usage=_ZERO_USAGE,
                                   message=f"cannot give the sandbox to the task's user: {exc}")

        with self._lock:
            if task.end_cause is not None:  # killed or stopped while we were fetching
                return self._not_started_event(task)
        stderr_path = os.path.join(sandbox, "stderr")
        try:
            program = _executable(spec.command[0], env.get("PATH", os.defpath), cwd)
            uid, gid = self.run_as or (None, None)
            request = (spec.task_id, program, list(spec.command), env, str(cwd), sandbox,
                       os.path.join(sandbox, EXIT_STATUS_FILE), uid, gid)
            keeper = self._keeper
            try:
                pid = keeper.spawn(*request)
            except KeeperGone:  # it may have started the task before it died: that copy must not run on
                _kill_orphans({pid: tid for tid, pids in _find_task_processes({spec.task_id}).items()
                               for pid in pids}, self.kill_grace)
                keeper = self._new_keeper(keeper)
                pid = keeper.spawn(*request)
        except OSError as exc:
            return self._event(task, TaskState.FAILED, reason=REASON_LAUNCH_FAILED,
                               message=f"cannot start task: {exc}", usage=_ZERO_USAGE)
        started = time.monotonic()
        with self._lock:
            task.pid = pid
            task.phase = "running"
            self._emit(self._event(task, TaskState.STARTED, message=f"pid {pid}"))
            if task.end_cause is not None:
                self._terminate_locked(task)
            elif spec.timeout is not None:
                self._add_timer_locked(started + spec.timeout, task, "timeout")

        status, cpu, maxrss = keeper.wait(spec.task_id)  # what it left in its group is killed by then
        if status is None:  # the keeper was killed: nobody would record this task's end, so it must not run on
            _kill_orphans({pid: spec.task_id}, self.kill_grace)
        with self._lock:
            task.phase = "exited"
        wall = time.monotonic() - started
        if status is None:
            return self._end_event(task, None, Usage(wall_seconds=wall), stderr_path)
        usage = Usage(cpu_seconds=cpu, mem_peak_mb=maxrss * _MAXRSS_TO_MB, wall_seconds=wall)
        return self._end_event(task, os.waitstatus_to_exitcode(status), usage, stderr_path)

    def _environment(self, task: _Task) -> dict[str, str]:
        """The task's whole environment (see the module docstring): nothing of the gateway's own."""
        spec, sandbox = task.spec, str(task.sandbox)
        env = {"PATH": DEFAULT_PATH, "HOME": sandbox, "TMPDIR": sandbox, "LANG": "C.UTF-8", **self.environment}
        if self._python_bin and not env["PATH"].startswith(self._python_bin + os.pathsep):
            env["PATH"] = self._python_bin + os.pathsep + env["PATH"]
        env.update(spec.environment)
        env[TASK_ID_ENV] = spec.task_id
        env[SANDBOX_ENV] = sandbox
        if task.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(task.gpu_ids)
        return env

    def _not_started_event(self, task: _Task) -> TaskEvent:
        if task.end_cause == REASON_STOPPED:
            return self._event(task, TaskState.LOST, reason=REASON_STOPPED,
                               message="backend stopped before the task started", usage=_ZERO_USAGE)
        return self._event(task, TaskState.KILLED, reason=REASON_KILLED, message="killed before it started",
                           usage=_ZERO_USAGE)

    def _end_event(self, task: _Task, exit_code: int | None, usage: Usage, stderr_path: str) -> TaskEvent:
        last = _last_line(stderr_path) if exit_code != 0 else ""
        cause = task.end_cause
        if cause == REASON_KILLED:
            return self._event(task, TaskState.KILLED, exit_code=exit_code, reason=REASON_KILLED,
                               message="killed on request", usage=usage)
        if cause == REASON_TIMEOUT:
            message = f"timed out after {task.spec.timeout:g} s" + (f"; last stderr line: {last}" if last else "")
            return self._event(task, TaskState.FAILED, exit_code=exit_code, reason=REASON_TIMEOUT,
                               message=message, usage=usage)
        if cause == REASON_STOPPED:
            return self._event(task, TaskState.LOST, exit_code=exit_code, reason=REASON_STOPPED,
                               message="killed because the backend stopped", usage=usage)
        if exit_code is None:
            return self._event(task, TaskState.LOST, reason=REASON_KEEPER_LOST, usage=usage,
                               message="the task keeper ended before the task did: its exit status is unknown")
        if exit_code == 0:
            return self._event(task, TaskState.FINISHED, exit_code=0, usage=usage)
        return self._event(task, TaskState.FINISHED, exit_code=exit_code, message=last or _exit_text(exit_code),
                           usage=usage)

    # Timers (timeouts, SIGKILL after the grace period): one thread, a heap.

    def _add_timer_locked(self, deadline: float, task: _Task, action: str) -> None:
        heapq.heappush(self._timers, (deadline, next(self._timer_seq), task, action))
        if self._timers[0][2] is task:
            self._timer_cond.notify()

    def _terminate_locked(self, task: _Task) -> None:
        """SIGTERM the task's group now and SIGKILL it after the grace period.

        Why it is ended goes to ``end_cause`` in the sandbox first, so that a
        later run reading the task's recorded end knows the signal was ours.
        """
        assert task.pid is not None
        try:
            (task.sandbox / END_CAUSE_FILE).write_text(task.end_cause or REASON_KILLED)
        except OSError as exc:
            log.warning("task %s: cannot record why it is ended: %s", task.spec.task_id, exc)
        self._signal_locked(task, signal.SIGTERM)
        self._add_timer_locked(time.monotonic() + self.kill_grace, task, "sigkill")

    @property
    def _keeper(self) -> Keeper:
        assert self._keeper_process is not None, "the backend has not started"
        return self._keeper_process

    def _new_keeper(self, gone: Keeper) -> Keeper:
        """A keeper in place of one that has ended (it was killed): the tasks to come need a parent."""
        with self._lock:
            if self._keeper_process is gone:
                log.warning("local backend: the task keeper (pid %d) has ended; starting another", gone.pid)
                self._keeper_process = Keeper()
            keeper = self._keeper_process
        gone.close()  # it has ended: this only collects it
        return keeper

    def _signal_locked(self, task: _Task, sig: int) -> None:
        """Signal a running task's process group: through the keeper, which knows it is not reaped yet."""
        assert task.pid is not None
        if task.adopted:  # a previous run's keeper is its parent; its zombie is watched by pidfd
            _signal_group(task.pid, sig)
            return
        try:
            self._keeper.signal(task.pid, sig)
        except OSError as exc:
            log.warning("task %s: cannot signal it: %s", task.spec.task_id, exc)

    def _run_timers(self) -> None:
        with self._lock:
            while self._state != "stopped":
                if not self._timers:
                    self._timer_cond.wait()
                    continue
                deadline, _, task, action = self._timers[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._timer_cond.wait(timeout=delay)
                    continue
                heapq.heappop(self._timers)
                if task.phase != "running":
                    continue  # ended meanwhile; its pid may not be ours any more
                if action == "timeout":
                    if task.end_cause is None:
                        log.info("task %s timed out after %g s", task.spec.task_id, task.spec.timeout)
                        task.end_cause = REASON_TIMEOUT
                        self._terminate_locked(task)
                elif action == "sigkill":
                    log.info("task %s still running %g s after SIGTERM: SIGKILL", task.spec.task_id,
                             self.kill_grace)
                    self._signal_locked(task, signal.SIGKILL)


# ---------------------------------------------------------------- helpers


def _wait_readable(fd: int, timeout: float | None = None) -> bool:
    """Poll one descriptor (a pidfd: readable once that process has exited); whether it became readable."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if timeout is None:
        while not poller.poll():
            pass
        return True
    return bool(poller.poll(timeout * 1000))


def _keeper_of(pid: int) -> int | None:
    """A pidfd on the task keeper that is this process's parent, if its parent is one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            parent = int(fh.read().rsplit(b")", 1)[1].split()[1])
        with open(f"/proc/{parent}/cmdline", "rb") as fh:
            if KEEPER_MARKER.encode() not in fh.read().split(b"\0"):
                return None
        return os.pidfd_open(parent)
    except (OSError, ValueError, IndexError):
        return None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _unix_identity(run_as: str) -> tuple[int, int]:
    """``user`` or ``user:group`` as (uid, gid); the user's own group by default."""
    import grp
    import pwd

    name, _, group = run_as.partition(":")
    try:
        entry = pwd.getpwnam(name.strip())
        gid = grp.getgrnam(group.strip()).gr_gid if group.strip() else entry.pw_gid
    except KeyError:
        raise BackendError(f"[local] run_as: no such user or group {run_as!r}") from None
    if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
        raise BackendError(f"[local] run_as {run_as!r} needs the gateway to run as root")
    return entry.pw_uid, gid


def _hand_over(paths: list[Path], uid: int, gid: int) -> None:
    """Give the task's user the folders it writes to (not what is inside them: the bundle stays ours)."""
    for path in paths:
        os.chown(path, uid, gid)


def _exit_text(exit_code: int) -> str:
    return (f"terminated by signal {_signal_name(-exit_code)}" if exit_code < 0
            else f"exited with code {exit_code}")


def _executable(program: str, path: str, cwd: Path) -> str:
    """The file a command's program names, looked up on the task's PATH (so a typo fails the launch clearly)."""
    if "/" in program:
        full = program if os.path.isabs(program) else os.path.join(cwd, program)
        if not os.path.isfile(full):
            raise FileNotFoundError(f"No such file: {program!r}")
        if not os.access(full, os.X_OK):
            raise PermissionError(f"Not executable: {program!r}")
        return full
    found = shutil.which(program, path=path)
    if found is None:
        raise FileNotFoundError(f"No such program on the task's PATH: {program!r}")
    return found


_TIMES = re.compile(r"(\d+)m([\d.]+)s")


def read_exit_status(sandbox: Path, started: float | None = None) -> tuple[int, Usage] | None:
    """What the task keeper recorded: the exit code (negative: by that signal) and the CPU time of the task.

    None when there is no complete record (the task never ended on its own).
    The wall time is known only when ``started`` (epoch seconds) is given.
    """
    path = Path(sandbox) / EXIT_STATUS_FILE
    try:
        text = path.read_text(encoding="ascii", errors="replace")
        written = path.stat().st_mtime
    except OSError:
        return None
    lines = text.splitlines()
    try:
        status = int(lines[0])
    except (IndexError, ValueError):
        return None
    exit_code = 128 - status if status > 128 else status
    # `times` prints the shell's user and system time, then its children's (the task's).
    children = _TIMES.findall(lines[2]) if len(lines) > 2 else []
    cpu = sum(int(m) * 60 + float(sec) for m, sec in children) if children else None
    wall = max(0.0, written - started) if started else None
    return exit_code, Usage(cpu_seconds=cpu, wall_seconds=wall)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def _session_leader(pids: set[int]) -> int | None:
    """The task's main process (a shell wrapper in earlier versions): the one that leads its own session."""
    for pid in sorted(pids):
        try:
            if os.getsid(pid) == pid:
                return pid
        except OSError:
            continue
    return None


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _last_line(path: str | Path, window: int = 8192) -> str:
    """Last non-empty line of a (possibly large) file, for failure messages."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - window))
            data = fh.read()
    except OSError:
        return ""
    for line in reversed(data.splitlines()):
        text = line.decode("utf-8", "replace").strip()
        if text:
            return text[:1000]
    return ""


def _proc_task_id(pid: int) -> str | None:
    """The LOCAL_BACKEND_TASK_ID a process was started with, if we may read it."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    prefix = TASK_ID_ENV.encode() + b"="
    for entry in data.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode("utf-8", "replace")
    return None


def _pid_alive(pid: int) -> bool:
    """True if the pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _find_task_processes(task_ids: set[str]) -> dict[str, set[int]]:
    """Live processes whose environment carries one of these task ids."""
    found: dict[str, set[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        log.warning("no /proc: cannot identify processes of a previous run; none killed")
        return found
    me = os.getpid()
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        task_id = _proc_task_id(pid)
        if task_id in task_ids and _pid_alive(pid):
            found.setdefault(task_id, set()).add(pid)
    return found


def _kill_orphans(victims: dict[int, str], grace: float) -> None:
    """SIGTERM the groups of proven task processes, SIGKILL what is left after ``grace``."""
    own_group = os.getpgrp()

    def groups_of(pids: list[int]) -> set[int]:
        groups = set()
        for pid in pids:
            try:
                pgid = os.getpgid(pid)
            except OSError:
                continue
            if pgid > 1 and pgid != own_group:
                groups.add(pgid)
        return groups

    def send(sig: int, pids: list[int]) -> None:
        for pgid in groups_of(pids):
            _signal_group(pgid, sig)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    send(signal.SIGTERM, list(victims))
    deadline = time.monotonic() + grace
    while True:
        # Re-check the identity: a pid that died may already have been reused.
        remaining = [pid for pid, tid in victims.items() if _pid_alive(pid) and _proc_task_id(pid) == tid]
        if not remaining:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)  # not our children: nothing to wait on
    log.warning("recover: SIGKILL for %d process(es) that ignored SIGTERM", len(remaining))
    send(signal.SIGKILL, remaining)
