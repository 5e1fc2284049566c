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

from .bbox import BBOX_FORMAT, DEFAULT_CRS

IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
LITERAL_TYPES = {"number", "integer", "string", "boolean"}
UNBOUNDED = 10_000
BBOX_MEDIA_TYPES = ("text/xml", "application/json")


class DescriptorError(ValueError):
    """The descriptor is not a valid application package; the text says where."""


@dataclass(frozen=True)
class IOSpec:
    """One input or output of a processor: a literal, complex data (a file) or a bounding box."""

    id: str
    title: str
    description: str = ""
    min_occurs: int = 1
    max_occurs: int = 1
    schema: dict[str, Any] = field(default_factory=dict)
    file: str | None = None  # outputs only: file the last step writes
    formats: tuple[str, ...] = ()  # complex data: the media types offered, the default first
    crs: tuple[str, ...] = ()  # bounding boxes: the CRS URIs accepted, the default first

    @property
    def media_type(self) -> str | None:
        return self.formats[0] if self.formats else None

    @property
    def is_complex(self) -> bool:
        return bool(self.formats)

    @property
    def is_bbox(self) -> bool:
        return bool(self.crs)

    @property
    def kind(self) -> str:
        """``complex``, ``bbox`` or ``literal``."""
        return "complex" if self.is_complex else "bbox" if self.is_bbox else "literal"

    @property
    def literal_type(self) -> str:
        return "bbox" if self.is_bbox else self.schema.get("type", "string")

    @property
    def media_types(self) -> tuple[str, ...]:
        """The formats a value may come in: complex data's own; a literal's text; a bounding box's
        XML (WPS) or JSON (OGC API)."""
        if self.formats:
            return self.formats
        return BBOX_MEDIA_TYPES if self.crs else ("text/plain",)

    def offers(self, media_type: str) -> bool:
        """Whether ``media_type`` is one of ``media_types`` (parameters such as charset aside)."""
        return any(same_media_type(media_type, offered) for offered in self.media_types)

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
    aliases: tuple[str, ...] = ()  # other ids the same processor is offered under
    append_step: bool = True  # executionUnit.appendStep: the step id is the command's last argument

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
    aliases = tuple(_identifier(a, "aliases") for a in _list(raw.get("aliases"), "aliases"))
    append_step = unit.get("appendStep", True)
    if not isinstance(append_step, bool):
        raise DescriptorError("executionUnit.appendStep: true or false is required")
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
        aliases=aliases,
        append_step=append_step,
    )


def same_media_type(given: str, expected: str) -> bool:
    """Media types are equal when their type/subtype are (parameters aside)."""
    def main(value: str) -> str:
        return value.split(";", 1)[0].strip().lower()

    return main(given) == main(expected)


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DescriptorError(f"{where}: a list is required")
    return value


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
    formats = _formats(schema, f"{where}.schema")
    crs = _crs(spec, schema, where) if not formats else ()
    if not formats and not crs and schema.get("type") not in LITERAL_TYPES:
        raise DescriptorError(f"{where}.schema: needs contentMediaType (complex), format: {BBOX_FORMAT} "
                              f"(bounding box) or a type in {sorted(LITERAL_TYPES)} (literal)")
    min_occurs = _occurs(spec.get("minOccurs"), f"{where}.minOccurs", 0 if is_output else 1)
    max_occurs = _occurs(spec.get("maxOccurs"), f"{where}.maxOccurs", 1)
    if max_occurs < max(min_occurs, 1):
        raise DescriptorError(f"{where}: maxOccurs must be at least minOccurs and at least 1")
    file = spec.get("file", name if is_output else None)
    if is_output and (not isinstance(file, str) or not file or "/" in file or file.startswith(".")):
        raise DescriptorError(f"{where}.file: the plain name of the file the last step writes is required")
    return IOSpec(id=name, title=str(spec.get("title", name)), description=str(spec.get("description", "")),
                  min_occurs=min_occurs, max_occurs=max_occurs, schema=schema, file=file, formats=formats, crs=crs)


def _formats(schema: dict[str, Any], where: str) -> tuple[str, ...]:
    """Complex data: one ``contentMediaType``, or a ``oneOf`` of them (the first is the default)."""
    if "contentMediaType" in schema:
        return (_media_type(schema["contentMediaType"], where),)
    choices = schema.get("oneOf")
    if isinstance(choices, list) and choices and all(isinstance(c, dict) and "contentMediaType" in c
                                                     for c in choices):
        return tuple(_media_type(c["contentMediaType"], f"{where}.oneOf") for c in choices)
    return ()


def _media_type(value: Any, where: str) -> str:
    if not isinstance(value, str) or "/" not in value:
        raise DescriptorError(f"{where}.contentMediaType: {value!r} is not a media type")
    return value


def _crs(spec: dict[str, Any], schema: dict[str, Any], where: str) -> tuple[str, ...]:
    """Bounding boxes: ``format: ogc-bbox`` (or in an ``allOf``); ``crs`` lists the CRS accepted."""
    parts = [schema, *(p for p in schema.get("allOf", []) if isinstance(p, dict))]
    if not any(p.get("format") == BBOX_FORMAT for p in parts):
        if "crs" in spec:
            raise DescriptorError(f"{where}.crs: only bounding boxes (format: {BBOX_FORMAT}) have a crs list")
        return ()
    crs = _list(spec.get("crs"), f"{where}.crs") or list(DEFAULT_CRS)
    if not all(isinstance(c, str) and c.strip() for c in crs):
        raise DescriptorError(f"{where}.crs: a list of CRS URIs is required")
    return tuple(c.strip() for c in crs)


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
