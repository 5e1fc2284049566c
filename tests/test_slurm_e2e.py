"""The shipped processors on a real Slurm cluster, through WPS 1.0.0 and OGC API - Processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import build_gateway, close_gateway
from .jobs_support import attempts_of, final, job_id_of, job_of, running, submit_sleepy, wait_for
from .mesos_support import assert_same_outputs, outputs_of, submit
from .ogcapi_support import poll_job
from .slurm_support import literals_as_numbers, ogcapi_outputs, slurm_gateway
from .test_ogcapi import refs, submit_async

pytestmark = pytest.mark.slow


def local_outputs(data_dir: Path, sample_data: Path, identifier: str, name: str, inputs: list[Path],
                  schema) -> dict[str, object]:
    """The reference: what the local backend gives for the same request."""
    local = build_gateway(data_dir, sample_data)
    try:
        return outputs_of(local, submit(local, identifier, name, inputs), schema)
    finally:
        close_gateway(local)


@pytest.mark.parametrize(("identifier", "name"), [("ndvi-mosaic", "scenes"), ("urban-footprint", "tiles")])
def test_each_processor_gives_the_same_outputs_on_slurm_as_on_the_local_backend(
        tmp_path, sample_data, scenes, wps100_schema, slurm_cluster, identifier, name):
    inputs = [s for s in scenes if "20240610" in s.name]
    expected = local_outputs(tmp_path / "local", sample_data, identifier, name, inputs, wps100_schema)
    slurm = slurm_gateway(tmp_path / "slurm-gw", sample_data, slurm_cluster)
    try:
        status_url = submit(slurm, identifier, name, inputs)  # WPS 1.0.0
        assert_same_outputs(outputs_of(slurm, status_url, wps100_schema), expected)
        ogc_job = submit_async(slurm.client, identifier, {"inputs": {name: refs(inputs)}, "response": "document"})
        info, _ = poll_job(slurm.client, ogc_job, timeout=120)
        assert info["status"] == "successful", info
        assert_same_outputs(literals_as_numbers(ogcapi_outputs(slurm, ogc_job)), literals_as_numbers(expected))

        for job_id in (job_id_of(status_url), ogc_job):
            attempts = attempts_of(slurm, job_id)
            assert attempts and all(a.status == "succeeded" and a.exit_code == 0 for a in attempts)
            assert {a.agent for a in attempts} == {"node1"}
            # Slurm ran one job per attempt, named by the attempt, and says it completed.
            jobs = dict(slurm_cluster.jobs().values())
            assert all(jobs.get(a.backend_task_id) == "COMPLETED" for a in attempts)
            # Accounting from sacct: every attempt has its cpu time and wall time.
            assert all(a.cpu_seconds is not None and a.wall_seconds is not None for a in attempts)
    finally:
        close_gateway(slurm)


def test_dismissing_a_job_cancels_its_slurm_jobs(tmp_path, sample_data, slurm_cluster):
    gateway = slurm_gateway(tmp_path / "var", sample_data, slurm_cluster)
    try:
        job_id = submit_async(gateway.client, "sleepy-squares", {"inputs": {"numbers": [1, 2], "seconds": 30}})
        wait_for(lambda: len(running(gateway, job_id)) == 2, 60)
        names = {a.backend_task_id for a in attempts_of(gateway, job_id)}
        assert slurm_cluster.active_jobs(names) == names
        gateway.client.delete(f"/jobs/{job_id}")
        wait_for(lambda: all(a.status == "killed" for a in attempts_of(gateway, job_id)), 30)
        assert job_of(gateway, job_id).status == "dismissed"
        assert not slurm_cluster.active_jobs(names)
        states = {state for name, state in slurm_cluster.jobs().values() if name in names}
        assert states == {"CANCELLED"}
    finally:
        close_gateway(gateway)


def test_failed_tasks_carry_the_exit_code_and_stderr_and_spend_their_retries(tmp_path, sample_data, slurm_cluster):
    gateway = slurm_gateway(tmp_path / "var", sample_data, slurm_cluster)
    try:
        job_id = submit_sleepy(gateway, [2], fail_step="square")
        job = final(gateway, job_id)
        assert job.status == "failed"
        assert "Step 'square' task 0 failed: exited with code 3: the square step was told to fail" in job.message
        assert "after 2 attempts" in job.message
        attempts = attempts_of(gateway, job_id)
        assert [a.exit_code for a in attempts] == [3, 3] and {a.status for a in attempts} == {"failed"}
    finally:
        close_gateway(gateway)


def test_sleepy_squares_run_in_parallel_on_the_node(tmp_path, sample_data, slurm_cluster):
    gateway = slurm_gateway(tmp_path / "var", sample_data, slurm_cluster)
    try:
        job_id = submit_sleepy(gateway, [1, 2, 3, 4], seconds=3)
        wait_for(lambda: len(running(gateway, job_id)) == 4, 60)
        wait_for(lambda: job_of(gateway, job_id).status == "successful", 60)
        assert (gateway.settings.jobs_dir / job_id / "outputs" / "total.txt").read_text() == "30"
    finally:
        close_gateway(gateway)
