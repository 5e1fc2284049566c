"""The console's actions on the command line: ``jobs retry|priority|dismiss``, ``tasks retry|log``,
``caps list|set|unset`` and ``cluster``. Whoever can read the store's settings is an operator here.

Retries and priorities are requests for the dispatcher, as from the console:
the command waits a few seconds for the outcome and says so if no
dispatcher took them yet (they stay queued for the next one).
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import control, scheduling
from ..config import Settings
from ..jobs import JobNotFound, request_dismiss
from ..store.db import Store
from ..switches import DispatchSwitch
from ..tasklogs import attempt_log
from .views import attempt_row, cluster_view

WAIT_SECONDS = 10.0


def add_job_actions(jobs: argparse._SubParsersAction) -> None:
    retry = jobs.add_parser("retry", help="run a failed job again, every task (see also: tasks retry)")
    retry.add_argument("job_id")
    priority = jobs.add_parser("priority", help="change a job's priority (its waiting tasks move too)")
    priority.add_argument("job_id")
    priority.add_argument("priority", type=int)
    dismiss = jobs.add_parser("dismiss", help="dismiss a job: its tasks are killed")
    dismiss.add_argument("job_id")


def add_commands(commands: argparse._SubParsersAction) -> None:
    tasks = commands.add_parser("tasks", help="a failed job's tasks, and task attempts' logs")
    tasks_cmd = tasks.add_subparsers(dest="tasks_command", required=True)
    retry = tasks_cmd.add_parser("retry", help="run a failed job's failed (and cancelled) tasks again")
    retry.add_argument("job_id")
    log = tasks_cmd.add_parser("log", help="the tail of an attempt's stdout and stderr (<job>.<step>.<task>.<n>)")
    log.add_argument("attempt_id")
    log.add_argument("--bytes", type=int, default=0, help="how much of each, from the end ([console] log_tail)")

    caps = commands.add_parser("caps", help="caps and fair-share weights, changed without a restart")
    caps_cmd = caps.add_subparsers(dest="caps_command", required=True)
    caps_cmd.add_parser("list", help="what is set live, and whether the backend applies it")
    kinds = ", ".join(scheduling.KINDS)
    set_ = caps_cmd.add_parser("set", help=f"set one: KIND [NAME] VALUE ({kinds}; a cap of 0: none)")
    set_.add_argument("kind", choices=list(scheduling.KINDS))
    set_.add_argument("words", nargs="+", metavar="[NAME] VALUE")
    unset = caps_cmd.add_parser("unset", help="give one its configured value back: KIND [NAME]")
    unset.add_argument("kind", choices=list(scheduling.KINDS))
    unset.add_argument("name", nargs="?")

    commands.add_parser("cluster", help="the backend as the dispatcher last saw it, the queue, caps, the switch")


def run(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.command == "jobs":
            return _job_action(store, args)
        if args.command == "tasks":
            return _tasks(store, settings, args)
        if args.command == "caps":
            return _caps(store, args)
        return _cluster(store)
    except JobNotFound as exc:
        print(f"wps-gateway: no job {exc}", file=sys.stderr)
        return 1
    except (ValueError, LookupError) as exc:  # a refused request, a bad value, nothing to unset
        print(f"wps-gateway: {exc}", file=sys.stderr)
        return 2


def _job_action(store: Store, args: argparse.Namespace) -> int:
    if args.jobs_command == "dismiss":
        job = request_dismiss(store, args.job_id)
        print(f"job {job.id}: {job.status}{' (its tasks are being killed)' if job.cancel_requested else ''}")
        return 0
    if args.jobs_command == "retry":
        return _request(store, args.job_id, control.RETRY_JOB)
    return _request(store, args.job_id, control.PRIORITY, args.priority)


def _request(store: Store, job_id: str, action: str, value: int | None = None) -> int:
    asked = control.request_action(store, job_id, action, value, by="cli")
    done = control.wait_handled(store, asked["id"], WAIT_SECONDS)
    if done["state"] == "pending":
        print(f"request {done['id']} ({action}) is queued: no dispatcher took it within {WAIT_SECONDS:g} s; the "
              "next one will")
        return 0
    print(f"request {done['id']} ({action}): {done['outcome']}")
    return 0 if done["state"] == "done" else 1


def _tasks(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    if args.tasks_command == "retry":
        return _request(store, args.job_id, control.RETRY_FAILED)
    attempt = attempt_row(store, args.attempt_id)
    log = attempt_log(settings, store, attempt, args.bytes or settings.console.log_tail)
    print(f"# {log.attempt} on {log.backend}: {log.source}" + (f"\n# {log.link}" if log.link else ""))
    for name, error in log.errors.items():
        print(f"# {name or 'logs'}: {error}", file=sys.stderr)
    for name, text in log.files.items():
        print(f"--- {name} ({log.sizes.get(name, '?')} bytes) ---")
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return 0 if log.files else 1


def _caps(store: Store, args: argparse.Namespace) -> int:
    if args.caps_command == "set":
        *name, value = args.words
        if len(name) > 1:
            raise ValueError("caps set takes KIND [NAME] VALUE")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        scheduling.set_limit(store, args.kind, name[0] if name else None, number, by="cli")
    elif args.caps_command == "unset":
        scheduling.remove_limit(store, args.kind, args.name)
    limits = cluster_view(store)["limits"]
    for limit in limits["live"]:
        applied = "" if limit["applied"] else "  (not applied by the current backend)"
        print(f"{limit['kind']:<15} {limit['name'] or '':<20} {limit['value']:g}{applied}")
    if not limits["live"]:
        print("no cap or weight is set live: the settings apply")
    return 0


def _cluster(store: Store) -> int:
    view = cluster_view(store)
    switch = DispatchSwitch(store).paused_reason()
    print(json.dumps({**view, "paused": switch}, indent=2, default=str))
    return 0
