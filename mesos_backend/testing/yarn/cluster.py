"""What a ResourceManager keeps and does, apart from HTTP: the test ResourceManager's core.

Applications go NEW -> NEW_SAVING -> SUBMITTED -> ACCEPTED -> RUNNING ->
FINISHED | FAILED | KILLED. An ACCEPTED application waits for its AM
container (FIFO by priority, on a node with room and the right label); the
AM container is launched by a NodeManager and the application is RUNNING
only once its ApplicationMaster registers. An AM that never registers fails
its attempt after ``am_expiry``; an AM container that ends before
unregistering fails it at once (whatever its exit code); after
``max-app-attempts`` (capped by ``am_max_attempts``) the application FAILED.
A lost NodeManager's containers are released with exit status -100 after
``nm_expiry``. Finished applications beyond ``max_completed`` are
forgotten (404), oldest first. Usage (MB-seconds, vcore-seconds) accrues
for every allocated container, the AM's included.

Kept apart from HTTP (``rm.py``) so that two ResourceManagers can share it as
an active and a standby share the state store, and so that a restart with
recovery keeps it while the listeners go away and come back.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .distshell import MAIN_CLASS, DistributedShellAM, JvmExit, main_class
from .hdfs import HdfsCluster
from .nodemanager import EXIT_ABORTED, Container, LaunchContext, LocalResource, NodeManager
from .web import RemoteError

LOG = logging.getLogger(__name__)
ACTIVE_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING")
FINAL_STATES = ("FINISHED", "FAILED", "KILLED")
ALL_STATES = ACTIVE_STATES + FINAL_STATES
APP_ID = re.compile(r"^application_(\d+)_(\d+)$")
MAX_TAGS = 10
MAX_TAG_LENGTH = 100


@dataclass
class Timings:
    tick: float = 0.05
    am_expiry: float = 600.0  # yarn.am.liveness-monitor.expiry-interval-ms
    nm_expiry: float = 600.0  # yarn.nm.liveness-monitor.expiry-interval-ms


@dataclass
class SchedulerConfig:
    min_memory: int = 1024  # yarn.scheduler.minimum-allocation-mb: asks are rounded up to a multiple
    max_memory: int = 8192
    min_vcores: int = 1
    max_vcores: int = 4
    queues: tuple[str, ...] = ("default",)
    am_max_attempts: int = 2  # yarn.resourcemanager.am.max-attempts
    max_completed: int = 1000  # yarn.resourcemanager.max-completed-applications

    def normalize(self, memory: int, vcores: int) -> tuple[int, int]:
        step = self.min_memory
        return max(step, -(-memory // step) * step), max(self.min_vcores, vcores)


@dataclass(eq=False)
class Ask:
    attempt: Attempt
    memory: int
    vcores: int
    launch: Callable[[Container], None]


@dataclass(eq=False)
class Attempt:
    app: App
    number: int
    state: str = "SCHEDULED"
    am_container: Container | None = None
    registered: bool = False
    final_status: str | None = None  # from unregistration
    final_diagnostics: str = ""
    failure: str | None = None  # why the RM ended it (AM expiry)
    start_time: int = 0
    finished_time: int = 0
    launched_at: float = 0.0  # monotonic, when its AM container started running: AM expiry counts from here
    sequence: itertools.count = field(default_factory=lambda: itertools.count(2))

    @property
    def attempt_id(self) -> str:
        return f"appattempt_{self.app.cluster_ts}_{self.app.number:04d}_{self.number:06d}"

    def container_id(self, sequence: int) -> str:
        return f"container_{self.app.cluster_ts}_{self.app.number:04d}_{self.number:02d}_{sequence:06d}"


@dataclass(eq=False)
class App:
    cluster_ts: int
    number: int
    user: str
    name: str
    queue: str
    app_type: str
    tags: list[str]
    priority: int
    max_attempts: int
    am_memory: int
    am_vcores: int
    am_context: LaunchContext
    label: str = ""
    unmanaged: bool = False
    state: str = "NEW"
    final_status: str = "UNDEFINED"
    diagnostics: str = ""
    started_time: int = 0
    launch_time: int = 0
    finished_time: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    containers: dict[str, Container] = field(default_factory=dict)  # live ones
    memory_seconds: float = 0.0
    vcore_seconds: float = 0.0
    progress: float = 0.0
    killed_by: str | None = None
    rm_address: str = ""

    @property
    def app_id(self) -> str:
        return f"application_{self.cluster_ts}_{self.number:04d}"

    @property
    def attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def report(self) -> dict[str, Any]:
        finished = self.state in FINAL_STATES
        now = int(time.time() * 1000)
        attempt = self.attempt
        am = attempt.am_container if attempt else None
        allocated_mb = sum(c.memory for c in self.containers.values())
        allocated_cores = sum(c.vcores for c in self.containers.values())
        tracking_ui = "History" if finished else ("ApplicationMaster" if attempt and attempt.registered
                                                  else "UNASSIGNED")
        report = {
            "id": self.app_id, "user": self.user, "name": self.name, "queue": self.queue, "state": self.state,
            "finalStatus": self.final_status, "progress": self.progress, "trackingUI": tracking_ui,
            "trackingUrl": f"http://{self.rm_address}/proxy/{self.app_id}/", "diagnostics": self.diagnostics,
            "clusterId": self.cluster_ts, "applicationType": self.app_type,
            "applicationTags": ",".join(self.tags), "priority": self.priority, "startedTime": self.started_time,
            "launchTime": self.launch_time, "finishedTime": self.finished_time,
            "elapsedTime": (self.finished_time if finished else now) - self.started_time,
            "amContainerLogs": f"http://{am.node.http_address}/node/containerlogs/{am.container_id}/{self.user}"
            if am and am.node else "",
            "amHostHttpAddress": am.node.http_address if am and am.node else "",
            "amRPCAddress": f"{am.node.host}:-1" if am and am.node and attempt.registered else "N/A",
            "masterNodeId": am.node.node_id if am and am.node else "",
            "allocatedMB": -1 if finished else allocated_mb, "allocatedVCores": -1 if finished else allocated_cores,
            "reservedMB": -1 if finished else 0, "reservedVCores": -1 if finished else 0,
            "runningContainers": -1 if finished else len(self.containers),
            "memorySeconds": int(self.memory_seconds), "vcoreSeconds": int(self.vcore_seconds),
            "queueUsagePercentage": 0.0, "clusterUsagePercentage": 0.0,
            "resourceSecondsMap": {"entry": [{"key": "memory-mb", "value": str(int(self.memory_seconds))},
                                             {"key": "vcores", "value": str(int(self.vcore_seconds))}]},
            "preemptedResourceMB": 0, "preemptedResourceVCores": 0, "numNonAMContainerPreempted": 0,
            "numAMContainerPreempted": 0, "preemptedMemorySeconds": 0, "preemptedVcoreSeconds": 0,
            "logAggregationStatus": "DISABLED", "unmanagedApplication": self.unmanaged,
            "amNodeLabelExpression": self.label, "appNodeLabelExpression": self.label,
            "timeouts": {"timeout": [{"type": "LIFETIME", "expiryTime": "UNLIMITED", "remainingTimeInSeconds": -1}]},
        }
        return report


def _ms() -> int:
    return int(time.time() * 1000)


class YarnCluster:
    """The ResourceManager's state and scheduler over some NodeManagers; thread-safe behind one lock."""

    def __init__(self, work_dir: Path, nodes: int = 3, node_memory: int = 8192, node_vcores: int = 8, *,
                 hdfs: HdfsCluster | None = None, scheduler: SchedulerConfig | None = None,
                 timings: Timings | None = None, node_labels: list[str] | None = None) -> None:
        self.work_dir = work_dir
        self.hdfs = hdfs
        self.scheduler = scheduler or SchedulerConfig()
        self.timings = timings or Timings()
        labels = node_labels or []
        self.nodes = [NodeManager(i, work_dir / f"nm-{i}", node_memory, node_vcores, hdfs,
                                  label=labels[i] if i < len(labels) else "") for i in range(nodes)]
        self.cluster_ts = _ms()
        self.started_on = self.cluster_ts
        self.apps: dict[str, App] = {}
        self.asks: list[Ask] = []
        self.submitted = 0
        self.rm_address = ""
        self.lock = threading.RLock()
        self._numbers = itertools.count(1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_tick = time.monotonic()

    # -- life cycle -----------------------------------------------------------

    def start(self) -> YarnCluster:
        self._thread = threading.Thread(target=self._loop, name="test-rm-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for node in self.nodes:
            for container in list(node.containers.values()):
                node.stop_container(container.container_id)
            node.web.close()

    def forget_everything(self) -> None:
        """A restart without recovery: no application survives; NodeManagers kill their containers on resync."""
        with self.lock:
            for app in self.apps.values():
                for container in list(app.containers.values()):
                    container.node.crash_container(container.container_id)
            self.apps.clear()
            self.asks.clear()
            self.cluster_ts = _ms()
            self._numbers = itertools.count(1)

    # -- client API -----------------------------------------------------------

    def new_application(self) -> dict[str, Any]:
        with self.lock:
            number = next(self._numbers)
        return {"application-id": f"application_{self.cluster_ts}_{number:04d}",
                "maximum-resource-capability": {"memory": self.scheduler.max_memory,
                                                "vCores": self.scheduler.max_vcores}}

    def submit(self, context: dict[str, Any], user: str) -> None:
        """Validate a submission context as ClientRMService does; a duplicate id is accepted and ignored."""
        app_id = str(context.get("application-id") or "")
        match = APP_ID.match(app_id)
        if not match:
            raise RemoteError("BadRequestException", f"Invalid ApplicationId: {app_id}")
        with self.lock:
            if app_id in self.apps:
                return
        spec = context.get("am-container-spec")
        if not isinstance(spec, dict):
            raise RemoteError("BadRequestException", "am-container-spec is required")
        resource = context.get("resource") or {}
        memory = int(resource.get("memory", resource.get("memory-mb", self.scheduler.min_memory)))
        vcores = int(resource.get("vCores", resource.get("vcores", 1)))
        if memory > self.scheduler.max_memory or vcores > self.scheduler.max_vcores or memory < 0 or vcores < 0:
            raise RemoteError("BadRequestException",
                              f"Invalid resource request! Requested more memory than configured max, or more vcores: "
                              f"requested <memory:{memory}, vCores:{vcores}>, maximum allowed allocation "
                              f"<memory:{self.scheduler.max_memory}, vCores:{self.scheduler.max_vcores}>")
        tags = _tags(context.get("application-tags"))
        label = str(context.get("app-node-label-expression") or context.get("am-container-node-label-expression")
                    or "")
        if label and label not in {n.label for n in self.nodes}:
            raise RemoteError("BadRequestException", f"Invalid label resource request, cluster do not contain , "
                                                     f"label= {label}")
        max_attempts = int(context.get("max-app-attempts") or self.scheduler.am_max_attempts)
        app = App(int(match.group(1)), int(match.group(2)), user, str(context.get("application-name") or "N/A"),
                  str(context.get("queue") or "default"), str(context.get("application-type") or "YARN"), tags,
                  int(context.get("priority") or 0),
                  min(max(max_attempts, 1), self.scheduler.am_max_attempts), memory, vcores,
                  _launch_context(spec), label, bool(context.get("unmanaged-AM")), started_time=_ms(),
                  rm_address=self.rm_address)
        with self.lock:
            self.apps.setdefault(app_id, app)
            self.submitted += 1

    def app(self, app_id: str) -> App:
        with self.lock:
            app = self.apps.get(app_id)
        if app is None:
            if not APP_ID.match(app_id):
                raise RemoteError("BadRequestException", f"Invalid ApplicationId: {app_id}")
            raise RemoteError("NotFoundException", f"app with id: {app_id} not found")
        return app

    def kill(self, app_id: str, user: str) -> tuple[int, str]:
        """PUT .../state KILLED: (202, current state) while the kill is under way, (200, final state) after."""
        app = self.app(app_id)
        with self.lock:
            if app.state in FINAL_STATES:
                return 200, app.state
            state = app.state
            if app.killed_by is None:
                app.killed_by = user
                for container in list(app.containers.values()):
                    container.node.stop_container(container.container_id)
            return 202, state

    def list_apps(self) -> list[App]:
        with self.lock:
            return sorted(self.apps.values(), key=lambda a: (a.cluster_ts, a.number))

    def metrics(self) -> dict[str, Any]:
        with self.lock:
            apps = list(self.apps.values())
        states = [a.state for a in apps]
        running = [n for n in self.nodes if n.state == "RUNNING"]
        used = [n.used for n in running]
        total_mb, total_cores = sum(n.memory for n in running), sum(n.vcores for n in running)
        allocated_mb, allocated_cores = sum(u[0] for u in used), sum(u[1] for u in used)
        return {"appsSubmitted": self.submitted, "appsCompleted": states.count("FINISHED"),
                "appsPending": sum(states.count(s) for s in ACTIVE_STATES[:4]), "appsRunning": states.count("RUNNING"),
                "appsFailed": states.count("FAILED"), "appsKilled": states.count("KILLED"),
                "reservedMB": 0, "availableMB": total_mb - allocated_mb, "allocatedMB": allocated_mb,
                "totalMB": total_mb, "reservedVirtualCores": 0, "availableVirtualCores": total_cores - allocated_cores,
                "allocatedVirtualCores": allocated_cores, "totalVirtualCores": total_cores,
                "containersAllocated": sum(len(a.containers) for a in apps), "containersReserved": 0,
                "containersPending": len(self.asks), "totalNodes": len(self.nodes), "activeNodes": len(running),
                "lostNodes": len([n for n in self.nodes if n.state == "LOST"]), "unhealthyNodes": 0,
                "decommissioningNodes": 0, "decommissionedNodes": 0, "rebootedNodes": 0, "shutdownNodes": 0}

    # -- the ApplicationMaster protocol (played in-process) ----------------------

    def register(self, attempt: Attempt) -> tuple[int, int]:
        with self.lock:
            attempt.registered = True
            attempt.state = "RUNNING"
            app = attempt.app
            if app.state == "ACCEPTED":
                app.state = "RUNNING"
                app.launch_time = app.launch_time or _ms()
        return self.scheduler.max_memory, self.scheduler.max_vcores

    def unregister(self, attempt: Attempt, final_status: str, diagnostics: str) -> None:
        with self.lock:
            attempt.final_status = final_status
            attempt.final_diagnostics = diagnostics
            attempt.state = "FINISHING"
            attempt.app.progress = 100.0

    def request(self, attempt: Attempt, count: int, memory: int, vcores: int,
                launch: Callable[[Container], None]) -> None:
        memory, vcores = self.scheduler.normalize(memory, vcores)
        with self.lock:
            self.asks.extend(Ask(attempt, memory, vcores, launch) for _ in range(count))

    def start_container(self, container: Container, on_complete: Callable[[Container, int, str], None]) -> None:
        container.on_complete = on_complete
        container.node.start_container(container, self._container_done)

    def am_alive(self, attempt: Attempt, container: Container) -> bool:
        return container.state != "COMPLETE" and attempt.app.attempt is attempt and attempt.app.state in ACTIVE_STATES

    # -- failures tests cause ----------------------------------------------------

    def lose_node(self, index: int) -> NodeManager:
        node = self.nodes[index]
        node.crash()
        return node

    # -- scheduler -----------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.timings.tick):
            try:
                self._tick()
            except Exception:  # keep scheduling; a bug shows in the log
                LOG.exception("test ResourceManager scheduler turn failed")

    def _tick(self) -> None:
        now = time.monotonic()
        with self.lock:
            dt, self._last_tick = now - self._last_tick, now
            for app in list(self.apps.values()):
                for container in app.containers.values():
                    app.memory_seconds += container.memory * dt
                    app.vcore_seconds += container.vcores * dt
                self._advance(app, now)
            self._schedule_ams()
            self._expire_nodes(now)
            self._allocate_asks()
            self._evict_completed()

    def _advance(self, app: App, now: float) -> None:
        if app.state in ("NEW", "NEW_SAVING", "SUBMITTED"):
            app.state = {"NEW": "NEW_SAVING", "NEW_SAVING": "SUBMITTED", "SUBMITTED": "ACCEPTED"}[app.state]
            if app.state == "ACCEPTED" and app.queue not in self.scheduler.queues:
                self._finish(app, "FAILED", "FAILED", f"Application {app.app_id} submitted by user {app.user} to "
                                                      f"unknown queue: {app.queue}")
            return
        if app.state in FINAL_STATES:
            return
        if app.killed_by is not None and not app.containers:
            self._finish(app, "KILLED", "KILLED", f"Application {app.app_id} was killed by user {app.killed_by} at "
                                                  "127.0.0.1")
            return
        attempt = app.attempt
        if attempt is None or attempt.state == "FAILED":
            return  # waits for an AM container (_schedule_ams)
        am = attempt.am_container
        if am is not None and am.state == "RUNNING" and not attempt.launched_at:
            attempt.launched_at = now  # LAUNCHED: the liveness monitor starts counting
        if am is not None and not attempt.registered and am.state == "RUNNING" \
                and now - attempt.launched_at > self.timings.am_expiry and attempt.failure is None:
            attempt.failure = f"ApplicationMaster for attempt {attempt.attempt_id} timed out"
            am.node.stop_container(am.container_id)

    def _schedule_ams(self) -> None:
        """AM containers for the applications waiting for one, FIFO by priority: the head waits for room."""
        waiting = [a for a in self.apps.values() if a.state == "ACCEPTED" and a.killed_by is None
                   and (a.attempt is None or a.attempt.state == "FAILED")]
        for app in sorted(waiting, key=lambda a: (-a.priority, a.cluster_ts, a.number)):
            if not self._launch_am(app):
                return

    def _launch_am(self, app: App) -> bool:
        memory, vcores = self.scheduler.normalize(app.am_memory, app.am_vcores)
        node = self._node_for(memory, vcores, app.label)
        if node is None:
            return False
        attempt = Attempt(app, len(app.attempts) + 1, start_time=_ms())
        app.attempts.append(attempt)
        container = Container(attempt.container_id(1), app.app_id, app.user, memory, vcores, app.am_context,
                              is_am=True, node=node)
        container.env_extra = {"APP_SUBMIT_TIME_ENV": str(app.started_time),
                               "APPLICATION_WEB_PROXY_BASE": f"/proxy/{app.app_id}",
                               "MAX_APP_ATTEMPTS": str(app.max_attempts)}
        attempt.am_container = container
        attempt.state = "LAUNCHED"
        app.containers[container.container_id] = container
        container.attempt = attempt
        self.start_container(container, self._am_done)
        threading.Thread(target=self._watch_jvm, args=(attempt, container), daemon=True,
                         name=f"am-{attempt.attempt_id}").start()
        return True

    def _node_for(self, memory: int, vcores: int, label: str) -> NodeManager | None:
        candidates = [n for n in self.nodes if n.label == label and n.fits(memory, vcores)]
        return min(candidates, key=lambda n: n.used[0], default=None)

    def _allocate_asks(self) -> None:
        remaining = []
        for ask in self.asks:
            attempt = ask.attempt
            app = attempt.app
            if app.attempt is not attempt or app.state not in ACTIVE_STATES or app.killed_by:
                continue
            node = self._node_for(ask.memory, ask.vcores, app.label)
            if node is None:
                remaining.append(ask)
                continue
            container = Container(attempt.container_id(next(attempt.sequence)), app.app_id, app.user, ask.memory,
                                  ask.vcores, LaunchContext([]), node=node)
            container.attempt = attempt
            app.containers[container.container_id] = container
            threading.Thread(target=ask.launch, args=(container,), daemon=True).start()
        self.asks = remaining

    def _expire_nodes(self, now: float) -> None:
        for node in self.nodes:
            if node.state != "LOST" or node.lost_at is None or now - node.lost_at < self.timings.nm_expiry:
                continue
            node.lost_at = None  # expired once
            for container in list(node.containers.values()):
                if container.state != "COMPLETE":
                    container.state = "COMPLETE"
                    container.done.set()
                    threading.Thread(target=self._container_done, daemon=True,
                                     args=(container, EXIT_ABORTED, "Container released on a *lost* node")).start()

    def _evict_completed(self) -> None:
        finished = [a for a in self.apps.values() if a.state in FINAL_STATES]
        for app in sorted(finished, key=lambda a: a.finished_time)[:max(0, len(finished) -
                                                                           self.scheduler.max_completed)]:
            del self.apps[app.app_id]

    # -- container ends -------------------------------------------------------

    def _container_done(self, container: Container, status: int, diagnostics: str) -> None:
        with self.lock:
            attempt = container.attempt
            attempt.app.containers.pop(container.container_id, None)
            container.node.forget(container.container_id)
        callback = container.on_complete
        if callback is not None:
            callback(container, status, diagnostics)

    def _am_done(self, container: Container, status: int, diagnostics: str) -> None:
        with self.lock:
            attempt = container.attempt
            app = attempt.app
            attempt.finished_time = _ms()
            for other in list(app.containers.values()):  # an attempt's containers end with it
                other.node.stop_container(other.container_id)
            if app.state in FINAL_STATES or app.attempt is not attempt:
                return
            if app.killed_by is not None:
                attempt.state = "KILLED"
                self._finish(app, "KILLED", "KILLED", f"Application {app.app_id} was killed by user {app.killed_by} "
                                                      "at 127.0.0.1")
                return
            if attempt.final_status is not None:
                attempt.state = "FINISHED"
                self._finish(app, "FINISHED", attempt.final_status, attempt.final_diagnostics)
                return
            attempt.state = "FAILED"
            cause = attempt.failure or (f"AM Container for {attempt.attempt_id} exited with exitCode: {status}\n"
                                        f"Failing this attempt.Diagnostics: {diagnostics}\nFor more detailed output, "
                                        f"check the application tracking page: http://{self.rm_address}/cluster/app/"
                                        f"{app.app_id} Then click on links to logs of each attempt.\n")
            if len(app.attempts) < app.max_attempts:
                app.diagnostics = cause
                app.state = "ACCEPTED"
                return
            self._finish(app, "FAILED", "FAILED",
                         f"Application {app.app_id} failed {len(app.attempts)} times (global limit ="
                         f"{self.scheduler.am_max_attempts}; local limit is ={app.max_attempts}) due to {cause}. "
                         "Failing the application.")

    def _finish(self, app: App, state: str, final_status: str, diagnostics: str) -> None:
        app.state = state
        app.final_status = final_status
        app.diagnostics = diagnostics
        app.finished_time = _ms()
        app.progress = 100.0 if state == "FINISHED" else app.progress
        for container in list(app.containers.values()):
            container.node.stop_container(container.container_id)

    # -- the stand-in JVM ----------------------------------------------------------

    def _watch_jvm(self, attempt: Attempt, container: Container) -> None:
        """Wait for the AM container's ``java`` to say how it was started, then play the class (or fail as a JVM)."""
        while not container.done.is_set():
            directory = container.directory
            if directory is not None and (directory / ".jvm-argv").exists():
                break
            time.sleep(0.01)
        else:
            return  # not a java command (or it never started): the container's exit decides
        argv = (directory / ".jvm-argv").read_bytes().split(b"\0")[:-1]
        env = dict(item.split(b"=", 1) for item in (directory / ".jvm-env").read_bytes().split(b"\0") if b"=" in item)
        args = [a.decode() for a in argv]
        environ = {k.decode(): v.decode() for k, v in env.items()}
        try:
            name, rest = main_class(args, environ, directory)
            if name != MAIN_CLASS:
                raise JvmExit(1, f"Error: the test NodeManager cannot run {name}")
            code = DistributedShellAM(self, attempt, container, rest, environ).run()
        except JvmExit as exc:
            with open(container.log_dir / "AppMaster.stderr", "a") as err:
                err.write(str(exc) + "\n")
            code = exc.code
        container.node.end_process(container.container_id, code)


def _tags(value: Any) -> list[str]:
    tags = value.get("tag", []) if isinstance(value, dict) else (value or [])
    tags = [tags] if isinstance(tags, str) else list(tags)
    if len(tags) > MAX_TAGS:
        raise RemoteError("BadRequestException", f"Too many applicationTags, a maximum of only {MAX_TAGS} are allowed!")
    out: list[str] = []
    for tag in tags:
        tag = str(tag)
        if len(tag) > MAX_TAG_LENGTH:
            raise RemoteError("BadRequestException", f"Tag {tag} is too long, maximum allowed length of a tag is "
                                                     f"{MAX_TAG_LENGTH}")
        if not tag.isascii():
            raise RemoteError("BadRequestException", f"A tag can only have ASCII characters! Invalid tag - {tag}")
        if tag.lower() not in out:
            out.append(tag.lower())
    return out


def _entries(value: Any) -> list[dict[str, Any]]:
    entries = value.get("entry", []) if isinstance(value, dict) else []
    return [entries] if isinstance(entries, dict) else list(entries)


def _launch_context(spec: dict[str, Any]) -> LaunchContext:
    commands = (spec.get("commands") or {}).get("command", [])
    commands = [commands] if isinstance(commands, str) else list(commands)
    environment = {str(e["key"]): str(e.get("value", "")) for e in _entries(spec.get("environment"))}
    resources = []
    for entry in _entries(spec.get("local-resources")):
        value = entry.get("value") or {}
        try:
            resources.append(LocalResource(str(entry["key"]), str(value["resource"]),
                                           str(value.get("type", "FILE")).upper(),
                                           str(value.get("visibility", "APPLICATION")).upper(),
                                           int(value.get("size", -1)), int(value.get("timestamp", -1))))
        except (KeyError, ValueError, TypeError) as exc:
            raise RemoteError("BadRequestException", f"invalid local resource {entry!r}: {exc}") from None
    return LaunchContext(commands, environment, resources)
