"""Planning: a job's workflow becomes steps, and steps become tasks.

A step with a split rule gets one task per chunk of items of the split input;
a step without one is one task. Each task's specification (command, its own
part of the ``WPS_TASK`` document, resources, timeout) is fixed at planning
time and kept in the store, so a restart replays exactly the same task. The
job's inputs are stored once, with the job; ``task_environment`` joins them to
a task's document when it is launched, and hands the whole document over in a
file when it would not fit the environment.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes.common.fetch import FetchPolicy
from processes.descriptor import Processor, Step

from .batch import BATCH_PROCESS
from .locality import places_for

# WPS_TASK larger than this goes by file (WPS_TASK_FILE): one environment string may not exceed 128 KiB
# on Linux (E2BIG), and the whole environment shares the limit with the command line.
ENVIRONMENT_DOCUMENT_LIMIT = 32 * 1024


class PlanError(ValueError):
    """The job cannot be planned (e.g. more tasks than a job may have)."""


@dataclass(frozen=True)
class PlannedTask:
    id: str
    seq: int
    step: str
    index: int
    spec: dict[str, Any]
    max_attempts: int
    ready: bool  # no dependencies: may run at once


USAGE_DIR = "usage"  # in a job's folder: the tasks' usage reports


def job_paths(jobs_dir: Path, job_id: str) -> dict[str, Path]:
    root = jobs_dir / job_id
    return {"root": root, "inputs": root / "inputs", "steps": root / "steps", "outputs": root / "outputs",
            "usage": root / USAGE_DIR}


def plan_job(processor: Processor, job_id: str, inputs: dict[str, list[Any]], jobs_dir: Path,
             max_tasks: int, locality_rules: list[tuple[str, str]] | None = None,
             fetch_policy: FetchPolicy | None = None) -> list[PlannedTask]:
    """The tasks of one job, in launch order; ``locality_rules`` say where input items live, ``fetch_policy``
    what the tasks may read and how much (WPS_TASK.fetch)."""
    if processor.id == BATCH_PROCESS:  # a task list: its tasks are the list's, not a split of the descriptor
        from .batch.planner import plan_task_list
        return plan_task_list(processor, job_id, inputs, jobs_dir, max_tasks, fetch_policy)
    paths = job_paths(jobs_dir, job_id)
    fetch = fetch_policy.for_job(paths["inputs"]).to_document() if fetch_policy else None
    tasks: list[PlannedTask] = []
    for step in processor.steps:
        chunks = _chunks(step, inputs)
        for index, items in enumerate(chunks):
            document = task_document(processor, job_id, step, index, len(chunks), items, paths, fetch)
            tasks.append(PlannedTask(
                id=f"{job_id}.{step.id}.{index}",
                seq=len(tasks),
                step=step.id,
                index=index,
                spec=_spec(processor, step, document, places_for(items, locality_rules or [])),
                max_attempts=step.retries + 1,
                ready=not step.depends_on,
            ))
            if len(tasks) > max_tasks:
                raise PlanError(f"the job would need more than {max_tasks} tasks; split the request")
    return tasks


def task_document(processor: Processor, job_id: str, step: Step, index: int, count: int, items: list[Any],
                  paths: dict[str, Path], fetch: dict[str, Any] | None) -> dict[str, Any]:
    """A task's own part of ``WPS_TASK`` (see DESCRIPTOR.md)."""
    return {
        "job_id": job_id,
        "process_id": processor.id,
        "process_version": processor.version,
        "step": step.id,
        "index": index,
        "count": count,
        "items": items,
        "step_dir": str(paths["steps"] / step.id),
        "dep_dirs": {dep: str(paths["steps"] / dep) for dep in step.depends_on},
        "outputs_dir": str(paths["outputs"]),
        "fetch": fetch,
        "usage_dir": str(paths["usage"]),  # where the task leaves its usage report
    }


def count_tasks(processor: Processor, inputs: dict[str, list[Any]]) -> int:
    """How many tasks ``plan_job`` will make of these inputs (known at submission, before planning)."""
    return sum(len(_chunks(step, inputs)) for step in processor.steps)


def task_environment(task_id: str, spec: dict[str, Any], processor: Processor, job_inputs: dict[str, list[Any]],
                     jobs_dir: Path, attempt: str = "", inputs_text: str | None = None) -> dict[str, str]:
    """The environment a task is launched with: its processor's, and the whole ``WPS_TASK`` document.

    The document is the task's own part joined to the job's inputs and, when
    given, the ``attempt`` id (the task names its usage report after it, in
    its ``usage_dir``, made when the job was planned). When the whole would
    exceed ``ENVIRONMENT_DOCUMENT_LIMIT`` the job's inputs are written once to
    ``jobs/<job>/tasks/inputs.json`` and the document names that file
    (``inputs_file``): a job of many tasks over a long input list would
    otherwise copy the list into every task. A task part still too large is
    written to ``jobs/<job>/tasks/<task>.json`` and named by ``WPS_TASK_FILE``
    (the data dir is shared with the machines that run tasks).
    ``inputs_text`` is ``task_inputs_text`` of the job, when the caller keeps it.
    """
    environment = dict(spec.get("environment") or {})
    document = spec.get("task")
    if document is None:  # planned before task documents were kept apart from the inputs
        return environment
    if attempt:
        document = {**document, "attempt": attempt}
    if inputs_text is None:
        inputs_text = task_inputs_text(processor, job_inputs)
    part = json.dumps(document, separators=(",", ":"))
    if len(part) + len(inputs_text) + 11 <= ENVIRONMENT_DOCUMENT_LIMIT:  # 11: ',"inputs":' (ASCII JSON)
        environment["WPS_TASK"] = f'{part[:-1]},"inputs":{inputs_text}}}'
        return environment
    folder = job_paths(jobs_dir, document["job_id"])["root"] / "tasks"
    shared = folder / "inputs.json"
    if not shared.is_file():
        _write_atomically(folder, shared, inputs_text)
    text = json.dumps({**document, "inputs_file": str(shared)}, separators=(",", ":"))
    if len(text) <= ENVIRONMENT_DOCUMENT_LIMIT:
        environment["WPS_TASK"] = text
        return environment
    path = folder / f"{task_id}.json"
    _write_atomically(folder, path, text)
    environment["WPS_TASK_FILE"] = str(path)
    return environment


def task_inputs_text(processor: Processor, job_inputs: dict[str, list[Any]]) -> str:
    """The job's inputs as its tasks see them, as the JSON of ``WPS_TASK`` holds them (the same for every task
    of a job: a dispatcher encodes them once per job)."""
    return json.dumps(_task_inputs(processor, job_inputs), separators=(",", ":"))


def _write_atomically(folder: Path, path: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".task-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _task_inputs(processor: Processor, inputs: dict[str, list[Any]]) -> dict[str, Any]:
    """Inputs as tasks see them: lists where maxOccurs > 1, single values otherwise."""
    out: dict[str, Any] = {}
    for spec in processor.inputs:
        values = inputs.get(spec.id, [])
        out[spec.id] = values if spec.max_occurs > 1 else (values[0] if values else None)
    return out


def _chunks(step: Step, inputs: dict[str, list[Any]]) -> list[list[Any]]:
    if step.split_input is None:
        return [[]]
    items = inputs.get(step.split_input, [])
    if not items:
        return [[]]
    return [items[i:i + step.chunk] for i in range(0, len(items), step.chunk)]


def _spec(processor: Processor, step: Step, document: dict[str, Any], locality: list[str]) -> dict[str, Any]:
    res = step.resources
    bundle = processor.raw.get("bundle")
    return {
        # The processor's code, fetched (and cached by digest) into the task's working directory.
        "uris": [{"value": bundle["uri"], "cache": True, "extract": True}] if bundle else [],
        "locality": locality,
        "command": [*processor.command, *([step.id] if processor.append_step else [])],
        "environment": dict(processor.environment),
        "task": document,  # the task's own part of WPS_TASK; the job's inputs join it at launch
        "resources": {"cpus": res.cpus, "mem": res.mem, "disk": res.disk, "gpus": res.gpus},
        "timeout": step.timeout,
        "image": processor.image,
        "depends_on": list(step.depends_on),
    }
