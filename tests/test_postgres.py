"""The job store on a real PostgreSQL server: migrations, a whole job, one active dispatcher, the CLI."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from wps_gateway.cli import main as cli
from wps_gateway.runner import DispatcherRunner
from wps_gateway.store.backend_state import StoreBackendState
from wps_gateway.store.db import Store
from wps_gateway.store.models import Base, Job, JobStatus, Task, TaskStatus

from .conftest import build_gateway, close_gateway, gateway_environ
from .jobs_support import job_id_of, submit_sleepy, wait_for
from .servers.postgres import PASSWORD
from .test_wps1 import GEOTIFF, NS, poll_until_final

pytestmark = pytest.mark.postgres


def test_migrations_build_the_schema_and_match_the_models(postgres_url):
    store = Store(postgres_url)
    store.upgrade()
    store.upgrade()  # a second run is a no-op
    tables = set(inspect(store.engine).get_table_names())
    assert {"jobs", "tasks", "task_attempts", "attempt_events", "backend_state", "alembic_version"} <= tables
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    state = StoreBackendState(store, "mesos")
    state.put("framework_id", "F-1")
    assert state.get("framework_id") == "F-1"
    store.dispose()


def test_a_real_processor_runs_end_to_end_on_postgresql(tmp_path, sample_data, scenes, postgres_url, wps100_schema):
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_DATABASE_URL=postgres_url)
    try:
        assert gateway.store.engine.dialect.name == "postgresql"
        tiles = [s for s in scenes if "20240610" in s.name][:2]
        refs = ";".join(f"tiles=@xlink:href={p.as_uri()}" for p in tiles)
        response = gateway.client.get("/wps", {
            "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "urban-footprint",
            "DataInputs": refs, "storeExecuteResponse": "true", "status": "true"})
        status_url = response.xml.get("statusLocation")
        doc, seen = poll_until_final(gateway.client, status_url, wps100_schema, timeout=120)
        assert seen[-1] == "ProcessSucceeded", seen
        outputs = {o.findtext("ows:Identifier", namespaces=NS): o for o in doc.iterfind(".//wps:Output", NS)}
        assert outputs["footprint"].find("wps:Reference", NS).get("mimeType") == GEOTIFF
        assert float(outputs["total_area_km2"].findtext(".//wps:LiteralData", namespaces=NS)) > 0

        job_id = job_id_of(status_url)
        with gateway.store.session() as s:
            tasks = s.scalars(select(Task).where(Task.job_id == job_id)).all()
            assert [t.step for t in tasks] == ["classify", "classify", "statistics"]
            assert all(t.status == TaskStatus.SUCCEEDED for t in tasks)
            for task in tasks:
                (attempt,) = task.attempt_rows
                assert attempt.exit_code == 0 and attempt.wall_seconds > 0 and attempt.cpu_seconds is not None
    finally:
        close_gateway(gateway)


def test_one_dispatcher_is_active_and_a_standby_takes_over(tmp_path, sample_data, postgres_url):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, GATEWAY_DATABASE_URL=postgres_url)
    first = DispatcherRunner(gateway.settings, gateway.store)
    second = DispatcherRunner(gateway.settings, Store(postgres_url))
    try:
        first.start_thread()
        assert first.is_leader.wait(10)
        second.start_thread()
        wait_for(lambda: second.tries >= 2, what="the standby asking for the lock")
        assert not second.is_leader.is_set(), "two dispatchers active on one store"

        first.stop()
        assert second.is_leader.wait(15), "the standby did not take over"
        job_id = submit_sleepy(gateway, [3, 4], seconds=0)
        second.wake()

        def done() -> bool:
            with gateway.store.session() as s:
                return s.get(Job, job_id).status in JobStatus.FINAL

        wait_for(done)
        with gateway.store.session() as s:
            assert s.get(Job, job_id).status == JobStatus.SUCCESSFUL
    finally:
        first.stop()
        second.stop()
        second.store.dispose()
        close_gateway(gateway)


def test_cli_shows_jobs_and_tasks_and_never_the_password(tmp_path, sample_data, postgres_url, monkeypatch, capsys):
    for key, value in gateway_environ(tmp_path / "var", sample_data, "http://localhost/wps",
                                      GATEWAY_DATABASE_URL=postgres_url).items():
        monkeypatch.setenv(key, value)
    assert cli(["db", "upgrade"]) == 0
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_DATABASE_URL=postgres_url)
    try:
        job_id = submit_sleepy(gateway, [5, 6], seconds=0)
        wait_for(lambda: gateway.store.sessions().get(Job, job_id).status in JobStatus.FINAL)
    finally:
        close_gateway(gateway)
    capsys.readouterr()
    assert cli(["db", "upgrade"]) == 0
    assert cli(["jobs", "list"]) == 0
    assert cli(["jobs", "show", job_id]) == 0
    assert cli(["jobs", "show", "no-such-job"]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert PASSWORD not in text
    assert "postgresql+psycopg://gateway:***@127.0.0.1" in text
    assert f"{job_id}  successful" in text
    assert '"status": "successful"' in text
    assert text.count("succeeded") >= 3  # square, square, total
    assert "no job no-such-job" in text
