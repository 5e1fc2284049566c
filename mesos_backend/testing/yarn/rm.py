"""The test ResourceManager's REST API (``/ws/v1/cluster``), with a standby, simple auth and restarts.

What the HTTP layer checks before a call reaches the cluster is what the
real RM checks: writeable calls need a user (``?user.name=`` or the
``hadoop.auth`` cookie it hands out; otherwise 403 AuthorizationException),
bodies must be JSON with a JSON media type (415), a standby answers 307 to
the active RM with its text body (except ``/ws/v1/cluster/info``, which says
``haState: STANDBY``), and errors are ``RemoteException`` JSON. Responses
have the RM's shapes: ``{"apps": null}`` for none, ``{"app": {...}}``,
``{"state": ...}``, 202 with ``Location`` for a submission and a kill under
way. ``GET /cluster`` (the web UI, which clients probe) is served too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import threading
import time
from collections import Counter
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from .cluster import ALL_STATES, SchedulerConfig, Timings, YarnCluster
from .hdfs import HdfsCluster
from .web import HadoopHandler, Listener, RemoteError

VERSION = "3.3.6"
AUTH_SECRET = b"test-rm-signature-secret"
INFO_PATHS = ("/ws/v1/cluster", "/ws/v1/cluster/info")


class ResourceManagerServer:
    """One RM process: an HTTP endpoint onto the (shared) cluster; active or standby."""

    def __init__(self, cluster: YarnCluster, host: str = "127.0.0.1", port: int = 0, active: bool = True) -> None:
        self.cluster = cluster
        self.active = active
        self.peer: ResourceManagerServer | None = None  # the RM a standby redirects to
        self.requests: Counter[str] = Counter()  # "METHOD /route-kind" -> count
        self.listener = Listener(_handler_for(self), host, port, "test-rm")

    @property
    def address(self) -> str:
        return self.listener.address

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


class TestResourceManager:
    """An active RM, optionally a standby, the cluster behind both, and an HDFS with WebHDFS (for tests and the CLI)."""

    __test__ = False

    def __init__(self, work_dir: Path, nodes: int = 3, node_memory: int = 8192, node_vcores: int = 8, *,
                 standby: bool = False, scheduler: SchedulerConfig | None = None, timings: Timings | None = None,
                 host: str = "127.0.0.1", port: int = 0, webhdfs_port: int = 0,
                 node_labels: list[str] | None = None) -> None:
        self.hdfs = HdfsCluster(work_dir / "hdfs", host, webhdfs_port)
        self.cluster = YarnCluster(work_dir, nodes, node_memory, node_vcores, hdfs=self.hdfs, scheduler=scheduler,
                                   timings=timings, node_labels=node_labels)
        self.leader = ResourceManagerServer(self.cluster, host, port)
        self.standby = ResourceManagerServer(self.cluster, host, 0, active=False) if standby else None
        if self.standby is not None:
            self.standby.peer = self.leader

    @property
    def servers(self) -> list[ResourceManagerServer]:
        return [s for s in (self.leader, self.standby) if s is not None]

    @property
    def url(self) -> str:
        return self.leader.url

    def start(self) -> TestResourceManager:
        self.hdfs.start()
        for server in self.servers:
            server.listener.open()
        self.cluster.rm_address = self.leader.address
        self.cluster.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.listener.close()
        self.cluster.stop()
        self.hdfs.stop()

    def fail_over(self) -> ResourceManagerServer:
        """The active RM dies; the standby becomes active with the same state (work-preserving recovery)."""
        if self.standby is None:
            raise RuntimeError("no standby ResourceManager to fail over to")
        old, new = self.leader, self.standby
        old.active = False
        old.listener.close()
        new.active, new.peer = True, None
        self.leader, self.standby = new, None
        self.cluster.rm_address = new.address
        return new

    def restart(self, recover: bool = True, downtime: float = 0.5) -> None:
        """The active RM goes down and comes back on the same port, with its state (recovery) or without."""
        self.leader.listener.close()
        if not recover:
            self.cluster.forget_everything()
        time.sleep(downtime)
        self.leader.listener.open()

    def requests(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for server in self.servers:
            total.update(server.requests)
        return total


def _handler_for(server: ResourceManagerServer) -> type[HadoopHandler]:
    class Handler(_ResourceManagerHandler):
        rm = server
    return Handler


def _signed(user: str) -> str:
    expires = int(time.time() * 1000) + 36_000_000
    token = f"u={user}&p={user}&t=simple&e={expires}"
    signature = hmac.new(AUTH_SECRET, token.encode(), hashlib.sha256).hexdigest()
    return f"{token}&s={signature}"


def _verified(cookie: str) -> str | None:
    token, _, signature = cookie.strip('"').rpartition("&s=")
    if not hmac.compare_digest(hmac.new(AUTH_SECRET, token.encode(), hashlib.sha256).hexdigest(), signature):
        return None
    fields = dict(part.split("=", 1) for part in token.split("&") if "=" in part)
    expires = fields.get("e", "0")
    return fields.get("u") if expires.isdigit() and int(expires) > time.time() * 1000 else None


class _ResourceManagerHandler(HadoopHandler):
    rm: ResourceManagerServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.dispatch(lambda: self._serve("GET"))

    def do_POST(self) -> None:  # noqa: N802
        self.dispatch(lambda: self._serve("POST"))

    def do_PUT(self) -> None:  # noqa: N802
        self.dispatch(lambda: self._serve("PUT"))

    def do_DELETE(self) -> None:  # noqa: N802
        self.dispatch(lambda: self._serve("DELETE"))

    # -- routing ------------------------------------------------------------

    def _serve(self, method: str) -> None:
        route = self.route.rstrip("/") or "/"
        parts = route.split("/")
        self.rm.requests[f"{method} {re.sub(r'application_[0-9_]+', '{id}', route)}"] += 1
        body = self.body() if method in ("POST", "PUT") else b""
        if not self.rm.active and route not in INFO_PATHS:
            self._redirect_to_active()
            return
        user = self._user()
        cookie = {"Set-Cookie": f'hadoop.auth="{_signed(user)}"; Path=/; HttpOnly'} if self.query.get("user.name") \
            else {}
        if route in ("/cluster", "/cluster/cluster", "/"):
            html = f"<html><head><title>All Applications</title></head><body>ResourceManager {VERSION}</body></html>"
            self.raw(200, html.encode(), "text/html;charset=utf-8", cookie)
            return
        if not route.startswith("/ws/v1/cluster"):
            self.text(404, "")
            return
        if method in ("POST", "PUT", "DELETE") and user is None:
            raise RemoteError("AuthorizationException", "Unable to obtain user name, user not authenticated")
        status, document, headers = self._call(method, parts[4:], body, user)
        self.reply(status, document, {**cookie, **headers})

    def _call(self, method: str, parts: list[str], body: bytes, user: str | None
              ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        cluster = self.rm.cluster
        if method == "GET" and parts in ([], ["info"]):
            return 200, {"clusterInfo": self._info()}, {}
        if method == "GET" and parts == ["metrics"]:
            return 200, {"clusterMetrics": cluster.metrics()}, {}
        if method == "GET" and parts == ["nodes"]:
            wanted = {s.strip().upper() for s in self.query.get("states", "").split(",") if s.strip()}
            nodes = [n.report() for n in cluster.nodes if not wanted or n.state in wanted]
            return 200, {"nodes": {"node": nodes} if nodes else None}, {}
        if parts == ["apps", "new-application"]:
            self._allow(method, "POST")
            return 200, cluster.new_application(), {}
        if parts == ["apps"]:
            if method == "POST":
                cluster.submit(self._json(body), user)
                app_id = str(self._json(body).get("application-id"))
                return 202, None, {"Location": f"{self.rm.url}/ws/v1/cluster/apps/{app_id}"}
            self._allow(method, "GET")
            apps = [a.report() for a in self._filtered()]
            return 200, {"apps": {"app": apps} if apps else None}, {}
        if len(parts) >= 2 and parts[0] == "apps":
            app = cluster.app(parts[1])
            rest = parts[2:]
            if rest == []:
                self._allow(method, "GET")
                return 200, {"app": app.report()}, {}
            if rest == ["state"]:
                if method == "GET":
                    return 200, {"state": app.state}, {}
                self._allow(method, "PUT")
                target = str(self._json(body).get("state", "")).upper()
                if target != "KILLED":
                    raise RemoteError("BadRequestException", "Only 'KILLED' is allowed as a target state.")
                status, state = cluster.kill(app.app_id, user)
                headers = {"Location": f"{self.rm.url}/ws/v1/cluster/apps/{app.app_id}/state"} if status == 202 else {}
                return status, {"state": state}, headers
            if rest == ["appattempts"]:
                self._allow(method, "GET")
                return 200, {"appAttempts": {"appAttempt": [self._attempt(a) for a in app.attempts]}}, {}
            if len(rest) == 3 and rest[0] == "appattempts" and rest[2] == "containers":
                self._allow(method, "GET")
                attempt = next((a for a in app.attempts if rest[1] in (a.attempt_id, str(a.number))), None)
                if attempt is None:
                    raise RemoteError("NotFoundException", f"java.lang.Exception: appAttempt with id: {rest[1]} "
                                                           "not found")
                return 200, {"container": [self._container(c) for c in app.containers.values()
                                           if c.container_id.startswith(attempt.container_id(0)[:-6])]}, {}
        raise RemoteError("NotFoundException", f"java.lang.Exception: no resource {self.route}")

    def _allow(self, method: str, allowed: str) -> None:
        if method != allowed:
            raise RemoteError("WebApplicationException", "HTTP 405 Method Not Allowed", 405)

    def _json(self, body: bytes) -> dict[str, Any]:
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            raise RemoteError("WebApplicationException", f"HTTP 415 Unsupported Media Type ({media or 'none'}; "
                                                         "the test ResourceManager reads JSON bodies)", 415)
        try:
            document = json.loads(body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RemoteError("BadRequestException", f"cannot parse the request body: {exc}") from None
        if not isinstance(document, dict):
            raise RemoteError("BadRequestException", "the request body must be a JSON object")
        return document

    def _user(self) -> str | None:
        name = self.query.get("user.name")
        if name:
            return name
        cookies = SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie") or "")
        except Exception:  # noqa: BLE001 (a malformed cookie is no cookie)
            return None
        morsel = cookies.get("hadoop.auth")
        return _verified(morsel.value) if morsel is not None else None

    def _redirect_to_active(self) -> None:
        peer = self.rm.peer
        if peer is None or not peer.active:
            self.text(503, "No active ResourceManager")
            return
        location = f"{peer.url}{self.path}"
        self.text(307, f"This is standby RM. The redirect url is: {location}", {"Location": location})

    # -- documents ------------------------------------------------------------

    def _info(self) -> dict[str, Any]:
        cluster = self.rm.cluster
        return {"id": cluster.cluster_ts, "startedOn": cluster.started_on, "state": "STARTED",
                "haState": "ACTIVE" if self.rm.active else "STANDBY",
                "rmStateStoreName": "org.apache.hadoop.yarn.server.resourcemanager.recovery.ZKRMStateStore",
                "resourceManagerVersion": VERSION, "resourceManagerBuildVersion": f"{VERSION} from test-double",
                "resourceManagerVersionBuiltOn": "2023-06-18T08:22Z", "hadoopVersion": VERSION,
                "hadoopBuildVersion": f"{VERSION} from test-double", "hadoopVersionBuiltOn": "2023-06-18T08:22Z",
                "haZooKeeperConnectionState": "CONNECTED"}

    def _attempt(self, attempt: Any) -> dict[str, Any]:
        am = attempt.am_container
        node = am.node if am is not None else None
        return {"id": attempt.number, "startTime": attempt.start_time, "finishedTime": attempt.finished_time,
                "containerId": am.container_id if am else "", "nodeHttpAddress": node.http_address if node else "",
                "nodeId": node.node_id if node else "",
                "logsLink": f"http://{node.http_address}/node/containerlogs/{am.container_id}/{attempt.app.user}"
                if node else "", "blacklistedNodes": "", "nodesBlacklistedBySystem": "",
                "appAttemptId": attempt.attempt_id, "appAttemptState": attempt.state}

    def _container(self, container: Any) -> dict[str, Any]:
        """A live container as the RM lists an attempt's containers (the scheduler's view)."""
        node = container.node
        return {"containerId": container.container_id, "allocatedMB": container.memory,
                "allocatedVCores": container.vcores, "assignedNodeId": node.node_id if node else "",
                "priority": 0, "startedTime": 0, "finishedTime": 0, "elapsedTime": 0,
                "logUrl": f"http://{node.http_address}/node/containerlogs/{container.container_id}/{container.user}"
                if node else "", "containerExitStatus": 0, "containerState": "RUNNING",
                "nodeHttpAddress": f"http://{node.http_address}" if node else "", "nodeId": node.node_id if node
                else ""}

    def _filtered(self) -> list[Any]:
        query = self.query
        states = _csv(query.get("states") or query.get("state") or "", upper=True)
        bad = [s for s in states if s not in ALL_STATES]
        if bad:
            raise RemoteError("BadRequestException", f"Invalid application-state {bad[0]} specified. It should be one "
                                                     f"of {', '.join(ALL_STATES)}")
        tags = set(_csv(query.get("applicationTags", "")))
        types = set(_csv(query.get("applicationTypes", "")))
        times = {}
        for name in ("startedTimeBegin", "startedTimeEnd", "finishedTimeBegin", "finishedTimeEnd", "limit"):
            if query.get(name):
                try:
                    times[name] = int(query[name])
                except ValueError:
                    raise RemoteError("BadRequestException", f"{name} must be a number") from None
                if times[name] < 0 or (name == "limit" and times[name] == 0):
                    raise RemoteError("BadRequestException", f"{name} must be greater than 0")
        apps = []
        for app in self.rm.cluster.list_apps():
            if states and app.state not in states or tags and not tags & set(app.tags) \
                    or types and app.app_type.lower() not in types \
                    or query.get("user") and app.user != query["user"] \
                    or query.get("queue") and app.queue != query["queue"] \
                    or query.get("name") and app.name != query["name"] \
                    or query.get("finalStatus") and app.final_status != query["finalStatus"].upper() \
                    or app.started_time < times.get("startedTimeBegin", 0) \
                    or app.started_time > times.get("startedTimeEnd", 1 << 62) \
                    or "finishedTimeBegin" in times and app.finished_time < times["finishedTimeBegin"] \
                    or "finishedTimeEnd" in times and not 0 < app.finished_time <= times["finishedTimeEnd"]:
                continue
            apps.append(app)
        return apps[:times["limit"]] if "limit" in times else apps


def _csv(text: str, upper: bool = False) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    return [i.upper() if upper else i.lower() for i in items]


def run_forever(rm: TestResourceManager) -> None:
    """Serve until SIGINT or SIGTERM."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    rm.stop()
