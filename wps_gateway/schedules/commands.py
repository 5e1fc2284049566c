"""``wps-gateway schedule add | list | pause | resume | remove`` (whoever can read the store is an operator)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from ..auth.identity import OPERATOR, USER, Identity
from ..batch import BATCH_PROCESS
from ..batch.codec import TaskListError
from ..batch.tasklist import load_task_list
from ..config import Settings
from ..store.db import Store
from .records import ACTIVE as RESUMED
from .records import (
    PAUSED,
    ScheduleError,
    ScheduleNotFound,
    add_schedule,
    describe,
    list_schedules,
    new_schedule,
    remove_schedule,
    set_state,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    schedule = commands.add_parser("schedule", help="repeated runs: rounds of jobs, one DURATION after another")
    actions = schedule.add_subparsers(dest="schedule_command", required=True)
    add = actions.add_parser("add", help="every round submits N jobs; the next starts DURATION after it ended")
    add.add_argument("--process", help="the process each job runs")
    add.add_argument("--inputs", default="{}", help="its inputs, as in an OGC API execute request: JSON, or a "
                                                    "file:// URL or a path holding it")
    add.add_argument("--tasks", help="a task list instead (the batch process): JSON, a file:// URL or a path")
    add.add_argument("--parallel", type=int, default=1, help="jobs per round (mesos-http-scheduler -maxtasks)")
    add.add_argument("--every", required=True, help="from the end of a round to the start of the next: 90, 30s, "
                                                    "5m, 2h (mesos-http-scheduler -wait)")
    add.add_argument("--rounds", type=int, help="how many rounds in all (default: for ever)")
    add.add_argument("--name", default="", help="a name to find it by")
    add.add_argument("--user", default="", help="whom its jobs are for (accounting, quotas); default: the caller")
    actions.add_parser("list", help="the schedules, with their rounds")
    for name, text in (("pause", "start no new round (a round under way goes on)"),
                       ("resume", "start rounds again"), ("remove", "remove it (its jobs go on)")):
        action = actions.add_parser(name, help=text)
        action.add_argument("schedule", help="its id or name")


def run(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    store.upgrade()
    try:
        if args.schedule_command == "add":
            schedule = _add(settings, store, args)
            print(describe(schedule))
            return 0
        if args.schedule_command in ("pause", "resume"):
            set_state(store, args.schedule, PAUSED if args.schedule_command == "pause" else RESUMED)
        elif args.schedule_command == "remove":
            remove_schedule(store, args.schedule)
            print(f"schedule {args.schedule} removed")
    except (ScheduleError, TaskListError) as exc:
        print(f"wps-gateway schedule: {exc}", file=sys.stderr)
        return 2
    except ScheduleNotFound as exc:
        print(f"wps-gateway schedule: {exc}", file=sys.stderr)
        return 1
    for schedule in list_schedules(store):
        print(describe(schedule))
    return 0


def _add(settings: Settings, store: Store, args: argparse.Namespace):
    from ..context import GatewayContext

    process, inputs = args.process, _json(args.inputs, "--inputs")
    if args.tasks:
        if process not in (None, BATCH_PROCESS):
            raise ScheduleError("--tasks runs a task list (the batch process): leave --process out")
        process = BATCH_PROCESS
        inputs = {**inputs, "tasks": {"value": _json(args.tasks, "--tasks"), "mediaType": "application/json"}}
    new = new_schedule(process, inputs, args.parallel, args.every, args.rounds, args.name)
    identity = Identity(user=args.user or getpass.getuser(), roles=frozenset({USER, OPERATOR}), authenticated=True)
    return add_schedule(GatewayContext.create(settings, store), new, identity)


def _json(value: str, option: str) -> Any:
    try:
        return json.loads(load_task_list(value))
    except ValueError as exc:
        raise ScheduleError(f"{option}: not valid JSON: {exc}") from None
