"""A test NodeManager: localizes resources and runs containers as local processes, as a real one does.

Each container gets a directory ``usercache/<user>/appcache/<app>/<container>``
and a log directory, its local resources are checked (size, modification
time, PUBLIC readability) and linked in under their keys (archives
unpacked), and a ``launch_container.sh`` written the way YARN writes it --
``export KEY="value"`` for the launch context's environment and the
NodeManager's own variables, ``export VAR=${VAR:-"value"}`` for the
whitelisted ones, ``exec /bin/bash -c "<command>"`` -- is run by bash with
the whitelisted variables of the NodeManager's environment and no others. So
a command or an environment value that is not escaped for those double
quotes breaks here as it breaks on a real cluster.

``java`` on the NodeManager is a stand-in (``$JAVA_HOME/bin/java``): in an
ApplicationMaster container it records its arguments and environment and
waits; the ResourceManager double then plays the class it was asked to run
(DistributedShell's ApplicationMaster) or fails as a JVM that cannot find it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..agent import _kill_after, _signal_group  # the test agent's: SIGTERM the group, SIGKILL after a delay
from .hdfs import HdfsCluster
from .nm_web import nm_listener
from .web import RemoteError

LOG = logging.getLogger(__name__)
# yarn.nodemanager.env-whitelist as a single-node Hadoop 3 set-up configures it.
ENV_WHITELIST = ("JAVA_HOME", "HADOOP_COMMON_HOME", "HADOOP_HDFS_HOME", "HADOOP_CONF_DIR",
                 "CLASSPATH_PREPEND_DISTCACHE", "HADOOP_YARN_HOME", "HADOOP_HOME", "PATH", "LANG", "TZ")
SIGKILL_DELAY = 0.25  # yarn.nodemanager.sleep-delay-before-sigkill.ms
TRACK_STOPPED_SECONDS = 600.0  # yarn.nodemanager.duration-to-track-stopped-containers
EXIT_ABORTED = -100
EXIT_INVALID = -1000
EXIT_KILLED = 143
JVM_SHIM = """#!/bin/bash
# The test NodeManager's java: an ApplicationMaster container records how it was started, then waits while the
# test ResourceManager plays the class; anywhere else there is no JVM here.
case "$CONTAINER_ID" in
  *_000001) ;;
  *) echo "java: no JVM on the test NodeManager" >&2; exit 127 ;;
esac
env -0 > .jvm-env
printf '%s\\0' "$@" > .jvm-argv.tmp && mv .jvm-argv.tmp .jvm-argv
exec sleep 2147483647
"""


@dataclass(frozen=True)
class LocalResource:
    key: str
    url: str
    type: str  # FILE | ARCHIVE | PATTERN
    visibility: str  # PUBLIC | PRIVATE | APPLICATION
    size: int
    timestamp: int


@dataclass
class LaunchContext:
    commands: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    resources: list[LocalResource] = field(default_factory=list)


@dataclass(eq=False)
class Container:
    container_id: str
    app_id: str
    user: str
    memory: int
    vcores: int
    context: LaunchContext
    is_am: bool = False
    node: NodeManager | None = None
    directory: Path | None = None
    log_dir: Path | None = None
    process: subprocess.Popen | None = None
    state: str = "NEW"  # NEW | LOCALIZING | RUNNING | COMPLETE
    exit_status: int | None = None
    diagnostics: str = ""
    killed: bool = False
    forced_exit: int | None = None  # what the stand-in JVM "exited" with
    env_extra: dict[str, str] = field(default_factory=dict)
    silent: bool = False  # ended with its node or its ResourceManager's state: nothing is reported
    attempt: Any = None  # the ResourceManager's attempt it belongs to
    on_complete: Any = None  # the ResourceManager's (or the AM's) handler of its end
    done: threading.Event = field(default_factory=threading.Event)


# (container, exit status, diagnostics): the NodeManager's report of a finished container.
Completion = Callable[[Container, int, str], None]


class NodeManager:
    """One node: capacity, containers, a localizer with its caches; thread-safe."""

    def __init__(self, index: int, work_dir: Path, memory: int, vcores: int, hdfs: HdfsCluster | None,
                 host: str = "127.0.0.1", label: str = "") -> None:
        self.index = index
        self.host = host
        self.node_id = f"{host}:{45454 + index}"
        self.web = nm_listener(self).open()  # its containers and their logs (nm_web.py)
        self.http_address = self.web.address
        self.memory = memory
        self.vcores = vcores
        self.label = label
        self.hdfs = hdfs
        self.work_dir = work_dir
        self.local_dir = work_dir / "local"
        self.log_root = work_dir / "logs"
        self.java_home = work_dir / "jdk"
        self.containers: dict[str, Container] = {}
        self.stopped: dict[str, tuple[Container, float]] = {}  # completed: (container, monotonic time it ended)
        self.state = "RUNNING"  # RUNNING | LOST
        self.lost_at: float | None = None
        self.localizations = 0  # downloads into a cache (tests of PUBLIC caching read it)
        self.last_health_update = int(time.time() * 1000)
        self._lock = threading.RLock()
        self._cache_locks: dict[str, threading.Lock] = {}
        self._install_jvm()

    def _install_jvm(self) -> None:
        java = self.java_home / "bin" / "java"
        java.parent.mkdir(parents=True, exist_ok=True)
        java.write_text(JVM_SHIM)
        java.chmod(0o755)

    # -- capacity -------------------------------------------------------------

    @property
    def used(self) -> tuple[int, int]:
        with self._lock:
            live = [c for c in self.containers.values() if c.state != "COMPLETE"]
            return sum(c.memory for c in live), sum(c.vcores for c in live)

    def fits(self, memory: int, vcores: int) -> bool:
        used_mem, used_cores = self.used
        return self.state == "RUNNING" and used_mem + memory <= self.memory and used_cores + vcores <= self.vcores

    def report(self) -> dict[str, Any]:
        used_mem, used_cores = self.used
        return {"rack": "/default-rack", "state": self.state, "id": self.node_id, "nodeHostName": self.host,
                "nodeHTTPAddress": self.http_address, "lastHealthUpdate": self.last_health_update,
                "version": "3.3.6", "healthReport": "", "numContainers": len([
                    c for c in self.containers.values() if c.state != "COMPLETE"]),
                "usedMemoryMB": used_mem, "availMemoryMB": self.memory - used_mem, "usedVirtualCores": used_cores,
                "availableVirtualCores": self.vcores - used_cores, "nodeLabels": [self.label] if self.label else [],
                "totalResource": {"memory": self.memory, "vCores": self.vcores}}

    # -- containers -----------------------------------------------------------

    def start_container(self, container: Container, completion: Completion) -> None:
        """Localize and launch in a thread of its own; ``completion`` is called once, when it ends."""
        with self._lock:
            container.node = self
            self.containers[container.container_id] = container
        threading.Thread(target=self._run, args=(container, completion), daemon=True,
                         name=f"nm{self.index}-{container.container_id}").start()

    def stop_container(self, container_id: str) -> None:
        """SIGTERM the container's process group, SIGKILL after the NodeManager's delay."""
        container = self.containers.get(container_id)
        if container is None or container.state == "COMPLETE":
            return
        container.killed = True
        process = container.process
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            threading.Thread(target=_kill_after, args=(process, SIGKILL_DELAY), daemon=True).start()

    def end_process(self, container_id: str, code: int) -> None:
        """The stand-in JVM of an AM container ends with ``code``."""
        container = self.containers.get(container_id)
        if container is not None and container.process is not None and container.process.poll() is None:
            container.forced_exit = code
            _signal_group(container.process, signal.SIGTERM)
            threading.Thread(target=_kill_after, args=(container.process, SIGKILL_DELAY), daemon=True).start()

    def crash_container(self, container_id: str) -> None:
        """Kill a container without a report (a ResourceManager that forgot its application told us to)."""
        container = self.containers.pop(container_id, None)
        if container is not None:
            container.silent = True
            container.state = "COMPLETE"
            container.done.set()
            if container.process is not None and container.process.poll() is None:
                _signal_group(container.process, signal.SIGKILL)

    def crash(self) -> None:
        """The machine goes away: every process dies with it and nothing is reported."""
        self.web.close()
        with self._lock:
            self.state = "LOST"
            self.lost_at = time.monotonic()
            for container in self.containers.values():
                if container.process is not None and container.process.poll() is None:
                    _signal_group(container.process, signal.SIGKILL)

    def forget(self, container_id: str) -> None:
        """A completed container leaves the live ones; its web page knows it a while longer (``stopped``)."""
        with self._lock:
            container = self.containers.pop(container_id, None)
            if container is not None:
                now = time.monotonic()
                self.stopped[container_id] = (container, now)
                for old, (_, since) in list(self.stopped.items()):
                    if now - since > TRACK_STOPPED_SECONDS:
                        del self.stopped[old]

    def _run(self, container: Container, completion: Completion) -> None:
        app_dir = self.local_dir / "usercache" / container.user / "appcache" / container.app_id
        container.directory = app_dir / container.container_id
        container.log_dir = self.log_root / container.app_id / container.container_id
        container.state = "LOCALIZING"
        try:
            container.directory.mkdir(parents=True, exist_ok=True)
            container.log_dir.mkdir(parents=True, exist_ok=True)
            links = [(self._localize(r, container, app_dir), r.key) for r in container.context.resources]
        except (OSError, RemoteError, LocalizationError) as exc:
            self._complete(container, completion, EXIT_INVALID, str(exc))
            return
        if container.killed:
            self._complete(container, completion, EXIT_KILLED, "Container killed on request. Exit code is 143")
            return
        script = container.directory / "launch_container.sh"
        script.write_text(self._launch_script(container, links))
        try:
            with open(container.log_dir / "prelaunch.err", "wb") as err:
                container.process = subprocess.Popen(["/bin/bash", str(script)], cwd=container.directory,
                                                     env=self.whitelisted(),
                                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                     stderr=err, start_new_session=True)
        except OSError as exc:
            self._complete(container, completion, EXIT_INVALID, f"Exception from container-launch: {exc}")
            return
        container.state = "RUNNING"
        code = container.process.wait()
        if self.state == "LOST" or container.silent:
            return  # the node died with its containers; the ResourceManager finds out after the expiry
        if container.forced_exit is not None:
            code = container.forced_exit
        elif code < 0:
            code = 128 - code  # killed by a signal: bash's way of saying it
        if container.killed and code != 0:
            self._complete(container, completion, EXIT_KILLED,
                           "Container killed on request. Exit code is 143\nContainer exited with a non-zero "
                           "exit code 143. ")
        elif code != 0:
            self._complete(container, completion, code,
                           f"Exception from container-launch.\nContainer id: {container.container_id}\n"
                           f"Exit code: {code}\n[{time.strftime('%Y-%m-%d %H:%M:%S')}]Container exited with a "
                           f"non-zero exit code {code}. ")
        else:
            self._complete(container, completion, 0, "")

    def _complete(self, container: Container, completion: Completion, status: int, diagnostics: str) -> None:
        if container.silent or container.state == "COMPLETE":
            return
        container.state = "COMPLETE"
        container.exit_status = status
        container.diagnostics = diagnostics
        container.done.set()
        completion(container, status, diagnostics)

    # -- launch_container.sh --------------------------------------------------

    def environment(self, container: Container) -> dict[str, str]:
        """The variables a NodeManager sets itself (final: an application cannot change them)."""
        return {"CONTAINER_ID": container.container_id, "NM_HOST": self.host,
                "NM_PORT": str(45454 + self.index), "NM_HTTP_PORT": str(8042 + self.index),
                "LOCAL_DIRS": str(self.local_dir / "usercache" / container.user / "appcache" / container.app_id),
                "LOCAL_USER_DIRS": str(self.local_dir / "usercache" / container.user),
                "LOG_DIRS": str(container.log_dir), "USER": container.user, "LOGNAME": container.user,
                "HOME": "/home/", "PWD": str(container.directory), "JVM_PID": "$$",
                "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", ""), **container.env_extra}

    def whitelisted(self) -> dict[str, str]:
        """The NodeManager's own values of the whitelisted variables; its Python first on PATH, its JVM as java."""
        values = {k: os.environ[k] for k in ENV_WHITELIST if k in os.environ}
        values["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
        values["JAVA_HOME"] = str(self.java_home)
        return values

    def _launch_script(self, container: Container, links: list[tuple[Path, str]]) -> str:
        def expand(text: str) -> str:
            text = text.replace("<LOG_DIR>", str(container.log_dir)).replace("<CPS>", ":")
            return re.sub(r"\{\{(\w+)\}\}", r"$\1", text)

        lines = ["#!/bin/bash", ""]
        own = self.environment(container)
        for key, value in container.context.environment.items():
            if key not in own:
                lines.append(f'export {key}="{expand(value)}"')
        for key, value in own.items():
            lines.append(f'export {key}="{value}"')
        for key, value in self.whitelisted().items():
            if key not in container.context.environment and key not in own:
                lines.append(f'export {key}=${{{key}:-"{value}"}}')
        for source, key in links:
            if "/" in key:
                lines.append(f"mkdir -p {os.path.dirname(key)}")
            lines.append(f'ln -sf -- "{source}" "{key}"')
        lines.append('exec /bin/bash -c "' + " ".join(expand(c) for c in container.context.commands) + '"')
        return "\n".join(lines) + "\n"

    # -- localization -----------------------------------------------------------

    def _localize(self, resource: LocalResource, container: Container, app_dir: Path) -> Path:
        size, timestamp, public = self._source_status(resource.url)
        if timestamp != resource.timestamp:
            raise LocalizationError(f"Resource {resource.url} changed on src filesystem (expected "
                                    f"{resource.timestamp}, was {timestamp}")
        if size != resource.size:
            raise LocalizationError(f"Resource {resource.url} changed on src filesystem (expected size "
                                    f"{resource.size}, was {size}")
        if resource.visibility == "PUBLIC" and not public:
            raise LocalizationError(f"Resource {resource.url} is not publicly accessible and as such cannot be part "
                                    "of the public cache.")
        cache = {"PUBLIC": self.local_dir / "filecache",
                 "PRIVATE": self.local_dir / "usercache" / container.user / "filecache"}.get(
            resource.visibility, app_dir / "filecache")
        entry = cache / _cache_key(resource)
        with self._lock:
            entry_lock = self._cache_locks.setdefault(str(entry), threading.Lock())
        with entry_lock:
            if not entry.exists():
                partial = entry.with_name(entry.name + ".partial")
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir(parents=True)
                name = os.path.basename(urlsplit(resource.url).path) or resource.key
                self._download(resource.url, partial / name)
                if resource.type in ("ARCHIVE", "PATTERN"):
                    _unpack(partial / name, partial / f"{name}.unpacked")
                    (partial / name).unlink()
                    (partial / f"{name}.unpacked").rename(partial / name)
                os.replace(partial, entry)
                self.localizations += 1
            (target,) = list(entry.iterdir())
            return target

    def _source_status(self, url: str) -> tuple[int, int, bool]:
        parts = urlsplit(url)
        if parts.scheme == "hdfs":
            if self.hdfs is None:
                raise LocalizationError(f"No FileSystem for scheme \"hdfs\" ({url})")
            path = self.hdfs.path_of(url)
            node = self.hdfs.namespace.status(path)
            return node.length, node.modification_time, self.hdfs.namespace.is_public(path)
        if parts.scheme in ("file", ""):
            path = Path(unquote(parts.path))
            if not path.exists():
                raise LocalizationError(f"File {path} does not exist")
            stat = path.stat()
            return stat.st_size, stat.st_mtime_ns // 1_000_000, _world_readable(path)
        raise LocalizationError(f"No FileSystem for scheme \"{parts.scheme}\"")

    def _download(self, url: str, target: Path) -> None:
        parts = urlsplit(url)
        if parts.scheme == "hdfs":
            self.hdfs.namespace.copy_out(self.hdfs.path_of(url), target)
        else:
            shutil.copyfile(unquote(parts.path), target)


class LocalizationError(Exception):
    """A resource could not be localized; the message is the NodeManager's diagnostics."""


def _cache_key(resource: LocalResource) -> str:
    import hashlib
    return hashlib.sha256(f"{resource.url}\0{resource.timestamp}\0{resource.type}".encode()).hexdigest()[:20]


def _world_readable(path: Path) -> bool:
    if not path.stat().st_mode & 0o004:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in path.resolve().parents)


def _unpack(archive: Path, into: Path) -> None:
    into.mkdir()
    name = archive.name.lower()
    try:
        if name.endswith((".zip", ".jar")):
            with zipfile.ZipFile(archive) as z:
                z.extractall(into)
        else:
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise LocalizationError(f"cannot unpack {archive.name}: {exc}") from exc
