"""Benchmark 1: local dispatch overhead against `xargs -P`.

N no-op tasks (the bench-noop processor's command, ``/bin/true noop``) run
three ways in the same run, with the same number of slots (one per core):

* ``xargs -P <slots>``: the floor, just fork/exec/wait;
* the local backend alone: N ``TaskSpec``s launched on ``LocalBackend``,
  timed until the last terminal event (sandbox, stdout/stderr files, process
  group, rusage per task);
* the whole gateway path: one job of the bench-noop processor whose workflow
  splits into N tasks, written to the job store the way an Execute writes it,
  timed from submission until the dispatcher has marked the job successful
  (planning, task and attempt rows, launches, events, job progress).

The three are interleaved and repeated; medians are reported. Target: the
gateway path takes at most 1.3x the wall time of xargs.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from _common import PROCESSORS_DIR, Row, median, parse_args, report

from mesos_backend import Backend, Resources, TaskEvent, TaskSpec
from mesos_backend.local import LocalBackend
from processes.descriptor import Processor, load_descriptor_file
from wps_gateway.address_policy import AddressPolicy
from wps_gateway.config import load_settings
from wps_gateway.heap import freeze_startup_heap
from wps_gateway.inputs import RawInput, check_inputs
from wps_gateway.jobs import ResponseForm, submit_job, wait_for_job
from wps_gateway.runner import DispatcherRunner
from wps_gateway.store.db import Store
from wps_gateway.store.models import JobStatus

TARGET_RATIO = 1.3
RUN_TIMEOUT = 600.0  # seconds; a run that takes this long is broken, not slow


def noop_processor() -> Processor:
    return load_descriptor_file(PROCESSORS_DIR / "noop" / "descriptor.yaml")


def task_command(processor: Processor) -> list[str]:
    """What the planner makes each task run: the processor's command plus the step id."""
    return [*processor.command, processor.steps[0].id]


def run_xargs(command: list[str], n: int, slots: int) -> float:
    """Wall seconds for xargs to run ``command`` n times, ``slots`` at a time."""
    *program, last = command
    lines = (last + "\n") * n
    start = time.perf_counter()
    subprocess.run(["xargs", "-n", "1", "-P", str(slots), *program], input=lines.encode(),
                   stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def run_backend(processor: Processor, n: int, slots: int, workdir: Path) -> float:
    """Wall seconds for LocalBackend to run n tasks of the noop step, launch to last terminal event."""
    return run_tasks(LocalBackend(sandbox_root=workdir / "sandboxes", cpus=slots), processor, n)


def run_tasks(backend: Backend, processor: Processor, n: int) -> float:
    """Wall seconds for ``backend`` to run n tasks of the noop step, launch to last terminal event."""
    step = processor.steps[0]
    resources = Resources(cpus=step.resources.cpus, mem=step.resources.mem)
    finished: list[TaskEvent] = []
    all_done = threading.Event()

    def on_event(event: TaskEvent) -> None:
        if event.state.is_terminal:
            finished.append(event)
            if len(finished) == n:
                all_done.set()

    backend.start(on_event)
    try:
        start = time.perf_counter()
        for i in range(n):
            backend.launch(TaskSpec(task_id=f"noop-{i}", command=task_command(processor), resources=resources,
                                    timeout=step.timeout))
        if not all_done.wait(RUN_TIMEOUT):
            raise RuntimeError(f"{backend.name} backend: {len(finished)} of {n} tasks ended within {RUN_TIMEOUT:g} s")
        elapsed = time.perf_counter() - start
    finally:
        backend.stop()
    failed = [e for e in finished if not e.succeeded]
    if failed:
        raise RuntimeError(f"{backend.name} backend: {len(failed)} tasks failed, e.g. {failed[0]}")
    return elapsed


def run_dispatcher(processor: Processor, n: int, slots: int, workdir: Path, poll: float = 0.01,
                   **settings_environ: str) -> float:
    """Wall seconds from submitting one n-task job until the dispatcher has marked it successful.

    ``poll`` is how often the store is read for the job's end; ``settings_environ`` adds settings
    (another backend, say) to the shipped ones.
    """
    settings = load_settings(environ={
        "GATEWAY_DATA_DIR": str(workdir / "var"),
        "GATEWAY_PROCESSORS_PATHS": str(PROCESSORS_DIR),
        "LOCAL_CPUS": str(slots),
        **settings_environ,
    })
    store = Store(settings.database_url)
    store.upgrade()
    runner = DispatcherRunner(settings, store)
    runner.start_thread()
    try:
        if not runner.is_leader.wait(30):
            raise RuntimeError("the dispatcher did not become active")
        deadline = time.monotonic() + 30  # and has started (its backend up, a first turn done): it idles
        while runner.dispatcher.turns < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the dispatcher did not take its first turn")
            time.sleep(0.01)
        freeze_startup_heap()  # as wps-gateway serve and dispatch do once started
        inputs = check_inputs(processor, {"n": [RawInput(value=i) for i in range(n)]}, AddressPolicy())
        start = time.perf_counter()
        job = submit_job(store, settings.jobs_dir, processor, inputs, ResponseForm(asynchronous=True),
                         protocol="benchmark")
        runner.wake()  # what the Execute handler does with an embedded dispatcher
        job = wait_for_job(store, job.id, RUN_TIMEOUT, interval=poll)
        elapsed = time.perf_counter() - start
    finally:
        runner.stop()
        store.dispose()
    if job.status != JobStatus.SUCCESSFUL:
        raise RuntimeError(f"benchmark job ended {job.status}: {job.message}")
    return elapsed


def measure(n: int, slots: int, repeat: int) -> dict[str, list[float]]:
    """Interleave the three ways ``repeat`` times, so drift on the machine hits all of them alike."""
    processor = noop_processor()
    command = task_command(processor)
    runs: dict[str, list[float]] = {"xargs": [], "backend": [], "dispatcher": []}
    ways: dict[str, Callable[[Path], float]] = {
        "xargs": lambda _: run_xargs(command, n, slots),
        "backend": lambda tmp: run_backend(processor, n, slots, tmp),
        "dispatcher": lambda tmp: run_dispatcher(processor, n, slots, tmp),
    }
    for _ in range(repeat):
        for name, way in ways.items():
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
                runs[name].append(way(Path(tmp)))
    return runs


def seconds(times: list[float]) -> str:
    """Median, with the range when there were repeats (the figures vary run to run with the disk)."""
    text = f"{median(times):.2f} s"
    return text + (f" ({min(times):.2f}-{max(times):.2f})" if len(times) > 1 else "")


def rows_for(runs: dict[str, list[float]], n: int, slots: int) -> list[Row]:
    base = median(runs["xargs"])
    title = f"Local dispatch, {n:,} no-op tasks, {slots} slots"
    baseline = f"xargs -P {slots}: {seconds(runs['xargs'])}"
    rows = []
    for name, label, target in (("dispatcher", "job through dispatcher + local backend", TARGET_RATIO),
                                ("backend", "local backend alone (TaskSpecs)", None)):
        ratio = median(runs[name]) / base
        rows.append(Row(title, f"{label}: wall time", seconds(runs[name]), baseline, f"{ratio:.2f}x",
                        f"<= {target:g}x" if target else "- (attribution)",
                        ratio <= target if target else None))
    for name, label in (("dispatcher", "dispatcher + backend"), ("backend", "backend alone")):
        extra_ms = (median(runs[name]) - base) / n * 1000
        rows.append(Row(title, f"{label}: extra wall time per task", f"{extra_ms:.2f} ms", "0 (xargs)"))
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n, repeat = (100, 1) if args.quick else (1000, 3)
    slots = os.cpu_count() or 1
    runs = measure(n, slots, repeat)
    print("runs (s): " + "; ".join(f"{name} " + ", ".join(f"{t:.2f}" for t in times)
                                   for name, times in runs.items()))
    report(rows_for(runs, n, slots), args.json)


if __name__ == "__main__":
    main()
