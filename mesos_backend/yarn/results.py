"""Job results kept on HDFS (``[yarn] results_dir``): a job's output files under ``<results_dir>/<job_id>/``.

Platforms on a Hadoop cluster keep their products where their data is. The
gateway puts a successful job's output files there through WebHDFS (CREATE,
307 to a DataNode), serves them back through WebHDFS (OPEN, 307 to a
DataNode, streamed), and deletes a job's folder (DELETE, recursive) when
retention removes the job. Clients only ever see the gateway's own URLs.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from .http import HadoopError, HadoopHttp, Unavailable
from .webhdfs import WebHdfsClient


class ResultsUnavailable(Unavailable):
    """HDFS could not be reached (or answered with a server error): try again later."""


def results_dir_setting(raw: dict[str, str]) -> str:
    """``[yarn] results_dir`` checked: empty, or an ``hdfs://`` directory with ``[yarn] webhdfs`` set."""
    value = (raw.get("results_dir") or "").strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme != "hdfs" or not parts.path.startswith("/") or parts.path == "/":
        raise ValueError(f"[yarn] results_dir must be an hdfs:// directory below the root, not {value!r}")
    if not (raw.get("webhdfs") or "").strip():
        raise ValueError("[yarn] webhdfs (the NameNode's HTTP address) is required for results_dir")
    return value


class HdfsResults:
    """The output files of jobs under one ``hdfs://`` directory."""

    def __init__(self, directory: str, http: HadoopHttp) -> None:
        self.directory = directory.rstrip("/")
        self.http = http
        self.client = WebHdfsClient(http)
        self._root = unquote(urlsplit(self.directory).path)

    def location(self, job_id: str, name: str) -> str:
        """The ``hdfs://`` URI of a job's output file."""
        return f"{self.directory}/{_safe(job_id)}/{_safe(name)}"

    def holds(self, location: str) -> bool:
        return location.startswith(self.directory + "/")

    def put(self, job_id: str, source: Path) -> str:
        """Write one output file, streamed from ``source`` (replacing an earlier try's); its ``hdfs://`` URI."""
        location = self.location(job_id, source.name)
        with open(source, "rb") as data:
            _calling(lambda: self.client.create(self._path(location), data, overwrite=True))
        return location

    def size(self, location: str) -> int | None:
        """The length of the file at ``location``, None if it is not there."""
        status = _calling(lambda: self.client.status(self._path(location)))
        return int(status["length"]) if status and status.get("type") == "FILE" else None

    def read(self, location: str) -> bytes:
        return _calling(lambda: self.client.read(self._path(location)))

    def open(self, location: str) -> tuple[Iterator[bytes], int | None]:
        """The file streamed from its DataNode: its chunks (the response closes when they end) and length."""
        response: httpx.Response = _calling(lambda: self.client.open(self._path(location)))
        length = response.headers.get("content-length")

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.iter_bytes()
            finally:
                response.close()
        return chunks(), int(length) if length and length.isdigit() else None

    def copy(self, location: str, target: Path) -> None:
        """Write the file at ``location`` to ``target``, as it streams in."""
        chunks, _ = self.open(location)
        with open(target, "wb") as out:
            for chunk in chunks:
                out.write(chunk)

    def delete(self, job_id: str) -> bool:
        """Delete a job's folder and its files; False if it had none."""
        return _calling(lambda: self.client.delete(posixpath.join(self._root, _safe(job_id)), recursive=True))

    def close(self) -> None:
        self.http.close()

    def _path(self, location: str) -> str:
        if not self.holds(location):
            raise ValueError(f"{location} is not under {self.directory}")
        return unquote(urlsplit(location).path)


def _safe(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{name!r} cannot name a file in the results directory")
    return name


def _calling(call: Any) -> Any:
    """A WebHDFS call; a server error (5xx) counts as unreachable, like no answer at all."""
    try:
        return call()
    except Unavailable as exc:
        raise ResultsUnavailable(str(exc)) from exc
    except HadoopError as exc:
        if exc.status >= 500:
            raise ResultsUnavailable(str(exc)) from exc
        raise
