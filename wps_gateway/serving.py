"""The HTTP server of ``wps-gateway serve``: waitress, keeping a connection open after a 304.

waitress closes an HTTP/1.1 connection after every answer without a
``Content-Length``, even one that has no body by definition (204, 304,
1xx), whose end is plain without it. A poller that revalidates its status
document (``If-None-Match``, answered 304) would then open a connection for
every poll; here it keeps the one it has, as after a 200.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.server import create_server as waitress_server
from waitress.task import WSGITask


class _Task(WSGITask):
    def set_close_on_finish(self) -> None:
        """Close as waitress does, but not after a bodiless answer on an HTTP/1.1 connection the client keeps."""
        if self.version == "1.1" and not self.has_body and \
                self.request.headers.get("CONNECTION", "").lower() != "close":
            return
        super().set_close_on_finish()


class _Channel(HTTPChannel):
    task_class = _Task


def create_server(application: Callable[..., Any], host: str, port: int, **settings: Any) -> BaseWSGIServer:
    """``waitress.server.create_server`` on one address (``host``, ``port``), with the keeping channel."""
    server = waitress_server(application, host=host, port=port, **settings)
    server.channel_class = _Channel
    return server
