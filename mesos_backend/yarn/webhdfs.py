"""WebHDFS, as far as the YARN backend needs it: a file's status, creating, reading and deleting files.

CREATE and OPEN are two steps, as on a real cluster: the NameNode answers
307 with the DataNode that takes or serves the bytes, and the data goes
there. A standby NameNode answers StandbyException; the next address is tried.
"""

from __future__ import annotations

from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from .http import HadoopError, HadoopHttp

PREFIX = "/webhdfs/v1"
STANDBY = "StandbyException"


class WebHdfsClient:
    def __init__(self, http: HadoopHttp) -> None:
        self.http = http

    def status(self, path: str) -> dict[str, Any] | None:
        """The FileStatus of ``path``, None if it does not exist."""
        try:
            response = self.http.call("GET", _url(path), params={"op": "GETFILESTATUS"}, kind="GETFILESTATUS",
                                      standby_error=STANDBY)
        except HadoopError as exc:
            if exc.exception == "FileNotFoundException" or exc.status == 404:
                return None
            raise
        return response.json()["FileStatus"]

    def mkdirs(self, path: str, permission: str = "755") -> None:
        self.http.call("PUT", _url(path), params={"op": "MKDIRS", "permission": permission}, kind="MKDIRS",
                       standby_error=STANDBY)

    def create(self, path: str, data: bytes | BinaryIO, *, overwrite: bool = True, permission: str = "644") -> None:
        """Write a file; ``data`` may be an open file (sent as it is read, with its length)."""
        response = self.http.call("PUT", _url(path), kind="CREATE", standby_error=STANDBY, params={
            "op": "CREATE", "overwrite": str(overwrite).lower(), "permission": permission})
        location = response.headers.get("location")
        if response.status_code != 307 or not location:
            raise HadoopError(response.status_code, "", "CREATE was not redirected to a DataNode")
        self.http.follow("PUT", location, content=data, kind="CREATE (DataNode)")

    def read(self, path: str) -> bytes:
        response = self.http.call("GET", _url(path), params={"op": "OPEN"}, kind="OPEN", standby_error=STANDBY)
        location = response.headers.get("location")
        if response.status_code == 307 and location:
            response = self.http.follow("GET", location, kind="OPEN (DataNode)")
        return response.content

    def open(self, path: str) -> httpx.Response:
        """The file at ``path`` as a streamed response from its DataNode (iterate it, then close it)."""
        response = self.http.call("GET", _url(path), params={"op": "OPEN"}, kind="OPEN", standby_error=STANDBY)
        location = response.headers.get("location")
        if response.status_code != 307 or not location:
            raise HadoopError(response.status_code, "", "OPEN was not redirected to a DataNode")
        return self.http.follow("GET", location, kind="OPEN (DataNode)", stream=True)

    def delete(self, path: str, *, recursive: bool = False) -> bool:
        """Delete ``path`` (a directory with what it holds when ``recursive``); False if there was nothing."""
        response = self.http.call("DELETE", _url(path), params={"op": "DELETE", "recursive": str(recursive).lower()},
                                  kind="DELETE", standby_error=STANDBY)
        return bool(response.json().get("boolean"))


def _url(path: str) -> str:
    return PREFIX + quote(path)
