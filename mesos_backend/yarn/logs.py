"""A task's container logs on YARN: the container log link, and the tail of its files from the NodeManager.

The ResourceManager names the application's latest attempt (its AM
container, the node and the container log link, ``logsLink``) and, while the
attempt runs, its live containers: the task's own container is the one that
is not the AM's. The NodeManager that ran a container serves its log files
(``/ws/v1/node/containerlogs/{container}/{file}?size=-N``) as long as they
are on its disk (until log aggregation or ``yarn.nodemanager.log.retain-seconds``
removes them). Once the application ended the RM lists no container but the
AM's, so the AM's logs are shown (DistributedShell's ``AppMaster.stderr``
names the task container's exit), with the link.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from .http import HadoopError, Unavailable
from .rest import ResourceManagerClient


@dataclass
class ContainerLogs:
    link: str | None  # the container log page (the NodeManager's web UI)
    container: str | None
    node: str | None
    task_container: bool  # False: the AM's container (the task's is no longer listed)
    files: dict[str, bytes] = field(default_factory=dict)  # name -> its tail
    errors: dict[str, str] = field(default_factory=dict)  # name -> why it could not be read


def container_logs(rm: ResourceManagerClient, app_id: str, size: int, *, user: str | None = None,
                   verify: bool | str = True, timeout: float = 5.0) -> ContainerLogs:
    """The logs of the application's task container, else of its AM container; Unavailable if the RM is."""
    try:
        attempts = rm.app_attempts(app_id)
    except HadoopError as exc:
        raise Unavailable(f"the ResourceManager does not know {app_id}: {exc}") from None
    if not attempts:
        return ContainerLogs(None, None, None, False, errors={"": f"{app_id} has no attempt yet"})
    latest = attempts[-1]
    am, am_node = latest.get("containerId"), latest.get("nodeHttpAddress")
    try:
        live = rm.attempt_containers(app_id, str(latest.get("appAttemptId") or latest.get("id")))
    except HadoopError:
        live = []
    task = next((c for c in live if c.get("containerId") and c.get("containerId") != am), None)
    if task is not None:
        logs = ContainerLogs(task.get("logUrl") or latest.get("logsLink"), task["containerId"],
                             _address(task.get("nodeHttpAddress")), True)
        names = ["stdout", "stderr"]
    else:
        logs = ContainerLogs(latest.get("logsLink"), am, _address(am_node), False)
        names = []
    if not logs.container or not logs.node:
        logs.errors[""] = f"{app_id} has no container with logs yet"
        return logs
    scheme = "https" if rm.http.current.startswith("https") else "http"
    params = {"user.name": user} if user else {}
    with httpx.Client(base_url=f"{scheme}://{logs.node}", timeout=timeout, verify=verify, trust_env=False,
                      params=params) as nm:
        if not names:
            names = _log_files(nm, logs.container) or ["stdout", "stderr"]
        for name in names:
            try:
                response = nm.get(f"/ws/v1/node/containerlogs/{logs.container}/{name}", params={"size": -size})
            except httpx.HTTPError as exc:
                logs.errors[name] = f"the NodeManager at {logs.node} did not answer: {type(exc).__name__}"
                continue
            if response.status_code == 200:
                logs.files[name] = response.content[-size:] if size else b""
            else:
                logs.errors[name] = f"the NodeManager answered {response.status_code}: {response.text.strip()[:200]}"
    return logs


def _log_files(nm: httpx.Client, container: str) -> list[str]:
    """The container's log files, as the NodeManager lists them (empty if it does not know the container)."""
    try:
        response = nm.get(f"/ws/v1/node/containers/{container}", headers={"Accept": "application/json"})
        files = response.json().get("container", {}).get("containerLogFiles") if response.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError):
        return []
    return [str(name) for name in files or [] if name]


def _address(value: str | None) -> str | None:
    """``host:port`` of a node's web server (attempts give it bare, container reports with a scheme)."""
    if not value:
        return None
    return value.split("://", 1)[-1].rstrip("/")
