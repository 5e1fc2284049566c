"""Shared pieces of the Mesos tests: a test master with three agents, a raw client, a gateway on it, job helpers."""

from __future__ import annotations

import getpass
import io
import json
import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import rasterio

from mesos_backend import Resources
from mesos_backend.mesos.recordio import RecordIODecoder
from mesos_backend.testing import proto
from mesos_backend.testing.cluster import MasterTimings
from mesos_backend.testing.master import TestMaster

from .conftest import Gateway, build_gateway, require
from .test_wps1 import NS, kvp_refs, poll_until_final

# Fast clocks: heartbeats every 0.3 s, offers every 0.1 s, unacknowledged updates again after 1 s, a stopped
# agent unreachable after 0.5 s.
FAST = MasterTimings(heartbeat_interval=0.3, allocation_interval=0.1, update_retry=1.0, update_retry_max=4.0,
                     agent_ping_timeout=0.5)
API = "/api/v1/scheduler"
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
GATEWAY_FRAMEWORK = "wps-gateway"


def start_master(work_dir: Path, agents: int = 3, **options) -> TestMaster:
    options.setdefault("agent_resources", Resources(cpus=2, mem=4096, disk=10000))
    options.setdefault("agent_attributes", {"rack": "r{i}", "storage": "shared"})
    options.setdefault("timings", FAST)
    return TestMaster(work_dir, agents, **options).start()


def check_master(master: TestMaster) -> None:
    """What must hold after any test: the double had no bug of its own, sent only what the protos allow,
    and our framework sent nothing a real master would have silently dropped."""
    cluster = master.cluster
    assert cluster.internal_errors == []
    assert cluster.protocol_errors == []
    assert [note for name, note in cluster.call_notes if name == GATEWAY_FRAMEWORK] == []


@pytest.fixture
def mesos_master(tmp_path):
    """A leading test master with three agents; see ``check_master``."""
    require(proto.available(), "protoc and the Mesos protos (golang-github-mesos-mesos-go-dev) are not installed")
    master = start_master(tmp_path / "mesos")
    yield master
    master.stop()
    check_master(master)


class RawFramework:
    """A framework written against the wire protocol only (no code of ours): one stream, calls with its id."""

    def __init__(self, base: str, info: dict[str, Any] | None = None, auth: tuple[str, str] | None = None,
                 **subscribe: Any) -> None:
        self.base = base
        self.info = info or {"user": getpass.getuser(), "name": "raw", "failover_timeout": 30.0,
                             "capabilities": [{"type": "PARTITION_AWARE"}, {"type": "TASK_KILLING_STATE"}]}
        self.extra = subscribe  # more fields of the Subscribe message (suppressed_roles, ...)
        self.client = httpx.Client(timeout=10, auth=auth, verify=False)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stream_id: str | None = None
        self.framework_id: str | None = None
        self.status: int | None = None
        self.closed = threading.Event()
        self._response: httpx.Response | None = None
        self._socket: socket.socket | None = None

    def subscribe(self, framework_id: str | None = None) -> dict[str, Any]:
        """SUBSCRIBE on a connection of its own; returns the first event (SUBSCRIBED or ERROR)."""
        call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": dict(self.info), **self.extra}}
        if framework_id:
            call["framework_id"] = {"value": framework_id}
            call["subscribe"]["framework_info"]["id"] = {"value": framework_id}
        ready = threading.Event()
        threading.Thread(target=self._read, args=(call, ready), daemon=True).start()
        ready.wait(10)
        return self.next("SUBSCRIBED", "ERROR")

    def _read(self, call: dict[str, Any], ready: threading.Event) -> None:
        decoder = RecordIODecoder()
        try:
            with self.client.stream("POST", self.base + API, json=call, headers=JSON) as response:
                self._response = response
                network = response.extensions.get("network_stream")
                self._socket = network.get_extra_info("socket") if network is not None else None
                self.status = response.status_code
                self.stream_id = response.headers.get("Mesos-Stream-Id")
                ready.set()
                for chunk in response.iter_raw():
                    for record in decoder.feed(chunk):
                        event = json.loads(record)
                        proto.validate_event(event)
                        self.events.put(event)
        except httpx.HTTPError:
            pass
        finally:
            ready.set()
            self.closed.set()
            self.events.put({"type": "_CLOSED"})

    def next(self, *kinds: str, timeout: float = 10) -> dict[str, Any]:
        """The next event of one of these types (others are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event["type"] in kinds:
                if event["type"] == "SUBSCRIBED":
                    self.framework_id = event["subscribed"]["framework_id"]["value"]
                return event
            if event["type"] == "_CLOSED":
                self.events.put(event)  # it stays closed for the next caller too
                raise AssertionError(f"the stream ended (status {self.status}) before any {kinds} event")
        raise AssertionError(f"no {kinds} event within {timeout} s")

    def offers(self, timeout: float = 10) -> list[dict[str, Any]]:
        return self.next("OFFERS", timeout=timeout)["offers"]["offers"]

    def updates(self, task_id: str, seconds: float) -> list[dict[str, Any]]:
        """Every UPDATE for ``task_id`` seen within ``seconds``."""
        seen, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if event["type"] == "UPDATE" and event["update"]["status"]["task_id"]["value"] == task_id:
                seen.append(event["update"]["status"])
        return seen

    def update(self, task_id: str, *states: str, timeout: float = 10, ack: bool = True) -> dict[str, Any]:
        """Wait for an update of ``task_id`` in one of ``states`` (any state if none is given), acknowledging
        every update on the way as a framework must (and the one returned unless ``ack`` is false)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.next("UPDATE", timeout=max(0.01, deadline - time.monotonic()))
            status = event["update"]["status"]
            match = status["task_id"]["value"] == task_id and (not states or status["state"] in states)
            if "uuid" in status and (ack or not match):
                self.acknowledge(status)
            if match:
                return status
        raise AssertionError(f"no update {states} for {task_id} within {timeout} s")

    def call(self, body: dict[str, Any], stream_id: str | None = "same", **headers: str) -> httpx.Response:
        body = {"framework_id": {"value": self.framework_id}, **body}
        sent = dict(JSON, **headers)
        if stream_id:
            sent["Mesos-Stream-Id"] = self.stream_id if stream_id == "same" else stream_id
        return self.client.post(self.base + API, json=body, headers=sent)

    def acknowledge(self, status: dict[str, Any]) -> httpx.Response:
        return self.call({"type": "ACKNOWLEDGE", "acknowledge": {
            "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})

    def close(self) -> None:
        """Close the connections, the stream's included (as when the framework's process dies)."""
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.client.close()


def task_info(offer: dict[str, Any], task_id: str, cpus: float = 0.5, argv: list[str] | None = None,
              role: str | None = None) -> dict[str, Any]:
    """A command task on the offer's agent."""
    argv = argv or ["sleep", "0.2"]
    extra = {"role": role} if role else {}
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, **extra},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}, **extra}],
            "command": {"shell": False, "value": argv[0], "arguments": argv}}


def launch(offer: dict[str, Any], *tasks: dict[str, Any], refuse: float = 0.1) -> dict[str, Any]:
    return {"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": refuse},
                                         "operations": [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}]}}


def mesos_gateway(data_dir: Path, sample_data: Path, master: str, dispatcher: bool = True, **extra: str) -> Gateway:
    env = {"GATEWAY_BACKEND": "mesos", "MESOS_MASTER": master, "MESOS_OFFER_REFUSE_SECONDS": "0.2",
           "MESOS_UNREACHABLE_TIMEOUT": "1", "MESOS_FAILOVER_TIMEOUT": "60"}
    env.update(extra)
    return build_gateway(data_dir, sample_data, dispatcher=dispatcher, **env)


def submit(gateway: Gateway, identifier: str, name: str, paths: list[Path]) -> str:
    """An async Execute by KVP; returns the status location."""
    response = gateway.client.get("/wps", {
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": identifier,
        "DataInputs": kvp_refs(name, paths), "storeExecuteResponse": "true", "status": "true"})
    return response.xml.get("statusLocation")


def outputs_of(gateway: Gateway, status_url: str, schema, timeout: float = 120) -> dict[str, object]:
    """Wait for success and read every output: rasters as arrays, other references as bytes, literals as text."""
    doc, seen = poll_until_final(gateway.client, status_url, schema, timeout=timeout)
    assert seen[-1] == "ProcessSucceeded", (seen, doc.findtext(".//wps:ProcessFailed//ows:ExceptionText",
                                                                 namespaces=NS))
    result: dict[str, object] = {}
    for output in doc.iterfind(".//wps:Output", NS):
        name = output.findtext("ows:Identifier", namespaces=NS)
        reference = output.find("wps:Reference", NS)
        if reference is None:
            result[name] = output.findtext(".//wps:LiteralData", namespaces=NS)
            continue
        body = gateway.client.get(reference.get("href").replace("http://localhost", "")).body
        if "tiff" in (reference.get("mimeType") or ""):
            with rasterio.open(io.BytesIO(body)) as dataset:
                result[name] = dataset.read()
        else:
            result[name] = body
    return result


def assert_same_outputs(left: dict[str, object], right: dict[str, object]) -> None:
    assert left.keys() == right.keys()
    for name, value in left.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, right[name], err_msg=name)
        else:
            assert value == right[name], name
