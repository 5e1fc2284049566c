"""The one interface every execution backend implements.

A backend runs task specifications and reports what happened to them. It
knows nothing of WPS, jobs or SQL: the dispatcher in ``wps_gateway`` turns
jobs into ``TaskSpec`` objects and ``TaskEvent`` objects back into job state.

Backends keep their own queue (like Toil's batch systems): ``launch`` accepts
any number of tasks and the backend starts them as resources allow, in the
order it received them.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol


class BackendError(Exception):
    """A backend could not do what it was asked (bad spec, engine unreachable)."""


@dataclass(frozen=True)
class Resources:
    """What a task needs (or what a machine offers). mem and disk in MiB."""

    cpus: float = 1.0
    mem: float = 256.0
    disk: float = 0.0
    gpus: int = 0

    def fits_in(self, other: Resources) -> bool:
        return (
            self.cpus <= other.cpus + 1e-9
            and self.mem <= other.mem + 1e-9
            and self.disk <= other.disk + 1e-9
            and self.gpus <= other.gpus
        )

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.mem + other.mem,
                         self.disk + other.disk, self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpus - other.cpus, self.mem - other.mem,
                         self.disk - other.disk, self.gpus - other.gpus)


@dataclass(frozen=True)
class FetchUri:
    """A file the engine must fetch into the sandbox before the task starts."""

    value: str
    cache: bool = True
    extract: bool = False
    executable: bool = False


@dataclass(frozen=True)
class PersistentVolume:
    """A volume that outlives the tasks on it (a Mesos persistent volume: disk dynamically reserved for the
    framework's role, with ``reserve`` reserved beside it), mounted at ``container_path`` in the sandbox of
    every task that names it. Engines without such volumes refuse tasks that name one."""

    volume_id: str
    container_path: str
    disk: float  # MiB
    reserve: Resources = field(default_factory=lambda: Resources(0.0, 0.0))  # cpus, mem kept with it

    def __post_init__(self) -> None:
        if not self.volume_id or any(c in self.volume_id for c in "/\\") or self.volume_id in (".", ".."):
            raise BackendError(f"persistent volume id {self.volume_id!r} is not valid")
        if not self.container_path or "/" in self.container_path or self.container_path in (".", ".."):
            raise BackendError(f"persistent volume {self.volume_id}: container path {self.container_path!r} must "
                               "be a plain relative name")
        if not self.disk > 0:
            raise BackendError(f"persistent volume {self.volume_id}: its disk must be positive")


VOLUME_OPERATIONS = ("create", "destroy")


@dataclass
class TaskSpec:
    """Everything an engine needs to run one attempt of one task.

    ``task_id`` is unique per attempt (the dispatcher appends the attempt
    number), so an engine never sees the same id twice.
    """

    task_id: str
    command: list[str]
    resources: Resources = field(default_factory=Resources)
    # The task's whole environment. An engine adds only its own documented
    # contract variables (sandbox path, task id, GPU devices), never the
    # gateway's environment: the gateway's secrets must not reach a task.
    environment: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    uris: list[FetchUri] = field(default_factory=list)
    locality: list[str] = field(default_factory=list)
    timeout: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    # Folders outside the sandbox the task writes to (its step's folder, the job's outputs): an engine
    # that runs tasks as another user grants them to it.
    writable_paths: list[str] = field(default_factory=list)
    # Who and what the task is for: engines that share a cluster use them for
    # caps, fair share between users and processes, and ordering.
    user: str = ""
    process: str = ""
    priority: int = 0
    # Run on this persistent volume (its agent, mounted at its container path); see PersistentVolume.
    volume: PersistentVolume | None = None
    # "create" or "destroy": this attempt is not a command but that operation on ``volume`` (made, or found
    # already there; removed and its reservation given back). It ends FINISHED with exit code 0 once done.
    volume_operation: str | None = None
    # ``docker run`` options (name, value) for engines that run the image with Docker itself; others ignore them.
    docker_parameters: list[tuple[str, str]] = field(default_factory=list)


class TaskState(str, Enum):  # noqa: UP042 (StrEnum would change what str() of a member gives)
    STARTED = "started"
    FINISHED = "finished"  # ran to the end; see exit_code
    FAILED = "failed"  # could not run, or was killed for a reason (timeout, ...)
    KILLED = "killed"  # killed on request (cancel)
    LOST = "lost"  # the engine lost track of it (agent gone, restart)
    # The engine's own intermediate states (Mesos TASK_STAGING, TASK_UNREACHABLE,
    # ...): recorded in the attempt's history, they change nothing else.
    NOTICE = "notice"

    @property
    def is_terminal(self) -> bool:
        return self not in (TaskState.STARTED, TaskState.NOTICE)


@dataclass(frozen=True)
class Usage:
    """Resource usage of one attempt: what was measured, and what the engine charged for it.

    ``cpu_seconds`` and ``mem_peak_mb`` are measured in the task's process
    tree (the local backend); ``wall_seconds`` is the attempt's run time.
    ``alloc_cpu_seconds`` and ``alloc_mem_mb_seconds`` are what the engine
    itself accounted for the resources it allocated, busy or not (YARN's
    ``vcoreSeconds`` and ``memorySeconds`` of the application, its
    ApplicationMaster included); None where the engine keeps no such account.
    """

    cpu_seconds: float | None = None
    mem_peak_mb: float | None = None
    wall_seconds: float | None = None
    alloc_cpu_seconds: float | None = None
    alloc_mem_mb_seconds: float | None = None


@dataclass(frozen=True)
class TaskEvent:
    task_id: str
    state: TaskState
    exit_code: int | None = None
    reason: str | None = None
    message: str = ""
    usage: Usage | None = None
    agent: str | None = None
    sandbox: str | None = None
    timestamp: float = field(default_factory=time.time)

    @property
    def succeeded(self) -> bool:
        return self.state is TaskState.FINISHED and self.exit_code == 0


EventCallback = Callable[[TaskEvent], None]


@dataclass(frozen=True)
class SchedulingLimits:
    """Caps and fair-share weights an operator changed while the backend runs (``Backend.set_limits``).

    Each one overrides what the backend was configured with: ``None`` keeps the
    configured cap, ``0`` means no cap; a name in a mapping overrides the
    configured entry of that name (the others stay as configured).
    """

    max_cpu: float | None = None  # cpus of all the backend's tasks together
    user_max_cpu: float | None = None  # cpus of one user's tasks, for every user
    user_cpus: dict[str, float] = field(default_factory=dict)  # cpus of this user's tasks (over user_max_cpu)
    process_weights: dict[str, float] = field(default_factory=dict)  # fair share between processes
    user_weights: dict[str, float] = field(default_factory=dict)  # fair share between users

    def cap(self, configured: float | None, live: float | None) -> float | None:
        """A cap in effect: the live one if set (0: none), else the configured one."""
        value = configured if live is None else live
        return value or None


class BackendState(Protocol):
    """Small durable key/value state a backend keeps across restarts.

    The Mesos framework keeps its framework id here. The gateway backs it
    with the job store; tests may use a dict-backed ``MemoryState``.
    """

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str | None) -> None: ...


class MemoryState:
    """A ``BackendState`` that lives as long as the process (tests, one-off runs)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def put(self, key: str, value: str | None) -> None:
        if value is None:
            self._values.pop(key, None)
        else:
            self._values[key] = value


class Backend(ABC):
    """An execution engine: local processes, a Mesos framework, YARN."""

    name: str = "abstract"
    # Whether tasks keep running when the backend stops (a cluster keeps them; local
    # subprocesses are stopped with it). The dispatcher gives local tasks a grace
    # period to end before it stops the backend; cluster tasks are handed back.
    tasks_survive_stop: bool = False

    @abstractmethod
    def start(self, on_event: EventCallback) -> None:
        """Begin running; ``on_event`` may be called from any thread."""

    @abstractmethod
    def stop(self) -> None:
        """Stop accepting work and release engine resources (tasks may keep running)."""

    @abstractmethod
    def launch(self, spec: TaskSpec) -> None:
        """Queue a task; it starts when resources allow."""

    @abstractmethod
    def kill(self, task_id: str) -> None:
        """Kill a queued or running task; a KILLED event follows."""

    @abstractmethod
    def recover(self, task_ids: list[str], hints: dict[str, dict] | None = None) -> None:
        """Tasks a previous run of the caller believed active.

        The backend reports each one: as still running (no event), finished,
        or LOST so that the caller reruns it. ``hints`` carries what the caller
        recorded per task (for the local backend: pid and sandbox).
        """

    def active_tasks(self) -> set[str] | None:
        """The ids of the tasks this backend holds now, queued or running, as the engine sees them.

        Like Toil's ``getRunningBatchJobIDs``: the dispatcher compares the
        answer with the store now and then, so that drift between the two
        heals by itself (an attempt the store believes active that the engine
        no longer holds is reported lost; a task the engine runs that the
        store no longer wants is killed). A task whose terminal event has been
        emitted is no longer held. ``None`` means the engine cannot tell now
        (unreachable, not subscribed yet): no conclusion is drawn from it.
        """
        return None

    def queued(self) -> int:
        """How many launched tasks have not started yet."""
        return 0

    def set_paused(self, paused: bool) -> None:
        """Stop (or resume) starting queued tasks; running tasks and the queue are kept.

        Engines that queue nothing of their own may ignore it.
        """
        return None

    # Which of ``SchedulingLimits``' fields this backend applies (the console says so for the others).
    limits_supported: frozenset[str] = frozenset()

    def set_limits(self, limits: SchedulingLimits) -> None:
        """Apply caps and weights an operator changed, from now on, without a restart.

        Called by the dispatcher whenever the live values in the job store
        change (and once after ``start``), always with the whole set. Engines
        without caps or fair share of their own ignore it.
        """
        return None

    def set_priority(self, task_id: str, priority: int) -> bool:
        """Change the priority of a task still queued in the backend; True if it was queued (and is now in
        its new place), False if it is not (running, ended, or an engine without a queue of its own)."""
        return False

    def status(self) -> dict:
        """What an operator's console and metrics show of the engine, as JSON-ready values.

        At least ``backend`` and ``queued``; engines add ``capacity`` and
        ``used`` (cpus, mem), their health and their machines. Called from
        another thread than the dispatcher's, every few seconds: cheap, and
        never waiting long on the engine.
        """
        return {"backend": self.name, "queued": self.queued()}

    def leadership_lost(self) -> None:
        """The caller is no longer the active dispatcher: stop talking to the engine at once.

        Another dispatcher may be starting with the same engine identity (the
        Mesos framework id): this one must not launch, kill or (re)subscribe
        any more. Running tasks are left alone for the new leader; ``start``
        resumes when this caller leads again. Engines without such an identity
        may ignore it.
        """
        return None
