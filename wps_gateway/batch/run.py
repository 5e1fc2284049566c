"""``wps-gateway batch run TASKS``: a mesos-batch task list as one job of the ``batch`` process, followed to its end.

The job goes through the one submission path (limits, quotas; the command
line acts as an operator: whoever can read the store is one), and is run by
the active dispatcher. While it waits the command runs a dispatcher of its
own, which stands by if another one is active (so it works with or without a
running gateway, on the local, Mesos and YARN backends). It prints a line
each time the job's progress changes and exits 0 only when every task
succeeded (1 otherwise). The first Ctrl-C (or SIGTERM) dismisses the job,
whose tasks are killed, and it exits 130 (143) once the job is over; a
second one stops waiting at once.
"""

from __future__ import annotations

import argparse
import getpass
import signal
import sys
import threading
from typing import TextIO

from sqlalchemy import func, select

from ..auth.identity import OPERATOR, USER, Identity
from ..config import Settings
from ..durations import DurationError, parse_duration
from ..inputs import CheckedInputs, InputError
from ..jobs import ResponseForm, get_job, request_dismiss
from ..limits import LimitExceeded
from ..store.db import Store
from ..store.models import Job, JobStatus, Task, TaskStatus
from . import BATCH_PROCESS
from .codec import TaskListError
from .tasklist import load_task_list, read_task_list
from .volume import VolumeSpecError, load_volume_spec, parse_volume_spec

POLL_SECONDS = 0.2


def add_parser(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser("batch", help="task lists (mesos-batch)")
    actions = batch.add_subparsers(dest="batch_command", required=True)
    run = actions.add_parser("run", help="run a task list (Mesos TaskGroupInfo JSON) as one job and follow it",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("tasks", nargs="?", help="the task list: JSON, a file:// URL or a path (mesos-batch "
                                              "--task_list); may be left out to just remove a persistent volume")
    run.add_argument("--kill-after", metavar="DURATION", help="kill a task running longer (10secs, 2mins, 90s)")
    run.add_argument("--persistent-volume", metavar="SPEC",
                     help="Mesos: run the tasks on this persistent volume, reserved and created first if needed: "
                          "ID:DISK[:CONTAINER_PATH] or mesos-batch's --persistent_volume_resource JSON")
    run.add_argument("--remove-persistent-volume", action="store_true",
                     help="Mesos: destroy the volume and unreserve its resources once the tasks succeeded")
    run.add_argument("--user", default="", help="whom the job is for (accounting); default: the caller")


def run(settings: Settings, store: Store, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        checked = _inputs(args)
    except (TaskListError, DurationError, VolumeSpecError) as exc:
        print(f"wps-gateway batch: {exc}", file=sys.stderr)
        return 2
    from ..context import GatewayContext
    from ..runner import DispatcherRunner

    store.upgrade()
    context = GatewayContext.create(settings, store)
    identity = Identity(user=args.user or getpass.getuser(), roles=frozenset({USER, OPERATOR}), authenticated=True)
    try:
        job = context.submit(None, context.processors()[BATCH_PROCESS], checked, ResponseForm(asynchronous=True),
                             "cli", identity=identity)
    except InputError as exc:
        print(f"wps-gateway batch: {exc.message}", file=sys.stderr)
        return 2
    except LimitExceeded as exc:
        print(f"wps-gateway batch: {exc}", file=sys.stderr)
        return 1
    print(f"job {job.id}: accepted, {job.task_count} tasks", file=out, flush=True)
    runner = DispatcherRunner(settings, store, context=context)
    context.on_job_submitted = runner.wake
    watch = _Watch(store, job.id, runner)
    previous = {sig: signal.signal(sig, watch.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    runner.start_thread()
    try:
        final = watch.follow(out)
    finally:
        runner.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _summary(store, final, out)
    if watch.signalled:
        return 128 + watch.signalled
    return 0 if final.status == JobStatus.SUCCESSFUL else 1


def _inputs(args: argparse.Namespace) -> CheckedInputs:
    """The job's inputs as the command line gives them; the list is read and checked before anything else."""
    values: dict[str, list] = {}
    inline = {}
    if args.tasks:
        content = load_task_list(args.tasks)
        read_task_list(content)
        values["tasks"] = [None]
        inline["tasks"] = [(0, content)]
    if args.kill_after:
        parse_duration(args.kill_after, "--kill-after")
        values["kill_after"] = [args.kill_after]
    if args.persistent_volume:
        spec = load_volume_spec(args.persistent_volume)
        parse_volume_spec(spec)
        values["persistent_volume"] = [spec]
    if args.remove_persistent_volume:
        values["remove_persistent_volume"] = [True]
    return CheckedInputs(values, inline)


class _Watch:
    """Follows the job; the first signal dismisses it, the second stops the wait."""

    def __init__(self, store: Store, job_id: str, runner) -> None:
        self.store = store
        self.job_id = job_id
        self.runner = runner
        self.signalled = 0
        self._enough = threading.Event()

    def on_signal(self, signum: int, _frame) -> None:
        if self.signalled:
            self._enough.set()
            self.runner.hurry()
            return
        self.signalled = signum
        print(f"{signal.Signals(signum).name}: dismissing job {self.job_id} (again to stop waiting)",
              file=sys.stderr, flush=True)
        request_dismiss(self.store, self.job_id)
        self.runner.wake()

    def follow(self, out: TextIO) -> Job:
        shown = ""
        while True:
            job = get_job(self.store, self.job_id)
            line = _progress(self.store, job)
            if line != shown:
                print(line, file=out, flush=True)
                shown = line
            if job.status in JobStatus.FINAL or self._enough.wait(POLL_SECONDS):
                return job


def _counts(store: Store, job_id: str) -> dict[str, int]:
    with store.sessions() as session:
        return dict(session.execute(select(Task.status, func.count()).where(Task.job_id == job_id)
                                    .group_by(Task.status)).all())


def _progress(store: Store, job: Job) -> str:
    counts = _counts(store, job.id)
    total = sum(counts.values()) or job.task_count
    return (f"job {job.id}: {job.status}, {counts.get(TaskStatus.SUCCEEDED, 0)}/{total} tasks succeeded, "
            f"{counts.get(TaskStatus.RUNNING, 0)} running, {counts.get(TaskStatus.FAILED, 0)} failed")


def _summary(store: Store, job: Job, out: TextIO) -> None:
    print(f"job {job.id}: {job.status}: {job.message}", file=out, flush=True)
    with store.sessions() as session:
        failed = session.execute(select(Task.step, Task.index, Task.message, Task.spec).where(
            Task.job_id == job.id, Task.status == TaskStatus.FAILED).order_by(Task.seq)).all()
    for step, index, message, spec in failed:
        name = (spec or {}).get("task_list_id") or f"{step} {index}"
        print(f"  failed: {name}: {message}", file=out, flush=True)
