"""What goes wrong on a Slurm cluster, each on the real test cluster: the job still ends as it should."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from mesos_backend import Resources, TaskSpec, TaskState
from wps_gateway.store.db import Store
from wps_gateway.store.models import JobStatus, Task, TaskAttempt

from .conftest import TEST_PROCESSORS, close_gateway
from .gateway_process import GatewayProcess, wait_final
from .jobs_support import attempts_of, final, finished_ok, job_id_of, running, submit_sleepy, wait_for
from .slurm_support import Events, slurm_backend, slurm_gateway

pytestmark = pytest.mark.slow


def test_a_controller_restarted_mid_job_loses_nothing(tmp_path, sample_data, slurm_cluster):
    gateway = slurm_gateway(tmp_path / "var", sample_data, slurm_cluster)
    try:
        job_id = submit_sleepy(gateway, [1, 2], seconds=8)
        wait_for(lambda: len(running(gateway, job_id)) == 2, 60)
        slurm_cluster.stop_controller()
        # The backend notices it cannot ask (no conclusion is drawn from that), then the controller comes back.
        wait_for(lambda: gateway.runner.dispatcher.backend.active_tasks() is None, 60)
        slurm_cluster.start_controller()
        finished_ok(gateway, job_id, 120)
        assert all(a.number == 1 and a.status == "succeeded" for a in attempts_of(gateway, job_id))
    finally:
        close_gateway(gateway)


def test_a_task_launched_while_the_controller_is_down_is_submitted_once_it_is_back(tmp_path, slurm_cluster):
    events = Events()
    backend = slurm_backend(slurm_cluster, tmp_path)
    backend.start(events.callback)
    try:
        slurm_cluster.stop_controller()
        try:
            backend.launch(TaskSpec("patient-1", ["true"], resources=Resources(cpus=1, mem=64)))
            wait_for(lambda: any(e.reason == "submit_delayed" for e in events.of("patient-1")), 60)
        finally:
            slurm_cluster.start_controller()
        assert events.terminal("patient-1").succeeded
        assert [name for name, _ in slurm_cluster.jobs().values()].count("patient-1") == 1
        assert not [e for e in events.of("patient-1") if e.state is TaskState.FAILED]
    finally:
        backend.stop()


def test_a_node_daemon_killed_and_restarted_mid_job_loses_nothing(tmp_path, sample_data, slurm_cluster):
    gateway = slurm_gateway(tmp_path / "var", sample_data, slurm_cluster)
    try:
        job_id = submit_sleepy(gateway, [1, 2], seconds=6)
        wait_for(lambda: len(running(gateway, job_id)) == 2, 60)
        # Running for the controller is not yet running on the node: wait until slurmstepd opened the
        # output files (a launch request still in flight dies with slurmd, and Slurm then waits for
        # the job's time limit).
        wait_for(lambda: all(Path(a.sandbox, "stdout").exists() for a in running(gateway, job_id)), 60)
        slurm_cluster.kill_node_daemon()
        slurm_cluster.start_node()
        finished_ok(gateway, job_id, 120)
        attempts = attempts_of(gateway, job_id)
        # The job steps outlived slurmd and the restarted slurmd took them over: recovered, not rerun.
        assert all(a.number == 1 and a.status == "succeeded" for a in attempts), [
            (a.backend_task_id, a.status, a.message) for a in attempts]
    finally:
        close_gateway(gateway)


@pytest.mark.parametrize("taken_away_by", ["NODE_FAIL", "PREEMPTED"])
def test_tasks_the_cluster_takes_away_are_rerun_without_spending_a_retry(tmp_path, sample_data, slurm_cluster,
                                                                         taken_away_by):
    gateway = slurm_gateway(tmp_path / "var", sample_data, slurm_cluster)
    try:
        job_id = submit_sleepy(gateway, [1, 2], seconds=30)
        wait_for(lambda: len(running(gateway, job_id)) == 2, 60)
        if taken_away_by == "NODE_FAIL":  # an administrator marks the node down
            slurm_cluster.set_node_down("test: node failure")
        else:  # an urgent job wants the whole node: the scheduler preempts the batch partition's jobs
            slurm_cluster.run("sbatch", "--parsable", "--partition=urgent", "--exclusive", "--mem=64M",
                              "--output=/dev/null", "--job-name=urgent-work", "--wrap", "sleep 1")
        wait_for(lambda: len([a for a in attempts_of(gateway, job_id) if a.status == "lost"]) == 2, 60)
        slurm_cluster.resume_node()
        lost = [a for a in attempts_of(gateway, job_id) if a.status == "lost"]
        assert all(a.reason == "backend_restarted" and taken_away_by in a.message for a in lost)
        with gateway.store.session() as session:
            squares = session.scalars(select(Task).where(Task.job_id == job_id, Task.step == "square")).all()
            assert {t.max_attempts for t in squares} == {3}  # retries: 1, plus the one the cluster took away
        finished_ok(gateway, job_id, 120)
        assert (gateway.settings.jobs_dir / job_id / "outputs" / "total.txt").read_text() == "5"
    finally:
        slurm_cluster.resume_node()
        close_gateway(gateway)


def test_a_task_past_its_time_limit_ends_timeout_and_counts_as_failed(tmp_path, sample_data, slurm_cluster):
    processors = tmp_path / "processors" / "overtime"
    processors.mkdir(parents=True)
    (processors / "descriptor.yaml").write_text(yaml.safe_dump({
        "processDescription": {"id": "overtime", "version": "1.0.0", "title": "Runs past its time limit",
                               "outputs": {"done": {"title": "never written", "minOccurs": 0,
                                                    "schema": {"type": "string"}, "file": "done.txt"}}},
        "executionUnit": {"command": ["sh", "-c", "echo still working >&2; sleep 600", "sh"]},
        "workflow": {"steps": [{"id": "work", "resources": {"cpus": 1, "mem": 64}, "timeout": 5, "retries": 0}]},
    }))
    gateway = slurm_gateway(tmp_path / "var", sample_data, slurm_cluster,
                            GATEWAY_PROCESSORS_PATHS=f"{TEST_PROCESSORS},{processors.parent}")
    try:
        response = gateway.client.get("/wps", {"service": "WPS", "request": "Execute", "version": "1.0.0",
                                               "identifier": "overtime", "storeExecuteResponse": "true",
                                               "status": "true"})
        job_id = job_id_of(response.xml.get("statusLocation"))
        # Slurm's limits are whole minutes, and slurmctld checks them about every 30 s.
        job = final(gateway, job_id, 240)
        assert job.status == JobStatus.FAILED
        assert "Step 'work' task 0 failed: timed out and was killed" in job.message, job.message
        (attempt,) = attempts_of(gateway, job_id)
        assert attempt.status == "failed" and attempt.reason == "timeout"
        assert "TIMEOUT (TimeLimit)" in attempt.message and "last stderr line" in attempt.message
        states = {name: state for name, state in slurm_cluster.jobs().values()}
        assert states[attempt.backend_task_id] == "TIMEOUT"
    finally:
        close_gateway(gateway)


def test_a_gateway_killed_mid_job_adopts_its_running_slurm_jobs_when_it_comes_back(tmp_path, sample_data,
                                                                                   slurm_cluster):
    data_dir = tmp_path / "var"
    process = GatewayProcess(data_dir, sample_data, GATEWAY_BACKEND="slurm", SLURM_CONF=str(slurm_cluster.conf),
                             SLURM_POLL_INTERVAL="0.2").start()
    store = Store(f"sqlite:///{data_dir / 'gateway.db'}")
    try:
        status = process.submit("numbers=1;numbers=2;numbers=3;seconds=6")

        def submitted() -> set[str]:
            with store.session() as session:
                names = set(session.scalars(select(TaskAttempt.backend_task_id)).all())
            return slurm_cluster.active_jobs(names)

        wait_for(lambda: len(submitted()) == 3, 60)
        process.kill()
        process.start()
        doc = wait_final(process, status, timeout=120)
        assert doc.find(".//{http://www.opengis.net/wps/1.0.0}ProcessSucceeded") is not None
        with store.session() as session:
            attempts = session.scalars(select(TaskAttempt)).all()
            assert all(a.number == 1 for a in attempts), "a task that kept running in Slurm was submitted again"
            names = [a.backend_task_id for a in attempts]
        per_name = Counter(name for name, _ in slurm_cluster.jobs().values() if name in set(names))
        assert per_name and set(per_name.values()) == {1}, per_name
    finally:
        process.stop()
        store.dispose()
