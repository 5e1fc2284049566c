"""An HDFS test double: a namespace, a NameNode speaking WebHDFS, and a DataNode that holds the bytes.

As the real NameNode does, it answers CREATE and OPEN with a 307 to a
DataNode (``Location`` carries the same path and ``namenoderpcaddress``),
never with data; the DataNode answers CREATE with 201 and a ``Location`` of
the ``hdfs://`` URI. FileStatus JSON, ``{"boolean": ...}`` answers and
``RemoteException`` errors have the real shapes. NodeManagers of the test
ResourceManager localize ``hdfs://`` resources from the same namespace
(``status`` and ``read``), as a real NodeManager does through the HDFS
client: the size and modification time they check are these.
"""

from __future__ import annotations

import itertools
import posixpath
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .web import HadoopHandler, Listener, RemoteError

BLOCK_SIZE = 134217728
SUPERGROUP = "supergroup"
ANONYMOUS = "dr.who"


@dataclass
class INode:
    kind: str  # FILE | DIRECTORY
    owner: str
    permission: int
    file_id: int
    modification_time: int  # ms since the epoch
    access_time: int = 0
    length: int = 0
    children: dict[str, INode] = field(default_factory=dict)

    def status(self, suffix: str = "") -> dict[str, Any]:
        return {"accessTime": self.access_time, "blockSize": BLOCK_SIZE if self.kind == "FILE" else 0,
                "childrenNum": len(self.children), "fileId": self.file_id, "group": SUPERGROUP,
                "length": self.length, "modificationTime": self.modification_time, "owner": self.owner,
                "pathSuffix": suffix, "permission": f"{self.permission:o}",
                "replication": 3 if self.kind == "FILE" else 0, "storagePolicy": 0, "type": self.kind}


def _now_ms() -> int:
    return int(time.time() * 1000)


class HdfsNamespace:
    """Directories and files; file bytes live on the local disk under ``blocks``."""

    def __init__(self, work_dir: Path) -> None:
        self.blocks = work_dir / "blocks"
        self.blocks.mkdir(parents=True, exist_ok=True)
        self._ids = itertools.count(16386)
        self.root = INode("DIRECTORY", "hdfs", 0o755, next(self._ids), _now_ms())
        self.lock = threading.RLock()

    @staticmethod
    def normalize(path: str) -> str:
        if not path.startswith("/"):
            raise RemoteError("IllegalArgumentException", f"Invalid path name {path}")
        return posixpath.normpath(path) if path != "/" else "/"

    def _parts(self, path: str) -> list[str]:
        return [p for p in self.normalize(path).split("/") if p]

    def lookup(self, path: str) -> INode | None:
        node = self.root
        for part in self._parts(path):
            if node.kind != "DIRECTORY" or part not in node.children:
                return None
            node = node.children[part]
        return node

    def status(self, path: str) -> INode:
        with self.lock:
            node = self.lookup(path)
            if node is None:
                raise RemoteError("FileNotFoundException", f"File does not exist: {self.normalize(path)}")
            return node

    def mkdirs(self, path: str, owner: str, permission: int = 0o755) -> INode:
        with self.lock:
            node = self.root
            walked = ""
            for part in self._parts(path):
                walked += "/" + part
                child = node.children.get(part)
                if child is None:
                    child = node.children[part] = INode("DIRECTORY", owner, permission, next(self._ids), _now_ms())
                    node.modification_time = child.modification_time
                elif child.kind != "DIRECTORY":
                    raise RemoteError("ParentNotDirectoryException", f"Parent path is not a directory: {walked}")
                node = child
            return node

    def create(self, path: str, data: bytes, owner: str, overwrite: bool, permission: int = 0o644) -> INode:
        with self.lock:
            path = self.normalize(path)
            parent, name = posixpath.split(path)
            existing = self.lookup(path)
            if existing is not None:
                if existing.kind == "DIRECTORY":
                    raise RemoteError("FileAlreadyExistsException", f"{path} already exists as a directory")
                if not overwrite:
                    raise RemoteError("FileAlreadyExistsException", f"{path} for client 127.0.0.1 already exists")
            directory = self.mkdirs(parent, owner)
            node = INode("FILE", owner, permission, next(self._ids), _now_ms(), _now_ms(), len(data))
            (self.blocks / str(node.file_id)).write_bytes(data)
            old = directory.children.get(name)
            directory.children[name] = node
            directory.modification_time = node.modification_time
        if old is not None:
            (self.blocks / str(old.file_id)).unlink(missing_ok=True)
        return node

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        node = self.status(path)
        if node.kind != "FILE":
            raise RemoteError("FileNotFoundException", f"Path is not a file: {self.normalize(path)}")
        with open(self.blocks / str(node.file_id), "rb") as data:
            data.seek(offset)
            return data.read() if length is None else data.read(length)

    def copy_out(self, path: str, target: Path) -> None:
        """What the HDFS client of a NodeManager does when it downloads a resource."""
        node = self.status(path)
        if node.kind != "FILE":
            raise RemoteError("FileNotFoundException", f"Path is not a file: {self.normalize(path)}")
        shutil.copyfile(self.blocks / str(node.file_id), target)

    def delete(self, path: str, recursive: bool) -> bool:
        with self.lock:
            path = self.normalize(path)
            node = self.lookup(path)
            if node is None or path == "/":
                return False
            if node.kind == "DIRECTORY" and node.children and not recursive:
                raise RemoteError("PathIsNotEmptyDirectoryException", f"`{path} is non empty': Directory is not empty",
                                  403)
            parent, name = posixpath.split(path)
            del self.lookup(parent).children[name]
        for file_id in _file_ids(node):  # the DataNode frees the blocks of what was deleted
            (self.blocks / str(file_id)).unlink(missing_ok=True)
        return True

    def rename(self, source: str, destination: str) -> bool:
        with self.lock:
            node = self.lookup(source)
            target_parent = self.lookup(posixpath.dirname(self.normalize(destination)))
            if node is None or target_parent is None or target_parent.kind != "DIRECTORY" \
                    or self.lookup(destination) is not None:
                return False
            parent, name = posixpath.split(self.normalize(source))
            del self.lookup(parent).children[name]
            target_parent.children[posixpath.basename(self.normalize(destination))] = node
            return True

    def is_public(self, path: str) -> bool:
        """World-readable file under world-executable directories: what PUBLIC local resources need."""
        with self.lock:
            node = self.root
            for part in self._parts(path):
                if not node.permission & 0o001:
                    return False
                node = node.children[part]
            return bool(node.permission & 0o004)


class HdfsCluster:
    """A NameNode and one DataNode over one namespace (``rpc_port`` is the notional ``fs.defaultFS`` port)."""

    def __init__(self, work_dir: Path, host: str = "127.0.0.1", http_port: int = 0, rpc_port: int = 8020) -> None:
        self.namespace = HdfsNamespace(work_dir)
        self.rpc_port = rpc_port
        self.namenode = Listener(_handler(self, datanode=False), host, http_port, "test-namenode")
        self.datanode = Listener(_handler(self, datanode=True), host, 0, "test-datanode")

    @property
    def default_fs(self) -> str:
        return f"hdfs://{self.namenode.host}:{self.rpc_port}"

    @property
    def webhdfs_url(self) -> str:
        return f"http://{self.namenode.address}"

    def start(self) -> HdfsCluster:
        self.datanode.open()
        self.namenode.open()
        return self

    def stop(self) -> None:
        self.namenode.close()
        self.datanode.close()

    def path_of(self, uri: str) -> str:
        """The namespace path of an ``hdfs://`` URI of this cluster (its authority, or none: the default FS)."""
        parts = urlsplit(uri)
        if parts.scheme != "hdfs":
            raise ValueError(f"{uri} is not an hdfs:// URI")
        if parts.netloc and parts.port not in (None, self.rpc_port):
            raise RemoteError("IllegalArgumentException", f"Wrong FS: {uri}, expected: {self.default_fs}")
        return unquote(parts.path) or "/"


def _handler(cluster: HdfsCluster, datanode: bool) -> type[HadoopHandler]:
    class Handler(_WebHdfsHandler):
        hdfs = cluster
        on_datanode = datanode
    return Handler


class _WebHdfsHandler(HadoopHandler):
    hdfs: HdfsCluster
    on_datanode: bool
    PREFIX = "/webhdfs/v1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.dispatch(lambda: self._op("GET"))

    def do_PUT(self) -> None:  # noqa: N802
        self.dispatch(lambda: self._op("PUT"))

    def do_POST(self) -> None:  # noqa: N802
        self.dispatch(lambda: self._op("POST"))

    def do_DELETE(self) -> None:  # noqa: N802
        self.dispatch(lambda: self._op("DELETE"))

    def _op(self, method: str) -> None:
        if not self.route.startswith(self.PREFIX):
            self.text(404, "")
            return
        data = self.body() if method in ("PUT", "POST") else b""
        path = unquote(self.route[len(self.PREFIX):]) or "/"
        op = self.query.get("op", "").upper()
        ops = _DATANODE_OPS if self.on_datanode else _NAMENODE_OPS
        handler = ops.get((method, op))
        if handler is None:
            kind = {"GET": "GetOpParam", "PUT": "PutOpParam", "POST": "PostOpParam", "DELETE": "DeleteOpParam"}[method]
            raise RemoteError("IllegalArgumentException",
                              f'Invalid value for webhdfs parameter "op": No enum constant '
                              f"org.apache.hadoop.hdfs.web.resources.{kind}.Op.{op}")
        handler(self, path, data)

    @property
    def user(self) -> str:
        return self.query.get("user.name") or ANONYMOUS

    def _flag(self, name: str, default: bool = False) -> bool:
        value = self.query.get(name)
        return default if value is None else value.lower() == "true"

    def _redirect(self, path: str) -> None:
        """To the DataNode, carrying every parameter, as the NameNode does for CREATE, APPEND and OPEN."""
        query = urlsplit(self.path).query
        location = (f"http://{self.hdfs.datanode.address}{self.PREFIX}{quote(path)}?{query}"
                    f"&namenoderpcaddress={self.hdfs.namenode.host}:{self.hdfs.rpc_port}")
        if self._flag("noredirect"):
            self.reply(200, {"Location": location})
        else:
            self.reply(307, None, {"Location": location})

    # -- NameNode -----------------------------------------------------------

    def nn_status(self, path: str, _: bytes) -> None:
        self.reply(200, {"FileStatus": self.hdfs.namespace.status(path).status()})

    def nn_list(self, path: str, _: bytes) -> None:
        node = self.hdfs.namespace.status(path)
        if node.kind == "FILE":
            statuses = [node.status()]
        else:
            statuses = [child.status(name) for name, child in sorted(node.children.items())]
        self.reply(200, {"FileStatuses": {"FileStatus": statuses}})

    def nn_home(self, _: str, __: bytes) -> None:
        self.reply(200, {"Path": f"/user/{self.user}"})

    def nn_summary(self, path: str, _: bytes) -> None:
        node = self.hdfs.namespace.status(path)
        files, dirs, length = _count(node)
        self.reply(200, {"ContentSummary": {"directoryCount": dirs, "fileCount": files, "length": length,
                                            "quota": -1, "spaceConsumed": length * 3, "spaceQuota": -1}})

    def nn_open(self, path: str, _: bytes) -> None:
        node = self.hdfs.namespace.status(path)
        if node.kind != "FILE":
            raise RemoteError("FileNotFoundException", f"Path is not a file: {HdfsNamespace.normalize(path)}")
        self._redirect(path)

    def nn_create(self, path: str, _: bytes) -> None:
        existing = self.hdfs.namespace.lookup(HdfsNamespace.normalize(path))
        if existing is not None and (existing.kind == "DIRECTORY" or not self._flag("overwrite")):
            raise RemoteError("FileAlreadyExistsException", f"{path} for client 127.0.0.1 already exists")
        self._redirect(path)

    def nn_mkdirs(self, path: str, _: bytes) -> None:
        permission = int(self.query.get("permission") or "755", 8)
        self.hdfs.namespace.mkdirs(path, self.user, permission)
        self.reply(200, {"boolean": True})

    def nn_rename(self, path: str, _: bytes) -> None:
        destination = self.query.get("destination")
        if not destination:
            raise RemoteError("IllegalArgumentException", "Invalid value for webhdfs parameter \"destination\"")
        self.reply(200, {"boolean": self.hdfs.namespace.rename(path, destination)})

    def nn_delete(self, path: str, _: bytes) -> None:
        self.reply(200, {"boolean": self.hdfs.namespace.delete(path, self._flag("recursive"))})

    def nn_permission(self, path: str, _: bytes) -> None:
        node = self.hdfs.namespace.status(path)
        node.permission = int(self.query.get("permission") or "755", 8)
        self.reply(200, None)

    def nn_times(self, path: str, _: bytes) -> None:
        node = self.hdfs.namespace.status(path)
        if int(self.query.get("modificationtime", -1)) >= 0:
            node.modification_time = int(self.query["modificationtime"])
        if int(self.query.get("accesstime", -1)) >= 0:
            node.access_time = int(self.query["accesstime"])
        self.reply(200, None)

    # -- DataNode -----------------------------------------------------------

    def dn_create(self, path: str, data: bytes) -> None:
        permission = int(self.query.get("permission") or "644", 8)
        self.hdfs.namespace.create(path, data, self.user, self._flag("overwrite"), permission)
        self.reply(201, None, {"Location": f"{self.hdfs.default_fs}{quote(HdfsNamespace.normalize(path))}"})

    def dn_open(self, path: str, _: bytes) -> None:
        offset = int(self.query.get("offset") or 0)
        length = int(self.query["length"]) if self.query.get("length") else None
        self.raw(200, self.hdfs.namespace.read(path, offset, length), "application/octet-stream")


def _file_ids(node: INode) -> list[int]:
    if node.kind == "FILE":
        return [node.file_id]
    return [file_id for child in node.children.values() for file_id in _file_ids(child)]


def _count(node: INode) -> tuple[int, int, int]:
    if node.kind == "FILE":
        return 1, 0, node.length
    files, dirs, length = 0, 1, 0
    for child in node.children.values():
        f, d, n = _count(child)
        files, dirs, length = files + f, dirs + d, length + n
    return files, dirs, length


_NAMENODE_OPS = {
    ("GET", "GETFILESTATUS"): _WebHdfsHandler.nn_status, ("GET", "LISTSTATUS"): _WebHdfsHandler.nn_list,
    ("GET", "GETHOMEDIRECTORY"): _WebHdfsHandler.nn_home, ("GET", "GETCONTENTSUMMARY"): _WebHdfsHandler.nn_summary,
    ("GET", "OPEN"): _WebHdfsHandler.nn_open, ("PUT", "CREATE"): _WebHdfsHandler.nn_create,
    ("PUT", "MKDIRS"): _WebHdfsHandler.nn_mkdirs, ("PUT", "RENAME"): _WebHdfsHandler.nn_rename,
    ("PUT", "SETPERMISSION"): _WebHdfsHandler.nn_permission, ("PUT", "SETTIMES"): _WebHdfsHandler.nn_times,
    ("DELETE", "DELETE"): _WebHdfsHandler.nn_delete,
}
_DATANODE_OPS = {("PUT", "CREATE"): _WebHdfsHandler.dn_create, ("GET", "OPEN"): _WebHdfsHandler.dn_open}
