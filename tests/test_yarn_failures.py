"""What goes wrong on a YARN cluster, each on the test ResourceManager: the job still ends as it should."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from wps_gateway.jobs import request_dismiss
from wps_gateway.store.db import Store
from wps_gateway.store.models import JobStatus, TaskAttempt

from .conftest import close_gateway, gateway_environ
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
from .yarn_support import start_rm, yarn_environ, yarn_gateway

pytestmark = pytest.mark.slow
SUCCEEDED = "ProcessSucceeded"


@pytest.mark.parametrize("recover", [True, False], ids=["with-recovery", "state-lost"])
def test_a_resource_manager_restart_mid_job(tmp_path, sample_data, yarn_rm, recover):
    """With its state store the RM keeps the applications and they carry on; without, they are rerun."""
    gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm)
    try:
        job_id = submit_sleepy(gateway, [1, 2, 3], seconds=3)
        wait_for(lambda: len(running(gateway, job_id)) == 3, 30)
        yarn_rm.restart(recover=recover, downtime=1.0)
        finished_ok(gateway, job_id)
        squares = [a for a in attempts_of(gateway, job_id) if ".square." in a.backend_task_id]
        if recover:
            assert all(a.number == 1 and a.status == "succeeded" for a in squares), [
                (a.backend_task_id, a.status, a.reason, a.message) for a in squares]
        else:
            lost = [a for a in squares if a.number == 1]
            assert len(lost) == 3 and all(a.status == "lost" and a.reason == "application_unknown" for a in lost)
            assert sorted(a.status for a in squares if a.number == 2) == ["succeeded"] * 3
    finally:
        close_gateway(gateway)


def test_a_resource_manager_failover_mid_job(tmp_path, sample_data):
    rm = start_rm(tmp_path / "yarn", standby=True)
    gateway = yarn_gateway(tmp_path / "var", sample_data, rm)
    try:
        job_id = submit_sleepy(gateway, [1, 2, 3], seconds=3)
        wait_for(lambda: len(running(gateway, job_id)) == 3, 30)
        new_active = rm.fail_over()
        finished_ok(gateway, job_id)
        assert all(a.number == 1 for a in attempts_of(gateway, job_id))
        assert gateway.runner.dispatcher.backend.rm_http.current == new_active.url
        assert new_active.requests["POST /ws/v1/cluster/apps"] >= 1  # the total step went to the new one
    finally:
        close_gateway(gateway)
        rm.stop()


def test_an_application_killed_from_outside_is_retried(tmp_path, sample_data, yarn_rm):
    gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm)
    try:
        job_id = submit_sleepy(gateway, [5], seconds=10)
        wait_for(lambda: len(running(gateway, job_id)) == 1, 30)
        (attempt,) = running(gateway, job_id)
        killed = httpx.put(f"{yarn_rm.url}/ws/v1/cluster/apps/{attempt.sandbox}/state?user.name=ops",
                           json={"state": "KILLED"})
        assert killed.status_code == 202
        wait_for(lambda: any(a.status == "failed" for a in attempts_of(gateway, job_id)), 30)
        first = attempts_of(gateway, job_id)[0]
        assert first.reason == "killed_externally" and "killed by user ops" in first.message
        wait_for(lambda: len(attempts_of(gateway, job_id)) == 2, 30)  # the rerun
        request_dismiss(gateway.store, job_id)  # which need not sleep through
        gateway.runner.wake()
        wait_for(lambda: job_of(gateway, job_id).status == JobStatus.DISMISSED, 30)
        assert [a.number for a in attempts_of(gateway, job_id)] == [1, 2]
    finally:
        close_gateway(gateway)


def test_a_nodemanager_lost_mid_job_fails_its_applications_which_are_rerun(tmp_path, sample_data, yarn_rm):
    gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm)
    try:
        job_id = submit_sleepy(gateway, [1, 2, 3, 4], seconds=6)
        wait_for(lambda: len(running(gateway, job_id)) == 4, 30)
        victim = running(gateway, job_id)[0].agent  # the node of an ApplicationMaster
        index = next(n.index for n in yarn_rm.cluster.nodes if n.node_id == victim)
        yarn_rm.cluster.lose_node(index)
        finished_ok(gateway, job_id)
        attempts = attempts_of(gateway, job_id)
        lost = [a for a in attempts if a.agent == victim and a.number == 1]
        assert lost and all(a.status == "lost" and a.reason == "node_lost" for a in lost)
        assert "*lost* node" in lost[0].message
        reruns = [a for a in attempts if a.number == 2]
        assert reruns and all(a.agent != victim and a.status == "succeeded" for a in reruns)
    finally:
        close_gateway(gateway)


def test_an_am_that_cannot_register_fails_the_attempts_and_the_job_says_why(tmp_path, sample_data, impatient_rm):
    gateway = yarn_gateway(tmp_path / "var", sample_data, impatient_rm, YARN_AM_COMMAND="sleep 60 # {command}")
    try:
        job = final(gateway, submit_sleepy(gateway, [1], seconds=0))
        assert job.status == JobStatus.FAILED
        assert "failed (am_expired)" in job.message and "timed out" in job.message
    finally:
        close_gateway(gateway)


def test_dismissing_a_job_kills_its_applications(tmp_path, sample_data, yarn_rm):
    gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm)
    try:
        dismiss_once_running(gateway)
        assert {a.state for a in yarn_rm.cluster.list_apps()} == {"KILLED"}
        wait_for(lambda: not any(n.containers for n in yarn_rm.cluster.nodes), 10)
    finally:
        close_gateway(gateway)


def test_sigkill_of_the_gateway_mid_job_adopts_the_running_applications(tmp_path, sample_data, yarn_rm):
    data_dir = tmp_path / "var"
    process = GatewayProcess(data_dir, sample_data, **yarn_environ(yarn_rm)).start()
    store = Store(f"sqlite:///{data_dir / 'gateway.db'}")
    try:
        status = process.submit("numbers=1;numbers=2;numbers=3;seconds=4")
        wait_for(lambda: len([a for a in yarn_rm.cluster.list_apps() if a.state == "RUNNING"]) == 3, 30)
        process.kill()
        process.start()
        doc = wait_final(process, status)
        assert doc.find(".//{http://www.opengis.net/wps/1.0.0}" + SUCCEEDED) is not None
        names = Counter(a.name for a in yarn_rm.cluster.list_apps())
        assert len(names) == 4 and set(names.values()) == {1}, names  # 3 squares and the total, each submitted once
        with store.session() as session:
            assert all(a.number == 1 for a in session.scalars(select(TaskAttempt)).all())
    finally:
        process.stop()
        store.dispose()


@pytest.mark.parametrize(("setting", "value", "says"), [
    ("YARN_RESOURCE_MANAGER", "", "resource_manager (YARN_RESOURCE_MANAGER) is required"),
    ("YARN_AM_JAR", "/opt/hadoop/ds.jar", "am_jar must be an hdfs:// or file:// URL"),
    ("YARN_MAX_PENDING", "many", "max_pending must be a number"),
    ("YARN_AUTH", "kerberos", "httpx-gssapi"),
])
def test_a_bad_setting_is_one_clear_line_and_exit_2(tmp_path, sample_data, yarn_rm, setting, value, says):
    if setting == "YARN_AUTH" and _has_gssapi():
        pytest.skip("httpx-gssapi is installed here: auth = kerberos is a good setting")
    env = {**gateway_environ(tmp_path / "var", sample_data, "http://127.0.0.1:1/wps"), **yarn_environ(yarn_rm),
           setting: value, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "wps_gateway.cli", "--log-level", "ERROR", "dispatch"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wps-gateway: yarn backend: ") and says in lines[0], lines


def _has_gssapi() -> bool:
    try:
        import httpx_gssapi  # noqa: F401
    except ImportError:
        return False
    return True
