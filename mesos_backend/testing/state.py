"""The records a Mesos master keeps: frameworks and their streams, offers, tasks, agents, its flags and clocks.

Plain data (``cluster.py`` holds what the master does with them), shared by
the masters of one ensemble.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .agent import TestAgent
from .allocator import RefusalFilter, roles_of
from .resources import Bag

CLOSE = object()  # put on a stream's queue to end it
TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED",
                      "TASK_GONE", "TASK_GONE_BY_OPERATOR"})
MAX_ID_LENGTH = 255
MAX_FAILOVER_TIMEOUT = 9_223_372_036.0  # an int64 of nanoseconds, in seconds


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
    # A disconnected agent (or one not re-registered after a leader change) is marked unreachable after
    # this long (--agent_ping_timeout x --max_agent_ping_timeouts, 75 s on a real master).
    agent_ping_timeout: float = 75.0


@dataclass
class MasterFlags:
    """Master flags that change what it accepts."""

    roles: frozenset[str] | None = None  # --roles: the only roles frameworks may use (None: any)
    weights: dict[str, float] = field(default_factory=dict)  # --weights role=weight
    root_submissions: bool = True


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
    """An update in an agent's status update manager, waiting for its acknowledgement: a task's (UPDATE) or an
    offer operation's (UPDATE_OPERATION_STATUS)."""

    status: dict[str, Any]
    next_send: float
    delay: float
    event: str = "UPDATE"

    def as_event(self) -> dict[str, Any]:
        return {"type": self.event, self.event.lower(): {"status": self.status}}


@dataclass
class TaskRecord:
    task_id: str
    framework_id: str
    agent_id: str
    resources: Bag
    state: str = "TASK_STAGING"
    kill_grace: float | None = None  # from the TaskInfo's kill_policy
    unreachable_time: int | None = None  # nanoseconds, while its agent is unreachable


@dataclass
class Framework:
    framework_id: str
    info: dict[str, Any]
    principal: str | None = None
    stream: Stream | None = None
    suppressed: set[str] = field(default_factory=set)
    filters: list[RefusalFilter] = field(default_factory=list)
    offer_constraints: dict[str, Any] = field(default_factory=dict)
    disconnected_at: float | None = None  # the failover timeout runs from here (None: no timer)

    @property
    def capabilities(self) -> set[str]:
        return {c.get("type", "") for c in self.info.get("capabilities") or []}

    @property
    def partition_aware(self) -> bool:
        return "PARTITION_AWARE" in self.capabilities

    @property
    def multi_role(self) -> bool:
        return "MULTI_ROLE" in self.capabilities

    @property
    def refinement(self) -> bool:
        return "RESERVATION_REFINEMENT" in self.capabilities

    @property
    def roles(self) -> list[str]:
        return roles_of(self.info, self.multi_role)

    @property
    def failover_timeout(self) -> float:
        return float(self.info.get("failover_timeout", 0.0))


@dataclass
class Offer:
    offer_id: str
    framework_id: str
    agent_id: str
    role: str
    resources: Bag


@dataclass
class AgentRecord:
    """The master's view of an agent: ``active`` (registered), ``disconnected`` (its process is down),
    ``recovered`` (known after a leader change, not re-registered yet), ``unreachable``."""

    agent: TestAgent
    state: str = "active"
    since: float = field(default_factory=time.monotonic)
    pending_kills: dict[tuple[str, str], float | None] = field(default_factory=dict)
    # The agent's status update managers: per (framework, task) or (framework, OPERATION_KEY + operation id),
    # unacknowledged updates, oldest first.
    updates: dict[tuple[str, str], deque[PendingUpdate]] = field(default_factory=dict)


OPERATION_KEY = "\0operation:"  # no task id holds a control character: operation updates never meet a task's
