"""The dispatcher's bookkeeping when the backend goes away under running tasks."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import undefer

from processes.common.taskenv import load_task
from processes.descriptor import load_descriptor_file
from wps_gateway.dispatcher import Dispatcher
from wps_gateway.planner import plan_job, task_environment
from wps_gateway.runner import DispatcherRunner, backend_for, dispatcher_options
from wps_gateway.store.models import Job, JobStatus, Task, TaskStatus

from .conftest import TEST_PROCESSORS, build_gateway, close_gateway
from .jobs_support import job_of, submit_sleepy, wait_for


def test_tasks_cut_short_by_a_stopping_backend_are_rerun_without_spending_retries(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        job_id = submit_sleepy(gateway, [2, 3], seconds=5)
        first = Dispatcher(gateway.store, backend_for(gateway.settings), dispatcher_options(gateway.settings))
        first.start()

        def running() -> bool:
            first.run_once()
            with gateway.store.session() as s:
                return s.scalars(select(Task).where(Task.status == TaskStatus.RUNNING)).first() is not None

        wait_for(running)
        first.paused = True
        first.backend.stop()  # reports the running attempts LOST (backend_stopped)

        def requeued() -> bool:
            first.run_once()
            with gateway.store.session() as s:
                return not s.scalars(select(Task).where(Task.status == TaskStatus.RUNNING)).all()

        wait_for(requeued)
        with gateway.store.session() as s:
            squares = s.scalars(select(Task).where(Task.job_id == job_id, Task.step == "square")).all()
            cut_short = [t for t in squares if t.attempts == 1]
            assert cut_short, "no attempt was cut short"
            for task in cut_short:
                assert task.status == TaskStatus.QUEUED
                assert task.max_attempts == 3  # retries: 1, plus the attempt the stop took away
                assert "backend_stopped" in task.message

        runner = DispatcherRunner(gateway.settings, gateway.store)
        runner.start_thread()
        try:
            def finished() -> bool:
                with gateway.store.session() as s:
                    return s.get(Job, job_id).status in JobStatus.FINAL

            # the squares now sleep 5 s again, once
            wait_for(finished, timeout=60)
            with gateway.store.session() as s:
                assert s.get(Job, job_id).status == JobStatus.SUCCESSFUL
        finally:
            runner.stop()
    finally:
        close_gateway(gateway)


def test_job_inputs_are_stored_once_and_large_task_documents_go_by_file(gateway):
    big = "x" * 200_000  # over the 128 KiB one environment string may hold (E2BIG)
    texts = [big, "small", "tiny"]
    response = gateway.client.post_json("/processes/text-length/execution", {"inputs": {"texts": texts}},
                                        headers={"Prefer": "respond-async"}, status=201)
    job_id = response.json["jobID"]
    wait_for(lambda: job_of(gateway, job_id).status in JobStatus.FINAL, timeout=60)
    job = job_of(gateway, job_id)
    assert job.status == JobStatus.SUCCESSFUL, job.message
    assert job.outputs["total"]["value"] == len(big) + 5 + 4
    with gateway.store.session() as s:
        tasks = s.scalars(select(Task).where(Task.job_id == job_id).options(undefer(Task.spec))).all()
        sizes = [len(json.dumps(t.spec)) for t in tasks]
    assert max(sizes) < len(big) + 4096  # only the task that holds the big text stores it (as its item)
    assert sum(sizes) < 2 * len(big)  # the job's inputs are not copied into every task
    # Too large for the environment with the job's inputs: the inputs are written once, for all tasks, and
    # only the task whose own part (its item) is still too large gets a document file of its own.
    folder = gateway.settings.jobs_dir / job_id / "tasks"
    assert sorted(p.name for p in folder.glob("*.json")) == [f"{job_id}.measure.0.json", "inputs.json"]
    assert json.loads((folder / "inputs.json").read_text()) == {"texts": texts}
    document = json.loads((folder / f"{job_id}.measure.0.json").read_text())
    assert document["inputs_file"] == str(folder / "inputs.json") and "inputs" not in document


def test_a_task_reads_the_job_inputs_from_the_shared_file_when_they_outgrow_the_environment(tmp_path):
    processor = load_descriptor_file(TEST_PROCESSORS / "text_length" / "descriptor.yaml")
    texts = [f"text number {i}" for i in range(5000)]  # about 100 KB of inputs, shared by 5,000 tasks
    inputs = {"texts": texts}
    planned = plan_job(processor, "job-1", inputs, tmp_path, max_tasks=10_000)
    environments = [task_environment(t.id, t.spec, processor, inputs, tmp_path, attempt=f"{t.id}.1")
                    for t in (planned[0], planned[4999])]
    for task, environment in zip((planned[0], planned[4999]), environments, strict=True):
        assert "WPS_TASK_FILE" not in environment and len(environment["WPS_TASK"]) < 1024
        loaded = load_task(environment)
        assert loaded.inputs == {"texts": texts} and list(loaded.items) == task.spec["task"]["items"]
        assert loaded.attempt == f"{task.id}.1"
    assert [p.name for p in (tmp_path / "job-1" / "tasks").iterdir()] == ["inputs.json"]
    small = {"texts": ["a", "b"]}
    (first, *_) = plan_job(processor, "job-2", small, tmp_path, max_tasks=10)
    document = json.loads(task_environment(first.id, first.spec, processor, small, tmp_path)["WPS_TASK"])
    assert document["inputs"] == small and "inputs_file" not in document  # small inputs travel inline


def test_a_task_no_machine_can_hold_fails_at_once_without_spending_retries(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, LOCAL_CPUS="0.25")  # a square needs 0.5 cpus
    try:
        job_id = submit_sleepy(gateway, [2], seconds=0)
        wait_for(lambda: job_of(gateway, job_id).status in JobStatus.FINAL)
        job = job_of(gateway, job_id)
        assert job.status == JobStatus.FAILED and "needs more than this machine offers" in job.message
        with gateway.store.session() as s:
            (task,) = s.scalars(select(Task).where(Task.job_id == job_id, Task.step == "square")).all()
            assert task.attempts == 1 and task.max_attempts == 2  # the retry it had was not spent on it
    finally:
        close_gateway(gateway)
