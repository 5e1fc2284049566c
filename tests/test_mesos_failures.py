"""What goes wrong on a Mesos cluster, each on the test master: the job still ends as it should.

Faults are caused as an operator (or the cluster) would cause them: agents
stopped, lost and started again over the test master's HTTP endpoints, the
leading master stopped, the gateway killed with SIGKILL, another framework
sharing the agents.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from mesos_backend import FetchUri, TaskSpec, TaskState
from mesos_backend.mesos.backend import MesosBackend, SchedulingOptions
from mesos_backend.mesos.driver import DriverTimeouts
from mesos_backend.testing import proto
from wps_gateway.store.backend_state import StoreBackendState
from wps_gateway.store.db import Store
from wps_gateway.store.models import JobStatus, Task, TaskAttempt
from wps_gateway.switches import DispatchSwitch

from .conftest import close_gateway, require
from .gateway_process import GatewayProcess, wait_final
from .jobs_support import (
    attempts_of,
    dismiss_once_running,
    final,
    finished_ok,
    job_of,
    running,
    submit_sleepy,
    wait_for,
)
from .mesos_support import (
    RawFramework,
    check_master,
    launch,
    mesos_gateway,
    start_master,
    task_info,
)

pytestmark = pytest.mark.slow
SUCCEEDED = "ProcessSucceeded"


def operate(master, path: str) -> None:
    """An operator's action on the test master (``agents/<id>/stop`` ...)."""
    answer = httpx.post(f"{master.leader.url}/testing/{path}", timeout=10)
    assert answer.status_code == 200, answer.text


def test_an_agent_lost_mid_job_has_its_tasks_rerun_elsewhere(tmp_path, sample_data, mesos_master):
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.leader.address)
    try:
        job_id = submit_sleepy(gateway, [1, 2, 3, 4], seconds=8)
        wait_for(lambda: len(running(gateway, job_id)) == 4, 30)
        victim = running(gateway, job_id)[0].agent
        operate(mesos_master, f"agents/{victim}/lose")
        finished_ok(gateway, job_id)
        attempts = attempts_of(gateway, job_id)
        lost = [a for a in attempts if a.agent == victim]
        assert lost and all(a.status == "lost" and a.reason == "unreachable" for a in lost)
        reruns = [a for a in attempts if a.number == 2]
        assert len(reruns) == len(lost) and all(a.agent != victim and a.status == "succeeded" for a in reruns)
    finally:
        close_gateway(gateway)


def test_a_dropped_connection_and_a_silent_stream_are_survived_with_the_same_framework(tmp_path, sample_data,
                                                                                       mesos_master):
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.leader.address)
    try:
        job_id = submit_sleepy(gateway, [1, 2, 3], seconds=2)
        wait_for(lambda: len(running(gateway, job_id)) == 3, 30)
        framework_id = StoreBackendState(gateway.store, "mesos").get("framework_id")
        cluster = mesos_master.cluster
        first = cluster.stream_of(framework_id)
        cluster.drop_connections()
        wait_for(lambda: cluster.stream_of(framework_id) not in (None, first), 15)
        second = cluster.stream_of(framework_id)
        cluster.silence_streams()  # no heartbeats: the driver must notice and reconnect
        wait_for(lambda: cluster.stream_of(framework_id) not in (None, second), 15)
        finished_ok(gateway, job_id)
        assert list(mesos_master.cluster.frameworks) == [framework_id]
        assert all(a.number == 1 for a in attempts_of(gateway, job_id)), "a running task was launched again"
    finally:
        close_gateway(gateway)


def test_a_rescinded_offer_costs_an_attempt_not_the_job(tmp_path, sample_data, mesos_master):
    mesos_master.cluster.rescind_next = 1
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.leader.address)
    try:
        job_id = submit_sleepy(gateway, [1, 2], seconds=0.2)
        finished_ok(gateway, job_id)
        dropped = [a for a in attempts_of(gateway, job_id) if a.reason == "REASON_INVALID_OFFERS"]
        assert dropped and all(a.status == "lost" for a in dropped)
    finally:
        close_gateway(gateway)


def test_spent_retries_fail_the_job_with_a_clear_message(tmp_path, sample_data, mesos_master):
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.leader.address)
    try:
        job_id = submit_sleepy(gateway, [2], fail_step="square")
        job = final(gateway, job_id)
        assert job.status == JobStatus.FAILED
        assert "Step 'square' task 0 failed: exited with code 3" in job.message
        assert "after 2 attempts" in job.message
    finally:
        close_gateway(gateway)


def test_dismissing_a_job_kills_its_running_tasks(tmp_path, sample_data, mesos_master):
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.leader.address)
    try:
        job_id = dismiss_once_running(gateway)
        assert job_of(gateway, job_id).status == JobStatus.DISMISSED
        wait_for(lambda: not any(r.agent.tasks for r in mesos_master.cluster.agents.values()), 10)
    finally:
        close_gateway(gateway)


def test_a_task_timeout_bounds_its_run_not_its_wait_to_start(tmp_path, mesos_master):
    """Mesos reports RUNNING after the fetch: a task whose URI is slow to come is not killed for that wait."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked, release = threading.Event(), threading.Event()

    class SlowFile(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            asked.set()
            release.wait(60)
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"hi\n")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowFile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events = []
    backend = MesosBackend(mesos_master.leader.address, scheduling=SchedulingOptions(offer_refuse_seconds=0.2),
                           timeouts=DriverTimeouts(backoff_initial=0.1))
    backend.start(events.append)
    try:
        uri = FetchUri(f"http://127.0.0.1:{server.server_address[1]}/greeting.txt")
        backend.launch(TaskSpec("fetch-slowly", ["cat", "greeting.txt"], timeout=1.0, uris=[uri]))
        assert asked.wait(30), "the agent never fetched the task's URI"
        began = time.monotonic()
        wait_for(lambda: time.monotonic() - began > 3.0, 10)  # three timeouts spent waiting for the file
        release.set()
        wait_for(lambda: any(e.state.is_terminal for e in events), 30)
        (final,) = [e for e in events if e.state.is_terminal]
        assert final.state is TaskState.FINISHED and final.succeeded, final
    finally:
        release.set()
        backend.stop()
        server.shutdown()


def test_a_task_past_its_timeout_is_killed_and_reported_failed(tmp_path, mesos_master):
    events = []
    backend = MesosBackend(mesos_master.leader.address, scheduling=SchedulingOptions(offer_refuse_seconds=0.2),
                           timeouts=DriverTimeouts(backoff_initial=0.1))
    backend.start(events.append)
    try:
        backend.launch(TaskSpec("slow-1", ["sleep", "30"], timeout=1.0))
        wait_for(lambda: any(e.state.is_terminal for e in events), 20)
        (final,) = [e for e in events if e.state.is_terminal]
        assert final.state is TaskState.FAILED and final.reason == "timeout"
        assert [e.state for e in events if e.state is TaskState.STARTED]
    finally:
        backend.stop()


def test_sigkill_of_the_gateway_mid_job_resumes_with_the_same_framework_and_no_double_launch(tmp_path, sample_data,
                                                                                            mesos_master):
    data_dir = tmp_path / "var"
    process = GatewayProcess(data_dir, sample_data, GATEWAY_BACKEND="mesos", MESOS_MASTER=mesos_master.leader.address,
                             MESOS_OFFER_REFUSE_SECONDS="0.2", MESOS_FAILOVER_TIMEOUT="60").start()
    store = Store(f"sqlite:///{data_dir / 'gateway.db'}")
    try:
        status = process.submit("numbers=1;numbers=2;numbers=3;seconds=4")
        wait_for(lambda: len(mesos_master.cluster.launched) == 3, 30)
        framework_id = StoreBackendState(store, "mesos").get("framework_id")
        process.kill()
        process.start()
        doc = wait_final(process, status)
        assert doc.find(".//{http://www.opengis.net/wps/1.0.0}" + SUCCEEDED) is not None
        assert StoreBackendState(store, "mesos").get("framework_id") == framework_id
        assert list(mesos_master.cluster.frameworks) == [framework_id]
        assert not [t for t, n in Counter(mesos_master.cluster.launched).items() if n > 1]
        with store.session() as session:
            squares = session.scalars(select(TaskAttempt)).all()
            assert all(a.number == 1 for a in squares), "a task that kept running was launched again"
    finally:
        process.stop()
        store.dispose()


def test_sigkills_while_tasks_wait_in_the_framework_spend_no_retry(tmp_path, sample_data, mesos_master):
    """One square at a time (max_cpu), the rest queued in the framework, never sent to Mesos: three SIGKILLs,
    each while the gateway holds offers, must not spend the one retry the step allows."""
    data_dir = tmp_path / "var"
    process = GatewayProcess(data_dir, sample_data, GATEWAY_BACKEND="mesos", MESOS_MASTER=mesos_master.leader.address,
                             MESOS_OFFER_REFUSE_SECONDS="0.2", MESOS_FAILOVER_TIMEOUT="60", MESOS_MAX_CPU="0.5",
                             GATEWAY_RETRY_BACKOFF="0.1").start()
    store = Store(f"sqlite:///{data_dir / 'gateway.db'}")
    cluster = mesos_master.cluster

    offered = threading.Event()
    emit = cluster._emit

    def watch(framework, event) -> None:  # the master just sent offers: the gateway holds them for a while
        emit(framework, event)
        if event["type"] == "OFFERS":
            offered.set()

    cluster._emit = watch
    try:
        status = process.submit("numbers=1;numbers=2;numbers=3;numbers=4;seconds=1")
        for crash in range(3):
            offered.clear()
            wait_for(lambda n=crash: len(cluster.launched) > n and offered.is_set(), 60)
            process.kill()
            process.start()
        doc = wait_final(process, status)
        assert doc.find(".//{http://www.opengis.net/wps/1.0.0}" + SUCCEEDED) is not None
        with store.session() as session:
            restarted = session.scalars(select(TaskAttempt).where(TaskAttempt.reason == "backend_restarted")).all()
            assert restarted, "tasks that never reached Mesos were handed back as backend_restarted"
            assert all(t.status == "succeeded" for t in session.scalars(select(Task)))
        assert not [t for t, n in Counter(cluster.launched).items() if n > 1]
    finally:
        process.stop()
        store.dispose()


def test_a_leader_change_in_zookeeper_keeps_the_running_tasks(tmp_path, sample_data, zookeeper_server):
    require(proto.available(), "protoc and the Mesos protos are not installed")
    zk = f"zk://{zookeeper_server.hosts}/mesos-{tmp_path.name}"
    test_master = start_master(tmp_path / "mesos", masters=2, zk=zk)
    gateway = mesos_gateway(tmp_path / "var", sample_data, zk)
    try:
        job_id = submit_sleepy(gateway, [1, 2, 3], seconds=3)
        wait_for(lambda: len(running(gateway, job_id)) == 3, 30)
        framework_id = StoreBackendState(gateway.store, "mesos").get("framework_id")
        new_leader = test_master.fail_over()  # the leader stops; ZooKeeper elects the standby
        finished_ok(gateway, job_id)
        assert gateway.runner.dispatcher.backend._driver._leader == new_leader.url
        assert list(test_master.cluster.frameworks) == [framework_id]
        assert all(a.number == 1 for a in attempts_of(gateway, job_id)), "a running task was launched again"
    finally:
        close_gateway(gateway)
        test_master.stop()
    check_master(test_master)


def test_an_agent_that_comes_back_after_its_tasks_were_rerun_has_the_old_copies_killed(tmp_path, sample_data,
                                                                                       mesos_master):
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.leader.address,
                            MESOS_RECONCILE_INTERVAL="1")
    try:
        job_id = submit_sleepy(gateway, [1, 2, 3], seconds=6)
        wait_for(lambda: len(running(gateway, job_id)) == 3, 30)
        victim = running(gateway, job_id)[0].agent
        operate(mesos_master, f"agents/{victim}/stop")  # a partition: its tasks go on running, unheard of
        wait_for(lambda: any(a.reason == "unreachable" for a in attempts_of(gateway, job_id)), 30)
        operate(mesos_master, f"agents/{victim}/start")
        finished_ok(gateway, job_id)
        wait_for(lambda: not mesos_master.cluster.agents[victim].agent.tasks, 30)  # the old copies were killed
        succeeded = Counter(a.task_id for a in attempts_of(gateway, job_id) if a.status == "succeeded")
        assert set(succeeded.values()) == {1}, "a task succeeded twice"
    finally:
        close_gateway(gateway)


def test_a_second_framework_shares_the_agents_with_the_gateway(tmp_path, sample_data, mesos_master):
    other = RawFramework(mesos_master.leader.url)
    other.subscribe()
    for offer in other.offers():  # half of every agent, for as long as the test runs
        other.call(launch(offer, task_info(offer, f"other-{offer['agent_id']['value']}", cpus=1,
                                           argv=["sleep", "120"]), refuse=3600))
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.leader.address)
    try:
        job_id = submit_sleepy(gateway, [1, 2, 3, 4], seconds=0.2)
        finished_ok(gateway, job_id)
        assert len(mesos_master.cluster.frameworks) == 2
    finally:
        close_gateway(gateway)
        other.close()


def test_pausing_suppresses_offers_and_keeps_the_queue(tmp_path, sample_data, mesos_master):
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.leader.address)
    switch = DispatchSwitch(gateway.store)
    try:
        switch.pause("agent maintenance")
        job_id = submit_sleepy(gateway, [1, 2], seconds=0.1)

        def suppressed() -> bool:
            frameworks = list(mesos_master.cluster.frameworks.values())
            return bool(frameworks) and all(f.suppressed for f in frameworks)

        wait_for(suppressed, 10)
        time.sleep(1)
        assert attempts_of(gateway, job_id) == [] and mesos_master.cluster.launched == []
        switch.resume()
        finished_ok(gateway, job_id)
    finally:
        close_gateway(gateway)
