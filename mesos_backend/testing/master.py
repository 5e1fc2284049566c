"""A Mesos master test double speaking the v1 scheduler HTTP API, with local agents.

Like ``mesos-local``, it runs on its own for anyone who wants to try a Mesos
framework without a cluster::

    python -m mesos_backend.testing.master --host 127.0.0.1 --port 5050 --agents 3

Tests build it in-process (``TestMaster``) to lose agents, drop connections,
rescind offers or fail over to a standby master. The HTTP layer here checks
what a real master checks before a call reaches the cluster: method, path,
media types, credentials, the ``Mesos-Stream-Id`` header, the body against
the Mesos protos, and leadership (a standby answers 307 to the leader).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import queue
import signal
import socket
import ssl
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..base import Resources
from ..mesos.recordio import encode
from . import proto
from .cluster import CLOSE, CallError, Cluster, MasterTimings, Stream, make_agents

LOG = logging.getLogger(__name__)
API_PATHS = ("/api/v1/scheduler", "/master/api/v1/scheduler")
VERSION = "1.11.0"


class MasterServer:
    """One master process: an HTTP endpoint onto a (possibly shared) cluster."""

    def __init__(self, cluster: Cluster, host: str = "127.0.0.1", port: int = 0, *,
                 credentials: dict[str, str] | None = None, leader: MasterServer | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.cluster = cluster
        self.credentials = credentials  # principal -> secret; None: no authentication
        self.leading = leader is None
        self.leader = leader  # the leader a standby redirects to
        self.scheme = "https" if tls else "http"
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.host, self.port = self.httpd.server_address[:2]
        self.master_id = f"master-{self.port}"
        self.streams: set[Stream] = set()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def master_info(self) -> dict[str, Any]:
        ip = socket.inet_aton(socket.gethostbyname(self.host))
        return {"id": self.master_id, "ip": int.from_bytes(ip, "little"), "port": self.port,
                "pid": f"master@{self.address}", "hostname": self.host, "version": VERSION,
                "address": {"hostname": self.host, "ip": self.host, "port": self.port}}

    def start(self) -> MasterServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                         name=f"test-master-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """The master process dies: connections drop, the port closes."""
        self.leading = False
        for stream in list(self.streams):
            stream.close()
        self.httpd.shutdown()
        self.httpd.server_close()

    def take_over(self) -> None:
        """Become the leader (the old one died): frameworks must re-subscribe here."""
        with self.cluster.lock:
            self.cluster.drop_connections()
            self.cluster.offers.clear()
        self.leader = None
        self.leading = True


class TestMaster:
    """A leading master, optionally a standby, and the cluster behind both (for tests)."""

    __test__ = False

    def __init__(self, work_dir: Path, agents: int = 3, *, agent_resources: Resources | None = None,
                 agent_attributes: dict[str, str] | None = None, timings: MasterTimings | None = None,
                 credentials: dict[str, str] | None = None, standby: bool = False, host: str = "127.0.0.1",
                 port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        resources = agent_resources or Resources(cpus=4, mem=8192, disk=20000)
        self.cluster = Cluster(make_agents(agents, work_dir, resources, agent_attributes), timings)
        self.leader = MasterServer(self.cluster, host, port, credentials=credentials, tls=tls)
        self.standby = (MasterServer(self.cluster, host, 0, credentials=credentials, leader=self.leader, tls=tls)
                        if standby else None)

    @property
    def masters(self) -> list[MasterServer]:
        return [m for m in (self.leader, self.standby) if m is not None]

    def start(self) -> TestMaster:
        self.cluster.start()
        for master in self.masters:
            master.start()
        return self

    def fail_over(self) -> MasterServer:
        """The leader dies and the standby takes over; returns the new leader."""
        if self.standby is None:
            raise RuntimeError("no standby master to fail over to")
        old, new = self.leader, self.standby
        old.stop()
        new.take_over()
        self.leader, self.standby = new, None
        return new

    def stop(self) -> None:
        for master in self.masters:
            master.stop()
        self.cluster.stop()


def _handler_for(master: MasterServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_SchedulerApiHandler):
        server_master = master
    return Handler


class _SchedulerApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Mesos"
    server_master: MasterServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class names it so)
        LOG.debug("%s %s", self.address_string(), format % args)

    # -- routing ------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path in ("/health", "/master/health"):
            self._plain(HTTPStatus.OK, "")
        elif self.path in ("/state", "/master/state", "/state.json", "/master/state.json"):
            body = self.server_master.cluster.snapshot()
            body["leader_info"] = (self.server_master.leader or self.server_master).master_info()
            self._reply(HTTPStatus.OK, json.dumps(body).encode(), "application/json")
        elif self.path in API_PATHS:
            self._plain(HTTPStatus.METHOD_NOT_ALLOWED, "Expecting 'POST', received 'GET'")
        else:
            self._plain(HTTPStatus.NOT_FOUND, "")

    def do_POST(self) -> None:  # noqa: N802
        if self.path not in API_PATHS:
            self._plain(HTTPStatus.NOT_FOUND, "")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            self._scheduler_call(body)
        except CallError as exc:
            self._plain(exc.status, str(exc))
        except _Answered:
            pass

    def _scheduler_call(self, body: bytes) -> None:
        master = self.server_master
        if not master.leading:
            if master.leader is None:
                raise CallError(503, "No leader elected")
            self.send_response(HTTPStatus.TEMPORARY_REDIRECT)
            self.send_header("Location", f"//{master.leader.address}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        principal = self._authenticate()
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type != "application/json":
            raise CallError(415, f"Expecting 'Content-Type' of application/json or application/x-protobuf; "
                                 f"this master speaks JSON only, received '{content_type}'")
        accept = self.headers.get("Accept") or "*/*"
        if not any(kind in accept for kind in ("application/json", "*/*", "application/*")):
            raise CallError(406, "Expecting 'Accept' to allow application/json")
        call = _parse_call(body)
        if call.get("type") == "SUBSCRIBE":
            if "Mesos-Stream-Id" in self.headers:
                raise CallError(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
            stream, first = master.cluster.subscribe(call, principal)
            self._stream(stream, first)
            return
        stream_id = self.headers.get("Mesos-Stream-Id")
        if not stream_id:
            raise CallError(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        framework_id = (call.get("framework_id") or {}).get("value")
        if not framework_id:
            raise CallError(400, "Expecting 'framework_id' to be present")
        current = master.cluster.stream_of(framework_id)
        if current is None:
            raise CallError(403, f"Framework '{framework_id}' is not subscribed")
        if current.stream_id != stream_id:
            raise CallError(400, f"The stream ID '{stream_id}' included in this request didn't match the stream "
                                 f"ID currently associated with framework ID {framework_id}")
        master.cluster.call(framework_id, call)
        self._plain(HTTPStatus.ACCEPTED, "")

    def _authenticate(self) -> str | None:
        credentials = self.server_master.credentials
        if credentials is None:
            return None
        header = self.headers.get("Authorization") or ""
        principal = secret = None
        if header.startswith("Basic "):
            try:
                principal, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                principal = None
        if principal is None or credentials.get(principal) != secret:
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", 'Basic realm="mesos"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            raise _Answered
        return principal

    # -- the event stream ---------------------------------------------------

    def _stream(self, stream: Stream, first: list[dict[str, Any]]) -> None:
        master = self.server_master
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Mesos-Stream-Id", stream.stream_id)
        self.end_headers()
        master.streams.add(stream)
        try:
            for event in first:
                if event["type"] == "SUBSCRIBED":
                    event["subscribed"]["master_info"] = master.master_info()
                self._send_event(stream, event)
                if event["type"] == "ERROR":
                    return
            self._pump(stream)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the framework went away
        finally:
            master.streams.discard(stream)
            master.cluster.disconnected(stream)
            self.close_connection = True

    def _pump(self, stream: Stream) -> None:
        interval = self.server_master.cluster.timings.heartbeat_interval
        next_beat = time.monotonic() + interval
        while True:
            try:
                event = stream.events.get(timeout=max(0.0, min(next_beat - time.monotonic(), 0.5)))
            except queue.Empty:
                if time.monotonic() >= next_beat:
                    self._send_event(stream, {"type": "HEARTBEAT"})
                    next_beat = time.monotonic() + interval
                continue
            if event is CLOSE:
                return
            self._send_event(stream, event)

    def _send_event(self, stream: Stream, event: dict[str, Any]) -> None:
        if stream.silenced:
            return
        self.server_master.cluster.check_event(event)
        record = encode(json.dumps(event).encode())
        self.wfile.write(f"{len(record):x}\r\n".encode() + record + b"\r\n")
        self.wfile.flush()

    # -- plain answers --------------------------------------------------------

    def _plain(self, status: int, text: str) -> None:
        self._reply(status, text.encode(), "text/plain; charset=utf-8")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Answered(Exception):  # noqa: N818 (control flow, not an error)
    """The answer has been written already (401)."""


def _parse_call(body: bytes) -> dict[str, Any]:
    try:
        call = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CallError(400, f"Failed to parse body into Call: {exc}") from None
    if not isinstance(call, dict) or "type" not in call:
        raise CallError(400, "Failed to validate scheduler::Call: Expecting 'type' to be present")
    if proto.available():
        try:
            proto.validate_call(call)
        except proto.ProtocolError as exc:
            raise CallError(400, f"Failed to convert JSON into Call protobuf: {exc}") from None
    return call


def server_tls(cert: Path, key: Path | None = None) -> ssl.SSLContext:
    """A server-side TLS context for a master answering on https."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


# -- command line -------------------------------------------------------------

def _key_values(text: str) -> dict[str, str]:
    """``cpus:4;mem:8192`` (Mesos's --resources and --attributes syntax) as a dict."""
    pairs = [item.split(":", 1) for item in text.split(";") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected name:value;name:value, got {text!r}")
    return {name.strip(): value.strip() for name, value in pairs}


def _resources(text: str) -> Resources:
    values = _key_values(text)
    try:
        return Resources(cpus=float(values.get("cpus", 4)), mem=float(values.get("mem", 8192)),
                         disk=float(values.get("disk", 20000)), gpus=int(values.get("gpus", 0)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesos_backend.testing.master",
                                     description="A Mesos master test double with local agents (v1 scheduler API).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--agent-resources", type=_resources, default=Resources(4, 8192, 20000),
                        help="per agent, Mesos syntax: 'cpus:4;mem:8192;disk:20000;gpus:0'")
    parser.add_argument("--agent-attributes", type=_key_values, default={},
                        help="per agent, 'rack:r{i};storage:local' ({i} is the agent's index)")
    parser.add_argument("--work-dir", type=Path, default=Path("var/test-master"),
                        help="agents' sandboxes and fetcher cache")
    parser.add_argument("--heartbeat-interval", type=float, default=15.0)
    parser.add_argument("--allocation-interval", type=float, default=1.0)
    parser.add_argument("--credentials", type=_key_values, default=None,
                        help="require HTTP basic authentication: 'principal:secret;...'")
    parser.add_argument("--zk", default=None, help="publish the master in ZooKeeper: zk://host:port/mesos")
    parser.add_argument("--tls-cert", type=Path, default=None, help="serve https with this PEM certificate")
    parser.add_argument("--tls-key", type=Path, default=None, help="and this PEM private key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    timings = MasterTimings(heartbeat_interval=args.heartbeat_interval, allocation_interval=args.allocation_interval)
    tls = server_tls(args.tls_cert, args.tls_key) if args.tls_cert else None
    master = TestMaster(args.work_dir.resolve(), args.agents, agent_resources=args.agent_resources,
                        agent_attributes=args.agent_attributes, timings=timings, credentials=args.credentials,
                        host=args.host, port=args.port, tls=tls).start()
    publisher = None
    if args.zk:
        from .zk_publish import MasterPublisher
        publisher = MasterPublisher(args.zk, master.leader.master_info())
        publisher.start()
    LOG.info("test master on %s with %d agents (%s each)", master.leader.url, args.agents, args.agent_resources)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    if publisher is not None:
        publisher.stop()
    master.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
