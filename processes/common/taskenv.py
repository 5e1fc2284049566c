"""Read the ``WPS_TASK`` JSON (see processes/DESCRIPTOR.md) into a small typed object.

The document is in the environment variable ``WPS_TASK``, or, when it is too
large for the environment, in the file that ``WPS_TASK_FILE`` names.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, TaskError
from .fetch import FetchPolicy

ENV_VAR = "WPS_TASK"
FILE_ENV_VAR = "WPS_TASK_FILE"


@dataclass(frozen=True)
class Task:
    """What one task of one step of a job must do; built by :func:`load_task`."""

    step: str
    step_dir: Path
    outputs_dir: Path
    job_id: str = ""
    process_id: str = ""
    process_version: str = ""
    index: int = 0
    count: int = 1
    items: tuple[str, ...] = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)
    dep_dirs: Mapping[str, Path] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fetch: FetchPolicy = field(default_factory=FetchPolicy)  # what references may be read, how much
    attempt: str = ""  # this run's id: the name of its usage report
    usage_dir: Path | None = None  # where the runner leaves the usage report (the job's folder)

    @property
    def usage_report(self) -> Path | None:
        """The file this attempt's usage goes to, when the gateway asked for one."""
        if not self.attempt or self.usage_dir is None or "/" in self.attempt or self.attempt.startswith("."):
            return None
        return self.usage_dir / f"{self.attempt}.json"

    def urls(self, name: str) -> list[str]:
        """The references of a complex input, always as a list (maxOccurs 1 arrives as one value)."""
        value = self.inputs.get(name)
        if value is None:
            raise InputError(f"input {name!r} is required")
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v for v in values):
            raise InputError(f"input {name!r} must be one or more URLs")
        return values

    def number(self, name: str) -> float:
        """A literal number input, falling back to the descriptor default when absent."""
        value = self.inputs.get(name)
        if value is None:
            value = self.defaults.get(name)
        if value is None:
            raise InputError(f"input {name!r} is required")
        if isinstance(value, bool):
            raise InputError(f"input {name!r} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"input {name!r} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise InputError(f"input {name!r} must be a finite number, got {value!r}")
        return number

    def dep_dir(self, step: str) -> Path:
        """The directory where the tasks of an upstream step left their files."""
        try:
            return self.dep_dirs[step]
        except KeyError:
            raise TaskError(f"{ENV_VAR} has no dep_dirs entry for step {step!r}") from None


def load_task(environ: Mapping[str, str] | None = None, defaults: Mapping[str, Any] | None = None) -> Task:
    """Parse and validate ``WPS_TASK`` from ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_VAR)
    if not raw and env.get(FILE_ENV_VAR):
        try:
            raw = Path(env[FILE_ENV_VAR]).read_text(encoding="utf-8")
        except OSError as exc:
            raise TaskError(f"{FILE_ENV_VAR} names a file that cannot be read: {exc}") from None
    if not raw:
        raise TaskError(
            f"environment variable {ENV_VAR} is not set; this program is a task started by the WPS "
            "gateway, see processes/DESCRIPTOR.md for the JSON it expects"
        )
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{ENV_VAR} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TaskError(f"{ENV_VAR} must be a JSON object")
    for key in ("step", "step_dir", "outputs_dir"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise TaskError(f"{ENV_VAR} lacks the string field {key!r}")
    items = data.get("items") or []
    inputs = data.get("inputs") or _read_inputs_file(data.get("inputs_file")) or {}
    dep_dirs = data.get("dep_dirs") or {}
    if not isinstance(items, list) or not isinstance(inputs, dict) or not isinstance(dep_dirs, dict):
        raise TaskError(f"{ENV_VAR}: items must be a list, inputs and dep_dirs objects")
    try:
        fetch = FetchPolicy.from_document(data.get("fetch"))
    except ValueError as exc:
        raise TaskError(f"{ENV_VAR}: {exc}") from None
    return Task(
        step=data["step"],
        step_dir=Path(data["step_dir"]),
        outputs_dir=Path(data["outputs_dir"]),
        job_id=str(data.get("job_id") or ""),
        process_id=str(data.get("process_id") or ""),
        process_version=str(data.get("process_version") or ""),
        index=int(data.get("index") or 0),
        count=int(data.get("count") or 1),
        items=tuple(str(item) for item in items),
        inputs=inputs,
        dep_dirs={str(k): Path(v) for k, v in dep_dirs.items()},
        defaults=dict(defaults or {}),
        fetch=fetch,
        attempt=str(data.get("attempt") or ""),
        usage_dir=Path(data["usage_dir"]) if isinstance(data.get("usage_dir"), str) and data["usage_dir"] else None,
    )


def _read_inputs_file(path: Any) -> Any:
    """The job's inputs from the file a large job's tasks share (``inputs_file``), instead of each its copy."""
    if not path:
        return None
    try:
        return json.loads(Path(str(path)).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TaskError(f"{ENV_VAR}: inputs_file cannot be read: {exc}") from None
