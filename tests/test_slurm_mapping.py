"""The Slurm backend's pure parts: its batch script run by /bin/sh, sbatch options, Slurm's answers mapped."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mesos_backend import BackendError, Resources, TaskSpec, TaskState, Usage, create_backend
from mesos_backend.slurm.backend import backend_options
from mesos_backend.slurm.commands import AccountingRow, SlurmCommands, _job_row
from mesos_backend.slurm.script import SubmitOptions, batch_script, instance_of, sbatch_args
from mesos_backend.slurm.status import (
    duration_seconds,
    size_mb,
    to_event,
    usage_from_accounting,
)
from wps_gateway.cli import main

from .conftest import require

# Lines as squeue 22.05 prints them with --Format=JobID:|,State:|,... and SLURM_TIME_FORMAT=%s.
FAILED_LINE = "6|FAILED|NonZeroExitCode|768|1796049571|1796049574|node1|j.square.0.1|wps-gateway:abc job=j|"
SIGNALLED_LINE = "7|FAILED|NonZeroExitCode|9|1796049571|1796049574|node1|j.square.1.1|wps-gateway:abc|"


def row(line: str):
    parsed = _job_row(line)
    assert parsed is not None
    return parsed


def test_the_batch_script_clears_the_login_environment_and_sets_exactly_the_tasks(tmp_path):
    """With --export=NONE (a site may force it) slurmd hands a batch job its owner's login environment: dropped."""
    spec = TaskSpec("t.1", ["/usr/bin/env", "-0"], environment={"WPS_TASK": "{\"a\": \"it's\"}\n$(id)",
                                                                 "EMPTY": ""})
    script = tmp_path / "job.sh"
    script.write_text(batch_script(spec, SubmitOptions(path="/usr/bin:/bin")))
    login_environment = {"HOME": "/root", "MAIL": "/var/mail/root", "AWS_SECRET_ACCESS_KEY": "login-secret",
                         "PATH": "/root/bin:/usr/bin:/bin", "SLURM_JOB_ID": "42", "SLURMD_NODENAME": "node1",
                         "SLURM_JWT": "submitter-token", "TMPDIR": "/scratch/42"}
    out = subprocess.run(["/bin/sh", str(script)], env=login_environment, capture_output=True, check=True,
                         cwd=tmp_path).stdout.decode()
    env = dict(item.split("=", 1) for item in out.split("\0") if item)
    assert env == {"WPS_TASK": spec.environment["WPS_TASK"], "EMPTY": "", "PATH": "/usr/bin:/bin",
                   "SLURM_EXPORT_ENV": "ALL", "SLURM_JOB_ID": "42", "SLURMD_NODENAME": "node1",
                   "TMPDIR": "/scratch/42"}


def test_a_workdir_is_made_inside_the_sandbox_and_the_command_is_not_interpreted_twice(tmp_path):
    spec = TaskSpec("t.1", ["sh", "-c", 'pwd; printf "%s\\n" "$0"', "$(id) ; rm -rf x"], workdir="out/sub")
    script = tmp_path / "job.sh"
    script.write_text(batch_script(spec, SubmitOptions()))
    lines = subprocess.run(["/bin/sh", str(script)], capture_output=True, check=True, cwd=tmp_path,
                           env={"PATH": "/usr/bin:/bin"}).stdout.decode().splitlines()
    assert lines == [str(tmp_path / "out" / "sub"), "$(id) ; rm -rf x"]


def test_sbatch_options_follow_the_spec_and_the_settings(tmp_path):
    spec = TaskSpec("job.ndvi.0.1", ["x"], resources=Resources(cpus=0.5, mem=511.2, disk=512, gpus=2), timeout=61,
                    labels={"job_id": "job", "task_id": "job.ndvi.0", "step": "ndvi"})
    options = SubmitOptions(partition="eo", account="proj1", qos="high", extra_args=("--constraint=ssd",))
    args = sbatch_args(spec, tmp_path, "inst1", options)
    assert args[:4] == ["--export=ALL", "--no-requeue", "--nodes=1", "--ntasks=1"]
    for expected in ("--job-name=job.ndvi.0.1", "--comment=wps-gateway:inst1 job=job task=job.ndvi.0 step=ndvi",
                     f"--chdir={tmp_path}", f"--output={tmp_path / 'stdout'}", f"--error={tmp_path / 'stderr'}",
                     "--cpus-per-task=1", "--mem=512M", "--gres=gpu:2", "--time=2", "--partition=eo",
                     "--account=proj1", "--qos=high"):
        assert expected in args
    assert args[-1] == "--constraint=ssd" and not any(a.startswith("--tmp") for a in args)
    assert instance_of("wps-gateway:inst1 job=job") == "inst1" and instance_of("someone else's") is None
    no_limit = sbatch_args(TaskSpec("t", ["x"], timeout=None), tmp_path, "i", SubmitOptions())
    assert not any(a.startswith(("--time", "--partition", "--gres")) for a in no_limit)


def test_the_container_prefix_wraps_only_tasks_with_an_image():
    options = SubmitOptions(container_prefix=("srun", "apptainer", "exec", "docker://{image}"))
    with_image = batch_script(TaskSpec("a", ["python", "-m", "x"], image="eo/ndvi:1"), options)
    assert with_image.endswith("exec srun apptainer exec docker://eo/ndvi:1 python -m x\n")
    assert batch_script(TaskSpec("b", ["python"]), options).endswith("exec python\n")
    forced = SubmitOptions(container_prefix=options.container_prefix, image="site/eo:2")
    assert "docker://site/eo:2 python" in batch_script(TaskSpec("c", ["python"], image="eo/ndvi:1"), forced)


def test_squeue_lines_and_exit_statuses():
    failed, signalled = row(FAILED_LINE), row(SIGNALLED_LINE)
    assert (failed.job_id, failed.state, failed.node, failed.name) == ("6", "FAILED", "node1", "j.square.0.1")
    assert failed.comment == "wps-gateway:abc job=j" and failed.start == 1796049571.0
    event = to_event("j.square.0.1", failed, None, None, sandbox=None, last_stderr="boom")
    assert event.state is TaskState.FINISHED and event.exit_code == 3 and event.message.startswith("boom (Slurm job 6")
    assert to_event("t", signalled, None, None, sandbox=None).exit_code == -9
    pending = row("9|PENDING|Resources|0|N/A|N/A||t|(null)|")
    assert pending.start is None and pending.node is None and pending.comment == ""


@pytest.mark.parametrize(("state", "kill_cause", "expected", "reason"), [
    ("COMPLETED", None, TaskState.FINISHED, None),
    ("CANCELLED", "killed", TaskState.KILLED, "killed"),
    ("CANCELLED", None, TaskState.FAILED, "cancelled_externally"),
    ("TIMEOUT", None, TaskState.FAILED, "timeout"),
    ("OUT_OF_MEMORY", None, TaskState.FAILED, "out_of_memory"),
    ("NODE_FAIL", None, TaskState.LOST, "backend_restarted"),
    ("PREEMPTED", None, TaskState.LOST, "backend_restarted"),
    ("BOOT_FAIL", None, TaskState.LOST, "boot_fail"),
    ("DEADLINE", None, TaskState.FAILED, "deadline"),
])
def test_slurm_states_map_onto_task_events(state, kill_cause, expected, reason):
    line = f"5|{state}|SomeReason|0|1796049571|1796049574|node1|t|wps-gateway:i|"
    event = to_event("t", row(line), kill_cause, Usage(wall_seconds=3.0), sandbox="/s")
    assert event.state is expected and event.reason == reason
    assert f"Slurm job 5 {state} (SomeReason) on node1" in event.message
    assert event.agent == "node1" and event.timestamp == 1796049574.0


def test_accounting_figures_become_usage():
    lines = [AccountingRow("8", "FAILED", "3:0", "3", "00:01.643", "", "billing=1,cpu=1,mem=200M,node=1", "node1",
                           "1", "4"),
             AccountingRow("8.batch", "FAILED", "3:0", "3", "00:01.643", "96780K", "cpu=1,mem=200M,node=1", "node1",
                           "1", "4"),
             AccountingRow("8.0", "COMPLETED", "0:0", "1", "00:00.100", "0", "", "node1", "1", "2")]
    usage = usage_from_accounting(lines, "8")
    assert usage == Usage(cpu_seconds=1.643, mem_peak_mb=96780 / 1024, wall_seconds=3.0,
                          alloc_cpu_seconds=3.0, alloc_mem_mb_seconds=600.0)
    assert duration_seconds("1-02:03:04") == 93784 and duration_seconds("01:02:03") == 3723
    assert size_mb("1.5G") == 1536 and size_mb("2048") == 2048 / 1024 ** 2 and size_mb("") is None


def test_settings_are_typed_and_bad_ones_named():
    options = backend_options({"partition": " eo ", "container_prefix": "srun apptainer exec 'docker://{image}'",
                               "poll_interval": "2.5", "accounting": "OFF", "conf": "/etc/slurm/slurm.conf"})
    assert options["submit"].partition == "eo" and options["poll"].accounting == "off"
    assert options["submit"].container_prefix == ("srun", "apptainer", "exec", "docker://{image}")
    assert options["poll"].poll_interval == 2.5 and options["commands"].conf == "/etc/slurm/slurm.conf"
    for raw, message in (({"accounting": "sometimes"}, "accounting must be one of auto, off"),
                         ({"poll_interval": "fast"}, "poll_interval must be a number"),
                         ({"submit_workers": "0"}, "submit_workers at least 1"),
                         ({"sbatch_args": "--comment='open"}, "sbatch_args")):
        with pytest.raises(ValueError, match=message):
            backend_options(raw)


def test_a_missing_slurm_client_is_refused_when_the_backend_is_made(tmp_path):
    with pytest.raises(BackendError, match="sbatch, squeue, scancel not found in /nonexistent"):
        create_backend("slurm", sandbox_root=tmp_path, commands=SlurmCommands(bin_dir="/nonexistent"))


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("SLURM_ACCOUNTING", "sometimes", "slurm backend: [slurm] accounting must be one of auto, off"),
    ("SLURM_BIN_DIR", "/nonexistent", "slurm backend: sbatch, squeue, scancel not found in /nonexistent"),
    ("SLURM_CONF", "{tmp}/slurm.conf", "slurm backend: Slurm cannot be used: squeue: fatal: Unable to process "
                                       "configuration file"),
])
def test_a_bad_slurm_setting_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys, setting, value, message):
    if setting == "SLURM_CONF":
        require(shutil.which("squeue") is not None, "squeue not found (Debian package slurm-client)")
        (tmp_path / "slurm.conf").write_text("ClusterName=nowhere\nNoSuchKey=1\n")
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("GATEWAY_BACKEND", "slurm")
    monkeypatch.setenv(setting, value.format(tmp=tmp_path))
    assert main(["dispatch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"wps-gateway: {message}") and "\n" not in err, err
