"""A test agent: resources, attributes, and task commands really run as local processes.

It plays the part of a Mesos agent with the command executor: it fetches the
task's URIs into a sandbox (with a fetcher cache keyed by user and URI),
checks that volume host paths exist and that the task's user exists, links
the persistent volumes the task uses into its sandbox at their container
path (as the posix filesystem isolator does; the volumes themselves live in
``<work_dir>/volumes/roles/<role>/<persistence id>`` from CREATE to DESTROY),
runs the command, and reports TASK_STARTING, TASK_RUNNING and a terminal
state the way the command executor words them ("Command exited with status N").
Container images are not pulled: the command runs on the host, which is
what lets the shipped processors produce real outputs through the test
master.

Every path through a task ends in a terminal report, whatever goes wrong in
between: a task never stays staging with its resources held.

The agent process and the machine are apart, as on a real cluster:
``stop_process`` leaves the tasks running (they report again once the agent
is back), ``crash`` takes the machine down with every task on it.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import pwd
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

from .agent_files import AgentFiles
from .resources import Bag, volume_of

LOG = logging.getLogger(__name__)
# (framework_id, task_id, state, message, reason, source) -> the master turns it into a status update.
Report = Callable[[str, str, str, str, str | None, str], None]
DEFAULT_KILL_GRACE = 3.0
EXECUTOR = "SOURCE_EXECUTOR"
AGENT = "SOURCE_AGENT"


class FetchError(Exception):
    """A task URI could not be fetched, or its container could not be set up."""


@dataclass
class RunningTask:
    task_id: str
    framework_id: str
    info: dict[str, Any]
    resources: Bag
    sandbox: Path
    user: str
    killing_state: bool  # the framework has TASK_KILLING_STATE
    process: subprocess.Popen | None = None
    killing: bool = False
    thread: threading.Thread | None = None


@dataclass
class TestAgent:
    """One agent. ``work_dir`` holds its sandboxes and fetcher cache."""

    __test__ = False  # not a pytest test class

    agent_id: str
    hostname: str
    resources: Bag
    attributes: dict[str, str]
    work_dir: Path
    machine_up: bool = True  # False once crashed: its tasks are gone
    process_up: bool = True  # the agent process; tasks outlive it (checkpointing)
    tasks: dict[tuple[str, str], RunningTask] = field(default_factory=dict)  # (framework, task) -> task
    fetches: int = 0  # downloads (cache misses); tests of processor caching read it
    cache_hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    files: AgentFiles | None = field(default=None, repr=False)  # its /files endpoints, on its own port

    def __post_init__(self) -> None:
        if self.files is None:
            self.files = AgentFiles(self.hostname)

    @property
    def used(self) -> Bag:
        total = Bag()
        for task in list(self.tasks.values()):
            total = total + task.resources
        return total

    def volume_path(self, role: str, persistence_id: str) -> Path:
        return self.work_dir / "volumes" / "roles" / role / persistence_id

    def change_volumes(self, created: Bag, destroyed: Bag) -> None:
        """CREATE makes a volume's directory, DESTROY removes it with its contents."""
        for key, _amount in created.items():
            self.volume_path(key[1], volume_of(key).persistence_id).mkdir(parents=True, exist_ok=True)
        for key, _amount in destroyed.items():
            shutil.rmtree(self.volume_path(key[1], volume_of(key).persistence_id), ignore_errors=True)

    def launch(self, framework_id: str, info: dict[str, Any], resources: Bag, user: str, killing_state: bool,
               report: Report) -> None:
        """Start a validated task in its own thread: fetch, run, report."""
        task_id = info["task_id"]["value"]
        sandbox = self.work_dir / "sandboxes" / framework_id / task_id
        task = RunningTask(task_id, framework_id, info, resources, sandbox, user, killing_state)
        self.tasks[(framework_id, task_id)] = task
        self.files.attach(sandbox, str(sandbox))  # the command executor's id is the task's
        self.files.attach(sandbox, f"/frameworks/{framework_id}/executors/{task_id}/runs/latest")
        task.thread = threading.Thread(target=self._run, args=(task, report), name=f"agent-{task_id}", daemon=True)
        task.thread.start()

    def kill(self, framework_id: str, task_id: str, grace: float | None, report: Report) -> bool:
        """The executor's kill: TASK_KILLING (with the capability), SIGTERM, SIGKILL after the grace period."""
        task = self.tasks.get((framework_id, task_id))
        if task is None:
            return False
        first = not task.killing
        task.killing = True
        process = task.process
        if process is not None and process.poll() is None:
            if first and task.killing_state:
                report(framework_id, task_id, "TASK_KILLING", "", None, EXECUTOR)
            _signal_group(process, signal.SIGTERM)
            threading.Thread(target=_kill_after, args=(process, grace if grace is not None else DEFAULT_KILL_GRACE),
                             daemon=True).start()
        return True

    def shut_down(self, framework_id: str) -> None:
        """The framework was removed: its tasks die and nothing is reported."""
        for key, task in list(self.tasks.items()):
            if key[0] == framework_id:
                task.killing = True
                self.tasks.pop(key, None)
                if task.process is not None and task.process.poll() is None:
                    _signal_group(task.process, signal.SIGKILL)

    def stop_process(self) -> None:
        """The agent process stops; its tasks keep running (checkpointed), its endpoints do not answer."""
        self.process_up = False
        self.files.close()

    def start_process(self) -> None:
        self.process_up = True
        self.files.open()

    def crash(self) -> None:
        """The machine goes away: every task process dies with it, nothing is reported."""
        self.machine_up = False
        self.process_up = False
        self.files.close()
        self.files.forget_all()
        for task in list(self.tasks.values()):
            task.killing = True
            if task.process is not None and task.process.poll() is None:
                _signal_group(task.process, signal.SIGKILL)
        self.tasks.clear()

    # -- running one task ---------------------------------------------------

    def _run(self, task: RunningTask, report: Report) -> None:
        try:
            self._run_task(task, report)
        except Exception as exc:  # never leave a task without a terminal update
            LOG.exception("test agent: task %s failed unexpectedly", task.task_id)
            self._finish(task, report, "TASK_FAILED", f"Agent error: {type(exc).__name__}: {exc}",
                         "REASON_EXECUTOR_TERMINATED", AGENT)

    def _run_task(self, task: RunningTask, report: Report) -> None:
        command = task.info.get("command") or {}
        if "executor" in task.info:
            self._finish(task, report, "TASK_FAILED", "Custom executors are not supported by the test agent",
                         "REASON_EXECUTOR_TERMINATED", AGENT)
            return
        try:
            account = _account(task.user)
            task.sandbox.mkdir(parents=True, exist_ok=True)
            self._check_volumes(task.info.get("container") or {})
            self._link_persistent_volumes(task)
            for uri in command.get("uris") or []:
                self._fetch(uri, task.sandbox, task.user)
            if account is not None:
                _chown_tree(task.sandbox, account)
        except (FetchError, OSError) as exc:
            self._finish(task, report, "TASK_FAILED", str(exc), "REASON_CONTAINER_LAUNCH_FAILED", AGENT)
            return
        if task.killing:
            self._finish(task, report, "TASK_KILLED", "Task killed before it started",
                         "REASON_TASK_KILLED_DURING_LAUNCH", AGENT)
            return
        argv = _argv(command)
        env = self._environment(task, command)
        report(task.framework_id, task.task_id, "TASK_STARTING", "", None, EXECUTOR)
        try:
            with open(task.sandbox / "stdout", "wb") as out, open(task.sandbox / "stderr", "wb") as err:
                task.process = subprocess.Popen(argv, cwd=task.sandbox, env=env, stdout=out, stderr=err,
                                                stdin=subprocess.DEVNULL, start_new_session=True,
                                                user=account.pw_uid if account else None,
                                                group=account.pw_gid if account else None)
        except (OSError, ValueError) as exc:
            self._finish(task, report, "TASK_FAILED", f"Failed to launch command: {exc}",
                         "REASON_CONTAINER_LAUNCH_FAILED", EXECUTOR)
            return
        if task.killing:  # killed while the process was being started
            self.kill(task.framework_id, task.task_id, 0, report)
        report(task.framework_id, task.task_id, "TASK_RUNNING", "", None, EXECUTOR)
        code = task.process.wait()
        if not self.machine_up:
            return  # the machine died with its tasks; the master reports them
        if task.killing:
            self._finish(task, report, "TASK_KILLED", "Command terminated with signal Terminated", None, EXECUTOR)
        elif code == 0:
            self._finish(task, report, "TASK_FINISHED", "Command exited with status 0", None, EXECUTOR)
        elif code < 0:
            name = signal.Signals(-code).name.removeprefix("SIG").title()
            self._finish(task, report, "TASK_FAILED", f"Command terminated with signal {name}",
                         "REASON_COMMAND_EXECUTOR_FAILED", EXECUTOR)
        else:
            self._finish(task, report, "TASK_FAILED", f"Command exited with status {code}",
                         "REASON_COMMAND_EXECUTOR_FAILED", EXECUTOR)

    def _finish(self, task: RunningTask, report: Report, state: str, message: str, reason: str | None,
                source: str) -> None:
        if not self.machine_up or self.tasks.pop((task.framework_id, task.task_id), None) is None:
            return  # the machine died, or the framework was shut down: nobody hears of it
        report(task.framework_id, task.task_id, state, message, reason, source)

    def _environment(self, task: RunningTask, command: dict[str, Any]) -> dict[str, str]:
        # The command executor inherits the agent's environment; the agent's
        # Python comes first on PATH so that tasks find the same interpreter.
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env.update({"MESOS_SANDBOX": str(task.sandbox), "MESOS_TASK_ID": task.task_id,
                    "MESOS_AGENT_ID": self.agent_id, "MESOS_FRAMEWORK_ID": task.framework_id})
        for variable in (command.get("environment") or {}).get("variables") or []:
            env[variable.get("name", "")] = variable.get("value", "")
        return env

    def _link_persistent_volumes(self, task: RunningTask) -> None:
        for key, _amount in task.resources.volumes().items():
            info = volume_of(key)
            link = task.sandbox / info.container_path
            if not link.is_symlink():
                link.symlink_to(self.volume_path(key[1], info.persistence_id), target_is_directory=True)

    @staticmethod
    def _check_volumes(container: dict[str, Any]) -> None:
        for volume in container.get("volumes") or []:
            host = volume.get("host_path") or ((volume.get("source") or {}).get("host_path") or {}).get("path")
            if host and not Path(host).exists():
                raise FetchError(f"Failed to mount volume: host path '{host}' does not exist")

    # -- fetcher --------------------------------------------------------------

    def _fetch(self, uri: dict[str, Any], sandbox: Path, user: str) -> None:
        value = uri.get("value", "")
        name = uri.get("output_file") or os.path.basename(urllib.parse.urlparse(value).path) or "download"
        target = sandbox / name
        target.parent.mkdir(parents=True, exist_ok=True)
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
        if uri.get("executable"):
            target.chmod(0o755)
        elif uri.get("extract", True) and _is_archive(target):
            _extract(target, sandbox)


def _account(user: str) -> pwd.struct_passwd | None:
    """The task's Unix account; None to run as the agent's own user. FetchError if it cannot be used."""
    try:
        account = pwd.getpwnam(user)
    except (KeyError, ValueError):
        raise FetchError(f"Failed to get user information for '{user}'") from None
    if account.pw_name == getpass.getuser():
        return None
    if os.geteuid() != 0:
        raise FetchError(f"Failed to switch to user '{user}': the agent does not run as root")
    return account


def _chown_tree(root: Path, account: pwd.struct_passwd) -> None:
    for path in (root, *root.rglob("*")):
        os.lchown(path, account.pw_uid, account.pw_gid)


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
    except (OSError, ValueError) as exc:
        raise FetchError(f"Failed to fetch '{value}': {exc}") from exc


def _is_archive(path: Path) -> bool:
    return path.name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip"))


def _extract(path: Path, into: Path) -> None:
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                archive.extractall(into)
        else:
            with tarfile.open(path) as archive:
                archive.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile) as exc:
        raise FetchError(f"Failed to extract '{path.name}': {exc}") from exc


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
