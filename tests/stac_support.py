"""STAC checks for the tests: ``stac-validator`` offline (core schemas from pystac, extension schemas from
``tests/schemas/stac``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pystac.validation
from stac_validator.validate import StacValidate

from .conftest import SCHEMAS, require

CORE = "https://schemas.stacspec.org/v1.1.0"
PYSTAC_SCHEMAS = Path(pystac.validation.__file__).parent / "jsonschemas"
COMMON = ("bands", "basics", "common", "data-values", "datetime", "instrument", "licensing", "provider")
EXTENSIONS = {"processing": "v1.2.0", "projection": "v2.0.0", "raster": "v1.1.0"}


@cache
def schema_map() -> dict[str, str]:
    """Every schema URL the gateway's STAC objects lead to, mapped to a local file."""
    core = PYSTAC_SCHEMAS / "stac-spec" / "v1.1.0"
    own = SCHEMAS / "stac"
    require(core.is_dir() and own.is_dir(), f"STAC schemas not found at {core} and {own}")
    mapping = {f"{CORE}/{kind}-spec/json-schema/{kind}.json": str(core / f"{kind}.json")
               for kind in ("item", "catalog", "collection")}
    mapping.update({f"{CORE}/item-spec/json-schema/{name}.json": str(core / f"{name}.json") for name in COMMON})
    mapping.update({f"https://geojson.org/schema/{name}.json": str(PYSTAC_SCHEMAS / "geojson" / f"{name}.json")
                    for name in ("Feature", "Geometry")})
    mapping.update({f"https://stac-extensions.github.io/{name}/{version}/schema.json":
                    str(own / f"{name}-{version}.json") for name, version in EXTENSIONS.items()})
    return mapping


def assert_valid_stac(document: dict[str, Any]) -> None:
    """stac-validator's verdict on ``document``, core and every extension it declares."""
    validator = StacValidate(schema_map=schema_map())
    valid = validator.validate_dict(document)
    assert valid, validator.message

