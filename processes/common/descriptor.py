"""Read a processor's own descriptor, so input defaults are written once (in descriptor.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_descriptor(path: Path) -> dict[str, Any]:
    """Parse a ``descriptor.yaml`` file."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: descriptor is not a mapping")
    return data


def input_defaults(descriptor: dict[str, Any]) -> dict[str, Any]:
    """``{input id: schema.default}`` for the inputs that declare a default."""
    inputs = (descriptor.get("processDescription") or {}).get("inputs") or {}
    return {
        name: spec["schema"]["default"]
        for name, spec in inputs.items()
        if isinstance(spec, dict) and "default" in (spec.get("schema") or {})
    }
