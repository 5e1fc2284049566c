"""TaskSpec → Mesos TaskInfo (JSON), as the ACCEPT/LAUNCH operation carries it.

The command runs without a shell (``shell: false``, ``arguments`` as argv) so
that nothing in a processor's command line is interpreted twice. The task
image runs under the Mesos containerizer (a Docker image) or the Docker
containerizer; volumes bring auxiliary data and storage into the container.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..base import TaskSpec

CONTAINERIZERS = ("mesos", "docker", "none")


@dataclass(frozen=True)
class Volume:
    """A host path mounted into the task container."""

    host_path: str
    container_path: str
    mode: str = "RO"  # RO | RW

    @classmethod
    def parse(cls, text: str) -> Volume:
        """``host:container[:ro|rw]``, as ``docker run -v`` writes it."""
        parts = text.strip().split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise ValueError(f"volume {text!r} is not host_path:container_path[:ro|rw]")
        mode = parts[2].upper() if len(parts) == 3 else "RO"
        if mode not in ("RO", "RW"):
            raise ValueError(f"volume {text!r}: mode must be ro or rw")
        return cls(parts[0], parts[1], mode)

    def to_json(self) -> dict[str, str]:
        return {"container_path": self.container_path, "host_path": self.host_path, "mode": self.mode}


@dataclass(frozen=True)
class TaskOptions:
    """How every task of this framework is launched."""

    containerizer: str = "mesos"
    image: str | None = None  # overrides the spec's image when set
    volumes: tuple[Volume, ...] = field(default_factory=tuple)
    user: str | None = None
    kill_grace_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.containerizer not in CONTAINERIZERS:
            raise ValueError(f"containerizer must be one of {', '.join(CONTAINERIZERS)}, not {self.containerizer!r}")


def id_value(value: str) -> dict[str, str]:
    return {"value": value}


def scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def task_info(spec: TaskSpec, agent_id: str, resources: list[dict[str, Any]], options: TaskOptions) -> dict[str, Any]:
    """The TaskInfo for one attempt on one agent, with the resources taken from its offer."""
    command: dict[str, Any] = {
        "shell": False,
        "value": spec.command[0],
        "arguments": list(spec.command),
        "environment": {"variables": [{"name": k, "value": v} for k, v in sorted(spec.environment.items())]},
    }
    if spec.uris:
        command["uris"] = [{"value": u.value, "cache": u.cache, "extract": u.extract, "executable": u.executable}
                           for u in spec.uris]
    if options.user:
        command["user"] = options.user
    info: dict[str, Any] = {
        "name": _task_name(spec),
        "task_id": id_value(spec.task_id),
        "agent_id": id_value(agent_id),
        "resources": resources,
        "command": command,
        "kill_policy": {"grace_period": {"nanoseconds": int(options.kill_grace_seconds * 1e9)}},
        "labels": {"labels": [{"key": k, "value": str(v)} for k, v in sorted(spec.labels.items())]},
    }
    container = _container(options.image or spec.image, options, spec.docker_parameters)
    if container is not None:
        info["container"] = container
    return info


def _task_name(spec: TaskSpec) -> str:
    step = spec.labels.get("step")
    return f"{spec.process}:{step}" if spec.process and step else spec.task_id


def _container(image: str | None, options: TaskOptions,
               parameters: list[tuple[str, str]] | None = None) -> dict[str, Any] | None:
    if options.containerizer == "none" or not image:
        return None
    volumes = [v.to_json() for v in options.volumes]
    if options.containerizer == "docker":
        container: dict[str, Any] = {"type": "DOCKER",
                                     "docker": {"image": image, "network": "HOST", "force_pull_image": False}}
        if parameters:  # docker run options of a task list's task (mesos-batch: container.docker.parameters)
            container["docker"]["parameters"] = [{"key": k, "value": v} for k, v in parameters]
    else:
        container = {"type": "MESOS",
                     "mesos": {"image": {"type": "DOCKER", "docker": {"name": image}, "cached": True}}}
    if volumes:
        container["volumes"] = volumes
    return container
