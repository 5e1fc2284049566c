"""Checking execute inputs against a processor, whatever protocol they came in.

WPS 1.0.0, WPS 2.0 and OGC API - Processes parse their requests into
``RawInput`` values; this module checks them against the processor's
descriptor and turns them into the JSON-able values a job keeps: typed
literals, and URLs for complex data (inline data is written to the job's
input folder first, so that every task reads a file).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes.bbox import BBoxError, bbox_value
from processes.descriptor import IOSpec, Processor

from .address_policy import AddressPolicy, ReferenceRefused
from .references import ReferenceUnreadable, read_literal


class InputError(ValueError):
    """An input is missing or wrong; ``code`` is the OWS exception code, ``locator`` the input.

    ``kind`` says what is wrong, for protocols with finer codes (WPS 2.0): ``unknown`` input,
    ``missing``, ``too_many`` values, wrong ``format``, reference ``refused``, or a bad ``value``.
    """

    def __init__(self, code: str, locator: str, message: str, kind: str = "value") -> None:
        super().__init__(message)
        self.code = code
        self.locator = locator
        self.message = message
        self.kind = kind


@dataclass
class RawInput:
    """One occurrence of an input as a request carried it."""

    value: Any = None  # literal value, inline complex content (str/bytes), or a bounding box (dict)
    href: str | None = None
    media_type: str | None = None
    encoding: str | None = None  # "base64" for encoded inline content


@dataclass
class CheckedInputs:
    values: dict[str, list[Any]]
    inline: dict[str, list[tuple[int, bytes]]]  # input id -> [(occurrence, content)] to write


def check_inputs(processor: Processor, raw: dict[str, list[RawInput]], policy: AddressPolicy) -> CheckedInputs:
    """Validate ``raw`` and return job inputs; raise ``InputError`` on the first problem."""
    known = {spec.id: spec for spec in processor.inputs}
    for name in raw:
        if name not in known:
            raise InputError("InvalidParameterValue", name,
                             f"process {processor.id!r} has no input {name!r}; "
                             f"its inputs are: {', '.join(known) or 'none'}", kind="unknown")
    values: dict[str, list[Any]] = {}
    inline: dict[str, list[tuple[int, bytes]]] = {}
    for spec in processor.inputs:
        given = raw.get(spec.id, [])
        if not given:
            if spec.default is not None:
                values[spec.id] = [spec.default]
            elif spec.min_occurs > 0:
                raise InputError("MissingParameterValue", spec.id, f"input {spec.id!r} is required", kind="missing")
            continue
        if len(given) < spec.min_occurs or len(given) > spec.max_occurs:
            raise InputError("InvalidParameterValue", spec.id,
                             f"input {spec.id!r} takes {spec.min_occurs} to {spec.max_occurs} values, "
                             f"{len(given)} given", kind="too_many" if len(given) > spec.max_occurs else "missing")
        checked: list[Any] = []
        for n, item in enumerate(given):
            if spec.is_complex:
                checked.append(_complex(spec, item, policy, n, inline))
            elif spec.is_bbox:
                checked.append(_bbox(spec, item))
            else:
                checked.append(_literal(spec, item, policy))
        values[spec.id] = checked
    return CheckedInputs(values, inline)


def _literal(spec: IOSpec, item: RawInput, policy: AddressPolicy) -> Any:
    """A literal value, or the text a literal reference points to."""
    if item.media_type and not spec.offers(item.media_type):
        raise InputError("InvalidParameterValue", spec.id, f"input {spec.id!r} is a literal "
                         f"(text/plain), not {item.media_type}", kind="format")
    if not item.href:
        return literal_value(spec, item.value)
    try:
        return literal_value(spec, read_literal(item.href, policy))
    except ReferenceUnreadable as exc:
        raise InputError("InvalidParameterValue", spec.id, f"input {spec.id!r}: {exc}", kind="refused") from exc


def _bbox(spec: IOSpec, item: RawInput) -> dict[str, Any]:
    if item.href:
        raise InputError("InvalidParameterValue", spec.id,
                         f"input {spec.id!r} is a bounding box: give its value, not a reference")
    try:
        return bbox_value(item.value, spec.crs)
    except BBoxError as exc:
        raise InputError("InvalidParameterValue", spec.id, f"input {spec.id!r}: {exc}") from exc


def _complex(spec: IOSpec, item: RawInput, policy: AddressPolicy, n: int,
             inline: dict[str, list[tuple[int, bytes]]]) -> str | None:
    if item.media_type and not spec.offers(item.media_type):
        raise InputError("InvalidParameterValue", spec.id,
                         f"input {spec.id!r} takes {' or '.join(spec.formats)}, not {item.media_type}",
                         kind="format")
    if item.href:
        try:
            return policy.check(item.href)
        except ReferenceRefused as exc:
            raise InputError("InvalidParameterValue", spec.id, f"input {spec.id!r}: {exc}", kind="refused") from exc
    if item.value in (None, ""):
        raise InputError("MissingParameterValue", spec.id, f"input {spec.id!r} has neither data nor a reference",
                         kind="missing")
    content = item.value
    if item.encoding and item.encoding.lower() == "base64":
        try:  # xs:base64Binary allows whitespace (line breaks every 76 characters are common)
            text = content.decode("ascii") if isinstance(content, bytes) else str(content)
            content = base64.b64decode("".join(text.split()), validate=True)
        except (ValueError, TypeError) as exc:
            raise InputError("InvalidParameterValue", spec.id, f"input {spec.id!r}: invalid base64") from exc
    if isinstance(content, str):
        content = content.encode("utf-8")
    if not isinstance(content, bytes):  # a protocol's parser let a structure through
        raise InputError("InvalidParameterValue", spec.id,
                         f"input {spec.id!r} takes a file: give a reference or its content as text")
    inline.setdefault(spec.id, []).append((n, content))
    return None  # filled in with the file's URL once written


def literal_value(spec: IOSpec, value: Any) -> Any:
    """Convert a literal to the declared type and check its allowed values."""
    kind = spec.literal_type
    try:
        if kind == "number":
            converted: Any = float(value)
            if not math.isfinite(converted):
                raise ValueError("not finite")
        elif kind == "integer":
            converted = int(str(value).strip()) if not isinstance(value, int) else value
        elif kind == "boolean":
            converted = _boolean(value)
        else:
            converted = str(value)
    except (TypeError, ValueError) as exc:
        raise InputError("InvalidParameterValue", spec.id,
                         f"input {spec.id!r} must be a {kind}, got {value!r}") from exc
    schema = spec.schema
    if "enum" in schema and converted not in schema["enum"]:
        raise InputError("InvalidParameterValue", spec.id,
                         f"input {spec.id!r} must be one of {schema['enum']}, got {converted!r}")
    if "minimum" in schema and converted < schema["minimum"]:
        raise InputError("InvalidParameterValue", spec.id,
                         f"input {spec.id!r} must be at least {schema['minimum']}, got {converted!r}")
    if "maximum" in schema and converted > schema["maximum"]:
        raise InputError("InvalidParameterValue", spec.id,
                         f"input {spec.id!r} must be at most {schema['maximum']}, got {converted!r}")
    return converted


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(text)


def write_inline_inputs(checked: CheckedInputs, processor: Processor, inputs_dir: Path) -> dict[str, list[Any]]:
    """Write inline complex data to files and put their URLs into the input values."""
    values = {k: list(v) for k, v in checked.values.items()}
    for input_id, items in checked.inline.items():
        suffix = _suffix(processor.input(input_id).media_type or "")
        inputs_dir.mkdir(parents=True, exist_ok=True)
        for n, content in items:
            path = inputs_dir / f"{input_id}_{n}{suffix}"
            path.write_bytes(content)
            values[input_id][n] = path.resolve().as_uri()
    return values


def _suffix(media_type: str) -> str:
    if "tiff" in media_type:
        return ".tif"
    if "json" in media_type:
        return ".json"
    if "xml" in media_type:
        return ".xml"
    return ".dat"
