"""OGC API - Processes - Part 1: Core 1.0 over the gateway's job store.

One method per resource, like pygeoapi's API class. Jobs go through
``wps_gateway.jobs`` exactly as WPS 1.0.0 Execute does, so a job submitted
here has a WPS status document, and a WPS job is listed under ``/jobs``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from processes.descriptor import Processor

from ..accounting.api import AccountingApi, job_usage
from ..auth.identity import require
from ..conditional import Document, DocumentCache, conditional, respond, state_etag
from ..context import GatewayContext
from ..inputs import InputError, check_inputs
from ..job_views import JobView
from ..jobs import JobFilter, JobNotFound, PageKey, ResponseForm, list_jobs, processor_of
from ..limits import LimitExceeded
from ..notify import SubscriberRefused, callback_policy, check_subscriber
from ..outputs import multipart_outputs, raw_output
from ..stac.links import item_links
from ..store.models import Job, JobStatus
from ..wps1.render import output_url
from . import deploy, encode, html, paging
from .encode import HTML, JSON, link, self_links
from .execute import parse_execute, prefers_async, read_json_body
from .openapi import OPENAPI_MEDIA_TYPE, STATUS_CODES, openapi_document
from .problems import (
    JOB_DISMISSED,
    JOB_FAILED,
    QUOTA_EXHAUSTED,
    TOO_MANY_REQUESTS,
    Problem,
    from_http_error,
    invalid_parameter,
    no_such_job,
    no_such_process,
    result_not_ready,
)

CONFORMANCE = [f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{name}"
               for name in ("core", "ogc-process-description", "json", "html", "oas30", "job-list", "dismiss",
                            "callback")] + [
    "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/deploy-replace-undeploy",
    "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/ogcapppkg",
    "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/docker"]  # not cwl: CWL packages get 415
TITLE = "WPS processing gateway"
DESCRIPTION = ("Earth-observation processing gateway: OGC API - Processes - Part 1: Core 1.0 and Part 2: Deploy, "
               "Replace, Undeploy, OGC WPS 1.0.0 and WPS 2.0, over one job store")
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1  # beyond what an SQL OFFSET takes on every database
MAX_DURATION = 2**31 - 1  # seconds (68 years); minDuration/maxDuration beyond it compare nothing useful
OGC_PREFIXES = ("/conformance", "/api", "/processes", "/jobs", "/admin", "/accounting", "/stac")  # errors: problems


class OgcApi:
    """The OGC API - Processes resources; ``rules()`` are mounted by the WSGI app."""

    def __init__(self, context: GatewayContext) -> None:
        self.context = context
        self.documents = DocumentCache()
        settings = context.settings
        self.accounting = AccountingApi(context.store, settings.base_url, settings.billing_weights,
                                        context.visible_jobs)

    def rules(self) -> list[Rule]:
        """Werkzeug rules whose endpoints are this object's handlers."""
        return [
            Rule("/", endpoint=self.on_landing, methods=["GET"]),
            Rule("/conformance", endpoint=self.on_conformance, methods=["GET"]),
            Rule("/api", endpoint=self.on_api, methods=["GET"]),
            Rule("/processes", endpoint=self.on_processes, methods=["GET", "POST"]),
            Rule("/processes/<process_id>", endpoint=self.on_process, methods=["GET", "PUT", "DELETE"]),
            Rule("/processes/<process_id>/package", endpoint=self.on_package, methods=["GET"]),
            Rule("/processes/<process_id>/execution", endpoint=self.on_execute, methods=["POST"]),
            Rule("/jobs", endpoint=self.on_jobs, methods=["GET"]),
            Rule("/jobs/<job_id>", endpoint=self.on_job, methods=["GET", "DELETE"]),
            Rule("/jobs/<job_id>/results", endpoint=self.on_results, methods=["GET"]),
            Rule("/accounting", endpoint=self.accounting.on_accounting, methods=["GET"]),
        ]

    @staticmethod
    def owns(path: str) -> bool:
        """Whether errors on ``path`` are answered as problem documents."""
        return path == "/" or any(path == p or path.startswith(p + "/") for p in OGC_PREFIXES)

    @staticmethod
    def error(exc: HTTPException, request: Request) -> Response:
        """A problem document; for a browser (HTML preferred), the same problem as a page."""
        problem = from_http_error(exc)
        if request.accept_mimetypes.best_match([JSON, HTML], default=JSON) == HTML and request.args.get("f") != "json":
            response = Response(html.problem(problem.document()), problem.code, content_type="text/html; charset=utf-8")
            response.headers.update(problem.extra_headers)
            return response
        return problem.get_response(request.environ)

    @property
    def base(self) -> str:
        return self.context.settings.base_url

    # -- capabilities --------------------------------------------------------

    def on_landing(self, request: Request) -> Response:
        self._catalogue(request)
        base, wps = self.base, self.context.settings.url
        doc = {
            "title": TITLE,
            "description": DESCRIPTION,
            "links": [
                *self_links(f"{base}/", "landing page"),
                link(f"{base}/api", "service-desc", OPENAPI_MEDIA_TYPE, "API definition (OpenAPI 3.0)"),
                link(f"{base}/api?f=html", "service-doc", HTML, "API documentation"),
                link(f"{base}/conformance", "conformance", JSON, "conformance classes"),
                link(f"{base}/conformance", encode.REL_CONFORMANCE, JSON, "conformance classes"),
                link(f"{base}/processes", encode.REL_PROCESSES, JSON, "processes"),
                link(f"{base}/jobs", encode.REL_JOB_LIST, JSON, "jobs"),
                link(f"{wps}?service=WPS&request=GetCapabilities", "service", "text/xml",
                     "WPS 1.0.0 GetCapabilities"),
                link(f"{base}/health", "status", JSON, "health"),
                link(f"{base}/accounting", "related", JSON, "accounting report"),
                link(f"{base}/accounting?f=html", "related", HTML, "accounting report with charts"),
                link(f"{base}/stac", "data", JSON, "STAC API: the products of successful jobs"),
            ],
            "processes": sorted(self.context.processors()),
        }
        return self._answer(request, doc, html.landing)

    def on_conformance(self, request: Request) -> Response:
        self._catalogue(request)
        doc = {"conformsTo": CONFORMANCE}
        return self._answer(request, doc, lambda d: html.document("Conformance", d))

    def on_api(self, request: Request) -> Response:
        self._catalogue(request)
        as_html = wants_html(request)

        def render() -> Response:
            doc = openapi_document(self.base, TITLE, DESCRIPTION)
            return self._html(html.api(doc)) if as_html else _json_response(doc, content_type=OPENAPI_MEDIA_TYPE)

        return self._cached(request, self.context.catalogue()[0], ("api", as_html), render)

    # -- processes -----------------------------------------------------------

    def on_processes(self, request: Request) -> Response:
        if request.method == "POST":
            return deploy.on_deploy(request, self.context)
        self._catalogue(request)
        limit = int_param(request, "limit", MAX_LIMIT, 1, MAX_LIMIT)
        offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
        version, offered = self.context.catalogue()

        def render() -> Response:
            processors = sorted(offered.values(), key=lambda p: p.id)
            shipped = self.context.shipped()
            doc = {"processes": [encode.process_summary(p, self.base, p.id not in shipped)
                                 for p in processors[offset:offset + limit]],
                   "links": self._page_links(request, "/processes", at_offset(offset),
                                             at_offset(offset + limit) if offset + limit < len(processors) else None,
                                             at_offset(max(0, offset - limit)) if offset else None)}
            return self._answer(request, doc, html.processes)

        return self._cached(request, version, ("processes", request.query_string, wants_html(request)), render)

    def on_process(self, request: Request, process_id: str) -> Response:
        if request.method == "PUT":
            return deploy.on_replace(request, self.context, process_id)
        if request.method == "DELETE":
            return deploy.on_undeploy(request, self.context, process_id)
        self._catalogue(request)
        version, offered = self.context.catalogue()
        processor = self._processor(process_id, offered)

        def render() -> Response:
            doc = encode.process_description(processor, self.base, self.context.settings.url,
                                             process_id not in self.context.shipped())
            return self._answer(request, doc, html.process)

        return self._cached(request, version, ("process", process_id, wants_html(request)), render)

    def on_package(self, request: Request, process_id: str) -> Response:
        """The application package a process was deployed with (Part 2), or a shipped one's descriptor."""
        self._catalogue(request)
        package = deploy.package_of(self._processor(process_id), self.base, self.context.settings.url,
                                    process_id not in self.context.shipped())
        return _json_response(package, content_type=encode.PACKAGE_MEDIA_TYPE)

    def on_execute(self, request: Request, process_id: str) -> Response:
        require(request)
        processor = self._processor(process_id)
        settings = self.context.settings
        asynchronous = prefers_async(request.headers.get("Prefer"))
        parsed = parse_execute(read_json_body(request, settings.max_request_bytes), processor, asynchronous)
        try:
            checked = check_inputs(processor, parsed.inputs, self.context.address_policy)
        except InputError as exc:
            raise invalid_parameter(exc.message, exc.locator, input=exc.locator, code=exc.code) from exc
        try:
            subscriber = check_subscriber(parsed.subscriber, callback_policy(settings.allowed_callback_hosts))
        except SubscriberRefused as exc:
            raise invalid_parameter(str(exc), "subscriber") from None
        try:
            job = self.context.submit(request, processor, checked, parsed.form, "ogcapi", subscriber)
            if asynchronous:
                return self._created(job, {"Preference-Applied": "respond-async"})
            job = self.context.wait_for_job(job.id, settings.sync_timeout, request)
        except InputError as exc:
            raise invalid_parameter(exc.message, exc.locator, input=exc.locator, code=exc.code) from exc
        except LimitExceeded as exc:
            raise Problem(exc.status, "Too many requests" if exc.status == 429 else "Quota exhausted", str(exc),
                          TOO_MANY_REQUESTS if exc.status == 429 else QUOTA_EXHAUSTED,
                          headers={"Retry-After": str(exc.retry_after)} if exc.retry_after else {}) from exc
        if job.status not in JobStatus.FINAL:
            note = (f"still {encode.ogc_status(job)} after the synchronous wait of {settings.sync_timeout:g} s; "
                    "the server answered asynchronously: poll the job")
            return self._created(job, {}, note)
        response = self._results(job, processor)
        response.headers.add("Link", f"<{self.base}/jobs/{job.id}>; rel=monitor")  # the job this execution made
        return response

    # -- jobs ----------------------------------------------------------------

    def on_jobs(self, request: Request) -> Response:
        """A page of the jobs the caller may see, newest first; next and previous pages are linked by key
        (``cursor``), so that every page costs what the first does; ``offset`` is read too."""
        limit = int_param(request, "limit", 10, 1, MAX_LIMIT)
        offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
        direction, key = job_cursor(request, offset)
        filters = replace(job_filter(request), visible=self.context.visible_jobs(require(request)))
        if "process" not in list_param(request, "type", ["process"]):
            page: list[JobView] = []  # every job here is a process execution
            following = preceding = None
        else:
            page, following, preceding = self._job_page(limit, offset, direction, key, filters)
        here = [("cursor", request.args["cursor"])] if key is not None else at_offset(offset)
        doc = {"jobs": [self._status(job) for job in page],
               "links": self._page_links(request, "/jobs", here, following, preceding)}
        return self._answer(request, doc, html.jobs)

    def _job_page(self, limit: int, offset: int, direction: str, key: PageKey | None, filters: JobFilter
                  ) -> tuple[list[JobView], Paging | None, Paging | None]:
        """The jobs of a page, and the paging parameters of the next and previous pages (None: none)."""
        store = self.context.store
        found = list_jobs(store, limit + 1, offset=offset, filters=filters,
                          **({"before": key} if direction == paging.PREV else {"after": key}))
        more = len(found) > limit
        page = found[-limit:] if direction == paging.PREV else found[:limit]
        first = PageKey(page[0].created, page[0].id) if page else key
        last = PageKey(page[-1].created, page[-1].id) if page else key
        if direction == paging.PREV:  # back from a later page
            newer, older = more, bool(list_jobs(store, 1, filters=filters, after=last))
        else:
            newer, older = key is not None and bool(list_jobs(store, 1, filters=filters, before=first)), more
        following = [("cursor", paging.cursor(paging.NEXT, last))] if older and last else None
        if key is None:  # the first page, or one by offset
            return page, following, at_offset(max(0, offset - limit)) if offset else None
        return page, following, [("cursor", paging.cursor(paging.PREV, first))] if newer and first else None

    def on_job(self, request: Request, job_id: str) -> Response:
        if request.method == "DELETE":
            return self._dismiss(request, job_id)
        job = self._job(request, job_id, status_only=True)
        as_html = wants_html(request)
        store = self.context.store
        usage = job.derived("usage", lambda: job_usage(store, job.id, self.context.settings.billing_weights))
        items = job.derived("stac-links", lambda: item_links(store, self.base, job))

        def render() -> Response:
            doc = self._status(job)
            doc["usage"] = usage
            doc["links"].append(link(f"{self.base}/accounting?job={job.id}", "related", JSON,
                                     "usage and cost of this job"))
            doc["links"] += items
            return self._answer(request, doc, html.job)

        # The ETag covers the status columns, the job's usage and its STAC Items: all the page shows. The page
        # is rendered once per state of the job (it shows nothing of the clock).
        etag = job.derived(("ogcapi-etag", as_html), lambda: state_etag("ogcapi-status", job.state(), usage, items,
                                                                          as_html))

        def page() -> Response:
            body, content_type = job.derived(("ogcapi-page", as_html), lambda: _content(render()))
            return Response(body, content_type=content_type)

        return conditional(request, etag, page, {"Cache-Control": "no-cache", "Vary": "Accept"})

    def on_results(self, request: Request, job_id: str) -> Response:
        job = self._job(request, job_id)
        check_finished(job)
        if wants_html(request) or request.args.get("f") == "json":  # f=json: the results document, even of raw
            doc = encode.results_document(job, self.base, self.context.settings.jobs_dir)
            response = self._answer(request, doc, lambda d: html.results(job_id, d))
        else:
            response = self._results(job, processor_of(job))
        for item in item_links(self.context.store, self.base, job):  # the results as STAC Items
            response.headers.add("Link", f'<{item["href"]}>; rel="alternate"; type="{item["type"]}"; '
                                         f'title="{item["title"]}"')
        return response

    # -- helpers -------------------------------------------------------------

    def _dismiss(self, request: Request, job_id: str) -> Response:
        require(request)
        try:
            job = self.context.dismiss_for(request, job_id)
        except JobNotFound:
            raise no_such_job(job_id) from None
        # A running job is dismissed by the dispatcher on its next turn; the dismissal is already decided.
        status = None if job.status in JobStatus.FINAL else JobStatus.DISMISSED
        return _json_response(self._status(job, status))

    def _created(self, job: Job, headers: dict[str, str], note: str | None = None) -> Response:
        body = self._status(job)
        if note:
            body["message"] = f"{body['message']} ({note})" if body["message"] else note
        response = _json_response(body, 201)
        response.headers["Location"] = f"{self.base}/jobs/{job.id}"
        response.headers.update(headers)
        return response

    def _results(self, job: Job, processor: Processor) -> Response:
        """A finished job's results as its execute request asked: the results document (``response=
        document``), or raw (Part 1, 7.11.4.2): one output by value is itself, one by reference is 204 with a
        ``Link`` to it, several are ``multipart/related``."""
        check_finished(job)
        jobs_dir = self.context.settings.jobs_dir
        form = ResponseForm.from_dict(job.response_form)
        if not form.raw:
            return _json_response(encode.results_document(job, self.base, jobs_dir))
        parts = [(spec.id, output_url(self.base, job.id, job.outputs[spec.id]["file"])
                  if form.by_reference(spec) else None)
                 for spec in form.requested(processor) if spec.id in job.outputs]
        if not parts:  # the process produced none of the outputs asked for
            return deploy.no_content()
        if len(parts) == 1 and parts[0][1] is not None:
            response = deploy.no_content()
            response.headers["Link"] = f'<{parts[0][1]}>; rel="{parts[0][0]}"'
            return response
        if len(parts) == 1:
            return raw_output(job, parts[0][0], jobs_dir)
        return multipart_outputs(job, parts, jobs_dir)

    def _status(self, job: Job, status: str | None = None) -> dict[str, Any]:
        return encode.status_info(job, self.base, self.context.settings.url, status)

    def _processor(self, process_id: str, offered: dict[str, Processor] | None = None) -> Processor:
        processor = (self.context.processors() if offered is None else offered).get(process_id)
        if processor is None:
            raise no_such_process(process_id)
        return processor

    def _job(self, request: Request, job_id: str, status_only: bool = False) -> Job | JobView:
        """A job the request's identity may see (``status_only``: its status columns); another user's is no
        such job."""
        require(request)
        try:
            if status_only:
                return self.context.job_view_for(request, job_id)
            return self.context.job_for(request, job_id)
        except JobNotFound:
            raise no_such_job(job_id) from None

    def _catalogue(self, request: Request) -> None:
        """The landing page, conformance, the API and the processes are public unless protect_catalogue."""
        if self.context.settings.auth.protect_catalogue:
            require(request)

    def _page_links(self, request: Request, path: str, here: Paging, following: Paging | None = None,
                    preceding: Paging | None = None) -> list[dict[str, str]]:
        """self, alternate, and next/prev links that keep the request's filters; ``here``, ``following`` and
        ``preceding`` are the paging parameters of this page, the next and the previous (None: there is none)."""
        args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("offset", "cursor", "f")]

        def href(paging: Paging, fmt: str | None = None) -> str:
            query = args + paging + ([("f", fmt)] if fmt else [])
            return f"{self.base}{path}" + (f"?{urlencode(query)}" if query else "")

        links = [link(href(here), "self", JSON), link(href(here, "html"), "alternate", HTML)]
        if following is not None:
            links.append(link(href(following), "next", JSON, "next page"))
        if preceding is not None:
            links.append(link(href(preceding), "prev", JSON, "previous page"))
        return links

    def _cached(self, request: Request, version: int, key: Hashable, render: Callable[[], Response]) -> Response:
        """A catalogue document (processes, descriptions, the API) rendered once per catalogue version and
        ``key`` (what else it depends on: the query, JSON or HTML), with its ETag (304 when the client has it)."""
        def document() -> Document:
            response = render()
            return Document.of(response.get_data(), response.content_type, {"Vary": "Accept"})

        return respond(request, self.documents.get(version, key, document))

    def _answer(self, request: Request, doc: dict[str, Any], page: Callable[[dict[str, Any]], str]) -> Response:
        return self._html(page(doc)) if wants_html(request) else _json_response(doc)

    @staticmethod
    def _html(text: str) -> Response:
        return Response(text, 200, content_type="text/html; charset=utf-8")


def _content(response: Response) -> tuple[bytes, str]:
    return response.get_data(), response.content_type or JSON


def _json_response(doc: Any, status: int = 200, content_type: str = JSON) -> Response:
    return Response(json.dumps(doc, indent=2), status, content_type=content_type)


Paging = list[tuple[str, str]]  # the query parameters that choose a page


def at_offset(offset: int) -> Paging:
    return [("offset", str(offset))] if offset else []


def job_cursor(request: Request, offset: int) -> tuple[str, PageKey | None]:
    """The direction and key of the request's ``cursor`` (``next`` and None without one)."""
    text = request.args.get("cursor")
    if text is None:
        return paging.NEXT, None
    if offset:
        raise invalid_parameter("cursor and offset cannot be combined: a cursor names its page", "cursor")
    try:
        return paging.read_cursor(text)
    except ValueError:
        raise invalid_parameter("cursor is not one of this server's: follow the next and prev links of /jobs",
                                "cursor") from None


def check_finished(job: Job) -> None:
    """Raise the problem a results request gets while a job has no results."""
    if job.status in JobStatus.ACTIVE:
        raise result_not_ready(job.id, encode.ogc_status(job))
    if job.status == JobStatus.FAILED:
        raise Problem(500, "Job failed", job.message or "the job failed", JOB_FAILED, jobID=job.id)
    if job.status == JobStatus.DISMISSED:
        raise Problem(410, "Job dismissed", job.message or "the job was dismissed", JOB_DISMISSED, jobID=job.id)


def wants_html(request: Request) -> bool:
    """``f=html``/``f=json`` first, then the Accept header; JSON when nothing says otherwise."""
    fmt = request.args.get("f")
    if fmt is not None:
        if fmt not in ("json", "html"):
            raise invalid_parameter(f"f must be 'json' or 'html', not {fmt!r}", "f")
        return fmt == "html"
    return request.accept_mimetypes.best_match([JSON, HTML], default=JSON) == HTML


def optional_int(request: Request, name: str, minimum: int, maximum: int) -> int | None:
    return None if request.args.get(name) is None else int_param(request, name, minimum, minimum, maximum)


def int_param(request: Request, name: str, default: int, minimum: int, maximum: int | None) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid_parameter(f"{name} must be an integer, not {text!r}", name) from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise invalid_parameter(f"{name} must be {bounds}, not {value}", name)
    return value


def list_param(request: Request, name: str, default: list[str] | None = None) -> list[str]:
    """A list parameter, repeated (``a=1&a=2``) or comma-separated (``a=1,2``)."""
    values = [v.strip() for raw in request.args.getlist(name) for v in raw.split(",") if v.strip()]
    return values or list(default or [])


def job_filter(request: Request) -> JobFilter:
    statuses = list_param(request, "status")
    unknown = [s for s in statuses if s not in STATUS_CODES]
    if unknown:
        raise invalid_parameter(f"status must be among {', '.join(STATUS_CODES)}; not {', '.join(unknown)}",
                                "status")
    start, end = datetime_interval(request.args.get("datetime"))
    return JobFilter(statuses=tuple(statuses), process_ids=tuple(list_param(request, "processID")),
                     created_from=start, created_to=end,
                     min_duration=optional_int(request, "minDuration", 0, MAX_DURATION),
                     max_duration=optional_int(request, "maxDuration", 0, MAX_DURATION))


def datetime_interval(text: str | None) -> tuple[datetime | None, datetime | None]:
    """``datetime``: an instant, or ``start/end`` with ``..`` (or nothing) for an open end; RFC 3339, UTC if
    bare. An interval that ends before it starts holds no job (it is not an error)."""
    if text is None:
        return None, None
    parts = text.strip().split("/")
    if len(parts) > 2 or not text.strip():
        raise invalid_parameter(f"datetime must be an instant or an interval start/end, not {text!r}", "datetime")
    bounds = [_instant(p) for p in parts]
    if len(bounds) == 1:
        if bounds[0] is None:
            raise invalid_parameter("datetime '..' needs an interval: start/.. or ../end", "datetime")
        return bounds[0], bounds[0]
    return bounds[0], bounds[1]


def _instant(text: str) -> datetime | None:
    text = text.strip()
    if text in ("", ".."):
        return None
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a valid instant UTC cannot hold (year 9999 -05:00)
        raise invalid_parameter(f"datetime: {text!r} is not an RFC 3339 date-time", "datetime") from None
