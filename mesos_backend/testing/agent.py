"""A test agent: resources, attributes, and task commands really run as local processes.

It plays the part of a Mesos agent with the command executor: it fetches the
task's URIs into a sandbox (with a fetcher cache keyed by user and URI),
checks that volume host paths exist, runs the command, and reports
TASK_STARTING, TASK_RUNNING and a terminal state the way the command
executor words them ("Command exited with status N"). Container images are
not pulled: the command runs on the host, which is what lets the shipped
processors produce real outputs through the test master.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base import Resources

LOG = logging.getLogger(__name__)
# (task_id, state, message, reason) -> the master turns it into a status update.
Report = Callable[[str, str, str, str | None], None]
DEFAULT_KILL_GRACE = 3.0


class FetchError(Exception):
    """A task URI could not be fetched."""


@dataclass
class RunningTask:
    task_id: str
    framework_id: str
    info: dict[str, Any]
    resources: Resources
    sandbox: Path
    process: subprocess.Popen | None = None
    killing: bool = False
    thread: threading.Thread | None = None


@dataclass
class TestAgent:
    """One agent. ``work_dir`` holds its sandboxes and fetcher cache."""

    __test__ = False  # not a pytest test class

    agent_id: str
    hostname: str
    resources: Resources
    attributes: dict[str, str]
    work_dir: Path
    reachable: bool = True
    tasks: dict[str, RunningTask] = field(default_factory=dict)
    fetches: int = 0  # downloads (cache misses); tests of processor caching read it
    cache_hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def used(self) -> Resources:
        total = Resources(0, 0, 0, 0)
        for task in list(self.tasks.values()):
            total = total + task.resources
        return total

    def launch(self, framework_id: str, info: dict[str, Any], resources: Resources, report: Report) -> None:
        """Start a validated task in its own thread: fetch, run, report."""
        task_id = info["task_id"]["value"]
        sandbox = self.work_dir / "sandboxes" / framework_id / task_id
        task = RunningTask(task_id, framework_id, info, resources, sandbox)
        self.tasks[task_id] = task
        task.thread = threading.Thread(target=self._run, args=(task, report), name=f"agent-{task_id}", daemon=True)
        task.thread.start()

    def kill(self, task_id: str, grace: float | None) -> bool:
        """SIGTERM the task's process group, SIGKILL after the grace period. False if unknown."""
        task = self.tasks.get(task_id)
        if task is None:
            return False
        task.killing = True
        process = task.process
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            threading.Thread(target=_kill_after, args=(process, grace if grace is not None else DEFAULT_KILL_GRACE),
                             daemon=True).start()
        return True

    def crash(self) -> None:
        """The machine goes away: every task process dies with it, nothing is reported."""
        self.reachable = False
        for task in list(self.tasks.values()):
            task.killing = True
            if task.process is not None and task.process.poll() is None:
                _signal_group(task.process, signal.SIGKILL)

    # -- running one task ---------------------------------------------------

    def _run(self, task: RunningTask, report: Report) -> None:
        command = task.info.get("command") or {}
        try:
            task.sandbox.mkdir(parents=True, exist_ok=True)
            self._check_volumes(task.info.get("container") or {})
            for uri in command.get("uris", []):
                self._fetch(uri, task.sandbox, command.get("user") or "")
        except (FetchError, OSError) as exc:
            self._finish(task, report, "TASK_FAILED", str(exc), "REASON_CONTAINER_LAUNCH_FAILED")
            return
        if task.killing:
            self._finish(task, report, "TASK_KILLED", "Task killed before it started",
                         "REASON_TASK_KILLED_DURING_LAUNCH")
            return
        argv = _argv(command)
        env = self._environment(task, command)
        report(task.task_id, "TASK_STARTING", "", None)
        try:
            with open(task.sandbox / "stdout", "wb") as out, open(task.sandbox / "stderr", "wb") as err:
                task.process = subprocess.Popen(argv, cwd=task.sandbox, env=env, stdout=out, stderr=err,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            self._finish(task, report, "TASK_FAILED", f"Failed to launch command: {exc}",
                         "REASON_CONTAINER_LAUNCH_FAILED")
            return
        report(task.task_id, "TASK_RUNNING", "", None)
        code = task.process.wait()
        if not self.reachable:
            return  # the agent died with its tasks; the master reports them
        if task.killing:
            self._finish(task, report, "TASK_KILLED", "Command terminated with signal Terminated", None)
        elif code == 0:
            self._finish(task, report, "TASK_FINISHED", "Command exited with status 0", None)
        elif code < 0:
            name = signal.Signals(-code).name.removeprefix("SIG").title()
            self._finish(task, report, "TASK_FAILED", f"Command terminated with signal {name}",
                         "REASON_COMMAND_EXECUTOR_FAILED")
        else:
            self._finish(task, report, "TASK_FAILED", f"Command exited with status {code}",
                         "REASON_COMMAND_EXECUTOR_FAILED")

    def _finish(self, task: RunningTask, report: Report, state: str, message: str, reason: str | None) -> None:
        self.tasks.pop(task.task_id, None)
        report(task.task_id, state, message, reason)

    def _environment(self, task: RunningTask, command: dict[str, Any]) -> dict[str, str]:
        # The command executor inherits the agent's environment; the agent's
        # Python comes first on PATH so that tasks find the same interpreter.
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env.update({"MESOS_SANDBOX": str(task.sandbox), "MESOS_TASK_ID": task.task_id,
                    "MESOS_AGENT_ID": self.agent_id, "MESOS_FRAMEWORK_ID": task.framework_id})
        for variable in (command.get("environment") or {}).get("variables", []):
            env[variable["name"]] = variable.get("value", "")
        return env

    @staticmethod
    def _check_volumes(container: dict[str, Any]) -> None:
        for volume in container.get("volumes", []):
            host = volume.get("host_path")
            if host and not Path(host).exists():
                raise FetchError(f"Failed to mount volume: host path '{host}' does not exist")

    # -- fetcher --------------------------------------------------------------

    def _fetch(self, uri: dict[str, Any], sandbox: Path, user: str) -> None:
        value = uri["value"]
        name = uri.get("output_file") or os.path.basename(urllib.parse.urlparse(value).path) or "download"
        target = sandbox / name
        if uri.get("cache"):
            key = hashlib.sha256(f"{user}\0{value}".encode()).hexdigest()
            cached = self.work_dir / "fetcher-cache" / key
            with self._lock:
                if cached.exists():
                    self.cache_hits += 1
                else:  # a failed download must not leave a file that later counts as cached
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    partial = cached.with_suffix(".partial")
                    _download(value, partial)
                    os.replace(partial, cached)
                    self.fetches += 1
            shutil.copyfile(cached, target)
        else:
            _download(value, target)
            with self._lock:
                self.fetches += 1
        if uri.get("extract", True) and _is_archive(target):
            _extract(target, sandbox)
        if uri.get("executable"):
            target.chmod(0o755)


def _argv(command: dict[str, Any]) -> list[str]:
    if command.get("shell", True):
        return ["/bin/sh", "-c", command.get("value", "")]
    return list(command.get("arguments") or [command.get("value", "")])


def _download(value: str, target: Path) -> None:
    parsed = urllib.parse.urlparse(value)
    try:
        if parsed.scheme in ("", "file"):
            shutil.copyfile(parsed.path if parsed.scheme else value, target)
        elif parsed.scheme in ("http", "https"):
            with urllib.request.urlopen(value, timeout=30) as response, open(target, "wb") as out:  # noqa: S310
                shutil.copyfileobj(response, out)
        else:
            raise FetchError(f"Failed to fetch '{value}': unsupported scheme")
    except OSError as exc:
        raise FetchError(f"Failed to fetch '{value}': {exc}") from exc


def _is_archive(path: Path) -> bool:
    return path.name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip"))


def _extract(path: Path, into: Path) -> None:
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            archive.extractall(into)
    else:
        with tarfile.open(path) as archive:
            archive.extractall(into, filter="data")


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_after(process: subprocess.Popen, grace: float) -> None:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return
        time.sleep(0.05)
    _signal_group(process, signal.SIGKILL)
