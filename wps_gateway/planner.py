"""Planning: a job's workflow becomes steps, and steps become tasks.

A step with a split rule gets one task per chunk of items of the split input;
a step without one is one task. Each task's specification (command,
environment with the ``WPS_TASK`` document, resources, timeout) is fixed at
planning time and kept in the store, so a restart replays exactly the same
task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes.descriptor import Processor, Step

from .locality import places_for


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


def job_paths(jobs_dir: Path, job_id: str) -> dict[str, Path]:
    root = jobs_dir / job_id
    return {"root": root, "inputs": root / "inputs", "steps": root / "steps", "outputs": root / "outputs"}


def plan_job(processor: Processor, job_id: str, inputs: dict[str, list[Any]], jobs_dir: Path,
             max_tasks: int, locality_rules: list[tuple[str, str]] | None = None) -> list[PlannedTask]:
    """The tasks of one job, in launch order; ``locality_rules`` say where input items live."""
    paths = job_paths(jobs_dir, job_id)
    job_inputs = _task_inputs(processor, inputs)
    tasks: list[PlannedTask] = []
    for step in processor.steps:
        chunks = _chunks(step, inputs)
        for index, items in enumerate(chunks):
            document = {
                "job_id": job_id,
                "process_id": processor.id,
                "process_version": processor.version,
                "step": step.id,
                "index": index,
                "count": len(chunks),
                "items": items,
                "inputs": job_inputs,
                "step_dir": str(paths["steps"] / step.id),
                "dep_dirs": {dep: str(paths["steps"] / dep) for dep in step.depends_on},
                "outputs_dir": str(paths["outputs"]),
            }
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
        "command": [*processor.command, step.id],
        "environment": {"WPS_TASK": json.dumps(document, separators=(",", ":"))},
        "resources": {"cpus": res.cpus, "mem": res.mem, "disk": res.disk, "gpus": res.gpus},
        "timeout": step.timeout,
        "image": processor.image,
        "depends_on": list(step.depends_on),
    }
