"""Bounding boxes: the one value shape every protocol maps onto.

A bounding box is ``{"bbox": [minx, miny, maxx, maxy], "crs": URI}`` (or six
numbers for three dimensions), as in the OGC API - Processes ``bbox`` schema.
WPS 1.0.0 and 2.0 carry the same value as an ``ows:BoundingBox`` with
lower and upper corners; tasks receive it and write it in this JSON form.
It does not import the gateway.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
DEFAULT_CRS = (CRS84, EPSG4326)
BBOX_FORMAT = "ogc-bbox"
_EPSG = re.compile(r"^(?:EPSG:|urn:ogc:def:crs:EPSG:[0-9.]*:|https?://www\.opengis\.net/def/crs/EPSG/0/)(\d+)$", re.I)
_CRS84 = re.compile(r"^(?:CRS:?84|urn:ogc:def:crs:OGC:[0-9.]*:CRS84|https?://www\.opengis\.net/def/crs/OGC/1\.3/CRS84)$",
                    re.I)


class BBoxError(ValueError):
    """Not a bounding box; the text says why."""


def bbox_value(value: Any, supported: tuple[str, ...] = ()) -> dict[str, Any]:
    """A checked bounding box from its JSON form; ``supported`` (when given) are the CRS allowed."""
    if not isinstance(value, dict) or "bbox" not in value:
        raise BBoxError('a bounding box is an object {"bbox": [minx, miny, maxx, maxy], "crs": URI}')
    unknown = set(value) - {"bbox", "crs"}
    if unknown:
        raise BBoxError(f"a bounding box has only bbox and crs, not {', '.join(sorted(unknown))}")
    coords = value["bbox"]
    if not isinstance(coords, list) or len(coords) not in (4, 6):
        raise BBoxError("bbox must be a list of 4 (2D) or 6 (3D) numbers")
    numbers = [_number(c) for c in coords]
    half = len(numbers) // 2
    if any(low > high for low, high in zip(numbers[:half], numbers[half:], strict=True)):
        raise BBoxError(f"bbox {numbers}: each lower coordinate must not exceed the upper one")
    crs = value.get("crs", supported[0] if supported else CRS84)
    if not isinstance(crs, str) or not crs.strip():
        raise BBoxError("crs must be a CRS URI")
    crs = canonical_crs(crs)
    if supported and crs not in {canonical_crs(c) for c in supported}:
        raise BBoxError(f"crs {crs!r} is not supported here; use one of {', '.join(supported)}")
    return {"bbox": numbers, "crs": crs}


def canonical_crs(crs: str) -> str:
    """One spelling per CRS: ``EPSG:4326`` and its URN forms become the OGC http URI, likewise CRS84."""
    crs = crs.strip()
    epsg = _EPSG.match(crs)
    if epsg:
        return f"http://www.opengis.net/def/crs/EPSG/0/{epsg.group(1)}"
    return CRS84 if _CRS84.match(crs) else crs


def bbox_from_text(text: str) -> dict[str, Any]:
    """A bounding box a task wrote (JSON text)."""
    try:
        return bbox_value(json.loads(text))
    except json.JSONDecodeError as exc:
        raise BBoxError(f"not JSON: {exc}") from None


def bbox_from_corners(lower: str, upper: str, crs: str | None, supported: tuple[str, ...] = ()) -> dict[str, Any]:
    """A bounding box from OWS ``LowerCorner``/``UpperCorner`` texts (space-separated coordinates)."""
    low, high = (lower or "").split(), (upper or "").split()
    if len(low) != len(high) or len(low) not in (2, 3):
        raise BBoxError("LowerCorner and UpperCorner need 2 or 3 coordinates each, as many in both")
    value: dict[str, Any] = {"bbox": [*low, *high]}
    if crs:
        value["crs"] = crs
    return bbox_value(value, supported)


def corners(value: dict[str, Any]) -> tuple[str, str, int]:
    """``LowerCorner`` and ``UpperCorner`` texts and the dimensions of a checked bounding box."""
    numbers = value["bbox"]
    half = len(numbers) // 2
    return (" ".join(_text(n) for n in numbers[:half]), " ".join(_text(n) for n in numbers[half:]), half)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise BBoxError(f"bbox coordinates are numbers, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BBoxError(f"bbox coordinates are numbers, not {value!r}") from None
    if not math.isfinite(number):
        raise BBoxError(f"bbox coordinates must be finite, not {value!r}")
    return number


def _text(number: float) -> str:
    number = float(number)
    return str(int(number)) if number.is_integer() else repr(number)
