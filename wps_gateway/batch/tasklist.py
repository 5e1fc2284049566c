"""Task lists as mesos-batch takes them: Mesos ``TaskGroupInfo`` JSON, read as a master's JSON codec reads it.

``{"tasks": [TaskInfo, ...]}``, each task with ``name``, ``task_id.value``,
``resources`` (scalars ``cpus``, ``mem``, ``disk``, ``gpus``), ``command``
(``value``, ``shell``, ``arguments``, ``environment.variables``, ``uris``) and
optionally ``container.docker`` (``image``, ``parameters``) or
``container.mesos.image``. Like stout's codec, unknown keys are ignored,
``null`` is absent, numbers and booleans may be written as strings and a
single value stands for a one-item array; ``agent_id`` need not be set (the
gateway places tasks itself) and ``role``/``reservation`` of a resource are
accepted as written (the framework uses resources reserved for its role
first). What the gateway cannot honour is refused rather than dropped:
custom executors, health checks, container volumes, a task's own user,
secret environment variables, URIs with an ``output_file``.

A bad list is one ``TaskListError`` naming the first bad field
(``tasks[2].command.value: ...``); nothing of it is run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .codec import TaskListError, json_array, json_boolean, json_number, json_object, json_string

__all__ = ["BatchTask", "TaskListError", "load_task_list", "read_task_list"]
SCALARS = ("cpus", "mem", "disk", "gpus")
UNSUPPORTED = {"executor": "custom executors are not supported: give a command",
               "health_check": "health checks are not supported by batch tasks",
               "check": "checks are not supported by batch tasks"}


@dataclass(frozen=True)
class BatchTask:
    """One task of a list, as the gateway runs it."""

    task_id: str
    name: str
    command: tuple[str, ...]  # argv
    environment: dict[str, str]
    resources: dict[str, float]  # cpus, mem, disk, gpus
    uris: tuple[dict[str, Any], ...] = ()  # FetchUri fields: value, cache, extract, executable
    image: str | None = None
    docker_parameters: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None  # max_completion_time
    volume_id: str | None = None  # a persistent volume its resources name


def load_task_list(value: str) -> bytes:
    """What mesos-batch's ``--task_list`` takes: a JSON string, a ``file://`` URL or a path."""
    text = value.strip()
    if text.startswith(("{", "[")):
        return text.encode()
    path = Path(unquote(urlparse(text).path)) if text.startswith("file://") else Path(text)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TaskListError("", f"cannot read the task list {value!r}: {exc.strerror or exc}") from None


def read_task_list(content: bytes | str) -> list[BatchTask]:
    """The tasks of a TaskGroupInfo document; TaskListError for the first thing wrong."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError) as exc:
        raise TaskListError("", f"the task list is not valid JSON: {exc}") from None
    group = json_object(document, "TaskGroupInfo")
    tasks = json_array(group.get("tasks"), "tasks")
    if not tasks:
        raise TaskListError("tasks", "at least one task is required")
    parsed = [_task(item, f"tasks[{n}]") for n, item in enumerate(tasks)]
    seen: dict[str, int] = {}
    for n, task in enumerate(parsed):
        if task.task_id in seen:
            raise TaskListError(f"tasks[{n}].task_id.value",
                                f"{task.task_id!r} is the id of tasks[{seen[task.task_id]}] too")
        seen[task.task_id] = n
    return parsed


def _task(value: Any, where: str) -> BatchTask:
    info = json_object(value, where)
    for key, why in UNSUPPORTED.items():
        if info.get(key) is not None:
            raise TaskListError(f"{where}.{key}", why)
    name = json_string(info.get("name"), f"{where}.name", required=True)
    task_id = json_string(json_object(info.get("task_id"), f"{where}.task_id", required=True).get("value"),
                      f"{where}.task_id.value", required=True)
    if info.get("agent_id") is not None:
        json_object(info["agent_id"], f"{where}.agent_id")
    resources, volume_id = _resources(info.get("resources"), f"{where}.resources")
    command = json_object(info.get("command"), f"{where}.command")
    if not command:
        raise TaskListError(f"{where}.command", "a command is required")
    image, parameters = _container(info.get("container"), f"{where}.container")
    timeout = None
    if info.get("max_completion_time") is not None:
        nanos = json_number(json_object(info["max_completion_time"], f"{where}.max_completion_time").get("nanoseconds"),
                        f"{where}.max_completion_time.nanoseconds", required=True)
        if nanos <= 0:
            raise TaskListError(f"{where}.max_completion_time.nanoseconds", "must be more than zero")
        timeout = nanos / 1e9
    return BatchTask(task_id=task_id, name=name, command=_argv(command, f"{where}.command"),
                     environment=_environment(command.get("environment"), f"{where}.command.environment"),
                     resources=resources, uris=_uris(command.get("uris"), f"{where}.command.uris"), image=image,
                     docker_parameters=parameters, timeout=timeout, volume_id=volume_id)


def _resources(value: Any, where: str) -> tuple[dict[str, float], str | None]:
    amounts = dict.fromkeys(SCALARS, 0.0)
    volume_id = None
    for n, item in enumerate(json_array(value, where)):
        at = f"{where}[{n}]"
        resource = json_object(item, at)
        name = json_string(resource.get("name"), f"{at}.name", required=True)
        kind = json_string(resource.get("type"), f"{at}.type", required=True)
        if kind not in ("SCALAR", "RANGES", "SET", "TEXT"):
            raise TaskListError(f"{at}.type", f"{kind!r} is not a Value.Type (SCALAR, RANGES, SET, TEXT)")
        if name not in SCALARS or kind != "SCALAR":
            raise TaskListError(f"{at}.name", f"only the SCALAR resources {', '.join(SCALARS)} are supported, "
                                              f"not {kind} {name!r}")
        amount = json_number(json_object(resource.get("scalar"), f"{at}.scalar", required=True).get("value"),
                         f"{at}.scalar.value", required=True)
        if amount < 0:
            raise TaskListError(f"{at}.scalar.value", f"must not be negative, not {amount:g}")
        disk = resource.get("disk")
        if disk is not None:
            persistence = json_object(json_object(disk, f"{at}.disk").get("persistence"), f"{at}.disk.persistence")
            if persistence:
                volume_id = json_string(persistence.get("id"), f"{at}.disk.persistence.id", required=True)
                continue  # the volume: all of it goes to the task, besides its own disk
        amounts[name] += amount
    for name in ("cpus", "mem"):
        if amounts[name] <= 0:
            raise TaskListError(where, f"a {name} resource (more than zero) is required")
    if amounts["gpus"] != int(amounts["gpus"]):
        raise TaskListError(where, f"gpus must be a whole number, not {amounts['gpus']:g}")
    return amounts, volume_id


def _argv(command: dict[str, Any], where: str) -> tuple[str, ...]:
    """Mesos's CommandInfo: with ``shell`` (the default) ``value`` runs under ``/bin/sh -c``; without it
    ``value`` is the program and ``arguments`` its argv (argv[0] first)."""
    if command.get("user") is not None:
        raise TaskListError(f"{where}.user", "tasks run as the gateway's configured user ([local] run_as, "
                                             "[mesos] user, [yarn] user), not one of their own")
    shell = json_boolean(command.get("shell"), f"{where}.shell", default=True)
    value = json_string(command.get("value"), f"{where}.value", required=True)
    if not value.strip():
        raise TaskListError(f"{where}.value", "must not be empty")
    arguments = [json_string(a, f"{where}.arguments[{n}]", required=True)
                 for n, a in enumerate(json_array(command.get("arguments"), f"{where}.arguments"))]
    if shell:
        return ("/bin/sh", "-c", value)
    return (value, *arguments[1:])


def _environment(value: Any, where: str) -> dict[str, str]:
    environment = {}
    for n, item in enumerate(json_array(json_object(value, where).get("variables"), f"{where}.variables")):
        at = f"{where}.variables[{n}]"
        variable = json_object(item, at)
        if variable.get("type") not in (None, "VALUE"):
            raise TaskListError(f"{at}.type", "only VALUE variables are supported (secrets are not)")
        name = json_string(variable.get("name"), f"{at}.name", required=True)
        if not name or "=" in name or "\0" in name:
            raise TaskListError(f"{at}.name", f"{name!r} is not a variable name")
        environment[name] = json_string(variable.get("value"), f"{at}.value") or ""
    return environment


def _uris(value: Any, where: str) -> tuple[dict[str, Any], ...]:
    uris = []
    for n, item in enumerate(json_array(value, where)):
        at = f"{where}[{n}]"
        uri = json_object(item, at)
        if uri.get("output_file") is not None:
            raise TaskListError(f"{at}.output_file", "is not supported: the file keeps the URI's name")
        uris.append({"value": json_string(uri.get("value"), f"{at}.value", required=True),
                     "executable": json_boolean(uri.get("executable"), f"{at}.executable", default=False),
                     "extract": json_boolean(uri.get("extract"), f"{at}.extract", default=True),
                     "cache": json_boolean(uri.get("cache"), f"{at}.cache", default=False)})
    return tuple(uris)


def _container(value: Any, where: str) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    container = json_object(value, where)
    if not container:
        return None, ()
    kind = json_string(container.get("type"), f"{where}.type") or "MESOS"
    if kind not in ("DOCKER", "MESOS"):
        raise TaskListError(f"{where}.type", f"{kind!r} is not DOCKER or MESOS")
    if container.get("volumes") is not None:
        raise TaskListError(f"{where}.volumes", "per-task volumes are not supported: the operator's [mesos] "
                                                "volumes are mounted into every task")
    docker = json_object(container.get("docker"), f"{where}.docker")
    mesos = json_object(container.get("mesos"), f"{where}.mesos")
    mesos_image = json_object(mesos.get("image"), f"{where}.mesos.image")
    if docker:
        image = json_string(docker.get("image"), f"{where}.docker.image", required=True)
        parameters = []
        for n, item in enumerate(json_array(docker.get("parameters"), f"{where}.docker.parameters")):
            at = f"{where}.docker.parameters[{n}]"
            parameter = json_object(item, at)
            parameters.append((json_string(parameter.get("key"), f"{at}.key", required=True),
                               json_string(parameter.get("value"), f"{at}.value", required=True)))
        return image, tuple(parameters)
    if mesos_image:
        name = json_object(mesos_image.get("docker"), f"{where}.mesos.image.docker").get("name")
        return json_string(name, f"{where}.mesos.image.docker.name", required=True), ()
    if kind == "DOCKER":
        raise TaskListError(f"{where}.docker", "a DOCKER container needs docker.image")
    return None, ()
