"""What the ResourceManager and the WebHDFS doubles share over HTTP: Hadoop's error bodies, replies, servers.

Hadoop's REST services answer errors as ``{"RemoteException": {"exception",
"message", "javaClassName"}}`` with the status the exception maps to, and
render JSON or XML from one model (JAX-RS content negotiation: JSON unless
the client accepts only XML).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

LOG = logging.getLogger(__name__)

# exception name -> (HTTP status, Java class), as Hadoop's web services map them.
EXCEPTIONS: dict[str, tuple[int, str]] = {
    "BadRequestException": (400, "org.apache.hadoop.yarn.webapp.BadRequestException"),
    "NotFoundException": (404, "org.apache.hadoop.yarn.webapp.NotFoundException"),
    "ForbiddenException": (403, "org.apache.hadoop.yarn.webapp.ForbiddenException"),
    "AuthorizationException": (403, "org.apache.hadoop.security.authorize.AuthorizationException"),
    "WebApplicationException": (415, "javax.ws.rs.WebApplicationException"),
    "IllegalArgumentException": (400, "java.lang.IllegalArgumentException"),
    "FileNotFoundException": (404, "java.io.FileNotFoundException"),
    "FileAlreadyExistsException": (403, "org.apache.hadoop.fs.FileAlreadyExistsException"),
    "ParentNotDirectoryException": (403, "org.apache.hadoop.fs.ParentNotDirectoryException"),
    "PathIsNotEmptyDirectoryException": (403, "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"),
    "AccessControlException": (403, "org.apache.hadoop.security.AccessControlException"),
    "SecurityException": (401, "java.lang.SecurityException"),
    "UnsupportedOperationException": (400, "java.lang.UnsupportedOperationException"),
}


class RemoteError(Exception):
    """Answered as Hadoop's RemoteException JSON with the exception's status."""

    def __init__(self, exception: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.exception = exception
        self.status = status or EXCEPTIONS[exception][0]

    def body(self) -> dict[str, Any]:
        java = EXCEPTIONS.get(self.exception, (0, self.exception))[1]
        return {"RemoteException": {"exception": self.exception, "message": str(self), "javaClassName": java}}


def to_xml(document: dict[str, Any]) -> bytes:
    """The XML rendering of a JSON model: one element per key, lists as repeated elements, null as empty."""
    def element(name: str, value: Any) -> str:
        if isinstance(value, list):
            return "".join(element(name, item) for item in value)
        if isinstance(value, dict):
            return f"<{name}>" + "".join(element(k, v) for k, v in value.items()) + f"</{name}>"
        if value is None:
            return f"<{name}/>"
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return f"<{name}>{escape(text)}</{name}>"

    (root, value), = document.items()
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + element(root, value)).encode()


class HadoopHandler(BaseHTTPRequestHandler):
    """Routing helpers for the doubles' handlers: parsed path and query, JSON or XML replies, errors."""

    protocol_version = "HTTP/1.1"
    server_version = "Jetty(9.4.51.v20230217)"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class names it so)
        LOG.debug("%s %s", self.address_string(), format % args)

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, the last value of each (as Jersey's @QueryParam takes the first: they rarely repeat)."""
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def wants_xml(self) -> bool:
        accept = (self.headers.get("Accept") or "*/*").lower()
        return "xml" in accept and "json" not in accept and "*/*" not in accept

    def reply(self, status: int, document: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        if document is None:
            self.raw(status, b"", None, headers)
        elif self.wants_xml():
            self.raw(status, to_xml(document), "application/xml;charset=utf-8", headers)
        else:
            self.raw(status, json.dumps(document).encode(), "application/json;charset=utf-8", headers)

    def error(self, exc: RemoteError) -> None:
        self.raw(exc.status, json.dumps(exc.body()).encode(), "application/json;charset=utf-8")

    def raw(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self.raw(status, text.encode(), "text/plain;charset=utf-8", headers)

    def dispatch(self, handle: Any) -> None:
        """Run ``handle()``; RemoteError becomes its JSON answer, anything else a 500 like Jetty's."""
        try:
            handle()
        except RemoteError as exc:
            self.error(exc)
        except Exception as exc:  # a bug in the double: say so as a server would, and log it
            LOG.exception("test double failed on %s %s", self.command, self.path)
            self.error(RemoteError("WebApplicationException", f"{type(exc).__name__}: {exc}", 500))


class _Server(ThreadingHTTPServer):
    """Knows its open connections, so that closing it drops them as a dying process does."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any) -> None:
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Headers and body go out in two writes: without this, Nagle's algorithm and the client's delayed ACK
        # hold every keep-alive answer back ~40 ms (Jetty sets it too).
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections, self.connections = list(self.connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Listener:
    """One HTTP server on a port, in a thread; can be closed and opened again on the same port (a restart)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str, port: int, name: str) -> None:
        self._handler = handler
        self._name = name
        self.host = host
        self.port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def open(self) -> Listener:
        self._httpd = _Server((self.host, self.port), self._handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self._name}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.drop_connections()

