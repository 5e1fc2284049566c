"""Hadoop's DistributedShell ApplicationMaster, played by the test ResourceManager.

No JVM runs here, so when an ApplicationMaster container's ``java`` is asked
for ``org.apache.hadoop.yarn.applications.distributedshell.ApplicationMaster``
with a classpath that holds a jar containing that class, this plays what the
class does (Hadoop 3.3): it checks the environment the NodeManager must
give an AM, reads the shell command from the localized ``shellCommands``
file (Java's ``writeUTF`` format) and ``shellArgs``, registers, asks for
``--num_containers`` containers of ``--container_memory`` MB and
``--container_vcores`` vcores (capped at the scheduler's maximum), starts
``<shell command> <shell args> 1><LOG_DIR>/stdout 2><LOG_DIR>/stderr`` in
each with the ``--shell_env`` variables plus ``YARN_SHELL_ID``, asks again for
containers that were aborted (-100, e.g. lost with their node), and
unregisters SUCCEEDED when every container exited 0, otherwise FAILED with
DistributedShell's diagnostics line.
"""

from __future__ import annotations

import logging
import queue
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .nodemanager import EXIT_ABORTED, Container, LaunchContext, LocalResource

if TYPE_CHECKING:
    from .cluster import Attempt, YarnCluster

LOG = logging.getLogger(__name__)
MAIN_CLASS = "org.apache.hadoop.yarn.applications.distributedshell.ApplicationMaster"
CLASS_ENTRY = MAIN_CLASS.replace(".", "/") + ".class"
REQUIRED_ENV = ("CONTAINER_ID", "APP_SUBMIT_TIME_ENV", "NM_HOST", "NM_HTTP_PORT", "NM_PORT")
# Options of DistributedShell's ApplicationMaster that take a value (commons-cli GnuParser).
VALUED = {"app_attempt_id", "shell_env", "container_type", "container_memory", "container_vcores",
          "container_resources", "container_resource_profile", "num_containers", "priority",
          "container_retry_policy", "container_retry_error_codes", "container_max_retries",
          "container_retry_interval", "container_failures_validity_interval", "placement_spec", "localized_files",
          "homedir", "appname"}
FLAGS = {"debug", "help", "promote_opportunistic_after_start", "enforce_execution_type",
         "keep_containers_across_application_attempts"}


class JvmExit(Exception):  # noqa: N818 (how the stand-in JVM ends)
    """The JVM ends with ``code``; ``message`` goes to its stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def main_class(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[str, list[str]]:
    """The class ``java argv`` runs and its arguments; JvmExit when no jar on the classpath holds it."""
    classpath = env.get("CLASSPATH", "")
    args = list(argv)
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in ("-cp", "-classpath", "--class-path") and args:
            classpath = args.pop(0)
    if not args:
        raise JvmExit(1, "Usage: java [options] <mainclass> [args...]")
    name, rest = args[0], args[1:]
    jars: list[Path] = []
    for entry in classpath.split(":"):
        path = cwd / entry if entry and not entry.startswith("/") else Path(entry)
        if entry.endswith("*"):
            jars.extend(sorted(path.parent.glob("*.jar")))
        elif entry.endswith(".jar"):
            jars.append(path)
    wanted = name.replace(".", "/") + ".class"
    for jar in jars:
        try:
            with zipfile.ZipFile(jar) as archive:
                if wanted in archive.namelist():
                    return name, rest
        except (OSError, zipfile.BadZipFile):
            continue
    raise JvmExit(1, f"Error: Could not find or load main class {name}\nCaused by: java.lang.ClassNotFoundException: "
                     f"{name}")


def write_stand_in_jar(path: Path) -> Path:
    """A jar the test NodeManager's java accepts as DistributedShell's (it holds the class's entry, not its code)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        jar.writestr(CLASS_ENTRY, b"")
    return path


def read_utf(data: bytes) -> str:
    """``DataInputStream.readUTF``: a two-byte length, then modified UTF-8."""
    if len(data) < 2:
        raise JvmExit(1, "java.io.EOFException")
    length = int.from_bytes(data[:2], "big")
    raw = data[2:2 + length].replace(b"\xc0\x80", b"\x00")
    return raw.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass").decode("utf-16")


def parse_options(args: list[str]) -> dict[str, list[str]]:
    """commons-cli GnuParser: ``-opt value`` or ``--opt value``; unknown options are an error."""
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        token = args[i]
        name = token.lstrip("-")
        value = None
        if "=" in name:
            name, value = name.split("=", 1)
        if not token.startswith("-") or (name not in VALUED and name not in FLAGS):
            raise JvmExit(1, f"org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {token}")
        if name in VALUED and value is None:
            i += 1
            if i >= len(args):
                raise JvmExit(1, f"org.apache.commons.cli.MissingArgumentException: Missing argument for option: "
                                 f"{name}")
            value = args[i]
        options.setdefault(name, []).append(value if value is not None else "")
        i += 1
    return options


class DistributedShellAM:
    """One attempt's ApplicationMaster; ``run`` in a thread returns the JVM's exit code."""

    def __init__(self, cluster: YarnCluster, attempt: Attempt, container: Container, args: list[str],
                 env: dict[str, str]) -> None:
        self.cluster = cluster
        self.attempt = attempt
        self.container = container
        self.args = args
        self.env = env
        self.completed: queue.SimpleQueue[tuple[Container, int]] = queue.SimpleQueue()

    def run(self) -> int:
        try:
            return self._run()
        except JvmExit as exc:
            with open(self.container.log_dir / "AppMaster.stderr", "a") as err:
                err.write(str(exc) + "\n")
            return exc.code

    def _run(self) -> int:
        options = parse_options(self.args)
        for name in REQUIRED_ENV:
            if name not in self.env:
                raise JvmExit(1, f"java.lang.RuntimeException: {name} not set in the environment")
        cwd = self.container.directory
        if not (cwd / "shellCommands").exists() and not self.env.get("DISTRIBUTEDSHELLSCRIPTLOCATION"):
            raise JvmExit(1, "java.lang.IllegalArgumentException: No shell command or shell script specified to be "
                             "executed by application master")
        if self.env.get("DISTRIBUTEDSHELLSCRIPTLOCATION"):
            raise JvmExit(1, "java.lang.UnsupportedOperationException: the test ResourceManager plays "
                             "DistributedShell with shellCommands only")
        command = read_utf((cwd / "shellCommands").read_bytes())
        shell_args = read_utf((cwd / "shellArgs").read_bytes()) if (cwd / "shellArgs").exists() else ""
        shell_env: dict[str, str] = {}
        for item in options.get("shell_env", []):
            key, _, value = item.strip().partition("=")
            shell_env[key] = value
        total = int(_one(options, "num_containers", "1"))
        if total == 0:
            raise JvmExit(1, "java.lang.IllegalArgumentException: Cannot run distributed shell with no containers")
        memory = int(_one(options, "container_memory", "-1"))
        vcores = int(_one(options, "container_vcores", "-1"))
        memory, vcores = (10 if memory == -1 else memory), (1 if vcores == -1 else vcores)
        if memory <= 0 or vcores <= 0:
            raise JvmExit(1, "org.apache.hadoop.yarn.exceptions.YarnRuntimeException: Value of AM memory "
                             f"'{memory}' has to be greater than 0")
        localized = self._localized_files(options)
        max_memory, max_vcores = self.cluster.register(self.attempt)
        memory, vcores = min(memory, max_memory), min(vcores, max_vcores)
        counts = {"completed": 0, "failed": 0, "allocated": 0}
        shell_ids = iter(range(1, 1 << 30))
        line = f"{command} {shell_args} 1><LOG_DIR>/stdout 2><LOG_DIR>/stderr "

        def launch(container: Container) -> None:
            counts["allocated"] += 1
            container.context = LaunchContext([line], {**shell_env, "YARN_SHELL_ID": str(next(shell_ids))},
                                              localized)
            self.cluster.start_container(container, self._done)

        requested = total
        self.cluster.request(self.attempt, total, memory, vcores, launch)
        while counts["completed"] < total:
            try:
                container, status = self.completed.get(timeout=0.2)
            except queue.Empty:
                if not self.cluster.am_alive(self.attempt, self.container):
                    return 1  # the container is gone (killed, node lost): so is this JVM
                continue
            if status == EXIT_ABORTED:
                counts["allocated"] -= 1
                self.cluster.request(self.attempt, 1, memory, vcores, launch)
                requested += 1
                continue
            counts["completed"] += 1
            if status != 0:
                counts["failed"] += 1
        if counts["completed"] - counts["failed"] >= total:
            self.cluster.unregister(self.attempt, "SUCCEEDED", "")
        else:
            self.cluster.unregister(self.attempt, "FAILED",
                                    f"Diagnostics., total={total}, completed={counts['completed']}, "
                                    f"allocated={counts['allocated']}, failed={counts['failed']}")
        return 0 if counts["failed"] == 0 else 2

    def _done(self, container: Container, status: int, _: str) -> None:
        self.completed.put((container, status))

    def _localized_files(self, options: dict[str, list[str]]) -> list[LocalResource]:
        """``--localized_files``: files under ``<homedir>/<appname>/<app id>/``, APPLICATION visibility."""
        names = [n for item in options.get("localized_files", []) for n in item.split(",") if n]
        if not names:
            return []
        home = _one(options, "homedir", f"/user/{self.env.get('USER', '')}")
        app_name = _one(options, "appname", "DistributedShell")
        resources = []
        for name in names:
            path = f"{home.rstrip('/')}/{app_name}/{self.attempt.app.app_id}/{name}"
            node = self.cluster.hdfs.namespace.status(path)
            resources.append(LocalResource(name, f"{self.cluster.hdfs.default_fs}{path}", "FILE", "APPLICATION",
                                           node.length, node.modification_time))
        return resources


def _one(options: dict[str, list[str]], name: str, default: str) -> str:
    values = options.get(name)
    return values[0] if values else default


Launch = Callable[[Container], None]
