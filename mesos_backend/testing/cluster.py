"""The state a Mesos master keeps, and what it does with calls: the test master's core.

Kept apart from HTTP (``master.py``) so that two masters can share one
cluster, as a leader and a standby share the replicated registry: on
failover the streams close, outstanding offers die, and frameworks must
re-subscribe to the new leader with their framework id.

Behaviour follows ``shared/reference/mesos-yarn-protocols.md``: offers per
agent, decline filters, SUPPRESS/REVIVE, tasks validated against the offer,
reliable status updates (uuid, acknowledgement, retransmission with backoff,
later updates held back), explicit and implicit reconciliation, unreachable
agents, failover timeout, ERROR for a removed framework.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base import Resources
from ..mesos.offers import SCALARS, resources_of
from . import proto
from .agent import TestAgent

LOG = logging.getLogger(__name__)
CLOSE = object()  # put on a stream's queue to end it


class CallError(Exception):
    """A call the master refuses; ``status`` is the HTTP status, the message its plain-text body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class MasterTimings:
    heartbeat_interval: float = 15.0
    allocation_interval: float = 1.0
    update_retry: float = 10.0  # first retransmission of an unacknowledged update
    update_retry_max: float = 600.0


@dataclass(eq=False)
class Stream:
    stream_id: str
    framework_id: str
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    silenced: bool = False  # test hook: keep the connection open but send nothing

    def send(self, event: dict[str, Any]) -> None:
        self.events.put(event)

    def close(self) -> None:
        self.events.put(CLOSE)


@dataclass
class PendingUpdate:
    status: dict[str, Any]
    next_send: float
    delay: float


@dataclass
class TaskRecord:
    task_id: str
    framework_id: str
    agent_id: str
    resources: Resources
    state: str = "TASK_STAGING"
    status: dict[str, Any] | None = None  # latest status, for reconciliation
    kill_grace: float | None = None  # from the TaskInfo's kill_policy


@dataclass
class Framework:
    framework_id: str
    info: dict[str, Any]
    stream: Stream | None = None
    suppressed: bool = False
    filters: dict[str, float] = field(default_factory=dict)  # agent id -> refuse until
    disconnected_at: float | None = None
    # task id -> unacknowledged updates, oldest first; only the head is sent.
    updates: dict[str, deque[PendingUpdate]] = field(default_factory=dict)

    @property
    def capabilities(self) -> set[str]:
        return {c.get("type", "") for c in self.info.get("capabilities", [])}

    @property
    def partition_aware(self) -> bool:
        return "PARTITION_AWARE" in self.capabilities

    @property
    def failover_timeout(self) -> float:
        return float(self.info.get("failover_timeout", 0.0))


@dataclass
class Offer:
    offer_id: str
    framework_id: str
    agent_id: str
    resources: Resources


class Cluster:
    """Agents, frameworks, offers and tasks; thread-safe behind one lock."""

    def __init__(self, agents: list[TestAgent], timings: MasterTimings | None = None, *,
                 strict: bool = True) -> None:
        self.timings = timings or MasterTimings()
        self.agents = {a.agent_id: a for a in agents}
        self.frameworks: dict[str, Framework] = {}
        self.removed: set[str] = set()
        self.offers: dict[str, Offer] = {}
        self.tasks: dict[str, TaskRecord] = {}  # "framework/task" -> record
        self.strict = strict and proto.available()
        self.protocol_errors: list[str] = []  # events this master emitted that the protos refuse
        self.launched: list[str] = []  # every task id launched, in order (tests check for doubles)
        # Test hook: the next N ACCEPTs cross a RESCIND of their offers on the wire.
        self.rescind_next = 0
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="test-master-allocator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.lock:
            for framework in self.frameworks.values():
                if framework.stream:
                    framework.stream.close()
            for agent in self.agents.values():
                agent.crash()

    def _loop(self) -> None:
        while not self._stop.wait(min(self.timings.allocation_interval, 0.2)):
            now = time.monotonic()
            with self.lock:
                self._expire_frameworks(now)
                self._retransmit(now)
                if now >= getattr(self, "_next_allocation", 0.0):
                    self._allocate(now)
                    self._next_allocation = now + self.timings.allocation_interval

    # -- subscription ---------------------------------------------------------

    def subscribe(self, call: dict[str, Any], principal: str | None) -> tuple[Stream, list[dict[str, Any]]]:
        """Register or re-register a framework; returns its new stream and the first events."""
        info = dict(call.get("subscribe", {}).get("framework_info") or {})
        top_id = (call.get("framework_id") or {}).get("value")
        info_id = (info.get("id") or {}).get("value")
        if top_id != info_id:
            raise CallError(400, "'framework_id' differs from 'subscribe.framework_info.id'")
        if principal is not None and info.get("principal") not in (None, principal):
            raise CallError(403, f"Authenticated principal '{principal}' does not match principal "
                                 f"'{info.get('principal')}' set in `FrameworkInfo`")
        with self.lock:
            if info_id and info_id in self.removed:
                stream = Stream(str(uuid.uuid4()), info_id)
                return stream, [{"type": "ERROR", "error": {"message": "Framework has been removed"}}]
            framework_id = info_id or f"{uuid.uuid4()}-0000"
            info["id"] = {"value": framework_id}
            framework = self.frameworks.get(framework_id)
            if framework is None:
                framework = self.frameworks[framework_id] = Framework(framework_id, info)
            else:
                framework.info = info
                if framework.stream is not None:
                    framework.stream.close()  # a new subscription replaces the old connection
            stream = Stream(str(uuid.uuid4()), framework_id)
            framework.stream = stream
            framework.disconnected_at = None
            framework.suppressed = False
            subscribed = {"type": "SUBSCRIBED", "subscribed": {
                "framework_id": {"value": framework_id},
                "heartbeat_interval_seconds": self.timings.heartbeat_interval}}
            # Unacknowledged updates are sent again on the new stream.
            now = time.monotonic()
            for pending in framework.updates.values():
                if pending:
                    pending[0].next_send = now
            return stream, [subscribed]

    def disconnected(self, stream: Stream) -> None:
        """The stream's connection ended; the failover timeout starts."""
        with self.lock:
            framework = self.frameworks.get(stream.framework_id)
            if framework is None or framework.stream is not stream:
                return
            framework.stream = None
            framework.disconnected_at = time.monotonic()
            self._rescind_all(framework, send=False)

    def drop_connections(self) -> None:
        """Close every subscriber's stream (a network blip, a master restart)."""
        with self.lock:
            for framework in self.frameworks.values():
                if framework.stream is not None:
                    framework.stream.close()

    def silence_streams(self, silenced: bool = True) -> None:
        """Keep connections open but send nothing, not even heartbeats (a half-dead link)."""
        with self.lock:
            for framework in self.frameworks.values():
                if framework.stream is not None:
                    framework.stream.silenced = silenced

    def _expire_frameworks(self, now: float) -> None:
        for framework in list(self.frameworks.values()):
            if framework.disconnected_at is None:
                continue
            if now - framework.disconnected_at >= framework.failover_timeout:
                LOG.info("framework %s removed: failover timeout expired", framework.framework_id)
                self._remove_framework(framework)

    def _remove_framework(self, framework: Framework) -> None:
        for key, record in list(self.tasks.items()):
            if record.framework_id == framework.framework_id:
                agent = self.agents.get(record.agent_id)
                if agent is not None:
                    agent.kill(record.task_id, 0)
                    agent.tasks.pop(record.task_id, None)
                del self.tasks[key]
        self._rescind_all(framework, send=False)
        if framework.stream is not None:
            framework.stream.close()
        del self.frameworks[framework.framework_id]
        self.removed.add(framework.framework_id)

    # -- calls ----------------------------------------------------------------

    def call(self, framework_id: str, call: dict[str, Any]) -> None:
        """Every call but SUBSCRIBE. The caller has checked the stream id."""
        kind = call["type"]
        with self.lock:
            framework = self.frameworks[framework_id]
            handler = getattr(self, f"_on_{kind.lower()}", None)
            if handler is None:
                raise CallError(400, f"Unsupported call type '{kind}'")
            handler(framework, call.get(kind.lower()) or {})

    def stream_of(self, framework_id: str) -> Stream | None:
        with self.lock:
            framework = self.frameworks.get(framework_id)
            return framework.stream if framework else None

    def _on_teardown(self, framework: Framework, _: dict[str, Any]) -> None:
        self._remove_framework(framework)

    def _on_suppress(self, framework: Framework, _: dict[str, Any]) -> None:
        framework.suppressed = True

    def _on_revive(self, framework: Framework, _: dict[str, Any]) -> None:
        framework.suppressed = False
        framework.filters.clear()

    def _on_decline(self, framework: Framework, body: dict[str, Any]) -> None:
        refuse = float((body.get("filters") or {}).get("refuse_seconds", 5.0))
        for offer_id in body.get("offer_ids", []):
            offer = self.offers.get(offer_id["value"])
            if offer is not None and offer.framework_id == framework.framework_id:
                del self.offers[offer.offer_id]
                framework.filters[offer.agent_id] = time.monotonic() + refuse

    def _on_acknowledge(self, framework: Framework, body: dict[str, Any]) -> None:
        task_id = body["task_id"]["value"]
        pending = framework.updates.get(task_id)
        if not pending or pending[0].status.get("uuid") != body.get("uuid"):
            return  # a stale or duplicate acknowledgement is ignored, as the agent does
        pending.popleft()
        if pending:
            pending[0].next_send = time.monotonic()
        else:
            del framework.updates[task_id]
            record = self.tasks.get(f"{framework.framework_id}/{task_id}")
            if record is not None and record.state in TERMINAL:
                del self.tasks[f"{framework.framework_id}/{task_id}"]
        self._retransmit(time.monotonic())

    def _on_kill(self, framework: Framework, body: dict[str, Any]) -> None:
        task_id = body["task_id"]["value"]
        record = self.tasks.get(f"{framework.framework_id}/{task_id}")
        agent_id = (body.get("agent_id") or {}).get("value") or (record.agent_id if record else None)
        if record is None or record.state in TERMINAL or not self.agents[record.agent_id].reachable:
            # As a real master: a kill it cannot carry out is answered as a reconciliation would be.
            state = record.state if record is not None and record.state not in TERMINAL else \
                self._unknown_task_state(framework, agent_id)
            self._master_update(framework, task_id, agent_id, state, "Cannot kill the task: "
                                "it is unknown or its agent is unreachable", "REASON_RECONCILIATION")
            return
        grace = _grace_seconds(body.get("kill_policy"))
        grace = record.kill_grace if grace is None else grace
        if "TASK_KILLING_STATE" in framework.capabilities:
            self._agent_update(framework, record, "TASK_KILLING", "", None)
        self.agents[record.agent_id].kill(task_id, grace)

    def _unknown_task_state(self, framework: Framework, agent_id: str | None) -> str:
        """What a master says of a task it does not know, by what it knows of the agent."""
        agent = self.agents.get(agent_id) if agent_id else None
        if not framework.partition_aware:
            return "TASK_LOST"
        if agent is None:
            return "TASK_UNKNOWN"
        return "TASK_GONE" if agent.reachable else "TASK_UNREACHABLE"

    def _on_reconcile(self, framework: Framework, body: dict[str, Any]) -> None:
        wanted = body.get("tasks", [])
        if not wanted:  # implicit: every task the master knows that is not terminal
            for record in self.tasks.values():
                if record.framework_id == framework.framework_id and record.state not in TERMINAL:
                    self._reconciled(framework, record)
            return
        for item in wanted:
            task_id = item["task_id"]["value"]
            record = self.tasks.get(f"{framework.framework_id}/{task_id}")
            if record is not None:
                self._reconciled(framework, record)
                continue
            agent_id = (item.get("agent_id") or {}).get("value")
            state = self._unknown_task_state(framework, agent_id)
            self._master_update(framework, task_id, agent_id, state, "Reconciliation: task is unknown",
                                "REASON_RECONCILIATION")

    def _reconciled(self, framework: Framework, record: TaskRecord) -> None:
        message = (record.status or {}).get("message", "Reconciliation: latest task state")
        self._master_update(framework, record.task_id, record.agent_id, record.state, message,
                            "REASON_RECONCILIATION")

    def _on_accept(self, framework: Framework, body: dict[str, Any]) -> None:
        if self.rescind_next > 0:
            self.rescind_next -= 1
            for offer_id in body.get("offer_ids", []):
                self.rescind(offer_id["value"])
        offers = []
        valid = True
        for offer_id in body.get("offer_ids", []):
            offer = self.offers.pop(offer_id["value"], None)
            if offer is None or offer.framework_id != framework.framework_id:
                valid = False
            else:
                offers.append(offer)
        agents = {o.agent_id for o in offers}
        launches = [t for op in body.get("operations", []) if op.get("type") == "LAUNCH"
                    for t in (op.get("launch") or {}).get("task_infos", [])]
        refuse = float((body.get("filters") or {}).get("refuse_seconds", 5.0))
        if not valid or len(agents) != 1:
            for info in launches:
                state = "TASK_DROPPED" if framework.partition_aware else "TASK_LOST"
                self._master_update(framework, info["task_id"]["value"], info.get("agent_id", {}).get("value"),
                                    state, "Task launched with invalid offers: Offer is no longer valid",
                                    "REASON_INVALID_OFFERS")
            return
        agent = self.agents[agents.pop()]
        available = Resources(0, 0, 0, 0)
        for offer in offers:
            available = available + offer.resources
        for info in launches:
            problem = self._invalid_task(framework, info, agent, available)
            if problem:
                self._master_update(framework, info["task_id"]["value"], agent.agent_id, "TASK_ERROR", problem,
                                    "REASON_TASK_INVALID")
                continue
            resources = resources_of(info.get("resources", []))
            available = available - resources
            record = TaskRecord(info["task_id"]["value"], framework.framework_id, agent.agent_id, resources,
                                kill_grace=_grace_seconds(info.get("kill_policy")))
            self.tasks[f"{framework.framework_id}/{record.task_id}"] = record
            self.launched.append(record.task_id)
            agent.launch(framework.framework_id, info, resources, self._reporter(framework.framework_id))
        if refuse > 0:
            framework.filters[agent.agent_id] = time.monotonic() + refuse

    def _invalid_task(self, framework: Framework, info: dict[str, Any], agent: TestAgent,
                      available: Resources) -> str | None:
        task_id = info["task_id"]["value"]
        existing = self.tasks.get(f"{framework.framework_id}/{task_id}")
        if existing is not None:
            return f"Task has duplicate ID: {task_id}"
        if info["agent_id"]["value"] != agent.agent_id:
            return f"Task uses agent ID {info['agent_id']['value']} which differs from the offer's {agent.agent_id}"
        if ("command" in info) == ("executor" in info):
            return "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
        names = {r.get("name") for r in info.get("resources", [])}
        unknown = names - set(SCALARS) - {"ports"}
        if unknown:
            return f"Task uses resources {sorted(unknown)} that the offer does not have"
        for resource in info.get("resources", []):
            if resource.get("type") != "SCALAR" and resource.get("name") in SCALARS:
                return f"Invalid resource '{resource.get('name')}': not a SCALAR"
            if resource.get("name") in SCALARS and float((resource.get("scalar") or {}).get("value", 0)) <= 0:
                return f"Invalid resource '{resource.get('name')}': not a positive value"
        wanted = resources_of(info.get("resources", []))
        if wanted.cpus <= 0 and wanted.mem <= 0:
            return "Task uses no resources"
        if not wanted.fits_in(available):
            return (f"Task uses more resources {_describe(wanted)} than available {_describe(available)}")
        return None

    # -- status updates -------------------------------------------------------

    def _reporter(self, framework_id: str):
        def report(task_id: str, state: str, message: str, reason: str | None) -> None:
            with self.lock:
                framework = self.frameworks.get(framework_id)
                record = self.tasks.get(f"{framework_id}/{task_id}")
                if framework is None or record is None:
                    return
                self._agent_update(framework, record, state, message, reason)
        return report

    def _agent_update(self, framework: Framework, record: TaskRecord, state: str, message: str,
                      reason: str | None) -> None:
        """A reliable update from the agent: carries a uuid, is retransmitted until acknowledged."""
        status = self._status(record.task_id, record.agent_id, state, message, reason, "SOURCE_EXECUTOR")
        status["uuid"] = base64.b64encode(uuid.uuid4().bytes).decode()
        status["executor_id"] = {"value": record.task_id}
        record.state = state
        record.status = status
        pending = framework.updates.setdefault(record.task_id, deque())
        pending.append(PendingUpdate(status, time.monotonic(), self.timings.update_retry))
        if len(pending) == 1:
            self._send_head(framework, record.task_id, time.monotonic())

    def _master_update(self, framework: Framework, task_id: str, agent_id: str | None, state: str, message: str,
                       reason: str) -> None:
        """An update the master makes up (reconciliation, invalid launches): no uuid, no acknowledgement."""
        status = self._status(task_id, agent_id, state, message, reason, "SOURCE_MASTER")
        self._emit(framework, {"type": "UPDATE", "update": {"status": status}})

    @staticmethod
    def _status(task_id: str, agent_id: str | None, state: str, message: str, reason: str | None,
                source: str) -> dict[str, Any]:
        status: dict[str, Any] = {"task_id": {"value": task_id}, "state": state, "source": source,
                                  "timestamp": time.time()}
        if agent_id:
            status["agent_id"] = {"value": agent_id}
        if message:
            status["message"] = message
        if reason:
            status["reason"] = reason
        return status

    def _send_head(self, framework: Framework, task_id: str, now: float) -> None:
        head = framework.updates[task_id][0]
        head.next_send = now + head.delay
        head.delay = min(head.delay * 2, self.timings.update_retry_max)
        self._emit(framework, {"type": "UPDATE", "update": {"status": head.status}})

    def _retransmit(self, now: float) -> None:
        for framework in self.frameworks.values():
            if framework.stream is None:
                continue
            for task_id, pending in list(framework.updates.items()):
                if pending and pending[0].next_send <= now:
                    self._send_head(framework, task_id, now)

    def _emit(self, framework: Framework, event: dict[str, Any]) -> None:
        self.check_event(event)
        if framework.stream is not None:
            framework.stream.send(event)

    def check_event(self, event: dict[str, Any]) -> None:
        """Every event is checked against the protos; a mistake here is a test failure, not a quiet pass."""
        if not self.strict:
            return
        try:
            proto.validate_event(event)
        except proto.ProtocolError as exc:
            LOG.error("test master emitted an invalid event: %s", exc)
            self.protocol_errors.append(str(exc))

    # -- offers -------------------------------------------------------------

    def _allocate(self, now: float) -> None:
        offered = {}
        for offer in self.offers.values():
            offered[offer.agent_id] = offered.get(offer.agent_id, Resources(0, 0, 0, 0)) + offer.resources
        for framework in self.frameworks.values():
            if framework.stream is None or framework.suppressed:
                continue
            batch = []
            for agent in self.agents.values():
                if not agent.reachable or framework.filters.get(agent.agent_id, 0.0) > now:
                    continue
                free = agent.resources - agent.used - offered.get(agent.agent_id, Resources(0, 0, 0, 0))
                if free.cpus < 0.01 or free.mem < 32:
                    continue
                offer = Offer(str(uuid.uuid4()), framework.framework_id, agent.agent_id, _clamp(free))
                self.offers[offer.offer_id] = offer
                offered[agent.agent_id] = offered.get(agent.agent_id, Resources(0, 0, 0, 0)) + offer.resources
                batch.append(self._offer_json(offer, agent, framework))
            if batch:
                self._emit(framework, {"type": "OFFERS", "offers": {"offers": batch}})


    @staticmethod
    def _offer_json(offer: Offer, agent: TestAgent, framework: Framework) -> dict[str, Any]:
        role = framework.info.get("role", "*")
        allocation = {"role": role}
        resources = [{"name": name, "type": "SCALAR", "scalar": {"value": value}, "allocation_info": allocation}
                     for name, value in zip(SCALARS, (offer.resources.cpus, offer.resources.mem,
                                                      offer.resources.disk, offer.resources.gpus), strict=True)
                     if value > 0]
        return {"id": {"value": offer.offer_id}, "framework_id": {"value": framework.framework_id},
                "agent_id": {"value": agent.agent_id}, "hostname": agent.hostname, "resources": resources,
                "attributes": [_attribute(k, v) for k, v in agent.attributes.items()],
                "allocation_info": allocation}

    def rescind(self, offer_id: str) -> None:
        """Take back an outstanding offer (test hook; a real master does it on timeouts and agent loss)."""
        with self.lock:
            offer = self.offers.pop(offer_id, None)
            if offer is None:
                return
            framework = self.frameworks.get(offer.framework_id)
            if framework is not None:
                self._emit(framework, {"type": "RESCIND", "rescind": {"offer_id": {"value": offer_id}}})

    def _rescind_all(self, framework: Framework, send: bool) -> None:
        for offer in [o for o in self.offers.values() if o.framework_id == framework.framework_id]:
            del self.offers[offer.offer_id]
            if send:
                self._emit(framework, {"type": "RESCIND", "rescind": {"offer_id": {"value": offer.offer_id}}})

    # -- agents -------------------------------------------------------------

    def lose_agent(self, agent_id: str) -> None:
        """The agent's machine dies: its tasks die, its offers are rescinded, and frameworks learn
        that it is unreachable (TASK_UNREACHABLE when partition-aware, TASK_LOST otherwise)."""
        with self.lock:
            agent = self.agents[agent_id]
            agent.crash()
            for offer in [o for o in self.offers.values() if o.agent_id == agent_id]:
                self.rescind(offer.offer_id)
            for key, record in list(self.tasks.items()):
                if record.agent_id != agent_id or record.state in TERMINAL:
                    continue
                framework = self.frameworks.get(record.framework_id)
                if framework is None:
                    continue
                framework.updates.pop(record.task_id, None)
                if framework.partition_aware:
                    record.state = "TASK_UNREACHABLE"
                    status = self._status(record.task_id, agent_id, "TASK_UNREACHABLE", "Agent is unreachable",
                                          "REASON_AGENT_REMOVED", "SOURCE_MASTER")
                    status["unreachable_time"] = {"nanoseconds": int(time.time() * 1e9)}
                    record.status = status
                    self._emit(framework, {"type": "UPDATE", "update": {"status": status}})
                else:
                    del self.tasks[key]
                    self._master_update(framework, record.task_id, agent_id, "TASK_LOST", "Agent is unreachable",
                                        "REASON_AGENT_REMOVED")
            for framework in self.frameworks.values():
                self._emit(framework, {"type": "FAILURE", "failure": {"agent_id": {"value": agent_id}}})

    def snapshot(self) -> dict[str, Any]:
        """What an operator sees on /state: agents, frameworks, tasks (for tests and the CLI)."""
        with self.lock:
            return {
                "agents": [{"id": a.agent_id, "hostname": a.hostname, "reachable": a.reachable,
                            "resources": _describe(a.resources), "used": _describe(a.used),
                            "attributes": a.attributes, "fetches": a.fetches, "cache_hits": a.cache_hits}
                           for a in self.agents.values()],
                "frameworks": [{"id": f.framework_id, "name": f.info.get("name"), "connected": f.stream is not None}
                               for f in self.frameworks.values()],
                "tasks": [{"id": t.task_id, "framework_id": t.framework_id, "agent_id": t.agent_id, "state": t.state}
                          for t in self.tasks.values()],
            }


TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED",
                      "TASK_GONE", "TASK_GONE_BY_OPERATOR"})


def make_agents(count: int, work_dir: Path, resources: Resources, attributes: dict[str, str] | None = None,
                hostname: str = "127.0.0.1") -> list[TestAgent]:
    """``count`` agents; ``{i}`` in an attribute value is replaced by the agent's index."""
    agents = []
    for index in range(count):
        attrs = {k: v.replace("{i}", str(index)) for k, v in (attributes or {}).items()}
        agent_id = f"{uuid.uuid4()}-S{index}"
        agents.append(TestAgent(agent_id, hostname, resources, attrs, work_dir / f"agent-{index}"))
    return agents


def _attribute(name: str, value: str) -> dict[str, Any]:
    try:
        return {"name": name, "type": "SCALAR", "scalar": {"value": float(value)}}
    except ValueError:
        return {"name": name, "type": "TEXT", "text": {"value": value}}


def _clamp(resources: Resources) -> Resources:
    return Resources(round(max(resources.cpus, 0), 3), round(max(resources.mem, 0), 3),
                     round(max(resources.disk, 0), 3), max(resources.gpus, 0))


def _describe(resources: Resources) -> str:
    text = f"cpus:{resources.cpus:g}; mem:{resources.mem:g}; disk:{resources.disk:g}"
    return text + (f"; gpus:{resources.gpus}" if resources.gpus else "")


def _grace_seconds(kill_policy: dict[str, Any] | None) -> float | None:
    nanos = ((kill_policy or {}).get("grace_period") or {}).get("nanoseconds")
    return int(nanos) / 1e9 if nanos is not None else None
