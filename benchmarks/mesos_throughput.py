"""The Mesos framework and the test master alone: no-op tasks queued at once and run to their end.

``MesosBackend`` (``offer_refuse_seconds`` 0.2, as ``big_job.py`` sets it)
subscribes to the test master (``python -m mesos_backend.testing.master``, 10
agents of 8 cpus, allocation interval 0.1 s, in a process of its own) and is
handed ``--tasks`` specs of ``/bin/true noop`` (1 cpu, 16 MB) at once, as the
dispatcher hands them over; no dispatcher, no store. Measured until every
task's terminal event: tasks per second; CPU seconds per task of this process
(the framework: driver, acknowledgement senders, placement) and of the
master's process (HTTP layer, allocator, agents, and the tasks' own processes,
which it waits for); the calls the framework made, by type, and tasks per
ACCEPT. Baseline, in the same run: the same commands run by ``xargs -P 80``
(the agents' cpus). ``--quick``: 1,000 tasks (default 10,000).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import HOST, PYTHON, Row, free_port, parse_args, report, run_server
from dispatch_overhead import run_xargs

from mesos_backend.base import Resources, TaskEvent, TaskSpec, TaskState
from mesos_backend.mesos.backend import MesosBackend, SchedulingOptions

AGENTS = 10
AGENT_CPUS = 8
COMMAND = ["/bin/true", "noop"]
DEADLINE = 1800.0  # seconds: beyond, the run is broken, not slow


class Ends:
    """The backend's event callback: counts terminal events (the dispatcher would record them)."""

    def __init__(self) -> None:
        self.count = 0
        self.failed = 0
        self._lock = threading.Lock()

    def __call__(self, event: TaskEvent) -> None:
        if event.state in (TaskState.FINISHED, TaskState.FAILED, TaskState.KILLED, TaskState.LOST):
            with self._lock:
                self.count += 1
                self.failed += event.state is not TaskState.FINISHED


def cpu_seconds(pid: int, children: bool) -> float:
    """utime + stime of a process (and of its waited-for children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def count_calls(backend: MesosBackend) -> Counter[str]:
    """Count the driver's calls by type (and the tasks its ACCEPTs launch, as ``tasks``)."""
    driver = backend._driver
    assert driver is not None
    calls: Counter[str] = Counter()
    send = driver._call

    def counted(call: dict[str, Any]) -> bool:
        calls[call["type"]] += 1
        for operation in (call.get("accept") or {}).get("operations", []):
            calls["tasks"] += len((operation.get("launch") or {}).get("task_infos", []))
        return send(call)

    driver._call = counted  # type: ignore[method-assign]
    return calls


def run_mesos(n: int, workdir: Path) -> tuple[float, float, float, Counter[str], int]:
    """(seconds, framework CPU s, master CPU s, calls, failed) for n tasks through the backend and the master."""
    port = free_port()
    argv = [PYTHON, "-m", "mesos_backend.testing.master", "--host", HOST, "--port", str(port),
            "--agents", str(AGENTS), "--agent-resources", f"cpus:{AGENT_CPUS};mem:32768;disk:100000",
            "--work-dir", str(workdir / "mesos"), "--allocation-interval", "0.1", "--heartbeat-interval", "5"]
    with run_server(argv, port, workdir / "master.log") as master:
        ends = Ends()
        backend = MesosBackend(f"{HOST}:{port}", scheduling=SchedulingOptions(offer_refuse_seconds=0.2))
        backend.start(ends)
        try:
            deadline = time.monotonic() + 60
            while backend._driver is None or not backend._driver.connected:
                if time.monotonic() > deadline:
                    raise RuntimeError("the framework did not subscribe within 60 s")
                time.sleep(0.05)
            calls = count_calls(backend)
            own, theirs = cpu_seconds(os.getpid(), False), cpu_seconds(master.pid, True)
            started = time.monotonic()
            for i in range(n):
                backend.launch(TaskSpec(task_id=f"bench.noop.{i}.1", command=COMMAND, resources=Resources(1, 16),
                                        process="bench-noop", timeout=600, labels={"job_id": "bench"}))
            while ends.count < n:
                if time.monotonic() - started > DEADLINE:
                    raise RuntimeError(f"only {ends.count} of {n} tasks ended within {DEADLINE:g} s")
                time.sleep(0.05)
            seconds = time.monotonic() - started
            own, theirs = cpu_seconds(os.getpid(), False) - own, cpu_seconds(master.pid, True) - theirs
        finally:
            backend.stop()
    return seconds, own, theirs, calls, ends.failed


def task_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", type=int, help="tasks (default 10,000; --quick 1,000)")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], task_options)
    n = args.tasks or (1_000 if args.quick else 10_000)
    slots = AGENTS * AGENT_CPUS
    with tempfile.TemporaryDirectory(prefix="bench-mesos-rate-") as tmp:
        bare = run_xargs(COMMAND, n, slots)
        seconds, own, theirs, calls, failed = run_mesos(n, Path(tmp))
    bench = f"Mesos framework + test master, {n:,} no-op tasks ({AGENTS} agents x {AGENT_CPUS} cpus)"
    per = {kind: count / n for kind, count in calls.items() if kind != "tasks"}
    rows = [
        Row(bench, "tasks per second, all queued at once, to every terminal update", f"{n / seconds:,.0f}/s",
            f"xargs -P {slots}: {n / bare:,.0f}/s", f"{bare / seconds:.2f}x"),
        Row(bench, "CPU per task: the framework (this process) / the master, its agents and the tasks",
            f"{own / n * 1000:.1f} ms / {theirs / n * 1000:.1f} ms"),
        Row(bench, "calls per task, by type", ", ".join(f"{kind} {count:.2f}" for kind, count in
                                                       sorted(per.items(), key=lambda kv: -kv[1])),
            "-", f"{calls['tasks'] / max(calls['ACCEPT'], 1):.1f} tasks per ACCEPT"),
    ]
    if failed:
        rows.append(Row(bench, "tasks that did not finish", f"{failed:,}"))
    report(rows, args.json)


if __name__ == "__main__":
    main()
