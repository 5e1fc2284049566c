"""``GET /accounting``: the report as JSON, CSV or an HTML page with charts, over what the caller may see.

Who sees what is the tenancy rule of the job listings
(``auth.visibility.visible_clause``: operators everything, a user their own
jobs, and with ``[auth] group_visibility`` their groups'); the rest of the
request only narrows it down.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from ..auth.identity import identity_of, require
from ..ogcapi.encode import HTML, JSON, link
from ..ogcapi.problems import invalid_parameter
from ..store.db import Store
from .formats import job_usage_document, report_csv, report_document
from .page import accounting_page, period_for
from .query import ReportError, VisibleJobs, job_report, parse_query, run_report

CSV = "text/csv"
FORMATS = {"json": JSON, "csv": CSV, "html": HTML}
PARAMETERS = ("from", "to", "user", "group", "process", "backend", "status", "job", "group_by")


class AccountingApi:
    """The ``/accounting`` resource; ``visible_jobs`` gives the condition on the jobs a request may see."""

    def __init__(self, store: Store, base_url: str, weights: dict[str, float], visible_jobs: VisibleJobs) -> None:
        self.store = store
        self.base = base_url
        self.weights = weights
        self.visible_jobs = visible_jobs

    def on_accounting(self, request: Request) -> Response:
        require(request)  # never the public catalogue: usage says who ran what
        media_type = negotiate(request)
        try:
            query = parse_query(request.args.getlist)
        except ReportError as exc:
            raise invalid_parameter(str(exc), exc.parameter) from None
        visible = self.visible_jobs(identity_of(request))
        report = run_report(self.store, query, self.weights, visible)
        if media_type == CSV:
            response = Response(report_csv(report), content_type="text/csv; charset=utf-8; header=present")
            response.headers["Content-Disposition"] = 'inline; filename="accounting.csv"'
            return response
        links = self._links(request)
        if media_type == HTML:
            period = period_for(query)
            charts = [run_report(self.store, query.grouped(*group), self.weights, visible)
                      for group in ((period,), ("user",), ("process",))]
            given = {name: request.args.get(name, "") for name in PARAMETERS if name != "group_by"}
            text = accounting_page(report, *charts, links=links, scoped=visible is not None, given=given)
            return Response(text, content_type="text/html; charset=utf-8")
        # Compact: a report may have tens of thousands of rows, and indenting takes json's slow path.
        return Response(json.dumps(report_document(report, links), separators=(",", ":")), content_type=JSON)

    def _links(self, request: Request) -> list[dict[str, str]]:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "f"]

        def href(fmt: str) -> str:
            return f"{self.base}/accounting?" + urlencode([*args, ("f", fmt)])

        return [link(href("json"), "self", JSON, "accounting report"),
                link(href("csv"), "alternate", CSV, "accounting report as CSV"),
                link(href("html"), "alternate", HTML, "accounting report with charts")]


def negotiate(request: Request) -> str:
    """``f=json|csv|html`` first, then the Accept header; JSON when nothing says otherwise."""
    fmt = request.args.get("f")
    if fmt is not None:
        if fmt not in FORMATS:
            raise invalid_parameter(f"f must be one of {', '.join(FORMATS)}, not {fmt!r}", "f")
        return FORMATS[fmt]
    return request.accept_mimetypes.best_match([JSON, CSV, HTML], default=JSON)


def job_usage(store: Store, job_id: str, weights: dict[str, float]) -> dict[str, Any]:
    """What one job used and cost so far (its attempts that ended): the ``usage`` member of its status."""
    return job_usage_document(job_report(store, job_id, weights))
