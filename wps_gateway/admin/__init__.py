"""Operators' REST control under ``/admin/api`` (operator role; with ``[auth] mode = none``, loopback only),
and ``/metrics``.

One module per resource: jobs (and their attempts' logs, and the requests
that retry them or change their priority), the cluster (with the live caps
and weights and the pause switch), quotas. The HTML console
(``wps_gateway.console``) shows and does the same through these modules.
"""

from __future__ import annotations

from werkzeug.routing import Rule

from ..context import GatewayContext
from .cluster import ClusterApi
from .jobs import JobsApi
from .metrics import MetricsEndpoint
from .quotas import QuotasApi


class AdminApi:
    def __init__(self, context: GatewayContext) -> None:
        self.parts = (JobsApi(context), ClusterApi(context), QuotasApi(context), MetricsEndpoint(context))

    def rules(self) -> list[Rule]:
        return [rule for part in self.parts for rule in part.rules()]
