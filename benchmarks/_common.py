"""Helpers shared by the benchmark scripts: result rows, /proc readings, servers in subprocesses, HTTP load.

Every benchmark compares the gateway with a baseline measured in the same run
on the same machine, so the helpers here make both sides go through the same
code: one way to start a server (waitress, same thread count, loopback, free
port), one HTTP client, one way to read a process's memory.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PROCESSORS_DIR = BENCH_DIR / "processors"
PYTHON = sys.executable
HOST = "127.0.0.1"
# `wps-gateway serve` defaults to 8 waitress threads; the bare app gets the same.
SERVER_THREADS = 8
SERVER_START_TIMEOUT = 60.0


# ------------------------------------------------------------------ results


@dataclass
class Row:
    """One line of the results table: a figure, what it is compared with, and the verdict."""

    benchmark: str
    measure: str
    value: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: bool | None = None

    def cells(self) -> list[str]:
        verdict = "-" if self.met is None else ("yes" if self.met else "**no**")
        return [self.benchmark, self.measure, self.value, self.baseline, self.ratio, self.target, verdict]


TABLE_HEADER = ["Benchmark", "Measure", "Gateway", "Baseline", "Ratio", "Target", "Met"]


def markdown_table(rows: Sequence[Row]) -> str:
    """Rows as a GitHub markdown table (what the README's results table is pasted from)."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def machine_description() -> str:
    """What the figures depend on most: cores, interpreter, kernel."""
    return (f"{os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], object] | None = None
               ) -> argparse.Namespace:
    """The options every benchmark script takes (run_all passes them through), and ``extra``'s own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", type=Path, help="also write the result rows to this file (used by run_all)")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def report(rows: Sequence[Row], json_path: Path | None) -> None:
    """Print the rows as a markdown table and optionally save them for run_all."""
    print(markdown_table(rows), flush=True)
    if json_path is not None:
        json_path.write_text(json.dumps([asdict(row) for row in rows], indent=2))


def load_rows(json_path: Path) -> list[Row]:
    return [Row(**entry) for entry in json.loads(json_path.read_text())]


# --------------------------------------------------------------- statistics


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (numpy's default), without needing numpy here."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# ------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcSnapshot:
    """Memory and concurrency of one process, read from /proc (psutil is not a dependency)."""

    rss_kb: int
    threads: int
    children: int


def proc_status(pid: int) -> dict[str, str]:
    """The key: value lines of /proc/<pid>/status."""
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def child_pids(pid: int) -> list[int]:
    """Live (non-zombie) direct children of ``pid``, found by scanning /proc/*/stat."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                after_name = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        state, ppid = after_name[0], int(after_name[1])
        if ppid == pid and state not in (b"Z", b"X"):
            children.append(int(entry))
    return children


def snapshot(pid: int) -> ProcSnapshot:
    status = proc_status(pid)
    return ProcSnapshot(rss_kb=int(status["VmRSS"].split()[0]), threads=int(status["Threads"]),
                        children=len(child_pids(pid)))


# ------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A server running in its own process (so its /proc figures are its own)."""

    process: subprocess.Popen
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def _wait_until_listening(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{_tail(server.log)}")
        try:
            with socket.create_connection((HOST, server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server not listening on {HOST}:{server.port} after {timeout:g} s:\n{_tail(server.log)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def run_server(argv: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start ``argv`` (a server that listens on ``port``), wait until it accepts connections, stop it after."""
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT)
    server = Server(process, port, log)
    try:
        _wait_until_listening(server, SERVER_START_TIMEOUT)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def gateway_environ(data_dir: Path, port: int, input_dir: Path, **settings: str) -> dict[str, str]:
    """Environment for `wps-gateway serve` on a private store, with the dispatcher NOT embedded.

    With ``dispatcher = external`` and no dispatcher running, accepted jobs just
    queue: the HTTP benchmarks measure the front end alone.
    """
    env = dict(os.environ)
    env.update({
        "GATEWAY_DATA_DIR": str(data_dir),
        "GATEWAY_DATABASE_URL": "",
        "GATEWAY_DISPATCHER": "external",
        "GATEWAY_PROCESSORS_PATHS": str(PROCESSORS_DIR),
        "GATEWAY_ALLOWED_INPUT_PATHS": str(input_dir),
        "SERVER_URL": f"http://{HOST}:{port}/wps",
        # The benchmark is one client with more queued jobs than a client may have; the checks still run.
        "GATEWAY_CLIENT_MAX_JOBS": "1000000",
        "GATEWAY_CLIENT_MAX_TASKS": "1000000",
        **settings,
    })
    env.pop("PYWPS_CFG", None)  # the repository's pywps.cfg, as `make run` uses
    return env


@contextmanager
def gateway_server(workdir: Path, input_dir: Path, **settings: str) -> Iterator[Server]:
    """The gateway as `wps-gateway serve` runs it (same CLI code path), external dispatcher; ``settings``
    (environment variables) override the benchmark's."""
    port = free_port()
    argv = [PYTHON, "-m", "wps_gateway.cli", "serve", "--host", HOST, "--port", str(port),
            "--threads", str(SERVER_THREADS)]
    env = gateway_environ(workdir / "var", port, input_dir, **settings)
    with run_server(argv, port, workdir / "gateway.log", env) as server:
        yield server


@contextmanager
def bare_server(workdir: Path) -> Iterator[Server]:
    """The baseline: a trivial WSGI app served by waitress exactly like the gateway."""
    port = free_port()
    argv = [PYTHON, str(BENCH_DIR / "_bare_app.py"), "--host", HOST, "--port", str(port),
            "--threads", str(SERVER_THREADS)]
    with run_server(argv, port, workdir / "bare.log") as server:
        yield server


# --------------------------------------------------------------- PostgreSQL


@contextmanager
def postgres_server() -> Iterator[Any]:
    """A PostgreSQL server of our own on 127.0.0.1 (the tests' recipe, ``tests/servers/postgres.py``), in a
    folder of its own (the server's user must reach it: not inside our 0700 tmp); ``create_database()`` and
    ``url(name)`` give stores on it."""
    import pwd
    import shutil
    import tempfile

    sys.path.insert(0, str(REPO))
    from tests.servers.postgres import PostgresServer, _bin_dir

    bin_dir = _bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not found (Debian package postgresql)")
    run_as = "postgres" if os.geteuid() == 0 else None
    if run_as:
        pwd.getpwnam(run_as)
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    server = PostgresServer(bin_dir, root, free_port(), run_as)
    try:
        server.start()
        yield server
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres() -> Iterator[str]:
    """The URL of a new database on a PostgreSQL server of our own (``postgres_server``)."""
    with postgres_server() as server:
        yield server.url(server.create_database())


# ------------------------------------------------------------- sample data


def sample_scenes(root: Path) -> list[Path]:
    """Generate the synthetic Sentinel-2 scenes (under a second) and return their paths."""
    from processes.sampledata import generate

    generate(root)
    return sorted((root / "s2").glob("*.tif"))


# --------------------------------------------------------------------- HTTP


def execute_path(identifier: str, data_inputs: str) -> str:
    """A WPS 1.0.0 KVP async Execute (stored response, status updates): answered at once."""
    query = {"service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": identifier,
             "DataInputs": data_inputs, "storeExecuteResponse": "true", "status": "true"}
    return "/wps?" + urlencode(query)


STATUS_LOCATION = re.compile(rb'statusLocation="([^"]+)"')


def status_path(execute_response: bytes) -> str:
    """The path of the status document an accepted Execute points to."""
    match = STATUS_LOCATION.search(execute_response)
    if match is None or b"ProcessAccepted" not in execute_response:
        raise RuntimeError(f"Execute was not accepted: {execute_response[:500]!r}")
    return urlsplit(match.group(1).decode()).path


class Client:
    """One keep-alive HTTP/1.1 connection, as a polling WPS client holds it."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def request(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET ``path``; the HTTP status and the body, whatever the status."""
        self.conn.request("GET", path, headers=headers or {})
        response = self.conn.getresponse()
        return response.status, response.read()

    def get(self, path: str, headers: dict[str, str] | None = None) -> bytes:
        """GET ``path``; the body, or RuntimeError for anything but 200 (or a 304 to a conditional GET)."""
        status, body = self.request(path, headers)
        if status != 200 and not (status == 304 and headers and "If-None-Match" in headers):
            raise RuntimeError(f"GET {path[:120]} -> {status}: {body[:300]!r}")
        return body

    def timed_get(self, path: str) -> tuple[float, bytes]:
        """Seconds from sending the request to having read the whole answer, and the body."""
        start = time.perf_counter()
        body = self.get(path)
        return time.perf_counter() - start, body

    def close(self) -> None:
        self.conn.close()


def latencies(port: int, path: str, count: int, warmup: int) -> list[float]:
    """``count`` sequential timed GETs on one connection, after ``warmup`` untimed ones."""
    client = Client(port)
    try:
        for _ in range(warmup):
            client.get(path)
        return [client.timed_get(path)[0] for _ in range(count)]
    finally:
        client.close()


def _poll_worker(port: int, path: str, start_at: float, duration: float, headers: dict[str, str] | None = None
                 ) -> int:
    """Load-process body: GET ``path`` (with ``headers``) back to back during [start_at, start_at + duration)."""
    client = Client(port)
    try:
        client.get(path, headers)  # connect and warm up before the clock starts
        while time.time() < start_at:
            time.sleep(0.001)
        done, end = 0, start_at + duration
        while time.time() < end:
            client.get(path, headers)
            done += 1
        return done
    finally:
        client.close()


def throughput(port: int, path: str, clients: int, duration: float, headers: dict[str, str] | None = None
               ) -> float:
    """Requests per second with ``clients`` load processes, each on its own keep-alive connection."""
    import multiprocessing

    start_at = time.time() + 1.0  # every worker is connected and waiting by then
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        counts = pool.starmap(_poll_worker, [(port, path, start_at, duration, headers)] * clients)
    return sum(counts) / duration
