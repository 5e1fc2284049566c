"""Protocol-neutral helpers for tests that watch jobs move through the store: wait for a condition
(never for a fixed time), wait for dispatcher turns, submit the test processor, read attempts."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from wps_gateway.jobs import request_dismiss
from wps_gateway.store.models import Job, Task, TaskAttempt

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


def submit_sleepy(gateway: Gateway, numbers: list[int], seconds: float) -> str:
    """An asynchronous WPS 1.0.0 Execute of the test processor: one task per number, then a sum."""
    inputs = ";".join(f"numbers={n}" for n in numbers) + f";seconds={seconds}"
    response = gateway.client.get("/wps", {
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "sleepy-squares",
        "DataInputs": inputs, "storeExecuteResponse": "true", "status": "true"})
    return response.body.decode().split("/wps/status/")[1].split(".xml")[0]


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


def dismiss_once_running(gateway: Gateway, tasks: int = 2) -> str:
    """Sleepy squares dismissed once all run; returns when every attempt is recorded killed."""
    job_id = submit_sleepy(gateway, list(range(1, tasks + 1)), seconds=30)
    wait_for(lambda: len(running(gateway, job_id)) == tasks, 30, "every task running")
    request_dismiss(gateway.store, job_id)
    gateway.runner.wake()
    wait_for(lambda: all(a.status == "killed" for a in attempts_of(gateway, job_id)), 20, "every attempt killed")
    return job_id
