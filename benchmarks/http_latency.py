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
* Throughput, requests per second, several client processes for a fixed time:
  WPS 1.0.0 GetCapabilities and DescribeProcess; the three status reads of one
  accepted job (WPS 1.0.0 status document, WPS 2.0 GetStatus, OGC API
  ``/jobs/{id}``), each plainly and as a poller that sends back the ETag it
  got (If-None-Match: the gateway answers 304).
* ``/jobs?limit=50``, sequential, p50: on a store of a thousand jobs, and on
  one of a hundred thousand (filled before the server starts, each job with
  its descriptor and inputs as ``submit_job`` writes them).
"""

from __future__ import annotations

import http.client
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import (
    HOST,
    Client,
    Row,
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


# ------------------------------------------------------------------ HTTP load


def _get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> None:
    """One GET; a 200, or a 304 to a conditional one, else RuntimeError."""
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    if response.status not in ((200, 304) if headers else (200,)):
        raise RuntimeError(f"GET {path[:120]} answered {response.status}")


def _load_worker(port: int, path: str, headers: dict[str, str], start_at: float, duration: float) -> int:
    """Load-process body: GET ``path`` (with ``headers``) back to back during [start_at, start_at + duration)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        _get(conn, path, headers)  # connect and warm up before the clock starts
        while time.time() < start_at:
            time.sleep(0.001)
        done, end = 0, start_at + duration
        while time.time() < end:
            _get(conn, path, headers)
            done += 1
        return done
    finally:
        conn.close()


def rate(port: int, path: str, headers: dict[str, str], sizes: Sizes) -> float:
    """Requests per second with ``sizes.clients`` load processes, each on its own keep-alive connection."""
    start_at = time.time() + 1.0  # every worker is connected and waiting by then
    with multiprocessing.get_context("spawn").Pool(sizes.clients) as pool:
        counts = pool.starmap(_load_worker, [(port, path, headers, start_at, sizes.seconds)] * sizes.clients)
    return sum(counts) / sizes.seconds


def etag_of(port: int, path: str) -> str:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        etag = response.getheader("ETag")
        if response.status != 200 or not etag:
            raise RuntimeError(f"GET {path} answered {response.status} without an ETag")
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


def interleaved(measure: Callable[[int], float], ports: tuple[int, int], repeats: int) -> tuple[float, float]:
    """Median of ``repeats`` measurements on each of two servers, taken gateway, bare, gateway, bare, ..."""
    values: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for side, port in enumerate(ports):
            values[side].append(measure(port))
    return median(values[0]), median(values[1])


def throughput_rows(gateway: int, bare: int, reads: list[Read], sizes: Sizes) -> list[Row]:
    rows = []
    for read in reads:
        headers = {"If-None-Match": etag_of(gateway, read.path)} if read.conditional else {}
        mine, base = interleaved(lambda port, h=headers, p=read.path: rate(port, p, h, sizes), (gateway, bare),
                                 sizes.repeats)
        ratio = mine / base
        rows.append(Row(read.label, "requests per second", f"{mine:,.0f}/s", f"bare WSGI: {base:,.0f}/s",
                        f"{ratio:.2f}x", f">= {read.target:g}x", ratio >= read.target))
    return rows


def list_p50(port: int, sizes: Sizes) -> float:
    return percentile(latencies(port, "/jobs?limit=50", sizes.list_requests, 5), 50) * 1000


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    sizes = (Sizes(50, 5, 2, 1.0, 1, 50, 1_000, 10_000) if args.quick
             else Sizes(1000, 20, 2, 5.0, 3, 300, 1_000, 100_000))
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        workdir = Path(tmp)
        data = workdir / "sample-data"
        scenes = sample_scenes(data)
        execute = execute_path(PROCESS, f"scenes=@xlink:href={scenes[0].as_uri()}")
        small, big = workdir / "small", workdir / "big"
        for folder, count in ((small, sizes.small_store), (big, sizes.big_store)):
            (folder / "var").mkdir(parents=True)
            fill_store(folder / "var", count, scenes)
        with gateway_server(small, data) as gateway, bare_server(workdir) as bare, \
                gateway_server(big, data) as big_gateway:
            client = Client(gateway.port)
            status = status_path(client.get(execute))  # fails loudly unless the gateway accepted the job
            client.close()
            job_id = status.rsplit("/", 1)[1].removesuffix(".xml")
            times = {port: latencies(port, execute, sizes.requests, sizes.warmup)
                     for port in (gateway.port, bare.port)}
            rows = accept_rows(times[gateway.port], times[bare.port], sizes)
            wps2 = f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}"
            reads = [
                Read("WPS 1.0.0 GetCapabilities", "/wps?service=WPS&request=GetCapabilities", False, 0.3),
                Read(f"WPS 1.0.0 DescribeProcess ({PROCESS})",
                     f"/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier={PROCESS}", False, 0.3),
                Read("WPS 1.0.0 status document", status, False, 0.5),
                Read("WPS 1.0.0 status document, If-None-Match (304)", status, True, 0.5),
                Read("WPS 2.0 GetStatus", wps2, False, 0.5),
                Read("WPS 2.0 GetStatus, If-None-Match (304)", wps2, True, 0.5),
                Read("OGC API /jobs/{id}", f"/jobs/{job_id}", False, 0.5),
                Read("OGC API /jobs/{id}, If-None-Match (304)", f"/jobs/{job_id}", True, 0.5),
            ]
            label = f" ({sizes.clients} client processes, {sizes.seconds:g} s, median of {sizes.repeats})"
            rows += throughput_rows(gateway.port, bare.port, [Read(r.label + label, r.path, r.conditional, r.target)
                                                              for r in reads], sizes)
            small_p50, bare_p50 = interleaved(lambda port: list_p50(port, sizes), (gateway.port, bare.port),
                                              sizes.repeats)
            big_p50, _ = interleaved(lambda port: list_p50(port, sizes), (big_gateway.port, bare.port), sizes.repeats)
    rows += list_rows(small_p50, bare_p50, big_p50, sizes)
    report(rows, args.json)


def accept_rows(gateway: list[float], bare: list[float], sizes: Sizes) -> list[Row]:
    accept = f"Async Execute accept ({PROCESS}, KVP GET, {sizes.requests:,} sequential)"
    return [Row(accept, f"latency {name}", f"{percentile(gateway, pct) * 1000:.2f} ms",
                f"bare WSGI: {percentile(bare, pct) * 1000:.2f} ms",
                f"{percentile(gateway, pct) / percentile(bare, pct):.1f}x") for name, pct in (("p50", 50), ("p99", 99))]


def list_rows(small: float, bare: float, big: float, sizes: Sizes) -> list[Row]:
    title = f"/jobs?limit=50 ({sizes.list_requests} sequential, median of {sizes.repeats})"
    return [Row(f"{title}, {sizes.small_store:,} jobs", "latency p50", f"{small:.2f} ms", f"bare WSGI: {bare:.2f} ms",
                f"{small / bare:.1f}x", "p50 < 20 ms", small < 20),
            Row(f"{title}, {sizes.big_store:,} jobs", "latency p50", f"{big:.2f} ms",
                f"{sizes.small_store:,} jobs: {small:.2f} ms", f"{big / small:.2f}x", "p50 < 20 ms, <= 1.5x (flat)",
                big < 20 and big / small <= 1.5)]


if __name__ == "__main__":
    main()
