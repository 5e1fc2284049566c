"""The processor registry: descriptor folders in, PyWPS processes out.

Adding a processor means adding a folder with a ``descriptor.yaml``; the
registry finds it. The PyWPS processes built here only describe; their
handler is never called, because the gateway runs jobs through its own
dispatcher instead of in-process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from pywps import (
    BoundingBoxInput,
    BoundingBoxOutput,
    ComplexInput,
    ComplexOutput,
    Format,
    LiteralInput,
    LiteralOutput,
    Process,
)
from pywps.inout.literaltypes import AllowedValue, AnyValue
from pywps.validator.mode import MODE

from .descriptor import DescriptorError, IOSpec, Processor, load_descriptor_file

LOG = logging.getLogger(__name__)
BUILTIN_DIR = Path(__file__).resolve().parent
PYWPS_LITERAL_TYPES = {"number": "float", "integer": "integer", "string": "string", "boolean": "boolean"}


def discover(paths: Iterable[Path] = ()) -> dict[str, Processor]:
    """All processors in the shipped folder and in ``paths``, by id.

    A broken descriptor is logged and skipped so that one bad folder does not
    take the service down; two folders claiming one id is an error.
    """
    found: dict[str, Processor] = {}
    for root in (BUILTIN_DIR, *paths):
        for descriptor in sorted(Path(root).glob("*/descriptor.yaml")):
            try:
                processor = load_descriptor_file(descriptor)
            except DescriptorError as exc:
                LOG.error("skipping processor %s: %s", descriptor, exc)
                continue
            for offered in (processor, *(as_alias(processor, alias) for alias in processor.aliases)):
                if offered.id in found:
                    raise DescriptorError(
                        f"processor id {offered.id!r} is defined twice: {found[offered.id].source} "
                        f"and {offered.source}")
                found[offered.id] = offered
    return found


def as_alias(processor: Processor, alias: str) -> Processor:
    """The same processor offered under another id (``aliases`` in its descriptor): its jobs carry the alias."""
    description = {**processor.raw["processDescription"], "id": alias}
    raw = {k: v for k, v in processor.raw.items() if k != "aliases"}
    return replace(processor, id=alias, aliases=(), raw={**raw, "processDescription": description})


def to_pywps_process(processor: Processor) -> Process:
    """A describe-only PyWPS process for WPS capabilities, DescribeProcess and input parsing."""
    return Process(
        handler=_never_called,
        identifier=processor.id,
        title=processor.title,
        abstract=processor.description,
        keywords=[],  # WPS 1.0.0 process briefs have no keywords: PyWPS would emit invalid XML
        version=processor.version,
        inputs=[_pywps_input(i) for i in processor.inputs],
        outputs=[_pywps_output(o) for o in processor.outputs],
        store_supported=True,
        status_supported=True,
    )


def _never_called(request, response):  # pragma: no cover - guarded by the gateway
    raise RuntimeError("gateway processes run through the dispatcher, not in-process")


def _formats(spec: IOSpec) -> list[Format]:
    return [Format(media_type, extension=_extension(media_type)) for media_type in spec.formats]


def _extension(media_type: str | None) -> str | None:
    if not media_type:
        return None
    if "tiff" in media_type:
        return ".tif"
    if "json" in media_type:
        return ".json"
    return None


def _allowed_values(spec: IOSpec) -> list:
    schema = spec.schema
    if "enum" in schema:
        return list(schema["enum"])
    if "minimum" in schema or "maximum" in schema:
        return [AllowedValue(minval=schema.get("minimum"), maxval=schema.get("maximum"))]
    return []


def _pywps_input(spec: IOSpec):
    common = dict(title=spec.title, abstract=spec.description, min_occurs=spec.min_occurs,
                  max_occurs=spec.max_occurs)
    if spec.is_complex:
        return ComplexInput(spec.id, supported_formats=_formats(spec), mode=MODE.NONE, **common)
    if spec.is_bbox:
        return BoundingBoxInput(spec.id, crss=list(spec.crs), mode=MODE.NONE, **common)
    allowed = _allowed_values(spec)
    return LiteralInput(spec.id, data_type=PYWPS_LITERAL_TYPES[spec.literal_type],
                        allowed_values=allowed or AnyValue(), default=spec.default,
                        mode=MODE.SIMPLE if allowed else MODE.NONE, **common)


def _pywps_output(spec: IOSpec):
    if spec.is_complex:
        return ComplexOutput(spec.id, spec.title, supported_formats=_formats(spec), abstract=spec.description,
                             as_reference=True)
    if spec.is_bbox:
        return BoundingBoxOutput(spec.id, spec.title, crss=list(spec.crs), abstract=spec.description)
    return LiteralOutput(spec.id, spec.title, data_type=PYWPS_LITERAL_TYPES[spec.literal_type],
                         abstract=spec.description)
