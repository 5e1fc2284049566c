"""``wps-gateway batch run`` on Mesos (the test master), YARN (the test ResourceManager) and Slurm (a real
cluster), and mesos-batch's persistent volume: a map run that reserves and creates it and writes into it, then
a reduce run on it that removes it (RESERVE, CREATE, DESTROY, UNRESERVE through the master, checked against its
agents)."""

from __future__ import annotations

import json
import re

import pytest

from wps_gateway.store.models import JobStatus

from .batch_support import batch_run, jobs_in, ndvi_tasks, task, tasks_of, write_list
from .slurm_support import slurm_environ
from .test_batch import expected_ndvi
from .yarn_support import yarn_environ

pytestmark = pytest.mark.slow
ROLE, PRINCIPAL = "wps", "alice"


def mesos_environ(master, **extra: str) -> dict[str, str]:
    return {"GATEWAY_BACKEND": "mesos", "MESOS_MASTER": master.leader.address, "MESOS_CONTAINERIZER": "none",
            "MESOS_OFFER_REFUSE_SECONDS": "0.2", "MESOS_FAILOVER_TIMEOUT": "60", **extra}


def test_a_task_list_runs_on_mesos(tmp_path, sample_data, scenes, mesos_master):
    chosen = [s for s in scenes if "20240610" in s.name][:3]
    tasks = write_list(tmp_path / "tasks.json", *ndvi_tasks(chosen),
                       task("image", "true", container={"type": "DOCKER", "docker": {
                           "image": "alpine", "parameters": [{"key": "memory", "value": "64m"}]}}))
    data = tmp_path / "var"
    done = batch_run(data, sample_data, str(tasks), **mesos_environ(mesos_master))
    assert done.returncode == 0, done.stdout + done.stderr
    [job] = jobs_in(data)
    for scene in chosen:
        written = data / "jobs" / job.id / "steps" / "tasks" / f"{scene.stem}.txt"
        assert float(written.read_text()) == pytest.approx(expected_ndvi(scene), rel=1e-9)
    attempts = [a for t in tasks_of(data, job.id) for a in t.attempt_rows]
    assert {a.backend for a in attempts} == {"mesos"}
    assert {a.agent for a in attempts} <= set(mesos_master.cluster.agents)
    assert sorted(mesos_master.cluster.launched) == sorted(a.backend_task_id for a in attempts)


def volume_resource(tmp_path):
    """mesos-batch's --persistent_volume_resource, as its users keep it in a file (a TaskInfo)."""
    reserved = {"role": ROLE, "reservation": {"principal": PRINCIPAL}}
    spec = {"name": "persistent_vol_resource_spec", "task_id": {"value": "spec"}, "agent_id": {"value": ""},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}, **reserved},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 128}, **reserved},
                          {"name": "disk", "type": "SCALAR", "scalar": {"value": 64}, **reserved,
                           "disk": {"persistence": {"id": "ndvi-parts", "principal": PRINCIPAL},
                                    "volume": {"container_path": "parts", "mode": "RW"}}}]}
    path = tmp_path / "persistent_volume_resource.json"
    path.write_text(json.dumps(spec))
    return path.as_uri()


def test_map_onto_a_persistent_volume_then_reduce_on_it_and_remove_it(tmp_path, sample_data, scenes, mesos_master):
    chosen = [s for s in scenes if "20240415" in s.name][:3]
    mapper = ndvi_tasks(chosen, dest="parts", name="map")
    reducer = task("reduce", f"python -c \"{_REDUCE}\"")
    environ = mesos_environ(mesos_master, MESOS_ROLE=ROLE, MESOS_PRINCIPAL=PRINCIPAL)
    spec = volume_resource(tmp_path)
    data = tmp_path / "var"
    first = batch_run(data, sample_data, str(write_list(tmp_path / "map.json", *mapper)), "--persistent-volume", spec,
                      **environ)
    assert first.returncode == 0, first.stdout + first.stderr
    agents = mesos_master.cluster.agents
    holder = next(r.agent for r in agents.values() if r.agent.volume_path(ROLE, "ndvi-parts").is_dir())
    assert sorted(p.name for p in holder.volume_path(ROLE, "ndvi-parts").iterdir()) == sorted(
        f"{s.stem}.txt" for s in chosen)
    assert f"disk({ROLE}, {PRINCIPAL})[ndvi-parts:parts]:64" in _resources(mesos_master, holder.agent_id)

    second = batch_run(data, sample_data, str(write_list(tmp_path / "reduce.json", reducer)), "--persistent-volume",
                       spec, "--remove-persistent-volume", **environ)
    assert second.returncode == 0, second.stdout + second.stderr
    map_job, reduce_job = jobs_in(data)
    assert float((data / "jobs" / reduce_job.id / "outputs" / "result").read_text()) == pytest.approx(
        sum(expected_ndvi(s) for s in chosen), rel=1e-9)
    steps = [(t.step, t.status) for t in tasks_of(data, map_job.id)]
    assert steps == [("volume", "succeeded")] + [("tasks", "succeeded")] * 3
    assert [(t.step, t.status) for t in tasks_of(data, reduce_job.id)] == [
        ("volume", "succeeded"), ("tasks", "succeeded"), ("release", "succeeded")]
    on_volume = [a for job in (map_job, reduce_job) for t in tasks_of(data, job.id) if t.step == "tasks"
                 for a in t.attempt_rows]
    assert {a.agent for a in on_volume} == {holder.agent_id}, "every task ran where the volume is"
    ordered = sorted(on_volume, key=lambda a: a.started)
    assert all(a.finished <= b.started for a, b in zip(ordered, ordered[1:], strict=False)), "one at a time"
    assert not holder.volume_path(ROLE, "ndvi-parts").exists()
    assert "(" not in _resources(mesos_master, holder.agent_id), "the reservation was given back"
    kinds = sorted(key[1].rsplit(".", 1)[1] for key in mesos_master.cluster.operations)
    assert kinds == ["create", "destroy", "reserve", "unreserve"], "made once, found the second time, removed once"


_REDUCE = ("import json, os, pathlib; t = json.loads(os.environ['WPS_TASK']); "
           "total = sum(float(p.read_text()) for p in pathlib.Path('parts').glob('*.txt')); "
           "pathlib.Path(t['outputs_dir'], 'result').write_text(repr(total))")


def _resources(master, agent_id: str) -> str:
    return next(a["resources"] for a in master.cluster.snapshot()["agents"] if a["id"] == agent_id)


def test_a_persistent_volume_is_refused_without_a_role_of_the_framework(tmp_path, sample_data, mesos_master):
    tasks = write_list(tmp_path / "tasks.json", task("a", "true"))
    done = batch_run(tmp_path / "var", sample_data, str(tasks), "--persistent-volume", "v:64",
                     **mesos_environ(mesos_master))
    assert done.returncode == 2 and "set [mesos] role" in done.stderr
    other = batch_run(tmp_path / "var", sample_data, str(tasks), "--persistent-volume", volume_resource(tmp_path),
                      **mesos_environ(mesos_master, MESOS_ROLE="eo", MESOS_PRINCIPAL=PRINCIPAL))
    assert other.returncode == 2 and "are for role 'wps', the framework's is 'eo'" in other.stderr


@pytest.mark.parametrize(("backend", "engine", "environ"), [("yarn", "yarn_rm", yarn_environ),
                                                          ("slurm", "slurm_cluster", slurm_environ)])
def test_a_task_list_runs_on_yarn_and_slurm(tmp_path, sample_data, scenes, request, backend, engine, environ):
    chosen = [s for s in scenes if "20240720" in s.name][:2]
    tasks = write_list(tmp_path / "tasks.json", *ndvi_tasks(chosen), task("fails", "exit 4"))
    data = tmp_path / "var"
    done = batch_run(data, sample_data, str(tasks), **environ(request.getfixturevalue(engine)))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed: fails:" in done.stdout
    [job] = jobs_in(data)
    assert job.status == JobStatus.FAILED
    rows = {t.spec["task_list_id"]: t for t in tasks_of(data, job.id)}
    assert rows["fails"].status == "failed"
    for n, scene in enumerate(chosen):
        assert rows[f"ndvi-{n}"].status == "succeeded", rows[f"ndvi-{n}"].message
        assert rows[f"ndvi-{n}"].attempt_rows[0].backend == backend
        written = data / "jobs" / job.id / "steps" / "tasks" / f"{scene.stem}.txt"
        assert float(written.read_text()) == pytest.approx(expected_ndvi(scene), rel=1e-9)


def test_an_operation_the_master_drops_fails_its_attempt_with_the_masters_word_and_is_retried(
        tmp_path, sample_data, mesos_master):
    mesos_master.cluster.rescind_next = 1  # the first ACCEPT (the volume's RESERVE and CREATE) meets a dead offer
    tasks = write_list(tmp_path / "tasks.json", task("on-volume", "test -d scratch && touch scratch/x"))
    data = tmp_path / "var"
    done = batch_run(data, sample_data, str(tasks), "--persistent-volume", "scratch:16:scratch",
                     "--remove-persistent-volume", **mesos_environ(mesos_master, MESOS_ROLE=ROLE,
                                                                   MESOS_PRINCIPAL=PRINCIPAL))
    assert done.returncode == 0, done.stdout + done.stderr
    [job] = jobs_in(data)
    volume = next(t for t in tasks_of(data, job.id) if t.step == "volume")
    first, second = volume.attempt_rows
    assert first.status == "failed" and re.search(r"OPERATION_ERROR: Offer \S+ is no longer valid", first.message)
    assert second.status == "succeeded"


def test_docker_parameters_of_a_task_list_reach_the_docker_containerizer():
    from mesos_backend import Resources, TaskSpec
    from mesos_backend.mesos.taskinfo import TaskOptions, task_info
    from mesos_backend.testing import proto

    spec = TaskSpec("t.1", ["/bin/sh", "-c", "true"], Resources(1, 64), image="alpine",
                    docker_parameters=[("memory", "64m")])
    docker = task_info(spec, "agent-1", [], TaskOptions(containerizer="docker"))
    assert docker["container"]["docker"]["parameters"] == [{"key": "memory", "value": "64m"}]
    if proto.available():
        proto.validate_message("mesos.TaskInfo", docker)
    assert "parameters" not in str(task_info(spec, "agent-1", [], TaskOptions(containerizer="mesos")))
