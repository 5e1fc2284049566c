"""The operator's pause switch: nothing new starts while paused, nothing queued is lost."""

from __future__ import annotations

from sqlalchemy import select

from wps_gateway.cli import main as cli
from wps_gateway.store.models import Job, JobStatus, TaskAttempt

from .conftest import build_gateway, close_gateway, gateway_environ
from .jobs_support import submit_sleepy, wait_for, wait_turns


def job_status(gateway, job_id: str) -> str:
    with gateway.store.session() as s:
        return s.get(Job, job_id).status


def attempt_states(gateway, job_id: str) -> list[str]:
    with gateway.store.session() as s:
        return sorted(a.status for a in s.scalars(select(TaskAttempt).join(TaskAttempt.task)).all()
                      if a.task.job_id == job_id)


def test_pause_holds_queued_tasks_and_resume_finishes_the_job(tmp_path, sample_data, monkeypatch, capsys):
    data_dir = tmp_path / "var"
    for key, value in gateway_environ(data_dir, sample_data, "http://localhost/wps").items():
        monkeypatch.setenv(key, value)
    # one square task at a time (each needs 0.5 cpu)
    gateway = build_gateway(data_dir, sample_data, LOCAL_CPUS="0.5")
    try:
        job_id = submit_sleepy(gateway, [1, 2, 3], seconds=2)
        wait_for(lambda: "running" in attempt_states(gateway, job_id))
        assert cli(["dispatching", "pause", "--reason", "storage maintenance"]) == 0
        assert "paused (storage maintenance)" in capsys.readouterr().out
        # the switch is seen on a dispatcher turn; on a busy machine a task may start before it is
        backend = gateway.runner.dispatcher.backend
        wait_for(lambda: backend.status()["paused"], what="the backend paused")
        started = len([s for s in attempt_states(gateway, job_id) if s in ("running", "succeeded")])
        assert started < 3, "every task ended before the pause was seen"

        # what runs finishes; what is queued behind it does not start, though the capacity is free
        wait_for(lambda: "running" not in attempt_states(gateway, job_id), what="the running task to end")
        wait_turns(gateway)
        states = attempt_states(gateway, job_id)
        assert states.count("succeeded") == started and states.count("launched") == 3 - started, states
        with gateway.store.session() as s:
            assert s.get(Job, job_id).status == JobStatus.RUNNING

        # a job submitted while paused is accepted and planned, but nothing of it runs
        second = submit_sleepy(gateway, [4], seconds=0)
        wait_for(lambda: job_status(gateway, second) == JobStatus.RUNNING, what="the second job planned")
        wait_turns(gateway)
        assert attempt_states(gateway, second) == []
        assert cli(["dispatching", "status"]) == 0
        assert "dispatching paused (storage maintenance); tasks queued 1" in capsys.readouterr().out

        assert cli(["dispatching", "resume"]) == 0
        assert "dispatching running" in capsys.readouterr().out

        def both_done() -> bool:
            with gateway.store.session() as s:
                return all(s.get(Job, j).status in JobStatus.FINAL for j in (job_id, second))

        wait_for(both_done, timeout=60)
        with gateway.store.session() as s:
            assert [s.get(Job, j).status for j in (job_id, second)] == [JobStatus.SUCCESSFUL] * 2
    finally:
        close_gateway(gateway)
