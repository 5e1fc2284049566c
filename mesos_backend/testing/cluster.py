"""What a Mesos master does with calls, agents and time: the test master's core.

Kept apart from HTTP (``master.py``) so that several masters can share one
cluster, as a leader and its standbys share the agents: on a leader change
the streams close, outstanding offers die, the new leader learns the tasks
from the agents, and frameworks re-subscribe to it with their framework id.

Behaviour follows ``shared/reference/mesos-yarn-protocols.md``: subscription
rules and refusals (ERROR events), offers shared between frameworks with
refusal filters on declined resources (``allocator.py``), roles, static and
dynamic reservations and persistent volumes (RESERVE, CREATE, DESTROY,
UNRESERVE: ``operations.py``), task validation (TASK_ERROR), reliable status
updates of tasks and operations (uuid,
acknowledgement, retransmission with backoff, later updates held back by the
agent), explicit and implicit reconciliation, kills, agents that stop, come
back or die (unreachable after a ping timeout), failover timeout, teardown.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from . import operations as offer_operations
from . import proto
from .agent import TestAgent
from .allocator import AgentView, Allocator, Candidate, RefusalFilter, refuse_seconds, roles_of
from .resources import UNRESERVED, Bag, ResourceError, describe, from_json, to_json
from .state import (
    CLOSE,
    MAX_FAILOVER_TIMEOUT,
    MAX_ID_LENGTH,
    OPERATION_KEY,
    TERMINAL,
    AgentRecord,
    CallError,
    Framework,
    MasterFlags,
    MasterTimings,
    Offer,
    PendingUpdate,
    Stream,
    TaskRecord,
)

__all__ = ["CLOSE", "CallError", "Cluster", "Framework", "MasterFlags", "MasterTimings", "Offer", "Stream",
           "make_agents", "status_json"]
LOG = logging.getLogger(__name__)


class Cluster:
    """Agents, frameworks, offers and tasks; thread-safe behind one lock."""

    def __init__(self, agents: list[TestAgent], timings: MasterTimings | None = None, *,
                 flags: MasterFlags | None = None, strict: bool = True) -> None:
        self.timings = timings or MasterTimings()
        self.flags = flags or MasterFlags()
        self.agents: dict[str, AgentRecord] = {a.agent_id: AgentRecord(a) for a in agents}
        self.frameworks: dict[str, Framework] = {}
        self.removed: set[str] = set()
        self.offers: dict[str, Offer] = {}
        self.tasks: dict[tuple[str, str], TaskRecord] = {}  # (framework, task) -> record
        # (framework, operation id) -> the latest status of an operation that asked for feedback
        self.operations: dict[tuple[str, str], dict[str, Any]] = {}
        self.allocator = Allocator(self.flags.weights)
        self.strict = strict and proto.available()
        self.protocol_errors: list[str] = []  # events this master emitted that the protos refuse
        self.internal_errors: list[str] = []  # exceptions in the master itself (a bug of the double)
        self.call_notes: list[tuple[str, str]] = []  # (framework name, what a master silently ignored)
        self.launched: list[str] = []  # every task id launched, in order (tests check for doubles)
        self.subscriptions = 0  # SUBSCRIBE calls that reached the cluster (tests check for retry loops)
        self.rescind_next = 0  # test hook: the next N ACCEPTs cross a RESCIND of their offers on the wire
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_allocation = 0.0

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        for record in self.agents.values():
            if record.agent.process_up:
                record.agent.files.open()
        self._thread = threading.Thread(target=self._loop, name="test-master-allocator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.lock:
            for framework in self.frameworks.values():
                if framework.stream:
                    framework.stream.close()
            for record in self.agents.values():
                record.agent.crash()

    def _loop(self) -> None:
        while not self._stop.wait(min(self.timings.allocation_interval, 0.1)):
            now = time.monotonic()
            try:
                with self.lock:
                    self._expire_frameworks(now)
                    self._expire_agents(now)
                    self._retransmit(now)
                    if now >= self._next_allocation:
                        self._allocate(now)
                        self._next_allocation = now + self.timings.allocation_interval
            except Exception as exc:  # the master keeps running; the test sees the bug
                self.internal_error(exc)

    def internal_error(self, exc: BaseException) -> None:
        LOG.error("test master: internal error", exc_info=exc)
        self.internal_errors.append(f"{type(exc).__name__}: {exc}")

    def new_leader(self) -> None:
        """A leader change: the new leader knows no connection, no offer and no removed framework; it
        learns the frameworks and their tasks from the agents, which re-register with it (those whose
        process is down cannot, and are marked unreachable after the ping timeout)."""
        with self.lock:
            now = time.monotonic()
            self.offers.clear()
            self.removed.clear()
            for framework in self.frameworks.values():
                if framework.stream is not None:
                    framework.stream.close()
                framework.stream = None
                framework.disconnected_at = None  # the failover timeout is not persisted
                framework.filters.clear()
                framework.suppressed.clear()
            for record in self.agents.values():
                if record.state in ("active", "disconnected", "recovered"):
                    record.state = "active" if record.agent.process_up else "recovered"
                    record.since = now

    # -- subscription ---------------------------------------------------------

    def subscribe(self, call: dict[str, Any], principal: str | None) -> tuple[Stream, list[dict[str, Any]]]:
        """Register or re-register a framework; returns its new stream and the first events.

        Validation failures raise CallError (400); refusals come back as an ERROR event on the stream."""
        body = call.get("subscribe") or {}
        info = dict(body.get("framework_info") or {})
        top_id = (call.get("framework_id") or {}).get("value")
        info_id = (info.get("id") or {}).get("value")
        if top_id != info_id:
            raise CallError(400, "Failed to validate scheduler::Call: 'framework_id' differs from "
                                 "'subscribe.framework_info.id'")
        if principal is not None and info.get("principal") not in (None, principal):
            raise CallError(400, f"Authenticated principal '{principal}' does not match principal "
                                 f"'{info.get('principal')}' set in `FrameworkInfo`")
        with self.lock:
            self.subscriptions += 1
            refusal = self._refusal(info, info_id, body, principal)
            if refusal is not None:
                LOG.info("subscription refused: %s", refusal)
                return Stream(str(uuid.uuid4()), info_id or ""), [_error(refusal)]
            framework_id = info_id or f"{uuid.uuid4()}-0000"
            info["id"] = {"value": framework_id}
            info.setdefault("failover_timeout", 0.0)
            info.setdefault("checkpoint", False)
            framework = self.frameworks.get(framework_id)
            if framework is None:
                if principal is not None:
                    info.setdefault("principal", principal)
                framework = self.frameworks[framework_id] = Framework(framework_id, info, principal)
            else:
                # user and checkpoint cannot change: the old values win, silently
                info["user"] = framework.info.get("user", info.get("user"))
                info["checkpoint"] = framework.info.get("checkpoint", info.get("checkpoint"))
                framework.info = info
                old = framework.stream
                if old is not None:  # the newest connection wins; the old one is told and closed
                    old.send(_error("Framework failed over"))
                    old.close()
                self._drop_offers(framework)
            stream = Stream(str(uuid.uuid4()), framework_id)
            framework.stream = stream
            framework.disconnected_at = None
            framework.suppressed = set(body.get("suppressed_roles") or [])
            framework.offer_constraints = (body.get("offer_constraints") or {}).get("role_constraints") or {}
            now = time.monotonic()
            for record in self.agents.values():  # agents resend unacknowledged updates at once
                for (owner, _), pending in record.updates.items():
                    if owner == framework_id and pending:
                        pending[0].next_send = now
            subscribed = {"type": "SUBSCRIBED", "subscribed": {
                "framework_id": {"value": framework_id},
                "heartbeat_interval_seconds": float(self.timings.heartbeat_interval)}}
            return stream, [subscribed, {"type": "HEARTBEAT"}]

    def _refusal(self, info: dict[str, Any], info_id: str | None, body: dict[str, Any],
                 principal: str | None) -> str | None:
        """Why the master refuses this subscription (an ERROR event), or None."""
        if info_id and info_id in self.removed:
            return "Framework has been removed"
        capabilities = {c.get("type") for c in info.get("capabilities") or []}
        multi_role = "MULTI_ROLE" in capabilities
        if multi_role and "role" in info:
            return "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
        if not multi_role and info.get("roles"):
            return "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
        roles = roles_of(info, multi_role)
        if len(set(roles)) != len(roles):
            return f"'FrameworkInfo.roles' contains duplicate items: {roles}"
        for role in roles:
            if not role or role in (".", "..") or role.startswith("-") or any(c in role for c in "/\\ \t\n"):
                return f"Role '{role}' is invalid"
        if self.flags.roles is not None:
            unknown = sorted(set(roles) - self.flags.roles - {UNRESERVED})
            if unknown:
                return f"Roles {{{', '.join(unknown)}}} are not present in the master's --roles"
        timeout = info.get("failover_timeout", 0.0)
        if timeout < 0 or timeout > MAX_FAILOVER_TIMEOUT:
            return f"The framework failover_timeout ({timeout}) is invalid"
        suppressed = set(body.get("suppressed_roles") or [])
        if not suppressed <= set(roles):
            return f"Suppressed roles {sorted(suppressed - set(roles))} are not contained in the set of roles"
        if info.get("user") == "root" and not self.flags.root_submissions:
            return "User 'root' is not allowed to run frameworks without --root_submissions set"
        known = self.frameworks.get(info_id or "")
        if known is not None and known.info.get("principal") != info.get("principal", principal):
            return "Changing framework's principal is not allowed."
        return None

    def disconnected(self, stream: Stream) -> None:
        """The stream's connection ended; its offers are rescinded and the failover timeout starts."""
        with self.lock:
            framework = self.frameworks.get(stream.framework_id)
            if framework is None or framework.stream is not stream:
                return
            framework.stream = None
            framework.disconnected_at = time.monotonic()
            self._drop_offers(framework)

    def drop_connections(self) -> None:
        """Close every subscriber's stream (a network blip)."""
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
            if framework.disconnected_at is not None and now - framework.disconnected_at >= framework.failover_timeout:
                LOG.info("framework %s removed: failover timeout expired", framework.framework_id)
                self._remove_framework(framework)

    def _remove_framework(self, framework: Framework) -> None:
        """TEARDOWN or failover timeout: tasks killed without updates, stream closed without ERROR."""
        for key in [k for k in self.tasks if k[0] == framework.framework_id]:
            del self.tasks[key]
        for record in self.agents.values():
            record.agent.shut_down(framework.framework_id)
            for key in [k for k in record.updates if k[0] == framework.framework_id]:
                del record.updates[key]
            for key in [k for k in record.pending_kills if k[0] == framework.framework_id]:
                del record.pending_kills[key]
        self._drop_offers(framework)
        if framework.stream is not None:
            framework.stream.close()
        self.operations = {k: v for k, v in self.operations.items() if k[0] != framework.framework_id}
        del self.frameworks[framework.framework_id]
        self.removed.add(framework.framework_id)

    # -- calls ----------------------------------------------------------------

    def framework_for_call(self, framework_id: str, stream_id: str | None, principal: str | None) -> Framework:
        """The checks of a non-SUBSCRIBE call, in the master's order; CallError when one fails."""
        framework = self.frameworks.get(framework_id)
        if framework is None:
            raise CallError(400, "Framework cannot be found")
        if principal is not None and framework.info.get("principal") not in (None, principal):
            raise CallError(400, f"Authenticated principal '{principal}' does not match principal "
                                 f"'{framework.info.get('principal')}' set in `FrameworkInfo`")
        if framework.stream is None:
            raise CallError(403, "Framework is not subscribed")
        if not stream_id:
            raise CallError(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        if framework.stream.stream_id != stream_id:
            raise CallError(400, f"The stream ID '{stream_id}' included in this request didn't match the stream "
                                 f"ID currently associated with framework ID {framework_id}")
        return framework

    def call(self, framework_id: str, call: dict[str, Any], stream_id: str | None,
             principal: str | None) -> tuple[int, str]:
        """Every call but SUBSCRIBE; returns the HTTP status and body (202 and nothing, mostly)."""
        kind = call["type"]
        with self.lock:
            framework = self.framework_for_call(framework_id, stream_id, principal)
            if kind == "UPDATE_FRAMEWORK":
                return self._update_framework(framework, call["update_framework"])
            handler = getattr(self, f"_on_{kind.lower()}", None)
            if handler is not None:
                handler(framework, call.get(kind.lower()) or {})
            return 202, ""

    def stream_of(self, framework_id: str) -> Stream | None:
        with self.lock:
            framework = self.frameworks.get(framework_id)
            return framework.stream if framework else None

    def note(self, framework_name: str, notes: list[str]) -> None:
        """What a master silently ignored in a call (unknown keys, unknown enum names): a framework bug."""
        self.call_notes.extend((framework_name, note) for note in notes)

    def _on_teardown(self, framework: Framework, _: dict[str, Any]) -> None:
        self._remove_framework(framework)

    def teardown(self, framework_id: str) -> None:
        """The operator's teardown (``/master/teardown``); CallError 400 for an unknown framework."""
        with self.lock:
            framework = self.frameworks.get(framework_id)
            if framework is None:
                raise CallError(400, f"No framework found with specified ID: {framework_id}")
            self._remove_framework(framework)

    def _on_suppress(self, framework: Framework, body: dict[str, Any]) -> None:
        framework.suppressed |= set(body.get("roles") or framework.roles)

    def _on_revive(self, framework: Framework, body: dict[str, Any]) -> None:
        roles = set(body.get("roles") or framework.roles)
        framework.suppressed -= roles
        framework.filters.clear()

    def _on_decline(self, framework: Framework, body: dict[str, Any]) -> None:
        refuse = refuse_seconds(body.get("filters"))
        for offer_id in body.get("offer_ids") or []:
            offer = self.offers.get(offer_id.get("value"))
            if offer is not None and offer.framework_id == framework.framework_id:
                del self.offers[offer.offer_id]
                self._refuse(framework, offer.agent_id, offer.resources, refuse)

    def _refuse(self, framework: Framework, agent_id: str, resources: Bag, seconds: float) -> None:
        if resources and seconds > 0:
            framework.filters.append(RefusalFilter(agent_id, resources, time.monotonic() + seconds))

    def _on_acknowledge(self, framework: Framework, body: dict[str, Any]) -> None:
        record = self.agents.get(body["agent_id"]["value"])
        if record is None or record.state != "active":
            return  # dropped: the agent resends later
        key = (framework.framework_id, body["task_id"]["value"])
        pending = record.updates.get(key)
        if not pending or pending[0].status.get("uuid") != body["uuid"]:
            return  # a stale or duplicate acknowledgement is ignored, as the agent does
        acked = pending.popleft()
        if pending:
            self._send_head(record, key, time.monotonic())
        else:
            del record.updates[key]
        task = self.tasks.get(key)
        if task is not None and acked.status["state"] in TERMINAL:
            del self.tasks[key]  # the master forgets a task once its terminal update is acknowledged

    def _on_kill(self, framework: Framework, body: dict[str, Any]) -> None:
        task_id = body["task_id"]["value"]
        agent_id = (body.get("agent_id") or {}).get("value")
        key = (framework.framework_id, task_id)
        task = self.tasks.get(key)
        if task is not None and agent_id is not None and agent_id != task.agent_id:
            return  # a wrong agent id: the kill is ignored
        record = self.agents.get(task.agent_id) if task is not None else None
        if task is None or record is None or record.state == "unreachable":
            self._reconcile_one(framework, task_id, agent_id)  # answered as explicit reconciliation
            return
        if task.state in TERMINAL:
            return  # its terminal update is on its way (unacknowledged): nothing to kill
        grace = _grace_seconds(body.get("kill_policy"))
        grace = task.kill_grace if grace is None else grace
        if record.state != "active":
            record.pending_kills[key] = grace  # sent when the agent re-registers
            return
        record.agent.kill(framework.framework_id, task_id, grace, self._reporter(record.agent.agent_id))

    def _on_reconcile(self, framework: Framework, body: dict[str, Any]) -> None:
        wanted = body.get("tasks") or []
        if not wanted:  # implicit: every task the master holds, terminal-but-unacknowledged ones included
            for key, task in list(self.tasks.items()):
                record = self.agents.get(task.agent_id)
                if key[0] == framework.framework_id and record is not None and record.state != "unreachable":
                    self._reconciled(framework, task)
            return
        if any(r.state == "recovered" for r in self.agents.values()) and \
                any("agent_id" not in item for item in wanted):
            wanted = [item for item in wanted if "agent_id" in item]  # no answer while agents may re-register
        for item in wanted:
            self._reconcile_one(framework, item["task_id"]["value"], (item.get("agent_id") or {}).get("value"))

    def _reconcile_one(self, framework: Framework, task_id: str, agent_id: str | None) -> None:
        task = self.tasks.get((framework.framework_id, task_id))
        if task is not None and (agent_id is None or agent_id == task.agent_id):
            record = self.agents.get(task.agent_id)
            if record is not None and record.state == "unreachable":
                self._master_update(framework, task_id, task.agent_id, self._unreachable_state(framework),
                                    "Reconciliation: Task is unreachable", "REASON_RECONCILIATION",
                                    unreachable_time=task.unreachable_time)
            else:
                self._reconciled(framework, task)
            return
        record = self.agents.get(agent_id) if agent_id else None
        if record is not None and record.state == "recovered":
            return  # the agent may still re-register with it: no answer yet
        if not framework.partition_aware:
            state = "TASK_LOST"
        elif record is None:
            state = "TASK_UNKNOWN"
        elif record.state == "unreachable":
            state = "TASK_UNREACHABLE"
        else:
            state = "TASK_GONE"
        self._master_update(framework, task_id, agent_id if record is not None else None, state,
                            "Reconciliation: Task is unknown", "REASON_RECONCILIATION")

    def _reconciled(self, framework: Framework, task: TaskRecord) -> None:
        self._master_update(framework, task.task_id, task.agent_id, task.state, "Reconciliation: Latest task state",
                            "REASON_RECONCILIATION")

    def _on_reconcile_operations(self, framework: Framework, body: dict[str, Any]) -> None:
        """The latest state of each operation named (without a uuid: not to be acknowledged), else UNKNOWN."""
        for operation in body.get("operations") or []:
            known = self.operations.get((framework.framework_id, operation["operation_id"]["value"]))
            if known is not None:
                status = {k: v for k, v in known.items() if k != "uuid"}
            else:
                status = {"operation_id": operation["operation_id"], "state": "OPERATION_UNKNOWN"}
                if operation.get("agent_id"):
                    status["agent_id"] = operation["agent_id"]
            self._emit(framework, {"type": "UPDATE_OPERATION_STATUS", "update_operation_status": {"status": status}})

    def _on_acknowledge_operation_status(self, framework: Framework, body: dict[str, Any]) -> None:
        record = self.agents.get((body.get("agent_id") or {}).get("value", ""))
        if record is None or record.state != "active":
            return  # the agent resends later
        key = (framework.framework_id, OPERATION_KEY + body["operation_id"]["value"])
        pending = record.updates.get(key)
        if not pending or (pending[0].status.get("uuid") or {}).get("value") != body["uuid"]:
            return  # stale or duplicate
        pending.popleft()
        if pending:
            self._send_head(record, key, time.monotonic())
        else:
            del record.updates[key]

    def _update_framework(self, framework: Framework, body: dict[str, Any]) -> tuple[int, str]:
        """UPDATE_FRAMEWORK (1.9+): synchronous, 200 or 400."""
        info = dict(body.get("framework_info") or {})
        if (info.get("id") or {}).get("value") != framework.framework_id:
            return 400, "Updating 'FrameworkInfo.id' is not allowed"
        for name in ("user", "checkpoint", "principal"):
            if info.get(name, framework.info.get(name)) != framework.info.get(name):
                return 400, f"Updating 'FrameworkInfo.{name}' is unsupported"
        refusal = self._refusal(info, None, body, framework.principal)
        if refusal is not None:
            return 400, refusal
        old_roles = set(framework.roles)
        framework.info = info
        framework.suppressed = set(body.get("suppressed_roles") or [])
        framework.offer_constraints = (body.get("offer_constraints") or {}).get("role_constraints") or {}
        for offer in [o for o in self.offers.values() if o.framework_id == framework.framework_id
                      and o.role in old_roles - set(framework.roles)]:
            self.rescind(offer.offer_id)  # a removed role takes its offers with it
        return 200, ""

    def _on_accept(self, framework: Framework, body: dict[str, Any]) -> None:
        if self.rescind_next > 0:
            self.rescind_next -= 1
            for offer_id in body.get("offer_ids") or []:
                self.rescind(offer_id.get("value", ""))
        offers, invalid = [], "" if body.get("offer_ids") else "Offers are missing"
        for offer_id in body.get("offer_ids") or []:
            offer = self.offers.get(offer_id.get("value", ""))
            if offer is None or offer.framework_id != framework.framework_id:
                invalid = invalid or f"Offer {offer_id.get('value', '')} is no longer valid"  # the master's words
            else:
                offers.append(offer)
        for offer in offers:  # every offer id is single-use; unused resources go back to the allocator
            del self.offers[offer.offer_id]
        operations = body.get("operations") or []
        if not invalid and len({o.agent_id for o in offers}) != 1:
            invalid = "Aggregated offers must belong to one single agent"
        if not invalid and len({o.role for o in offers}) != 1:
            invalid = "Aggregated offers must be allocated to the same role"
        if invalid:
            self._invalid_offers(framework, operations, invalid)
            return
        agent = self.agents[offers[0].agent_id]
        available = sum((o.resources for o in offers), Bag())
        for operation in operations:
            kind = operation.get("type")
            if kind == "LAUNCH":
                for info in (operation.get("launch") or {}).get("task_infos") or []:
                    available = self._launch(framework, agent, offers[0].role, info, available)
            elif kind == "LAUNCH_GROUP":
                for info in ((operation.get("launch_group") or {}).get("task_group") or {}).get("tasks") or []:
                    self._master_update(framework, info["task_id"]["value"], agent.agent.agent_id, "TASK_ERROR",
                                        "Task groups are not supported by the test master",
                                        "REASON_TASK_GROUP_INVALID")
            elif kind in offer_operations.KINDS:
                available = self._operate(framework, agent, offers[0].role, operation, available)
            elif operation.get("id"):  # GROW_VOLUME, CREATE_DISK, ...: not modelled; say so if feedback is asked for
                self._operation_error(framework, operation, agent.agent.agent_id,
                                      f"Operation {kind} is not supported by the test master")
        self._refuse(framework, agent.agent.agent_id, available, refuse_seconds(body.get("filters")))

    def _operate(self, framework: Framework, record: AgentRecord, role: str, operation: dict[str, Any],
                 available: Bag) -> Bag:
        """RESERVE, UNRESERVE, CREATE or DESTROY: applied to the offer and the agent, or dropped; returns what
        is left of the offer."""
        agent = record.agent
        try:
            applied = offer_operations.apply(operation, available=available, agent_total=agent.resources,
                                       agent_used=agent.used, role=role, principal=framework.info.get("principal"),
                                       refinement=framework.refinement)
        except offer_operations.OperationError as exc:
            LOG.info("dropping %s operation from framework %s: %s", operation.get("type"), framework.framework_id, exc)
            if operation.get("id"):
                self._operation_error(framework, operation, agent.agent_id, str(exc))
            return available
        agent.resources = applied.agent_total  # checkpointed by the agent: it keeps them across restarts
        agent.change_volumes(applied.created, applied.destroyed)
        if operation.get("id"):
            status = {"operation_id": operation["id"], "state": "OPERATION_FINISHED",
                      "agent_id": {"value": agent.agent_id},
                      "uuid": {"value": base64.b64encode(uuid.uuid4().bytes).decode()},
                      "converted_resources": to_json(applied.converted, framework.refinement,
                                                     role if framework.multi_role else None)}
            self.operations[(framework.framework_id, operation["id"]["value"])] = status
            key = (framework.framework_id, OPERATION_KEY + operation["id"]["value"])
            pending = record.updates.setdefault(key, deque())
            pending.append(PendingUpdate(status, time.monotonic(), self.timings.update_retry,
                                         event="UPDATE_OPERATION_STATUS"))
            if len(pending) == 1 and record.state == "active":
                self._send_head(record, key, time.monotonic())
        return applied.available

    def _invalid_offers(self, framework: Framework, operations: list[dict[str, Any]], why: str) -> None:
        state = "TASK_DROPPED" if framework.partition_aware else "TASK_LOST"
        for operation in operations:
            infos = list((operation.get("launch") or {}).get("task_infos") or []) + list(
                ((operation.get("launch_group") or {}).get("task_group") or {}).get("tasks") or [])
            for info in infos:
                self._master_update(framework, info["task_id"]["value"], (info.get("agent_id") or {}).get("value"),
                                    state, f"Task launched with invalid offers: {why}",
                                    "REASON_INVALID_OFFERS")
            if operation.get("id") and operation.get("type") not in ("LAUNCH", "LAUNCH_GROUP"):
                self._operation_error(framework, operation, None, why)

    def _operation_error(self, framework: Framework, operation: dict[str, Any], agent_id: str | None,
                         message: str) -> None:
        """An operation the master dropped: OPERATION_ERROR from the master itself (no uuid, not retried)."""
        status: dict[str, Any] = {"operation_id": operation["id"], "state": "OPERATION_ERROR", "message": message}
        if agent_id:
            status["agent_id"] = {"value": agent_id}
        self._emit(framework, {"type": "UPDATE_OPERATION_STATUS", "update_operation_status": {"status": status}})

    def _launch(self, framework: Framework, record: AgentRecord, role: str, info: dict[str, Any],
                available: Bag) -> Bag:
        """Validate and start one task; returns what is left of the offers."""
        task_id = info["task_id"]["value"]
        try:
            resources = self._task_resources(framework, record, role, info, available)
        except ResourceError as exc:
            self._master_update(framework, task_id, record.agent.agent_id, "TASK_ERROR", str(exc),
                                "REASON_TASK_INVALID")
            return available
        task = TaskRecord(task_id, framework.framework_id, record.agent.agent_id, resources,
                          kill_grace=_grace_seconds(info.get("kill_policy")))
        self.tasks[(framework.framework_id, task_id)] = task
        self.launched.append(task_id)
        user = (info.get("command") or {}).get("user") or framework.info.get("user", "")
        record.agent.launch(framework.framework_id, info, resources, user,
                            "TASK_KILLING_STATE" in framework.capabilities, self._reporter(record.agent.agent_id))
        return available - resources

    def _task_resources(self, framework: Framework, record: AgentRecord, role: str, info: dict[str, Any],
                        available: Bag) -> Bag:
        """The master's task validation (§6.6): ResourceError with its message when the task is invalid."""
        task_id = info["task_id"]["value"]
        problem = _task_id_problem(task_id)
        if problem:
            raise ResourceError(problem)
        existing = self.tasks.get((framework.framework_id, task_id))
        if existing is not None and existing.state not in TERMINAL:
            raise ResourceError(f"Task has duplicate ID: {task_id}")
        agent_id = record.agent.agent_id
        if info["agent_id"]["value"] != agent_id:
            raise ResourceError(f"Task uses invalid agent {info['agent_id']['value']} while agent {agent_id} "
                                "is expected")
        if ("command" in info) == ("executor" in info):
            raise ResourceError("Task should have at least one (but not both) of CommandInfo or ExecutorInfo "
                                "present")
        if _grace_seconds(info.get("kill_policy")) is not None and _grace_seconds(info.get("kill_policy")) < 0:
            raise ResourceError("Task's 'kill_policy.grace_period' must be non-negative")
        resources = from_json(info.get("resources") or [], framework.refinement)
        resources = resources + from_json((info.get("executor") or {}).get("resources") or [], framework.refinement)
        if not resources:
            raise ResourceError("Task uses no resources")
        if not resources.roles() <= {UNRESERVED, role}:
            raise ResourceError(f"Task uses resources reserved for roles {sorted(resources.roles() - {role})} "
                                f"while its offer was allocated to role '{role}'")
        if not available.contains(resources):
            raise ResourceError(f"Total resources {describe(resources)} required by task and its executor is more "
                                f"than available {describe(available)}")
        return resources

    # -- status updates -------------------------------------------------------

    def _reporter(self, agent_id: str):
        def report(framework_id: str, task_id: str, state: str, message: str, reason: str | None,
                   source: str) -> None:
            try:
                with self.lock:
                    self._agent_update(agent_id, framework_id, task_id, state, message, reason, source)
            except Exception as exc:
                self.internal_error(exc)
        return report

    def _agent_update(self, agent_id: str, framework_id: str, task_id: str, state: str, message: str,
                      reason: str | None, source: str) -> None:
        """A reliable update from the agent: carries a uuid, is retransmitted until acknowledged."""
        task = self.tasks.get((framework_id, task_id))
        record = self.agents.get(agent_id)
        if task is None or record is None:
            return  # the framework was removed meanwhile
        status = status_json(task_id, agent_id, state, message, reason, source)
        status["uuid"] = base64.b64encode(uuid.uuid4().bytes).decode()
        status["executor_id"] = {"value": task_id}
        task.state = state
        key = (framework_id, task_id)
        pending = record.updates.setdefault(key, deque())
        pending.append(PendingUpdate(status, time.monotonic(), self.timings.update_retry))
        if len(pending) == 1 and record.state == "active":
            self._send_head(record, key, time.monotonic())

    def _master_update(self, framework: Framework, task_id: str, agent_id: str | None, state: str, message: str,
                       reason: str, unreachable_time: int | None = None) -> None:
        """An update the master makes up: no uuid, never retried, dropped while the framework is away."""
        status = status_json(task_id, agent_id, state, message, reason, "SOURCE_MASTER")
        if unreachable_time is not None:
            status["unreachable_time"] = {"nanoseconds": unreachable_time}
        self._emit(framework, {"type": "UPDATE", "update": {"status": status}})

    def _send_head(self, record: AgentRecord, key: tuple[str, str], now: float) -> None:
        head = record.updates[key][0]
        head.next_send = now + head.delay
        head.delay = min(head.delay * 2, self.timings.update_retry_max)
        framework = self.frameworks.get(key[0])
        if framework is not None:
            self._emit(framework, head.as_event())

    def _retransmit(self, now: float) -> None:
        for record in self.agents.values():
            if record.state != "active":
                continue
            for key, pending in list(record.updates.items()):
                framework = self.frameworks.get(key[0])
                if pending and framework is not None and framework.stream is not None and pending[0].next_send <= now:
                    self._send_head(record, key, now)

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
        for framework in self.frameworks.values():
            framework.filters = [f for f in framework.filters if f.until > now]
        frameworks = [f for f in self.frameworks.values() if f.stream is not None]
        if not frameworks:
            return
        allocated: dict[str, Bag] = {f.framework_id: Bag() for f in frameworks}
        for (framework_id, _), task in self.tasks.items():
            if framework_id in allocated and task.state not in TERMINAL:
                allocated[framework_id] = allocated[framework_id] + task.resources
        offered: dict[str, Bag] = {}
        for offer in self.offers.values():
            offered[offer.agent_id] = offered.get(offer.agent_id, Bag()) + offer.resources
            if offer.framework_id in allocated:
                allocated[offer.framework_id] = allocated[offer.framework_id] + offer.resources
        candidates = [Candidate(f.framework_id, f.roles, f.suppressed, f.filters, allocated[f.framework_id],
                                gpu_capable="GPU_RESOURCES" in f.capabilities,
                                offer_filters=f.info.get("offer_filters") or {},
                                offer_constraints=f.offer_constraints) for f in frameworks]
        views = [AgentView(r.agent.agent_id, r.agent.hostname, r.agent.attributes, r.agent.resources,
                           r.agent.resources - r.agent.used - offered.get(r.agent.agent_id, Bag()))
                 for r in self.agents.values() if r.state == "active"]
        batches: dict[str, list[dict[str, Any]]] = {}
        for grant in self.allocator.allocate(views, candidates, now):
            framework = self.frameworks[grant.framework_id]
            offer = Offer(str(uuid.uuid4()), grant.framework_id, grant.agent_id, grant.role, grant.resources)
            self.offers[offer.offer_id] = offer
            batches.setdefault(grant.framework_id, []).append(self._offer_json(offer, framework))
        for framework_id, batch in batches.items():
            self._emit(self.frameworks[framework_id], {"type": "OFFERS", "offers": {"offers": batch}})

    def _offer_json(self, offer: Offer, framework: Framework) -> dict[str, Any]:
        agent = self.agents[offer.agent_id].agent
        role = offer.role if framework.multi_role else None
        result = {"id": {"value": offer.offer_id}, "framework_id": {"value": framework.framework_id},
                  "agent_id": {"value": agent.agent_id}, "hostname": agent.hostname,
                  "resources": to_json(offer.resources, framework.refinement, role),
                  "attributes": [_attribute(k, v) for k, v in agent.attributes.items()],
                  # where the agent's own endpoints (its files API) answer, as a real master says
                  "url": {"scheme": "http", "address": {"hostname": agent.hostname, "ip": agent.hostname,
                                                        "port": agent.files.port}, "path": "/slave(1)"}}
        if role is not None:
            result["allocation_info"] = {"role": role}
        return result

    def rescind(self, offer_id: str) -> None:
        """Take back an outstanding offer (test hook; a real master does it on timeouts and agent loss)."""
        with self.lock:
            offer = self.offers.pop(offer_id, None)
            if offer is None:
                return
            framework = self.frameworks.get(offer.framework_id)
            if framework is not None:
                self._emit(framework, {"type": "RESCIND", "rescind": {"offer_id": {"value": offer_id}}})

    def _drop_offers(self, framework: Framework) -> None:
        """Offers of an old subscription vanish without RESCIND; their resources are free again."""
        for offer_id in [o.offer_id for o in self.offers.values() if o.framework_id == framework.framework_id]:
            del self.offers[offer_id]

    # -- agents -------------------------------------------------------------

    def agent(self, agent_id: str) -> AgentRecord:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise CallError(404, f"No agent {agent_id}") from None

    def stop_agent(self, agent_id: str) -> None:
        """The agent process stops: no more offers from it, its tasks keep running and report later."""
        with self.lock:
            record = self.agent(agent_id)
            record.agent.stop_process()
            if record.state == "active":
                record.state, record.since = "disconnected", time.monotonic()
            for offer in [o for o in self.offers.values() if o.agent_id == agent_id]:
                self.rescind(offer.offer_id)

    def lose_agent(self, agent_id: str) -> None:
        """The agent's machine dies with its tasks; the master notices as for a stopped agent and marks it
        unreachable after the ping timeout (TASK_UNREACHABLE when partition-aware, TASK_LOST otherwise)."""
        with self.lock:
            record = self.agent(agent_id)
            self.stop_agent(agent_id)
            record.agent.crash()
            record.updates.clear()  # the machine's state went with it

    def start_agent(self, agent_id: str) -> str:
        """The agent process starts again and re-registers (its running tasks carry on). After a crash the
        machine reboots: it registers as a new agent, the old one stays unreachable. Returns its id."""
        with self.lock:
            record = self.agent(agent_id)
            agent = record.agent
            if not agent.machine_up:
                rebooted = TestAgent(f"{uuid.uuid4()}-S{len(self.agents)}", agent.hostname, agent.resources,
                                     dict(agent.attributes), agent.work_dir)
                rebooted.files.open()
                self.agents[rebooted.agent_id] = AgentRecord(rebooted)
                return rebooted.agent_id
            agent.start_process()
            was = record.state
            record.state, record.since = "active", time.monotonic()
            if was == "unreachable":  # back from a partition: its tasks are known again
                for (framework_id, task_id), running in list(agent.tasks.items()):
                    task = self.tasks.get((framework_id, task_id))
                    if task is not None:
                        task.unreachable_time = None
                        task.state = "TASK_RUNNING" if running.process is not None else "TASK_STAGING"
            for (framework_id, task_id), grace in list(record.pending_kills.items()):
                agent.kill(framework_id, task_id, grace, self._reporter(agent_id))
            record.pending_kills.clear()
            now = time.monotonic()
            for pending in record.updates.values():
                if pending:
                    pending[0].next_send = now
            return agent_id

    def _expire_agents(self, now: float) -> None:
        for record in self.agents.values():
            if record.state in ("disconnected", "recovered") and now - record.since >= self.timings.agent_ping_timeout:
                self._mark_unreachable(record)

    def _mark_unreachable(self, record: AgentRecord) -> None:
        agent_id = record.agent.agent_id
        LOG.info("agent %s is unreachable", agent_id)
        record.state, record.since = "unreachable", time.monotonic()
        unreachable_time = int(time.time() * 1e9)
        for (framework_id, task_id), task in self.tasks.items():
            framework = self.frameworks.get(framework_id)
            if task.agent_id != agent_id or task.state in TERMINAL:
                continue
            task.unreachable_time = unreachable_time
            if framework is not None:
                self._master_update(framework, task_id, agent_id, self._unreachable_state(framework),
                                    "Agent is unreachable", "REASON_AGENT_REMOVED", unreachable_time=unreachable_time)
        for framework in self.frameworks.values():
            self._emit(framework, {"type": "FAILURE", "failure": {"agent_id": {"value": agent_id}}})

    @staticmethod
    def _unreachable_state(framework: Framework) -> str:
        return "TASK_UNREACHABLE" if framework.partition_aware else "TASK_LOST"

    def snapshot(self) -> dict[str, Any]:
        """What an operator sees on /state: agents, frameworks, tasks (for tests and the CLI)."""
        with self.lock:
            return {
                "agents": [{"id": r.agent.agent_id, "hostname": r.agent.hostname, "state": r.state,
                            "resources": describe(r.agent.resources), "used": describe(r.agent.used),
                            "attributes": r.agent.attributes, "fetches": r.agent.fetches,
                            "cache_hits": r.agent.cache_hits} for r in self.agents.values()],
                "frameworks": [{"id": f.framework_id, "name": f.info.get("name"), "roles": f.roles,
                                "connected": f.stream is not None, "suppressed_roles": sorted(f.suppressed)}
                               for f in self.frameworks.values()],
                "tasks": [{"id": t.task_id, "framework_id": t.framework_id, "agent_id": t.agent_id, "state": t.state,
                           "resources": describe(t.resources)} for t in self.tasks.values()],
                "offers": [{"id": o.offer_id, "framework_id": o.framework_id, "agent_id": o.agent_id, "role": o.role,
                            "resources": describe(o.resources)} for o in self.offers.values()],
            }


def make_agents(count: int, work_dir: Path, resources: Bag, attributes: dict[str, str] | None = None,
                hostname: str = "127.0.0.1") -> list[TestAgent]:
    """``count`` agents; ``{i}`` in an attribute value is replaced by the agent's index."""
    agents = []
    for index in range(count):
        attrs = {k: v.replace("{i}", str(index)) for k, v in (attributes or {}).items()}
        agent_id = f"{uuid.uuid4()}-S{index}"
        agents.append(TestAgent(agent_id, hostname, resources, attrs, work_dir / f"agent-{index}"))
    return agents


def _error(message: str) -> dict[str, Any]:
    return {"type": "ERROR", "error": {"message": message}}


def status_json(task_id: str, agent_id: str | None, state: str, message: str, reason: str | None,
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


def _task_id_problem(task_id: str) -> str | None:
    """Mesos's id rules: non-empty, at most 255 characters, no '/', '\\' or control characters, not . or .."""
    if not task_id:
        return "Task ID must not be empty"
    if len(task_id) > MAX_ID_LENGTH:
        return f"Task ID '{task_id[:32]}...' is longer than {MAX_ID_LENGTH} characters"
    if task_id in (".", ".."):
        return f"Task ID '{task_id}' is invalid: '.' and '..' are not allowed"
    if any(c in task_id for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in task_id):
        return f"Task ID '{task_id}' contains invalid characters"
    return None


def _attribute(name: str, value: str) -> dict[str, Any]:
    try:
        return {"name": name, "type": "SCALAR", "scalar": {"value": float(value)}}
    except ValueError:
        return {"name": name, "type": "TEXT", "text": {"value": value}}


def _grace_seconds(kill_policy: dict[str, Any] | None) -> float | None:
    nanos = ((kill_policy or {}).get("grace_period") or {}).get("nanoseconds")
    return int(nanos) / 1e9 if nanos is not None else None
