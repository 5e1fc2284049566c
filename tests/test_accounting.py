"""Accounting: usage recorded per attempt, summed per job, reported by user, group, process, backend and period.

The report tests run on SQLite and on a real PostgreSQL server: the figures
must be the same to the last digit the report shows.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mesos_backend import TaskEvent, TaskState, Usage
from processes.common.usage import read_report, write_report
from wps_gateway.accounting.query import (
    FIGURES,
    ReportError,
    ReportQuery,
    parse_query,
    run_report,
)
from wps_gateway.accounting.usage import record_usage, usage_report_path
from wps_gateway.auth.identity import NOBODY, OPERATOR, USER, Identity
from wps_gateway.auth.visibility import visible_clause
from wps_gateway.cli import main as cli
from wps_gateway.store.db import Store
from wps_gateway.store.models import Job, JobUsage, Task, TaskAttempt

from .accounting_support import A, J, add_jobs
from .conftest import REPO, gateway_environ
from .jobs_support import attempts_of, job_of, submit_sleepy, wait_for

WEIGHTS = {"cpu": 1.0, "mem": 0.5, "gpu": 2.0}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


DATASET = [
    J("alice", at("2026-01-10T10:00:00"), "g1", "proc-a", "successful", tasks=2, attempts=[
        A(0, "failed", cpus=2, mem_mb=2048, wall=1800, cpu_used=900, peak_mb=1024),
        A(0, "succeeded", cpus=2, mem_mb=2048, wall=3600, cpu_used=7000, peak_mb=1536),
        A(1, "succeeded", cpus=1, mem_mb=1024, gpus=1, wall=7200, cpu_used=3600, peak_mb=512)]),
    J("bob", at("2026-01-31T23:59:59"), "g2", "proc-b", "failed", attempts=[
        A(0, "failed", cpus=1, mem_mb=512, wall=600, cpu_used=None, peak_mb=None, backend="mesos")]),
    J("alice", at("2026-02-01T00:00:00"), "g1", "proc-b", "successful", attempts=[
        A(0, "succeeded", cpus=4, mem_mb=4096, wall=900, alloc_cpu=4000, alloc_mem=2_000_000, backend="yarn")]),
    J("carol", at("2026-02-15T08:00:00"), "g1", "proc-a", "accepted", tasks=3),
    J("bob", at("2026-03-02T12:00:00"), "g2", "proc-a", "running", attempts=[A(0, "running")]),
]
GB_HOUR = 1024 * 3600.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'gateway.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres_url")
    store = Store(url)
    store.upgrade()
    add_jobs(store, DATASET)
    yield store
    store.dispose()


def report(store: Store, visible=None, **query) -> dict:
    """{group key tuple: {figure: value}} of a report over the jobs ``visible`` says (None: all)."""
    result = run_report(store, ReportQuery(**query), WEIGHTS, visible)
    keys = result.query.group_by
    return {tuple(r[k] for k in keys): {f: r[f] for f in FIGURES} for r in result.records()}


def test_figures_per_user_and_month(store):
    rows = report(store, group_by=("user", "month"))
    assert list(rows) == [("alice", "2026-01"), ("alice", "2026-02"), ("bob", "2026-01"), ("bob", "2026-03"),
                          ("carol", "2026-02")]
    jan = rows[("alice", "2026-01")]
    assert {k: jan[k] for k in ("jobs", "jobs_successful", "jobs_failed", "tasks", "attempts", "attempts_succeeded",
                                "attempts_failed", "attempts_retried", "attempts_measured")} == {
        "jobs": 1, "jobs_successful": 1, "jobs_failed": 0, "tasks": 2, "attempts": 3, "attempts_succeeded": 2,
        "attempts_failed": 1, "attempts_retried": 1, "attempts_measured": 3}
    assert jan["wall_hours"] == pytest.approx(3.5)
    assert jan["cpu_hours_allocated"] == pytest.approx(5.0)  # 2 cpus x 0.5 h + 2 x 1 h + 1 x 2 h
    assert jan["cpu_hours_used"] == pytest.approx(11500 / 3600)
    assert jan["mem_gb_hours_allocated"] == pytest.approx(5.0)  # 2 GB x 1.5 h + 1 GB x 2 h
    assert jan["mem_gb_hours_peak"] == pytest.approx(3.0)  # 1 GB x 0.5 h + 1.5 GB x 1 h + 0.5 GB x 2 h
    assert jan["gpu_hours"] == pytest.approx(2.0)
    assert jan["billing"] == pytest.approx(5.0 + 0.5 * 5.0 + 2.0 * 2.0)
    # The failed first attempt, apart: what retries cost.
    assert jan["unsuccessful_wall_hours"] == pytest.approx(0.5)
    assert jan["unsuccessful_cpu_hours_allocated"] == pytest.approx(1.0)
    assert jan["unsuccessful_cpu_hours_used"] == pytest.approx(0.25)
    assert jan["unsuccessful_mem_gb_hours_allocated"] == pytest.approx(1.0)
    assert jan["unsuccessful_billing"] == pytest.approx(1.5)

    bob = rows[("bob", "2026-01")]
    assert (bob["jobs_failed"], bob["attempts_failed"], bob["attempts_measured"]) == (1, 1, 0)
    assert bob["cpu_hours_used"] == 0 and bob["mem_gb_hours_peak"] == 0  # not measured: nothing invented
    one_cpu_half_gb = 600 / 3600 * (1 + 0.5 * 0.5)
    assert bob["billing"] == pytest.approx(bob["unsuccessful_billing"]) == pytest.approx(one_cpu_half_gb)

    feb = rows[("alice", "2026-02")]  # YARN charged 4000 vcore-seconds and 2,000,000 MB-seconds: those count
    assert feb["cpu_hours_allocated"] == pytest.approx(4000 / 3600)
    assert feb["mem_gb_hours_allocated"] == pytest.approx(2_000_000 / GB_HOUR)

    carol, running = rows[("carol", "2026-02")], rows[("bob", "2026-03")]
    assert (carol["jobs_accepted"], carol["tasks"], carol["attempts"], carol["billing"]) == (1, 3, 0, 0)
    assert (running["jobs_running"], running["attempts"]) == (1, 0)  # a running attempt counts once it ends


def test_totals_add_up_and_every_grouping_agrees(store):
    whole = run_report(store, ReportQuery(), WEIGHTS).total
    assert whole["jobs"] == 5 and whole["tasks"] == 8 and whole["attempts"] == 5
    for group_by in (("user",), ("group",), ("process",), ("backend",), ("day",), ("week",), ("month",),
                     ("user", "process", "month")):
        total = run_report(store, ReportQuery(group_by=group_by), WEIGHTS).total
        assert total == pytest.approx(whole), group_by


def test_group_keys(store):
    assert list(report(store, group_by=("backend",))) == [("",), ("local",), ("mesos",), ("yarn",)]
    assert list(report(store, group_by=("week",))) == [("2026-W02",), ("2026-W05",), ("2026-W07",), ("2026-W10",)]
    assert list(report(store, group_by=("day",)))[:2] == [("2026-01-10",), ("2026-01-31",)]
    assert list(report(store, group_by=("group", "process"))) == [("g1", "proc-a"), ("g1", "proc-b"),
                                                                  ("g2", "proc-a"), ("g2", "proc-b")]


def query(**params: str) -> ReportQuery:
    return parse_query(lambda name: [params[name]] if name in params else [])


def test_periods_and_filters(store):
    def jobs(**params: str) -> int:
        return run_report(store, query(**params), WEIGHTS).total["jobs"]

    assert jobs(to="2026-01") == 2  # the whole of January, its last second included
    assert jobs(to="2026-01-31T23:59:59Z") == 2 and jobs(to="2026-01-31T23:59:58Z") == 1
    assert jobs(to="2026-02-01T00:59:59+01:00") == 2  # offsets are honoured
    assert jobs(**{"from": "2026-02"}) == 3 and jobs(**{"from": "2026-02-01", "to": "2026-02-15"}) == 2
    assert jobs(user="alice,carol") == 3 and jobs(group="g2") == 2 and jobs(process="proc-b") == 2
    assert jobs(backend="mesos") == 1 and jobs(backend="local,yarn") == 2 and jobs(status="failed") == 1
    only = run_report(store, query(user="alice", group_by="process"), WEIGHTS)
    assert [r["process"] for r in only.records()] == ["proc-a", "proc-b"]
    job_id = store.sessions().scalars(select(Job.id).where(Job.user == "carol")).one()
    assert run_report(store, query(job=job_id), WEIGHTS).total["tasks"] == 3


def test_who_sees_what(store):
    """A report covers the jobs the caller could list: the tenancy rule of the job listings."""
    alice = Identity(user="alice", groups=("g1",), roles=frozenset({USER}), group="g1", authenticated=True)
    operator = Identity(user="olga", groups=("ops",), roles=frozenset({USER, OPERATOR}), authenticated=True)
    anonymous = NOBODY  # auth mode none: everybody sees everything, as before
    stranger = Identity()  # another auth mode, no credentials: nothing
    users = lambda visible: {k[0] for k in report(store, visible, group_by=("user",))}  # noqa: E731
    assert users(visible_clause(alice, False)) == {"alice"}
    assert users(visible_clause(alice, True)) == {"alice", "carol"}
    assert visible_clause(operator, False) is None and visible_clause(anonymous, False) is None
    assert users(visible_clause(stranger, False)) == users(visible_clause(stranger, True)) == set()
    assert users(visible_clause(operator, False)) == {"alice", "bob", "carol"}
    assert report(store, visible_clause(alice, False), users=("bob",)) == {(): {f: 0 for f in FIGURES}}


@pytest.mark.parametrize(("params", "parameter", "text"), [
    ({"from": "2026-13"}, "from", "'2026-13' is not a month"),
    ({"to": "31/01/2026"}, "to", "is not a month (YYYY-MM), a date"),
    ({"to": "2026-01-31T10:00"}, "to", "with its time zone"),
    ({"from": "2026-02", "to": "2026-01"}, "from", "from (2026-02) is after to (2026-01)"),
    ({"group_by": "user,hour"}, "group_by", "unknown 'hour'; choose from user, group, process, backend, day"),
    ({"status": "done"}, "status", "unknown 'done'"),
])
def test_bad_parameters_say_what_is_wrong(params, parameter, text):
    with pytest.raises(ReportError) as caught:
        query(**params)
    assert caught.value.parameter == parameter and text in str(caught.value)


# -- what tasks report, and what the dispatcher records -----------------------------------------------

def run_processor_task(tmp_path: Path, document: dict, step: str = "classify") -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "WPS_TASK": json.dumps(document)}
    return subprocess.run([sys.executable, "-m", "processes.urban_footprint.task", step], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def task_document(tmp_path: Path, items: list[str], attempt: str = "job.classify.0.1") -> dict:
    for name in ("steps/classify", "outputs"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    return {"job_id": "job", "process_id": "urban-footprint", "step": "classify", "index": 0, "count": 1,
            "items": items, "inputs": {"tiles": items}, "step_dir": str(tmp_path / "steps" / "classify"),
            "dep_dirs": {}, "outputs_dir": str(tmp_path / "outputs"), "usage_dir": str(tmp_path / "usage"),
            "attempt": attempt}


def test_the_task_runner_reports_its_own_usage_even_when_it_fails(tmp_path, scenes):
    done = run_processor_task(tmp_path, task_document(tmp_path, [scenes[0].as_uri()]))
    assert done.returncode == 0, done.stderr
    report = read_report(tmp_path / "usage" / "job.classify.0.1.json", "job.classify.0.1")
    assert report is not None and report["cpu_seconds"] > 0 and report["wall_seconds"] > 0
    assert 5 < report["mem_peak_mb"] < 2048  # a Python task reading a small GeoTIFF, not the gateway's size

    missing = (tmp_path / "no-such.tif").as_uri()
    failed = run_processor_task(tmp_path, task_document(tmp_path, [missing], attempt="job.classify.0.2"))
    assert failed.returncode == 1
    assert "no-such.tif" in failed.stderr.strip().splitlines()[-1]  # the reason stays the last line
    assert read_report(tmp_path / "usage" / "job.classify.0.2.json", "job.classify.0.2")["cpu_seconds"] > 0


def test_a_usage_report_is_read_only_when_it_is_sound(tmp_path):
    path = tmp_path / "a.1.json"
    write_report(path, "a.1")
    assert set(read_report(path, "a.1")) == {"cpu_seconds", "mem_peak_mb", "wall_seconds"}
    assert read_report(path, "a.2") is None  # another attempt's
    link = tmp_path / "link.json"
    link.symlink_to(path)
    assert read_report(link, "a.1") is None
    for text in ('{"attempt": "a.1", "cpu_seconds": -1, "mem_peak_mb": "9", "wall_seconds": 1e300}',
                 "not json", "[" * 5000, '{"attempt": "a.1"}' + " " * 5000):
        path.write_text(text)
        assert not read_report(path, "a.1")
    assert read_report(tmp_path / "absent.json", "a.1") is None


def test_an_engine_without_cpu_figures_gets_the_tasks_report(tmp_path):
    """As on Mesos: the event has the wall time only; cpu and memory come from the task's report."""
    store = Store(f"sqlite:///{tmp_path / 'gateway.db'}")
    store.upgrade()
    jobs_dir = tmp_path / "jobs"
    (job_id,) = add_jobs(store, [J("alice", at("2026-01-10T10:00:00"), attempts=[A(0, "running", backend="mesos")])])
    attempt_id = f"{job_id}.s.0.1"
    path = usage_report_path(jobs_dir, job_id, attempt_id)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"attempt": attempt_id, "cpu_seconds": 42.5, "mem_peak_mb": 300, "wall_seconds": 99}))
    with store.session() as session:
        attempt = session.scalars(select(TaskAttempt).where(TaskAttempt.backend_task_id == attempt_id)).one()
        attempt.status = "succeeded"
        record_usage(session, attempt, TaskEvent(attempt_id, TaskState.FINISHED, 0, usage=Usage(wall_seconds=60.0)),
                     jobs_dir)
    with store.session() as session:
        attempt = session.scalars(select(TaskAttempt).where(TaskAttempt.backend_task_id == attempt_id)).one()
        assert (attempt.cpu_seconds, attempt.mem_peak_mb, attempt.wall_seconds) == (42.5, 300, 60.0)
        assert attempt.usage_source == "task"
        usage = session.get(JobUsage, job_id)
        assert (usage.backend, usage.attempts, usage.cpu_used_seconds, usage.cpu_alloc_seconds) == ("mesos", 1, 42.5,
                                                                                                    60.0)
    store.dispose()


# -- over HTTP and the command line --------------------------------------------------------------------

def test_a_real_job_with_retries_in_every_format(gateway):
    job_id = submit_sleepy(gateway, [2, 3], fail_first="true")
    wait_for(lambda: job_of(gateway, job_id).status == "successful", 60, "the job to succeed")
    attempts = attempts_of(gateway, job_id)
    assert [a.status for a in attempts].count("failed") == 2 and len(attempts) == 5
    assert all(a.cpu_seconds is not None and a.wall_seconds and a.usage_source == "engine" for a in attempts)

    doc = gateway.client.get("/accounting", {"group_by": "process,backend"}).json
    (row,) = doc["rows"]
    assert (row["process"], row["backend"], row["jobs_successful"], row["tasks"]) == ("sleepy-squares", "local", 1, 3)
    assert (row["attempts"], row["attempts_succeeded"], row["attempts_failed"], row["attempts_retried"]) == (5, 3, 2, 2)
    assert 0 < row["unsuccessful_cpu_hours_allocated"] < row["cpu_hours_allocated"]
    wall = sum(a.wall_seconds for a in attempts) / 3600
    assert row["wall_hours"] == pytest.approx(wall, abs=1e-6)
    assert row["cpu_hours_allocated"] == pytest.approx(sum(a.cpus * a.wall_seconds for a in attempts) / 3600, abs=1e-6)
    assert doc["billing_weights"] == {"cpu": 1.0} and row["billing"] == row["cpu_hours_allocated"]
    assert doc["total"]["attempts"] == 5 and doc["group_by"] == ["process", "backend"]

    status = gateway.client.get(f"/jobs/{job_id}").json
    assert status["usage"]["attempts_failed"] == 2 and status["usage"]["wall_hours"] == row["wall_hours"]
    (usage_link,) = [x for x in status["links"] if "/accounting?job=" in x["href"]]
    assert gateway.client.get(usage_link["href"].replace("http://localhost", "")).json["total"]["attempts"] == 5
    assert "<h2>Usage</h2>" in gateway.client.get(f"/jobs/{job_id}?f=html").text

    text = gateway.client.get("/accounting", {"group_by": "user"}, headers={"Accept": "text/csv"})
    assert text.content_type == "text/csv"
    (line,) = list(csv.DictReader(io.StringIO(text.text)))
    assert (line["user"], line["attempts"], line["attempts_failed"]) == ("anonymous", "5", "2")
    assert gateway.client.get("/accounting", {"f": "csv"}).content_type == "text/csv"
    page = gateway.client.get("/accounting", headers={"Accept": "text/html"})
    assert page.content_type == "text/html" and page.text.count("<svg") == 3 and "<script" not in page.text
    landing = gateway.client.get("/").json
    assert any(x["href"].endswith("/accounting?f=html") for x in landing["links"])


@pytest.mark.parametrize("params", [{"from": "2026-1"}, {"group_by": "hour"}, {"from": "2026-02", "to": "2026-01"},
                                    {"f": "xml"}, {"from": ["2026-01", "2026-02"]}])
def test_bad_requests_get_a_problem_document(gateway, params):
    response = gateway.client.get("/accounting", params, expect_errors=True)
    assert response.status_int == 400 and response.content_type == "application/problem+json"
    assert response.json["detail"] and response.json["title"] == "Invalid parameter"


def test_report_on_the_command_line(tmp_path, sample_data, monkeypatch, capsys):
    for key, value in gateway_environ(tmp_path / "var", sample_data, "http://localhost/wps").items():
        monkeypatch.setenv(key, value)
    assert cli(["db", "upgrade"]) == 0
    store = Store(f"sqlite:///{tmp_path / 'var' / 'gateway.db'}")
    add_jobs(store, DATASET)
    store.dispose()
    capsys.readouterr()
    assert cli(["report", "--group-by", "user", "--group-by", "month", "--to", "2026-01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["user", "month", "jobs", "ok"]
    assert [line.split()[:3] for line in lines[2:]] == [["alice", "2026-01", "1"], ["bob", "2026-01", "1"],
                                                       ["total", "2", "1"]]
    assert cli(["report", "--csv", "--process", "proc-b"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and rows[0]["jobs"] == "2"
    assert cli(["report", "--from", "yesterday"]) == 2
    assert "from: 'yesterday' is not a month" in capsys.readouterr().err
    monkeypatch.setenv("ACCOUNTING_BILLING_WEIGHTS", "cpu:1, disk:3")
    assert cli(["report"]) == 2
    assert "billing_weights: unknown resource 'disk'" in capsys.readouterr().err


def shown_job(gateway, monkeypatch, capsys, sample_data, **inputs: str) -> str:
    """What ``wps-gateway jobs show`` prints for a successful one-square job of the sleepy processor."""
    job_id = submit_sleepy(gateway, [4], **inputs)
    wait_for(lambda: job_of(gateway, job_id).status == "successful", 60, "the job to succeed")
    for key, value in gateway_environ(gateway.settings.data_dir, sample_data, "http://localhost/wps").items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    assert cli(["jobs", "show", job_id]) == 0
    return capsys.readouterr().out


def test_jobs_show_gives_each_attempts_usage(gateway, monkeypatch, capsys, sample_data):
    out = shown_job(gateway, monkeypatch, capsys, sample_data)
    document = json.loads(out[:out.index("\n}\n") + 2])
    assert document["usage"]["attempts"] == 2 and document["usage"]["cpu_hours_allocated"] > 0
    assert out.count("measured by the engine") == 2


def test_jobs_show_gives_each_attempts_history(gateway, monkeypatch, capsys, sample_data):
    out = shown_job(gateway, monkeypatch, capsys, sample_data, fail_first="true")  # the retry succeeds
    square = out[out.index("  square "):out.index("  total ")].splitlines()[1:]
    assert [line.split()[0] + " " + line.split()[2] for line in square] == [
        "#1 started", "#1 finished", "#2 started", "#2 finished"]
    assert square[1].endswith("told to fail the first time") and "pid " in square[0]


def test_migration_sums_the_attempts_that_ended_before_it(tmp_path):
    """0007 fills job_usage from existing attempts exactly as the dispatcher adds them one by one."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url)
    old.upgrade("0005")
    with old.engine.begin() as connection:  # rows as a gateway before accounting wrote them
        connection.exec_driver_sql(
            "INSERT INTO jobs (id, process_id, process_version, status, message, progress, user, \"group\", "
            "priority, protocol, inputs, response_form, descriptor, outputs, created, updated, cancel_requested, "
            "client, task_count) VALUES ('j1', 'p', '1', 'successful', '', 100, 'alice', '', 0, 'wps1', '{}', "
            "'{}', '{}', '{}', '2026-01-10 10:00:00', '2026-01-10 10:00:00', 0, '', 1)")
        connection.exec_driver_sql("INSERT INTO tasks (id, job_id, seq, step, \"index\", status, spec, attempts, "
                                   "max_attempts, message, created) VALUES ('j1.s.0', 'j1', 0, 's', 0, 'succeeded', "
                                   "'{}', 2, 2, '', '2026-01-10 10:00:00')")
        for number, status, wall in ((1, "lost", 100.0), (2, "succeeded", 300.0)):
            connection.exec_driver_sql(
                "INSERT INTO task_attempts (task_id, number, backend, backend_task_id, status, message, cpus, mem_mb, "
                "disk_mb, gpus, cpu_seconds, mem_peak_mb, wall_seconds, launched) VALUES ('j1.s.0', ?, 'local', ?, "
                "?, '', 2, 1024, 0, 0, 50, 200, ?, '2026-01-10 10:00:00')", (number, f"j1.s.0.{number}", status, wall))
    old.upgrade()
    with old.session() as session:
        usage = session.get(JobUsage, "j1")
        assert (usage.attempts, usage.attempts_succeeded, usage.attempts_lost, usage.attempts_retried) == (2, 1, 1, 1)
        assert (usage.wall_seconds, usage.cpu_alloc_seconds, usage.unsuccessful_cpu_alloc_seconds) == (400, 800, 200)
        assert usage.mem_peak_mb_seconds == 200 * 400 and session.get(Task, "j1.s.0").attempts == 2
    old.dispose()


def test_the_pages_time_chart_has_no_holes_across_a_new_year(gateway):
    add_jobs(gateway.store, [J("ann", at("2026-12-22T10:00:00"), attempts=[A()]),
                             J("ann", at("2027-01-12T10:00:00"), attempts=[A()])])
    page = gateway.client.get("/accounting", {"f": "html", "group_by": "week"}).text
    chart = page[page.index('id="chart-usage-over-time"'):page.index("</svg>")]
    labels = [w for w in ("2026-W52", "2026-W53", "2027-W01", "2027-W02") if f">{w}<" in chart]
    assert labels == ["2026-W52", "2026-W53", "2027-W01", "2027-W02"]  # 2026 has 53 ISO weeks
    assert page.count("<table") == 2 and "By week" in page
