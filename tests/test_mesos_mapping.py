"""TaskSpec → TaskInfo and TaskStatus → TaskEvent for the Mesos backend."""

from __future__ import annotations

import pytest

from mesos_backend import FetchUri, Resources, TaskSpec, TaskState
from mesos_backend.mesos.status import to_event
from mesos_backend.mesos.taskinfo import TaskOptions, Volume, scalar, task_info

SPEC = TaskSpec(task_id="job.ndvi.0.1", command=["python", "-m", "processes.ndvi_mosaic.task", "ndvi"],
                resources=Resources(cpus=1, mem=512), environment={"WPS_TASK": '{"a": 1}'},
                image="wps-gateway:latest", uris=[FetchUri("http://127.0.0.1/b.tgz", extract=True)],
                labels={"job_id": "job", "step": "ndvi"}, process="ndvi-mosaic")
RESOURCES = [scalar("cpus", 1.0), scalar("mem", 512.0)]


def test_task_info_runs_the_command_without_a_shell_in_the_task_image():
    info = task_info(SPEC, "agent-1", RESOURCES,
                     TaskOptions(volumes=(Volume.parse("/data/aux:/aux"), Volume.parse("/srv/wps:/srv/wps:rw"))))
    assert info["task_id"] == {"value": "job.ndvi.0.1"} and info["agent_id"] == {"value": "agent-1"}
    assert info["name"] == "ndvi-mosaic:ndvi"
    command = info["command"]
    assert command["shell"] is False and command["value"] == "python"
    assert command["arguments"] == SPEC.command
    assert command["environment"]["variables"] == [{"name": "WPS_TASK", "value": '{"a": 1}'}]
    assert command["uris"] == [{"value": "http://127.0.0.1/b.tgz", "cache": True, "extract": True,
                                "executable": False}]
    container = info["container"]
    assert container["type"] == "MESOS"
    assert container["mesos"]["image"] == {"type": "DOCKER", "docker": {"name": "wps-gateway:latest"}, "cached": True}
    assert container["volumes"][1] == {"container_path": "/srv/wps", "host_path": "/srv/wps", "mode": "RW"}
    assert {"key": "job_id", "value": "job"} in info["labels"]["labels"]
    assert info["kill_policy"] == {"grace_period": {"nanoseconds": 10_000_000_000}}


def test_docker_containerizer_and_image_override():
    info = task_info(SPEC, "a", RESOURCES, TaskOptions(containerizer="docker", image="eo/tasks:2"))
    assert info["container"]["type"] == "DOCKER"
    assert info["container"]["docker"]["image"] == "eo/tasks:2"
    assert "container" not in task_info(SPEC, "a", RESOURCES, TaskOptions(containerizer="none"))


@pytest.mark.parametrize("bad", ["/only-one", ":/x", "/a:/b:rx", "/a:/b:ro:extra"])
def test_bad_volumes_are_refused(bad):
    with pytest.raises(ValueError):
        Volume.parse(bad)


def status(state: str, **extra) -> dict:
    return {"task_id": {"value": "t.1"}, "agent_id": {"value": "a1"}, "state": state, **extra}


def test_running_and_finished():
    assert to_event(status("TASK_RUNNING")).state is TaskState.STARTED
    assert to_event(status("TASK_STARTING")) is None
    done = to_event(status("TASK_FINISHED", timestamp=110.0), started_at=100.0)
    assert done.succeeded and done.usage.wall_seconds == pytest.approx(10.0) and done.agent == "a1"


def test_a_failed_command_keeps_its_exit_code():
    event = to_event(status("TASK_FAILED", message="Command exited with status 3",
                            reason="REASON_COMMAND_EXECUTOR_FAILED"))
    assert event.state is TaskState.FINISHED and event.exit_code == 3 and not event.succeeded


@pytest.mark.parametrize("state", ["TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"])
def test_tasks_the_cluster_lost_are_lost(state):
    event = to_event(status(state, reason="REASON_AGENT_REMOVED"))
    assert event.state is TaskState.LOST and event.reason == "REASON_AGENT_REMOVED"


def test_kills_say_why():
    assert to_event(status("TASK_KILLED"), kill_cause="killed").state is TaskState.KILLED
    timeout = to_event(status("TASK_KILLED"), kill_cause="timeout")
    assert timeout.state is TaskState.FAILED and timeout.reason == "timeout"
    assert to_event(status("TASK_FAILED", message="terminated"), kill_cause="unreachable").state is TaskState.LOST
    assert to_event(status("TASK_KILLED")).reason == "killed_externally"


def test_invalid_tasks_fail_and_unreachable_waits():
    assert to_event(status("TASK_ERROR", reason="REASON_TASK_INVALID")).state is TaskState.FAILED
    assert to_event(status("TASK_UNREACHABLE")) is None
    assert to_event(status("TASK_KILLING")) is None


def test_the_mesos_section_becomes_typed_backend_options():
    from mesos_backend.mesos.backend import backend_options

    options = backend_options({"master": "zk://127.0.0.1:2181/mesos", "max_cpu": "0", "user_max_cpu": "8",
                               "process_weights": "ndvi-mosaic:2, urban-footprint:1", "volumes": "/aux:/aux:ro",
                               "ca_file": "/etc/ssl/mesos.pem", "secret": "x"})
    assert options["scheduling"].max_cpu is None and options["scheduling"].user_max_cpu == 8
    assert options["scheduling"].process_weights == {"ndvi-mosaic": 2.0, "urban-footprint": 1.0}
    assert options["tasks"].volumes[0].mode == "RO"
    assert options["tls"] is True and options["verify"] == "/etc/ssl/mesos.pem"
    with pytest.raises(ValueError, match="MESOS_MASTER"):
        backend_options({"master": ""})
    with pytest.raises(ValueError, match="name:weight"):
        backend_options({"master": "m:5050", "user_weights": "alice"})


def test_without_a_configured_user_the_framework_runs_as_the_gateways(monkeypatch):
    import getpass

    from mesos_backend.mesos.backend import backend_options

    assert backend_options({"master": "m:5050"})["framework"].user == getpass.getuser()
    assert backend_options({"master": "m:5050", "user": "wps"})["framework"].framework_info(None)["user"] == "wps"

    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found: 4242")

    monkeypatch.setattr(getpass, "getuser", nameless)
    with pytest.raises(ValueError, match="MESOS_USER"):
        backend_options({"master": "m:5050"})
