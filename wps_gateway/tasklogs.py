"""The tail of a task attempt's stdout and stderr, wherever the attempt ran.

* local and Slurm: its sandbox, ``<data_dir>/sandboxes/<attempt id>/``, read
  here (the serving process shares ``data_dir`` with the dispatcher, and
  Slurm's nodes write there through the shared file system);
* Mesos: the agent's files API, at the address the agent's offers gave (the
  dispatcher publishes it with its status), under the sandbox's virtual path
  recorded with the attempt;
* YARN: the container log link of the attempt's application, and the files
  from the NodeManager that ran the container.

What a task prints is shown as it is, except for credentials in URLs, which
are masked (``redaction.redact``), as everywhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings
from .metrics.publisher import read_status
from .redaction import redact
from .store.backend_state import StoreBackendState
from .store.db import Store

STREAMS = ("stdout", "stderr")
DEFAULT_TAIL = 64 * 1024


@dataclass
class TaskLog:
    attempt: str
    backend: str
    source: str  # where it was read, in words
    link: str | None = None  # a page of the engine's own with the logs (YARN's container log link)
    files: dict[str, str] = field(default_factory=dict)  # name -> the tail, as text
    sizes: dict[str, int] = field(default_factory=dict)  # name -> the whole file's size, where known
    errors: dict[str, str] = field(default_factory=dict)  # name ("" for all) -> why it could not be read

    def as_json(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "backend": self.backend, "source": self.source, "link": self.link,
                "files": [{"name": name, "tail": text, "size": self.sizes.get(name)}
                          for name, text in self.files.items()],
                "errors": [{"name": name or None, "error": error} for name, error in self.errors.items()]}


def attempt_log(settings: Settings, store: Store, attempt: Any, size: int = DEFAULT_TAIL) -> TaskLog:
    """The tail of an attempt's logs (``attempt``: a TaskAttempt row), never raising for an engine's trouble."""
    readers = {"local": _sandbox, "slurm": _sandbox, "mesos": _mesos, "yarn": _yarn}
    reader = readers.get(attempt.backend)
    if reader is None:
        return TaskLog(attempt.backend_task_id, attempt.backend, "",
                       errors={"": f"the console cannot read logs of the {attempt.backend} backend"})
    log = reader(settings, store, attempt, size)
    log.files = {name: redact(text) for name, text in log.files.items()}
    return log


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _sandbox(settings: Settings, _store: Store, attempt: Any, size: int) -> TaskLog:
    """The local backend's and the Slurm backend's: both keep an attempt's stdout and stderr in its sandbox
    under ``sandbox_dir`` (for Slurm a shared file system the nodes write to)."""
    root = settings.sandbox_dir.resolve()
    sandbox = root / attempt.backend_task_id
    log = TaskLog(attempt.backend_task_id, attempt.backend, f"sandbox {sandbox}")
    if sandbox.resolve().parent != root:  # an attempt id is never a path, but a row could be odd
        log.errors[""] = "the attempt's sandbox is outside the sandbox folder"
        return log
    if not sandbox.is_dir():
        log.errors[""] = "the sandbox is gone (retention), or the attempt never started"
        return log
    for name in STREAMS:
        try:
            log.files[name], log.sizes[name] = _tail_file(sandbox / name, size)
        except FileNotFoundError:
            log.errors[name] = f"no {name} in the sandbox"
        except OSError as exc:
            log.errors[name] = f"{name} cannot be read: {exc.strerror}"
    return log


def _tail_file(path: Path, size: int) -> tuple[str, int]:
    """The last ``size`` bytes of a regular file (a link is not followed), and its size."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        total = os.fstat(handle.fileno()).st_size
        handle.seek(max(0, total - size))
        return _text(handle.read(size)), total


def _mesos(settings: Settings, store: Store, attempt: Any, size: int) -> TaskLog:
    from mesos_backend.mesos.files import FilesUnavailable, read_tail, sandbox_path

    log = TaskLog(attempt.backend_task_id, "mesos", f"agent {attempt.agent or '(none yet)'}")
    status = read_status(store) or {}
    agents = {a.get("id"): a for a in (status.get("engine") or {}).get("agents") or []}
    agent = agents.get(attempt.agent)
    if not attempt.agent:
        log.errors[""] = "the attempt has not reached an agent yet"
        return log
    if agent is None or not agent.get("url"):
        log.errors[""] = f"the framework does not know where agent {attempt.agent} is (no offer from it lately)"
        return log
    path = attempt.sandbox
    if not path or not path.startswith("/frameworks/"):
        framework_id = StoreBackendState(store, "mesos").get("framework_id")
        path = sandbox_path(framework_id, attempt.backend_task_id) if framework_id else None
    if not path:
        log.errors[""] = "the attempt's sandbox is not known"
        return log
    log.source = f"agent {agent.get('hostname') or attempt.agent} ({agent['url']}), {path}"
    log.link = f"{agent['url']}/files/browse?path={path}"
    verify = _mesos_verify(settings)
    for name in STREAMS:
        try:
            data, log.sizes[name] = read_tail(agent["url"], f"{path}/{name}", size, verify=verify)
            log.files[name] = _text(data)
        except FilesUnavailable as exc:
            log.errors[name] = str(exc)
    return log


def _mesos_verify(settings: Settings) -> bool | str:
    ca_file = (settings.mesos.get("ca_file") or "").strip()
    return ca_file or (settings.mesos.get("tls_verify") or "true").strip().lower() not in ("0", "false", "no", "off")


def _yarn(settings: Settings, _store: Store, attempt: Any, size: int) -> TaskLog:
    from mesos_backend.yarn.backend import backend_options
    from mesos_backend.yarn.http import HadoopHttp, Unavailable
    from mesos_backend.yarn.logs import container_logs
    from mesos_backend.yarn.rest import ResourceManagerClient

    app_id = attempt.sandbox or ""
    log = TaskLog(attempt.backend_task_id, "yarn", f"application {app_id or '(not submitted yet)'}")
    if not app_id.startswith("application_"):
        log.errors[""] = "the attempt has no YARN application yet"
        return log
    try:
        options = backend_options(settings.yarn, staging_default=(settings.data_dir / "yarn").as_uri())
    except ValueError as exc:
        log.errors[""] = f"the [yarn] settings cannot be used here: {exc}"
        return log
    http = HadoopHttp(options["resource_managers"], user=options["user"], auth=options["auth"],
                      verify=options["verify"], timeout=5.0, name="ResourceManager")
    try:
        logs = container_logs(ResourceManagerClient(http), app_id, size, user=options["user"],
                              verify=options["verify"])
    except Unavailable as exc:
        log.errors[""] = str(exc)
        return log
    finally:
        http.close()
    what = "container" if logs.task_container else "ApplicationMaster container"
    log.source = f"application {app_id}, {what} {logs.container or '?'} on {logs.node or '?'}"
    log.link = logs.link
    log.files = {name: _text(data) for name, data in logs.files.items()}
    log.errors.update(logs.errors)
    return log
