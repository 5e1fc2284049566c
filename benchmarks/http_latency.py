"""Benchmark 2: async Execute accept latency and status polling throughput, against a bare WSGI app.

Both servers run in their own process under waitress with the same thread
count on 127.0.0.1: the gateway through the `wps-gateway serve` code path
with the dispatcher external and not running (accepted jobs just queue), the
baseline a trivial app answering a small XML document (``_bare_app.py``).
The load comes from this process and, for throughput, from separate client
processes, each with one keep-alive connection.

* Accept latency: sequential KVP GET Executes of the shipped ``ndvi-mosaic``
  processor (one sample scene by reference, ``storeExecuteResponse=true`` and
  ``status=true``), p50 and p99, against the same GET on the bare app.
* Polling: back-to-back GETs of one accepted job's status document by several
  client processes for a fixed time, requests per second, against the bare app.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from _common import (
    Client,
    Row,
    Server,
    bare_server,
    execute_path,
    gateway_server,
    latencies,
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
    clients: int  # polling processes
    seconds: float  # polling time


@dataclass(frozen=True)
class HttpFigures:
    p50_ms: float
    p99_ms: float
    polls_per_s: float


def measure(server_factory: Callable[[], AbstractContextManager[Server]], execute: str,
            status: str | None, sizes: Sizes) -> tuple[HttpFigures, str]:
    """Accept latency and polling rate of one server; ``status=None`` polls the job the first Execute made."""
    with server_factory() as server:
        client = Client(server.port)
        first = client.get(execute)
        client.close()
        status = status or status_path(first)  # fails loudly unless the gateway accepted the job
        times = latencies(server.port, execute, sizes.requests, sizes.warmup)
        rate = throughput(server.port, status, sizes.clients, sizes.seconds)
    return HttpFigures(percentile(times, 50) * 1000, percentile(times, 99) * 1000, rate), status


def rows_for(gateway: HttpFigures, bare: HttpFigures, sizes: Sizes) -> list[Row]:
    accept = f"Async Execute accept ({PROCESS}, KVP GET, {sizes.requests:,} sequential)"
    rows = [Row(accept, f"latency {name}", f"{value:.2f} ms", f"bare WSGI: {base:.2f} ms", f"{value / base:.1f}x")
            for name, value, base in (("p50", gateway.p50_ms, bare.p50_ms), ("p99", gateway.p99_ms, bare.p99_ms))]
    rows.append(Row(f"Status document polling ({sizes.clients} client processes, {sizes.seconds:g} s)",
                    "requests per second", f"{gateway.polls_per_s:,.0f}/s", f"bare WSGI: {bare.polls_per_s:,.0f}/s",
                    f"{gateway.polls_per_s / bare.polls_per_s:.2f}x"))
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    sizes = Sizes(50, 5, 2, 1.0) if args.quick else Sizes(1000, 20, 4, 5.0)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        workdir = Path(tmp)
        data = workdir / "sample-data"
        scene = sample_scenes(data)[0]
        execute = execute_path(PROCESS, f"scenes=@xlink:href={scene.as_uri()}")
        gateway, status = measure(lambda: gateway_server(workdir, data), execute, None, sizes)
        bare, _ = measure(lambda: bare_server(workdir), execute, status, sizes)
    report(rows_for(gateway, bare, sizes), args.json)


if __name__ == "__main__":
    main()
