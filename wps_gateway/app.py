"""The WSGI application: routes onto the WPS service, status documents and outputs.

Stateless: every answer is computed from the request and the job store, so
any number of replicas can serve one store.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from urllib.parse import urlsplit

from lxml import etree
from pywps.exceptions import NoApplicableCode
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.wrappers import Request, Response

from mesos_backend.yarn.http import HadoopError
from mesos_backend.yarn.results import ResultsUnavailable

from .admin import AdminApi
from .auth.authenticate import AuthenticationFailed, AuthorizationFailed, KeysUnavailable
from .auth.identity import ENVIRON_KEY, IdentityRequired, require
from .conditional import conditional, state_etag
from .console.pages import Console
from .context import GatewayContext
from .health import health_report
from .job_views import JobNotFound, JobView
from .logformat import ACCESS, REQUEST_ID, request_id
from .logformat import HEADER as REQUEST_HEADER
from .ogcapi import OgcApi
from .ogcapi.problems import Problem
from .outages import RETRY_AFTER_SECONDS, UNAVAILABLE_TEXT, store_unavailable
from .planner import job_paths
from .redaction import redact
from .results import open_output, results_store
from .schedules.api import ScheduleApi
from .stac.api import StacApi
from .stac.links import output_item_urls
from .store.models import JobStatus
from .wps1.render import execute_response
from .wps1.service import XML_MIMETYPE, GatewayService, server_busy
from .wps2.errors import Wps2Error
from .wps2.requests import is_wps2_kvp
from .xml_body import body_root
from .xml_guard import BodyRefused, guard_xml_body

LOG = logging.getLogger(__name__)
SERVICE_UNAVAILABLE = "urn:wps-gateway:problem:service-unavailable"
UNAUTHORIZED = "urn:wps-gateway:problem:unauthorized"
CATALOGUE_OPERATIONS = ("getcapabilities", "describeprocess")
INTERNAL_ERROR = "urn:wps-gateway:problem:internal-error"
BAD_REQUEST = "urn:wps-gateway:problem:bad-request"


class GatewayApp:
    """WSGI callable; ``context`` carries settings, store and processors."""

    def __init__(self, context: GatewayContext) -> None:
        self.context = context
        self.service = GatewayService(context)
        self.ogcapi = OgcApi(context)  # also the landing page at /
        self.console = Console(context)
        self.url_map = Map([
            *self.ogcapi.rules(),
            *AdminApi(context).rules(),
            *ScheduleApi(context).rules(),
            *self.console.rules(),
            *StacApi(context).rules(),
            Rule("/health", endpoint="health"),
            Rule("/wps", endpoint="wps", methods=["GET", "POST"]),
            Rule("/wps/status/<job_id>.xml", endpoint="wps_status"),
            Rule("/outputs/<job_id>/<filename>", endpoint="output"),
        ])
        # One adapter for every request (binding one to each request's environ cost about a tenth of a status
        # read), bound to the public URL: a redirect (a doubled slash) points where every other link does.
        public = urlsplit(context.settings.base_url)
        self.routes = self.url_map.bind(public.netloc, script_name=public.path or "/", url_scheme=public.scheme)

    def __call__(self, environ, start_response):
        """Answer with the request's id in ``X-Request-Id`` and in every line logged meanwhile (logformat.py)."""
        began = time.monotonic()
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = REQUEST_ID.set(rid)
        answered: list[int] = []

        def start(status: str, headers: list, exc_info=None):
            answered.append(int(status.split(" ", 1)[0]))
            return start_response(status, [*headers, (REQUEST_HEADER, rid)], exc_info)

        try:
            body = self._respond(environ)(environ, start)  # a Response, or a PyWPS response: both WSGI
            if self.context.settings.log_format == "json":
                method, path = environ.get("REQUEST_METHOD"), redact(environ.get("PATH_INFO", ""))
                ACCESS.info("%s %s %s", method, path, answered[-1] if answered else "-", extra={
                    "method": method, "path": path, "status": answered[-1] if answered else None,
                    "duration_ms": round((time.monotonic() - began) * 1000, 1)})
            return body
        finally:
            REQUEST_ID.reset(token)

    def _respond(self, environ):
        request = Request(environ)
        unreadable = unreadable_url(request)
        if unreadable:
            return self._error(request, 400, "Bad request", unreadable, BAD_REQUEST)
        try:
            environ[ENVIRON_KEY] = self.context.authenticator.identify(request)
            endpoint, args = self.routes.match(request.path, request.method,
                                               query_args=request.environ.get("QUERY_STRING", ""))
            handler = endpoint if callable(endpoint) else getattr(self, f"on_{endpoint}")
            response = handler(request, **args)
        except RequestRedirect as exc:  # not an error: its Location is the answer
            response = exc
        except HTTPException as exc:
            response = self.ogcapi.error(exc, request) if self.ogcapi.owns(request.path) else exc
        except AuthenticationFailed as exc:
            response = self._error(request, 401, "Unauthorized", str(exc), UNAUTHORIZED,
                                   {"WWW-Authenticate": exc.challenge})
        except IdentityRequired as exc:
            headers = {"WWW-Authenticate": self.context.authenticator.challenge} if exc.status == 401 else {}
            title = "Unauthorized" if exc.status == 401 else "Forbidden"
            response = self._error(request, exc.status, title, str(exc), UNAUTHORIZED, headers)
        except AuthorizationFailed as exc:
            response = self._error(request, 403, "Forbidden", str(exc), UNAUTHORIZED)
        except KeysUnavailable as exc:
            response = self._error(request, 503, "Service unavailable", str(exc), SERVICE_UNAVAILABLE)
        except Exception as exc:
            response = self._unexpected(request, exc)
        if isinstance(response, HTTPException):
            response = response.get_response(environ)
        if isinstance(response, Response) and response.status_code == 503 and "Retry-After" not in response.headers:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    def _unexpected(self, request: Request, exc: Exception) -> Response | HTTPException:
        """An error no handler answered: 503 while the store is unreachable, else 500; in the path's protocol."""
        if isinstance(exc, ResultsUnavailable):
            return self._results_unavailable(request, exc)
        unavailable = store_unavailable(exc)
        if unavailable:
            LOG.warning("%s %s answered 503: the job store is unreachable (%s: %s)", request.method, request.path,
                        type(exc).__name__, exc)
            text = UNAVAILABLE_TEXT
        else:
            LOG.exception("%s %s failed", request.method, request.path)
            text = "Internal server error; the server log has the details"
        if unavailable:
            return self._error(request, 503, "Service unavailable", text, SERVICE_UNAVAILABLE)
        return self._error(request, 500, "Internal server error", text, INTERNAL_ERROR)

    def _error(self, request: Request, status: int, title: str, text: str, type_: str,
               headers: dict[str, str] | None = None) -> Response | HTTPException:
        """An error in the protocol of the path asked: a problem document, an OWS exception report, or JSON."""
        headers = headers or {}
        if self.console.owns(request.path):  # before the OGC API, which answers the rest of /admin
            return self.console.error(status, title, text, headers)
        if self.ogcapi.owns(request.path):
            return Problem(status, title, text, type_, headers=headers)
        if request.path.startswith("/wps"):
            readable = query_decodes(request)
            if request.method == "GET" and readable and is_wps2_kvp(request.args):
                response = Wps2Error("NoApplicableCode", text, status=status).response()
            else:
                exception = server_busy() if status == 503 else NoApplicableCode(text, code=status)
                environ = request.environ if readable else {  # PyWPS would parse the query of the request
                    key: value for key, value in request.environ.items() if key != "werkzeug.request"}
                response = exception.get_response(environ)
            response.headers.update(headers)
            return response
        response = Response(json.dumps({"status": status, "detail": text}), status, mimetype="application/json")
        response.headers.update(headers)
        return response

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
            try:
                guard_xml_body(request, self.context.settings.max_request_bytes)
            except BodyRefused as exc:
                return exc.response(request.environ)
        if wps_operation(request) not in CATALOGUE_OPERATIONS or self.context.settings.auth.protect_catalogue:
            require(request)  # Execute, GetStatus, GetResult, Dismiss: who asks is who runs and sees
        return self.service.call(request)

    def on_wps_status(self, request: Request, job_id: str) -> Response:
        """The job's ExecuteResponse as it stands; a poller that has it already (If-None-Match) gets 304."""
        job = self._job(request, job_id)
        settings = self.context.settings
        items = job.derived("wps1-items", lambda: output_item_urls(self.context.store, settings.base_url, job))
        etag = job.derived("wps1-etag", lambda: state_etag("wps1-status", job.state(), items))
        # Final jobs change little (a dismissal, STAC Items appearing); active ones are revalidated every time.
        headers = {"Cache-Control": "max-age=60" if job.status in JobStatus.FINAL else "no-cache"}

        def render() -> bytes:
            return execute_response(job, settings.base_url, settings.url, settings.jobs_dir, items)

        # Rendered once per view, but for a successful job (its outputs may be shown by value: files, any size).
        return conditional(request, etag, lambda: Response(
            render() if job.status == JobStatus.SUCCESSFUL else job.derived("wps1-document", render),
            mimetype=XML_MIMETYPE), headers)

    def on_output(self, request: Request, job_id: str, filename: str) -> Response:
        job = self._job(request, job_id)
        entries = {entry.get("file"): entry for entry in job.outputs.values()}
        if filename not in entries:
            raise NotFound(f"job {job_id} has no output file {filename}")
        media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if entries[filename].get("location"):
            return self._stored_output(request, job_id, filename, entries[filename]["location"], media_type)
        path = job_paths(self.context.settings.jobs_dir, job_id)["outputs"] / filename
        if not path.is_file():
            raise NotFound(f"output file {filename} of job {job_id} is gone")
        response = Response(open(path, "rb"), mimetype=media_type, direct_passthrough=True)
        response.content_length = path.stat().st_size
        return response

    def _stored_output(self, request: Request, job_id: str, filename: str, location: str,
                       media_type: str) -> Response | HTTPException:
        """An output file on HDFS, streamed from its DataNode; 503 while HDFS cannot be reached."""
        results_store(self.context.settings)  # made (and known to ``open_output``) on first need
        try:
            chunks, length = open_output(location)
        except ResultsUnavailable as exc:
            return self._results_unavailable(request, exc)
        except HadoopError as exc:
            if exc.status == 404 or exc.exception == "FileNotFoundException":
                raise NotFound(f"output file {filename} of job {job_id} is gone") from None
            LOG.warning("output %s of job %s: HDFS refused: %s", filename, job_id, redact(str(exc)))
            return self._error(request, 502, "Bad gateway", f"The results store (HDFS) refused: {exc.exception}",
                               SERVICE_UNAVAILABLE)
        response = Response(chunks, mimetype=media_type, direct_passthrough=True)
        if length is not None:
            response.content_length = length
        return response

    def _results_unavailable(self, request: Request, exc: Exception) -> Response | HTTPException:
        LOG.warning("%s %s answered 503: HDFS is unreachable (%s)", request.method, request.path, redact(str(exc)))
        return self._error(request, 503, "Service unavailable",
                           "The results store (HDFS) cannot be reached; try again later", SERVICE_UNAVAILABLE)

    def _job(self, request: Request, job_id: str) -> JobView:
        """A job for its status document or outputs: by its unguessable URL, or, with ``[auth]
        protect_status``, only for an identity that may see it (another user's job is not found)."""
        try:
            if self.context.settings.auth.protect_status:
                require(request)
                return self.context.job_view_for(request, job_id)
            return self.context.status_views.read(job_id)
        except JobNotFound:
            raise NotFound(f"no job {job_id}") from None


def query_decodes(request: Request) -> bool:
    """Whether the query string is UTF-8, as Werkzeug needs to parse it (it raises otherwise)."""
    try:
        request.query_string.decode()
    except UnicodeDecodeError:
        return False
    return True


def unreadable_url(request: Request) -> str | None:
    """Why a request's URL cannot be read (a query string that is not UTF-8, a NUL character), or None.
    No store column nor XML document takes a NUL."""
    if not query_decodes(request):
        return "The query string is not UTF-8; percent-encode its characters"
    if "\0" in request.path or b"%00" in request.query_string or b"\0" in request.query_string:
        return "The URL holds a NUL character"
    return None


def wps_operation(request: Request) -> str:
    """The WPS operation a request asks for, lower case ("" when it names none)."""
    if request.method == "GET":
        return next((v for k, v in request.args.items() if k.lower() == "request"), "").strip().lower()
    try:
        return etree.QName(body_root(request)).localname.lower()
    except etree.XMLSyntaxError:
        return ""
