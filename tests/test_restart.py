"""Killing the gateway (SIGKILL) loses nothing and redoes nothing: accepted and running jobs finish after a
restart, tasks that ran on are adopted, tasks that ended while nobody watched are taken as they ended."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from wps_gateway.store.db import Store
from wps_gateway.store.models import Job, JobStatus, Task, TaskAttempt

from .gateway_process import NS, GatewayProcess, active_and_standby, wait_final
from .jobs_support import job_id_of, runs_per_task

pytestmark = pytest.mark.slow


def attempts(store: Store, job_id: str, status: str | None = None) -> list[TaskAttempt]:
    with store.sessions() as s:
        query = select(TaskAttempt).join(Task).where(Task.job_id == job_id)
        if status:
            query = query.where(TaskAttempt.status == status)
        return list(s.scalars(query))


def assert_each_task_succeeded_once(store: Store, job_id: str) -> None:
    with store.sessions() as s:
        job = s.get(Job, job_id)
        assert job.status == JobStatus.SUCCESSFUL, job.message
        for task in s.scalars(select(Task).where(Task.job_id == job_id)):
            statuses = [a.status for a in task.attempt_rows]
            assert statuses.count("succeeded") == 1, (task.id, statuses)
            assert not {"launched", "running"} & set(statuses), (task.id, statuses)
            rows = task.attempt_rows
            for earlier, later in zip(rows, rows[1:], strict=False):
                assert earlier.finished <= later.launched, f"{task.id} ran twice at once"


def test_sigkill_while_tasks_run_then_restart_adopts_them(tmp_path, sample_data):
    data_dir = tmp_path / "var"
    first = GatewayProcess(data_dir, sample_data).start()
    store = Store(f"sqlite:///{data_dir / 'gateway.db'}")
    try:
        location = first.submit(";".join(f"numbers={n}" for n in range(1, 7)) + ";seconds=3")
        job_id = job_id_of(location)
        first.wait_until(lambda: attempts(store, job_id, "running"), 30, "a task running")
        running = {a.backend_task_id for a in attempts(store, job_id, "running")}
        first.kill()

        second = first.restarted().start()
        try:
            doc = wait_final(second, location)
        finally:
            second.stop()
        assert doc.find("wps:Status/wps:ProcessSucceeded", NS) is not None, etree.tostring(doc)
        total = doc.findtext(".//wps:Output/wps:Data/wps:LiteralData", namespaces=NS)
        assert int(total) == sum(n * n for n in range(1, 7))
        assert_each_task_succeeded_once(store, job_id)
        # What ran when the gateway died ran on and was adopted: one attempt each, never started again.
        adopted = [a for a in attempts(store, job_id) if a.backend_task_id in running]
        assert adopted and all(a.status == "succeeded" for a in adopted)
        assert set(runs_per_task(data_dir / "jobs", job_id).values()) == {1}
    finally:
        first.stop()
        store.dispose()


def test_tasks_that_end_while_the_gateway_is_down_are_not_run_again(tmp_path, sample_data):
    data_dir = tmp_path / "var"
    first = GatewayProcess(data_dir, sample_data).start()
    store = Store(f"sqlite:///{data_dir / 'gateway.db'}")
    try:
        location = first.submit("numbers=2;numbers=3;seconds=3")
        job_id = job_id_of(location)
        first.wait_until(lambda: len(attempts(store, job_id, "running")) == 2, 30, "both squares running")
        sandboxes = [Path(a.sandbox) for a in attempts(store, job_id, "running")]
        first.kill()
        # Both end while no gateway watches; their wrappers record how they ended.
        first.wait_until(lambda: all((s / "exit_status").exists() for s in sandboxes), 30, "the squares' ends")

        second = first.restarted().start()
        try:
            doc = wait_final(second, location)
        finally:
            second.stop()
        assert doc.findtext(".//wps:Output/wps:Data/wps:LiteralData", namespaces=NS) == "13"
        assert_each_task_succeeded_once(store, job_id)
        assert runs_per_task(data_dir / "jobs", job_id) == {"0": 1, "1": 1}
        ended_away = [a for a in attempts(store, job_id) if "ended unwatched; read from its sandbox" in a.message]
        assert len(ended_away) == 2 and all(a.status == "succeeded" and a.exit_code == 0 for a in ended_away)
    finally:
        first.stop()
        store.dispose()


def test_accepted_jobs_survive_a_sigkill_of_the_gateway(tmp_path, sample_data):
    data_dir = tmp_path / "var"
    accepting = GatewayProcess(data_dir, sample_data, GATEWAY_DISPATCHER="external").start()
    try:
        location = accepting.submit("numbers=3;numbers=4;seconds=0")
        doc = etree.fromstring(accepting.get(location))
        assert doc.find("wps:Status/wps:ProcessAccepted", NS) is not None
        accepting.kill()
        restarted = accepting.restarted(GATEWAY_DISPATCHER="embedded").start()
        try:
            final = wait_final(restarted, location)
        finally:
            restarted.stop()
        assert final.findtext(".//wps:Output/wps:Data/wps:LiteralData", namespaces=NS) == "25"
    finally:
        accepting.stop()


def test_a_second_dispatcher_stands_by_while_one_is_active(tmp_path, sample_data):
    first, second = active_and_standby(tmp_path / "var", sample_data)
    try:
        assert not second.logged("dispatcher active")
        first.stop()
        second.wait_until(lambda: second.logged("dispatcher active"), 60, "the standby taking over")
    finally:
        second.stop()
        first.stop()
