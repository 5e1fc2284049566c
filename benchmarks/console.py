"""How fast ``/metrics`` and the console's jobs page are with 1,000,000 jobs in the store.

The store is filled at the head revision, so the triggers of migration 0011
count every job as it is inserted (as the gateway's own writes would); then
the changes are folded into ``job_counts`` (timed: what the active
dispatcher does every few seconds, here all at once). 99 % of the jobs have
ended, 1 % run with four tasks each (queued and running: what the console's
and the scrape's task figures count); 2,000 users, 50 processes, a year of
creation times. Each request goes through the whole WSGI application
(routing, the operator check, the queries, the rendering) in this process,
on SQLite and on a PostgreSQL server started here from Debian's binaries
(127.0.0.1, a temporary folder, default settings), after ``ANALYZE``.

Baselines, on the same store in the same run: for ``/metrics``, what counting
jobs by process and status costs without ``job_counts`` (a ``GROUP BY`` over
``jobs``, on the DB-API cursor); for the jobs page, the OGC API's own job
list (``GET /jobs?limit=50``). Medians of 7 runs after one warm-up, the
requests taking turns (the accounting benchmark's loaders and timing).
Target: under 100 ms each for ``/metrics`` and the first page of jobs.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import REPO, Row, parse_args, report
from accounting_report import fill_postgres, fill_sqlite, interleaved, postgres  # its loaders and its timing

sys.path.insert(0, str(REPO))
from werkzeug.test import Client  # noqa: E402

from wps_gateway.metrics.job_counts import fold_changes  # noqa: E402
from wps_gateway.store.db import Store  # noqa: E402

TARGET_MS = 100.0
START = datetime(2025, 1, 1, tzinfo=UTC)
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


def history(jobs: int, seed: int = 16) -> Iterator[tuple[str, tuple]]:
    """("jobs" | "tasks" | "task_attempts", row); the same every run."""
    rnd = random.Random(seed)
    for _ in range(jobs):
        job_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        user = f"user{rnd.randrange(2000):05d}"
        created = START + timedelta(seconds=rnd.random() * 365 * 86400)
        status = rnd.choices(("successful", "failed", "dismissed", "running"), (90, 7, 2, 1))[0]
        ended = None if status == "running" else created + timedelta(minutes=rnd.randrange(1, 600))
        inputs = f'{{"tiles": ["file:///eodata/s2/T33U{rnd.randrange(99):02d}_2025.tif"]}}'
        yield "jobs", (job_id, f"proc-{rnd.randrange(50):02d}", "1.0.0", status, "Process succeeded", 100, user,
                       "group", rnd.choice((0, 0, 0, 5)), "ogcapi", inputs, "{}", "{}", "{}", created, created, ended,
                       ended or created, False, user, 4)
        if status == "running":  # in the layouts of the accounting benchmark's loaders
            for index in range(4):
                task_id = f"{job_id}.classify.{index}"
                running = index < 2
                yield "tasks", (task_id, job_id, index, "classify", index, "running" if running else "queued", "{}",
                                int(running), 1, "", created, created if running else None, None)
                if running:
                    yield "task_attempts", (task_id, 1, "local", f"{task_id}.1", "running", "", 1, 512, 0, 0, None,
                                            None, None, None, created, created, None)


def gateway_client(data_dir: Path, url: str) -> tuple[Client, Store]:
    from wps_gateway.app import GatewayApp
    from wps_gateway.config import load_settings
    from wps_gateway.context import GatewayContext

    settings = load_settings(environ={"GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_DATABASE_URL": url,
                                      "SERVER_URL": "http://localhost/wps"})
    store = Store(settings.database_url)
    return Client(GatewayApp(GatewayContext.create(settings, store))), store


def counted_by_hand(store: Store) -> Callable[[], object]:
    def run() -> object:
        connection = store.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT process_id, status, count(*) FROM jobs GROUP BY process_id, status")
            return cursor.fetchall()
        finally:
            connection.close()
    return run


def get(client: Client, path: str) -> Callable[[], object]:
    def run() -> object:
        response = client.get(path, environ_base=LOOPBACK)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
        return response.get_data()
    return run


def measure(name: str, data_dir: Path, url: str, jobs: int, fill: Callable[[], None]) -> list[Row]:
    store = Store(url)
    store.upgrade()
    started = time.perf_counter()
    fill()
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    folded = fold_changes(store)
    fold_s = time.perf_counter() - started
    with store.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM ANALYZE" if name == "PostgreSQL" else "ANALYZE")
    client, app_store = gateway_client(data_dir, url)
    seconds, _ = interleaved({
        "metrics": get(client, "/metrics"),
        "by hand": counted_by_hand(store),
        "page": get(client, "/admin"),
        "api": get(client, "/admin/api/jobs?limit=50"),
        "ogc": get(client, "/jobs?limit=50"),
        "failed": get(client, "/admin?status=failed&process=proc-07"),
        "user": get(client, "/admin?user=user00042"),
        "sorted": get(client, "/admin?sort=process&order=asc"),
        "deep": get(client, "/admin?offset=100000"),
    })
    ms = {name: value * 1000 for name, value in seconds.items()}
    bench = f"Console, {jobs:,} jobs, {name}"
    rows = [
        Row(bench, f"loading; folding the {folded:,} counted changes into job_counts", f"{fold_s:.1f} s",
            f"loading: {loaded:.0f} s", "-", "-", None),
        Row(bench, "GET /metrics", f"{ms['metrics']:.1f} ms", f"GROUP BY over jobs: {ms['by hand']:.0f} ms",
            f"{ms['metrics'] / ms['by hand']:.2f}x", f"< {TARGET_MS:g} ms", ms["metrics"] < TARGET_MS),
        Row(bench, "GET /admin (the jobs page, first 50, newest first, with the total)", f"{ms['page']:.1f} ms",
            f"GET /jobs?limit=50 (OGC API): {ms['ogc']:.1f} ms", f"{ms['page'] / ms['ogc']:.2f}x",
            f"< {TARGET_MS:g} ms", ms["page"] < TARGET_MS),
        Row(bench, "GET /admin/api/jobs?limit=50 (JSON)", f"{ms['api']:.1f} ms", "-", "-", "-", None),
        Row(bench, "GET /admin?status=failed&process=... (filtered, counted)", f"{ms['failed']:.1f} ms", "-", "-",
            "-", None),
        Row(bench, "GET /admin?user=... (one user's ~500 jobs, counted)", f"{ms['user']:.1f} ms", "-", "-", "-",
            None),
        Row(bench, "GET /admin?sort=process&order=asc", f"{ms['sorted']:.1f} ms", "-", "-", "-", None),
        Row(bench, "GET /admin?offset=100000 (page 2,001)", f"{ms['deep']:.1f} ms", "-", "-", "-", None),
    ]
    app_store.dispose()
    store.dispose()
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    jobs = 50_000 if args.quick else 1_000_000
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        path = Path(tmp) / "gateway.db"
        url = f"sqlite:///{path}"
        rows += measure("SQLite", Path(tmp) / "var-sqlite", url, jobs, lambda: fill_sqlite(path, history(jobs)))
    with postgres() as url, tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        rows += measure("PostgreSQL", Path(tmp) / "var-pg", url, jobs, lambda: fill_postgres(url, history(jobs)))
    report(rows, args.json)


if __name__ == "__main__":
    main()
