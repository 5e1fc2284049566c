"""The WSGI application: routes onto the WPS service, status documents and outputs.

Stateless: every answer is computed from the request and the job store, so
any number of replicas can serve one store.
"""

from __future__ import annotations

import json
import logging
import mimetypes

from pywps.exceptions import NoApplicableCode
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .context import GatewayContext
from .health import health_report
from .jobs import JobNotFound, get_job
from .ogcapi import OgcApi
from .ogcapi.problems import Problem
from .outages import RETRY_AFTER_SECONDS, UNAVAILABLE_TEXT, store_unavailable
from .planner import job_paths
from .store.models import JobStatus
from .wps1.render import execute_response
from .wps1.service import XML_MIMETYPE, GatewayService, server_busy
from .wps2.errors import Wps2Error
from .wps2.requests import is_wps2_kvp
from .xml_guard import guard_xml_body

LOG = logging.getLogger(__name__)
SERVICE_UNAVAILABLE = "urn:wps-gateway:problem:service-unavailable"
INTERNAL_ERROR = "urn:wps-gateway:problem:internal-error"


class GatewayApp:
    """WSGI callable; ``context`` carries settings, store and processors."""

    def __init__(self, context: GatewayContext) -> None:
        self.context = context
        self.service = GatewayService(context)
        self.ogcapi = OgcApi(context)  # also the landing page at /
        self.url_map = Map([
            *self.ogcapi.rules(),
            Rule("/health", endpoint="health"),
            Rule("/wps", endpoint="wps", methods=["GET", "POST"]),
            Rule("/wps/status/<job_id>.xml", endpoint="wps_status"),
            Rule("/outputs/<job_id>/<filename>", endpoint="output"),
        ])

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            endpoint, args = self.url_map.bind_to_environ(environ).match()
            handler = endpoint if callable(endpoint) else getattr(self, f"on_{endpoint}")
            response = handler(request, **args)
        except HTTPException as exc:
            response = self.ogcapi.error(exc) if self.ogcapi.owns(request.path) else exc
        except Exception as exc:
            response = self._unexpected(request, exc)
        if isinstance(response, HTTPException):
            response = response.get_response(environ)
        if isinstance(response, Response) and response.status_code == 503 and "Retry-After" not in response.headers:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response(environ, start_response)

    def _unexpected(self, request: Request, exc: Exception) -> Response | HTTPException:
        """An error no handler answered: 503 while the store is unreachable, else 500; in the path's protocol."""
        unavailable = store_unavailable(exc)
        if unavailable:
            LOG.warning("%s %s answered 503: the job store is unreachable (%s: %s)", request.method, request.path,
                        type(exc).__name__, exc)
            text = UNAVAILABLE_TEXT
        else:
            LOG.exception("%s %s failed", request.method, request.path)
            text = "Internal server error; the server log has the details"
        status = 503 if unavailable else 500
        if self.ogcapi.owns(request.path):
            title = "Service unavailable" if unavailable else "Internal server error"
            return Problem(status, title, text, SERVICE_UNAVAILABLE if unavailable else INTERNAL_ERROR)
        if request.path.startswith("/wps"):
            if request.method == "GET" and is_wps2_kvp(request.args):
                return Wps2Error("NoApplicableCode", text, status=status).response()
            return server_busy() if unavailable else NoApplicableCode(text, code=500)
        return Response(json.dumps({"status": status, "detail": text}), status, mimetype="application/json")

    # -- endpoints ----------------------------------------------------------

    def on_health(self, request: Request) -> Response:
        """What an operator's probe needs: can the store be reached, and is a dispatcher at work."""
        report = health_report(self.context.store)
        status = 503 if report["status"] == "unavailable" else 200
        response = Response(json.dumps(report, indent=2), status, mimetype="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response

    def on_wps(self, request: Request) -> Response:
        if request.method == "POST":
            guard_xml_body(request, self.context.settings.max_request_bytes)
        return self.service.call(request)

    def on_wps_status(self, request: Request, job_id: str) -> Response:
        job = self._job(job_id)
        settings = self.context.settings
        body = execute_response(job, settings.base_url, settings.url, settings.jobs_dir)
        response = Response(body, mimetype=XML_MIMETYPE)
        response.headers["Cache-Control"] = "no-store" if job.status not in JobStatus.FINAL else "max-age=60"
        return response

    def on_output(self, request: Request, job_id: str, filename: str) -> Response:
        job = self._job(job_id)
        files = {entry.get("file") for entry in job.outputs.values()}
        if filename not in files:
            raise NotFound(f"job {job_id} has no output file {filename}")
        path = job_paths(self.context.settings.jobs_dir, job_id)["outputs"] / filename
        if not path.is_file():
            raise NotFound(f"output file {filename} of job {job_id} is gone")
        media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        response = Response(open(path, "rb"), mimetype=media_type, direct_passthrough=True)
        response.content_length = path.stat().st_size
        return response

    def _job(self, job_id: str):
        try:
            return get_job(self.context.store, job_id)
        except JobNotFound:
            raise NotFound(f"no job {job_id}") from None
