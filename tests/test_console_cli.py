"""The console's actions on the command line: retries, priorities, dismissals, caps, logs, the cluster."""

from __future__ import annotations

import json

import pytest

from wps_gateway.cli import main as cli
from wps_gateway.store.models import JobStatus

from .conftest import build_gateway, close_gateway, gateway_environ
from .jobs_support import attempts_of, final, job_of, submit_sleepy

pytestmark = pytest.mark.slow


def test_operators_steer_from_the_command_line(tmp_path, sample_data, monkeypatch, capsys):
    for key, value in gateway_environ(tmp_path / "var", sample_data, "http://localhost/wps").items():
        monkeypatch.setenv(key, value)
    gateway = build_gateway(tmp_path / "var", sample_data)
    try:
        job_id = submit_sleepy(gateway, [1, 2], fail_runs=2)
        assert final(gateway, job_id).status == JobStatus.FAILED
        failed = next(a for a in attempts_of(gateway, job_id) if a.status == "failed")
        capsys.readouterr()

        assert cli(["tasks", "log", failed.backend_task_id]) == 0
        assert "told to fail run" in capsys.readouterr().out
        assert cli(["jobs", "retry", "no-such-job"]) == 1
        assert cli(["jobs", "priority", job_id, "5000"]) == 2
        assert cli(["tasks", "retry", job_id]) == 0
        assert "task(s) queued again" in capsys.readouterr().out
        assert final(gateway, job_id).status == JobStatus.SUCCESSFUL
        assert cli(["tasks", "retry", job_id]) == 2  # succeeded now: nothing to retry
        assert "only a failed job" in capsys.readouterr().err

        assert cli(["caps", "set", "max_cpu", "4"]) == 0
        assert cli(["caps", "set", "user_cpu", "alice", "1.5"]) == 0
        assert cli(["caps", "set", "process_weight", "ndvi-mosaic", "0"]) == 2
        listed = capsys.readouterr().out
        assert "max_cpu" in listed and "alice" in listed and "1.5" in listed
        assert "(not applied by the current backend)" in listed  # the local backend has no caps
        assert cli(["caps", "unset", "user_cpu", "alice"]) == 0
        assert cli(["caps", "unset", "user_cpu", "alice"]) == 2

        running = submit_sleepy(gateway, [3], seconds=20)
        assert cli(["jobs", "priority", running, "3"]) == 0
        assert "priority 0 -> 3" in capsys.readouterr().out
        assert cli(["jobs", "dismiss", running]) == 0
        assert final(gateway, running).status == JobStatus.DISMISSED and job_of(gateway, running).priority == 3

        capsys.readouterr()
        assert cli(["cluster"]) == 0
        view = json.loads(capsys.readouterr().out)
        assert view["jobs"] == {"successful": 1, "dismissed": 1} and view["backend"] in (None, "local")
    finally:
        close_gateway(gateway)
