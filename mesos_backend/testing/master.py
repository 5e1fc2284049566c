"""A Mesos master test double speaking the v1 scheduler HTTP API, with local agents.

Like ``mesos-local``, it runs on its own for anyone who wants to try a Mesos
framework without a cluster::

    python -m mesos_backend.testing.master --host 127.0.0.1 --port 5050 --agents 3

Tests build it in-process (``TestMaster``). The HTTP layer here checks what
a real master checks, in its order (authentication, leadership, method,
media type, body, call validation, then the framework and its stream), and
serves the event stream: SUBSCRIBED then HEARTBEAT at once, then events and
heartbeats; a closed connection is noticed at once.

Several masters over one cluster form an ensemble: one leads, the others
answer 307 to it (and serve ``/master/redirect``). With ``--zk`` they are
elected through ZooKeeper as real masters are (the lowest ``json.info_``
node leads), so stopping the leader moves the frameworks to the next one
while the agents keep their tasks.

Operators (and failure tests) act from outside over HTTP on any running
master: ``POST /testing/agents/<id>/stop|start|lose`` and
``POST /testing/masters/<port>/stop|start``, besides the real master's
``POST /master/teardown`` (``frameworkId=...``). The standalone process also
takes SIGUSR1: the leading master fails over (stops, then rejoins as a
standby).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import queue
import select
import signal
import socket
import ssl
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..base import Resources
from ..mesos.recordio import encode
from . import codec
from .cluster import CLOSE, CallError, Cluster, MasterFlags, MasterTimings, Stream, make_agents
from .resources import Bag, ResourceError
from .zk_publish import MasterElection, master_info

LOG = logging.getLogger(__name__)
API_PATHS = ("/api/v1/scheduler", "/master/api/v1/scheduler")
VERSION = "1.11.0"
# Calls whose body must be present (TEARDOWN, REVIVE and SUPPRESS need none).
BODY_REQUIRED = frozenset({"ACCEPT", "DECLINE", "ACCEPT_INVERSE_OFFERS", "DECLINE_INVERSE_OFFERS", "KILL",
                           "SHUTDOWN", "ACKNOWLEDGE", "ACKNOWLEDGE_OPERATION_STATUS", "RECONCILE",
                           "RECONCILE_OPERATIONS", "MESSAGE", "REQUEST", "UPDATE_FRAMEWORK"})
POLL_SECONDS = 0.05  # how often a stream looks at its connection and its queue


class MasterServer:
    """One master process: an HTTP endpoint onto a cluster it may share with other masters."""

    def __init__(self, ensemble: TestMaster, host: str = "127.0.0.1", port: int = 0, *,
                 credentials: dict[str, str] | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.ensemble = ensemble
        self.cluster = ensemble.cluster
        self.credentials = credentials  # principal -> secret; None: no authentication
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.host = host
        self.httpd = self._bind(port)
        self.port = self.httpd.server_address[1]
        self.master_id = f"master-{self.port}"
        self.leading = False
        self.leader_info: dict[str, Any] | None = None  # whom a standby redirects to
        self.running = False
        self.streams: set[Stream] = set()
        self.election: MasterElection | None = None
        self._thread: threading.Thread | None = None

    def _bind(self, port: int) -> ThreadingHTTPServer:
        httpd = ThreadingHTTPServer((self.host, port), _handler_for(self))
        httpd.daemon_threads = True
        if self.tls is not None:
            httpd.socket = self.tls.wrap_socket(httpd.socket, server_side=True)
        return httpd

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def master_info(self) -> dict[str, Any]:
        return master_info(socket.gethostbyname(self.host), self.port, self.host, self.master_id)

    def start(self) -> MasterServer:
        if self.httpd is None:  # restarted after a stop: the same port again
            self.httpd = self._bind(self.port)
        self.running = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"test-master-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """The master process dies: connections drop, the port closes, it leaves the election."""
        self.running = False
        self.leading = False
        if self.election is not None:
            self.election.stop()
            self.election = None
        for stream in list(self.streams):
            stream.close()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def lead(self) -> None:
        """Become the leader: frameworks must re-subscribe here; agents re-register."""
        if not self.leading:
            LOG.info("master %s is the leader", self.address)
            self.cluster.new_leader()
            self.leader_info = None
            self.leading = True

    def follow(self, leader: dict[str, Any] | None) -> None:
        """Be a standby redirecting to ``leader`` (None: no leader known, answer 503)."""
        if self.leading:
            self.leading = False
            for stream in list(self.streams):
                stream.close()
        self.leader_info = leader

    def on_election(self, leader: dict[str, Any] | None, is_me: bool) -> None:
        if is_me:
            self.lead()
        else:
            self.follow(leader)

    def leader_address(self) -> str | None:
        if self.leading:
            return self.address
        if self.leader_info is None:
            return None
        address = self.leader_info.get("address") or {}
        return f"{address.get('hostname') or self.leader_info.get('hostname')}:{address.get('port')}"


class TestMaster:
    """Masters over one cluster of agents (for tests and the command line).

    ``masters`` endpoints share the cluster; the first leads (or, with ``zk``,
    the one ZooKeeper elects), the others are standbys. ``standby=True`` is
    ``masters=2``.
    """

    __test__ = False

    def __init__(self, work_dir: Path, agents: int = 3, *, agent_resources: Resources | Bag | str | None = None,
                 agent_attributes: dict[str, str] | None = None, timings: MasterTimings | None = None,
                 credentials: dict[str, str] | None = None, standby: bool = False, masters: int = 1,
                 host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None, zk: str | None = None,
                 flags: MasterFlags | None = None) -> None:
        resources = _agent_bag(agent_resources)
        self.cluster = Cluster(make_agents(agents, work_dir, resources, agent_attributes), timings, flags=flags)
        self.zk = zk
        count = max(masters, 2 if standby else 1)
        self.masters = [MasterServer(self, host, port + index if port else 0, credentials=credentials, tls=tls)
                        for index in range(count)]

    @property
    def leader(self) -> MasterServer:
        """The leading master (the first running one if an election is under way)."""
        running = [m for m in self.masters if m.running]
        return next((m for m in running if m.leading), running[0] if running else self.masters[0])

    @property
    def standby(self) -> MasterServer | None:
        return next((m for m in self.masters if m.running and not m.leading), None)

    def start(self, timeout: float = 30.0) -> TestMaster:
        """Start the agents and every master; returns once one of them leads."""
        self.cluster.start()
        for master in self.masters:
            self.start_master(master)
        deadline = time.monotonic() + timeout
        while not any(m.leading for m in self.masters):
            if time.monotonic() > deadline:
                raise RuntimeError("no test master became the leader")
            time.sleep(0.05)
        return self

    def start_master(self, master: MasterServer) -> None:
        """Start (or restart) one master; it leads if nobody else does (static), or as ZooKeeper says."""
        master.start()
        if self.zk:
            master.election = MasterElection(self.zk, master.master_info(), master.on_election)
            master.election.start()
            return
        current = next((m for m in self.masters if m.leading and m is not master), None)
        if current is None:
            master.lead()
        else:
            master.follow(current.master_info())

    def stop_master(self, master: MasterServer) -> None:
        """Stop one master; without ZooKeeper the next running one takes over at once."""
        was_leading = master.leading
        master.stop()
        if self.zk or not was_leading:
            return
        successor = next((m for m in self.masters if m.running), None)
        if successor is not None:
            successor.lead()
            for other in self.masters:
                if other.running and other is not successor:
                    other.follow(successor.master_info())

    def fail_over(self, timeout: float = 30.0) -> MasterServer:
        """The leader dies and another master takes over; returns the new leader."""
        old = self.leader
        if len([m for m in self.masters if m.running]) < 2:
            raise RuntimeError("no standby master to fail over to")
        self.stop_master(old)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = next((m for m in self.masters if m.running and m.leading), None)
            if leader is not None:
                return leader
            time.sleep(0.05)
        raise RuntimeError("no master took over")

    def master_on(self, port: int) -> MasterServer:
        try:
            return next(m for m in self.masters if m.port == port)
        except StopIteration:
            raise CallError(404, f"No master on port {port}") from None

    def stop(self) -> None:
        for master in self.masters:
            if master.running:
                master.stop()
        self.cluster.stop()


def _agent_bag(resources: Resources | Bag | str | None) -> Bag:
    if resources is None:
        return Bag.of(cpus=4, mem=8192, disk=20000)
    if isinstance(resources, str):
        return Bag.parse(resources)
    if isinstance(resources, Resources):
        return Bag.of(resources.cpus, resources.mem, resources.disk, resources.gpus)
    return resources


def _handler_for(master: MasterServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_MasterHandler):
        server_master = master
    return Handler


class _Answered(Exception):  # noqa: N818 (control flow, not an error)
    """The answer has been written already."""


class _MasterHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Mesos"
    server_master: MasterServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class names it so)
        LOG.debug("%s %s", self.address_string(), format % args)

    # -- routing ------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._route("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")

    def _route(self, method: str) -> None:
        """Every request gets an answer: a bug in the double is a 500 that the tests see, not a hang."""
        master = self.server_master
        try:
            body = self._body()
            path = self.path.split("?", 1)[0]
            if path in API_PATHS:
                self._scheduler_call(method, body)
            elif path in ("/health", "/master/health") and method == "GET":
                self._plain(HTTPStatus.OK, "")
            elif path in ("/state", "/master/state", "/state.json", "/master/state.json") and method == "GET":
                state = master.cluster.snapshot()
                state["leader_info"] = self._leader_info()
                self._json(HTTPStatus.OK, state)
            elif path == "/master/redirect" and method == "GET":
                self._redirect_to_leader("")
            elif path in ("/teardown", "/master/teardown") and method == "POST":
                self._teardown(body)
            elif path.startswith("/testing/") and method == "POST":
                self._operator(path.split("/")[2:])
            else:
                self._plain(HTTPStatus.NOT_FOUND, "")
        except CallError as exc:
            self._plain(exc.status, str(exc))
        except _Answered:
            pass
        except (OSError, ValueError) as exc:  # the client went away mid-request, or sent garbage framing
            LOG.debug("request from %s ended: %s", self.address_string(), exc)
            self.close_connection = True
        except Exception as exc:
            master.cluster.internal_error(exc)
            self._plain(HTTPStatus.INTERNAL_SERVER_ERROR, f"Internal error: {type(exc).__name__}")

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    # -- the scheduler API, in the master's order of checks -------------------

    def _scheduler_call(self, method: str, body: bytes) -> None:
        master = self.server_master
        principal = self._authenticate()
        if not master.leading:
            self._redirect_to_leader(self.path)
            return
        if method != "POST":
            raise CallError(405, f"Expecting 'POST', received '{method}'")
        content_type = self.headers.get("Content-Type")
        if content_type is None:
            raise CallError(400, "Expecting 'Content-Type' to be present")
        if content_type != "application/json":
            raise CallError(415, "Expecting 'Content-Type' of application/json or application/x-protobuf"
                            + ("; this test master speaks JSON only" if content_type == "application/x-protobuf"
                               else ""))
        try:
            call, notes = codec.read_call(body)
        except codec.CodecError as exc:
            raise CallError(400, str(exc)) from None
        kind = _validate(call)
        framework_id = (call.get("framework_id") or {}).get("value", "")
        if notes:
            name = ((call.get("subscribe") or {}).get("framework_info") or {}).get("name") or \
                (master.cluster.frameworks[framework_id].info.get("name", "")
                 if framework_id in master.cluster.frameworks else framework_id)
            master.cluster.note(name, notes)
        if kind == "SUBSCRIBE":
            accept = self.headers.get("Accept") or "*/*"
            if not any(kind in accept for kind in ("application/json", "*/*", "application/*")):
                raise CallError(406, "Expecting 'Accept' to allow 'application/json'")
            if "Mesos-Stream-Id" in self.headers:
                raise CallError(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
            stream, first = master.cluster.subscribe(call, principal)
            self._stream(stream, first)
            return
        status, text = master.cluster.call(framework_id, call, self.headers.get("Mesos-Stream-Id"), principal)
        self._plain(status, text)

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
            self.send_header("WWW-Authenticate", 'Basic realm="mesos-master-scheduler"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            raise _Answered
        return principal

    def _redirect_to_leader(self, path: str) -> None:
        leader = self.server_master.leader_address()
        if leader is None:
            raise CallError(503, "No leader elected")
        self.send_response(HTTPStatus.TEMPORARY_REDIRECT)
        self.send_header("Location", f"//{leader}{path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _leader_info(self) -> dict[str, Any] | None:
        master = self.server_master
        return master.master_info() if master.leading else master.leader_info

    # -- the event stream ---------------------------------------------------

    def _stream(self, stream: Stream, first: list[dict[str, Any]]) -> None:
        master = self.server_master
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Mesos-Stream-Id", stream.stream_id)
        self.end_headers()
        self.close_connection = True
        master.streams.add(stream)
        try:
            for event in first:
                if event["type"] == "SUBSCRIBED":
                    event["subscribed"]["master_info"] = master.master_info()
                self._send_event(stream, event)
                if event["type"] == "ERROR":
                    self.wfile.write(b"0\r\n\r\n")
                    return
            if self._pump(stream):
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the framework went away
        finally:
            master.streams.discard(stream)
            master.cluster.disconnected(stream)

    def _pump(self, stream: Stream) -> bool:
        """Events and heartbeats until the stream ends (True) or the framework's connection closes (False)."""
        interval = self.server_master.cluster.timings.heartbeat_interval
        next_beat = time.monotonic() + interval
        while True:
            if self._peer_closed():
                return False
            try:
                event = stream.events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if time.monotonic() >= next_beat:
                    self._send_event(stream, {"type": "HEARTBEAT"})
                    next_beat = time.monotonic() + interval
                continue
            if event is CLOSE:
                return True
            self._send_event(stream, event)

    def _peer_closed(self) -> bool:
        """The framework closed its end (a framework sends nothing on the stream's connection)."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            if isinstance(sock, ssl.SSLSocket):
                return sock.recv(1) == b""
            return sock.recv(1, socket.MSG_PEEK) == b""
        except ssl.SSLWantReadError:
            return False
        except (OSError, ValueError):
            return True

    def _send_event(self, stream: Stream, event: dict[str, Any]) -> None:
        if stream.silenced:
            return
        self.server_master.cluster.check_event(event)
        record = encode(json.dumps(event, separators=(",", ":")).encode())
        self.wfile.write(f"{len(record):x}\r\n".encode() + record + b"\r\n")
        self.wfile.flush()

    # -- operators --------------------------------------------------------------

    def _teardown(self, body: bytes) -> None:
        """The operator endpoint ``/master/teardown`` (form body ``frameworkId=...``): remove a framework."""
        self._authenticate()
        if not self.server_master.leading:
            self._redirect_to_leader(self.path)
            return
        framework_id = urllib.parse.parse_qs(body.decode(errors="replace")).get("frameworkId", [""])[0]
        self.server_master.cluster.teardown(framework_id)
        self._plain(HTTPStatus.OK, "")

    def _operator(self, parts: list[str]) -> None:
        """``agents/<id>/stop|start|lose`` and ``masters/<port>/stop|start``."""
        master = self.server_master
        ensemble, cluster = master.ensemble, master.cluster
        if len(parts) != 3:
            raise CallError(404, "")
        what, name, action = parts
        if what == "agents" and action in ("stop", "start", "lose"):
            if action == "stop":
                cluster.stop_agent(name)
            elif action == "lose":
                cluster.lose_agent(name)
            else:
                name = cluster.start_agent(name)
            self._json(HTTPStatus.OK, {"agent_id": name, "state": cluster.agent(name).state})
        elif what == "masters" and action in ("stop", "start") and name.isdigit():
            target = ensemble.master_on(int(name))
            if action == "stop" and target.running:
                self._json(HTTPStatus.OK, {"master": target.address, "running": False})
                threading.Thread(target=ensemble.stop_master, args=(target,), daemon=True).start()
                return
            if action == "start" and not target.running:
                ensemble.start_master(target)
            self._json(HTTPStatus.OK, {"master": target.address, "running": target.running})
        else:
            raise CallError(404, "")

    # -- plain answers --------------------------------------------------------

    def _plain(self, status: int, text: str) -> None:
        self._reply(status, text.encode(), "text/plain; charset=utf-8")

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._reply(status, json.dumps(body).encode(), "application/json")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _validate(call: dict[str, Any]) -> str:
    """The master's call validation (step 7): the call's type, or CallError 400 (501 for UNKNOWN)."""
    kind = call.get("type")
    prefix = "Failed to validate scheduler::Call: "
    if not kind:
        raise CallError(400, prefix + "Expecting 'type' to be present")
    if kind == "UNKNOWN":
        raise CallError(501, "Received an unexpected 'UNKNOWN' call")
    if kind == "SUBSCRIBE":
        if "subscribe" not in call:
            raise CallError(400, prefix + "Expecting 'subscribe' to be present")
        return kind
    if not (call.get("framework_id") or {}).get("value"):
        raise CallError(400, prefix + "Expecting 'framework_id' to be present")
    body_key = kind.lower()
    if kind in BODY_REQUIRED and body_key not in call:
        raise CallError(400, prefix + f"Expecting '{body_key}' to be present")
    if kind in ("ACKNOWLEDGE", "ACKNOWLEDGE_OPERATION_STATUS"):
        uuid = call[body_key].get("uuid", "")
        if len(base64.b64decode(uuid)) != 16:
            raise CallError(400, prefix + f"Invalid UUID: expected 16 bytes, got {len(base64.b64decode(uuid))}")
    return kind


def server_tls(cert: Path, key: Path | None = None) -> ssl.SSLContext:
    """A server-side TLS context for a master answering on https."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


# -- command line -------------------------------------------------------------

def _key_values(text: str) -> dict[str, str]:
    """``rack:r{i};storage:local`` (Mesos's --attributes syntax) as a dict."""
    pairs = [item.split(":", 1) for item in text.split(";") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected name:value;name:value, got {text!r}")
    return {name.strip(): value.strip() for name, value in pairs}


def _resources(text: str) -> Bag:
    try:
        return Bag.parse(text)
    except ResourceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _weights(text: str) -> dict[str, float]:
    try:
        return {role.strip(): float(weight) for role, _, weight in
                (item.partition("=") for item in text.split(",") if item.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected role=weight,role=weight, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesos_backend.testing.master",
                                     description="A Mesos master test double with local agents (v1 scheduler API).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050, help="of the first master; the others take the next ones")
    parser.add_argument("--masters", type=int, default=1, help="masters in this ensemble (one leads)")
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--agent-resources", type=_resources, default=Bag.parse("cpus:4;mem:8192;disk:20000"),
                        help="per agent, Mesos syntax with static reservations: 'cpus:4;mem:8192;cpus(wps):2'")
    parser.add_argument("--agent-attributes", type=_key_values, default={},
                        help="per agent, 'rack:r{i};storage:local' ({i} is the agent's index)")
    parser.add_argument("--work-dir", type=Path, default=Path("var/test-master"),
                        help="agents' sandboxes and fetcher cache")
    parser.add_argument("--heartbeat-interval", type=float, default=15.0)
    parser.add_argument("--allocation-interval", type=float, default=1.0)
    parser.add_argument("--agent-ping-timeout", type=float, default=75.0,
                        help="seconds before a disconnected agent is marked unreachable")
    parser.add_argument("--roles", default=None, help="the only roles frameworks may use: 'wps,eo'")
    parser.add_argument("--weights", type=_weights, default={}, help="role weights: 'wps=3,eo=1'")
    parser.add_argument("--credentials", type=_key_values, default=None,
                        help="require HTTP basic authentication: 'principal:secret;...'")
    parser.add_argument("--zk", default=None, help="elect the leader in ZooKeeper: zk://host:port/mesos")
    parser.add_argument("--tls-cert", type=Path, default=None, help="serve https with this PEM certificate")
    parser.add_argument("--tls-key", type=Path, default=None, help="and this PEM private key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    timings = MasterTimings(heartbeat_interval=args.heartbeat_interval, allocation_interval=args.allocation_interval,
                            agent_ping_timeout=args.agent_ping_timeout)
    flags = MasterFlags(roles=frozenset(r.strip() for r in args.roles.split(",") if r.strip()) if args.roles
                        else None, weights=args.weights)
    tls = server_tls(args.tls_cert, args.tls_key) if args.tls_cert else None
    ensemble = TestMaster(args.work_dir.resolve(), args.agents, agent_resources=args.agent_resources,
                          agent_attributes=args.agent_attributes, timings=timings, credentials=args.credentials,
                          masters=args.masters, host=args.host, port=args.port, tls=tls, zk=args.zk,
                          flags=flags).start()
    LOG.info("test masters on %s with %d agents (%s each)", ", ".join(m.url for m in ensemble.masters), args.agents,
             args.agent_resources)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())

    def fail_over(*_: object) -> None:
        def run() -> None:
            old = ensemble.leader
            ensemble.stop_master(old)
            ensemble.start_master(old)
        threading.Thread(target=run, daemon=True).start()

    signal.signal(signal.SIGUSR1, fail_over)
    done.wait()
    ensemble.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
