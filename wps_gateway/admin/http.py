"""What every operators' endpoint shares: the role check, JSON in and out, and a guard against cross-site calls.

A request that changes something must come with a JSON body
(``Content-Type: application/json``; ``{}`` will do where there is nothing to
say): a page on another site cannot send that without the browser asking
first (a CORS preflight, which is never granted), so with ``[auth] mode =
none``, where a browser on the gateway's machine is an operator, no other
site can steer the gateway through it. Browsers that say where a request
comes from (``Sec-Fetch-Site``) are refused a cross-site one outright.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

from ..auth.identity import OPERATOR, Identity, require
from ..context import GatewayContext
from ..ogcapi.execute import read_json_body
from ..ogcapi.problems import Problem

JSON_TYPE = "application/json"


class Endpoints:
    """A resource of the operators' API: its routes (``rules``) and their handlers, over the gateway's context."""

    def __init__(self, context: GatewayContext) -> None:
        self.context = context


def operator(request: Request) -> Identity:
    """The operator asking (401 without credentials, 403 without the role); refuses cross-site writes."""
    identity = require(request, OPERATOR)
    if request.method not in ("GET", "HEAD") and cross_site(request):
        raise Problem(403, "Forbidden", "operators' changes are not accepted from another site's page")
    return identity


def cross_site(request: Request) -> bool:
    """Whether the browser says the request comes from another site's page."""
    return request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site"


def json_body(request: Request, limit: int) -> Any:
    """The JSON body of a change; 415 unless it is sent as JSON (see the module docstring)."""
    if request.mimetype != JSON_TYPE:
        raise Problem(415, "Unsupported media type", "send the change as JSON (Content-Type: application/json; "
                                                     "{} when there is nothing more to say)")
    return read_json_body(request, limit)


def json_response(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(document, indent=2, default=str), status, content_type=JSON_TYPE)
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


def no_content() -> Response:
    """204: done, nothing to say (and no Content-Type for nothing)."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def not_found(what: str) -> Problem:
    return Problem(404, "Not found", what)
