"""Our scheduler driver against the faithful test master: redirects, credentials, TLS, ERROR events, backoff."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from mesos_backend.mesos import driver as driver_module
from mesos_backend.mesos.backend import FrameworkOptions
from mesos_backend.mesos.detector import create_detector
from mesos_backend.mesos.driver import FAILED_OVER, DriverTimeouts, MesosSchedulerDriver, NoLeaderError, error_kind
from mesos_backend.mesos.scheduler import Scheduler
from mesos_backend.testing import proto
from mesos_backend.testing.master import server_tls

from .conftest import require
from .jobs_support import wait_for
from .mesos_support import check_master, start_master

FAST = DriverTimeouts(backoff_initial=0.1)


@pytest.fixture(autouse=True)
def _protos():
    require(proto.available(), "protoc and the Mesos protos (golang-github-mesos-mesos-go-dev) are not installed")


class Recorder(Scheduler):
    """Remembers what the driver told it."""

    def __init__(self) -> None:
        self.registered_ = threading.Event()
        self.subscriptions = 0
        self.heartbeats = 0
        self.errors: list[str] = []

    def registered(self, driver, framework_id, master_info):
        self.subscriptions += 1
        self.registered_.set()

    def reregistered(self, driver, master_info):
        self.subscriptions += 1
        self.registered_.set()

    def processHeartBeat(self, driver):  # noqa: N802
        self.heartbeats += 1

    def error(self, driver, message):
        self.errors.append(message)


def driver_for(master: str, recorder: Recorder, framework_id: str | None = None, **options) -> MesosSchedulerDriver:
    options.setdefault("timeouts", FAST)
    principal = options.get("principal")
    info = FrameworkOptions(principal=principal).framework_info(framework_id)
    return MesosSchedulerDriver(recorder, info, create_detector(master), **options)


def subscribes(master: str, timeout: float = 10, **options) -> bool:
    """Whether a driver for ``master`` subscribes within ``timeout`` (then it stops)."""
    recorder = Recorder()
    driver = driver_for(master, recorder, **options)
    driver.start()
    try:
        return recorder.registered_.wait(timeout)
    finally:
        driver.stop()


def test_a_standby_redirect_is_followed_to_the_leader(tmp_path):
    master = start_master(tmp_path / "mesos", agents=1, standby=True)
    recorder = Recorder()
    driver = driver_for(f"{master.standby.address},{master.leader.address}", recorder)
    driver.start()
    try:
        assert recorder.registered_.wait(10)
        assert driver._leader == master.leader.url
    finally:
        driver.stop()
        master.stop()
    check_master(master)


def test_authentication_works_and_the_secret_is_never_logged(tmp_path, caplog):
    master = start_master(tmp_path / "mesos", agents=1, credentials={"gateway": "s3cret-value"})
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    driver = driver_for(master.leader.address, recorder, principal="gateway", secret="s3cret-value")
    driver.start()
    try:
        assert recorder.registered_.wait(10)
        assert "s3cret-value" not in repr(driver)
    finally:
        driver.stop()
        master.stop()
    assert "s3cret-value" not in caplog.text
    assert "will travel over plain HTTP" in caplog.text, "a secret over http is warned about at start"
    check_master(master)


def test_credentials_follow_a_redirect_only_to_a_configured_master(tmp_path, caplog):
    master = start_master(tmp_path / "mesos", agents=1, standby=True, credentials={"gateway": "s3cret-value"})
    try:
        recorder = Recorder()
        driver = driver_for(master.standby.address, recorder, principal="gateway", secret="s3cret-value")
        driver.start()
        try:
            wait_for(lambda: "refusing to send credentials" in caplog.text, 10)
            assert not recorder.registered_.is_set() and master.cluster.subscriptions == 0
        finally:
            driver.stop()
        assert subscribes(f"{master.standby.address},{master.leader.address}", principal="gateway",
                          secret="s3cret-value")
    finally:
        master.stop()
    check_master(master)


def test_a_redirect_never_goes_from_https_down_to_http():
    driver = driver_for("https://127.0.0.1:5050", Recorder())
    with pytest.raises(NoLeaderError, match="down to"):
        driver._follow("https://127.0.0.1:5050", "http://127.0.0.1:5050/api/v1/scheduler")
    assert driver._follow("https://127.0.0.1:5050", "//127.0.0.1:5050/api/v1/scheduler") == "https://127.0.0.1:5050"
    driver.stop()


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
    master = start_master(tmp_path / "mesos", agents=1, tls=server_tls(Path(cert), Path(key)))
    address = f"https://{master.leader.address}"
    try:
        assert subscribes(address, verify=cert), "the master's own CA must be accepted"
        assert not subscribes(address, timeout=3, verify=True), "a self-signed master must not pass the system CAs"
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    finally:
        master.stop()


def test_a_driver_whose_framework_another_one_took_over_stops(mesos_master):
    first_recorder, second_recorder = Recorder(), Recorder()
    first = driver_for(mesos_master.leader.address, first_recorder)
    first.start()
    second = None
    try:
        assert first_recorder.registered_.wait(10)
        second = driver_for(mesos_master.leader.address, second_recorder, framework_id=first.framework_id)
        second.start()
        assert second_recorder.registered_.wait(10)
        wait_for(lambda: first_recorder.errors, 10)
        assert error_kind(first_recorder.errors[0]) == FAILED_OVER and first.ended
        stream = mesos_master.cluster.stream_of(first.framework_id)
        wait_for(lambda: second_recorder.heartbeats >= 5, 10)  # time for the first one to fight back, if it would
        assert mesos_master.cluster.subscriptions == 2
        assert mesos_master.cluster.stream_of(first.framework_id) is stream
    finally:
        first.stop()
        if second is not None:
            second.stop()


class PauseRecorder(MesosSchedulerDriver):
    """Records how long the driver waits between subscription attempts."""

    pauses: list[float]

    def _pause(self, seconds: float) -> bool:
        self.pauses.append(seconds)
        return super()._pause(seconds)


def test_the_reconnect_backoff_starts_over_once_subscribed(mesos_master):
    recorder = Recorder()
    info = FrameworkOptions().framework_info(None)
    driver = PauseRecorder(recorder, info, create_detector(mesos_master.leader.address), timeouts=FAST)
    driver.pauses = []
    driver.start()
    try:
        for round_ in range(1, 5):
            wait_for(lambda n=round_: recorder.subscriptions == n, 10)
            mesos_master.cluster.drop_connections()
        wait_for(lambda: recorder.subscriptions == 5, 10)
        assert len(driver.pauses) >= 4 and max(driver.pauses) <= FAST.backoff_initial * 1.2
    finally:
        driver.stop()


def test_a_call_the_master_answers_not_subscribed_makes_the_driver_subscribe_again(mesos_master):
    recorder = Recorder()
    driver = driver_for(mesos_master.leader.address, recorder)
    driver.start()
    try:
        wait_for(lambda: recorder.subscriptions == 1, 10)
        stream = mesos_master.cluster.stream_of(driver.framework_id)
        mesos_master.cluster.disconnected(stream)  # the master forgot the subscription; the connection lingers
        assert driver.reviveOffers() is False
        wait_for(lambda: recorder.subscriptions == 2, 10)
        assert driver.reviveOffers() is True
    finally:
        driver.stop()


class OneTask(Recorder):
    """Launches one short task on its first offer and records the states of its updates."""

    def __init__(self) -> None:
        super().__init__()
        self.launched = False
        self.states: list[str] = []

    def resourceOffers(self, driver, offers):  # noqa: N802
        if not self.launched:
            self.launched = True
            offer, offers = offers[0], offers[1:]
            cpus = next(r for r in offer["resources"] if r["name"] == "cpus")
            driver.launchTasks([offer["id"]], [{"name": "ack", "task_id": {"value": "ack-1"},
                                                "agent_id": offer["agent_id"], "command": {"value": "true"},
                                                "resources": [{**cpus, "scalar": {"value": 0.1}}]}])
        if offers:
            driver.declineOffer([o["id"] for o in offers])

    def statusUpdate(self, driver, status):  # noqa: N802
        self.states.append(status["state"])


def test_the_stream_is_read_on_while_an_acknowledgement_travels(mesos_master):
    """Implicit acknowledgements go out beside the stream: one the master is slow to answer holds no later
    event back (heartbeats keep coming), and once it is through the task's later updates follow."""
    recorder = OneTask()
    driver = driver_for(mesos_master.leader.address, recorder)
    held, release = threading.Event(), threading.Event()
    post = driver._call_client.post

    def slow_acknowledgements(url, json, **options):
        if json["type"] == "ACKNOWLEDGE" and not release.is_set():
            held.set()
            release.wait(60)  # longer than the test waits for heartbeats
        return post(url, json=json, **options)

    driver._call_client.post = slow_acknowledgements
    driver.start()
    try:
        wait_for(held.is_set, 10)
        heartbeats = recorder.heartbeats
        wait_for(lambda: recorder.heartbeats >= heartbeats + 2, 10)  # read while the acknowledgement waits
        release.set()
        wait_for(lambda: "TASK_FINISHED" in recorder.states, 10)
        assert list(dict.fromkeys(recorder.states)) == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    finally:
        release.set()
        driver.stop()


def test_acknowledgements_waiting_to_go_out_are_bounded(monkeypatch):
    """Beyond ACK_BACKLOG unsent acknowledgements the stream waits (an agent's next update waits for them)."""
    monkeypatch.setattr(driver_module, "ACK_BACKLOG", 2)
    recorder = OneTask()
    driver = driver_for("127.0.0.1:9", recorder)  # never started: no acknowledgement goes out
    update = {"status": {"task_id": {"value": "t"}, "agent_id": {"value": "a"}, "uuid": "x"}}
    for state in ("TASK_STARTING", "TASK_RUNNING"):
        driver._on_update({"status": {**update["status"], "state": state}})
    reader = threading.Thread(target=driver._on_update, args=({"status": {**update["status"],
                                                                          "state": "TASK_FINISHED"}},))
    reader.start()
    wait_for(lambda: len(recorder.states) == 3, 10)  # the scheduler has the third update; its ack has no room
    reader.join(1.0)
    assert reader.is_alive() and driver._acks.qsize() == 2
    driver._acks.get_nowait()  # one went out
    reader.join(10)
    assert not reader.is_alive() and driver._acks.qsize() == 2
