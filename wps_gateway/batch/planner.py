"""Planning a ``batch`` job: the task list becomes planned tasks, fixed in the store like any job's.

Steps (as ``processes/batch/descriptor.yaml`` declares them): ``volume`` (one
operation that reserves and creates the persistent volume, when one is
given and there are tasks), ``tasks`` (one task per task of the list, ready
at once, or once the volume is there) and ``release`` (one operation that
destroys the volume and unreserves, when asked; after the tasks). A task's
spec holds its command, environment, URIs, image, resources and timeout (the
smaller of ``kill_after`` and its own ``max_completion_time``), and its
``WPS_TASK`` document like any task's (its ``outputs_dir`` takes the job's
``result``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mesos_backend import PersistentVolume
from processes.common.fetch import FetchPolicy
from processes.descriptor import Processor, Step

from ..durations import DurationError, parse_duration
from ..planner import PlanError, PlannedTask, job_paths, task_document
from .codec import TaskListError
from .tasklist import BatchTask, read_task_list
from .volume import VolumeSpecError, parse_volume_spec, volume_from_json, volume_json

NO_RESOURCES = {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0}


def plan_task_list(processor: Processor, job_id: str, inputs: dict[str, list[Any]], jobs_dir: Path, max_tasks: int,
                   fetch_policy: FetchPolicy | None = None) -> list[PlannedTask]:
    steps = {step.id: step for step in processor.steps}
    paths = job_paths(jobs_dir, job_id)
    fetch = fetch_policy.for_job(paths["inputs"]).to_document() if fetch_policy else None
    try:
        tasks = read_task_list(_read(first(inputs, "tasks"))) if first(inputs, "tasks") else []
        kill_after = parse_duration(first(inputs, "kill_after"), "kill_after") if first(inputs, "kill_after") else None
        spec = first(inputs, "persistent_volume")
        volume = parse_volume_spec(spec).volume if spec else None
    except (TaskListError, DurationError, VolumeSpecError) as exc:
        raise PlanError(str(exc)) from None
    if len(tasks) > max_tasks:
        raise PlanError(f"the task list has {len(tasks)} tasks, more than the {max_tasks} one job may have")
    planned: list[PlannedTask] = []
    creates = volume is not None and bool(tasks)
    if creates:
        planned.append(_operation(job_id, steps["volume"], volume, "create", len(planned), ready=True))
    for index, task in enumerate(tasks):
        document = task_document(processor, job_id, steps["tasks"], index, len(tasks), [], paths, fetch)
        planned.append(PlannedTask(
            id=f"{job_id}.tasks.{index}", seq=len(planned), step="tasks", index=index,
            spec=_task_spec(task, document, kill_after, volume), max_attempts=steps["tasks"].retries + 1,
            ready=not creates))
    if volume is not None and first(inputs, "remove_persistent_volume"):
        planned.append(_operation(job_id, steps["release"], volume, "destroy", len(planned), ready=not tasks))
    return planned


def engine_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``TaskSpec`` fields a task list's spec adds to a command's: its volume, the operation it is,
    ``docker run`` parameters."""
    fields: dict[str, Any] = {}
    if spec.get("volume"):
        fields["volume"] = volume_from_json(spec["volume"])
    if spec.get("volume_operation"):
        fields["volume_operation"] = spec["volume_operation"]
    if spec.get("docker_parameters"):
        fields["docker_parameters"] = [tuple(pair) for pair in spec["docker_parameters"]]
    return fields


def first(inputs: dict[str, list[Any]], name: str) -> Any:
    values = inputs.get(name) or [None]
    return values[0]


def _read(url: str) -> bytes:
    """The task list the gateway wrote into the job's inputs folder when it accepted the job."""
    path = Path(unquote(urlparse(url).path)) if url.startswith("file:") else Path(url)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PlanError(f"the job's task list {path} cannot be read: {exc.strerror or exc}") from None


def _task_spec(task: BatchTask, document: dict[str, Any], kill_after: float | None,
               volume: PersistentVolume | None) -> dict[str, Any]:
    timeouts = [t for t in (kill_after, task.timeout) if t]
    spec: dict[str, Any] = {
        "uris": list(task.uris),
        "locality": [],
        "command": list(task.command),
        "environment": dict(task.environment),
        "task": document,
        "resources": {**task.resources, "gpus": int(task.resources["gpus"])},
        "timeout": min(timeouts) if timeouts else None,
        "image": task.image,
        "depends_on": ["volume"] if volume is not None else [],
        "name": task.name,
        "task_list_id": task.task_id,  # the list's own id, for people reading the job
    }
    if volume is not None:
        spec["volume"] = volume_json(volume)
    if task.docker_parameters:
        spec["docker_parameters"] = [list(pair) for pair in task.docker_parameters]
    return spec


def _operation(job_id: str, step: Step, volume: PersistentVolume, kind: str, seq: int, ready: bool) -> PlannedTask:
    spec = {"uris": [], "locality": [], "command": ["mesos-volume", kind, volume.volume_id], "environment": {},
            "resources": dict(NO_RESOURCES), "timeout": step.timeout, "image": None,
            "depends_on": list(step.depends_on), "name": f"{kind} volume {volume.volume_id}",
            "volume": volume_json(volume), "volume_operation": kind}
    return PlannedTask(id=f"{job_id}.{step.id}.0", seq=seq, step=step.id, index=0, spec=spec,
                       max_attempts=step.retries + 1, ready=ready)
