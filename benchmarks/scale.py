"""Does the gateway stay as fast with a million jobs in its store as with a thousand?

Job stores of 100,000 and 1,000,000 jobs (``--quick``: 10,000), each with
its tasks, attempts, events, usage and outbox rows as the gateway writes them
(``_history.py``: template jobs run by the real dispatcher, copied by
INSERT ... SELECT), on SQLite and on a PostgreSQL server started here (the
tests' recipe, 127.0.0.1); the baseline is a store of 1,000 such jobs beside
it. The schema is the store's own migrations (``Store.upgrade``, what
``wps-gateway db upgrade`` runs). The big store grows by older history, so
every size has the same newest jobs. SQLite gets no ANALYZE (the gateway never
runs one); PostgreSQL gets ``VACUUM ANALYZE`` after each fill, as its
autovacuum would.

At each size both stores are served at once, each by its own gateway
(``wps-gateway serve``, dispatcher external, 8 threads), and every figure is
measured on the two in turns, request after request, so that the load of
this shared machine weighs on both alike; medians of sequential requests
from this process over one keep-alive connection per gateway (each figure
runs until it has its count or its time budget, at least 3 pairs):

* async Execute accept (WPS 1.0.0 KVP GET of ``ndvi-mosaic``, one sample scene);
* status reads of 50 jobs spread over the store's whole history, in turn:
  the WPS 1.0.0 status document, WPS 2.0 GetStatus, OGC API ``/jobs/{id}``;
* ``/jobs?limit=50``: the first page, and a deep page (90 % of the way
  down) through its ``next`` link: the first page's ``next`` link with its
  ``offset`` moved down when the links carry one, else followed page after
  page; the figure is the deep page's own ``next`` link;
* ``wps-gateway jobs list`` (in this process: settings, store, query, print);
* an idle dispatcher turn (``Dispatcher.run_once`` on the store, local
  backend, nothing to do: every job is final).

Target: every figure at 100k and 1M at most 1.5x the same figure on 1k (flat).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from _common import (
    Client,
    Row,
    execute_path,
    gateway_server,
    median,
    parse_args,
    percentile,
    postgres_server,
    report,
    sample_scenes,
    status_path,
)
from _history import StoreFiller, Template, describe, job_ids, record_templates
from sqlalchemy import delete, func, select

from mesos_backend.local import LocalBackend
from wps_gateway import cli
from wps_gateway.dispatcher import Dispatcher, DispatcherOptions
from wps_gateway.store.db import Store
from wps_gateway.store.models import Job, JobStatus

BASE_SIZE = 1_000
SIZES = (100_000, 1_000_000)
QUICK_SIZES = (10_000,)
TARGET = 1.5
STATUS_JOBS = 50  # jobs whose status is read, spread over the history
DEEP = 0.9  # how far down the deep page is
PAGE = 50


@dataclass(frozen=True)
class Budget:
    """How many timed pairs a figure gets, and how long it may take (a slow figure stops early)."""

    count: int
    seconds: float
    warmup: int = 3


FULL = {"accept": Budget(200, 40), "status": Budget(200, 40), "page": Budget(50, 60, 1), "cli": Budget(15, 60, 1),
        "turn": Budget(50, 40)}
QUICK = {name: Budget(max(3, b.count // 10), b.seconds / 5, 1) for name, b in FULL.items()}
FIGURES = ("async Execute accept", "WPS 1.0.0 status document", "WPS 2.0 GetStatus", "OGC API /jobs/{id}",
           "/jobs?limit=50, first page", "/jobs?limit=50, deep page (its next link)", "wps-gateway jobs list",
           "idle dispatcher turn")
Action = Callable[[int], object]


@dataclass
class Side:
    """One store and what is measured on it: its gateway's connection, its jobs, its dispatcher."""

    name: str
    store: Store
    url: str
    size: int
    workdir: Path
    client: Client | None = None
    ids: list[str] = field(default_factory=list)
    deep: str = ""
    dispatcher: Dispatcher | None = None


def timed_pairs(small: Action, big: Action, budget: Budget) -> tuple[list[float], list[float]]:
    """Seconds of ``small(i)`` and ``big(i)`` in turns for i = 0, 1, ..., after the warm-up, until ``budget``
    says stop."""
    for i in range(budget.warmup):
        small(i)
        big(i)
    times: tuple[list[float], list[float]] = ([], [])
    ends = time.monotonic() + budget.seconds
    while len(times[1]) < budget.count and (len(times[1]) < 3 or time.monotonic() < ends):
        i = len(times[1])
        for action, kept in ((small, times[0]), (big, times[1])):
            started = time.perf_counter()
            action(i)
            kept.append(time.perf_counter() - started)
    return times


# -- what is timed ----------------------------------------------------------------------------------------


def status_reads(side: Side) -> dict[str, Action]:
    """The three protocols' status reads, each going round the side's jobs."""
    ids, client = side.ids, side.client

    def wps2(i: int) -> str:
        return "/wps?" + urlencode({"service": "WPS", "version": "2.0.0", "request": "GetStatus",
                                    "jobID": ids[i % len(ids)]})

    return {"WPS 1.0.0 status document": lambda i: client.get(f"/wps/status/{ids[i % len(ids)]}.xml"),
            "WPS 2.0 GetStatus": lambda i: client.get(wps2(i)),
            "OGC API /jobs/{id}": lambda i: client.get(f"/jobs/{ids[i % len(ids)]}")}


def next_link(body: bytes) -> str | None:
    """The path and query of a /jobs page's ``next`` link."""
    for link in json.loads(body)["links"]:
        if link["rel"] == "next":
            parts = urlsplit(link["href"])
            return f"{parts.path}?{parts.query}"
    return None


def with_query(path: str, **values: int) -> str:
    parts = urlsplit(path)
    query = dict(parse_qsl(parts.query))
    query.update({key: str(value) for key, value in values.items()})
    return f"{parts.path}?{urlencode(query)}"


def deep_page(client: Client, size: int) -> str:
    """The ``next`` link of the page that starts ``DEEP`` of the way down the listing.

    Links that carry an ``offset`` are followed with the offset moved there
    (what a client paging through would reach); other links (a cursor) are
    followed page by page, 1,000 jobs a page, until that far down.
    """
    target = int(size * DEEP) // PAGE * PAGE
    link = next_link(client.get(f"/jobs?limit={PAGE}"))
    if link is not None and "offset" in dict(parse_qsl(urlsplit(link).query)):
        link = next_link(client.get(with_query(link, offset=target)))
    elif link is not None:
        seen = PAGE
        while seen < target and link is not None:
            step = min(1000, target - seen)
            link = next_link(client.get(with_query(link, limit=step)))
            seen += step
        link = with_query(link, limit=PAGE) if link else None
    if link is None:
        raise RuntimeError(f"no next link {target} jobs down a listing of {size}")
    client.get(link)  # it answers
    return link


def jobs_list(side: Side) -> Action:
    """``wps-gateway jobs list`` on the side's store, run in this process (after the first, its imports are done)."""
    environ = {"GATEWAY_DATA_DIR": str(side.workdir / "var"), "GATEWAY_DATABASE_URL": side.url,
               "GATEWAY_PROCESSORS_PATHS": "", "PYWPS_CFG": ""}

    def run(_: int) -> None:
        saved = {key: os.environ.get(key) for key in environ}
        os.environ.update(environ)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                code = cli.main(["--log-level", "WARNING", "jobs", "list"])
        finally:
            for key, value in saved.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        if code != 0 or out.getvalue().count("\n") != PAGE:
            raise RuntimeError(f"jobs list exited {code} with {out.getvalue().count(chr(10))} lines")
    return run


@contextmanager
def idle_dispatcher(side: Side) -> Iterator[Dispatcher]:
    """A dispatcher on the side's store with the local backend (not fenced: one-off runs are not)."""
    backend = LocalBackend(sandbox_root=side.workdir / "sandboxes", cpus=2)
    dispatcher = Dispatcher(side.store, backend, DispatcherOptions(jobs_dir=side.workdir / "jobs"))
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        backend.stop()


def measure(small: Side, big: Side, scene: Path, budgets: dict[str, Budget]) -> dict[str, tuple[list, list]]:
    """Every figure on the two stores in turns: {figure: (seconds on small, seconds on big)}."""
    sides = (small, big)
    figures: dict[str, tuple[list, list]] = {}
    with ExitStack() as stack:
        for side in sides:
            server = stack.enter_context(gateway_server(side.workdir, scene.parent,
                                                        GATEWAY_DATABASE_URL=side.url))
            side.client = Client(server.port)
            stack.callback(side.client.close)
            side.ids = job_ids(side.store, [i * side.size // STATUS_JOBS for i in range(STATUS_JOBS)])
            side.deep = deep_page(side.client, side.size)
        execute = execute_path("ndvi-mosaic", f"scenes=@xlink:href={scene.as_uri()}")
        for side in sides:
            status_path(side.client.get(execute))  # accepted, or fail loudly
        figures["async Execute accept"] = timed_pairs(*(lambda _, s=s: s.client.get(execute) for s in sides),
                                                      budgets["accept"])
        reads = [status_reads(side) for side in sides]
        for name in reads[0]:
            figures[name] = timed_pairs(reads[0][name], reads[1][name], budgets["status"])
        first = f"/jobs?limit={PAGE}"
        figures["/jobs?limit=50, first page"] = timed_pairs(*(lambda _, s=s: s.client.get(first) for s in sides),
                                                            budgets["page"])
        figures["/jobs?limit=50, deep page (its next link)"] = timed_pairs(
            *(lambda _, s=s: s.client.get(s.deep) for s in sides), budgets["page"])
    for side in sides:  # the stores again as filled, every job final: the dispatcher has nothing to do
        with side.store.session() as session:
            session.execute(delete(Job).where(Job.status == JobStatus.ACCEPTED))
    figures["wps-gateway jobs list"] = timed_pairs(jobs_list(small), jobs_list(big), budgets["cli"])
    with idle_dispatcher(small) as one, idle_dispatcher(big) as other:
        figures["idle dispatcher turn"] = timed_pairs(lambda _: one.run_once(), lambda _: other.run_once(),
                                                      budgets["turn"])
    return figures


# -- the stores -------------------------------------------------------------------------------------------


def maintain(store: Store) -> None:
    """What the database's own upkeep would have done after a bulk load: PostgreSQL's autovacuum."""
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


def store_rows(store: Store) -> int:
    from _history import TABLES

    with store.engine.connect() as connection:
        return sum(connection.execute(select(func.count()).select_from(table)).scalar_one() for table in TABLES)


def run_stores(name: str, urls: tuple[str, str], sizes: tuple[int, ...], templates: list[Template], workdir: Path,
               scene: Path, budgets: dict[str, Budget]) -> list[Row]:
    """The 1k store and the big one, filled size after size and measured at each."""
    small = Side(name, Store(urls[0]), urls[0], BASE_SIZE, workdir / "small")
    big = Side(name, Store(urls[1]), urls[1], 0, workdir / "big")
    rows: list[Row] = []
    for side in (small, big):
        side.workdir.mkdir(parents=True, exist_ok=True)
        side.store.upgrade()
    StoreFiller(small.store, templates).fill(0, BASE_SIZE)
    maintain(small.store)
    filler = StoreFiller(big.store, templates)
    for size in sizes:
        started = time.perf_counter()
        filler.fill(big.size, size)
        maintain(big.store)
        seconds = time.perf_counter() - started
        rows.append(Row(f"Scale, {name}", f"filling the store from {big.size:,} to {size:,} jobs "
                        f"({store_rows(big.store):,} rows in all)", f"{seconds:.0f} s"))
        print(f"{rows[-1].measure}: {rows[-1].value}", flush=True)
        big.size = size
        figures = measure(small, big, scene, budgets)
        rows += rows_for(name, size, figures)
        print("\n".join(f"{row.measure}: {row.value} vs {row.baseline}" for row in rows[-len(FIGURES):]), flush=True)
    for side in (small, big):
        side.store.dispose()
    return rows


def rows_for(name: str, size: int, figures: dict[str, tuple[list, list]]) -> list[Row]:
    rows = []
    for figure in FIGURES:
        small, big = figures[figure]
        value, base = median(big), median(small)
        text, base_text = f"{value * 1000:.1f} ms", f"{base * 1000:.1f} ms"
        if figure == "async Execute accept":
            text += f" (p99 {percentile(big, 99) * 1000:.1f})"
            base_text += f" (p99 {percentile(small, 99) * 1000:.1f})"
        ratio = value / base
        rows.append(Row(f"Scale, {name}, {size:,} jobs", f"{figure} ({len(big)} in turns)", text,
                        f"{BASE_SIZE:,} jobs: {base_text}", f"{ratio:.2f}x", f"<= {TARGET}x", ratio <= TARGET))
    return rows


@contextmanager
def sqlite_urls(workdir: Path) -> Iterator[tuple[str, str]]:
    yield tuple(f"sqlite:///{workdir / side / 'var' / 'gateway.db'}" for side in ("small", "big"))


@contextmanager
def postgres_urls(_: Path) -> Iterator[tuple[str, str]]:
    with postgres_server() as server:
        yield server.url(server.create_database()), server.url(server.create_database())


def own_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=lambda text: tuple(int(size) for size in text.split(",")),
                        help=f"the big store's sizes, ascending, comma-separated (default "
                             f"{','.join(map(str, SIZES))}; --quick {','.join(map(str, QUICK_SIZES))})")
    parser.add_argument("--stores", default="SQLite,PostgreSQL", help="which stores, comma-separated")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], own_options)
    sizes, budgets = (QUICK_SIZES, QUICK) if args.quick else (SIZES, FULL)
    sizes = args.sizes or sizes
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = Path(tmp)
        templates = record_templates(workdir / "templates")
        print(f"rows per job: {describe(templates)}", flush=True)
        scene = sample_scenes(workdir / "sample-data")[0]
        for name, urls in (("SQLite", sqlite_urls), ("PostgreSQL", postgres_urls)):
            if name not in args.stores.split(","):
                continue
            store_dir = workdir / name.lower()
            with urls(store_dir) as pair:
                rows += run_stores(name, pair, sizes, templates, store_dir, scene, budgets)
            shutil.rmtree(store_dir)  # gigabytes at a million jobs
    report(rows, args.json)


if __name__ == "__main__":
    main()
