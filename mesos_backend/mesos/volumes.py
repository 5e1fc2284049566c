"""Persistent volumes for the Mesos framework: the tasks that run on one, and the operations that make and
remove one.

A task whose spec names a ``PersistentVolume`` runs on the agent holding the volume, with the volume's
resource in its TaskInfo (the agent mounts it at its container path). Mesos offers a volume only while no
task uses it, so the tasks of one volume run one after another, in the order they were queued.

A spec with a ``volume_operation`` is an operation, not a command:

- ``create``: done at once when an offer carries the volume already. Otherwise, on an offer whose
  unreserved resources hold the volume's disk and what is reserved with it, one ACCEPT with RESERVE (for
  the framework's role, by its principal) and CREATE. Both carry an operation id, so the agent confirms
  each (OPERATION_FINISHED) or the master says why it dropped it (OPERATION_ERROR): the attempt ends with
  that word.
- ``destroy``: on an offer that carries the volume (so no task uses it), DESTROY, then UNRESERVE of its
  disk and of the cpus and mem reserved with it that the offer holds.

Which agent holds which volume is kept in the backend's durable state (``volume:<id>``): a volume in use,
or on an agent that is away, is waited for and never created a second time, and a destroy repeated after
a restart finds it gone. An operation that finds no offer to act on within its timeout fails.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from ..base import BackendState, PersistentVolume, Resources, TaskEvent, TaskSpec, TaskState, Usage
from .offers import OfferedResources, is_volume, resources_of

STATE_PREFIX = "volume:"
CREATING, CREATED, DESTROYING, DESTROYED = "creating", "created", "destroying", "destroyed"
_TERMINAL_OPERATION_STATES = frozenset({"OPERATION_FINISHED", "OPERATION_FAILED", "OPERATION_ERROR",
                                        "OPERATION_DROPPED", "OPERATION_GONE_BY_OPERATOR"})
_NO_USAGE = Usage(cpu_seconds=0.0, mem_peak_mb=0.0, wall_seconds=0.0)
VOLUME_WAIT = "volume_unavailable"  # the reason of a NOTICE: no offer carries the task's volume


@dataclass
class _Operation:
    spec: TaskSpec
    queued_at: float
    awaited: dict[str, str] = field(default_factory=dict)  # operation id -> its kind, until confirmed
    agent_id: str | None = None


@dataclass
class Launch:
    """A task to launch on an offer that carries its volume: the resources of its TaskInfo, the volume's last."""

    offer: dict[str, Any]
    spec: TaskSpec
    resources: list[dict[str, Any]]
    need: Resources


@dataclass
class Decision:
    """What one batch of offers is used for here; ``used`` offers are not for the placer."""

    accepts: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)  # task, offer, ops
    launches: list[Launch] = field(default_factory=list)
    events: list[TaskEvent] = field(default_factory=list)
    used: set[str] = field(default_factory=set)


class VolumeWork:
    """Queued volume tasks and operations; the caller holds its lock around every call."""

    def __init__(self, state: BackendState, role: str, principal: str | None, notice_after: float) -> None:
        self.state = state
        self.notice_after = notice_after  # a task that waits this long for its volume says why
        self.role = role
        self.principal = principal
        self._tasks: dict[str, tuple[TaskSpec, Resources, float]] = {}  # FIFO: tasks waiting for their volume
        self._operations: dict[str, _Operation] = {}
        # Operations taken back after their ACCEPT was sent: the agent's word still says what became of the volume.
        self._abandoned: dict[str, _Operation] = {}
        self._told: dict[str, str] = {}  # waiting task id -> why it waits, as last sent in a NOTICE

    def add(self, spec: TaskSpec, need: Resources, now: float) -> None:
        if spec.volume_operation:
            self._operations[spec.task_id] = _Operation(spec, now)
        else:
            self._tasks[spec.task_id] = (spec, need, now)

    def remove(self, task_id: str) -> bool:
        """Take a queued task or operation back (killed before it ran); False if it is not queued here."""
        self._told.pop(task_id, None)
        if self._tasks.pop(task_id, None) is not None:
            return True
        operation = self._operations.pop(task_id, None)
        if operation is not None and operation.awaited:
            self._abandoned[task_id] = operation
        return operation is not None

    def ids(self) -> set[str]:
        return set(self._tasks) | set(self._operations)

    def pending(self) -> int:
        return len(self._tasks) + sum(1 for op in self._operations.values() if not op.awaited)

    # -- offers ---------------------------------------------------------------

    def decide(self, offers: list[dict[str, Any]], now: float) -> Decision:
        decision = Decision()
        for task_id, operation in list(self._operations.items()):
            if not operation.awaited:
                self._operate(task_id, operation, offers, decision, now)
        waiting_for: set[str] = set()
        for task_id, (spec, need, queued_at) in list(self._tasks.items()):
            volume = spec.volume
            assert volume is not None
            if volume.volume_id in waiting_for:
                continue  # FIFO per volume: one task a round, in order
            waiting_for.add(volume.volume_id)
            carrying = [(o, item) for o in offers if (item := volume_item(o, volume.volume_id)) is not None]
            for offer, item in carrying:
                if offer["id"]["value"] in decision.used:
                    continue
                others = [i for i in offer.get("resources") or [] if not is_volume(i)]
                if need.fits_in(resources_of(others)):
                    del self._tasks[task_id]
                    self._told.pop(task_id, None)
                    decision.used.add(offer["id"]["value"])
                    decision.launches.append(Launch(offer, spec, [*OfferedResources(others).take(need), item], need))
                break
            if task_id in self._tasks and not carrying and now - queued_at >= self.notice_after:
                self._tell(task_id, self._why_waiting(volume.volume_id), decision)
        return decision

    def _why_waiting(self, volume_id: str) -> str:
        """Why no offer carries a task's volume, from what the durable state knows of it."""
        known = self._known(volume_id)
        agent, state = known.get("agent"), known.get("state")
        if state == CREATED:
            return f"waiting for volume {volume_id} on agent {agent}: another task uses it, or the agent is away"
        if state == CREATING:
            return f"waiting for volume {volume_id}: it is being created on agent {agent}"
        if state in (DESTROYING, DESTROYED):
            return f"waiting for volume {volume_id}: it is being destroyed, or was"
        return (f"waiting for volume {volume_id}: this framework has not created it, and no offer carries it "
                "(run its create operation first)")

    def _tell(self, task_id: str, message: str, decision: Decision) -> None:
        if self._told.get(task_id) != message:
            self._told[task_id] = message
            decision.events.append(TaskEvent(task_id, TaskState.NOTICE, reason=VOLUME_WAIT, message=message))

    def _operate(self, task_id: str, operation: _Operation, offers: list[dict[str, Any]], decision: Decision,
                 now: float) -> None:
        volume = operation.spec.volume
        assert volume is not None
        known = self._known(volume.volume_id)
        offered = next((o for o in offers if volume_item(o, volume.volume_id) is not None
                        and o["id"]["value"] not in decision.used), None)
        if operation.spec.volume_operation == "create":
            if offered is not None:
                self._done(task_id, decision, f"volume {volume.volume_id} is there already")
                return
            if known.get("state") in (CREATING, CREATED, DESTROYING):
                return  # on an agent away, or in use: it is offered again once free
            offer = next((o for o in offers if o["id"]["value"] not in decision.used
                          and _fits_unreserved(o, volume)), None)
            if offer is None:
                return
            role = _allocation_role(offer, self.role)
            operations = [
                {"type": "RESERVE", "id": {"value": f"{task_id}.reserve"},
                 "reserve": {"resources": reservation(volume, role, self.principal)}},
                {"type": "CREATE", "id": {"value": f"{task_id}.create"},
                 "create": {"volumes": [volume_resource(volume, role, self.principal)]}}]
            self._send(task_id, operation, offer, operations, CREATING, decision, now)
            return
        if known.get("state") == DESTROYED and offered is None:
            self._done(task_id, decision, f"volume {volume.volume_id} was removed already")
            return
        if offered is None:
            return
        role = _allocation_role(offered, self.role)
        operations = [
            {"type": "DESTROY", "id": {"value": f"{task_id}.destroy"},
             "destroy": {"volumes": [volume_item(offered, volume.volume_id)]}},
            {"type": "UNRESERVE", "id": {"value": f"{task_id}.unreserve"},
             "unreserve": {"resources": self._held_reservation(offered, volume, role)}}]
        self._send(task_id, operation, offered, operations, DESTROYING, decision, now)

    def _send(self, task_id: str, operation: _Operation, offer: dict[str, Any], operations: list[dict[str, Any]],
              state: str, decision: Decision, now: float) -> None:
        volume = operation.spec.volume
        assert volume is not None
        agent_id = offer["agent_id"]["value"]
        operation.awaited = {op["id"]["value"]: op["type"] for op in operations}
        operation.agent_id = agent_id
        self._remember(volume.volume_id, agent_id, state)
        decision.used.add(offer["id"]["value"])
        decision.accepts.append((task_id, offer, operations))
        decision.events.append(TaskEvent(task_id, TaskState.STARTED, message=f"{', '.join(operation.awaited.values())}"
                                         f" of volume {volume.volume_id} sent to agent {agent_id}"))

    def unsent(self, task_id: str) -> None:
        """The ACCEPT did not reach the master: act again on the next offers."""
        operation = self._operations.get(task_id)
        if operation is not None and operation.awaited:
            volume = operation.spec.volume
            assert volume is not None
            before = CREATED if operation.spec.volume_operation == "destroy" else None
            operation.awaited, operation.agent_id = {}, None
            self._remember(volume.volume_id, None, before)

    def _held_reservation(self, offer: dict[str, Any], volume: PersistentVolume, role: str) -> list[dict[str, Any]]:
        """The volume's disk and as much of the cpus and mem reserved with it as the offer holds."""
        released = [_reserved("disk", volume.disk, role, self.principal)]
        for name, amount in (("cpus", volume.reserve.cpus), ("mem", volume.reserve.mem)):
            held = sum(float(i["scalar"]["value"]) for i in offer.get("resources") or []
                       if i.get("name") == name and not is_volume(i) and self._ours(i, role))
            if min(held, amount) > 0:
                released.append(_reserved(name, min(held, amount), role, self.principal))
        return released

    def _ours(self, item: dict[str, Any], role: str) -> bool:
        reservation = item.get("reservation")
        return item.get("role") == role and reservation is not None and reservation.get("principal") == self.principal

    # -- operation feedback and timeouts -----------------------------------------

    def on_status(self, status: dict[str, Any]) -> list[TaskEvent]:
        """An OPERATION_* status: the attempt ends when its last operation is confirmed, or the first fails.

        An operation whose attempt was killed after its ACCEPT was sent still records what became of the
        volume (created, or not), so that the next operation on it neither waits for nor remakes it."""
        operation_id = (status.get("operation_id") or {}).get("value", "")
        state = status.get("state", "")
        if state not in _TERMINAL_OPERATION_STATES:
            return []
        held = next((h for h in (self._operations, self._abandoned)
                     if any(operation_id in op.awaited for op in h.values())), None)
        if held is None:
            return []
        task_id = next(t for t, op in held.items() if operation_id in op.awaited)
        operation = held[task_id]
        volume = operation.spec.volume
        assert volume is not None
        kind = operation.awaited.pop(operation_id)
        finished = state == "OPERATION_FINISHED"
        if finished and operation.awaited:
            return []
        del held[task_id]
        creating = operation.spec.volume_operation == "create"
        if finished:
            self._remember(volume.volume_id, operation.agent_id, CREATED if creating else DESTROYED)
        else:
            self._remember(volume.volume_id, None if creating else operation.agent_id, None if creating else CREATED)
        if held is self._abandoned:
            return []  # its attempt was reported killed already
        if finished:
            done = "created" if creating else "destroyed and unreserved"
            return [TaskEvent(task_id, TaskState.FINISHED, exit_code=0, usage=_NO_USAGE,
                              message=f"volume {volume.volume_id} {done} on agent {operation.agent_id}")]
        message = status.get("message") or state
        return [TaskEvent(task_id, TaskState.FAILED, reason="volume_operation", usage=_NO_USAGE,
                          message=f"{kind} of volume {volume.volume_id}: {state}: {message}")]

    def expired(self, now: float) -> list[TaskEvent]:
        """Operations that found nothing to act on within their timeout fail."""
        events = []
        for task_id, operation in list(self._operations.items()):
            timeout = operation.spec.timeout
            if timeout and not operation.awaited and now - operation.queued_at > timeout:
                del self._operations[task_id]
                volume = operation.spec.volume
                assert volume is not None
                if self._known(volume.volume_id).get("state") == CREATING:
                    self._remember(volume.volume_id, None, None)  # never confirmed: the next attempt makes it
                why = ("no offer held room for it" if operation.spec.volume_operation == "create"
                       else "no offer carried it (is it in use, or gone?)")
                events.append(TaskEvent(task_id, TaskState.FAILED, reason="timeout", usage=_NO_USAGE,
                                        message=f"volume {volume.volume_id}: {why} within {timeout:g} s"))
        return events

    # -- durable state ------------------------------------------------------------

    def _known(self, volume_id: str) -> dict[str, Any]:
        text = self.state.get(STATE_PREFIX + volume_id)
        return json.loads(text) if text else {}

    def _remember(self, volume_id: str, agent_id: str | None, state: str | None) -> None:
        self.state.put(STATE_PREFIX + volume_id,
                       json.dumps({"agent": agent_id, "state": state, "at": time.time()}) if state else None)

    def _done(self, task_id: str, decision: Decision, message: str) -> None:
        del self._operations[task_id]
        decision.events += [TaskEvent(task_id, TaskState.STARTED, message=message),
                            TaskEvent(task_id, TaskState.FINISHED, exit_code=0, usage=_NO_USAGE, message=message)]


def volume_item(offer: dict[str, Any], volume_id: str) -> dict[str, Any] | None:
    """The offer's resource that is this persistent volume, if it carries it."""
    return next((i for i in offer.get("resources") or []
                 if ((i.get("disk") or {}).get("persistence") or {}).get("id") == volume_id), None)


def reservation(volume: PersistentVolume, role: str, principal: str | None) -> list[dict[str, Any]]:
    """What RESERVE asks for: the volume's disk and the cpus and mem kept with it."""
    amounts = (("disk", volume.disk), ("cpus", volume.reserve.cpus), ("mem", volume.reserve.mem))
    return [_reserved(name, amount, role, principal) for name, amount in amounts if amount > 0]


def volume_resource(volume: PersistentVolume, role: str, principal: str | None) -> dict[str, Any]:
    """The persistent volume as CREATE makes it (and as tasks name it)."""
    persistence: dict[str, Any] = {"id": volume.volume_id}
    if principal:
        persistence["principal"] = principal
    return {**_reserved("disk", volume.disk, role, principal),
            "disk": {"persistence": persistence, "volume": {"container_path": volume.container_path, "mode": "RW"}}}


def _reserved(name: str, amount: float, role: str, principal: str | None) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": round(amount, 3)}, "role": role,
            "reservation": {"principal": principal} if principal else {}, "allocation_info": {"role": role}}


def _allocation_role(offer: dict[str, Any], default: str) -> str:
    return (offer.get("allocation_info") or {}).get("role") or default


def _fits_unreserved(offer: dict[str, Any], volume: PersistentVolume) -> bool:
    free = resources_of([i for i in offer.get("resources") or []
                         if i.get("role", "*") == "*" and not i.get("reservations")])
    return Resources(volume.reserve.cpus, volume.reserve.mem, volume.disk).fits_in(free)
