"""The Slurm backend alone on the test cluster: environment, containers, refusals, accounting, recovery."""

from __future__ import annotations

import os

import pytest

from mesos_backend import MemoryState, Resources, TaskSpec, TaskState, create_backend
from mesos_backend.slurm.script import SubmitOptions

from .jobs_support import wait_for
from .slurm_support import Events, slurm_backend

pytestmark = pytest.mark.slow
SMALL = Resources(cpus=1, mem=64)


@pytest.fixture
def events() -> Events:
    return Events()


def test_a_task_gets_its_own_environment_and_none_of_the_gateways(tmp_path, slurm_cluster, events, monkeypatch):
    monkeypatch.setenv("GATEWAY_DEPLOY_TOKENS", "ops:gateway-secret-token")
    monkeypatch.setenv("SLURM_GATEWAY_TOKEN", "slurm-prefixed-secret")  # sbatch hands every SLURM_* on to the job
    backend = slurm_backend(slurm_cluster, tmp_path)
    tricky = "it's \"quoted\", a,b=c\n$(touch pwned) `uname` ${HOME} \\ tail"
    backend.start(events.callback)
    try:
        backend.launch(TaskSpec("env-1", ["/usr/bin/env", "-0"], resources=SMALL,
                                environment={"WPS_TASK": tricky, "LANG": "C.UTF-8"}))
        final = events.terminal("env-1")
        assert final.state is TaskState.FINISHED and final.exit_code == 0, final
        raw = (backend.sandbox_root / "env-1" / "stdout").read_text()
        env = dict(item.split("=", 1) for item in raw.split("\0") if item)
        assert env["WPS_TASK"] == tricky and env["LANG"] == "C.UTF-8"
        assert "gateway-secret-token" not in raw and "slurm-prefixed-secret" not in raw
        assert not (backend.sandbox_root / "env-1" / "pwned").exists()
        # Exactly the task's variables, the documented contract ones, and Slurm's own job variables.
        assert {n for n in env if not n.startswith("SLURM_")} == {"WPS_TASK", "LANG", "PATH", "TMPDIR",
                                                                  "SLURMD_NODENAME"}
        assert env["SLURM_EXPORT_ENV"] == "ALL"
        assert env["SLURM_SUBMIT_DIR"] == str(backend.sandbox_root / "env-1")
        assert os.environ["PATH"] != env["PATH"] and env["PATH"].endswith("/usr/local/bin:/usr/bin:/bin")
    finally:
        backend.stop()


def test_tasks_with_an_image_run_behind_the_container_prefix(tmp_path, slurm_cluster, events):
    # Stands in for `apptainer exec IMAGE COMMAND...`: notes the image, then runs the command.
    stand_in = tmp_path / "apptainer"
    stand_in.write_text('#!/bin/sh\n[ "$1" = exec ] || exit 64\necho "$2" > container-image\nshift 2\nexec "$@"\n')
    stand_in.chmod(0o755)
    prefix = ("srun", "--ntasks=1", str(stand_in), "exec", "docker://{image}")
    backend = slurm_backend(slurm_cluster, tmp_path, submit=SubmitOptions(container_prefix=prefix))
    backend.start(events.callback)
    try:
        backend.launch(TaskSpec("img-1", ["sh", "-c", 'echo "$WPS_NOTE step=$SLURM_STEP_ID"'], image="eo/ndvi:2",
                                environment={"WPS_NOTE": "through srun"}, resources=SMALL))
        backend.launch(TaskSpec("plain-1", ["sh", "-c", "test ! -e container-image"], resources=SMALL))
        assert events.terminal("img-1").exit_code == 0
        assert events.terminal("plain-1").exit_code == 0  # no image: no prefix
        sandbox = backend.sandbox_root / "img-1"
        assert (sandbox / "container-image").read_text() == "docker://eo/ndvi:2\n"
        assert (sandbox / "stdout").read_text() == "through srun step=0\n"  # a job step of its own, under srun
    finally:
        backend.stop()


def test_what_slurm_refuses_fails_the_task_with_slurms_reason(tmp_path, slurm_cluster, events):
    backend = slurm_backend(slurm_cluster, tmp_path)
    elsewhere = slurm_backend(slurm_cluster, tmp_path / "p", submit=SubmitOptions(partition="no-such-partition"))
    backend.start(events.callback)
    elsewhere.start(events.callback)
    try:
        backend.launch(TaskSpec("gpu-1", ["true"], resources=Resources(cpus=1, mem=64, gpus=1)))
        backend.launch(TaskSpec("bad-env-1", ["true"], environment={"NOT-A-NAME": "x"}, resources=SMALL))
        elsewhere.launch(TaskSpec("part-1", ["true"], resources=SMALL))
        gpu, bad, part = (events.terminal(t) for t in ("gpu-1", "bad-env-1", "part-1"))
        assert gpu.state is TaskState.FAILED and gpu.reason == "submit_failed"
        assert "generic resource" in gpu.message.lower() or "gres" in gpu.message.lower(), gpu.message
        assert bad.state is TaskState.FAILED and "NOT-A-NAME" in bad.message
        assert part.state is TaskState.FAILED and "invalid partition" in part.message.lower(), part.message
        assert not slurm_cluster.active_jobs({"gpu-1", "bad-env-1", "part-1"})
    finally:
        backend.stop()
        elsewhere.stop()


def test_usage_comes_from_sacct_and_without_accounting_only_the_wall_time(tmp_path, slurm_cluster, events):
    # A fixed amount of CPU work (not of wall time: the machine may be busy) holding 200 MiB it has written to.
    hungry = ["python3", "-c", "import time; block = bytearray(200 * 2**20); block[::4096] = bytes(51200)\n"
                               "while time.process_time() < 1.5: pass"]
    with_sacct = slurm_backend(slurm_cluster, tmp_path / "a")
    without = slurm_backend(slurm_cluster, tmp_path / "b", accounting="off")
    with_sacct.start(events.callback)
    without.start(events.callback)
    try:
        with_sacct.launch(TaskSpec("acct-1", hungry, resources=Resources(cpus=1, mem=512)))
        without.launch(TaskSpec("noacct-1", hungry, resources=Resources(cpus=1, mem=512)))
        measured, timed = events.terminal("acct-1"), events.terminal("noacct-1")
        assert measured.succeeded and timed.succeeded
        assert measured.usage.mem_peak_mb >= 200 and measured.usage.cpu_seconds >= 1.5
        assert measured.usage.wall_seconds >= 1 and "mem=512M" in measured.message
        # What Slurm charged: the allocation (1 cpu, 512 MiB) over the elapsed time.
        assert measured.usage.alloc_cpu_seconds == measured.usage.wall_seconds
        assert measured.usage.alloc_mem_mb_seconds == 512 * measured.usage.wall_seconds
        assert timed.usage.alloc_cpu_seconds is None
        assert timed.usage.wall_seconds >= 1 and timed.usage.cpu_seconds is None and timed.usage.mem_peak_mb is None
        assert with_sacct.commands.calls["sacct"] >= 1 and without.commands.calls["sacct"] == 0
    finally:
        with_sacct.stop()
        without.stop()


def test_a_task_over_its_memory_is_killed_with_slurms_reason(tmp_path, slurm_cluster, events):
    backend = slurm_backend(slurm_cluster, tmp_path)
    backend.start(events.callback)
    try:
        greedy = ["python3", "-c", "import time; b = bytearray(300 * 2**20); time.sleep(30)"]
        backend.launch(TaskSpec("greedy-1", greedy, resources=Resources(cpus=1, mem=100)))
        final = events.terminal("greedy-1")
        assert final.state is TaskState.FINISHED and final.exit_code == -9, final
        # slurmstepd's own words, whichever of its two notices came last: "StepId=N.batch exceeded memory
        # limit (...), being killed" when its accounting poll catches the task, "Exceeded job memory limit"
        assert "memory limit" in final.message.lower(), final.message
    finally:
        backend.stop()


def test_status_is_polled_with_one_query_for_all_tasks(tmp_path, slurm_cluster, events):
    backend = slurm_backend(slurm_cluster, tmp_path)
    asked: list[set[str]] = []
    squeue = backend.commands.squeue

    def recorded(job_ids=(), **kw):
        asked.append(set(job_ids))
        return squeue(job_ids, **kw)

    backend.commands.squeue = recorded
    backend.start(events.callback)
    try:
        ids = [f"many-{i}" for i in range(12)]
        backend.set_paused(True)  # all submitted before the first of them can end
        for task_id in ids:
            backend.launch(TaskSpec(task_id, ["sleep", "2"], resources=SMALL))
        backend.set_paused(False)
        for task_id in ids:
            assert events.terminal(task_id).succeeded
        assert backend.commands.calls["sbatch"] == len(ids)
        # Every turn asks once about all the jobs it watches: the turns while all twelve ran asked about twelve.
        assert max(len(ids) for ids in asked) == len(ids)
        submitted = {e.message.split()[-1] for e in events.seen if e.reason == "submitted"}
        assert set().union(*asked) == submitted
    finally:
        backend.stop()


def test_pausing_holds_submissions_and_a_task_killed_before_submission_never_reaches_slurm(tmp_path, slurm_cluster,
                                                                                            events):
    backend = slurm_backend(slurm_cluster, tmp_path)
    backend.start(events.callback)
    try:
        backend.set_paused(True)
        backend.launch(TaskSpec("held-1", ["true"], resources=SMALL))
        backend.launch(TaskSpec("held-2", ["true"], resources=SMALL))
        assert backend.queued() == 2 and backend.active_tasks() in (None, {"held-1", "held-2"})
        backend.kill("held-1")
        killed = events.terminal("held-1")
        assert killed.state is TaskState.KILLED and "before it was submitted" in killed.message
        backend.set_paused(False)
        assert events.terminal("held-2").succeeded
        names = {name for name, _ in slurm_cluster.jobs().values()}
        assert "held-2" in names and "held-1" not in names
        assert backend.commands.calls["sbatch"] == 1
    finally:
        backend.stop()


def test_a_restarted_backend_adopts_its_jobs_reports_unknown_ones_lost_and_leaves_others_alone(
        tmp_path, slurm_cluster, events):
    state = MemoryState()  # the job store keeps the instance id across restarts
    first = slurm_backend(slurm_cluster, tmp_path, state=state)
    neighbour = slurm_backend(slurm_cluster, tmp_path / "other")  # another gateway on the same cluster
    first.start(events.callback)
    neighbour.start(events.callback)
    try:
        first.launch(TaskSpec("r-long", ["sleep", "6"], resources=SMALL))
        first.launch(TaskSpec("r-short", ["true"], resources=SMALL))
        first.launch(TaskSpec("r-stray", ["sleep", "60"], resources=SMALL))
        neighbour.launch(TaskSpec("n-1", ["sleep", "60"], resources=SMALL))
        wait_for(lambda: all(any(e.state is TaskState.STARTED for e in events.of(t))
                             for t in ("r-long", "r-stray", "n-1")), 60)
        first.stop()
        wait_for(lambda: "r-short" not in slurm_cluster.active_jobs({"r-short"}), 30)
        started_before = len(events.of("r-long"))

        second = slurm_backend(slurm_cluster, tmp_path, state=state)
        second.start(events.callback)
        try:
            assert second.instance == first.instance
            second.recover(["r-long", "r-short", "r-gone"], {"r-long": {"agent": "node1"}})
            assert events.terminal("r-gone").state is TaskState.LOST
            assert events.terminal("r-gone").reason == "backend_restarted"
            assert events.terminal("r-short").succeeded
            wait_for(lambda: second.active_tasks() == {"r-long"}, 30)
            assert events.terminal("r-long").succeeded
            after = events.of("r-long")[started_before:]  # taken over, then its end; no second STARTED
            assert [(e.state, e.reason) for e in after] == [(TaskState.NOTICE, "adopted"), (TaskState.FINISHED, None)]
            # The stray job of this gateway was cancelled; the neighbour's job runs on.
            wait_for(lambda: not slurm_cluster.active_jobs({"r-stray"}), 30)
            assert slurm_cluster.active_jobs({"n-1"}) == {"n-1"}
            assert {name: state for name, state in slurm_cluster.jobs().values()}["r-stray"] == "CANCELLED"
        finally:
            second.stop()
    finally:
        first.stop()
        neighbour.kill("n-1")
        assert events.terminal("n-1").state is TaskState.KILLED
        neighbour.stop()


def test_create_backend_knows_slurm_and_refuses_a_missing_client(tmp_path):
    from mesos_backend import BackendError
    from mesos_backend.slurm.commands import SlurmCommands

    with pytest.raises(BackendError, match="sbatch, squeue, scancel not found in /nonexistent"):
        create_backend("slurm", sandbox_root=tmp_path, commands=SlurmCommands(bin_dir="/nonexistent"))
