"""Benchmark 2: the gateway's HTTP answers against a bare WSGI app: accept latency, catalogue documents, status
reads (with and without If-None-Match), and /jobs pages on stores of two sizes.

Every server runs in its own process under waitress with the same thread
count on 127.0.0.1, all started at once and measured in turn, interleaved
(gateway, bare, gateway, bare, ... for each figure, repeated): the gateway
through the `wps-gateway serve` code path with the dispatcher external and not
running (accepted jobs just queue), the baseline a trivial app answering a
small XML document (``_bare_app.py``). The load comes from this process and,
for throughput, from separate client processes, each with one keep-alive
connection.

* Accept latency: sequential KVP GET Executes of the shipped ``ndvi-mosaic``
  processor (one sample scene by reference, ``storeExecuteResponse=true`` and
  ``status=true``), p50 and p99, against the same GET on the bare app.
* Throughput, requests per second (and the server's CPU time per request, from
  /proc), several client processes for a fixed time:
  WPS 1.0.0 GetCapabilities and DescribeProcess; the three status reads of one
  accepted job (WPS 1.0.0 status document, WPS 2.0 GetStatus, OGC API
  ``/jobs/{id}``), each plainly and as a poller that sends back the ETag it
  got (If-None-Match: the gateway answers 304).
* ``/jobs?limit=50``, sequential, p50, measured before the accept latency: on
  a store of a thousand jobs (and the one the status reads poll), and on one of
  a hundred thousand (both filled before the servers start, each job with its
  descriptor and inputs as ``submit_job`` writes them), against the bare app.
"""

from __future__ import annotations

import http.client
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import (
    HOST,
    Client,
    Row,
    Server,
    bare_server,
    execute_path,
    gateway_server,
    latencies,
    median,
    parse_args,
    percentile,
    report,
    sample_scenes,
    status_path,
    throughput,
)

PROCESS = "ndvi-mosaic"


@dataclass(frozen=True)
class Sizes:
    requests: int  # timed Executes
    warmup: int  # untimed Executes first (imports, caches, connection)
    clients: int  # load processes for throughput
    seconds: float  # time of one throughput measurement
    repeats: int  # interleaved repetitions of each throughput and /jobs figure (medians reported)
    list_requests: int  # sequential /jobs requests per measurement
    small_store: int  # jobs in the two stores /jobs is measured on
    big_store: int


QUICK = Sizes(requests=50, warmup=5, clients=2, seconds=1.0, repeats=1, list_requests=30, small_store=1_000,
              big_store=10_000)
FULL = Sizes(requests=1_000, warmup=20, clients=2, seconds=2.0, repeats=3, list_requests=200, small_store=1_000,
             big_store=100_000)


def etag_of(port: int, path: str) -> str:
    """The ETag ``path`` is answered with, after checking that sending it back gets a 304."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        etag = response.getheader("ETag")
        if response.status != 200 or not etag:
            raise RuntimeError(f"GET {path} answered {response.status} without an ETag")
        conn.request("GET", path, headers={"If-None-Match": etag})
        response = conn.getresponse()
        response.read()
        if response.status != 304:
            raise RuntimeError(f"GET {path} with If-None-Match: {etag} answered {response.status}, not 304")
        return etag
    finally:
        conn.close()


# ------------------------------------------------------------------ stores


def fill_store(data_dir: Path, count: int, scenes: list[Path]) -> None:
    """``count`` finished jobs of the shipped processors, as ``submit_job`` and the dispatcher leave them (the
    descriptor and inputs included), in the store the gateway will open; created a second apart."""
    from sqlalchemy import insert

    from processes.registry import discover
    from wps_gateway.store.db import Store
    from wps_gateway.store.models import Job

    data_dir.mkdir(parents=True)
    store = Store(f"sqlite:///{data_dir / 'gateway.db'}")
    store.upgrade()
    descriptor = discover([])[PROCESS].raw
    start = datetime.now(UTC) - timedelta(seconds=count)
    inputs = {"scenes": [scene.as_uri() for scene in scenes[:3]]}
    outputs = {"mosaic": {"file": "mosaic.tif"}, "statistics": {"file": "statistics.json"}}
    batch = []
    for n in range(count):
        created = start + timedelta(seconds=n)
        batch.append({"id": str(uuid.uuid4()), "process_id": PROCESS, "process_version": descriptor[
            "processDescription"]["version"], "status": "failed" if n % 50 == 0 else "successful",
            "message": "Process succeeded", "progress": 100, "user": f"user{n % 100}", "group": "", "priority": 0,
            "protocol": "wps1", "inputs": inputs, "response_form": {"asynchronous": True}, "descriptor": descriptor,
            "outputs": outputs, "created": created, "started": created, "finished": created + timedelta(seconds=1),
            "updated": created, "cancel_requested": False, "client": f"user{n % 100}", "task_count": 4})
        if len(batch) == 5000 or n == count - 1:
            with store.engine.begin() as connection:
                connection.execute(insert(Job.__table__), batch)
            batch = []
    store.dispose()


# ------------------------------------------------------------------ figures


@dataclass(frozen=True)
class Read:
    """One throughput figure: a path on the gateway, the target ratio to the bare app."""

    label: str
    path: str
    conditional: bool  # a poller sending back the ETag it got
    target: float


Figures = tuple[float, ...]


def interleaved(measure: Callable[[Server], Figures], servers: tuple[Server, Server], repeats: int
                ) -> tuple[Figures, Figures]:
    """Medians of ``repeats`` measurements on each of two servers, taken gateway, bare, gateway, bare, ..."""
    values: tuple[list[Figures], list[Figures]] = ([], [])
    for _ in range(repeats):
        for side, server in enumerate(servers):
            values[side].append(measure(server))
    gateway, bare = ([median(column) for column in zip(*side, strict=True)] for side in values)
    return tuple(gateway), tuple(bare)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def polled(server: Server, path: str, headers: dict[str, str] | None, sizes: Sizes) -> Figures:
    """Requests per second, and the server's CPU time per request (less swayed by other work on the machine)."""
    before = cpu_seconds(server.pid)
    rate = throughput(server.port, path, sizes.clients, sizes.seconds, headers)
    requests = rate * sizes.seconds + sizes.clients  # and one untimed request per client
    return rate, (cpu_seconds(server.pid) - before) / requests


def throughput_rows(gateway: Server, bare: Server, reads: list[Read], sizes: Sizes) -> list[Row]:
    note = f" ({sizes.clients} client processes, {sizes.seconds:g} s, median of {sizes.repeats})"
    rows = []
    for read in reads:
        headers = {"If-None-Match": etag_of(gateway.port, read.path)} if read.conditional else None
        (mine, mine_cpu), (base, base_cpu) = interleaved(lambda server, p=read.path, h=headers: polled(
            server, p, h, sizes), (gateway, bare), sizes.repeats)
        ratio = mine / base
        rows.append(Row(read.label + note, "requests per second (server CPU per request)",
                        f"{mine:,.0f}/s ({mine_cpu * 1000:.2f} ms)",
                        f"bare WSGI: {base:,.0f}/s ({base_cpu * 1000:.2f} ms)",
                        f"{ratio:.3f}x (CPU {mine_cpu / base_cpu:.1f}x)", f">= {read.target:g}x", ratio >= read.target))
    return rows


def reads_of(status: str) -> list[Read]:
    """The catalogue documents and the three status reads of the job whose WPS 1.0.0 status is at ``status``."""
    job_id = status.rsplit("/", 1)[1].removesuffix(".xml")
    wps2 = f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}"
    describe = f"/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier={PROCESS}"
    reads = [Read("WPS 1.0.0 GetCapabilities", "/wps?service=WPS&request=GetCapabilities", False, 0.3),
             Read(f"WPS 1.0.0 DescribeProcess ({PROCESS})", describe, False, 0.3)]
    for label, path in (("WPS 1.0.0 status document", status), ("WPS 2.0 GetStatus", wps2),
                        ("OGC API /jobs/{id}", f"/jobs/{job_id}")):
        reads += [Read(label, path, False, 0.5), Read(f"{label}, If-None-Match (304)", path, True, 0.5)]
    return reads


def list_p50(server: Server, sizes: Sizes) -> Figures:
    return (percentile(latencies(server.port, "/jobs?limit=50", sizes.list_requests, 5), 50) * 1000,)


def accept_rows(gateway: list[float], bare: list[float], sizes: Sizes) -> list[Row]:
    title = f"Async Execute accept ({PROCESS}, KVP GET, {sizes.requests:,} sequential)"
    rows = []
    for pct in (50, 99):
        mine, base = percentile(gateway, pct) * 1000, percentile(bare, pct) * 1000
        target = "<= 30 ms" if pct == 99 else "-"
        rows.append(Row(title, f"latency p{pct}", f"{mine:.2f} ms", f"bare WSGI: {base:.2f} ms",
                        f"{mine / base:.1f}x", target, mine <= 30 if pct == 99 else None))
    return rows


def list_rows(small: float, bare: float, big: float, sizes: Sizes) -> list[Row]:
    title = f"/jobs?limit=50 ({sizes.list_requests} sequential, median of {sizes.repeats})"
    small_jobs = f"{sizes.small_store + 1:,} jobs"  # and the one accepted job the status reads poll
    return [Row(f"{title}, {small_jobs}", "latency p50", f"{small:.2f} ms", f"bare WSGI: {bare:.2f} ms",
                f"{small / bare:.1f}x", "p50 < 20 ms", small < 20),
            Row(f"{title}, {sizes.big_store:,} jobs", "latency p50", f"{big:.2f} ms",
                f"{small_jobs}: {small:.2f} ms", f"{big / small:.2f}x", "p50 < 20 ms, <= 1.5x (flat)",
                big < 20 and big / small <= 1.5)]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        workdir = Path(tmp)
        data = workdir / "sample-data"
        scenes = sample_scenes(data)
        execute = execute_path(PROCESS, f"scenes=@xlink:href={scenes[0].as_uri()}")
        small, big = workdir / "small", workdir / "big"
        fill_store(small / "var", sizes.small_store, scenes)
        fill_store(big / "var", sizes.big_store, scenes)
        with gateway_server(small, data) as gateway, bare_server(workdir) as bare, \
                gateway_server(big, data) as big_gateway:
            client = Client(gateway.port)
            status = status_path(client.get(execute))  # fails loudly unless the gateway accepted the job
            client.close()
            # /jobs first, while the small store holds its jobs and this one only
            (small_p50,), (bare_p50,) = interleaved(lambda server: list_p50(server, sizes), (gateway, bare),
                                                    sizes.repeats)
            (big_p50,), _ = interleaved(lambda server: list_p50(server, sizes), (big_gateway, bare), sizes.repeats)
            times = {port: latencies(port, execute, sizes.requests, sizes.warmup) for port in (gateway.port, bare.port)}
            rows = accept_rows(times[gateway.port], times[bare.port], sizes)
            rows += throughput_rows(gateway, bare, reads_of(status), sizes)
    rows += list_rows(small_p50, bare_p50, big_p50, sizes)
    report(rows, args.json)


if __name__ == "__main__":
    main()
