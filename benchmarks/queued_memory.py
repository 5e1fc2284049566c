"""Benchmark 3: server memory, threads and child processes with 500 async jobs queued.

The gateway runs as `wps-gateway serve` in its own process with the
dispatcher external and not running, so every accepted job stays queued in
the store. Its RSS, thread count and live child processes are read from
/proc after a short warm-up (so that lazy imports and caches of the first
requests are not charged to the jobs) and again after N more async Executes
from client threads in this process. Accepting a job must cost a row in the
store, not a process or a thread: the target is no new child process and no
thread per job.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    Client,
    ProcSnapshot,
    Row,
    execute_path,
    gateway_server,
    parse_args,
    report,
    sample_scenes,
    snapshot,
    status_path,
)

PROCESS = "ndvi-mosaic"
WARMUP = 10
CLIENT_THREADS = 4
SETTLE_SECONDS = 1.0  # let request threads go idle before reading /proc


@dataclass
class Submitted:
    """What a batch of Executes gave: the accepted jobs' status paths and the answers that were errors."""

    accepted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def submit(port: int, execute: str, count: int) -> Submitted:
    """Async Executes on one connection until ``count`` were accepted; errors are kept, not fatal.

    A refused Execute is a finding to report (the table has a row for it), but
    the memory figures need ``count`` queued jobs, so the client resubmits.
    """
    client = Client(port)
    result = Submitted()
    try:
        while len(result.accepted) < count:
            status, body = client.request(execute)
            if status == 200:
                result.accepted.append(status_path(body))
            else:
                result.errors.append(f"HTTP {status}: {_exception_text(body)}")
                if len(result.errors) > count:
                    raise RuntimeError(f"more errors than jobs, last: {result.errors[-1]}")
        return result
    finally:
        client.close()


def _exception_text(body: bytes) -> str:
    match = re.search(rb"<ows:ExceptionText>(.*?)</ows:ExceptionText>", body, re.S)
    return (match.group(1) if match else body[:200]).decode(errors="replace").strip()


def submit_parallel(port: int, execute: str, jobs: int) -> Submitted:
    """Submit ``jobs`` accepted Executes from several client threads; each must be a distinct job."""
    shares = [jobs // CLIENT_THREADS + (1 if i < jobs % CLIENT_THREADS else 0) for i in range(CLIENT_THREADS)]
    total = Submitted()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        for part in pool.map(lambda n: submit(port, execute, n), shares):
            total.accepted += part.accepted
            total.errors += part.errors
    if len(set(total.accepted)) != jobs:
        raise RuntimeError(f"{jobs} accepted Executes gave {len(set(total.accepted))} distinct jobs")
    return total


def queued_jobs(database: Path) -> int:
    """Jobs still 'accepted' in the store: proves nothing ran them meanwhile."""
    with sqlite3.connect(database) as db:
        return db.execute("SELECT count(*) FROM jobs WHERE status = 'accepted'").fetchone()[0]


@dataclass(frozen=True)
class Measurement:
    start: ProcSnapshot  # server just listening
    before: ProcSnapshot  # after the warm-up Executes
    after: ProcSnapshot  # after the measured jobs
    jobs: int
    errors: list[str]  # Executes answered with an error while submitting the jobs concurrently


def measure(jobs: int) -> Measurement:
    """Snapshots at start, after warm-up and after ``jobs`` more accepted jobs; checks they all queued."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        workdir = Path(tmp)
        data = workdir / "sample-data"
        execute = execute_path(PROCESS, f"scenes=@xlink:href={sample_scenes(data)[0].as_uri()}")
        with gateway_server(workdir, data) as server:
            time.sleep(SETTLE_SECONDS)
            start = snapshot(server.pid)
            submit(server.port, execute, WARMUP)
            time.sleep(SETTLE_SECONDS)
            before = snapshot(server.pid)
            submitted = submit_parallel(server.port, execute, jobs)
            time.sleep(SETTLE_SECONDS)
            after = snapshot(server.pid)
        queued = queued_jobs(workdir / "var" / "gateway.db")
    if queued != jobs + WARMUP:
        raise RuntimeError(f"expected {jobs + WARMUP} queued jobs in the store, found {queued}")
    return Measurement(start, before, after, jobs, submitted.errors)


def rows_for(m: Measurement) -> list[Row]:
    title = f"{m.jobs} async jobs queued (dispatcher external)"
    delta_kb = m.after.rss_kb - m.before.rss_kb
    thread_delta = m.after.threads - m.before.threads
    child_delta = m.after.children - m.before.children
    attempts = m.jobs + len(m.errors)
    first_error = f" ({m.errors[0]})" if m.errors else ""
    return [
        Row(title, "server RSS at start (before warm-up)", f"{m.start.rss_kb / 1024:.1f} MiB"),
        Row(title, "server RSS after jobs vs before", f"{m.after.rss_kb / 1024:.1f} MiB",
            f"before: {m.before.rss_kb / 1024:.1f} MiB",
            f"{delta_kb / 1024:+.1f} MiB ({delta_kb / m.jobs:.1f} KB/job)"),
        Row(title, "server threads after vs before", str(m.after.threads), f"before: {m.before.threads}",
            f"{thread_delta:+d}", "none per job", thread_delta < max(1, m.jobs // 100)),
        Row(title, "server child processes after vs before", str(m.after.children),
            f"before: {m.before.children}", f"{child_delta:+d}", "+0 (no process per job)", child_delta <= 0),
        Row(title, f"Executes refused, {CLIENT_THREADS} concurrent clients", f"{len(m.errors)} of {attempts}"
            + first_error, "-", "-", "0", not m.errors),
    ]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    report(rows_for(measure(50 if args.quick else 500)), args.json)


if __name__ == "__main__":
    main()
