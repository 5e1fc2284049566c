"""Atomic file writes: a task killed mid-write never leaves a half file under the final name.

The temporary file lives in the destination directory so that ``os.replace`` is a rename
on one file system, which is atomic, and a rerun after a crash simply overwrites it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to ``path``, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON so identical data gives identical bytes."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def format_number(value: float) -> str:
    """Text of a literal number output: shortest repr that round-trips, as JSON would write it."""
    return repr(float(value))
