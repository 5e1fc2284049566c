"""Protocol-neutral helpers for tests that watch jobs move through the store: wait for a condition
(never for a fixed time), wait for dispatcher turns, submit the test processor, read attempts, wait for a job
to end, count the test processor's runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from wps_gateway.jobs import request_dismiss
from wps_gateway.store.models import Job, JobStatus, Task, TaskAttempt

from .conftest import Gateway


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout:g} s")
        time.sleep(0.05)


def wait_turns(gateway: Gateway, turns: int = 3, timeout: float = 30.0) -> None:
    """Let the dispatcher complete ``turns`` more turns: what it would have done by now, it has done."""
    assert gateway.runner is not None, "the gateway has no dispatcher"
    target = gateway.runner.dispatcher.turns + turns
    wait_for(lambda: gateway.runner.dispatcher.turns >= target, timeout, f"{turns} dispatcher turns")


def submit_sleepy(gateway: Gateway, numbers: list[int], seconds: float = 0, **inputs: object) -> str:
    """An asynchronous WPS 1.0.0 Execute of the test processor: one task per number, each pausing ``seconds``,
    then a sum; ``inputs`` are its others (``fail_runs=2``, ``fail_step="square"``...). Returns the job id."""
    data = ";".join(f"numbers={n}" for n in numbers) + "".join(
        f";{name}={value}" for name, value in {"seconds": seconds, **inputs}.items())
    response = gateway.client.get("/wps", {
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "sleepy-squares",
        "DataInputs": data, "storeExecuteResponse": "true", "status": "true"})
    return job_id_of(response.xml.get("statusLocation"))


def job_id_of(status_location: str) -> str:
    """The job id in a WPS 1.0.0 status location (``.../wps/status/<job id>.xml``)."""
    return status_location.rsplit("/", 1)[1].removesuffix(".xml")


def attempts_of(gateway: Gateway, job_id: str) -> list[TaskAttempt]:
    with gateway.store.session() as session:
        rows = session.scalars(select(TaskAttempt).join(Task).where(Task.job_id == job_id)
                               .order_by(TaskAttempt.id)).all()
        session.expunge_all()
        return list(rows)


def job_of(gateway: Gateway, job_id: str) -> Job:
    with gateway.store.session() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
        return job


def running(gateway: Gateway, job_id: str) -> list[TaskAttempt]:
    return [a for a in attempts_of(gateway, job_id) if a.status == "running"]


def final(gateway: Gateway, job_id: str, timeout: float = 60.0) -> Job:
    """The job once it has ended (successful, failed or dismissed)."""
    wait_for(lambda: job_of(gateway, job_id).status in JobStatus.FINAL, timeout, f"job {job_id} to end")
    return job_of(gateway, job_id)


def finished_ok(gateway: Gateway, job_id: str, timeout: float = 60.0) -> Job:
    """The job once it has ended, which it did successfully (its message otherwise)."""
    job = final(gateway, job_id, timeout)
    assert job.status == JobStatus.SUCCESSFUL, job.message
    return job


def runs_per_task(jobs_dir: Path, job_id: str) -> dict[str, int]:
    """How often each square task of the test processor really ran, by task index (it logs every run)."""
    log = jobs_dir / job_id / "steps" / "square" / "runs.log"
    lines = log.read_text().split() if log.exists() else []
    return {index: lines.count(index) for index in set(lines)}


def dismiss_once_running(gateway: Gateway, tasks: int = 2) -> str:
    """Sleepy squares dismissed once all run; returns when every attempt is recorded killed."""
    job_id = submit_sleepy(gateway, list(range(1, tasks + 1)), seconds=30)  # the longest sleepy-squares allows
    wait_for(lambda: len(running(gateway, job_id)) == tasks, 30, "every task running")
    request_dismiss(gateway.store, job_id)
    gateway.runner.wake()
    # up to the tasks' own end: a kill recorded later than that could not be told from their finishing
    wait_for(lambda: all(a.status == "killed" for a in attempts_of(gateway, job_id)), 30, "every attempt killed")
    return job_id
