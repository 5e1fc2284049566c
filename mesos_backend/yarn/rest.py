"""The ResourceManager REST API (``/ws/v1/cluster``) as the YARN backend uses it.

RM HA: ``active()`` asks each address's ``/ws/v1/cluster/info`` and keeps
the one whose ``haState`` is ACTIVE; later a standby's 307 is followed and a
dead RM is skipped (``HadoopHttp``). Every call carries ``user.name`` on
clusters with simple auth; Kerberos clusters use SPNEGO instead.
"""

from __future__ import annotations

from typing import Any

from .http import HadoopError, HadoopHttp, Unavailable

ACTIVE_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING")
FINAL_STATES = ("FINISHED", "FAILED", "KILLED")
API = "/ws/v1/cluster"


class ResourceManagerClient:
    """Typed calls to the active ResourceManager."""

    def __init__(self, http: HadoopHttp) -> None:
        self.http = http

    def active(self) -> str:
        """The address of the active RM (Unavailable if none says ACTIVE)."""
        for url in list(self.http.urls):
            self.http.use(url)
            try:
                info = self.http.call("GET", f"{API}/info", kind="GET info").json()["clusterInfo"]
            except (Unavailable, HadoopError, KeyError, ValueError):
                continue
            if info.get("haState", "ACTIVE") == "ACTIVE":
                return url
        raise Unavailable(f"no active ResourceManager at {', '.join(self.http.urls)}")

    def new_application(self) -> tuple[str, dict[str, int]]:
        """A fresh application id and the scheduler's maximum container (memory MB, vCores)."""
        body = self.http.call("POST", f"{API}/apps/new-application", kind="POST new-application").json()
        return body["application-id"], body.get("maximum-resource-capability", {})

    def submit(self, context: dict[str, Any]) -> None:
        self.http.call("POST", f"{API}/apps", json=context, kind="POST apps")

    def app(self, app_id: str) -> dict[str, Any] | None:
        """The application's report, or None when the RM does not know it (any more)."""
        try:
            return self.http.call("GET", f"{API}/apps/{app_id}", kind="GET app").json()["app"]
        except HadoopError as exc:
            if exc.status == 404:
                return None
            raise

    def apps(self, *, states: tuple[str, ...] = (), tags: tuple[str, ...] = (), types: tuple[str, ...] = (),
             finished_since: int | None = None, kind: str = "GET apps") -> list[dict[str, Any]]:
        params: dict[str, Any] = {"deSelects": "resourceRequests"}
        if states:
            params["states"] = ",".join(states)
        if tags:
            params["applicationTags"] = ",".join(tags)
        if types:
            params["applicationTypes"] = ",".join(types)
        if finished_since is not None:
            params["finishedTimeBegin"] = finished_since
        body = self.http.call("GET", f"{API}/apps", params=params, kind=kind).json()
        return list((body.get("apps") or {}).get("app") or [])

    def metrics(self) -> dict[str, Any]:
        """The cluster's figures (``clusterMetrics``: nodes, applications, memory and vcores)."""
        return self.http.call("GET", f"{API}/metrics", kind="GET metrics").json().get("clusterMetrics") or {}

    def nodes(self) -> list[dict[str, Any]]:
        """Every NodeManager's report (``{"nodes": null}`` when there are none)."""
        body = self.http.call("GET", f"{API}/nodes", kind="GET nodes").json()
        return list((body.get("nodes") or {}).get("node") or [])

    def app_attempts(self, app_id: str) -> list[dict[str, Any]]:
        """The application's attempts: each with its AM container, its node's HTTP address and ``logsLink``."""
        body = self.http.call("GET", f"{API}/apps/{app_id}/appattempts", kind="GET appattempts").json()
        return list((body.get("appAttempts") or {}).get("appAttempt") or [])

    def attempt_containers(self, app_id: str, attempt_id: str) -> list[dict[str, Any]]:
        """The live containers of an attempt (the RM lists none once they ended)."""
        body = self.http.call("GET", f"{API}/apps/{app_id}/appattempts/{attempt_id}/containers",
                              kind="GET containers").json()
        containers = body.get("container") if isinstance(body, dict) else None
        return list(containers or [])

    def kill(self, app_id: str) -> str:
        """Ask for KILLED; returns the state the RM answers with (the current one while the kill is under way)."""
        try:
            response = self.http.call("PUT", f"{API}/apps/{app_id}/state", json={"state": "KILLED"}, kind="PUT state")
        except HadoopError as exc:
            if exc.status == 404:
                return "UNKNOWN"
            raise
        return response.json().get("state", "")
