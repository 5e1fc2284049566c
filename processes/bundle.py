"""Processor bundles: the code a task runs, packed once per processor version and digest.

A bundle is a reproducible ``.tar.gz`` (sorted members, zero timestamps and
owners) of the processor's folder, and for the shipped processors also the
shared ``processes/common`` library they import. Its name carries the
digest of its contents, so a changed processor is a new URI: engines cache
bundles by URI (Mesos fetcher ``cache: true``, the local backend's cache
directory) and never serve an old one for a new version.

Tasks run with the bundle unpacked in their working directory, where
``python -m <package>.task`` finds it before any installed copy.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .descriptor import Processor

BUILTIN_DIR = Path(__file__).resolve().parent
_SKIP_DIRS = {"__pycache__", ".pytest_cache"}


@dataclass(frozen=True)
class Bundle:
    path: Path
    digest: str  # sha256 of member names and contents

    @property
    def uri(self) -> str:
        return self.path.as_uri()


def members(processor: Processor) -> list[tuple[Path, str]]:
    """(file, name in the archive) for every file of the bundle, sorted by name."""
    folder = Path(processor.source).resolve()
    if folder.parent == BUILTIN_DIR:
        roots = [(BUILTIN_DIR / "__init__.py", "processes/__init__.py"),
                 *_tree(BUILTIN_DIR / "common", "processes/common"), *_tree(folder, f"processes/{folder.name}")]
    else:
        roots = _tree(folder, folder.name)
    return sorted(roots, key=lambda member: member[1])


def _tree(folder: Path, prefix: str) -> list[tuple[Path, str]]:
    found = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS)
        for name in files:
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(directory) / name
            found.append((path, f"{prefix}/{path.relative_to(folder).as_posix()}"))
    return found


def build_bundle(processor: Processor, out_dir: Path) -> Bundle:
    """The processor's bundle in ``out_dir``, built unless one with the same digest is there."""
    files = members(processor)
    digest = hashlib.sha256()
    for path, name in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    hexdigest = digest.hexdigest()
    target = out_dir / f"{processor.id}-{processor.version}-{hexdigest[:16]}.tar.gz"
    if not target.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        # A unique temporary name: replicas sharing data_dir (all pid 1 in containers) never mix writes.
        fd, partial = tempfile.mkstemp(dir=out_dir, suffix=".partial")
        with os.fdopen(fd, "wb") as out:
            out.write(_archive(files))
        os.replace(partial, target)
    return Bundle(target, hexdigest)


def _archive(files: list[tuple[Path, str]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, name in files:
            info = tarfile.TarInfo(name)
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)
