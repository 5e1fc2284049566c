"""Processor descriptors: the application package of one thematic processor.

A descriptor is plain data (see DESCRIPTOR.md). This module reads it and
checks it once, so that everything downstream (the WPS process, the planner,
the task command) can rely on its shape. It does not import the gateway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
LITERAL_TYPES = {"number", "integer", "string", "boolean"}
UNBOUNDED = 10_000


class DescriptorError(ValueError):
    """The descriptor is not a valid application package; the text says where."""


@dataclass(frozen=True)
class IOSpec:
    """One input or output of a processor."""

    id: str
    title: str
    description: str = ""
    min_occurs: int = 1
    max_occurs: int = 1
    schema: dict[str, Any] = field(default_factory=dict)
    file: str | None = None  # outputs only: file the last step writes

    @property
    def media_type(self) -> str | None:
        return self.schema.get("contentMediaType")

    @property
    def is_complex(self) -> bool:
        return self.media_type is not None

    @property
    def literal_type(self) -> str:
        return self.schema.get("type", "string")

    @property
    def default(self) -> Any:
        return self.schema.get("default")


@dataclass(frozen=True)
class StepResources:
    cpus: float = 1.0
    mem: float = 256.0
    disk: float = 0.0
    gpus: int = 0


@dataclass(frozen=True)
class Step:
    id: str
    depends_on: tuple[str, ...] = ()
    split_input: str | None = None
    chunk: int = 1
    resources: StepResources = field(default_factory=StepResources)
    timeout: float = 600.0
    retries: int = 0


@dataclass(frozen=True)
class Processor:
    """A validated descriptor; ``raw`` keeps the document for storage and deploy."""

    id: str
    version: str
    title: str
    description: str
    keywords: tuple[str, ...]
    inputs: tuple[IOSpec, ...]
    outputs: tuple[IOSpec, ...]
    image: str | None
    command: tuple[str, ...]
    steps: tuple[Step, ...]
    raw: dict[str, Any]
    source: str = ""
    environment: tuple[tuple[str, str], ...] = ()  # executionUnit.environment: what every task gets

    def input(self, input_id: str) -> IOSpec:
        return next(i for i in self.inputs if i.id == input_id)

    def output(self, output_id: str) -> IOSpec:
        return next(o for o in self.outputs if o.id == output_id)


def load_descriptor_file(path: Path) -> Processor:
    """Read ``descriptor.yaml`` and validate it."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DescriptorError(f"{path}: not valid YAML: {exc}") from exc
    return replace(parse_descriptor(raw), source=str(path.parent))


def parse_descriptor(raw: Any) -> Processor:
    """Validate a descriptor document (dict) and build a ``Processor``."""
    if not isinstance(raw, dict):
        raise DescriptorError("descriptor must be a mapping")
    desc = _mapping(raw, "processDescription")
    unit = _mapping(raw, "executionUnit")
    workflow = _mapping(raw, "workflow")

    pid = _identifier(desc.get("id"), "processDescription.id")
    inputs = tuple(_io(name, spec, f"processDescription.inputs.{name}", is_output=False)
                   for name, spec in _mapping(desc, "inputs", required=False).items())
    outputs = tuple(_io(name, spec, f"processDescription.outputs.{name}", is_output=True)
                    for name, spec in _mapping(desc, "outputs").items())
    if not outputs:
        raise DescriptorError("processDescription.outputs: at least one output is required")

    command = unit.get("command")
    if not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
        raise DescriptorError("executionUnit.command: a non-empty list of strings is required")

    steps = _steps(workflow.get("steps"), {i.id: i for i in inputs})
    environment = _environment(unit.get("environment"))
    return Processor(
        id=pid,
        version=_version(desc.get("version", "1.0.0")),
        title=str(desc.get("title", pid)),
        description=str(desc.get("description", "")),
        keywords=tuple(str(k) for k in desc.get("keywords", []) or []),
        inputs=inputs,
        outputs=outputs,
        image=unit.get("image"),
        command=tuple(command),
        steps=steps,
        raw=raw,
        environment=environment,
    )


RESERVED_ENVIRONMENT = ("WPS_TASK", "WPS_TASK_FILE")


def _environment(value: Any) -> tuple[tuple[str, str], ...]:
    """``executionUnit.environment``: NAME: value pairs every task of the processor gets."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise DescriptorError("executionUnit.environment: a mapping of NAME: value is required")
    pairs = []
    for name, text in value.items():
        if not (isinstance(name, str) and name.replace("_", "a").isalnum() and not name[:1].isdigit()):
            raise DescriptorError(f"executionUnit.environment: {name!r} is not a variable name")
        if name in RESERVED_ENVIRONMENT:
            raise DescriptorError(f"executionUnit.environment: {name} is set by the gateway")
        if not isinstance(text, str | int | float) or isinstance(text, bool):
            raise DescriptorError(f"executionUnit.environment.{name}: a string is required")
        pairs.append((name, str(text)))
    return tuple(sorted(pairs))


def _mapping(parent: dict, key: str, required: bool = True) -> dict:
    value = parent.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise DescriptorError(f"{key}: a mapping is required")
    return value


def _version(value: Any) -> str:
    """Versions are kept with every job (32 characters at most, like a semantic version with a build tag)."""
    text = str(value)
    if not text or len(text) > 32 or any(c.isspace() for c in text):
        raise DescriptorError(f"processDescription.version: {text[:40]!r} must be 1 to 32 characters, no spaces")
    return text


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise DescriptorError(f"{where}: {value!r} is not a valid identifier "
                              "(letters, digits, '_', '.', '-'; starting with a letter)")
    return value


def _occurs(value: Any, where: str, default: int) -> int:
    if value is None:
        return default
    if value == "unbounded":
        return UNBOUNDED
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DescriptorError(f"{where}: must be a non-negative integer")
    return value


def _io(name: str, spec: Any, where: str, is_output: bool) -> IOSpec:
    _identifier(name, where)
    if not isinstance(spec, dict):
        raise DescriptorError(f"{where}: a mapping is required")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise DescriptorError(f"{where}.schema: a mapping is required")
    if "contentMediaType" not in schema and schema.get("type") not in LITERAL_TYPES:
        raise DescriptorError(f"{where}.schema: needs contentMediaType (complex) or a type in "
                              f"{sorted(LITERAL_TYPES)} (literal)")
    min_occurs = _occurs(spec.get("minOccurs"), f"{where}.minOccurs", 0 if is_output else 1)
    max_occurs = _occurs(spec.get("maxOccurs"), f"{where}.maxOccurs", 1)
    if max_occurs < max(min_occurs, 1):
        raise DescriptorError(f"{where}: maxOccurs must be at least minOccurs and at least 1")
    file = spec.get("file")
    if is_output and (not isinstance(file, str) or "/" in file or file.startswith(".")):
        raise DescriptorError(f"{where}.file: the plain name of the file the last step writes is required")
    return IOSpec(id=name, title=str(spec.get("title", name)), description=str(spec.get("description", "")),
                  min_occurs=min_occurs, max_occurs=max_occurs, schema=schema, file=file)


def _steps(raw_steps: Any, inputs: dict[str, IOSpec]) -> tuple[Step, ...]:
    if not isinstance(raw_steps, list) or not raw_steps:
        raise DescriptorError("workflow.steps: a non-empty list is required")
    steps: list[Step] = []
    seen: set[str] = set()
    for n, raw in enumerate(raw_steps):
        where = f"workflow.steps[{n}]"
        if not isinstance(raw, dict):
            raise DescriptorError(f"{where}: a mapping is required")
        sid = _identifier(raw.get("id"), f"{where}.id")
        if sid in seen:
            raise DescriptorError(f"{where}.id: duplicate step id {sid!r}")
        depends = tuple(raw.get("depends_on", []) or [])
        for dep in depends:
            if dep not in seen:
                raise DescriptorError(f"{where}.depends_on: {dep!r} is not an earlier step")
        split = raw.get("split") or {}
        split_input = split.get("input") if isinstance(split, dict) else None
        if split and split_input not in inputs:
            raise DescriptorError(f"{where}.split.input: {split_input!r} is not an input of the process")
        chunk = split.get("chunk", 1) if isinstance(split, dict) else 1
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise DescriptorError(f"{where}.split.chunk: must be a positive integer")
        res = raw.get("resources", {}) or {}
        try:
            resources = StepResources(cpus=float(res.get("cpus", 1)), mem=float(res.get("mem", 256)),
                                      disk=float(res.get("disk", 0)), gpus=int(res.get("gpus", 0)))
            timeout = float(raw.get("timeout", 600))
            retries = int(raw.get("retries", 0))
        except (TypeError, ValueError) as exc:
            raise DescriptorError(f"{where}: resources, timeout and retries must be numbers") from exc
        if resources.cpus <= 0 or resources.mem <= 0 or timeout <= 0 or retries < 0:
            raise DescriptorError(f"{where}: cpus, mem and timeout must be positive, retries non-negative")
        steps.append(Step(id=sid, depends_on=depends, split_input=split_input, chunk=chunk,
                          resources=resources, timeout=timeout, retries=retries))
        seen.add(sid)
    return tuple(steps)
