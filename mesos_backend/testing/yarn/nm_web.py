"""A test NodeManager's web server: its containers and their logs, as a NodeManager serves them (port 8042).

* ``GET /ws/v1/node/containers/{id}``: ``{"container": {..., "containerLogFiles": [...]}}`` while the
  NodeManager knows the container: running, or stopped less than ten minutes ago (404 NotFoundException after);
* ``GET /ws/v1/node/containerlogs/{id}/{file}?size=N``: the file as text/plain, its first N bytes, or its
  last -N with a negative N (404 for a log that is not on the local disk, or an id that is none);
* ``GET /node/containerlogs/{id}/{user}``: the page the container log link of an application report
  opens, listing the log files, each at ``.../{file}/?start=-4096`` (the last 4 KiB).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .web import HadoopHandler, Listener, RemoteError

if TYPE_CHECKING:
    from .nodemanager import NodeManager

CONTAINER_ID = re.compile(r"^container_(?:e\d+_)?(\d+)_(\d+)_(\d+)_(\d+)$")


def nm_listener(node: NodeManager) -> Listener:
    class Handler(_NodeHandler):
        nm = node
    return Listener(Handler, node.host, 0, f"test-nm{node.index}")


def log_dir(log_root: Path, container_id: str) -> Path | None:
    """Where a container's logs are: ``<log root>/<application>/<container>`` (None for an id that is none)."""
    match = CONTAINER_ID.match(container_id)
    if match is None:
        return None
    cluster_ts, app = match.group(1), match.group(2)
    return log_root / f"application_{cluster_ts}_{app}" / container_id


class _NodeHandler(HadoopHandler):
    nm: NodeManager

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.dispatch(self._serve)

    def _serve(self) -> None:
        parts = [p for p in self.route.split("/") if p]
        if parts[:4] == ["ws", "v1", "node", "containers"] and len(parts) == 5:
            self.reply(200, {"container": self._container(parts[4])})
        elif parts[:4] == ["ws", "v1", "node", "containerlogs"] and len(parts) == 6:
            self._log(parts[4], parts[5])
        elif parts[:2] == ["node", "containerlogs"] and len(parts) == 4:
            self._page(parts[2], parts[3])
        elif parts[:2] == ["node", "containerlogs"] and len(parts) == 5:
            self._log(parts[2], parts[4], self.query.get("start"), html_page=True)
        else:
            self.text(404, "")

    def _container(self, container_id: str) -> dict[str, Any]:
        container = self.nm.containers.get(container_id) or self.nm.stopped.get(container_id, (None, 0))[0]
        if container is None:
            raise RemoteError("NotFoundException", f"java.lang.Exception: container with id, {container_id}, "
                                                   "not found")
        folder = log_dir(self.nm.log_root, container_id)
        files = sorted(p.name for p in folder.iterdir()) if folder is not None and folder.is_dir() else []
        return {"id": container_id, "state": _state(container.state), "nodeId": self.nm.node_id,
                "containerLogsLink": f"http://{self.nm.http_address}/node/containerlogs/{container_id}/"
                                     f"{container.user}",
                "user": container.user, "exitCode": container.exit_status if container.exit_status is not None
                else -1000, "diagnostics": container.diagnostics, "totalMemoryNeededMB": container.memory,
                "totalVCoresNeeded": container.vcores, "executionType": "GUARANTEED", "containerLogFiles": files}

    def _log(self, container_id: str, name: str, size: str | None = None, html_page: bool = False) -> None:
        folder = log_dir(self.nm.log_root, container_id)
        if folder is None:
            self.text(404, f"Invalid ContainerId: {container_id}")
            return
        path = folder / name
        if "/" in name or name in (".", "..") or not path.is_file():
            self.text(404, f"Cannot find this log on the local disk: {name}")
            return
        data = path.read_bytes()
        wanted = self.query.get("size") if size is None else size
        if wanted:
            try:
                count = int(wanted)
            except ValueError:
                self.text(400, f"Invalid log size: {wanted}")
                return
            data = data[count:] if count < 0 else data[:count]
        if html_page:
            body = f"<html><body><pre>{html.escape(data.decode('utf-8', errors='replace'))}</pre></body></html>"
            self.raw(200, body.encode(), "text/html;charset=utf-8")
        else:
            self.raw(200, data, "text/plain;charset=utf-8")

    def _page(self, container_id: str, user: str) -> None:
        folder = log_dir(self.nm.log_root, container_id)
        if folder is None or not folder.is_dir():
            self.raw(404, b"<html><body>No logs available for container</body></html>", "text/html;charset=utf-8")
            return
        links = "".join(f'<li><a href="/node/containerlogs/{container_id}/{html.escape(user)}/{html.escape(p.name)}'
                        f'/?start=-4096">{html.escape(p.name)}</a> : Total file length is {p.stat().st_size} bytes.'
                        f"</li>" for p in sorted(folder.iterdir()))
        self.raw(200, f"<html><body><h1>Logs of {container_id}</h1><ul>{links}</ul></body></html>".encode(),
                 "text/html;charset=utf-8")


def _state(state: str) -> str:
    return {"COMPLETE": "DONE"}.get(state, state)
