"""Task lists (mesos-batch) on the local backend: ``wps-gateway batch run``, the ``batch`` process over HTTP, and
what a bad task list gets.

``batch run`` is run as its own process, as an operator runs it; the task
lists are in the shape mesos-batch takes (valid TaskGroupInfo for Debian's
Mesos protos), and their tasks do real work on the sample rasters.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from mesos_backend.testing import codec, proto
from wps_gateway.batch.codec import TaskListError
from wps_gateway.batch.tasklist import read_task_list
from wps_gateway.store.models import JobStatus

from .batch_support import (
    batch_command,
    batch_run,
    environ,
    jobs_in,
    ndvi_tasks,
    task,
    task_list,
    tasks_of,
    write_list,
)
from .conftest import build_gateway, close_gateway
from .gateway_process import GatewayProcess
from .jobs_support import wait_for

OPERATOR, DEPLOYER, USER = "olga", "dora", "alice"
PROXY = {"REMOTE_ADDR": "127.0.0.1"}


def expected_ndvi(scene: Path) -> float:
    with rasterio.open(scene) as dataset:
        bands = dict(zip(dataset.descriptions, dataset.read().astype("float64"), strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.nanmean((bands["B08"] - bands["B04"]) / (bands["B08"] + bands["B04"])))


def test_a_task_list_runs_as_one_job_with_each_task_as_listed(tmp_path, sample_data, scenes):
    chosen = [s for s in scenes if "20240610" in s.name][:3]
    checks = task("environment", 'test "$GREETING" = hello && test -z "$GATEWAY_DATA_DIR"',
                  env={"GREETING": "hello"}, cpus=0.1, mem=16)
    argv = task("argv", "/bin/sh", shell=False, arguments=["sh", "-c", 'test "$1" = "two words"', "zero", "two words"])
    tasks = write_list(tmp_path / "tasks.json", *ndvi_tasks(chosen), checks, argv)
    if proto.available():  # what mesos-batch takes: a TaskGroupInfo as Mesos's own codec reads it
        codec.read_message("mesos.TaskGroupInfo", json.loads(tasks.read_text()))
    data = tmp_path / "var"
    done = batch_run(data, sample_data, tasks.as_uri())
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("accepted, 5 tasks")
    assert any("running" in line and "tasks succeeded" in line for line in lines[1:-1])
    assert "successful, 5/5 tasks succeeded" in lines[-2] and lines[-1].endswith("successful: Process succeeded")
    [job] = jobs_in(data)
    assert job.process_id == "batch" and job.status == JobStatus.SUCCESSFUL and job.protocol == "cli"
    steps = data / "jobs" / job.id / "steps" / "tasks"
    for scene in chosen:
        assert float((steps / f"{scene.stem}.txt").read_text()) == pytest.approx(expected_ndvi(scene), rel=1e-9)
    rows = tasks_of(data, job.id)
    assert [r.spec["task_list_id"] for r in rows] == ["ndvi-0", "ndvi-1", "ndvi-2", "environment", "argv"]
    assert rows[3].spec["resources"] == {"cpus": 0.1, "mem": 16.0, "disk": 0.0, "gpus": 0}
    assert all(a.status == "succeeded" for r in rows for a in r.attempt_rows)
    # The accounting report counts it like any job: its tasks and the cpu time they used.
    report = subprocess.run([sys.executable, "-m", "wps_gateway.cli", "report", "--csv", "--group-by", "process"],
                            env=environ(data, sample_data), capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    [row] = list(csv.DictReader(io.StringIO(report.stdout)))
    assert (row["process"], row["jobs_successful"], row["tasks"]) == ("batch", "1", "5")
    assert float(row["cpu_hours_used"]) > 0


def test_with_a_dispatcher_active_elsewhere_batch_run_stands_by_and_that_one_runs_the_job(tmp_path, sample_data):
    data = tmp_path / "var"
    running = GatewayProcess(data, sample_data, command="dispatch").start()
    try:
        running.wait_until(lambda: running.logged("dispatcher active"), 60, "the deployment's dispatcher active")
        tasks = write_list(tmp_path / "tasks.json", task("hello", "echo hello"))
        done = subprocess.run(batch_command(str(tasks)), env=running.env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        [job] = jobs_in(data)
        assert running.logged(f"job {job.id} successful")
    finally:
        running.stop()


def test_every_task_runs_to_its_end_and_the_exit_status_says_whether_all_succeeded(tmp_path, sample_data):
    flag = tmp_path / "slow-done"
    tasks = write_list(tmp_path / "tasks.json", task("slow", f"sleep 1 && touch {flag}"),
                       task("broken", "echo no >&2; exit 3"))
    done = batch_run(tmp_path / "var", sample_data, str(tasks))
    assert done.returncode == 1
    assert "failed: broken: exited with code 3: no" in done.stdout
    [job] = jobs_in(tmp_path / "var")
    assert job.status == JobStatus.FAILED and "'tasks' task 1 failed" in job.message
    assert flag.exists(), "the other task was not killed when one failed (as mesos-batch runs them)"
    assert [t.status for t in tasks_of(tmp_path / "var", job.id)] == ["succeeded", "failed"]


def test_kill_after_kills_a_task_that_runs_too_long(tmp_path, sample_data):
    tasks = write_list(tmp_path / "tasks.json", task("slow", "sleep 60"))
    done = batch_run(tmp_path / "var", sample_data, str(tasks), "--kill-after", "1secs")
    assert done.returncode == 1
    assert "failed: slow: timed out" in done.stdout
    [attempt] = tasks_of(tmp_path / "var", jobs_in(tmp_path / "var")[0].id)[0].attempt_rows
    assert attempt.reason == "timeout"


def test_ctrl_c_dismisses_the_job_and_kills_its_tasks(tmp_path, sample_data):
    marker = tmp_path / "pids"
    tasks = write_list(tmp_path / "tasks.json", task("long", f"echo $$ >> {marker}; exec sleep 60"),
                       task("longer", f"echo $$ >> {marker}; exec sleep 60"))
    process = subprocess.Popen(batch_command(str(tasks)), env=environ(tmp_path / "var", sample_data),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: marker.exists() and len(marker.read_text().split()) == 2, 60, "both tasks running")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, out + err
    assert "SIGINT: dismissing job" in err
    [job] = jobs_in(tmp_path / "var")
    assert job.status == JobStatus.DISMISSED
    for pid in map(int, marker.read_text().split()):
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid), 30, f"task {pid} gone")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


@pytest.mark.parametrize(("content", "field"), [
    ("{", "the task list is not valid JSON"),
    ('{"tasks": {}}', "tasks[0].name: is required"),
    ('{"tasks": []}', "tasks: at least one task is required"),
    (json.dumps(task_list({**task("a", "true"), "task_id": {}})), "tasks[0].task_id.value: is required"),
    (json.dumps(task_list(task("a", "true"), {**task("b", "true"), "command": {"value": 7}})),
     "tasks[1].command.value: expected a string, not a number"),
    (json.dumps(task_list({**task("a", "true"), "resources": []})),
     "tasks[0].resources: a cpus resource (more than zero) is required"),
    (json.dumps(task_list({**task("a", "true"), "resources": [
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 2}]}}]})),
     "tasks[0].resources[0].name: only the SCALAR resources"),
    (json.dumps(task_list(task("a", "true"), task("a", "false"))), "tasks[1].task_id.value: 'a' is the id of"),
    (json.dumps(task_list({**task("a", "true"), "executor": {"executor_id": {"value": "e"}}})),
     "tasks[0].executor: custom executors are not supported"),
    (json.dumps(task_list({**task("a", "true"), "command": {"value": "true", "environment": {"variables": [
        {"name": "TOKEN", "type": "SECRET", "secret": {"type": "REFERENCE"}}]}}})),
     "tasks[0].command.environment.variables[0].type: only VALUE variables"),
])
def test_a_bad_task_list_gets_one_line_naming_its_first_bad_field_and_nothing_is_submitted(
        tmp_path, sample_data, content, field):
    with pytest.raises(TaskListError) as caught:
        read_task_list(content)
    assert str(caught.value).startswith(field)
    if field.startswith("tasks[1].command"):  # one of them through the command line too
        done = batch_run(tmp_path / "var", sample_data, content)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.strip().splitlines() == [f"wps-gateway batch: {caught.value}"]
        database = tmp_path / "var" / "gateway.db"
        assert not database.exists() or not sqlite3.connect(database).execute(
            "select name from sqlite_master where name = 'jobs'").fetchall()


def test_bad_options_are_refused_before_anything_is_submitted(tmp_path, sample_data):
    tasks = write_list(tmp_path / "tasks.json", task("a", "true"))
    for args, message in [(["--kill-after", "0secs"], "--kill-after: '0secs' must be more than zero"),
                          (["--persistent-volume", "v1:64"], "persistent volumes need the mesos backend")]:
        done = batch_run(tmp_path / "var", sample_data, str(tasks), *args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
    assert not (tmp_path / "var" / "gateway.db").exists() or jobs_in(tmp_path / "var") == []


@pytest.mark.parametrize(("args", "message"), [
    (["--kill-after", "soon"], "is not a duration"),
    (["--persistent-volume", "v1:lots"], "the disk 'lots' is not a number"),
    (["--persistent-volume", "v1:64:a/b"], "must be a plain relative name"),
    (["does-not-exist.json"], "cannot read the task list"),
])
def test_bad_task_list_options_are_one_clear_error(tmp_path, args, message):
    from argparse import Namespace

    from wps_gateway.batch.run import _inputs

    write_list(tmp_path / "tasks.json", task("a", "true"))
    given = Namespace(tasks=str(tmp_path / "tasks.json"), kill_after=None, persistent_volume=None,
                      remove_persistent_volume=False)
    for name, value in zip(args[::2], args[1::2], strict=False):
        setattr(given, name.lstrip("-").replace("-", "_"), value)
    if len(args) == 1:
        given.tasks = str(tmp_path / args[0])
    with pytest.raises(ValueError) as caught:
        _inputs(given)
    assert message in str(caught.value)


@pytest.fixture
def proxied(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, AUTH_MODE="header", AUTH_TRUSTED_PROXIES="127.0.0.1",
                            AUTH_OPERATORS=f"user:{OPERATOR}", AUTH_DEPLOYERS=f"user:{DEPLOYER}")
    yield gateway
    close_gateway(gateway)


def execute(gateway, user: str, body: dict, status: int):
    return gateway.client.post_json("/processes/batch/execution", body, status=status, extra_environ=PROXY,
                                    headers={"X-Forwarded-User": user, "Prefer": "respond-async"})


def test_over_http_only_operators_and_deployers_may_execute_a_task_list(proxied, tmp_path):
    body = {"inputs": {"tasks": {"value": task_list(task("hello", "echo hello")), "mediaType": "application/json"}}}
    refused = execute(proxied, USER, body, 403)
    assert "only operators and deployers" in refused.json["detail"]
    wps = proxied.client.get("/wps", {"service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "batch",
                                      "DataInputs": "kill_after=10secs", "storeExecuteResponse": "true"},
                             headers={"X-Forwarded-User": USER}, extra_environ=PROXY, status=403)
    assert b"only operators and deployers" in wps.body
    assert listed(proxied) == []
    for user in (OPERATOR, DEPLOYER):
        created = execute(proxied, user, body, 201)
        job_id = created.json["jobID"]
        wait_for(lambda job_id=job_id, user=user: proxied.client.get(f"/jobs/{job_id}", extra_environ=PROXY, headers={
            "X-Forwarded-User": user}).json["status"] == "successful", 60, "the task list job")


def test_over_http_a_bad_task_list_is_a_400_naming_its_field_and_no_job(proxied):
    bad = task_list(task("a", "true"), {**task("b", "true"), "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]})
    answer = execute(proxied, OPERATOR, {"inputs": {"tasks": {"value": bad, "mediaType": "application/json"}}}, 400)
    assert "tasks[1].resources[0].scalar.value: must not be negative" in answer.json["detail"]
    assert listed(proxied) == []


def listed(gateway) -> list:
    return gateway.client.get("/jobs", extra_environ=PROXY, headers={"X-Forwarded-User": OPERATOR}).json["jobs"]
