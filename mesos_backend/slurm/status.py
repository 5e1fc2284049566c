"""Slurm job states, exit codes and accounting → the backend interface's ``TaskEvent`` and ``Usage``.

What matters for the dispatcher's retry decision: did the script run to its
end (and with which exit code), was it cancelled on request, did it hit its
time limit or its memory, or did the cluster take it away (node failure,
preemption), which is never the task's fault. Slurm's own state and reason
are kept in every message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..base import TaskEvent, TaskState, Usage
from .commands import AccountingRow, JobRow

PENDING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
                            "SUSPENDED", "STOPPED", "SIGNALING", "RESV_DEL_HOLD"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "STAGE_OUT"})
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                             "PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"})
# The cluster took the job away: rerun it without spending one of the task's retries. The dispatcher
# gives an extra attempt for the reasons in its NOT_THE_TASKS_FAULT; this is one of them.
REASON_NOT_THE_TASKS_FAULT = "backend_restarted"
CLUSTER_FAULTS = frozenset({"NODE_FAIL", "PREEMPTED"})
# Reasons for the other ways a job ends, as the local and Mesos backends name them where they have one.
REASON_KILLED = "killed"
REASON_TIMEOUT = "timeout"
_REASONS = {"OUT_OF_MEMORY": "out_of_memory", "BOOT_FAIL": "boot_fail", "DEADLINE": "deadline",
            "REVOKED": "revoked", "SPECIAL_EXIT": "special_exit", "CANCELLED": "cancelled_externally"}
_LOST_STATES = frozenset({"BOOT_FAIL", "REVOKED"})
_DURATION = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)$")
_MB_PER_UNIT = {"": 1 / (1024 * 1024), "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 ** 2, "P": 1024.0 ** 3}


def describe(row: JobRow) -> str:
    """``RUNNING on node1``, ``PENDING (Resources)``: one line for the attempt's history."""
    text = row.state
    if row.reason and row.reason != "None":
        text += f" ({row.reason})"
    if row.node and row.state not in PENDING_STATES:
        text += f" on {row.node}"
    return text


def exit_code_of(row: JobRow) -> int | None:
    """The script's exit code, or minus the signal that ended it (the local backend's convention)."""
    status = row.wait_status
    if status is None:
        return None
    signal = status & 0x7F
    return -signal if signal else (status >> 8) & 0xFF


def to_event(task_id: str, row: JobRow, kill_cause: str | None, usage: Usage | None, *, sandbox: str | None,
             accounting: Iterable[AccountingRow] = (), last_stderr: str = "") -> TaskEvent:
    """The terminal event of a job that ended (``row.state`` in TERMINAL_STATES)."""
    common: dict[str, Any] = {"agent": row.node, "sandbox": sandbox, "usage": usage}
    if row.end:
        common["timestamp"] = row.end
    job = f"Slurm job {row.job_id} {describe(row)}"
    exit_code = _accounted_exit_code(row, accounting)
    state = row.state
    if state == "CANCELLED" and kill_cause == REASON_KILLED:
        return TaskEvent(task_id, TaskState.KILLED, reason=REASON_KILLED, message=f"{job}: cancelled on request",
                         **common)
    if state == "COMPLETED" and exit_code in (0, None):
        allocated = _allocated(accounting, row.job_id)
        return TaskEvent(task_id, TaskState.FINISHED, exit_code=0,
                         message=job + (f"; allocated {allocated}" if allocated else ""), **common)
    if state in ("COMPLETED", "FAILED") and exit_code not in (0, None):
        cause = last_stderr or (f"terminated by signal {-exit_code}" if exit_code < 0
                                else f"exited with code {exit_code}")
        return TaskEvent(task_id, TaskState.FINISHED, exit_code=exit_code, message=f"{cause} ({job})", **common)
    if state == "TIMEOUT":
        return TaskEvent(task_id, TaskState.FAILED, exit_code=exit_code, reason=REASON_TIMEOUT,
                         message=f"{job}: its time limit was reached" + _stderr_note(last_stderr), **common)
    if state in CLUSTER_FAULTS:
        return TaskEvent(task_id, TaskState.LOST, reason=REASON_NOT_THE_TASKS_FAULT,
                         message=f"{job}: taken away by the cluster, rerun", **common)
    if state in _LOST_STATES:
        return TaskEvent(task_id, TaskState.LOST, reason=_REASONS[state], message=job, **common)
    reason = _REASONS.get(state, "launch_failed" if state == "FAILED" else state.lower())
    return TaskEvent(task_id, TaskState.FAILED, exit_code=exit_code, reason=reason,
                     message=job + _stderr_note(last_stderr), **common)


def _stderr_note(last_stderr: str) -> str:
    return f"; last stderr line: {last_stderr}" if last_stderr else ""


def _accounted_exit_code(row: JobRow, accounting: Iterable[AccountingRow]) -> int | None:
    """The controller's wait status of the batch script; sacct's ExitCode (``code:signal``) if it has none."""
    if row.wait_status is not None:
        return exit_code_of(row)
    for line in accounting:
        if line.job_step == row.job_id and ":" in line.exit_code:
            code, _, signal = line.exit_code.partition(":")
            if code.isdigit() and signal.isdigit():
                return -int(signal) if int(signal) else int(code)
    return None


def row_from_accounting(lines: list[AccountingRow], job_id: str, name: str) -> JobRow | None:
    """What squeue would have said of a job the controller has forgotten, from its accounting record."""
    for line in lines:
        if line.job_step == job_id:
            return JobRow(job_id=job_id, state=line.state.split()[0] if line.state else "", reason="None",
                          wait_status=None, start=_epoch(line.start), end=_epoch(line.end),
                          node=line.node if line.node not in ("", "None assigned") else None, name=name,
                          comment="")
    return None


def _epoch(text: str) -> float | None:
    return float(text) if text.isdigit() and int(text) else None


def _allocated(accounting: Iterable[AccountingRow], job_id: str) -> str:
    for line in accounting:
        if line.job_step == job_id:
            return line.alloc_tres
    return ""


def accounting_complete(lines: list[AccountingRow], job_id: str) -> bool:
    """slurmdbd has the job's end and no step still shows as running (its figures are final)."""
    job = [line for line in lines if line.job_step == job_id]
    if not job or job[0].state.split()[0] not in TERMINAL_STATES:
        return False
    return all(line.state.split()[0] not in RUNNING_STATES | PENDING_STATES for line in lines if line.is_step)


def usage_from_accounting(lines: list[AccountingRow], job_id: str) -> Usage | None:
    """Elapsed, TotalCPU and the largest MaxRSS of the job's steps, as Usage."""
    job = [line for line in lines if line.job_step == job_id]
    if not job:
        return None
    steps = [line for line in lines if line.is_step]
    # MaxRSS is sampled every JobAcctGatherFrequency: a step shorter than that shows 0, which says nothing.
    peaks = [mb for line in steps if (mb := size_mb(line.max_rss))]
    elapsed = job[0].elapsed
    wall = float(elapsed) if elapsed.isdigit() else duration_seconds(elapsed)
    tres = allocated_tres(job[0].alloc_tres)
    charged = wall is not None and wall > 0
    return Usage(cpu_seconds=duration_seconds(job[0].total_cpu),
                 mem_peak_mb=max(peaks) if peaks else None,
                 wall_seconds=wall,
                 alloc_cpu_seconds=tres["cpu"] * wall if charged and "cpu" in tres else None,
                 alloc_mem_mb_seconds=tres["mem"] * wall if charged and "mem" in tres else None)


def allocated_tres(text: str) -> dict[str, float]:
    """``AllocTRES`` (``billing=2,cpu=2,mem=1000M,node=1``) as cpus and MiB: what Slurm charges per second."""
    tres: dict[str, float] = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name == "cpu" and value.isdigit():
            tres["cpu"] = float(value)
        elif name == "mem" and (mb := size_mb(value)) is not None:
            tres["mem"] = mb
    return tres


def usage_from_times(row: JobRow) -> Usage | None:
    """Without accounting: the wall time from the controller's start and end times."""
    if row.start and row.end and row.end >= row.start:
        return Usage(wall_seconds=row.end - row.start)
    return None


def duration_seconds(text: str) -> float | None:
    """Slurm durations: ``[D-][HH:]MM:SS[.mmm]`` (TotalCPU, Elapsed)."""
    match = _DURATION.match(text.strip())
    if not match:
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def size_mb(text: str) -> float | None:
    """Slurm memory figures (``96780K``, ``1.5G``, ``0``) in MiB."""
    match = _SIZE.match(text.strip())
    if not match:
        return None
    return float(match.group(1)) * _MB_PER_UNIT[match.group(2)]
