"""A ResourceManager application report -> the backend interface's TaskEvent.

Success is state FINISHED with finalStatus SUCCEEDED. FINISHED with another
final status means the ApplicationMaster reported the task's failure
(DistributedShell: a non-zero exit); FAILED means the attempt itself failed
(the AM container exited or timed out before unregistering) -- unless its
container was released with its node (exit -100), which is the cluster's
fault: LOST, rerun without spending a retry of the step... as far as the
dispatcher decides. YARN's diagnostics are the message; the accounting is
the RM's (vcore-seconds, MB-seconds, elapsed time).
"""

from __future__ import annotations

import re
from typing import Any

from ..base import TaskEvent, TaskState, Usage

# ContainerExitStatus.ABORTED (-100): the container was released by the RM (its node was lost).
LOST = re.compile(r"exitCode: -100\b|\*lost\* node")


def usage(app: dict[str, Any]) -> Usage:
    elapsed = app.get("elapsedTime")
    return Usage(wall_seconds=elapsed / 1000.0 if isinstance(elapsed, int | float) and elapsed >= 0 else None,
                 alloc_cpu_seconds=_number(app.get("vcoreSeconds")),
                 alloc_mem_mb_seconds=_number(app.get("memorySeconds")))


def node_of(app: dict[str, Any]) -> str | None:
    return app.get("masterNodeId") or (app.get("amHostHttpAddress") or None)


def describe(app: dict[str, Any]) -> str:
    """One line for the attempt's history: state, final status, where, what YARN allocated."""
    parts = [f"{app.get('id')} {app.get('state')}"]
    if app.get("finalStatus") not in (None, "UNDEFINED"):
        parts.append(str(app["finalStatus"]))
    if app.get("allocatedMB", -1) > 0:
        parts.append(f"allocated {app['allocatedMB']} MB, {app.get('allocatedVCores')} vcores")
    if node_of(app):
        parts.append(f"AM on {node_of(app)}")
    if app.get("diagnostics"):
        parts.append(repr(app["diagnostics"][:500]))
    return " ".join(parts)


def terminal_event(task_id: str, app: dict[str, Any], kill_cause: str | None) -> TaskEvent:
    """The event for a report in a final state. ``kill_cause``: why the gateway killed it (killed, timeout)."""
    state, final = app.get("state"), app.get("finalStatus")
    diagnostics = str(app.get("diagnostics") or "")
    finished = app.get("finishedTime") or 0
    common: dict[str, Any] = {"usage": usage(app), "agent": node_of(app), "message": diagnostics,
                              "sandbox": app.get("id")}
    if finished:
        common["timestamp"] = finished / 1000.0
    if state == "FINISHED" and final == "SUCCEEDED":
        return TaskEvent(task_id, TaskState.FINISHED, exit_code=0, **common)
    if kill_cause == "killed":
        return TaskEvent(task_id, TaskState.KILLED, reason="killed", **common)
    if kill_cause == "timeout":
        return TaskEvent(task_id, TaskState.FAILED, reason="timeout", **common)
    if state == "KILLED":
        return TaskEvent(task_id, TaskState.FAILED, reason="killed_externally", **common)
    if state == "FAILED" and LOST.search(diagnostics):
        return TaskEvent(task_id, TaskState.LOST, reason="node_lost", **common)
    if state == "FAILED":
        reason = "am_expired" if "timed out" in diagnostics else "am_failed"
        return TaskEvent(task_id, TaskState.FAILED, reason=reason, **common)
    return TaskEvent(task_id, TaskState.FAILED, reason="task_failed", **common)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value >= 0 else None
