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

    def kill(self, app_id: str) -> str:
        """Ask for KILLED; returns the state the RM answers with (the current one while the kill is under way)."""
        try:
            response = self.http.call("PUT", f"{API}/apps/{app_id}/state", json={"state": "KILLED"}, kind="PUT state")
        except HadoopError as exc:
            if exc.status == 404:
                return "UNKNOWN"
            raise
        return response.json().get("state", "")
