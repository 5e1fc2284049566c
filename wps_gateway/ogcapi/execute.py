"""Execute requests of OGC API - Processes: JSON in, ``RawInput``s and a ``ResponseForm`` out.

Only the shape of the request is checked here; the inputs themselves go
through ``check_inputs`` like WPS inputs do (types, occurrences, the address
policy for references), so both protocols accept and refuse the same things.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request

from processes.descriptor import IOSpec, Processor

from ..inputs import RawInput
from ..jobs import ResponseForm
from .problems import Problem, invalid_parameter

JSON_TYPES = ("application/json",)
MEMBERS = {"inputs", "outputs", "response", "subscriber"}
SCALARS = (str, int, float, bool)


@dataclass
class ExecuteRequest:
    """What a client asked for: inputs as the protocol carried them, and how to answer."""

    inputs: dict[str, list[RawInput]]
    form: ResponseForm
    subscriber: Any = None  # checked against the callback policy by the caller


def read_json_body(request: Request, limit: int) -> Any:
    """The request body as JSON; 413 past ``limit`` bytes, 415 for other media types, 400 when malformed."""
    media_type = request.mimetype
    if media_type and media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise Problem(415, "Unsupported media type", f"an execute request is JSON (application/json), "
                                                     f"not {media_type}")
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise too_large(limit)
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Problem(400, "Malformed request", f"the request body is not valid JSON: {exc}") from None


def too_large(limit: int) -> Problem:
    return Problem(413, "Request body too large", f"the request body exceeds the limit of {limit} bytes",
                   limit=limit)


def prefers_async(prefer: str | None) -> bool:
    """RFC 7240 ``Prefer: respond-async`` (among other preferences, with or without parameters)."""
    tokens = (part.split(";", 1)[0].split("=", 1)[0].strip().lower() for part in (prefer or "").split(","))
    return "respond-async" in tokens


def parse_execute(document: Any, processor: Processor, asynchronous: bool) -> ExecuteRequest:
    """Read an execute request; raise ``invalid_parameter`` naming the member at fault."""
    if not isinstance(document, dict):
        raise invalid_parameter("an execute request is a JSON object with 'inputs', 'outputs' and 'response'",
                                "body")
    unknown = sorted(set(document) - MEMBERS)
    if unknown:  # a misspelt member ("input") would otherwise run the process without what it meant
        raise invalid_parameter(f"an execute request has no member {', '.join(map(repr, unknown))}; its members "
                                f"are {', '.join(sorted(MEMBERS))}", unknown[0])
    response = document.get("response", "raw")
    if response not in ("raw", "document"):
        raise invalid_parameter(f"'response' must be 'raw' or 'document', not {response!r}", "response")
    inputs = _inputs(document.get("inputs", {}), processor)
    outputs = _outputs(document.get("outputs", {}), processor)
    form = ResponseForm(outputs=outputs, raw=response == "raw", asynchronous=asynchronous)
    return ExecuteRequest(inputs, form, document.get("subscriber"))


def _inputs(given: Any, processor: Processor) -> dict[str, list[RawInput]]:
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise invalid_parameter("'inputs' must be an object mapping input ids to values", "inputs")
    specs = {spec.id: spec for spec in processor.inputs}
    raw: dict[str, list[RawInput]] = {}
    for name, value in given.items():
        items = value if isinstance(value, list) else [value]
        raw[name] = [_occurrence(name, item, specs.get(name)) for item in items]
    return raw


def _occurrence(name: str, item: Any, spec: IOSpec | None) -> RawInput:
    """One value: a literal, ``{"href", "type"}``, or ``{"value", "mediaType", "encoding"}``."""
    literal = spec is not None and spec.kind == "literal"
    if isinstance(item, dict):
        if "bbox" in item:
            if spec is not None and not spec.is_bbox:
                raise _bad(name, f"is a {spec.kind} input, not a bounding box")
            return RawInput(value=item)  # checked against the process's bounding box input
        if "href" in item:
            if not isinstance(item["href"], str) or not item["href"]:
                raise _bad(name, "'href' must be a non-empty string")
            return RawInput(href=item["href"], media_type=_text(name, item, "type"))
        if "value" in item:
            value = item["value"]
            if isinstance(value, dict | list):
                if literal:
                    raise _bad(name, f"is a literal input: a {spec.literal_type} is expected, not an object")
                value = json.dumps(value)
            return _scalar(name, value, spec, media_type=_text(name, item, "mediaType"),
                           encoding=_text(name, item, "encoding"))
        raise _bad(name, "an object value needs 'href' (a reference), 'value' (a qualified value) or 'bbox' "
                         "(a bounding box)")
    return _scalar(name, item, spec)


def _scalar(name: str, value: Any, spec: IOSpec | None, **qualifiers: str | None) -> RawInput:
    """A plain value: a literal of the right kind, or a complex input's inline content (a string)."""
    if not isinstance(value, SCALARS):
        raise _bad(name, f"unsupported value {json.dumps(value)[:80]}: nested arrays and nulls are not allowed")
    if spec is not None and spec.is_complex and not isinstance(value, str):
        raise _bad(name, 'takes a file: give a reference {"href": ...} or the content as a string')
    if spec is not None and isinstance(value, bool) and spec.literal_type in ("integer", "number"):
        raise _bad(name, f"must be a {spec.literal_type}, got {json.dumps(value)}")
    return RawInput(value=value, **qualifiers)


def _text(name: str, item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad(name, f"'{key}' must be a string")
    return value or None


def _bad(name: str, why: str) -> Problem:
    return invalid_parameter(f"input {name!r} {why}", name, input=name)


def _outputs(given: Any, processor: Processor) -> dict[str, dict[str, Any]]:
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise invalid_parameter("'outputs' must be an object mapping output ids to output definitions", "outputs")
    specs = {spec.id: spec for spec in processor.outputs}
    requested: dict[str, dict[str, Any]] = {}
    for name, definition in given.items():
        spec = specs.get(name)
        if spec is None:
            raise invalid_parameter(f"process {processor.id!r} has no output {name!r}; its outputs are: "
                                    f"{', '.join(specs)}", name, output=name)
        requested[name] = _output(spec, definition if definition is not None else {})
    return requested


def _output(spec: IOSpec, definition: Any) -> dict[str, Any]:
    if not isinstance(definition, dict):
        raise invalid_parameter(f"output {spec.id!r}: the definition must be an object", spec.id, output=spec.id)
    mode = definition.get("transmissionMode")
    if mode not in (None, "value", "reference"):
        raise invalid_parameter(f"output {spec.id!r}: transmissionMode must be 'value' or 'reference', "
                                f"not {mode!r}", spec.id, output=spec.id)
    fmt = definition.get("format") or {}
    media_type = fmt.get("mediaType") if isinstance(fmt, dict) else None
    if media_type is not None and (not isinstance(media_type, str) or not spec.offers(media_type)):
        raise invalid_parameter(f"output {spec.id!r} is only available as {' or '.join(spec.media_types)}, not "
                                f"{media_type!r}", spec.id, output=spec.id)
    return {"as_reference": None if mode is None else mode == "reference", "mime_type": media_type}
