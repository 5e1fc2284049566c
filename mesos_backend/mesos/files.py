"""The tail of a file in a task's sandbox, read through the agent's files API (``/files/read``).

The agent serves its executors' sandboxes under virtual paths
(``/frameworks/<framework>/executors/<executor>/runs/latest``; a command
task's executor id is its task id). ``offset=-1`` answers the file's size;
then at most 16 pages come back per read, so a tail takes a request more
than it has pages. No credentials are sent: the framework's secret is for
its masters only (agents started with ``--authenticate_http_readonly`` answer
401, which is reported as such).
"""

from __future__ import annotations

import httpx

READ_PAGE = 16 * 4096  # what an agent returns at most per read


class FilesUnavailable(Exception):
    """The agent could not be asked, or does not have the file (any more)."""


def sandbox_path(framework_id: str, task_id: str) -> str:
    """The virtual path of a command task's sandbox on its agent."""
    return f"/frameworks/{framework_id}/executors/{task_id}/runs/latest"


def read_tail(agent_url: str, path: str, size: int, *, timeout: float = 5.0,
              verify: bool | str = True) -> tuple[bytes, int]:
    """The last ``size`` bytes of the file at ``path`` on the agent at ``agent_url``, and the file's size."""
    try:
        with httpx.Client(base_url=agent_url, timeout=timeout, verify=verify, trust_env=False) as client:
            total = int(_read(client, path, -1)["offset"])
            offset = max(0, total - size)
            data = b""
            while offset < total:
                chunk = str(_read(client, path, offset, min(READ_PAGE, total - offset))["data"]).encode()
                if not chunk:
                    break
                data += chunk
                offset += len(chunk)
    except httpx.HTTPError as exc:
        raise FilesUnavailable(f"the agent at {agent_url} did not answer: {type(exc).__name__}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise FilesUnavailable(f"the agent at {agent_url} answered something else than a file: {exc}") from None
    return data[-size:] if size else b"", total


def _read(client: httpx.Client, path: str, offset: int, length: int | None = None) -> dict:
    params: dict[str, object] = {"path": path, "offset": offset}
    if length is not None:
        params["length"] = length
    response = client.get("/files/read", params=params)
    if response.status_code == 404:
        raise FilesUnavailable(f"the agent has no {path} (the sandbox was removed, or the task never started)")
    if response.status_code in (401, 403):
        raise FilesUnavailable(f"the agent refuses to show {path} without credentials ({response.status_code})")
    if response.status_code != 200:
        raise FilesUnavailable(f"the agent answered {response.status_code}: {response.text.strip()[:200]}")
    return response.json()
