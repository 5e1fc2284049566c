"""Benchmark: N no-op tasks through the gateway on Slurm against N ``sbatch --wrap`` from a shell loop.

Both run on the same real Slurm cluster, started here from Debian's packages
exactly as the tests start it (``tests/servers/slurm.py``: munged, MariaDB,
slurmdbd, slurmctld and one slurmd with 8 cpus on 127.0.0.1; needs root):

* baseline: a bash loop submits the bench-noop task's command N times with
  ``sbatch --wrap`` and the step's resources (1 cpu, 16 MiB, 1 minute), then
  polls ``squeue`` every 0.5 s until none is pending or running;
* gateway: one job of the bench-noop processor (N tasks) written to the job
  store as an Execute writes it, run by the dispatcher with ``backend =
  slurm`` and the shipped ``[slurm]`` settings, timed until the store says
  the job is successful;
* the Slurm backend alone (for attribution): N ``TaskSpec``s of that command
  launched on it, timed until the last terminal event.

Both include Slurm's own scheduling and launching, which dominates the wall
time; the ratio is what the gateway adds to it. The CPU time spent on the
submitting side (this process with its threads, and every command it ran:
bash, sbatch, squeue, sacct) shows what each way costs the machine it runs on.
Queries are counted by Slurm itself: slurmctld's RPC statistics (``sdiag``:
REQUEST_JOB_INFO is one squeue, REQUEST_SUBMIT_BATCH_JOB one sbatch) and
slurmdbd's (``sacctmgr show stats``: DBD_GET_JOBS_COND is one sacct), reset
before each run. ``BENCH_SLURM_EXPORT_NONE=1`` adds the loop
with ``sbatch --export=NONE``, which shows why the backend does not use it.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, Row, median, parse_args, report
from dispatch_overhead import noop_processor, run_dispatcher, run_tasks, task_command

from mesos_backend import create_backend

sys.path.insert(0, str(REPO))  # the test cluster's launcher lives with the tests

RUN_TIMEOUT = 1800.0
RPC_LINE = re.compile(r"^\s*(\w+)\s+\(\s*\d+\)\s+count:(\d+)", re.MULTILINE)


def rpc_counts(cluster, command: list[str]) -> dict[str, int]:
    """Per message type counts from ``sdiag`` or ``sacctmgr show stats``."""
    return {name: int(count) for name, count in RPC_LINE.findall(cluster.run(*command).split(
        "statistics by user")[0])}


def reset_counts(cluster) -> None:
    cluster.run("sdiag", "--reset")
    cluster.run("sacctmgr", "-i", "clear", "stats")


def queries(cluster) -> dict[str, int]:
    counts = rpc_counts(cluster, ["sdiag"])
    dbd = rpc_counts(cluster, ["sacctmgr", "show", "stats"])
    return {"squeue": counts.get("REQUEST_JOB_INFO", 0) + counts.get("REQUEST_JOB_INFO_SINGLE", 0),
            "sbatch": counts.get("REQUEST_SUBMIT_BATCH_JOB", 0),
            "scancel": counts.get("REQUEST_KILL_JOB", 0) + counts.get("REQUEST_CANCEL_JOB", 0),
            "sacct": dbd.get("DBD_GET_JOBS_COND", 0)}


def run_shell_loop(cluster, n: int, workdir: Path, command: list[str], export: str = "") -> float:
    """Wall seconds for a bash loop of n ``sbatch --wrap`` and a squeue poll until all ended."""
    options = f"--quiet --cpus-per-task=1 --mem=16M --time=1 --output={workdir}/slurm-%j.out {export}"
    script = f"""
for i in $(seq {n}); do
  sbatch {options} --wrap '{' '.join(command)}'
done
while [ -n "$(squeue --noheader --states=PENDING,RUNNING,COMPLETING --format=%i)" ]; do sleep 0.5; done
"""
    start = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True, cwd=workdir, timeout=RUN_TIMEOUT,
                   env={**os.environ, **cluster.env})
    return time.perf_counter() - start


def run_backend(cluster, processor, n: int, workdir: Path) -> float:
    """Wall seconds for the Slurm backend alone to run n TaskSpecs of the noop step, launch to last end."""
    from mesos_backend.slurm.backend import backend_options

    options = backend_options({"conf": str(cluster.conf)})  # the shipped settings otherwise
    return run_tasks(create_backend("slurm", sandbox_root=workdir / "sandboxes", **options), processor, n)


def cpu_seconds() -> float:
    """CPU time of this process and of the commands it ran (sbatch, squeue, sacct, bash) so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(n: int, repeat: int, export_none: bool
            ) -> tuple[dict[str, list[float]], dict[str, dict[str, int]], dict[str, list[float]]]:
    from tests.conftest import free_port
    from tests.servers.slurm import PORTS, SlurmCluster, loopback_host_name

    processor = noop_processor()
    runs: dict[str, list[float]] = {"shell": [], "gateway": [], "backend": []}
    if export_none:
        runs["shell-export-none"] = []
    counted: dict[str, dict[str, int]] = {}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    root = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    cluster = SlurmCluster(root, {name: free_port() for name in PORTS}, *loopback_host_name())
    try:
        cluster.start()
        for _ in range(repeat):
            for name in runs:
                reset_counts(cluster)
                cpu_before = cpu_seconds()
                with tempfile.TemporaryDirectory(prefix=f"bench-slurm-{name}-") as tmp:
                    if name.startswith("shell"):
                        export = "--export=NONE" if name == "shell-export-none" else ""
                        runs[name].append(run_shell_loop(cluster, n, Path(tmp), task_command(processor), export))
                    elif name == "backend":
                        runs[name].append(run_backend(cluster, processor, n, Path(tmp)))
                    else:
                        # Reading the store for the job's end every 0.5 s, as the bash loop reads squeue:
                        # polled every 10 ms for minutes, it would be most of the CPU counted.
                        runs[name].append(run_dispatcher(processor, n, 1, Path(tmp), poll=0.5,
                                                         GATEWAY_BACKEND="slurm", SLURM_CONF=str(cluster.conf)))
                cpu[name].append(cpu_seconds() - cpu_before)
                counted[name] = queries(cluster)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return runs, counted, cpu


def seconds(times: list[float]) -> str:
    text = f"{median(times):.1f} s"
    return text + (f" ({min(times):.1f}-{max(times):.1f})" if len(times) > 1 else "")


def rows_for(runs: dict[str, list[float]], counted: dict[str, dict[str, int]], cpu: dict[str, list[float]],
             n: int) -> list[Row]:
    title = f"Slurm, {n:,} no-op tasks, 1 node of 8 cpus"
    ratio = median(runs["gateway"]) / median(runs["shell"])
    rows = [Row(title, "job through dispatcher + Slurm backend: wall time", seconds(runs["gateway"]),
                f"bash loop of sbatch --wrap: {seconds(runs['shell'])}", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5),
            Row(title, "extra wall time per task",
                f"{(median(runs['gateway']) - median(runs['shell'])) / n * 1000:.1f} ms", "0 (bash loop)")]
    rows.append(Row(title, "Slurm backend alone (TaskSpecs): wall time", seconds(runs["backend"]),
                    f"bash loop: {seconds(runs['shell'])}", f"{median(runs['backend']) / median(runs['shell']):.2f}x",
                    "- (attribution)"))
    shell_cpu = median(cpu["shell"])
    for name, label in (("gateway", "job through dispatcher + Slurm backend"), ("backend", "Slurm backend alone")):
        rows.append(Row(title, f"{label}: CPU per task on the submitting side (process + commands it ran)",
                        f"{median(cpu[name]) / n * 1000:.1f} ms", f"bash loop: {shell_cpu / n * 1000:.1f} ms",
                        f"{median(cpu[name]) / shell_cpu:.2f}x"))
    if "shell-export-none" in runs:
        rows.append(Row(title, "bash loop of sbatch --export=NONE --wrap: wall time (why the backend does not)",
                        seconds(runs["shell-export-none"]), f"bash loop: {seconds(runs['shell'])}",
                        f"{median(runs['shell-export-none']) / median(runs['shell']):.2f}x"))
    for command in ("squeue", "sacct", "sbatch", "scancel"):
        gateway, shell = counted["gateway"][command], counted["shell"][command]
        rows.append(Row(title, f"{command} queries per task (Slurm's RPC statistics)", f"{gateway / n:.3f}",
                        f"bash loop: {shell / n:.3f}"))
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n, repeat = (100, 1) if args.quick else (1000, 1)
    from tests.servers.slurm import DAEMONS, loopback_host_name

    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing or os.geteuid() != 0 or loopback_host_name() is None:
        reason = f"skipped: needs root, Debian's Slurm packages and a loopback host name ({', '.join(missing)})"
        report([Row(f"Slurm, {n:,} no-op tasks", "job through dispatcher + Slurm backend", reason)], args.json)
        return
    runs, counted, cpu = measure(n, repeat, export_none=os.environ.get("BENCH_SLURM_EXPORT_NONE") == "1")
    print("runs (s): " + "; ".join(f"{name} " + ", ".join(f"{t:.1f}" for t in times) for name, times in runs.items()))
    print(f"queries: {counted}")
    report(rows_for(runs, counted, cpu, n), args.json)


if __name__ == "__main__":
    main()
