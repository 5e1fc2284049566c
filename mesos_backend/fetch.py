"""Putting a task's ``FetchUri`` files into its sandbox (local backend).

Supported values are ``file://`` URIs (host empty or ``localhost``) and plain
filesystem paths; relative paths are taken from the gateway's working
directory. Each one is copied into the sandbox under its base name, and
directories are copied recursively. ``extract=True`` unpacks an archive that
``shutil.unpack_archive`` recognises (zip, tar, tar.gz, tar.bz2, tar.xz) into
the sandbox instead of copying it; ``executable=True`` adds the execute bits.
``cache=True`` goes through a ``FetchCache``: the first task copies (or
unpacks) the URI into a cache entry keyed by a digest of the URI, made
read-only (Python sources in it are compiled there once, since no task can
write its bytecode next to them), and every task gets symbolic links to the
entry's top-level items in its sandbox: a processor bundle whose name
carries its content digest is fetched and unpacked once per version, and a
task costs a few links, not a copy of the bundle. Tasks that run as another
user (``[local] run_as``) cannot change the entry; tasks that run as the
gateway's own user could restore the write bits, so sites that run
untrusted processors should use ``run_as``. Each use refreshes the entry's
modification time, which retention reads to remove entries no task uses.
Any other scheme (http, hdfs, s3, ...) is rejected when the task is launched,
so a spec the local backend cannot honour fails early and says why.
"""

from __future__ import annotations

import compileall
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from .base import BackendError, FetchUri

SUPPORTED_SCHEMES = ("file",)


class FetchError(BackendError):
    """A URI could not be put into the sandbox (missing file, bad archive)."""


def source_path(value: str) -> Path:
    """The local file a URI value names; BackendError if it is not a local one."""
    parsed = urlparse(value)
    # A one-letter "scheme" is a Windows drive, not a URI; treat it as a path.
    if parsed.scheme and len(parsed.scheme) > 1:
        if parsed.scheme not in SUPPORTED_SCHEMES:
            raise BackendError(
                f"URI {value!r}: scheme {parsed.scheme!r} is not supported by the local backend "
                f"(supported: {', '.join(SUPPORTED_SCHEMES)} and plain paths)"
            )
        if parsed.netloc not in ("", "localhost"):
            raise BackendError(f"URI {value!r}: file URIs must name a local file (no host)")
        return Path(unquote(parsed.path))
    if not value:
        raise BackendError("empty URI")
    return Path(value)


class FetchCache:
    """Digest-keyed cache entries, each made once: ``downloads`` counts misses, ``hits`` the rest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.downloads = 0
        self.hits = 0
        self._lock = threading.Lock()
        self._entry_locks: dict[str, threading.Lock] = {}  # one per key: different URIs fetch in parallel

    def entry(self, uri: FetchUri, src: Path) -> Path:
        """The folder holding the URI's file (or unpacked archive), made now if this is the first use."""
        key = hashlib.sha256(f"{uri.value}\0{uri.extract}\0{uri.executable}".encode()).hexdigest()[:32]
        entry = self.root / key
        with self._lock:
            entry_lock = self._entry_locks.setdefault(key, threading.Lock())
        with entry_lock:
            if entry.is_dir():
                os.utime(entry)  # in use: retention keeps it
                with self._lock:
                    self.hits += 1
                return entry
            partial = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=_made(self.root)))
            try:
                _place(uri, src, partial)
                _seal(partial)
                os.replace(partial, entry)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            with self._lock:
                self.downloads += 1
            return entry


def _seal(folder: Path) -> None:
    """Compile the Python sources once, then make everything read-only (and readable by every task user)."""
    if any(folder.rglob("*.py")):
        compileall.compile_dir(folder, quiet=2, workers=1)
    for root, dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, (mode | 0o444) & ~0o222)
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o555)
    os.chmod(folder, 0o555)


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_into(uris: list[FetchUri], sandbox: Path, cache: FetchCache | None = None) -> list[Path]:
    """Copy (or extract) every URI into ``sandbox``; returns what was created."""
    created: list[Path] = []
    for uri in uris:
        src = source_path(uri.value)
        try:
            if uri.cache and cache is not None:
                for item in sorted(cache.entry(uri, src).iterdir()):
                    link = sandbox / item.name
                    if link.is_symlink() or link.exists():  # a rerun in the same sandbox
                        continue
                    link.symlink_to(item, target_is_directory=item.is_dir())
                    created.append(link)
                continue
            created.append(_place(uri, src, sandbox))
        except FetchError:
            raise
        except (OSError, shutil.Error) as exc:
            raise FetchError(f"cannot fetch {uri.value!r}: {exc}") from exc
    return created


def _place(uri: FetchUri, src: Path, sandbox: Path) -> Path:
    """Copy or unpack one URI's file into ``sandbox``; returns what was created."""
    if uri.extract and src.is_file():
        _unpack(src, sandbox)
        return sandbox
    dest = sandbox / src.name
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dest)
        if uri.executable:
            mode = dest.stat().st_mode
            os.chmod(dest, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return dest


def _unpack(src: Path, sandbox: Path) -> None:
    try:
        try:
            # filter="data" refuses tar members that would escape the sandbox.
            shutil.unpack_archive(src, sandbox, filter="data")
        except TypeError:  # zip (sanitised by zipfile itself) or a Python without filters
            shutil.unpack_archive(src, sandbox)
    except (shutil.ReadError, ValueError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise FetchError(f"cannot extract {str(src)!r}: {exc}") from exc
