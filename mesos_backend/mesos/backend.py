"""The Mesos backend: a framework on the v1 scheduler HTTP API.

The dispatcher hands it ``TaskSpec`` objects; it queues them in a ``Placer``
(caps, fair share, priorities, delay scheduling for data locality), packs
them into offers as they come, and turns status updates into ``TaskEvent``
objects. What Marathon and Cook taught about running for months:

- the framework id is kept (``BackendState``) and re-used after a crash or a
  leader change, within a long failover timeout, so running tasks carry on;
- every (re)subscription reconciles the tasks believed active, explicitly,
  then implicitly; and again every ``reconcile_interval``;
- unusable offers are declined with a filter, offers are suppressed while
  nothing is queued and revived when work arrives;
- TASK_UNREACHABLE is waited for ``unreachable_timeout`` and then given up
  (the dispatcher reruns the task; the old one is killed if it comes back);
- a task past its timeout (counted from its TASK_RUNNING) is killed and reported FAILED (``timeout``);
- an ERROR from the master ends the subscription for good: a removed
  framework's tasks are reported lost and a new framework is registered; a
  framework another instance took over (or one the master refuses) stops,
  so two gateways never fight over one framework id;
- a task that waits says why (NOTICE events: caps, locality, fair share,
  size), and one bigger than every agent seen fails (``insufficient_resources``);
- tasks a crashed run queued but never sent to Mesos come back as lost with
  reason ``backend_restarted``, which costs them no retry;
- tasks on a persistent volume go to the agent holding it, and volumes are
  made and removed with RESERVE/CREATE and DESTROY/UNRESERVE (``volumes.py``).
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import SchedulingLimits
from ..base import Backend, BackendState, EventCallback, MemoryState, Resources, TaskEvent, TaskSpec, TaskState, Usage
from .detector import MasterDetector, create_detector
from .driver import FAILED_OVER, REMOVED, DriverTimeouts, MesosSchedulerDriver, error_kind
from .files import sandbox_path
from .offers import OfferedResources, attribute_text, parse_offer
from .placement import Offer, PendingTask, Placement, PlacementPolicy, Placer
from .scheduler import Scheduler
from .status import ACTIVE_STATES, TERMINAL_STATES, agent_id_of, describe, task_id_of, to_event
from .taskinfo import TaskOptions, Volume, id_value, task_info
from .volumes import Decision, VolumeWork

LOG = logging.getLogger(__name__)
FRAMEWORK_ID_KEY = "framework_id"
TICK_SECONDS = 0.5
RECONCILE_BATCH = 1000
# A launched task with no word from the master after this long is reconciled.
LAUNCH_SILENCE_SECONDS = 30.0
# Updates for tasks the backend does not know are kept this long (counted from
# the dispatcher's recovery), in case it is about to name them; a task still
# unknown then is killed.
UNKNOWN_GRACE_SECONDS = 5.0
# Tasks given up (unreachable) are forgotten after this long if nothing is heard.
ABANDONED_SECONDS = 3600.0
# A queued task says why it waits once it has waited this long, re-checked this often; a reason is sent once
# it has held for this many checks in a row.
NOTICE_AFTER_SECONDS = 1.0
NOTICE_INTERVAL_SECONDS = 1.0
NOTICE_STEADY = 2
EXPLAIN_BATCH = 2000
MAX_AGENTS_KEPT = 5000  # agents remembered for the console (their address, for task logs)
# The reasons a queued task gives (TaskEvent.reason of its NOTICE events).
WAITING_FOR_OFFERS = "waiting_for_offers"
INSUFFICIENT_RESOURCES = "insufficient_resources"
CAPPED = "cap"
LOCALITY = "locality"
FAIR_SHARE = "fair_share"
NOT_SUBSCRIBED = "mesos_refused"
# and VOLUME_WAIT (volumes.py): no offer carries the persistent volume the task runs on
# Attempts that never reached Mesos before a restart: the dispatcher reruns them without spending a retry.
BACKEND_RESTARTED = "backend_restarted"
_ZERO_USAGE = Usage(cpu_seconds=0.0, mem_peak_mb=0.0, wall_seconds=0.0)
_UNKNOWN_TO_MESOS = frozenset({"TASK_GONE", "TASK_UNKNOWN", "TASK_LOST"})


@dataclass
class FrameworkOptions:
    """What the framework tells the master about itself (FrameworkInfo)."""

    name: str = "wps-gateway"
    user: str = ""  # empty: the user the gateway runs as (the HTTP API fills nothing in)
    role: str = "*"
    failover_timeout: float = 7 * 24 * 3600.0
    checkpoint: bool = True
    gpus: bool = False
    principal: str | None = None

    def framework_info(self, framework_id: str | None) -> dict[str, Any]:
        capabilities = ["MULTI_ROLE", "PARTITION_AWARE", "TASK_KILLING_STATE"] + (["GPU_RESOURCES"] if self.gpus
                                                                                   else [])
        info: dict[str, Any] = {"user": self.user or _own_user(), "name": self.name, "roles": [self.role],
                                "failover_timeout": self.failover_timeout, "checkpoint": self.checkpoint,
                                "capabilities": [{"type": c} for c in capabilities]}
        if self.principal:
            info["principal"] = self.principal
        if framework_id:
            info["id"] = id_value(framework_id)
        return info


@dataclass
class SchedulingOptions:
    """How queued tasks meet offers, and how long the framework waits for trouble to pass."""

    max_cpu: float | None = None
    user_max_cpu: float | None = None
    locality_delay: float = 5.0
    offer_refuse_seconds: float = 5.0
    unreachable_timeout: float = 60.0
    reconcile_interval: float = 600.0
    task_cpu: float | None = None  # floor per task
    task_mem: float | None = None
    process_weights: dict[str, float] = field(default_factory=dict)
    user_weights: dict[str, float] = field(default_factory=dict)
    # A queued task bigger than every agent seen fails after waiting this long (agents may be busy when seen).
    oversize_grace: float = 30.0


@dataclass
class ActiveTask:
    """A task launched on (or recovered from) the cluster that has not ended yet."""

    agent_id: str | None
    timeout_from: float  # monotonic; the timeout runs from its first TASK_RUNNING (reset then), not from placement
    timeout: float | None = None
    started_at: float | None = None  # wall clock, from the RUNNING update
    kill_cause: str | None = None  # killed | timeout | unreachable
    unreachable_since: float | None = None
    heard_from: bool = False
    silence_check_at: float = 0.0  # monotonic; reconcile if nothing was heard by then
    last_state: str = ""  # the last state recorded, so repeats (reconciliation) add no history
    maybe_unsent: bool = False  # recovered without ever having run: a crash may have kept it from Mesos
    resources: Resources | None = None  # what it holds on its agent


@dataclass
class AgentSeen:
    """An agent as this framework knows it from its offers."""

    hostname: str
    url: str | None  # http://ip:port of the agent's own endpoints (its files API), from Offer.url
    attributes: dict[str, str]
    seen: float  # wall clock of its latest offer


class MesosBackend(Backend, Scheduler):
    """Runs tasks on a Mesos cluster; see the module docstring."""

    name = "mesos"
    tasks_survive_stop = True
    limits_supported = frozenset({"max_cpu", "user_max_cpu", "user_cpus", "process_weights", "user_weights"})

    def __init__(self, master: str | MasterDetector, *, state: BackendState | None = None,
                 framework: FrameworkOptions | None = None, scheduling: SchedulingOptions | None = None,
                 tasks: TaskOptions | None = None, secret: str | None = None, tls: bool = False,
                 verify: bool | str = True,
                 timeouts: DriverTimeouts | None = None) -> None:
        self.framework = framework or FrameworkOptions()
        self.scheduling = scheduling or SchedulingOptions()
        self.task_options = tasks or TaskOptions()
        self.state = state or MemoryState()
        self._detector = master if isinstance(master, MasterDetector) else create_detector(
            master, tls=tls, on_change=self._leader_changed)
        self._secret = secret
        self._verify = verify
        self._timeouts = timeouts
        self._configured = self.scheduling  # what the settings say; live limits are applied over it
        self._placer = Placer(PlacementPolicy(
            max_cpu=self.scheduling.max_cpu, user_max_cpu=self.scheduling.user_max_cpu,
            locality_delay=self.scheduling.locality_delay, process_weights=self.scheduling.process_weights,
            user_weights=self.scheduling.user_weights))
        self._agents: dict[str, AgentSeen] = {}  # every agent an offer came from
        self._offers_held = 0  # offers received and not answered yet
        self._offers_received = 0
        self._reconciled_at: float | None = None  # wall clock of the last reconciliation sent
        self._queued: dict[str, TaskSpec] = {}
        self._volumes = VolumeWork(self.state, self.framework.role, self.framework.principal, NOTICE_AFTER_SECONDS)
        self._active: dict[str, ActiveTask] = {}
        self._abandoned: dict[str, float] = {}  # given up (unreachable) -> when; killed if they show up again
        self._recovered_at: float | None = None  # when the dispatcher handed over the previous run's tasks
        self._unknown: dict[str, tuple[float, dict[str, Any]]] = {}  # task id -> (first seen, latest update)
        self._capacity: dict[str, Resources] = {}  # agent id -> the most it was seen to hold for us
        # queued task id -> (the reason last sent in a NOTICE, the reason seen lately, checks in a row seen)
        self._notices: dict[str, tuple[str, str, int]] = {}
        self._next_notice = 0.0
        self._sweep: list[PendingTask] = []  # the queue as it was when the current sweep began
        self._sweep_at = 0
        self._ended: str | None = None  # why this instance no longer talks to Mesos (ERROR, lost leadership)
        self._stale = False  # another instance runs the framework now: what this one knows is out of date
        self._lock = threading.RLock()
        self._on_event: EventCallback | None = None
        self._driver: MesosSchedulerDriver | None = None
        self._framework_id: str | None = None  # this instance's, as stored (read once: status updates need it)
        self._paused = False
        self._suppressed = False
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._next_reconcile = 0.0
        self._revive_at: float | None = None

    def __repr__(self) -> str:
        return f"<MesosBackend {self._detector!r} framework={self._framework_id}>"

    # -- Backend interface ----------------------------------------------------

    def start(self, on_event: EventCallback) -> None:
        self._on_event = on_event
        self._stop.clear()
        self._ended, self._stale = None, False
        self._start_driver()
        self._ticker = threading.Thread(target=self._tick_loop, name="mesos-backend-ticker", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        """Disconnect; the framework stays registered so its tasks keep running until a restart recovers them."""
        self._stop.set()
        driver = self._driver
        if driver is not None:
            driver.stop(failover=True)
        if self._ticker is not None:
            self._ticker.join(timeout=5)

    def leadership_lost(self) -> None:
        """The caller is no longer the active dispatcher: leave the master at once and subscribe no more, so
        that the new leader's driver is the only one using the framework id. Tasks keep running for it."""
        LOG.warning("leadership lost: the Mesos framework is left to the new leader")
        with self._lock:
            self._ended, self._stale = "this gateway is no longer the active dispatcher", True
            driver, self._driver = self._driver, None
        if driver is not None:
            driver.stop(failover=True)

    def launch(self, spec: TaskSpec) -> None:
        resources = self._with_floor(spec.resources)
        with self._lock:
            if self._stale:
                LOG.warning("task %s not queued: %s", spec.task_id, self._ended)
                return
            if spec.volume is not None:
                self._volumes.add(spec, resources, time.monotonic())
            else:
                self._queued[spec.task_id] = spec
                self._placer.add(PendingTask(spec.task_id, resources, user=spec.user, process=spec.process,
                                             priority=spec.priority, locality=tuple(spec.locality),
                                             queued_at=time.monotonic()))
            if self._suppressed and not self._paused:
                self._revive()

    def kill(self, task_id: str) -> None:
        with self._lock:
            if self._unqueue(task_id) or self._volumes.remove(task_id):
                self._emit(TaskEvent(task_id, TaskState.KILLED, reason="killed", message="killed before launch"))
                return
            active = self._active.get(task_id)
            if active is None:
                return
            active.kill_cause = active.kill_cause or "killed"
        self._send_kill(task_id, active)  # outside the lock: a slow master must not stall the dispatcher

    def recover(self, task_ids: list[str], hints: dict[str, dict] | None = None) -> None:
        """Attempts a previous run launched: keep them as active (counted against the caps, with their
        timeout from now) and ask the master what became of them. One that never ran (no agent recorded) may
        never have reached Mesos: if the master does not know it, it is reported lost (``backend_restarted``)."""
        now = time.monotonic()
        with self._lock:
            for task_id in task_ids:
                hint = (hints or {}).get(task_id, {})
                resources = Resources(hint.get("cpus") or 0.0, hint.get("mem") or 0.0)
                self._active[task_id] = ActiveTask(hint.get("agent"), now, hint.get("timeout"),
                                                   silence_check_at=now + LAUNCH_SILENCE_SECONDS,
                                                   maybe_unsent=not hint.get("agent"), resources=resources)
                self._placer.started(task_id, hint.get("user", ""), hint.get("process", ""), resources, now)
            early = [self._unknown.pop(t)[1] for t in task_ids if t in self._unknown]
            self._recovered_at = now
        for update in early:  # came in on the new stream before the dispatcher told us about them
            self.statusUpdate(self._driver, update)
        self._reconcile_explicit(task_ids)

    def active_tasks(self) -> set[str] | None:
        """What the framework holds: queued here or launched and not ended (the master's view is
        reconciled into it separately); None once another instance owns the framework."""
        with self._lock:
            if self._stale:
                return None
            return set(self._queued) | set(self._active) | self._volumes.ids()

    def queued(self) -> int:
        with self._lock:
            return self._placer.pending() + self._volumes.pending()

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
            if paused:
                self._suppress()
            elif self._wanting():
                self._revive()

    def set_limits(self, limits: SchedulingLimits) -> None:
        """Caps and weights an operator changed: the configured ones with ``limits`` over them, from the next
        offer on (tasks already placed keep running)."""
        base = self._configured
        user_cpus = {user: limits.cap(None, cpus) for user, cpus in limits.user_cpus.items()}
        scheduling = dataclasses.replace(
            base, max_cpu=limits.cap(base.max_cpu, limits.max_cpu),
            user_max_cpu=limits.cap(base.user_max_cpu, limits.user_max_cpu),
            process_weights={**base.process_weights, **limits.process_weights},
            user_weights={**base.user_weights, **limits.user_weights})
        policy = PlacementPolicy(max_cpu=scheduling.max_cpu, user_max_cpu=scheduling.user_max_cpu,
                                 locality_delay=scheduling.locality_delay,
                                 process_weights=scheduling.process_weights, user_weights=scheduling.user_weights,
                                 user_cpus=user_cpus)
        with self._lock:
            self.scheduling = scheduling
            self._placer.set_policy(policy)
            self._notices.clear()  # waiting tasks say afresh why they wait
            if self._placer.pending() and self._suppressed and not self._paused:
                self._revive()

    def set_priority(self, task_id: str, priority: int) -> bool:
        with self._lock:
            spec = self._queued.get(task_id)
            task = self._placer.remove(task_id) if spec is not None else None
            if task is None:
                return False
            spec.priority = priority
            self._placer.add(dataclasses.replace(task, priority=priority))
            return True

    def status(self) -> dict[str, Any]:
        """The framework as it sees the cluster: subscription, master, the agents offers came from (what they
        offered plus what this framework holds there), its tasks per agent, its caps."""
        now = time.time()
        with self._lock:
            driver = self._driver
            per_agent: dict[str, list[Resources]] = {}
            for active in self._active.values():
                if active.agent_id:
                    per_agent.setdefault(active.agent_id, []).append(active.resources or Resources(0, 0))
            agents = []
            for agent_id, seen in sorted(self._agents.items(), key=lambda item: item[1].hostname):
                held = per_agent.get(agent_id, [])
                capacity = self._capacity.get(agent_id, Resources(0, 0))
                agents.append({"id": agent_id, "hostname": seen.hostname, "url": seen.url,
                               "attributes": seen.attributes, "last_offer_age": round(now - seen.seen, 1),
                               "capacity": _amounts(capacity), "used": _amounts(_total(held)),
                               "tasks": len(held)})
            used = _total([a.resources or Resources(0, 0) for a in self._active.values()])
            capacity = _total(list(self._capacity.values()))
            return {
                "backend": self.name, "queued": self._placer.pending(), "running": len(self._active),
                "capacity": _amounts(capacity), "used": _amounts(used),
                "framework_id": self._framework_id, "framework_name": self.framework.name,
                "role": self.framework.role,
                "master": driver.master if driver is not None else None,
                "subscribed": bool(driver is not None and driver.connected),
                "ended": self._ended, "paused": self._paused, "suppressed": self._suppressed,
                "offers_held": self._offers_held, "offers_received": self._offers_received,
                "reconciliation_age": round(now - self._reconciled_at, 1) if self._reconciled_at else None,
                "caps": {"max_cpu": self.scheduling.max_cpu, "user_max_cpu": self.scheduling.user_max_cpu,
                         "user_cpus": dict(self._placer.policy.user_cpus),
                         "process_weights": dict(self.scheduling.process_weights),
                         "user_weights": dict(self.scheduling.user_weights)},
                "agents": agents,
            }

    # -- Scheduler callbacks --------------------------------------------------

    def registered(self, driver: MesosSchedulerDriver, framework_id: dict[str, str],
                   master_info: dict[str, Any]) -> None:
        LOG.info("registered with Mesos as framework %s", framework_id["value"])
        self._keep_framework_id(framework_id["value"])
        self._after_subscribe()

    def reregistered(self, driver: MesosSchedulerDriver, master_info: dict[str, Any]) -> None:
        LOG.info("re-registered with Mesos as framework %s", driver.framework_id)
        self._after_subscribe()

    def disconnected(self, driver: MesosSchedulerDriver) -> None:
        LOG.warning("disconnected from the Mesos master; reconnecting")

    def error(self, driver: MesosSchedulerDriver, message: str) -> None:
        """The master ended the subscription (the driver has stopped). Removed: its tasks were killed, so they
        are reported lost and a new framework is registered. Failed over: another instance owns the framework
        now; this one stops without a word to the dispatcher. Refused: an operator must fix the settings."""
        kind = error_kind(message)
        with self._lock:
            if driver is not self._driver:
                return  # an old driver's last word
            if kind == REMOVED:
                LOG.error("Mesos removed the framework: %s; its tasks are rerun under a new framework", message)
                self._keep_framework_id(None)
                lost = list(self._active)
                self._active.clear()
                for task_id in lost:
                    self._placer.finished(task_id, time.monotonic())
                    self._emit(TaskEvent(task_id, TaskState.LOST, reason="framework_removed", message=message))
                if not self._stop.is_set():
                    self._start_driver()
                return
            self._driver = None
            if kind == FAILED_OVER:
                self._ended = "another gateway instance subscribed with this framework id and runs it now"
                self._stale = True
                LOG.error("Mesos: %s; this instance stops using framework %s", message, driver.framework_id)
            else:
                self._ended = f"Mesos refused the framework: {message}"
                LOG.error("%s; fix the [mesos] settings and restart", self._ended)

    def resourceOffers(self, driver: MesosSchedulerDriver, offers: list[dict[str, Any]]) -> None:  # noqa: N802
        refuse = {"refuse_seconds": self.scheduling.offer_refuse_seconds}
        parsed = [parse_offer(o) for o in offers]
        with self._lock:
            self._offers_received += len(offers)
            self._offers_held += len(offers)
            self._learn_agents(offers)
            self._learn_capacity(parsed)
            if self._paused or self._stop.is_set() or not self._wanting():
                driver.declineOffer([o["id"] for o in offers], refuse)
                self._offers_held -= len(offers)
                self._suppress()
                return
            now = time.monotonic()
            volume_work = self._volume_round(offers, now)
            result = self._placer.place([p for p in parsed if p.offer_id not in volume_work.used], now)
            by_offer: dict[str, list[Placement]] = {}
            for placement in result.placements:
                by_offer.setdefault(placement.offer_id, []).append(placement)
            # The placed tasks are active from here on (their specs leave the queue under the lock).
            launches = [(offer_id, [self._take(p, now) for p in placements])
                        for offer_id, placements in by_offer.items()]
            idle = not self._wanting()
            if not idle:
                deadline = self._placer.next_locality_deadline(now)
                if deadline is not None:
                    self._revive_at = deadline
        # The calls go out without the lock, so launch() and kill() never wait on the master. One ACCEPT per
        # offer, its TaskInfos built just before: building them all first costs full garbage collections.
        self._send_volume_work(driver, volume_work, refuse)
        items = {o["id"]["value"]: o.get("resources") or [] for o in offers}
        for offer_id, taken in launches:
            pool = OfferedResources(items[offer_id])
            infos = [task_info(spec, agent, pool.take(resources), self.task_options)
                     for spec, agent, resources in taken]
            driver.launchTasks([id_value(offer_id)], infos, refuse)
        if result.unused_offer_ids:
            driver.declineOffer([id_value(o) for o in result.unused_offer_ids], refuse)
        with self._lock:
            self._offers_held -= len(offers)
        if idle:
            with self._lock:
                if not self._wanting():
                    self._suppress()

    def _volume_round(self, offers: list[dict[str, Any]], now: float) -> Decision:
        """Volume operations and tasks on volumes take their offers first (under the lock)."""
        decision = self._volumes.decide(offers, now)
        for launch in decision.launches:
            spec = launch.spec
            self._active[spec.task_id] = ActiveTask(launch.offer["agent_id"]["value"], now, spec.timeout,
                                                    silence_check_at=now + LAUNCH_SILENCE_SECONDS,
                                                    resources=launch.need)
            self._placer.started(spec.task_id, spec.user, spec.process, launch.need, now)
        for event in decision.events:
            self._emit(event)
        return decision

    def _send_volume_work(self, driver: MesosSchedulerDriver, decision: Decision, refuse: dict[str, Any]) -> None:
        """The calls of a volume round (outside the lock). Operations ask for no refusal filter: the agent's
        new reservation and volume are offered again at once."""
        for task_id, offer, operations in decision.accepts:
            if not driver.acceptOffers([offer["id"]], operations, {"refuse_seconds": 0.0}):
                with self._lock:
                    self._volumes.unsent(task_id)
        for launch in decision.launches:
            info = task_info(launch.spec, launch.offer["agent_id"]["value"], launch.resources, self.task_options)
            driver.launchTasks([launch.offer["id"]], [info], refuse)

    def operationStatus(self, driver: MesosSchedulerDriver, status: dict[str, Any]) -> None:  # noqa: N802
        with self._lock:
            for event in self._volumes.on_status(status):
                self._emit(event)

    def offerRescinded(self, driver: MesosSchedulerDriver, offer_id: dict[str, str]) -> None:  # noqa: N802
        LOG.info("offer %s rescinded", offer_id["value"])

    def slaveLost(self, driver: MesosSchedulerDriver, agent_id: dict[str, str]) -> None:  # noqa: N802
        LOG.warning("agent %s lost", agent_id["value"])

    def statusUpdate(self, driver: MesosSchedulerDriver, update: dict[str, Any]) -> None:  # noqa: N802
        task_id = task_id_of(update)
        state = update.get("state", "")
        with self._lock:
            active = self._active.get(task_id)
            if active is None:
                self._unexpected(task_id, update)
                return
            if active.maybe_unsent and state in _UNKNOWN_TO_MESOS and update.get("reason") == "REASON_RECONCILIATION":
                self._forget(task_id)
                self._emit(TaskEvent(task_id, TaskState.LOST, reason=BACKEND_RESTARTED,
                                     message="Mesos never heard of it: the gateway stopped before sending it"))
                return
            active.maybe_unsent = False
            active.heard_from = True
            repeated = state == active.last_state  # retransmissions and reconciliation answers
            active.last_state = state
            if not repeated:
                self._emit(TaskEvent(task_id, TaskState.NOTICE, reason=update.get("reason") or update.get("source"),
                                     message=describe(update), agent=agent_id_of(update),
                                     timestamp=float(update.get("timestamp") or time.time())))
            if state == "TASK_UNREACHABLE":
                active.unreachable_since = active.unreachable_since or time.monotonic()
                return
            active.unreachable_since = None
            if state == "TASK_RUNNING":
                if active.started_at is not None:
                    return  # seen running already
                active.started_at = float(update.get("timestamp") or time.time())
                active.timeout_from = time.monotonic()  # waiting for a slot, a fetch or an agent is not running
            event = to_event(update, active.kill_cause, active.started_at)
            if event is None:
                return
            if event.state is TaskState.STARTED:  # where the agent's files API finds its stdout and stderr
                event = dataclasses.replace(event, sandbox=self._sandbox_path(task_id))
            if state in TERMINAL_STATES or state == "TASK_UNKNOWN":
                self._forget(task_id)
            self._emit(event)

    # -- internals ------------------------------------------------------------

    def _sandbox_path(self, task_id: str) -> str | None:
        """The agent's virtual path of a command task's sandbox (the command executor's id is the task's)."""
        framework_id = self._framework_id
        return sandbox_path(framework_id, task_id) if framework_id else None

    def _keep_framework_id(self, framework_id: str | None) -> None:
        """Store the framework id (a restarted gateway subscribes with it again) and keep it at hand."""
        self.state.put(FRAMEWORK_ID_KEY, framework_id)
        self._framework_id = framework_id

    def _learn_agents(self, offers: list[dict[str, Any]]) -> None:
        """Where each agent is: its host name, attributes and the HTTP address offers give (``Offer.url``)."""
        now = time.time()
        for offer in offers:
            url = offer.get("url") or {}
            address = url.get("address") or {}
            host = address.get("ip") or address.get("hostname")
            self._agents[offer["agent_id"]["value"]] = AgentSeen(
                hostname=offer.get("hostname", ""),
                url=f"{url.get('scheme', 'http')}://{host}:{address['port']}" if host and address.get("port") else None,
                attributes={a["name"]: attribute_text(a) for a in offer.get("attributes", [])}, seen=now)
        if len(self._agents) > MAX_AGENTS_KEPT:  # agents gone for good: forget the longest unheard of
            for agent_id, _ in sorted(self._agents.items(), key=lambda item: item[1].seen)[:-MAX_AGENTS_KEPT]:
                del self._agents[agent_id]

    def _take(self, placement: Placement, now: float) -> tuple[TaskSpec, str, Resources]:
        """Move a placed task from the queue to the active tasks; returns what its TaskInfo is built from."""
        spec = self._queued.pop(placement.task_id)
        self._notices.pop(placement.task_id, None)
        self._active[spec.task_id] = ActiveTask(placement.agent_id, now, spec.timeout,
                                                silence_check_at=now + LAUNCH_SILENCE_SECONDS,
                                                resources=placement.resources)
        return spec, placement.agent_id, placement.resources

    def _unqueue(self, task_id: str) -> bool:
        """Take a task out of the queue; False if it was not queued."""
        if self._placer.remove(task_id) is None:
            return False
        self._queued.pop(task_id, None)
        self._notices.pop(task_id, None)
        return True

    def _forget(self, task_id: str) -> None:
        """An active task ended: free its share; revive offers if tasks still wait."""
        del self._active[task_id]
        self._placer.finished(task_id, time.monotonic())
        if self._wanting() and self._suppressed and not self._paused:
            self._revive()

    def _wanting(self) -> bool:
        """Whether offers are of use: tasks are queued, or volume work waits."""
        return bool(self._placer.pending() or self._volumes.pending())

    def _leader_changed(self, address: str | None) -> None:
        driver = self._driver
        if driver is not None:
            driver.leader_changed(address)

    def _start_driver(self) -> None:
        framework_id = self._framework_id = self.state.get(FRAMEWORK_ID_KEY)
        info = self.framework.framework_info(framework_id)
        self._suppressed = False
        self._driver = MesosSchedulerDriver(self, info, self._detector, principal=self.framework.principal,
                                            secret=self._secret, verify=self._verify, timeouts=self._timeouts)
        self._driver.start()

    def _after_subscribe(self) -> None:
        """Offers died with the old stream; learn what became of every task; re-send pending kills."""
        with self._lock:
            self._suppressed = False
            for task_id, active in self._active.items():
                if active.kill_cause:
                    self._send_kill(task_id, active)
            if self._paused or not self._wanting():
                self._suppress()
        self._reconcile_explicit()
        self._reconcile_implicit()

    def _reconcile_explicit(self, task_ids: Iterable[str] | None = None) -> None:
        driver = self._driver
        if driver is None or not driver.connected:
            return
        with self._lock:
            ids = list(self._active) if task_ids is None else [t for t in task_ids if t in self._active]
            items = [{"task_id": id_value(t), **({"agent_id": id_value(a)} if (a := self._active[t].agent_id) else {})}
                     for t in ids]
        for start in range(0, len(items), RECONCILE_BATCH):
            driver.reconcileTasks(items[start:start + RECONCILE_BATCH])
        self._reconciled_at = time.time()

    def _reconcile_implicit(self) -> None:
        driver = self._driver
        if driver is not None and driver.connected:
            driver.reconcileTasks([])

    def _unexpected(self, task_id: str, update: dict[str, Any]) -> None:
        """An update for a task this backend does not track (yet): keep it for a while (see ``_orphans``)."""
        state = update.get("state", "")
        if task_id in self._abandoned:
            if state in ACTIVE_STATES and self._driver is not None:  # its agent came back: stop the old copy
                self._driver.killTask(id_value(task_id), update.get("agent_id"))
            elif state not in ("TASK_UNREACHABLE", "TASK_KILLING"):
                del self._abandoned[task_id]  # ended, or the master no longer knows it
            return
        first_seen = self._unknown.get(task_id, (time.monotonic(), update))[0]
        self._unknown[task_id] = (first_seen, update)

    def _orphans(self, now: float) -> None:
        """Tasks still unknown some time after the dispatcher's recovery belong to nobody: kill those that run."""
        if self._recovered_at is None:
            return  # the dispatcher has not named the previous run's tasks yet
        for task_id, (first_seen, update) in list(self._unknown.items()):
            if now - max(first_seen, self._recovered_at) < UNKNOWN_GRACE_SECONDS:
                continue
            del self._unknown[task_id]
            if update.get("state") in ACTIVE_STATES and self._driver is not None:
                LOG.warning("killing task %s: running but not wanted (%s)", task_id, describe(update))
                self._driver.killTask(id_value(task_id), update.get("agent_id"))
        for task_id, since in list(self._abandoned.items()):
            if now - since > ABANDONED_SECONDS:
                del self._abandoned[task_id]

    def _send_kill(self, task_id: str, active: ActiveTask) -> None:
        driver = self._driver
        if driver is None or not driver.connected:
            return  # sent again after re-subscription
        grace = {"grace_period": {"nanoseconds": int(self.task_options.kill_grace_seconds * 1e9)}}
        driver.killTask(id_value(task_id), id_value(active.agent_id) if active.agent_id else None, grace)

    def _suppress(self) -> None:
        driver = self._driver
        if not self._suppressed and driver is not None and driver.connected and driver.suppressOffers():
            self._suppressed = True

    def _revive(self) -> None:
        driver = self._driver
        if driver is not None and driver.connected and driver.reviveOffers():
            self._suppressed = False

    def _emit(self, event: TaskEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def _with_floor(self, resources: Resources) -> Resources:
        cpus = max(resources.cpus, self.scheduling.task_cpu or 0.0)
        mem = max(resources.mem, self.scheduling.task_mem or 0.0)
        return Resources(cpus, mem, resources.disk, resources.gpus)

    # -- why a task waits --------------------------------------------------------

    def _learn_capacity(self, offers: list[Offer]) -> None:
        """What each agent can hold for us at least: what it offers plus what our tasks use there."""
        ours: dict[str, Resources] = {}
        for active in self._active.values():
            if active.agent_id and active.resources is not None:
                ours[active.agent_id] = ours.get(active.agent_id, Resources(0, 0)) + active.resources
        for offer in offers:
            seen = offer.resources + ours.get(offer.agent_id, Resources(0, 0))
            known = self._capacity.get(offer.agent_id)
            self._capacity[offer.agent_id] = seen if known is None else _largest(known, seen)

    def _explain(self, now: float) -> None:
        """Tell the dispatcher why queued tasks wait: a NOTICE once a reason has held for ``NOTICE_STEADY``
        checks in a row and differs from the last one sent (a reason that flickers with every offer round sends
        nothing); fail tasks bigger than every agent seen once they have waited ``oversize_grace``.

        A sweep over the queue starts at most every ``NOTICE_INTERVAL_SECONDS`` and looks at
        ``EXPLAIN_BATCH`` tasks per tick, so that a long queue never holds the lock for long."""
        if self._sweep_at >= len(self._sweep):
            if now < self._next_notice:
                return
            self._next_notice = now + NOTICE_INTERVAL_SECONDS
            self._sweep, self._sweep_at = list(self._placer.tasks()), 0
        batch = self._sweep[self._sweep_at:self._sweep_at + EXPLAIN_BATCH]
        self._sweep_at += len(batch)
        failed = []
        reasons: dict[tuple, tuple[str, str]] = {}  # tasks alike wait for the same reason: work it out once
        for task in batch:
            if now - task.queued_at < NOTICE_AFTER_SECONDS or task.task_id not in self._queued:
                continue
            local = bool(task.locality) and now < task.queued_at + self.scheduling.locality_delay
            key = (task.resources, task.user, task.locality if local else ())
            reason, message = reasons.get(key) or reasons.setdefault(key, self._why_waiting(task, local))
            if reason == INSUFFICIENT_RESOURCES and now - task.queued_at >= self.scheduling.oversize_grace:
                failed.append((task.task_id, message))
                continue
            sent, candidate, steady = self._notices.get(task.task_id, ("", "", 0))
            steady = steady + 1 if candidate == message else 1
            if steady >= NOTICE_STEADY and message != sent:
                sent = message
                self._emit(TaskEvent(task.task_id, TaskState.NOTICE, reason=reason, message=message))
            self._notices[task.task_id] = (sent, message, steady)
        for task_id, message in failed:
            self._unqueue(task_id)
            LOG.warning("task %s cannot run: %s", task_id, message)
            self._emit(TaskEvent(task_id, TaskState.FAILED, reason=INSUFFICIENT_RESOURCES, message=message,
                                 usage=_ZERO_USAGE))

    def _why_waiting(self, task: PendingTask, local: bool) -> tuple[str, str]:
        need = task.resources
        if self._ended is not None:
            return NOT_SUBSCRIBED, f"waiting: {self._ended}"
        if self._driver is None or not self._driver.connected or not self._capacity:
            return WAITING_FOR_OFFERS, "waiting for offers from Mesos"
        if self._paused:
            return WAITING_FOR_OFFERS, "waiting: dispatching is paused"
        if not any(need.fits_in(capacity) for capacity in self._capacity.values()):
            largest = _largest(*self._capacity.values())
            hint = "; no agent offers gpus ([mesos] gpus is off?)" if need.gpus and not largest.gpus else ""
            return INSUFFICIENT_RESOURCES, (f"needs {_describe(need)}, more than any agent seen holds "
                                            f"(at most {_describe(largest)}){hint}")
        policy = self.scheduling
        if policy.max_cpu and self._placer.running_cpus() + need.cpus > policy.max_cpu + 1e-9:
            return CAPPED, f"waiting: the framework's max_cpu ({policy.max_cpu:g} cpus) is in use"
        cap = self._placer.policy.user_cap(task.user)  # the user's own cap (set live) or user_max_cpu
        if cap is not None and self._placer.user_cpus(task.user) + need.cpus > cap + 1e-9:
            return CAPPED, f"waiting: the cap of user '{task.user}' ({cap:g} cpus) is in use"
        if local:
            return LOCALITY, (f"waiting up to {policy.locality_delay:g} s for an agent at "
                              f"{' or '.join(task.locality)}")
        return FAIR_SHARE, "waiting for its fair share of the free resources"

    # -- timers -----------------------------------------------------------------

    def _tick_loop(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self._tick(time.monotonic())
            except Exception:  # keep ticking; a failed turn is retried next time
                LOG.exception("mesos backend timer turn failed")

    def _tick(self, now: float) -> None:
        silent: list[str] = []
        kills: list[tuple[str, ActiveTask]] = []
        with self._lock:
            for task_id, active in list(self._active.items()):
                if self._timed_out(task_id, active, now) or self._given_up(task_id, active, now):
                    kills.append((task_id, active))
                if not active.heard_from and now >= active.silence_check_at:
                    active.silence_check_at = now + LAUNCH_SILENCE_SECONDS
                    silent.append(task_id)
            self._orphans(now)
            for event in self._volumes.expired(now):
                self._emit(event)
            if self._revive_at is not None and now >= self._revive_at and not self._paused:
                self._revive_at = None
                self._revive()
            self._explain(now)
        for task_id, active in kills:  # outside the lock, like every call that may wait on the master
            self._send_kill(task_id, active)
        if silent:
            self._reconcile_explicit(silent)
        if now >= self._next_reconcile:
            first = self._next_reconcile == 0.0
            self._next_reconcile = now + self.scheduling.reconcile_interval
            if not first:
                self._reconcile_explicit()
                self._reconcile_implicit()

    def _timed_out(self, task_id: str, active: ActiveTask, now: float) -> bool:
        """Past its timeout: mark it to be killed (and counted failed)."""
        timeout = active.timeout
        if timeout and active.started_at is not None and not active.kill_cause and now - active.timeout_from > timeout:
            LOG.warning("task %s ran past its timeout of %.0f s; killing it", task_id, timeout)
            active.kill_cause = "timeout"
            return True
        return False

    def _given_up(self, task_id: str, active: ActiveTask, now: float) -> bool:
        """Unreachable too long: report it lost (it reruns elsewhere) and mark it to be killed."""
        since = active.unreachable_since
        if since is None or now - since < self.scheduling.unreachable_timeout:
            return False
        LOG.warning("task %s unreachable for %.0f s; rerunning it elsewhere", task_id, now - since)
        del self._active[task_id]
        self._abandoned[task_id] = now
        self._placer.finished(task_id, now)
        self._emit(TaskEvent(task_id, TaskState.LOST, reason="unreachable", agent=active.agent_id,
                             message=f"agent unreachable for more than {self.scheduling.unreachable_timeout:g} s"))
        active.kill_cause = "unreachable"
        return True


def _total(resources: list[Resources]) -> Resources:
    total = Resources(0, 0)
    for item in resources:
        total = total + item
    return total


def _amounts(resources: Resources) -> dict[str, float]:
    return {"cpus": round(resources.cpus, 3), "mem": round(resources.mem, 1), "disk": round(resources.disk, 1),
            "gpus": resources.gpus}


def _largest(*resources: Resources) -> Resources:
    """Component-wise maximum."""
    return Resources(max(r.cpus for r in resources), max(r.mem for r in resources),
                     max(r.disk for r in resources), max(r.gpus for r in resources))


def _describe(resources: Resources) -> str:
    text = f"cpus:{resources.cpus:g} mem:{resources.mem:g} disk:{resources.disk:g}"
    return text + (f" gpus:{resources.gpus}" if resources.gpus else "")


def backend_options(raw: dict[str, str]) -> dict[str, Any]:
    """``create_backend("mesos", **backend_options(settings.mesos))``: the [mesos] section, typed."""
    def number(key: str) -> float | None:
        text = (raw.get(key) or "").strip()
        return float(text) if text else None

    def flag(key: str, default: bool) -> bool:
        text = (raw.get(key) or "").strip().lower()
        return default if not text else text in ("1", "true", "yes", "on")

    master = (raw.get("master") or "").strip()
    if not master:
        raise ValueError("[mesos] master (MESOS_MASTER) is required for the mesos backend")
    volumes = tuple(Volume.parse(v) for v in (raw.get("volumes") or "").split(",") if v.strip())
    principal = (raw.get("principal") or "").strip() or None
    framework = FrameworkOptions(
        name=raw.get("framework_name") or "wps-gateway", user=(raw.get("user") or "").strip() or _own_user(),
        role=raw.get("role") or "*",
        failover_timeout=number("failover_timeout") or FrameworkOptions.failover_timeout,
        checkpoint=flag("checkpoint", True), gpus=flag("gpus", False), principal=principal)
    scheduling = SchedulingOptions(
        max_cpu=number("max_cpu") or None, user_max_cpu=number("user_max_cpu") or None,
        locality_delay=_or(number("locality_delay"), 5.0),
        offer_refuse_seconds=_or(number("offer_refuse_seconds"), 5.0),
        unreachable_timeout=_or(number("unreachable_timeout"), 60.0),
        reconcile_interval=_or(number("reconcile_interval"), 600.0),
        task_cpu=number("task_cpu"), task_mem=number("task_mem"),
        process_weights=_weights(raw.get("process_weights") or ""),
        user_weights=_weights(raw.get("user_weights") or ""),
        oversize_grace=_or(number("oversize_grace"), 30.0))
    tasks = TaskOptions(containerizer=(raw.get("containerizer") or "mesos").strip().lower(),
                        image=(raw.get("task_image") or "").strip() or None, volumes=volumes,
                        user=(raw.get("user") or "").strip() or None)
    ca_file = (raw.get("ca_file") or "").strip()
    verify: bool | str = ca_file or flag("tls_verify", True)
    return {"master": master, "framework": framework, "scheduling": scheduling, "tasks": tasks,
            "secret": raw.get("secret") or None, "tls": flag("tls", bool(ca_file)), "verify": verify}


def _own_user() -> str:
    """The user the gateway runs as: FrameworkInfo.user when none is configured."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid (some containers)
        raise ValueError("[mesos] user (MESOS_USER) is empty and the user the gateway runs as has no name: "
                         "set it to the Unix user tasks run as") from None


def _weights(text: str) -> dict[str, float]:
    """``ndvi-mosaic:2, urban-footprint:1`` as {name: weight}."""
    weights = {}
    for part in text.split(","):
        if part.strip():
            name, sep, value = part.rpartition(":")
            if not sep or not name.strip():
                raise ValueError(f"weight {part.strip()!r} is not name:weight")
            weights[name.strip()] = float(value)
    return weights


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
