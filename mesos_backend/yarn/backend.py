"""The YARN backend: one application per task attempt, on the ResourceManager REST API.

The dispatcher hands it ``TaskSpec`` objects; it keeps them in its own queue
(by priority, then arrival) and hands YARN at most ``max_pending``
applications that have not started yet and at most ``max_cpu`` vcores of
tasks, so that the queue stays cheap to reorder and to cancel. A task costs
the RM two calls to start (new-application, submit) and, at most, one to
learn how it ended; its state otherwise comes from one shared poll per
``poll_interval`` for all of this gateway's applications (by its tag and the
active states). An application that drops out of the active list is looked
up with the finished ones (one call for many) or alone; one the RM no longer
knows (404, after ``max-completed-applications``) is reported LOST, so the
dispatcher reruns it.

Like Mesos reconciliation: after a restart the attempts the store believes
active are found by name and tag among the RM's applications and adopted
(still running: no event) or reported (ended, or LOST if the RM has no
trace); applications with this gateway's tag that nobody wants are killed.
While the RM cannot be reached nothing is concluded: ``active_tasks`` says
None, and submissions wait (a submission is idempotent by application id).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from ..base import Backend, BackendError, EventCallback, Resources, SchedulingLimits, TaskEvent, TaskSpec, TaskState
from ..fetch import source_path
from .http import HadoopError, HadoopHttp, Unavailable, base_urls, kerberos_auth
from .resources import LocalResource, ResourceStore
from .rest import ACTIVE_STATES, FINAL_STATES, ResourceManagerClient
from .results import results_dir_setting
from .status import describe, node_of, terminal_event
from .submission import ApplicationOptions, launch_escaped, submission_context, tags, task_command, write_utf
from .webhdfs import WebHdfsClient

LOG = logging.getLogger(__name__)
NOT_STARTED = ("SUBMITTING", "RETRY", "NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED")
# Below this many applications missing from the active list, each is looked up alone.
FINISHED_QUERY_THRESHOLD = 3
APP_ID_PREFIX = "application_"


@dataclass
class SchedulingOptions:
    """How much of the queue is handed to YARN, and how often YARN is asked how things stand."""

    max_cpu: float | None = None  # vcores of this gateway's task containers at most; None: no cap
    max_pending: int = 50  # applications submitted and not running yet, at most
    task_cpu: float | None = None  # floors per task
    task_mem: float | None = None
    poll_interval: float = 1.0
    submit_threads: int = 4


@dataclass
class Tracked:
    """A task handed to YARN (or being handed), until its terminal event."""

    spec: TaskSpec
    memory: int
    vcores: int
    app_id: str | None = None
    state: str = "SUBMITTING"  # then RETRY (RM unreachable) or the application's YARN state
    listed_after: float = 0.0  # monotonic: an active-list poll sent after this includes it
    started_at: float | None = None  # monotonic, when seen RUNNING: its timeout counts from here
    started_ms: int | None = None  # the RM's startedTime
    kill_cause: str | None = None  # killed | timeout
    kill_sent: bool = False


class YarnBackend(Backend):
    """Runs tasks as YARN applications; see the module docstring."""

    name = "yarn"
    tasks_survive_stop = True  # applications run on when the gateway stops; the next start adopts them
    limits_supported = frozenset({"max_cpu"})
    CLUSTER_VIEW_SECONDS = 15.0  # how long the nodes and cluster metrics shown by ``status`` are reused

    def __init__(self, resource_managers: str | list[str], *, user: str | None = None, auth: httpx.Auth | None = None,
                 verify: bool | str = True, webhdfs: str | list[str] | None = None, am_jar: str = "",
                 staging_dir: str = "", application: ApplicationOptions | None = None,
                 scheduling: SchedulingOptions | None = None, timeout: float = 10.0) -> None:
        self.application = application or ApplicationOptions()
        self.scheduling = scheduling or SchedulingOptions()
        if self.application.am_command is None and not am_jar:
            raise BackendError("the DistributedShell ApplicationMaster needs [yarn] am_jar (where its jar is)")
        if not staging_dir:
            raise BackendError("[yarn] staging_dir is required (an hdfs:// or file:// directory)")
        self.am_jar = am_jar
        self.staging_dir = staging_dir.rstrip("/")
        self.rm_http = HadoopHttp(base_urls(resource_managers), user=user, auth=auth, verify=verify, timeout=timeout,
                                  name="ResourceManager")
        self.rm = ResourceManagerClient(self.rm_http)
        self.hdfs_http = HadoopHttp(base_urls(webhdfs), user=user, auth=auth, verify=verify, timeout=timeout,
                                    name="NameNode") if webhdfs else None
        self.store = ResourceStore(WebHdfsClient(self.hdfs_http) if self.hdfs_http else None)
        self._queue: list[tuple[int, int, str]] = []
        self._queued: dict[str, TaskSpec] = {}
        self._sequence = itertools.count()
        self._tracked: dict[str, Tracked] = {}
        self._by_app: dict[str, str] = {}
        self._recovery: list[tuple[list[str], dict[str, dict]]] = []
        self._recovered = False
        self._orphans_killed: set[str] = set()
        self._reachable = False
        self._paused = False
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._on_event: EventCallback | None = None
        self._poller: threading.Thread | None = None
        self._workers: ThreadPoolExecutor | None = None
        self._published: dict[tuple[str, int, int], str] = {}
        self._configured = self.scheduling  # what the settings say; live limits are applied over it
        self._cluster_view: tuple[float, dict[str, Any]] = (-math.inf, {})

    def __repr__(self) -> str:
        return f"<YarnBackend {self.rm_http.current} tag={self.application.tag}>"

    # -- Backend interface ----------------------------------------------------

    def start(self, on_event: EventCallback) -> None:
        self._on_event = on_event
        self._stop.clear()
        self._workers = ThreadPoolExecutor(self.scheduling.submit_threads, thread_name_prefix="yarn-submit")
        self._poller = threading.Thread(target=self._poll_loop, name="yarn-backend-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        """Stop polling and submitting; applications keep running and are adopted by the next start."""
        self._stop.set()
        self._wake.set()
        if self._poller is not None:
            self._poller.join(timeout=10)
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
        self.rm_http.close()
        if self.hdfs_http is not None:
            self.hdfs_http.close()

    def launch(self, spec: TaskSpec) -> None:
        with self._lock:
            self._queued[spec.task_id] = spec
            heapq.heappush(self._queue, (-spec.priority, next(self._sequence), spec.task_id))
        self._wake.set()

    def kill(self, task_id: str) -> None:
        with self._lock:
            if self._queued.pop(task_id, None) is not None:  # its heap entry is skipped when it comes up
                self._emit(TaskEvent(task_id, TaskState.KILLED, reason="killed", message="killed before submission"))
                return
            tracked = self._tracked.get(task_id)
            if tracked is None:
                return
            tracked.kill_cause = tracked.kill_cause or "killed"
        self._wake.set()

    def recover(self, task_ids: list[str], hints: dict[str, dict] | None = None) -> None:
        """Resolved by the poller as soon as the RM answers: adopted, reported ended, or LOST."""
        with self._lock:
            self._recovery.append((list(task_ids), dict(hints or {})))
        self._wake.set()

    def active_tasks(self) -> set[str] | None:
        with self._lock:
            if not self._reachable or self._recovery:
                return None
            return set(self._queued) | set(self._tracked)

    def queued(self) -> int:
        with self._lock:
            return len(self._queued)

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
        self._wake.set()

    def set_limits(self, limits: SchedulingLimits) -> None:
        """A live ``max_cpu`` (the vcores of this gateway's containers), over the configured one."""
        with self._lock:
            self.scheduling = dataclasses.replace(self.scheduling,
                                                  max_cpu=limits.cap(self._configured.max_cpu, limits.max_cpu))
        self._wake.set()

    def set_priority(self, task_id: str, priority: int) -> bool:
        """A task not handed to YARN yet takes its new place in the gateway's queue (the old entry is skipped)."""
        with self._lock:
            spec = self._queued.get(task_id)
            if spec is None:
                return False
            self._queued[task_id] = dataclasses.replace(spec, priority=priority)
            heapq.heappush(self._queue, (-priority, next(self._sequence), task_id))
        self._wake.set()
        return True

    def status(self) -> dict[str, Any]:
        """The gateway's queue and applications, the ResourceManager it talks to, and the cluster's nodes and
        metrics (asked of the RM at most every ``CLUSTER_VIEW_SECONDS``)."""
        with self._lock:
            tracked = list(self._tracked.values())
            view = {
                "backend": self.name, "queued": len(self._queued),
                "running": sum(1 for t in tracked if t.state == "RUNNING"),
                "submitted": sum(1 for t in tracked if t.state in NOT_STARTED),
                "used": {"cpus": float(sum(t.vcores for t in tracked)), "mem": float(sum(t.memory for t in tracked))},
                "resource_manager": self.rm_http.current, "rm_reachable": self._reachable,
                "queue": self.application.queue, "paused": self._paused,
                "caps": {"max_cpu": self.scheduling.max_cpu, "max_pending": self.scheduling.max_pending},
            }
        return {**view, **self._cluster()}

    def _cluster(self) -> dict[str, Any]:
        at, cached = self._cluster_view
        if time.monotonic() - at < self.CLUSTER_VIEW_SECONDS:
            return cached
        try:
            metrics = self.rm.metrics()
            nodes = [{"id": n.get("id"), "hostname": n.get("nodeHostName"), "http": n.get("nodeHTTPAddress"),
                      "state": n.get("state"), "rack": n.get("rack"), "labels": n.get("nodeLabels") or [],
                      "capacity": {"cpus": n.get("usedVirtualCores", 0) + n.get("availableVirtualCores", 0),
                                   "mem": n.get("usedMemoryMB", 0) + n.get("availMemoryMB", 0)},
                      "used": {"cpus": n.get("usedVirtualCores", 0), "mem": n.get("usedMemoryMB", 0)},
                      "containers": n.get("numContainers", 0)} for n in self.rm.nodes()]
        except (Unavailable, HadoopError, ValueError, KeyError) as exc:
            # kept as long as a good answer: each try at a RM that is down takes its whole timeout
            self._cluster_view = (time.monotonic(), {"cluster_error": str(exc)})
            return self._cluster_view[1]
        cached = {"nodes": nodes,
                  "capacity": {"cpus": float(metrics.get("totalVirtualCores", 0)),
                               "mem": float(metrics.get("totalMB", 0))},
                  "cluster": {key: metrics.get(key) for key in (
                      "appsPending", "appsRunning", "containersAllocated", "containersPending", "allocatedMB",
                      "availableMB", "allocatedVirtualCores", "availableVirtualCores", "activeNodes",
                      "lostNodes", "unhealthyNodes")}}
        self._cluster_view = (time.monotonic(), cached)
        return cached

    # -- the poller -------------------------------------------------------------

    def _poll_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._turn()
                failures = 0
            except Unavailable as exc:
                with self._lock:
                    self._reachable = False
                failures += 1
                if failures == 1 or failures % 60 == 0:
                    LOG.warning("YARN: %s; trying again", exc)
            except Exception:  # keep polling; a failed turn is retried
                LOG.exception("YARN backend turn failed")
            self._wake.wait(self.scheduling.poll_interval)
            self._wake.clear()

    def _turn(self) -> None:
        if self._recovery:
            self._resolve_recovery()
        self._send_kills()
        began = time.monotonic()
        active = self.rm.apps(states=ACTIVE_STATES, tags=(self.application.tag,),
                              types=(self.application.application_type,), kind="GET apps (active)")
        with self._lock:
            self._reachable = True
        seen = set()
        orphans = []
        for app in active:
            seen.add(app["id"])
            with self._lock:
                task_id = self._by_app.get(app["id"])
                tracked = self._tracked.get(task_id) if task_id else None
                if tracked is not None:
                    self._update(tracked, app)
                elif self._recovered and app.get("name") not in self._queued and app["id"] not in self._orphans_killed:
                    orphans.append(app)
        for app in orphans:
            LOG.warning("killing YARN application %s (%s): it carries this gateway's tag but no task wants it",
                        app["id"], app.get("name"))
            self.rm.kill(app["id"])
            self._orphans_killed.add(app["id"])
        with self._lock:
            missing = [t for t in self._tracked.values() if t.app_id and t.state not in ("SUBMITTING", "RETRY")
                       and t.listed_after < began and t.app_id not in seen]
        if missing:
            self._resolve_missing(missing)
        self._check_timeouts()
        self._submit_queued()

    def _resolve_missing(self, missing: list[Tracked]) -> None:
        """Applications no longer active: their final reports, from one query for many or one call each."""
        reports: dict[str, dict[str, Any]] = {}
        if len(missing) > FINISHED_QUERY_THRESHOLD:
            starts = [t.started_ms for t in missing]
            since = min(starts) if all(s is not None for s in starts) else None
            for app in self.rm.apps(states=FINAL_STATES, tags=(self.application.tag,), finished_since=since,
                                    kind="GET apps (finished)"):
                reports[app["id"]] = app
        for tracked in missing:
            app = reports.get(tracked.app_id) or self.rm.app(tracked.app_id)
            with self._lock:
                if self._tracked.get(tracked.spec.task_id) is not tracked:
                    continue
                if app is None:
                    self._end(tracked, TaskEvent(
                        tracked.spec.task_id, TaskState.LOST, reason="application_unknown", sandbox=tracked.app_id,
                        message=f"the ResourceManager no longer knows {tracked.app_id}"))
                elif app.get("state") in FINAL_STATES:
                    self._end(tracked, terminal_event(tracked.spec.task_id, app, tracked.kill_cause))
                else:
                    self._update(tracked, app)  # listed late (its state changed as the list was made)

    def _update(self, tracked: Tracked, app: dict[str, Any]) -> None:
        """A new report of a tracked application (under the lock)."""
        state = app.get("state", "")
        tracked.started_ms = app.get("startedTime") or tracked.started_ms
        if state in FINAL_STATES:
            self._end(tracked, terminal_event(tracked.spec.task_id, app, tracked.kill_cause))
            return
        if state == tracked.state:
            return
        tracked.state = state
        self._emit(TaskEvent(tracked.spec.task_id, TaskState.NOTICE, reason=state, message=describe(app),
                             agent=node_of(app)))
        if state == "RUNNING" and tracked.started_at is None:
            tracked.started_at = time.monotonic()
            launched = app.get("launchTime") or 0
            self._emit(TaskEvent(tracked.spec.task_id, TaskState.STARTED, agent=node_of(app), sandbox=app["id"],
                                 message=describe(app), **({"timestamp": launched / 1000.0} if launched else {})))

    def _end(self, tracked: Tracked, event: TaskEvent) -> None:
        """Forget a tracked task and report how it ended (under the lock)."""
        self._tracked.pop(tracked.spec.task_id, None)
        if tracked.app_id:
            self._by_app.pop(tracked.app_id, None)
        if "changed on src filesystem" in event.message:
            self.store.forget()
        self._emit(event)
        self._wake.set()  # room for the next submission

    def _send_kills(self) -> None:
        with self._lock:
            due = [t for t in self._tracked.values() if t.kill_cause and not t.kill_sent and t.app_id
                   and t.state not in ("SUBMITTING", "RETRY")]
        for tracked in due:
            self.rm.kill(tracked.app_id)
            tracked.kill_sent = True

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        with self._lock:
            for tracked in self._tracked.values():
                timeout = tracked.spec.timeout
                if timeout and tracked.started_at and not tracked.kill_cause and now - tracked.started_at > timeout:
                    LOG.warning("task %s ran past its timeout of %.0f s; killing %s", tracked.spec.task_id, timeout,
                                tracked.app_id)
                    tracked.kill_cause = "timeout"
                    self._wake.set()

    # -- submission -------------------------------------------------------------

    def _submit_queued(self) -> None:
        batch: list[Tracked] = []
        with self._lock:
            if self._paused:
                return
            pending = sum(1 for t in self._tracked.values() if t.state in NOT_STARTED)
            cpu = sum(t.vcores for t in self._tracked.values())
            for tracked in self._tracked.values():
                if tracked.state == "RETRY":
                    tracked.state = "SUBMITTING"
                    batch.append(tracked)
            while self._queue and pending < self.scheduling.max_pending:
                _, _, task_id = self._queue[0]
                spec = self._queued.get(task_id)
                if spec is None or spec.priority != -self._queue[0][0]:
                    heapq.heappop(self._queue)  # killed while queued, or moved by a priority change
                    continue
                memory, vcores = self._size(spec)
                cap = self.scheduling.max_cpu
                if cap and cpu + vcores > cap and cpu > 0:
                    break
                heapq.heappop(self._queue)
                del self._queued[task_id]
                tracked = Tracked(spec, memory, vcores)
                self._tracked[task_id] = tracked
                batch.append(tracked)
                pending += 1
                cpu += vcores
        for tracked in batch:
            self._workers.submit(self._submit, tracked)

    def _submit(self, tracked: Tracked) -> None:
        spec = tracked.spec
        try:
            resources = self._resources(spec)
            if tracked.app_id is None:
                app_id, _ = self.rm.new_application()
                with self._lock:
                    tracked.app_id = app_id
                    self._by_app[app_id] = spec.task_id
            context = submission_context(tracked.app_id, spec, tracked.memory, tracked.vcores, self.application,
                                         resources)
            self.rm.submit(context)
        except Unavailable as exc:
            LOG.warning("submitting task %s waits: %s", spec.task_id, exc)
            with self._lock:
                self._reachable = False
                if tracked.kill_cause:
                    self._end(tracked, TaskEvent(spec.task_id, TaskState.KILLED, reason="killed",
                                                 message="killed before submission"))
                else:
                    tracked.state = "RETRY"
            return
        except (HadoopError, BackendError, OSError) as exc:
            reason = "rejected" if isinstance(exc, HadoopError) else "launch_failed"
            with self._lock:
                self._end(tracked, TaskEvent(spec.task_id, TaskState.FAILED, reason=reason, sandbox=tracked.app_id,
                                             message=f"YARN did not take the application: {exc}"))
            return
        with self._lock:
            tracked.state = "NEW"
            tracked.listed_after = time.monotonic()
        self._emit(TaskEvent(spec.task_id, TaskState.NOTICE, reason="SUBMITTED",
                             message=f"submitted as {tracked.app_id} to queue {self.application.queue} "
                                     f"({tracked.memory} MB, {tracked.vcores} vcores)"))

    def _size(self, spec: TaskSpec) -> tuple[int, int]:
        memory = max(spec.resources.mem, self.scheduling.task_mem or 0.0)
        cpus = max(spec.resources.cpus, self.scheduling.task_cpu or 0.0)
        return max(1, math.ceil(memory)), max(1, math.ceil(cpus))

    def _resources(self, spec: TaskSpec) -> list[LocalResource]:
        """The AM container's local resources: DistributedShell's jar and the task's command, or the bundles."""
        if self.application.am_command is None:
            command = write_utf(launch_escaped(task_command(spec)))
            url = self.store.publish(f"{self.staging_dir}/commands", command)
            return [self.store.resource("AppMaster.jar", self.am_jar, visibility="PUBLIC"),
                    self.store.resource("shellCommands", url, visibility="APPLICATION")]
        resources = []
        for index, uri in enumerate(spec.uris):
            url = self._publish_file(uri.value)
            resources.append(self.store.resource(f"bundle{index}" if uri.extract else url.rsplit("/", 1)[-1], url,
                                                 type="ARCHIVE" if uri.extract else "FILE", visibility="PUBLIC"))
        return resources

    def _publish_file(self, value: str) -> str:
        """A task URI on the bundle store (``<staging_dir>/bundles/<its versioned name>``), uploaded once."""
        if value.startswith(self.staging_dir + "/"):
            return value
        path = source_path(value)
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._published.get(key)
        if known:
            return known
        url = f"{self.staging_dir}/bundles/{path.name}"
        try:
            self.store.status(url)
        except BackendError:
            self.store.forget()
            url = self.store.publish_named(url, path.read_bytes())
        with self._lock:
            self._published[key] = url
        return url

    # -- recovery -----------------------------------------------------------------

    def _resolve_recovery(self) -> None:
        with self._lock:
            batches, self._recovery = self._recovery, []
        try:
            active = self.rm.apps(states=ACTIVE_STATES, tags=(self.application.tag,), kind="GET apps (recovery)")
            by_name = {app.get("name"): app for app in active}
            for task_ids, hints in batches:
                for task_id in task_ids:
                    self._recover_one(task_id, hints.get(task_id) or {}, by_name)
        except Unavailable:
            with self._lock:
                self._recovery = batches + self._recovery  # all of it again once the RM answers
            raise
        with self._lock:
            self._recovered = True

    def _recover_one(self, task_id: str, hint: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            if task_id in self._tracked or task_id in self._queued:
                return
        app = by_name.get(task_id)
        sandbox = hint.get("sandbox") or ""
        if app is None and sandbox.startswith(APP_ID_PREFIX):
            app = self.rm.app(sandbox)
        if app is None:
            spec = TaskSpec(task_id, [], labels={})
            found = self.rm.apps(tags=(tags(spec, self.application.tag)[-1],), kind="GET apps (recovery by task)")
            app = next((a for a in found if a.get("name") == task_id), None)
        with self._lock:
            if app is None:
                self._emit(TaskEvent(task_id, TaskState.LOST, reason="application_unknown",
                                     message="no YARN application for this attempt: it never reached the "
                                             "ResourceManager, or the ResourceManager forgot it"))
                return
            resources = Resources(hint.get("cpus") or 1.0, hint.get("mem") or 0.0)
            spec = TaskSpec(task_id, [], resources=resources, timeout=hint.get("timeout"))
            tracked = Tracked(spec, math.ceil(resources.mem), max(1, math.ceil(resources.cpus)), app_id=app["id"],
                              state="RECOVERED")
            started = hint.get("started")  # wall clock, when the store saw it start: its timeout counts from there
            if isinstance(started, int | float) and app.get("state") == "RUNNING":
                tracked.started_at = time.monotonic() - max(0.0, time.time() - started)
                tracked.state = "RUNNING"  # seen running before: no second STARTED
            self._tracked[task_id] = tracked
            self._by_app[app["id"]] = task_id
            LOG.info("adopting YARN application %s (%s) for task %s", app["id"], app.get("state"), task_id)
            self._update(tracked, app)

    # -- events -------------------------------------------------------------------

    def _emit(self, event: TaskEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)


def backend_options(raw: dict[str, str], staging_default: str = "") -> dict[str, Any]:
    """``create_backend("yarn", **backend_options(settings.yarn))``: the [yarn] section, typed."""
    def text(key: str) -> str:
        return (raw.get(key) or "").strip()

    def number(key: str, default: float | None = None) -> float | None:
        value = text(key)
        if not value:
            return default
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"[yarn] {key} must be a number, not {value!r}") from None

    def flag(key: str, default: bool) -> bool:
        value = text(key).lower()
        return default if not value else value in ("1", "true", "yes", "on")

    resource_managers = text("resource_manager")
    if not resource_managers:
        raise ValueError("[yarn] resource_manager (YARN_RESOURCE_MANAGER) is required for the yarn backend")
    base_urls(resource_managers, "https" if flag("tls", False) else "http")
    auth_kind = (text("auth") or "simple").lower()
    if auth_kind not in ("simple", "kerberos"):
        raise ValueError(f"[yarn] auth must be simple or kerberos, not {auth_kind!r}")
    am_command = text("am_command") or None
    am_jar = text("am_jar")
    if am_command is None and not am_jar:
        raise ValueError("[yarn] am_jar (YARN_AM_JAR) is required: where DistributedShell's jar is "
                         "(hdfs://... or file://...), or set am_command for a site's own ApplicationMaster")
    staging = text("staging_dir") or staging_default
    for name, url in (("am_jar", am_jar), ("staging_dir", staging)):
        if url and not url.startswith(("hdfs://", "file://")):
            raise ValueError(f"[yarn] {name} must be an hdfs:// or file:// URL, not {url!r}")
    results_dir_setting(raw)
    uses_hdfs = any(u.startswith("hdfs://") for u in (am_jar, staging))
    if uses_hdfs and not text("webhdfs"):
        raise ValueError("[yarn] webhdfs (the NameNode's HTTP address) is required for hdfs:// resources")
    application = ApplicationOptions(
        queue=text("queue") or "default", priority=int(number("priority", 0) or 0),
        application_type=text("application_type") or "WPS", tag=(text("application_tag") or "wps-gateway").lower(),
        am_memory=int(number("am_memory", 512) or 512), am_vcores=int(number("am_vcores", 1) or 1),
        am_java_opts=text("am_java_opts") or "-Xmx256m", am_command=am_command,
        **({"am_classpath": text("am_classpath")} if text("am_classpath") else {}),
        label_attribute=text("locality_label"))
    scheduling = SchedulingOptions(
        max_cpu=number("max_cpu") or None, max_pending=int(number("max_pending", 50) or 50),
        task_cpu=number("task_cpu"), task_mem=number("task_mem"),
        poll_interval=number("poll_interval", 1.0) or 1.0)
    ca_file = text("ca_file")
    verify: bool | str = ca_file or flag("tls_verify", True)
    scheme = "https" if flag("tls", bool(ca_file)) else "http"
    return {
        "resource_managers": base_urls(resource_managers, scheme),
        "webhdfs": base_urls(text("webhdfs"), scheme) if text("webhdfs") else None,
        "user": None if auth_kind == "kerberos" else (text("user") or None),
        "auth": kerberos_auth() if auth_kind == "kerberos" else None,
        "verify": verify, "am_jar": am_jar, "staging_dir": staging, "application": application,
        "scheduling": scheduling,
    }
