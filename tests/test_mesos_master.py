"""The Mesos test master speaks the v1 scheduler API as a real master does, to any client.

These tests use a bare HTTP client (no driver of ours), so they check the
master, and through the same checks the driver's counterpart. Every event
seen is validated against the Mesos protos.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesos_backend.mesos.backend import FrameworkOptions
from mesos_backend.mesos.detector import create_detector
from mesos_backend.mesos.driver import DriverTimeouts, MesosSchedulerDriver
from mesos_backend.mesos.recordio import RecordIODecoder
from mesos_backend.mesos.scheduler import Scheduler
from mesos_backend.testing import proto
from mesos_backend.testing.master import server_tls

from .conftest import free_port, require
from .mesos_support import start_master

API = "/api/v1/scheduler"
JSON = {"Content-Type": "application/json", "Accept": "application/json"}


@pytest.fixture(autouse=True)
def _protos():
    require(proto.available(), "protoc and the Mesos protos (golang-github-mesos-mesos-go-dev) are not installed")


class RawFramework:
    """A framework written against the wire protocol only: one stream, calls with its id."""

    def __init__(self, base: str, info: dict[str, Any] | None = None, auth: tuple[str, str] | None = None) -> None:
        self.base = base
        self.info = info or {"user": "", "name": "raw", "failover_timeout": 30.0,
                             "capabilities": [{"type": "PARTITION_AWARE"}]}
        self.client = httpx.Client(timeout=10, auth=auth)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stream_id: str | None = None
        self.framework_id: str | None = None
        self.status: int | None = None
        self._thread: threading.Thread | None = None

    def subscribe(self, framework_id: str | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": dict(self.info)}}
        if framework_id:
            call["framework_id"] = {"value": framework_id}
            call["subscribe"]["framework_info"]["id"] = {"value": framework_id}
        ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(call, ready), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self.next("SUBSCRIBED", "ERROR")

    def _read(self, call: dict[str, Any], ready: threading.Event) -> None:
        decoder = RecordIODecoder()
        try:
            with self.client.stream("POST", self.base + API, json=call, headers=JSON) as response:
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
            self.events.put({"type": "_CLOSED"})

    def next(self, *kinds: str, timeout: float = 10) -> dict[str, Any]:
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
        raise AssertionError(f"no {kinds} event within {timeout} s")

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

    def call(self, body: dict[str, Any], stream_id: str | None = "same", **headers: str) -> httpx.Response:
        body = {"framework_id": {"value": self.framework_id}, **body}
        sent = dict(JSON, **headers)
        if stream_id:
            sent["Mesos-Stream-Id"] = self.stream_id if stream_id == "same" else stream_id
        return self.client.post(self.base + API, json=body, headers=sent)

    def close(self) -> None:
        self.client.close()


def task(offer: dict[str, Any], task_id: str, cpus: float = 0.5, argv: list[str] | None = None) -> dict[str, Any]:
    argv = argv or ["sleep", "0.2"]
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
            "command": {"shell": False, "value": argv[0], "arguments": argv}}


def launch(offer: dict[str, Any], *tasks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0.1},
                                         "operations": [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}]}}


@pytest.fixture
def framework(mesos_master):
    raw = RawFramework(mesos_master.leader.url)
    subscribed = raw.subscribe()
    assert raw.status == 200 and raw.stream_id
    assert subscribed["subscribed"]["heartbeat_interval_seconds"] > 0
    yield raw
    raw.close()


def test_the_stream_brings_offers_and_heartbeats(framework):
    offers = framework.next("OFFERS")["offers"]["offers"]
    assert len(offers) == 3
    assert {r["name"] for r in offers[0]["resources"]} == {"cpus", "mem", "disk"}
    assert {a["name"] for a in offers[0]["attributes"]} == {"rack", "storage"}
    framework.next("HEARTBEAT", timeout=2)


def test_calls_the_real_master_refuses_are_refused(mesos_master, framework):
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework.info}}
    answer = framework.client.post(mesos_master.leader.url + API, json=subscribe,
                                   headers=dict(JSON, **{"Mesos-Stream-Id": framework.stream_id}))
    assert answer.status_code == 400 and "should not include the 'Mesos-Stream-Id'" in answer.text
    answer = framework.call({"type": "REVIVE"}, stream_id=None)
    assert answer.status_code == 400 and "should include the 'Mesos-Stream-Id'" in answer.text
    answer = framework.call({"type": "REVIVE"}, stream_id="not-the-stream")
    assert answer.status_code == 400 and "didn't match" in answer.text
    answer = framework.call({"type": "DECLINE", "decline": {"offer_idz": []}})
    assert answer.status_code == 400 and "offer_idz" in answer.text
    answer = framework.call({"type": "REVIVE"}, **{"Content-Type": "text/plain"})
    assert answer.status_code == 415
    assert framework.client.get(mesos_master.leader.url + API).status_code == 405
    assert framework.call({"type": "REVIVE"}).status_code == 202


def test_launches_beyond_the_offer_or_with_an_unknown_offer_come_back_as_errors(framework):
    offer = framework.next("OFFERS")["offers"]["offers"][0]
    assert framework.call(launch(offer, task(offer, "greedy", cpus=64))).status_code == 202
    (error,) = framework.updates("greedy", 1.0)[:1]
    assert error["state"] == "TASK_ERROR" and error["reason"] == "REASON_TASK_INVALID"
    assert "more resources" in error["message"] and "uuid" not in error
    stale = dict(offer, id={"value": "no-such-offer"})
    assert framework.call(launch(stale, task(stale, "late"))).status_code == 202
    (dropped,) = framework.updates("late", 1.0)[:1]
    assert dropped["state"] == "TASK_DROPPED" and dropped["reason"] == "REASON_INVALID_OFFERS"


def test_updates_are_resent_until_acknowledged_and_held_back_in_order(framework):
    offer = framework.next("OFFERS")["offers"]["offers"][0]
    framework.call(launch(offer, task(offer, "t1", argv=["sleep", "0.1"])))
    seen = framework.updates("t1", 3.5)  # the test master resends after 1 s, then 2 s
    assert len(seen) >= 2 and [s["state"] for s in seen] == ["TASK_STARTING"] * len(seen)
    assert len({s["uuid"] for s in seen}) == 1, "a retransmission carries the same uuid"
    states = []
    for _ in range(3):
        status = seen[-1]
        framework.call({"type": "ACKNOWLEDGE", "acknowledge": {
            "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})
        seen = framework.updates("t1", 1.2)
        states.append(seen[0]["state"] if seen else None)
    assert states == ["TASK_RUNNING", "TASK_FINISHED", None], "after the last acknowledgement nothing is resent"


def test_reconciliation_answers_for_known_and_unknown_tasks(framework):
    offer = framework.next("OFFERS")["offers"]["offers"][0]
    framework.call(launch(offer, task(offer, "long", argv=["sleep", "30"])))
    time.sleep(0.5)
    framework.call({"type": "RECONCILE", "reconcile": {"tasks": [
        {"task_id": {"value": "long"}}, {"task_id": {"value": "ghost"}, "agent_id": offer["agent_id"]},
        {"task_id": {"value": "nowhere"}}]}})
    answers = {}
    deadline = time.monotonic() + 3
    while len(answers) < 3 and time.monotonic() < deadline:
        event = framework.events.get(timeout=3)
        if event["type"] == "UPDATE" and event["update"]["status"].get("reason") == "REASON_RECONCILIATION":
            status = event["update"]["status"]
            answers[status["task_id"]["value"]] = status["state"]
    assert answers.pop("long") in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING")  # however far it got
    assert answers == {"ghost": "TASK_GONE", "nowhere": "TASK_UNKNOWN"}


def test_a_framework_past_its_failover_timeout_is_removed_and_told_so(mesos_master):
    raw = RawFramework(mesos_master.leader.url, {"user": "", "name": "brief", "failover_timeout": 0.2})
    raw.subscribe()
    framework_id = raw.framework_id
    raw.client.close()  # the connection drops
    time.sleep(1.5)
    again = RawFramework(mesos_master.leader.url, {"user": "", "name": "brief", "failover_timeout": 0.2})
    event = again.subscribe(framework_id)
    assert event["type"] == "ERROR" and "removed" in event["error"]["message"]
    again.close()


def test_a_standby_master_redirects_to_the_leader_and_the_driver_follows(tmp_path):
    test_master = start_master(tmp_path / "mesos", agents=1, standby=True)
    try:
        answer = httpx.post(test_master.standby.url + API, headers=JSON, json={
            "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "", "name": "x"}}})
        assert answer.status_code == 307
        assert answer.headers["Location"] == f"//{test_master.leader.address}{API}"

        registered = threading.Event()

        class Recorder(Scheduler):
            def registered(self, driver, framework_id, master_info):
                registered.set()

        detector = create_detector(f"{test_master.standby.address},{test_master.leader.address}")
        driver = MesosSchedulerDriver(Recorder(), FrameworkOptions().framework_info(None), detector)
        driver.start()
        try:
            assert registered.wait(10)
            assert driver._leader == test_master.leader.url
        finally:
            driver.stop()
    finally:
        test_master.stop()


def test_authentication_is_required_and_the_secret_never_logged(tmp_path, caplog):
    test_master = start_master(tmp_path / "mesos", agents=1, credentials={"gateway": "s3cret-value"})
    try:
        answer = httpx.post(test_master.leader.url + API, headers=JSON, json={
            "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "", "name": "x"}}})
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic")
        impostor = httpx.post(test_master.leader.url + API, headers=JSON, auth=("gateway", "s3cret-value"), json={
            "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "", "name": "x", "principal": "root"}}})
        assert impostor.status_code == 403

        caplog.set_level(logging.DEBUG)
        registered = threading.Event()

        class Recorder(Scheduler):
            def registered(self, driver, framework_id, master_info):
                registered.set()

        options = FrameworkOptions(principal="gateway")
        driver = MesosSchedulerDriver(Recorder(), options.framework_info(None),
                                      create_detector(test_master.leader.address), principal="gateway",
                                      secret="s3cret-value", timeouts=DriverTimeouts(backoff_initial=0.1))
        driver.start()
        try:
            assert registered.wait(10)
            assert "s3cret-value" not in repr(driver)
        finally:
            driver.stop()
        assert "s3cret-value" not in caplog.text
    finally:
        test_master.stop()


def test_the_test_master_runs_on_its_own_for_any_framework(tmp_path):
    port = free_port()
    log = tmp_path / "master.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "mesos_backend.testing.master", "--host", "127.0.0.1", "--port", str(port),
         "--agents", "2", "--agent-resources", "cpus:2;mem:2048;disk:1000", "--agent-attributes", "rack:r{i}",
         "--heartbeat-interval", "0.5", "--work-dir", str(tmp_path / "work")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        raw = RawFramework(f"http://127.0.0.1:{port}")
        raw.subscribe()
        offers = raw.next("OFFERS")["offers"]["offers"]
        assert sorted(a["attributes"][0]["text"]["value"] for a in offers) == ["r0", "r1"]
        offer = offers[0]
        raw.call(launch(offer, task(offer, "hello", argv=[sys.executable, "-c", "print('hello')"])))
        states = []
        deadline = time.monotonic() + 10
        while "TASK_FINISHED" not in states and time.monotonic() < deadline:
            for status in raw.updates("hello", 0.3):
                states.append(status["state"])
                raw.call({"type": "ACKNOWLEDGE", "acknowledge": {
                    "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})
        assert states[-1] == "TASK_FINISHED", states
        sandboxes = list((tmp_path / "work").rglob("hello/stdout"))
        assert sandboxes and sandboxes[0].read_text().strip() == "hello"
        raw.close()
    finally:
        process.terminate()
        process.wait(10)


def self_signed(tmp_path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, made with openssl."""
    cert, key = tmp_path / "master.pem", tmp_path / "master.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def test_tls_to_the_master_verifies_its_certificate(tmp_path, caplog):
    require(shutil.which("openssl") is not None, "openssl is not installed")
    cert, key = self_signed(tmp_path)
    test_master = start_master(tmp_path / "mesos", agents=1, tls=server_tls(Path(cert), Path(key)))
    address = f"https://{test_master.leader.address}"

    def subscribes(verify: bool | str) -> bool:
        registered = threading.Event()

        class Recorder(Scheduler):
            def registered(self, driver, framework_id, master_info):
                registered.set()

        driver = MesosSchedulerDriver(Recorder(), FrameworkOptions().framework_info(None), create_detector(address),
                                      verify=verify, timeouts=DriverTimeouts(backoff_initial=0.1))
        driver.start()
        try:
            return registered.wait(3)
        finally:
            driver.stop()

    try:
        assert subscribes(cert), "the master's own CA must be accepted"
        assert not subscribes(True), "a self-signed master must not pass the system CAs"
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    finally:
        test_master.stop()
