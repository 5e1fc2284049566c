"""Mesos TaskStatus (JSON) → the backend interface's TaskEvent.

Mesos says more than the dispatcher needs; the mapping keeps what matters
for a retry decision: did the command run to the end (and with which exit
code), was it killed on request or for its timeout, or did the cluster lose
it (agent gone, offer invalid), which is never the task's fault.
"""

from __future__ import annotations

import re
from typing import Any

from ..base import TaskEvent, TaskState, Usage

TERMINAL_STATES = frozenset({
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
})
# The cluster lost the task: rerun it (within its retry budget).
LOST_STATES = frozenset({"TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"})
ACTIVE_STATES = frozenset({"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"})
# The command executor's message for a non-zero exit, e.g. "Command exited with status 3".
_EXIT_STATUS = re.compile(r"exited with status (-?\d+)")


def task_id_of(status: dict[str, Any]) -> str:
    return status["task_id"]["value"]


def agent_id_of(status: dict[str, Any]) -> str | None:
    agent = status.get("agent_id")
    return agent.get("value") if agent else None


def describe(status: dict[str, Any]) -> str:
    """One line for logs and the attempt's event history."""
    parts = [status.get("state", "?")]
    for key in ("reason", "source"):
        if status.get(key):
            parts.append(status[key])
    if status.get("message"):
        parts.append(repr(status["message"]))
    return " ".join(parts)


def to_event(status: dict[str, Any], kill_cause: str | None = None, started_at: float | None = None
             ) -> TaskEvent | None:
    """The TaskEvent for a status update, or None for states the dispatcher need not see.

    ``kill_cause`` is why the framework killed the task, if it did: ``killed``
    (cancel), ``timeout``, or ``unreachable`` (gave up waiting for its agent).
    ``started_at`` is when it was seen running, for the wall time.
    """
    state = status.get("state", "")
    task_id = task_id_of(status)
    agent = agent_id_of(status)
    message = status.get("message", "")
    reason = status.get("reason")
    if state == "TASK_RUNNING":
        return TaskEvent(task_id, TaskState.STARTED, agent=agent, message=message)
    if state not in TERMINAL_STATES and state != "TASK_UNKNOWN":
        return None
    timestamp = float(status.get("timestamp") or 0) or None
    wall = (timestamp - started_at) if timestamp and started_at else None
    usage = Usage(wall_seconds=max(wall, 0.0)) if wall is not None else None
    common: dict[str, Any] = {"agent": agent, "usage": usage, "message": message}
    if timestamp:
        common["timestamp"] = timestamp
    if state == "TASK_FINISHED":
        return TaskEvent(task_id, TaskState.FINISHED, exit_code=0, reason=reason, **common)
    if state == "TASK_KILLED" or (kill_cause and state == "TASK_FAILED"):
        if kill_cause == "killed":
            return TaskEvent(task_id, TaskState.KILLED, reason="killed", **common)
        if kill_cause in ("timeout", "unreachable"):
            return TaskEvent(task_id, TaskState.FAILED if kill_cause == "timeout" else TaskState.LOST,
                             reason=kill_cause, **common)
        return TaskEvent(task_id, TaskState.FAILED, reason=reason or "killed_externally", **common)
    if state == "TASK_FAILED":
        exit_code = _exit_code(message)
        if exit_code is not None:
            return TaskEvent(task_id, TaskState.FINISHED, exit_code=exit_code, reason=reason, **common)
        return TaskEvent(task_id, TaskState.FAILED, reason=reason or "failed", **common)
    if state == "TASK_ERROR":
        return TaskEvent(task_id, TaskState.FAILED, reason=reason or "task_error", **common)
    return TaskEvent(task_id, TaskState.LOST, reason=reason or state.lower(), **common)


def _exit_code(message: str) -> int | None:
    match = _EXIT_STATUS.search(message or "")
    return int(match.group(1)) if match else None
