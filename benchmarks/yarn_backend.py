"""What a queued task costs the YARN backend: ResourceManager requests and gateway CPU, 10,000 tasks.

The test ResourceManager runs in its own process (``python -m
mesos_backend.testing.yarn``: 10 NodeManagers of 8 vcores, the smallest
container 128 MB, DistributedShell's stand-in jar on its HDFS), so the CPU
measured here is the gateway side alone: a ``YarnBackend`` in this process
gets 10,000 ``TaskSpec``s of ``/bin/true`` (128 MB, 1 cpu) at once, as the
dispatcher would launch them, and the clock runs until the 10,000th terminal
event. Each task really runs: an AM container (launch script, the stand-in
JVM) and a task container per application on the NodeManagers.

Measured: HTTP requests to the RM per task -- those a task causes
(new-application, submit, the lookup of its final report, alone or in a
query for many) and the shared ones (the poll of the active applications,
one per ``poll_interval`` for all tasks) -- and gateway CPU per task (this
process's CPU time while the tasks ran). Baseline for the CPU: the same
number of bare RM requests (``GET /ws/v1/cluster/info``) sent by a plain
httpx client over one connection in the same run, i.e. what the HTTP alone
costs. Targets (issue 13): at most 3 RM requests per task plus the shared
polling. ``--quick``: 500 tasks.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from _common import PYTHON, Row, free_port, parse_args, proc_status, report, run_server

from mesos_backend import Resources, TaskSpec
from mesos_backend.yarn.backend import SchedulingOptions, YarnBackend
from mesos_backend.yarn.submission import ApplicationOptions

JAR = "/apps/yarn/hadoop-yarn-applications-distributedshell.jar"
NODES = 10
PER_TASK_KINDS = ("POST new-application", "POST apps", "GET app", "GET apps (finished)")
TARGET_PER_TASK = 3.0


def rss_mb() -> float:
    return int(proc_status(__import__("os").getpid())["VmRSS"].split()[0]) / 1024


def run(tasks: int, workdir: Path) -> list[Row]:
    port, hdfs_port = free_port(), free_port()
    argv = [PYTHON, "-m", "mesos_backend.testing.yarn", "--port", str(port), "--nodes", str(NODES),
            "--node-vcores", "8", "--min-memory", "128", "--webhdfs-port", str(hdfs_port), "--put-distshell-jar",
            JAR, "--work-dir", str(workdir / "rm")]
    with run_server(argv, port, workdir / "rm.log"):
        done = threading.Event()
        ended: list[int] = [0]

        def on_event(event) -> None:
            if event.state.is_terminal:
                ended[0] += 1
                if not event.succeeded:
                    print(f"task {event.task_id}: {event.state.value} {event.reason} {event.message[:200]}", flush=True)
                if ended[0] == tasks:
                    done.set()

        backend = YarnBackend(f"127.0.0.1:{port}", user="bench", webhdfs=f"127.0.0.1:{hdfs_port}",
                              am_jar=f"hdfs://127.0.0.1:8020{JAR}", staging_dir="hdfs://127.0.0.1:8020/tmp/wps",
                              application=ApplicationOptions(am_memory=128),
                              scheduling=SchedulingOptions(poll_interval=0.5, max_pending=50))
        specs = [TaskSpec(f"bench.noop.{i}.1", ["/bin/true", "noop"], resources=Resources(cpus=1, mem=128))
                 for i in range(tasks)]
        backend.start(on_event)
        backend.recover([], {})
        rss_before = rss_mb()
        cpu0, wall0 = time.process_time(), time.monotonic()
        for spec in specs:
            backend.launch(spec)
        rss_queued = rss_mb()
        finished = wait_progress(done, ended)
        if not finished:
            with backend._lock:
                states = Counter(t.state for t in backend._tracked.values())
            print(f"stalled: {ended[0]} ended; queued {backend.queued()}; tracked {dict(states)}", flush=True)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        calls, http_requests = dict(backend.rm_http.calls), backend.rm_http.requests
        backend.stop()
        if not finished:
            raise RuntimeError(f"only {ended[0]} of {tasks} tasks ended")
        per_task = sum(calls.get(k, 0) for k in PER_TASK_KINDS)
        polls = calls.get("GET apps (active)", 0)
        baseline_cpu = bare_requests(port, http_requests)

    label = f"YARN backend, {tasks:,} queued no-op tasks, test RM with {NODES} NodeManagers"
    ratio = per_task / tasks
    cpu_per_task = cpu / tasks * 1000
    base_per_task = baseline_cpu / tasks * 1000
    return [
        Row(label, "RM requests per task (new-application, submit, final report)", f"{ratio:.2f}",
            target=f"<= {TARGET_PER_TASK:g}", met=ratio <= TARGET_PER_TASK),
        Row(label, "shared polls of the active applications (one request each)",
            f"{polls:,} in {wall:.0f} s ({polls / tasks:.3f} per task)"),
        Row(label, "all HTTP requests to the RM per task", f"{http_requests / tasks:.2f}"),
        Row(label, "gateway CPU per task", f"{cpu_per_task:.2f} ms",
            f"bare httpx, same number of requests: {base_per_task:.2f} ms", f"{cpu_per_task / base_per_task:.2f}x"),
        Row(label, "wall time, all tasks (the test RM runs every one)", f"{wall:.0f} s ({tasks / wall:.0f} tasks/s)"),
        Row(label, "RSS growth when the tasks were queued", f"{rss_queued - rss_before:+.1f} MiB "
            f"({(rss_queued - rss_before) * 1024 * 1024 / tasks:.0f} B per task)"),
    ]


def wait_progress(done: threading.Event, ended: list[int], stall: float = 120.0) -> bool:
    """Wait until every task ended; give up when none has ended for ``stall`` seconds."""
    last, since = ended[0], time.monotonic()
    while not done.wait(1.0):
        if ended[0] != last:
            last, since = ended[0], time.monotonic()
        elif time.monotonic() - since > stall:
            return False
    return True


def bare_requests(port: int, count: int) -> float:
    """CPU seconds of ``count`` plain GETs to the same RM over one keep-alive connection."""
    url = f"http://127.0.0.1:{port}/ws/v1/cluster/info"
    with httpx.Client(headers={"Accept": "application/json"}) as client:
        client.get(url).json()
        started = time.process_time()
        for _ in range(count):
            client.get(url, params={"user.name": "bench"}).json()
        return time.process_time() - started


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    with tempfile.TemporaryDirectory(prefix="bench-yarn-") as tmp:
        rows = run(500 if args.quick else 10_000, Path(tmp))
    report(rows, args.json)


if __name__ == "__main__":
    main()
