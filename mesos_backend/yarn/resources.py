"""Local resources: files an application's containers get from HDFS or a shared file system.

A NodeManager localizes a resource only if its size and modification time
(ms) are exactly those in the launch context, so they are read from where
the file lives (WebHDFS GETFILESTATUS for ``hdfs://``, ``stat`` for
``file://``) and cached by URL: files published here are content-addressed
(their name carries their digest), so a cached status stays true. PUBLIC
ones are kept by each NodeManager for every later application, like the
Mesos fetcher cache keeps a URI.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..base import BackendError
from .http import HadoopError
from .webhdfs import WebHdfsClient


@dataclass(frozen=True)
class LocalResource:
    key: str  # the name it gets in the container's working directory
    url: str
    type: str  # FILE | ARCHIVE
    visibility: str  # PUBLIC | PRIVATE | APPLICATION
    size: int
    timestamp: int

    def entry(self) -> dict[str, Any]:
        return {"key": self.key, "value": {"resource": self.url, "type": self.type, "visibility": self.visibility,
                                           "size": self.size, "timestamp": self.timestamp}}


class ResourceStore:
    """Reads the status of resources and publishes files under ``hdfs://`` or ``file://`` directories."""

    def __init__(self, webhdfs: WebHdfsClient | None) -> None:
        self.webhdfs = webhdfs
        self._status: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._publishing: dict[str, threading.Lock] = {}  # one per URL: a file is written once, never twice at once

    def resource(self, key: str, url: str, *, type: str = "FILE", visibility: str = "PUBLIC") -> LocalResource:  # noqa: A002
        size, timestamp = self.status(url)
        return LocalResource(key, url, type, visibility, size, timestamp)

    def status(self, url: str) -> tuple[int, int]:
        """(size, modification time in ms) of the file at ``url``; BackendError if it is not there."""
        with self._lock:
            known = self._status.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        if parts.scheme == "hdfs":
            status = self._hdfs().status(unquote(parts.path))
            if status is None or status.get("type") != "FILE":
                raise BackendError(f"{url} is not a file on HDFS")
            found = (int(status["length"]), int(status["modificationTime"]))
        elif parts.scheme == "file":
            try:
                stat = os.stat(unquote(parts.path))
            except OSError as exc:
                raise BackendError(f"{url}: {exc.strerror}") from None
            found = (stat.st_size, stat.st_mtime_ns // 1_000_000)
        else:
            raise BackendError(f"{url}: only hdfs:// and file:// resources can be localized")
        with self._lock:
            self._status[url] = found
        return found

    def forget(self) -> None:
        """Read every status again (after a NodeManager said a resource changed)."""
        with self._lock:
            self._status.clear()

    def publish(self, directory: str, data: bytes, suffix: str = "") -> str:
        """Put ``data`` under ``directory`` named by its digest (once); returns its URL."""
        name = hashlib.sha256(data).hexdigest()[:32] + suffix
        return self.publish_named(f"{directory.rstrip('/')}/{name}", data)

    def publish_named(self, url: str, data: bytes) -> str:
        """Put ``data`` at ``url`` unless a file is there already (names are versioned); returns ``url``.

        Never overwritten: a NodeManager localizing the file with the size and time read before would fail.
        """
        with self._lock:
            if url in self._status:
                return url
            lock = self._publishing.setdefault(url, threading.Lock())
        with lock:
            with self._lock:
                if url in self._status:
                    return url
            self._write_once(url, data)
            self.status(url)
        return url

    def _write_once(self, url: str, data: bytes) -> None:
        parts = urlsplit(url)
        if parts.scheme == "hdfs":
            client = self._hdfs()
            path = unquote(parts.path)
            if client.status(path) is None:
                try:
                    client.create(path, data, overwrite=False)
                except HadoopError as exc:  # another gateway wrote it first: the same bytes, by its name
                    if exc.exception != "FileAlreadyExistsException":
                        raise
        elif parts.scheme == "file":
            target = Path(unquote(parts.path))
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial")
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.chmod(partial, 0o644)
                try:
                    os.link(partial, target)  # never replaces a file another writer put there first
                except FileExistsError:
                    pass
                finally:
                    os.unlink(partial)
        else:
            raise BackendError(f"{url}: resources are published to hdfs:// or file:// directories")

    def _hdfs(self) -> WebHdfsClient:
        if self.webhdfs is None:
            raise BackendError("hdfs:// resources need [yarn] webhdfs (the NameNode's HTTP address)")
        return self.webhdfs
