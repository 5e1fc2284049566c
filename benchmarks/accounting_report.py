"""How fast the accounting report is on a year of history: 1,000,000 task attempts, 10,000 users, 50 processes.

The store is filled as a gateway leaves it (jobs with their real descriptor
and inputs, tasks, attempts of which about one in eight failed or was lost
and retried), at revision 0005, then ``wps-gateway db upgrade`` runs
migration 0007, which sums every attempt into ``job_usage`` (timed too).
Then, on SQLite and on a PostgreSQL server started here from Debian's
binaries (127.0.0.1, a temporary folder, default settings), after
``ANALYZE``/``VACUUM ANALYZE`` as the servers' own maintenance would:

* the report: ``run_report`` for one month grouped by user and process
  (what ``GET /accounting?from=2025-06&to=2025-06&group_by=user,process``
  runs), and the same turned into its JSON document;
* baseline 1: the same figures from a hand-written ``GROUP BY`` over the
  same tables (``jobs`` joined to ``job_usage``), run on the DB-API cursor;
* baseline 2: the same figures from a hand-written ``GROUP BY`` over the
  attempts themselves (``jobs`` ⋈ ``tasks`` ⋈ ``task_attempts``), which is
  what the report would cost without ``job_usage``.

All three must give the same figures (checked). Medians of 7 runs after
one warm-up, the queries taking turns. Target: at most 1 s and at most 1.5x baseline 1.
"""

from __future__ import annotations

import io
import json
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from _common import REPO, Row, median, parse_args, postgres, report

from wps_gateway.accounting.formats import report_document
from wps_gateway.accounting.query import FIGURES, ReportQuery, run_report
from wps_gateway.store.db import Store

WEIGHTS = {"cpu": 1.0, "mem": 0.25, "gpu": 4.0}
MONTH = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
REPEATS = 7
TARGET_SECONDS, TARGET_RATIO = 1.0, 1.5
DESCRIPTOR = json.dumps(yaml.safe_load((REPO / "processes/urban_footprint/descriptor.yaml").read_text()),
                        separators=(",", ":"))

JOB_COLUMNS = ("id", "process_id", "process_version", "status", "message", "progress", "user", "group", "priority",
               "protocol", "inputs", "response_form", "descriptor", "outputs", "created", "started", "finished",
               "updated", "cancel_requested", "client", "task_count")
TASK_COLUMNS = ("id", "job_id", "seq", "step", "index", "status", "spec", "attempts", "max_attempts", "message",
                "created", "started", "finished")
ATTEMPT_COLUMNS = ("task_id", "number", "backend", "backend_task_id", "status", "message", "cpus", "mem_mb",
                   "disk_mb", "gpus", "exit_code", "cpu_seconds", "mem_peak_mb", "wall_seconds", "launched",
                   "started", "finished")


# -- the history --------------------------------------------------------------------------------------

def history(attempts: int, users: int, processes: int, seed: int = 11) -> Iterator[tuple[str, tuple]]:
    """("jobs" | "tasks" | "task_attempts", row) until ``attempts`` attempts; the same every run."""
    rnd = random.Random(seed)
    backends = ("local", "mesos", "mesos", "mesos", "yarn")
    made = 0
    while made < attempts:
        job_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        user = rnd.randrange(users)
        created = YEAR_START + timedelta(seconds=rnd.random() * 365 * 86400)
        status = rnd.choices(("successful", "failed", "dismissed", "running", "accepted"), (90, 7, 2, 0.5, 0.5))[0]
        ntasks = 0 if status == "accepted" else rnd.randint(1, 8)
        tiles = json.dumps({"tiles": [f"file:///eodata/s2/T33U{rnd.randrange(99):02d}_2025.tif"
                                      for _ in range(ntasks or 1)]})
        ended = created + timedelta(hours=2)
        yield "jobs", (job_id, f"proc-{rnd.randrange(processes):02d}", "1.0.0", status, "", 100, f"user{user:05d}",
                       f"group{user % 200:03d}", 0, "wps1", tiles, "{}", DESCRIPTOR, "{}", created, created, ended,
                       ended, False, f"user{user:05d}", ntasks)
        backend = rnd.choice(backends)
        for index in range(ntasks):
            task_id = f"{job_id}.classify.{index}"
            tries = rnd.choices((1, 2, 3), (88, 9, 3))[0]
            yield "tasks", (task_id, job_id, index, "classify", index, "succeeded", "{}", tries, 3, "", created,
                            created, ended)
            for number in range(1, tries + 1):
                wall = rnd.uniform(10, 3600)
                cpus = rnd.choice((1, 1, 2, 4))
                ok = number == tries and status != "failed"
                yield "task_attempts", (
                    task_id, number, backend, f"{task_id}.{number}",
                    "succeeded" if ok else rnd.choice(("failed", "failed", "lost")), "", cpus,
                    rnd.choice((512, 1024, 4096)), 256, 1 if rnd.random() < 0.05 else 0, 0 if ok else 1,
                    wall * cpus * rnd.uniform(0.3, 1.0), rnd.uniform(100, 900), wall, created, created,
                    created + timedelta(seconds=wall))
                made += 1


def fill_sqlite(path: Path, rows: Iterator[tuple[str, tuple]]) -> None:
    connection = sqlite3.connect(path)
    statements = {name: f'INSERT INTO {name} ({", ".join(f"{c!r}" for c in columns)}) '
                        f'VALUES ({", ".join("?" * len(columns))})'
                  for name, columns in (("jobs", JOB_COLUMNS), ("tasks", TASK_COLUMNS),
                                        ("task_attempts", ATTEMPT_COLUMNS))}
    batch: dict[str, list[tuple]] = {name: [] for name in statements}
    with connection:
        for table, row in rows:
            batch[table].append(tuple(_sqlite_value(v) for v in row))
            if len(batch[table]) >= 20000:
                connection.executemany(statements[table], batch.pop(table))
                batch[table] = []
        for table in ("jobs", "tasks", "task_attempts"):  # parents first
            connection.executemany(statements[table], batch[table])
    connection.close()


def _sqlite_value(value):
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value


def fill_postgres(url: str, rows: Iterator[tuple[str, tuple]]) -> None:
    import psycopg

    buffers = {name: io.StringIO() for name in ("jobs", "tasks", "task_attempts")}
    for table, row in rows:
        buffers[table].write("\t".join(_copy_value(v) for v in row) + "\n")
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        for table, columns in (("jobs", JOB_COLUMNS), ("tasks", TASK_COLUMNS), ("task_attempts", ATTEMPT_COLUMNS)):
            names = ", ".join(f'"{c}"' for c in columns)
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                copy.write(buffers[table].getvalue())


def _copy_value(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


# -- the queries ----------------------------------------------------------------------------------------

def hand_written(dialect: str, over_attempts: bool) -> str:
    """The monthly figures per user and process as one would write them by hand."""
    if over_attempts:
        source = """(SELECT t.job_id,
              count(*) AS attempts, sum(CASE WHEN a.status = 'succeeded' THEN 1 ELSE 0 END) AS ok,
              sum(CASE WHEN a.status = 'failed' THEN 1 ELSE 0 END) AS failed,
              sum(CASE WHEN a.status = 'lost' THEN 1 ELSE 0 END) AS lost,
              sum(CASE WHEN a.status = 'killed' THEN 1 ELSE 0 END) AS killed,
              sum(CASE WHEN a.number > 1 THEN 1 ELSE 0 END) AS retried,
              sum(CASE WHEN a.cpu_seconds IS NOT NULL THEN 1 ELSE 0 END) AS measured,
              sum(a.wall_seconds) AS wall, sum(a.cpus * a.wall_seconds) AS cpu_alloc,
              sum(coalesce(a.cpu_seconds, 0)) AS cpu_used, sum(a.mem_mb * a.wall_seconds) AS mem_alloc,
              sum(coalesce(a.mem_peak_mb, 0) * a.wall_seconds) AS mem_peak, sum(a.gpus * a.wall_seconds) AS gpu,
              sum(CASE WHEN a.status <> 'succeeded' THEN a.wall_seconds ELSE 0 END) AS u_wall,
              sum(CASE WHEN a.status <> 'succeeded' THEN a.cpus * a.wall_seconds ELSE 0 END) AS u_cpu_alloc,
              sum(CASE WHEN a.status <> 'succeeded' THEN coalesce(a.cpu_seconds, 0) ELSE 0 END) AS u_cpu_used,
              sum(CASE WHEN a.status <> 'succeeded' THEN a.mem_mb * a.wall_seconds ELSE 0 END) AS u_mem_alloc,
              sum(CASE WHEN a.status <> 'succeeded' THEN coalesce(a.mem_peak_mb, 0) * a.wall_seconds ELSE 0 END)
                AS u_mem_peak,
              sum(CASE WHEN a.status <> 'succeeded' THEN a.gpus * a.wall_seconds ELSE 0 END) AS u_gpu
            FROM jobs j2 JOIN tasks t ON t.job_id = j2.id JOIN task_attempts a ON a.task_id = t.id
            WHERE j2.created >= :start AND j2.created < :end AND a.status IN ('succeeded', 'failed', 'lost', 'killed')
            GROUP BY t.job_id) u"""
    else:
        source = """(SELECT job_id, attempts, attempts_succeeded AS ok, attempts_failed AS failed,
              attempts_lost AS lost, attempts_killed AS killed, attempts_retried AS retried,
              attempts_measured AS measured, wall_seconds AS wall, cpu_alloc_seconds AS cpu_alloc,
              cpu_used_seconds AS cpu_used, mem_alloc_mb_seconds AS mem_alloc, mem_peak_mb_seconds AS mem_peak,
              gpu_seconds AS gpu, unsuccessful_wall_seconds AS u_wall, unsuccessful_cpu_alloc_seconds AS u_cpu_alloc,
              unsuccessful_cpu_used_seconds AS u_cpu_used, unsuccessful_mem_alloc_mb_seconds AS u_mem_alloc,
              unsuccessful_mem_peak_mb_seconds AS u_mem_peak, unsuccessful_gpu_seconds AS u_gpu
            FROM job_usage) u"""
    gb = 1024 * 3600.0
    w_cpu, w_mem, w_gpu = WEIGHTS["cpu"], WEIGHTS["mem"], WEIGHTS["gpu"]
    sql = f"""SELECT j.user, j.process_id, count(*),
      {", ".join(f"sum(CASE WHEN j.status = '{s}' THEN 1 ELSE 0 END)"
                 for s in ("accepted", "running", "successful", "failed", "dismissed"))},
      coalesce(sum(j.task_count), 0), coalesce(sum(u.attempts), 0), coalesce(sum(u.ok), 0),
      coalesce(sum(u.failed), 0), coalesce(sum(u.lost), 0), coalesce(sum(u.killed), 0), coalesce(sum(u.retried), 0),
      coalesce(sum(u.measured), 0),
      coalesce(sum(u.wall), 0) / 3600.0, coalesce(sum(u.cpu_alloc), 0) / 3600.0, coalesce(sum(u.cpu_used), 0) / 3600.0,
      coalesce(sum(u.mem_alloc), 0) / {gb}, coalesce(sum(u.mem_peak), 0) / {gb}, coalesce(sum(u.gpu), 0) / 3600.0,
      {w_cpu} * coalesce(sum(u.cpu_alloc), 0) / 3600.0 + {w_mem} * coalesce(sum(u.mem_alloc), 0) / {gb}
        + {w_gpu} * coalesce(sum(u.gpu), 0) / 3600.0,
      coalesce(sum(u.u_wall), 0) / 3600.0, coalesce(sum(u.u_cpu_alloc), 0) / 3600.0,
      coalesce(sum(u.u_cpu_used), 0) / 3600.0, coalesce(sum(u.u_mem_alloc), 0) / {gb},
      coalesce(sum(u.u_mem_peak), 0) / {gb}, coalesce(sum(u.u_gpu), 0) / 3600.0,
      {w_cpu} * coalesce(sum(u.u_cpu_alloc), 0) / 3600.0 + {w_mem} * coalesce(sum(u.u_mem_alloc), 0) / {gb}
        + {w_gpu} * coalesce(sum(u.u_gpu), 0) / 3600.0
    FROM jobs j LEFT JOIN {source} ON u.job_id = j.id
    WHERE j.created >= :start AND j.created < :end
    GROUP BY j.user, j.process_id ORDER BY j.user, j.process_id"""
    sql = sql.replace("j.user", 'j."user"') if dialect == "postgresql" else sql
    marker = "%({})s" if dialect == "postgresql" else ":{}"
    return sql.replace(":start", marker.format("start")).replace(":end", marker.format("end"))


def run_raw(store: Store, sql: str) -> list[tuple]:
    """A hand-written query on the DB-API cursor, with the month's bounds as the driver wants them."""
    dialect = store.engine.dialect.name
    start, end = MONTH
    params = ({"start": start, "end": end} if dialect == "postgresql"
              else {"start": _sqlite_value(start), "end": _sqlite_value(end)})
    connection = store.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        cursor.close()
        return rows
    finally:
        connection.close()


def interleaved(actions: dict[str, Callable[[], object]]) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds of each action, run in turn ``REPEATS`` times after one warm-up each (so that the
    machine's load, which drifts, weighs on all of them alike); and each one's last result."""
    results = {name: action() for name, action in actions.items()}  # warm-up: caches, statement compilation
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(REPEATS):
        for name, action in actions.items():
            started = time.perf_counter()
            results[name] = action()
            times[name].append(time.perf_counter() - started)
    return {name: median(values) for name, values in times.items()}, results


def same_figures(report_rows: list[tuple], other: list[tuple]) -> bool:
    if len(report_rows) != len(other):
        return False
    for mine, theirs in zip(report_rows, other, strict=True):
        if tuple(mine[:2]) != tuple(theirs[:2]):
            return False
        for a, b in zip(mine[2:], theirs[2:], strict=True):
            if abs(float(a) - float(b)) > 1e-6 * max(1.0, abs(float(a))):
                return False
    return True


def measure(name: str, store: Store, rows_made: int) -> list[Row]:
    query = ReportQuery(start=MONTH[0], end=MONTH[1], group_by=("user", "process"))
    dialect = store.engine.dialect.name
    seconds, results = interleaved({
        "report": lambda: run_report(store, query, WEIGHTS),
        "over usage": lambda: run_raw(store, hand_written(dialect, False)),
        "over attempts": lambda: run_raw(store, hand_written(dialect, True)),
        "document": lambda: json.dumps(report_document(run_report(store, query, WEIGHTS), []),
                                       separators=(",", ":")),
        "year": lambda: run_report(store, ReportQuery(group_by=("month",)), WEIGHTS),
    })
    report_s, usage_s, attempts_s = seconds["report"], seconds["over usage"], seconds["over attempts"]
    document_s, year_s = seconds["document"], seconds["year"]
    result, over_usage, over_attempts = results["report"], results["over usage"], results["over attempts"]
    assert len(result.columns) == 2 + len(FIGURES)
    for other, what in ((over_usage, "job_usage"), (over_attempts, "the attempts")):
        if not same_figures(result.rows, other):
            raise SystemExit(f"{name}: the report and the hand-written query over {what} disagree")
    bench = f"Accounting, {rows_made:,} attempts, {name}"
    groups = f"one month by user and process ({len(result.rows):,} groups)"
    ratio = report_s / usage_s
    met = report_s <= TARGET_SECONDS and ratio <= TARGET_RATIO
    return [
        Row(bench, f"report: {groups}", f"{report_s * 1000:.0f} ms",
            f"hand-written GROUP BY over jobs + job_usage: {usage_s * 1000:.0f} ms", f"{ratio:.2f}x",
            f"<= {TARGET_SECONDS:g} s, <= {TARGET_RATIO}x", met),
        Row(bench, "the same over the attempts (no job_usage)", f"{attempts_s * 1000:.0f} ms",
            f"report: {report_s * 1000:.0f} ms", f"{attempts_s / report_s:.1f}x", "-", None),
        Row(bench, "report and its JSON document", f"{document_s * 1000:.0f} ms", "-", "-", "-", None),
        Row(bench, "whole year by month (12 groups)", f"{year_s * 1000:.0f} ms", "-", "-", "-", None),
    ]


# -- the two stores ---------------------------------------------------------------------------------------

def load(store: Store, fill: Callable[[], None], name: str) -> Row:
    store.upgrade("0005")
    started = time.perf_counter()
    fill()
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    store.upgrade()  # 0007: job_usage filled from every attempt, the covering index built
    migrated = time.perf_counter() - started
    with store.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("VACUUM ANALYZE" if name == "PostgreSQL" else "ANALYZE")
    return Row(f"Accounting, {name}", "loading the year; migration 0007 (sums every attempt into job_usage)",
               f"{migrated:.1f} s", f"loading: {loaded:.1f} s", "-", "-", None)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    attempts, users, processes = (50_000, 1_000, 50) if args.quick else (1_000_000, 10_000, 50)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-accounting-") as tmp:
        path = Path(tmp) / "gateway.db"
        store = Store(f"sqlite:///{path}")
        rows.append(load(store, lambda: fill_sqlite(path, history(attempts, users, processes)), "SQLite"))
        rows += measure("SQLite", store, attempts)
        store.dispose()
        with postgres() as url:
            store = Store(url)
            rows.append(load(store, lambda: fill_postgres(url, history(attempts, users, processes)), "PostgreSQL"))
            rows += measure("PostgreSQL", store, attempts)
            store.dispose()
    report(rows, args.json)


if __name__ == "__main__":
    main()
