"""A test agent's ``/files`` endpoints, as a Mesos agent serves them on its own port (5051).

The agent attaches each executor's sandbox twice, under its real path and
under the virtual path ``/frameworks/<framework>/executors/<executor>/runs/latest``
(for a command task the executor's id is the task's); a path resolves by its
longest attached prefix and may not leave the attached folder. ``/files/read``
answers ``{"data", "offset"}``: ``offset=-1`` (the default) gives the file's
size and no data, at most 16 pages are read at once, and the errors are the
agent's: 400 for a missing path, an offset or length it cannot parse or below
-1, or a directory; 404 for what is not attached or not there. Offers name
the endpoint in ``Offer.url`` (the agent's address).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from .http import Listener, PlainHandler

MAX_READ = 16 * 4096  # 16 pages, the agent's cap per read


class AgentFiles:
    """The attached paths and the HTTP listener of one agent; the listener is down while the agent process is."""

    def __init__(self, host: str) -> None:
        self.listener = Listener(_handler_for(self), host, 0, "test-agent-files")
        self._paths: dict[str, Path] = {}
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.listener.port

    def open(self) -> None:
        if not self.listener.running:
            self.listener.open()

    def close(self) -> None:
        self.listener.close()

    def attach(self, path: Path, name: str) -> None:
        with self._lock:
            self._paths[name.rstrip("/") or "/"] = path

    def forget_all(self) -> None:
        with self._lock:
            self._paths.clear()

    def resolve(self, virtual: str) -> Path | None:
        """The real path of ``virtual`` (None: not attached or not there); ValueError if it leaves its folder."""
        parts = virtual.rstrip("/").split("/")
        suffix: list[str] = []
        with self._lock:
            paths = dict(self._paths)
        while parts:
            prefix = "/".join(parts) or "/"
            base = paths.get(prefix)
            if base is None:
                suffix.insert(0, parts.pop())
                continue
            if not base.is_dir():
                return base if not suffix and base.exists() else None
            target = Path(os.path.realpath(base.joinpath(*suffix)))
            real_base = Path(os.path.realpath(base))
            if not target.exists():
                return None
            if target != real_base and real_base not in target.parents:
                raise ValueError(f"'{base.joinpath(*suffix)}' is inaccessible")
            return target
        return None


def _handler_for(files: AgentFiles) -> type[PlainHandler]:
    class Handler(_FilesHandler):
        agent_files = files
    return Handler


class _FilesHandler(PlainHandler):
    agent_files: AgentFiles
    server_version = "Mesos/1.11.0"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        route = self.route
        if route in ("/files/read", "/files/read.json"):
            self._read()
        elif route in ("/files/browse", "/files/browse.json"):
            self._browse()
        else:
            self.text(404, "")

    def _path(self) -> Path | None:
        """The requested file, or None once an error was answered."""
        path = self.query.get("path", "")
        if not path:
            self.text(400, "Expecting 'path=value' in query.\n")
            return None
        try:
            resolved = self.agent_files.resolve(path)
        except ValueError as exc:
            self.text(400, f"{exc}.\n")
            return None
        if resolved is None:
            self.text(404, "")
        return resolved

    def _number(self, name: str) -> int | None:
        """A query number: -1 when absent; None once an error was answered."""
        text = self.query.get(name)
        if text is None:
            return -1
        try:
            value = int(text)
        except ValueError:
            self.text(400, f"Failed to parse {name}: Failed to convert '{text}' to number.\n")
            return None
        if value < -1:
            self.text(400, f"Negative {name} provided: {value}.\n")
            return None
        return value

    def _read(self) -> None:
        offset, length = self._number("offset"), self._number("length")
        if offset is None or length is None:
            return
        path = self._path()
        if path is None:
            return
        if path.is_dir():
            self.text(400, "Cannot read a directory.\n")
            return
        size = path.stat().st_size
        if offset == -1:  # the size, no data
            self._json({"data": "", "offset": size})
            return
        wanted = size - offset if length == -1 else length
        data = b""
        if offset < size and wanted > 0:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(min(wanted, MAX_READ))
        self._json({"data": data.decode("utf-8", errors="replace"), "offset": offset})

    def _browse(self) -> None:
        path = self._path()
        if path is None:
            return
        virtual = self.query["path"].rstrip("/")
        entries = [] if not path.is_dir() else sorted(path.iterdir())
        self._json([{"path": f"{virtual}/{entry.name}", "size": entry.stat().st_size, "nlink": 1,
                     "mode": "drwxr-xr-x" if entry.is_dir() else "-rw-r--r--",
                     "mtime": int(entry.stat().st_mtime)} for entry in entries])

    def _json(self, document: object) -> None:
        self.raw(200, json.dumps(document).encode(), "application/json")
