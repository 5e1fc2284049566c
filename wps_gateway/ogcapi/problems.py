"""RFC 7807 problem documents with the exception types of OGC API - Processes.

Every error on an OGC API path is answered with a problem document (``application/problem+json``,
or ``application/json`` to a client that prefers it) so that a portal can branch on ``type``
rather than parse text. The problem
classes are Werkzeug ``HTTPException``s: a handler raises one and the WSGI
app answers it like any other HTTP error.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.datastructures import MIMEAccept
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_accept_header
from werkzeug.wrappers import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA_TYPE = "application/json"
OGC_EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
NO_SUCH_PROCESS = f"{OGC_EXCEPTIONS}/no-such-process"
NO_SUCH_JOB = f"{OGC_EXCEPTIONS}/no-such-job"
RESULT_NOT_READY = f"{OGC_EXCEPTIONS}/result-not-ready"
INVALID_PARAMETER = f"{OGC_EXCEPTIONS}/invalid-parameter"
# Not defined by the standard (Part 1 only says "an exception"): the gateway's own types.
JOB_FAILED = "urn:wps-gateway:problem:job-failed"
JOB_DISMISSED = "urn:wps-gateway:problem:job-dismissed"
TOO_MANY_REQUESTS = "urn:wps-gateway:problem:too-many-requests"
QUOTA_EXHAUSTED = "urn:wps-gateway:problem:quota-exhausted"


class Problem(HTTPException):
    """An HTTP error answered as a problem document."""

    def __init__(self, status: int, title: str, detail: str, type_: str = "about:blank",
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.code = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.extra = extra
        self.extra_headers = headers or {}

    def document(self) -> dict[str, Any]:
        return {"type": self.type, "title": self.title, "status": self.code, "detail": self.detail, **self.extra}

    def get_response(self, environ=None, scope=None) -> Response:
        response = Response(json.dumps(self.document(), indent=2), self.code,
                            content_type=problem_media_type(environ))
        response.headers.update(self.extra_headers)
        return response


def problem_media_type(environ=None) -> str:
    """``application/problem+json`` (RFC 7807), unless the client prefers ``application/json``: OGC API -
    Processes 1.0 declares its exceptions (exception.yaml) as application/json, and its test suite asks
    for and expects exactly that. The body is the same either way."""
    accept = parse_accept_header((environ or {}).get("HTTP_ACCEPT", ""), MIMEAccept)
    return accept.best_match([PROBLEM_MEDIA_TYPE, JSON_MEDIA_TYPE], default=PROBLEM_MEDIA_TYPE)


def no_such_process(process_id: str) -> Problem:
    return Problem(404, "No such process", f"there is no process {process_id!r}", NO_SUCH_PROCESS)


def no_such_job(job_id: str) -> Problem:
    return Problem(404, "No such job", f"there is no job {job_id!r}", NO_SUCH_JOB)


def result_not_ready(job_id: str, status: str) -> Problem:
    return Problem(404, "Result not ready", f"job {job_id} is {status}; its results are not ready yet",
                   RESULT_NOT_READY, jobID=job_id, jobStatus=status)


def invalid_parameter(detail: str, parameter: str | None = None, **extra: Any) -> Problem:
    """A bad request; ``parameter`` names the query parameter, input or request member at fault."""
    if parameter is not None:
        extra.setdefault("parameter", parameter)
    return Problem(400, "Invalid parameter", detail, INVALID_PARAMETER, **extra)


def from_http_error(exc: HTTPException) -> Problem:
    """Werkzeug's own errors (404 route, 405 method) as problem documents, keeping their headers (Allow)."""
    if isinstance(exc, Problem):
        return exc
    headers = {k: v for k, v in exc.get_headers() if k.lower() not in ("content-type", "content-length")}
    code = exc.code or 500
    return Problem(code, exc.name, exc.description or exc.name, headers=headers)
