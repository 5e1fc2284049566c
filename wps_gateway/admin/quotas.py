"""Quotas: ``GET /admin/api/quotas``, ``PUT`` and ``DELETE /admin/api/quotas/{user|group}/{name}``
(JSON ``{"cpuHours", "period", "maxRunning"}``), the same as ``wps-gateway quota``."""

from __future__ import annotations

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from .. import quotas
from ..ogcapi.problems import Problem, invalid_parameter
from .http import Endpoints, json_body, json_response, no_content, operator


class QuotasApi(Endpoints):
    def rules(self) -> list[Rule]:
        return [
            Rule("/admin/api/quotas", endpoint=self.on_quotas, methods=["GET"]),
            Rule("/admin/api/quotas/<scope>/<name>", endpoint=self.on_quota, methods=["PUT", "DELETE"]),
        ]

    def on_quotas(self, request: Request) -> Response:
        operator(request)
        return json_response({"quotas": [quotas.as_json(q) for q in quotas.list_quotas(self.context.store)]})

    def on_quota(self, request: Request, scope: str, name: str) -> Response:
        operator(request)
        if scope not in quotas.SCOPES:
            raise Problem(404, "Not found", f"quotas are for a user or a group, not a {scope!r}")
        if request.method == "DELETE":
            try:
                quotas.remove_quota(self.context.store, scope, name)
            except LookupError as exc:
                raise Problem(404, "Not found", str(exc)) from None
            return no_content()
        body = json_body(request, self.context.settings.max_request_bytes)
        if not isinstance(body, dict) or set(body) - {"cpuHours", "period", "maxRunning"}:
            raise invalid_parameter("a quota is an object with cpuHours, period and maxRunning")
        cpu, running = body.get("cpuHours"), body.get("maxRunning")
        if (cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int | float))) or \
                (running is not None and (isinstance(running, bool) or not isinstance(running, int))):
            raise invalid_parameter("cpuHours must be a number and maxRunning an integer (or null)")
        try:
            quotas.set_quota(self.context.store, scope, name, cpu, str(body.get("period", "month")), running)
        except ValueError as exc:
            raise invalid_parameter(str(exc)) from None
        state = next(q for q in quotas.list_quotas(self.context.store) if (q.scope, q.name) == (scope, name.strip()))
        return json_response(quotas.as_json(state))
