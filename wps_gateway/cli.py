"""Command line: ``wps-gateway serve | dispatch | db upgrade | jobs list | jobs show ID | report | batch run |
schedule ... | dispatching ...`` (and the console's actions: ``jobs retry|priority|dismiss``, ``tasks retry|log``,
``caps``, ``cluster``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from mesos_backend import BackendError

from . import redaction
from .admin import commands as admin_commands
from .batch import run as batch_run
from .config import ConfigError, load_settings
from .heap import freeze_startup_heap
from .schedules import commands as schedule_commands
from .store.db import Store
from .xml_guard import LibxmlTooOld, require_libxml2_limits

LOG = logging.getLogger("wps_gateway")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wps-gateway", description=__doc__)
    parser.add_argument("-c", "--config", action="append", help="pywps.cfg file(s); default $PYWPS_CFG or ./pywps.cfg")
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve WPS over HTTP (with the embedded dispatcher by default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument("--threads", type=int, default=8)

    commands.add_parser("dispatch", help="run the dispatcher alone (one active instance; others stand by)")

    db = commands.add_parser("db", help="job store schema")
    db.add_argument("action", choices=["upgrade"])

    jobs = commands.add_parser("jobs", help="inspect jobs")
    jobs_cmd = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = jobs_cmd.add_parser("list")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int, default=50)
    show = jobs_cmd.add_parser("show")
    show.add_argument("job_id")
    admin_commands.add_job_actions(jobs_cmd)
    admin_commands.add_commands(commands)

    keys = commands.add_parser("apikeys", help="API keys for service accounts (every [auth] mode but none)")
    keys_cmd = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_cmd.add_parser("create", help="make a key; it is printed once and cannot be shown again")
    create.add_argument("--user", required=True, help="the user the key acts as (roles follow [auth] operators, ...)")
    create.add_argument("--groups", default="", help="comma-separated groups of that user")
    create.add_argument("--note", default="", help="what the key is for")
    keys_cmd.add_parser("list", help="the keys, without their secrets")
    revoke = keys_cmd.add_parser("revoke", help="stop a key from working")
    revoke.add_argument("key_id")

    quota = commands.add_parser("quota", help="usage limits per user or group")
    quota_cmd = quota.add_subparsers(dest="quota_command", required=True)
    quota_set = quota_cmd.add_parser("set", help="set (or change) a user's or a group's limits")
    who = quota_set.add_mutually_exclusive_group(required=True)
    who.add_argument("--user")
    who.add_argument("--group")
    quota_set.add_argument("--cpu-hours", type=float, help="cpu-hours per period (allocated: cpus x wall time)")
    quota_set.add_argument("--period", default="month", help="month (calendar, UTC) or Nd (a rolling window)")
    quota_set.add_argument("--max-running", type=int, help="jobs accepted or running at once")
    quota_cmd.add_parser("list", help="every limit, with the usage it counts now")
    quota_remove = quota_cmd.add_parser("remove", help="remove a user's or a group's limits")
    who = quota_remove.add_mutually_exclusive_group(required=True)
    who.add_argument("--user")
    who.add_argument("--group")
    report = commands.add_parser("report", help="accounting report: usage and cost by user, group, process, period")
    for name in ("from", "to", "job"):
        report.add_argument(f"--{name}", dest=f"report_{name}", action="append", default=[],
                            help="YYYY-MM, YYYY-MM-DD or an RFC 3339 date-time" if name != "job" else "one job")
    for name in ("user", "group", "process", "backend", "status", "group-by"):
        report.add_argument(f"--{name}", dest=f"report_{name.replace('-', '_')}", action="append", default=[],
                            help="repeat it or separate values with commas")
    report.add_argument("--csv", action="store_true", help="CSV with every figure instead of a table")

    collect = commands.add_parser("gc", help="remove what is past its retention ([gateway] retention)")
    collect.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")

    batch_run.add_parser(commands)
    schedule_commands.add_parser(commands)

    control = commands.add_parser("dispatching", help="pause or resume launching tasks (queued work is kept)")
    control.add_argument("action", choices=["pause", "resume", "status"])
    control.add_argument("--reason", default="", help="shown in status and logs while paused")

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redaction.install()  # every record of every logger, httpx's request lines included
    try:
        require_libxml2_limits()
        settings = load_settings(args.config)
    except (ConfigError, LibxmlTooOld) as exc:
        print(f"wps-gateway: {exc}", file=sys.stderr)
        return 2
    if settings.log_format == "json":
        from .logformat import use_json

        use_json()  # the redaction filter stays on the handler
    store = Store(settings.database_url)
    if args.command == "db":
        store.upgrade()
        print(f"job store at {_display_url(settings.database_url)} is up to date")
        return 0
    if args.command in ("tasks", "caps", "cluster") or getattr(args, "jobs_command", "") in (
            "retry", "priority", "dismiss"):
        return admin_commands.run(store, settings, args)
    if args.command == "jobs":
        return _jobs(store, args, settings)
    if args.command == "dispatching":
        return _dispatching(store, args)
    if args.command == "apikeys":
        return _apikeys(store, args)
    if args.command == "quota":
        return _quota(store, args)
    if args.command == "report":
        return _report(store, settings.billing_weights, args)
    if args.command == "batch":
        try:
            return batch_run.run(settings, store, args)
        except BackendError as exc:
            print(f"wps-gateway: {exc}", file=sys.stderr)
            return 2
    if args.command == "schedule":
        return schedule_commands.run(settings, store, args)
    if args.command == "gc":
        from .runner import retention_for

        try:
            collected = retention_for(settings, store).collect(dry_run=args.dry_run)
        except BackendError as exc:  # e.g. a [yarn] results_dir it cannot use
            print(f"wps-gateway: {exc}", file=sys.stderr)
            return 2
        print(f"{'would remove' if args.dry_run else 'removed'}: {collected}")
        return 0
    store.upgrade()
    try:
        if args.command == "dispatch":
            return _dispatch(settings, store)
        return _serve(settings, store, args)
    except BackendError as exc:  # a backend setting the engine cannot use
        print(f"wps-gateway: {exc}", file=sys.stderr)
        return 2


def _display_url(url: str) -> str:
    from .redaction import redact

    return redact(url)


def _on_signals(first, second, interrupt: type[BaseException] | None = None) -> None:
    """SIGTERM (docker stop, systemd) and SIGINT (Ctrl-C): ``first`` on the first one, ``second`` after.

    The handler itself only writes to a pipe (and, on the first signal, raises ``interrupt`` in the main
    thread, which is how waitress's loop is left): a handler runs between two bytecodes of the main thread,
    which may hold the very lock that setting an event or logging takes, and would then wait for itself.
    A thread reads the pipe and does the work.
    """
    readable, writable = os.pipe()
    count = 0

    def handle(signum, _frame) -> None:
        nonlocal count
        count += 1
        os.write(writable, bytes([signum, min(count, 2)]))
        if count == 1 and interrupt is not None:
            raise interrupt(0)

    def act() -> None:
        while True:
            received = os.read(readable, 2)
            if len(received) < 2:
                return
            name = signal.Signals(received[0]).name
            if received[1] == 1:
                LOG.info("%s: shutting down gracefully (send it again to stop at once)", name)
                first()
            else:
                LOG.info("%s again: stopping running tasks now", name)
                second()

    threading.Thread(target=act, name="signals", daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)


class _StopServing(SystemExit):
    """Raised in the main thread by the first signal: waitress stops accepting and lets requests finish."""


def _dispatch(settings, store: Store) -> int:
    from .runner import DispatcherRunner

    runner = DispatcherRunner(settings, store)
    _on_signals(runner.stop_event.set, runner.hurry)
    freeze_startup_heap()
    runner.run()
    return 0


def _serve(settings, store: Store, args) -> int:
    from .app import GatewayApp
    from .context import GatewayContext
    from .runner import DispatcherRunner
    from .serving import create_server

    context = GatewayContext.create(settings, store)
    if settings.sync_max_waiting >= args.threads:
        LOG.warning("[gateway] sync_max_waiting (%d) is not below --threads (%d): slow synchronous Executes "
                    "can hold every server thread", settings.sync_max_waiting, args.threads)
    runner = None
    if settings.dispatcher == "embedded":
        runner = DispatcherRunner(settings, store, context=context)
        context.on_job_submitted = runner.wake
        runner.start_thread()
    server = create_server(GatewayApp(context), host=args.host, port=args.port, threads=args.threads,
                           ident="wps-gateway")
    LOG.info("serving %d processors at http://%s:%d/wps (public URL %s)", len(context.processors()),
             args.host, args.port, settings.url)

    _on_signals(lambda: None, runner.hurry if runner is not None else lambda: None, interrupt=_StopServing)
    freeze_startup_heap()
    try:
        server.run()  # returns once a signal stopped it; requests under way were given time to finish
    finally:
        server.close()
        if runner is not None:
            runner.stop()
        LOG.info("gateway stopped")
    return 0


def _apikeys(store: Store, args) -> int:
    from .auth import apikeys

    if args.keys_command == "create":
        key_id, key = apikeys.create_key(store, args.user, args.groups.split(","), args.note)
        print(f"key {key_id} for {args.user} (shown once; keep it secret):\n{key}")
    elif args.keys_command == "list":
        for row in apikeys.list_keys(store):
            state = f"revoked {row.revoked:%Y-%m-%d}" if row.revoked else "active"
            print(f"{row.id}  {row.user:<20} {','.join(row.groups):<24} {state:<18} "
                  f"{row.created:%Y-%m-%d %H:%M}  {row.note}")
    else:
        try:
            apikeys.revoke_key(store, args.key_id)
        except apikeys.KeyNotFound:
            print(f"no API key {args.key_id}", file=sys.stderr)
            return 1
        print(f"key {args.key_id} revoked")
    return 0


def _quota(store: Store, args) -> int:
    from . import quotas

    try:
        if args.quota_command == "set":
            scope, name = ("user", args.user) if args.user else ("group", args.group)
            quotas.set_quota(store, scope, name, args.cpu_hours, args.period, args.max_running)
        elif args.quota_command == "remove":
            scope, name = ("user", args.user) if args.user else ("group", args.group)
            quotas.remove_quota(store, scope, name)
    except (ValueError, LookupError) as exc:
        print(f"wps-gateway: {exc}", file=sys.stderr)
        return 2
    for entry in quotas.list_quotas(store):
        print(quotas.describe(entry))
    return 0


def _dispatching(store: Store, args) -> int:
    from sqlalchemy import func, select

    from .store.models import Task, TaskStatus
    from .switches import DispatchSwitch

    switch = DispatchSwitch(store)
    if args.action == "pause":
        switch.pause(args.reason)
    elif args.action == "resume":
        switch.resume()
    reason = switch.paused_reason()
    with store.sessions() as session:
        counts = dict(session.execute(select(Task.status, func.count()).group_by(Task.status)).all())
    state = f"paused ({reason})" if reason else "running"
    print(f"dispatching {state}; tasks queued {counts.get(TaskStatus.QUEUED, 0)}, "
          f"running {counts.get(TaskStatus.RUNNING, 0)}")
    return 0


def _report(store: Store, weights: dict[str, float], args) -> int:
    """The accounting report over every user's jobs (whoever can read the store is an operator)."""
    from .accounting.formats import report_csv, report_table
    from .accounting.query import ReportError, parse_query, run_report

    try:
        query = parse_query(lambda name: getattr(args, f"report_{name}"))
    except ReportError as exc:
        print(f"wps-gateway report: {exc}", file=sys.stderr)
        return 2
    report = run_report(store, query, weights)
    sys.stdout.write(report_csv(report) if args.csv else report_table(report))
    return 0


def _jobs(store: Store, args, settings) -> int:
    from . import ogcapi  # noqa: F401  (before accounting.api: they import each other, and only this order works)
    from .accounting.api import job_usage
    from .admin.views import attempt_histories
    from .jobs import JobNotFound, get_job, list_jobs
    from .store.models import Task

    if args.jobs_command == "list":
        for job in list_jobs(store, args.limit, args.status):
            print(f"{job.id}  {job.status:<10} {job.progress:>3}%  {job.process_id:<20} "
                  f"{job.created:%Y-%m-%d %H:%M:%S}  {job.message}")
        return 0
    try:
        job = get_job(store, args.job_id)
    except JobNotFound:
        print(f"no job {args.job_id}", file=sys.stderr)
        return 1
    with store.sessions() as session:
        tasks = session.query(Task).filter(Task.job_id == job.id).order_by(Task.seq).all()
        print(json.dumps({"id": job.id, "process": job.process_id, "status": job.status,
                          "progress": job.progress, "message": job.message, "created": job.created.isoformat(),
                          "outputs": job.outputs, "usage": job_usage(store, job.id, settings.billing_weights)},
                         indent=2))
        histories = attempt_histories(session, job.id)
        for task in tasks:
            attempts = ", ".join(f"#{a.number} {a.status}" + (f" exit {a.exit_code}" if a.exit_code is not None
                                                              else "") + _attempt_usage(a) for a in task.attempt_rows)
            print(f"  {task.step:<12} {task.index:>3}  {task.status:<10} {attempts}  {task.message}")
            for attempt in task.attempt_rows:
                for event in histories.get(attempt.id, []):
                    said = ": ".join(part for part in (event["reason"], event["message"]) if part)
                    print(f"      #{attempt.number} {event['time']}  {event['state']:<9} {said}".rstrip())
    return 0


def _attempt_usage(attempt) -> str:
    """`` (cpu 1.2 s, peak 80 MiB, wall 3.0 s, on local)`` for what is known of an ended attempt."""
    parts = [f"{label} {value:.1f} {unit}" for label, value, unit in (
        ("cpu", attempt.cpu_seconds, "s"), ("peak", attempt.mem_peak_mb, "MiB"), ("wall", attempt.wall_seconds, "s"))
        if value is not None]
    if attempt.usage_source:
        parts.append(f"measured by the {attempt.usage_source}")
    return f" ({', '.join(parts)})" if parts else ""


if __name__ == "__main__":
    sys.exit(main())
