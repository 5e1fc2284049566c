"""The cluster for operators: ``/admin/api/cluster`` (the backend, the queue, caps and switches), the live
caps and weights (``/admin/api/limits``), and the pause switch (``/admin/api/dispatching``)."""

from __future__ import annotations

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from .. import scheduling
from ..ogcapi.problems import invalid_parameter
from ..switches import DispatchSwitch
from .http import Endpoints, json_body, json_response, no_content, not_found, operator
from .views import cluster_view


class ClusterApi(Endpoints):
    def rules(self) -> list[Rule]:
        return [
            Rule("/admin/api/cluster", endpoint=self.on_cluster, methods=["GET"]),
            Rule("/admin/api/limits", endpoint=self.on_limits, methods=["GET"]),
            Rule("/admin/api/limits/<kind>", endpoint=self.on_limit, methods=["PUT", "DELETE"]),
            Rule("/admin/api/limits/<kind>/<name>", endpoint=self.on_limit, methods=["PUT", "DELETE"]),
            Rule("/admin/api/dispatching", endpoint=self.on_dispatching, methods=["GET", "PUT"]),
        ]

    def on_cluster(self, request: Request) -> Response:
        operator(request)
        return json_response(cluster_view(self.context.store))

    def on_limits(self, request: Request) -> Response:
        operator(request)
        return json_response(cluster_view(self.context.store)["limits"])

    def on_limit(self, request: Request, kind: str, name: str | None = None) -> Response:
        identity = operator(request)
        if kind not in scheduling.KINDS:
            raise not_found(f"no limit {kind!r}; known: {', '.join(scheduling.KINDS)}")
        store = self.context.store
        if request.method == "DELETE":
            try:
                scheduling.remove_limit(store, kind, name)
            except LookupError as exc:
                raise not_found(str(exc)) from None
            return no_content()
        body = json_body(request, self.context.settings.max_request_bytes)
        if not isinstance(body, dict) or set(body) != {"value"}:
            raise invalid_parameter('a limit is {"value": <number>} (a cap in cpus, 0 for none; or a weight)',
                                    "value")
        try:
            limit = scheduling.set_limit(store, kind, name, body["value"], by=identity.user)
        except scheduling.LimitError as exc:
            raise invalid_parameter(str(exc), "value") from None
        self.context.notify_dispatcher()
        return json_response(limit.as_json())

    def on_dispatching(self, request: Request) -> Response:
        operator(request)
        switch = DispatchSwitch(self.context.store)
        if request.method == "PUT":
            body = json_body(request, self.context.settings.max_request_bytes)
            paused, reason = (body.get("paused"), body.get("reason", "")) if isinstance(body, dict) else (None, None)
            if not isinstance(paused, bool) or not isinstance(reason, str | None) or len(reason or "") > 500 \
                    or set(body) - {"paused", "reason"}:
                raise invalid_parameter('the switch is {"paused": true|false, "reason": "at most 500 characters"}',
                                        "paused")
            if paused:
                switch.pause(reason or "")
            else:
                switch.resume()
            self.context.notify_dispatcher()
        reason = switch.paused_reason()
        return json_response({"paused": reason is not None, "reason": reason})
