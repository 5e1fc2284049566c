"""One job of 10,000 tasks on the local backend and one of 100,000 on the Mesos test master.

Each job is ``bench-noop`` (one ``/bin/true`` task per value of ``n``),
submitted as an Execute submits it (``check_inputs``, ``submit_job`` with its
task count) to a store of its own, SQLite or PostgreSQL (the tests' server
recipe, 127.0.0.1), and run by ``wps-gateway dispatch`` in a process of its
own (so that its memory is its own), with the shipped settings but for
``max_tasks_per_job`` and ``poll_interval`` 0.05 s (an external dispatcher
finds new jobs by polling; the default 0.25 s would add up to that much to
the planning time). Measured:

* planning time: from the submission until the store shows the job planned
  (its tasks are written in the transaction that marks it running); the
  baseline is inserting the very same task rows, read back from the store,
  into a fresh store of the same kind in one transaction (one ``executemany``);
* launching: until every task has an attempt and was handed to the backend;
  for the local job, until the job has succeeded (every task run);
* memory: the dispatcher process's peak resident size (``VmHWM``) and its
  growth over the same process idle before the job (median of 2 s of
  samples once it leads); per task;
* the store's size per task: the SQLite file (after a WAL checkpoint) or the
  PostgreSQL relations (``pg_total_relation_size``: heap, TOAST, indexes) it
  grew by, over the number of tasks; beside the same figure for the bare task
  rows of the planning baseline.

The local job runs to its end (2 slots). The Mesos job runs on the test
master (``python -m mesos_backend.testing.master``, 10 agents of 8 cpus, in a
process of its own) until every task is launched and then ``MESOS_RUN``
seconds more; it is not run to its end. (Each task's ``WPS_TASK`` document
names the job's inputs, written once to a file of the job, once they make it
too large for the environment: before, a job of N tasks over N inputs copied
them into every task, and launching was quadratic in the job's size.)
``--quick``: 1,000 and 5,000 tasks;
``--local-tasks``, ``--mesos-tasks`` (0: not run) and ``--stores`` pick the parts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    HOST,
    PROCESSORS_DIR,
    PYTHON,
    REPO,
    Row,
    free_port,
    gateway_environ,
    median,
    parse_args,
    postgres_server,
    proc_status,
    report,
    run_server,
)
from sqlalchemy import Engine, Text, cast, func, insert, select

from processes.descriptor import load_descriptor_file
from wps_gateway.address_policy import AddressPolicy
from wps_gateway.health import health_report
from wps_gateway.inputs import RawInput, check_inputs
from wps_gateway.jobs import ResponseForm, submit_job
from wps_gateway.planner import count_tasks
from wps_gateway.store.db import Store
from wps_gateway.store.models import Job, JobStatus, Task, TaskStatus

SAMPLE_EVERY = 0.05  # seconds between readings of the store and of the dispatcher's memory
IDLE_SECONDS = 2.0
MESOS_AGENTS = 10
MESOS_AGENT = "cpus:8;mem:32768;disk:100000"
MESOS_RUN = 60.0
DEADLINE = 1800.0  # seconds any one wait may take: beyond, the run is broken, not slow


@dataclass
class Result:
    name: str
    tasks: int
    planning: float = 0.0
    bare_insert: float = 0.0
    launching: float = 0.0  # submission to every task handed to the backend
    half_launched: float = 0.0  # submission to half of them handed to the backend
    finished: float | None = None  # submission to the job's success (the local job)
    ran: int = 0  # tasks that ended by the time the store was measured
    failed: dict[str, int] = field(default_factory=dict)  # of which failed: how many per message
    idle_kb: int = 0
    peak_kb: int = 0
    store_bytes: int = 0
    bare_bytes: int = 0
    spec_bytes: float = 0.0  # the mean task spec as the gateway stores it (its JSON)
    tables: dict[str, int] = field(default_factory=dict)


# -- the dispatcher and its memory --------------------------------------------------------------------------


class MemoryWatch:
    """Samples a process's resident size while it runs (the peak itself comes from VmHWM)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            try:
                self.samples.append((time.monotonic(), int(proc_status(self.pid)["VmRSS"].split()[0])))
            except (OSError, KeyError):
                return

    def median_since(self, since: float) -> int:
        return int(median([kb for at, kb in self.samples if at >= since]))

    def peak(self) -> int:
        return int(proc_status(self.pid)["VmHWM"].split()[0])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def dispatcher(workdir: Path, url: str, settings: dict[str, str], store: Store) -> Iterator[MemoryWatch]:
    """``wps-gateway dispatch`` on the store, leading and idle; stopped (SIGTERM, then its grace) after."""
    env = gateway_environ(workdir / "var", free_port(), workdir, GATEWAY_DATABASE_URL=url,
                          GATEWAY_POLL_INTERVAL="0.05", GATEWAY_SHUTDOWN_GRACE="1", **settings)
    with open(workdir / "dispatcher.log", "wb") as log:
        process = subprocess.Popen([PYTHON, "-m", "wps_gateway.cli", "dispatch"], cwd=REPO, env=env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    watch = MemoryWatch(process.pid)
    try:
        wait_for(lambda: process.poll() is not None or health_report(store)["dispatcher"].get("holder", "")
                 .endswith(f":{process.pid}"), 60, "the dispatcher to lead")
        if process.poll() is not None:
            raise RuntimeError(f"the dispatcher exited: {(workdir / 'dispatcher.log').read_text()[-2000:]}")
        yield watch
    finally:
        watch.stop()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` every SAMPLE_EVERY seconds; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {timeout:g} s")
        time.sleep(SAMPLE_EVERY)
    return time.monotonic()


# -- the store's size ------------------------------------------------------------------------------------


def store_size(engine: Engine) -> dict[str, int]:
    """Bytes per table, indexes and TOAST included: SQLite's pages (dbstat, after a WAL checkpoint) or
    PostgreSQL's ``pg_total_relation_size``."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = connection.exec_driver_sql(
                "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
                "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1").all()
        else:
            rows = connection.exec_driver_sql(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'").all()
    return {name: int(size) for name, size in rows}


def grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


# -- the job -----------------------------------------------------------------------------------------------


def run_job(name: str, url: str, bare_url: str, tasks: int, workdir: Path, settings: dict[str, str],
            run_to_end: bool, extra_run: float) -> Result:
    """Submit one ``tasks``-task job and measure it; see the module docstring."""
    result = Result(name, tasks)
    store = Store(url)
    store.upgrade()
    before = store_size(store.engine)
    processor = load_descriptor_file(PROCESSORS_DIR / "noop" / "descriptor.yaml")
    checked = check_inputs(processor, {"n": [RawInput(value=i) for i in range(tasks)]}, AddressPolicy())
    settings = {"GATEWAY_MAX_TASKS_PER_JOB": str(tasks), **settings}
    with dispatcher(workdir, url, settings, store) as watch:
        idle_from = time.monotonic()
        time.sleep(IDLE_SECONDS)
        result.idle_kb = watch.median_since(idle_from)
        started = time.monotonic()
        job = submit_job(store, workdir / "var" / "jobs", processor, checked, ResponseForm(asynchronous=True),
                         protocol="ogcapi", task_count=count_tasks(processor, checked.values))
        planned = wait_for(lambda: job_status(store, job.id) != JobStatus.ACCEPTED, DEADLINE, "plan")
        if job_status(store, job.id) != JobStatus.RUNNING:
            raise RuntimeError(f"{name}: the job was not planned: {job_status(store, job.id)}")
        result.planning = planned - started
        half = wait_for(lambda: queued(store, job.id) <= tasks // 2, DEADLINE, "launch of half the tasks")
        result.half_launched = half - started
        launched = wait_for(lambda: queued(store, job.id) == 0, DEADLINE, "launch of every task")
        result.launching = launched - started
        if run_to_end:
            ended = wait_for(lambda: job_status(store, job.id) in JobStatus.FINAL, DEADLINE, "end of the job")
            if job_status(store, job.id) != JobStatus.SUCCESSFUL:
                raise RuntimeError(f"{name}: the job ended {job_status(store, job.id)}")
            result.finished = ended - started
        else:
            time.sleep(extra_run)
        result.peak_kb = watch.peak()
    result.ran = ended_tasks(store, job.id)
    result.failed = failures(store, job.id)
    result.tables = grown(before, store_size(store.engine))
    result.store_bytes = sum(result.tables.values())
    result.bare_insert, result.bare_bytes, result.spec_bytes = bare_rows(store, bare_url, job.id)
    store.dispose()
    return result


def job_status(store: Store, job_id: str) -> str:
    with store.sessions() as session:
        return session.scalar(select(Job.status).where(Job.id == job_id))


def queued(store: Store, job_id: str) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).where(Task.job_id == job_id, Task.status == TaskStatus.QUEUED))


def ended_tasks(store: Store, job_id: str) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).where(Task.job_id == job_id, Task.status.in_(TaskStatus.FINAL)))


def failures(store: Store, job_id: str) -> dict[str, int]:
    with store.sessions() as session:
        return {message: count for message, count in session.execute(
            select(Task.message, func.count()).where(Task.job_id == job_id, Task.status == TaskStatus.FAILED)
            .group_by(Task.message))}


def bare_rows(store: Store, bare_url: str, job_id: str) -> tuple[float, int, float]:
    """Insert the job's task rows as they were planned into a fresh store: (seconds, bytes it grew by, mean
    bytes of a task's spec JSON)."""
    tasks, jobs = Task.__table__, Job.__table__
    with store.engine.connect() as connection:
        job = connection.execute(select(jobs).where(jobs.c.id == job_id)).mappings().one()
        rows = [dict(row) for row in connection.execute(select(tasks).where(tasks.c.job_id == job_id)).mappings()]
        spec_bytes = connection.execute(select(func.avg(func.length(cast(tasks.c.spec, Text))))
                                        .where(tasks.c.job_id == job_id)).scalar_one()
    for row in rows:  # as planned: before any attempt
        row.update(status=TaskStatus.QUEUED, attempts=0, started=None, finished=None, message="", not_before=None)
    bare = Store(bare_url)
    bare.upgrade()
    with bare.engine.begin() as connection:
        connection.execute(insert(jobs), [dict(job)])
    before = store_size(bare.engine)
    started = time.perf_counter()
    with bare.engine.begin() as connection:
        connection.execute(insert(tasks), rows)
    seconds = time.perf_counter() - started
    size = sum(grown(before, store_size(bare.engine)).values())
    bare.dispose()
    return seconds, size, float(spec_bytes)


# -- the Mesos test master ------------------------------------------------------------------------------------


@contextmanager
def mesos_master(workdir: Path) -> Iterator[str]:
    """The test master in a process of its own, with MESOS_AGENTS agents; yields host:port."""
    port = free_port()
    argv = [PYTHON, "-m", "mesos_backend.testing.master", "--host", HOST, "--port", str(port),
            "--agents", str(MESOS_AGENTS), "--agent-resources", MESOS_AGENT, "--work-dir", str(workdir / "mesos"),
            "--allocation-interval", "0.1", "--heartbeat-interval", "5"]
    with run_server(argv, port, workdir / "master.log"):
        yield f"{HOST}:{port}"


MESOS_SETTINGS = {"GATEWAY_BACKEND": "mesos", "MESOS_OFFER_REFUSE_SECONDS": "0.2", "MESOS_FAILOVER_TIMEOUT": "60"}


# -- the table --------------------------------------------------------------------------------------------------


def rows_for(r: Result) -> list[Row]:
    bench = f"Big job, {r.name}"
    mib = 1024.0
    growth = r.peak_kb - r.idle_kb
    rows = [
        Row(bench, "planning: submission to every task planned", f"{r.planning:.2f} s",
            f"the same task rows inserted bare: {r.bare_insert:.2f} s", f"{r.planning / r.bare_insert:.1f}x"),
        Row(bench, "submission to every task launched (an attempt each, handed to the backend)",
            f"{r.launching:.1f} s ({r.tasks / r.launching:,.0f} tasks/s)",
            f"first half: {r.half_launched:.1f} s, second half: {r.launching - r.half_launched:.1f} s",
            # a job launched in a turn or two (DispatcherOptions.batch each) has no halves worth comparing
            f"{(r.launching - r.half_launched) / r.half_launched:.1f}x" if r.launching - r.half_launched >= 1.0
            else "-"),
    ]
    if r.finished is not None:
        rows.append(Row(bench, "submission to the job's success (every task run)", f"{r.finished:.1f} s",
                        "-", "-", "-", None))
    rows += [
        Row(bench, "dispatcher memory: peak resident (VmHWM)", f"{r.peak_kb / mib:.1f} MiB",
            f"idle, before the job: {r.idle_kb / mib:.1f} MiB", f"+{growth / mib:.1f} MiB "
            f"({growth * 1024 / r.tasks:,.0f} B per task)"),
        Row(bench, f"store size per task ({r.ran:,} of {r.tasks:,} tasks ended when measured, "
                   f"{sum(r.failed.values()):,} failed)",
            f"{r.store_bytes / r.tasks:,.0f} B", f"bare task rows: {r.bare_bytes / r.tasks:,.0f} B "
            f"(spec JSON {r.spec_bytes:,.0f} B)", f"{r.store_bytes / r.bare_bytes:.1f}x"),
        Row(bench, "store growth by table", ", ".join(f"{name} {size / r.tasks:,.0f} B" for name, size in
                                                      sorted(r.tables.items(), key=lambda kv: -kv[1])) + " per task"),
    ]
    rows += [Row(bench, f"tasks failed: {message}", f"{count:,}") for message, count in r.failed.items()]
    return rows


@contextmanager
def stores(kind: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """The store's URL and the bare baseline's, of one kind."""
    if kind == "SQLite":
        yield f"sqlite:///{workdir / 'var' / 'gateway.db'}", f"sqlite:///{workdir / 'bare.db'}"
        return
    with postgres_server() as server:
        yield server.url(server.create_database()), server.url(server.create_database())


def task_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--local-tasks", type=int, help="tasks of the local job (default 10,000; 0: not run)")
    parser.add_argument("--mesos-tasks", type=int, help="tasks of the Mesos job (default 100,000; 0: not run)")
    parser.add_argument("--stores", default="SQLite,PostgreSQL", help="which stores, comma-separated")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], task_options)
    local_tasks, mesos_tasks, mesos_run = (1_000, 5_000, 5.0) if args.quick else (10_000, 100_000, MESOS_RUN)
    local_tasks = local_tasks if args.local_tasks is None else args.local_tasks
    mesos_tasks = mesos_tasks if args.mesos_tasks is None else args.mesos_tasks
    kinds = [kind for kind in ("SQLite", "PostgreSQL") if kind in args.stores.split(",")]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-bigjob-") as tmp:
        for kind in kinds if local_tasks else ():
            workdir = Path(tmp) / f"local-{kind.lower()}"
            workdir.mkdir()
            with stores(kind, workdir) as (url, bare):
                result = run_job(f"{local_tasks:,} tasks, local backend (2 slots), {kind}", url, bare, local_tasks,
                                 workdir, {"LOCAL_CPUS": str(os.cpu_count() or 1)}, True, 0)
            rows += rows_for(result)
            print("\n".join(row.measure + ": " + row.value for row in rows_for(result)), flush=True)
            shutil.rmtree(workdir, ignore_errors=True)
        for kind in kinds if mesos_tasks else ():
            workdir = Path(tmp) / f"mesos-{kind.lower()}"
            workdir.mkdir()
            with mesos_master(workdir) as master, stores(kind, workdir) as (url, bare):
                name = f"{mesos_tasks:,} tasks, Mesos test master ({MESOS_AGENTS} agents x 8 cpus), {kind}"
                result = run_job(name, url, bare, mesos_tasks, workdir, {**MESOS_SETTINGS, "MESOS_MASTER": master},
                                 False, mesos_run)
            rows += rows_for(result)
            print("\n".join(row.measure + ": " + row.value for row in rows_for(result)), flush=True)
            shutil.rmtree(workdir, ignore_errors=True)
    report(rows, args.json)


if __name__ == "__main__":
    main()
