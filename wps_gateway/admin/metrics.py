"""``GET /metrics`` for Prometheus: operators only, unless ``[console] public_metrics`` opens it (a scraper on
a private network, say); see ``wps_gateway.metrics.exposition``."""

from __future__ import annotations

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..metrics.exposition import metrics_text
from .http import Endpoints, operator


class MetricsEndpoint(Endpoints):
    def rules(self) -> list[Rule]:
        return [Rule("/metrics", endpoint=self.on_metrics, methods=["GET"])]

    def on_metrics(self, request: Request) -> Response:
        if not self.context.settings.console.public_metrics:
            operator(request)
        body, media_type = metrics_text(self.context.store, request.headers.get("Accept"))
        response = Response(body, content_type=media_type)
        response.headers["Cache-Control"] = "no-store"
        return response
