"""What the ResourceManager and the WebHDFS doubles share over HTTP: Hadoop's error bodies, replies, servers.

Hadoop's REST services answer errors as ``{"RemoteException": {"exception",
"message", "javaClassName"}}`` with the status the exception maps to, and
render JSON or XML from one model (JAX-RS content negotiation: JSON unless
the client accepts only XML).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from xml.sax.saxutils import escape

from ..http import Listener, PlainHandler

__all__ = ["HadoopHandler", "Listener", "RemoteError", "to_xml"]

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


class HadoopHandler(PlainHandler):
    """Routing helpers for the doubles' handlers: parsed path and query, JSON or XML replies, errors."""

    server_version = "Jetty(9.4.51.v20230217)"

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

    def dispatch(self, handle: Any) -> None:
        """Run ``handle()``; RemoteError becomes its JSON answer, anything else a 500 like Jetty's."""
        try:
            handle()
        except RemoteError as exc:
            self.error(exc)
        except Exception as exc:  # a bug in the double: say so as a server would, and log it
            LOG.exception("test double failed on %s %s", self.command, self.path)
            self.error(RemoteError("WebApplicationException", f"{type(exc).__name__}: {exc}", 500))
