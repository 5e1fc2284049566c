"""The OpenAPI 3.0 definition of this service's OGC API - Processes paths (``/api``).

Generated from a small template rather than shipped as a file, so that the
server URL and the process ids are this deployment's. The schemas follow the
official OGC API - Processes 1.0 ones, written out so the document stands
alone (no external ``$ref``s, which API tools would have to fetch); where an
official ``oneOf`` has overlapping branches (a number is also an integer) it
reads ``anyOf``, which is what the standard means and what a validator can
check.
"""

from __future__ import annotations

from typing import Any

from ..accounting.query import FIGURES, GROUPS
from ..schedules.openapi import schedule_paths

# A user's, group's or process's name in a path: not blank, no space at either end (the server strips it).
NAME = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^\S(.*\S)?$"}

OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"
STATUS_CODES = ["accepted", "running", "successful", "failed", "dismissed"]
# An RFC 3339 date-time this server reads (years 1000-8999 keep every offset inside what UTC can hold).
INSTANT = (r"[1-8][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
           r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?")


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


LINKS = _array(_ref("link"))
NUMBER = {"type": "number", "minimum": 0}
ACCOUNTING_SCHEMAS: dict[str, Any] = {
    "accountingFigures": {"type": "object", "properties": {name: NUMBER for name in FIGURES}},
    "accountingReport": {"type": "object", "required": ["rows", "total", "group_by", "links"], "properties": {
        "from": {"type": "string", "format": "date-time", "nullable": True},
        "before": {"type": "string", "format": "date-time", "nullable": True,
                   "description": "end of the period, exclusive"},
        "filters": {"type": "object", "additionalProperties": _array({"type": "string"})},
        "group_by": _array({"type": "string", "enum": list(GROUPS)}),
        "billing_weights": {"type": "object", "additionalProperties": NUMBER},
        "rows": _array({"allOf": [_ref("accountingFigures"), {"type": "object", "properties": {
            name: {"type": "string"} for name in GROUPS}}]}),
        "total": _ref("accountingFigures"), "links": LINKS}},
}
SCHEMAS: dict[str, Any] = {
    "link": {"type": "object", "required": ["href"], "properties": {
        "href": {"type": "string"}, "rel": {"type": "string"}, "type": {"type": "string"},
        "hreflang": {"type": "string"}, "title": {"type": "string"}}},
    "landingPage": {"type": "object", "required": ["links"], "properties": {
        "title": {"type": "string"}, "description": {"type": "string"}, "links": LINKS}},
    "confClasses": {"type": "object", "required": ["conformsTo"], "properties": {
        "conformsTo": _array({"type": "string"})}},
    "processSummary": {"type": "object", "required": ["id", "version", "mutable"], "properties": {
        "id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
        "version": {"type": "string"}, "keywords": _array({"type": "string"}),
        "mutable": {"type": "boolean", "description": "whether the process may be replaced or undeployed"},
        "jobControlOptions": _array({"type": "string", "enum": ["sync-execute", "async-execute", "dismiss"]}),
        "outputTransmission": _array({"type": "string", "enum": ["value", "reference"]}),
        "links": LINKS}},
    "processList": {"type": "object", "required": ["processes", "links"], "properties": {
        "processes": _array(_ref("processSummary")), "links": LINKS}},
    "inputDescription": {"type": "object", "required": ["schema"], "properties": {
        "title": {"type": "string"}, "description": {"type": "string"},
        "minOccurs": {"type": "integer", "minimum": 0},
        "maxOccurs": {"oneOf": [{"type": "integer"}, {"type": "string", "enum": ["unbounded"]}]},
        "schema": {"type": "object"}}},
    "outputDescription": {"type": "object", "required": ["schema"], "properties": {
        "title": {"type": "string"}, "description": {"type": "string"}, "schema": {"type": "object"}}},
    "process": {"allOf": [_ref("processSummary"), {"type": "object", "properties": {
        "inputs": {"type": "object", "additionalProperties": _ref("inputDescription")},
        "outputs": {"type": "object", "additionalProperties": _ref("outputDescription")}}}]},
    "statusInfo": {"type": "object", "required": ["jobID", "status", "type"], "properties": {
        "processID": {"type": "string"}, "type": {"type": "string", "enum": ["process"]},
        "jobID": {"type": "string"}, "status": {"type": "string", "enum": STATUS_CODES},
        "message": {"type": "string"}, "created": {"type": "string", "format": "date-time"},
        "started": {"type": "string", "format": "date-time"}, "finished": {"type": "string", "format": "date-time"},
        "updated": {"type": "string", "format": "date-time"},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100}, "links": LINKS,
        "usage": {**_ref("accountingFigures"),
                  "description": "what the job's attempts that ended used and cost (GET /jobs/{jobId} only)"}}},
    "jobList": {"type": "object", "required": ["jobs", "links"], "properties": {
        "jobs": _array(_ref("statusInfo")), "links": LINKS}},
    "qualifiedValue": {"type": "object", "required": ["value"], "properties": {
        "value": {}, "mediaType": {"type": "string"}, "encoding": {"type": "string"}}},
    "results": {"type": "object", "additionalProperties": {"anyOf": [
        {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "array", "items": {}},
        _ref("qualifiedValue"), _ref("link")]}},
    "bbox": {"type": "object", "required": ["bbox"], "additionalProperties": False, "properties": {
        "bbox": {"type": "array", "items": {"type": "number"},
                 "anyOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}]},
        "crs": {"type": "string", "minLength": 1}}},
    "reference": {"type": "object", "required": ["href"], "properties": {
        "href": {"type": "string", "minLength": 1}, "type": {"type": "string"}}},
    "qualifiedInputValue": {"type": "object", "required": ["value"], "properties": {
        "value": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "object"},
                            {"type": "array"}]},
        "mediaType": {"type": "string"}, "encoding": {"type": "string"}}},
    "inputValue": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, _ref("bbox"),
                             _ref("reference"), _ref("qualifiedInputValue")]},
    "execute": {"type": "object", "additionalProperties": False, "properties": {
        "inputs": {"type": "object", "additionalProperties": {"anyOf": [_ref("inputValue"),
                                                                        _array(_ref("inputValue"))]}},
        "outputs": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "transmissionMode": {"type": "string", "enum": ["value", "reference"]},
            "format": {"type": "object", "properties": {"mediaType": {"type": "string"}}}}}},
        "response": {"type": "string", "enum": ["raw", "document"], "default": "raw"},
        "subscriber": {"type": "object", "properties": {
            "successUri": {"type": "string", "format": "uri"}, "inProgressUri": {"type": "string", "format": "uri"},
            "failedUri": {"type": "string", "format": "uri"}}}}},
    **ACCOUNTING_SCHEMAS,
    "exception": {"type": "object", "required": ["type"], "additionalProperties": True, "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"}}},
}

PARAMETERS: dict[str, Any] = {
    "processId": {"name": "processId", "in": "path", "required": True, "schema": {"type": "string"},
                  "example": "urban-footprint"},
    "jobId": {"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}},
    "f": {"name": "f", "in": "query", "required": False, "description": "response format (default json)",
          "schema": {"type": "string", "enum": ["json", "html"]}},
    "limit": {"name": "limit", "in": "query", "required": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}},
    "offset": {"name": "offset", "in": "query", "required": False,
               "schema": {"type": "integer", "minimum": 0, "maximum": 2147483647, "default": 0}},
    "status": {"name": "status", "in": "query", "required": False, "style": "form", "explode": False,
               "schema": _array({"type": "string", "enum": STATUS_CODES})},
    "processID": {"name": "processID", "in": "query", "required": False, "style": "form", "explode": False,
                  "schema": _array({"type": "string"})},
    "type": {"name": "type", "in": "query", "required": False, "style": "form", "explode": False,
             "schema": _array({"type": "string", "enum": ["process"]})},
    "datetime": {"name": "datetime", "in": "query", "required": False,
                 "description": "creation time: an RFC 3339 instant (UTC when it has no offset), or an interval "
                                "start/end whose open end is '..' or empty",
                 "schema": {"type": "string", "pattern": f"^({INSTANT}|({INSTANT}|\\.\\.)?/({INSTANT}|\\.\\.)?)$"}},
    "minDuration": {"name": "minDuration", "in": "query", "required": False,
                    "description": "jobs that ran at least this many seconds (from the start of their first task "
                                   "to their end, or now)",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 2147483647}},
    "maxDuration": {"name": "maxDuration", "in": "query", "required": False,
                    "description": "jobs that ran at most this many seconds; jobs not started are left out",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 2147483647}},
    **{f"accounting_{name}": {"name": name, "in": "query", "required": False, "style": "form", "explode": False,
                              "description": f"only jobs of these {name}s", "schema": _array({"type": "string"})}
       for name in ("user", "group", "process", "backend")},
    **{f"accounting_{name}": {"name": name, "in": "query", "required": False, "description": text, "schema": {
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
                  {"type": "string", "pattern": "^[1-9][0-9]{3}-(0[1-9]|1[0-2])$"}]}}
       for name, text in (("from", "jobs created from this instant, day (YYYY-MM-DD) or month (YYYY-MM) on"),
                          ("to", "jobs created until this instant, or to the end of this day or month"))},
    "accounting_job": {"name": "job", "in": "query", "required": False, "description": "one job's usage",
                       "schema": {"type": "string"}},
    "accounting_group_by": {"name": "group_by", "in": "query", "required": False, "style": "form", "explode": False,
                            "description": "one row per value of these (periods: UTC, of the job's creation)",
                            "schema": _array({"type": "string", "enum": list(GROUPS)})},
    "accounting_f": {"name": "f", "in": "query", "required": False, "description": "response format (default json)",
                     "schema": {"type": "string", "enum": ["json", "csv", "html"]}},
    "Prefer": {"name": "Prefer", "in": "header", "required": False,
               "description": "respond-async asks for an asynchronous execution (RFC 7240)",
               "schema": {"type": "string"}},
}

# Problem documents; application/json to a client that prefers it (OGC API - Processes 1.0 declares that).
PROBLEM = {media: {"schema": _ref("exception")} for media in ("application/problem+json", "application/json")}
PACKAGE_TYPES = ("application/ogcapppkg+json", "application/json")
IDENTIFIER_PATTERN = "^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
_DESCRIPTION = {"type": "object", "required": ["id", "outputs"], "properties": {
    "id": {"type": "string", "pattern": IDENTIFIER_PATTERN}, "version": {"type": "string"},
    "inputs": {"type": "object"}, "outputs": {"type": "object", "minProperties": 1}}}
# An application package: the gateway's descriptor (processDescription, executionUnit with its command,
# workflow), the OGC form (processDescription.process), or a container execution unit without a workflow.
PACKAGE = {"type": "object", "required": ["processDescription", "executionUnit"], "properties": {
    "processDescription": {"anyOf": [_DESCRIPTION, {"type": "object", "required": ["process"],
                                                    "properties": {"process": _DESCRIPTION}}]},
    "executionUnit": {"type": "object", "properties": {
        "type": {"type": "string"}, "image": {"type": "string"},
        "command": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "environment": {"type": "object", "additionalProperties": {"type": "string"}}}},
    "workflow": {"type": "object", "required": ["steps"], "properties": {
        "steps": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["id"]}}}}}}
RESPONSES: dict[str, Any] = {
    name: {"description": text, "content": PROBLEM} for name, text in {
        "InvalidParameter": "a query parameter or the request body is invalid",
        "NotFound": "no such resource (process, job), or results not ready",
        "NotAllowed": "the method is not allowed on this resource",
        "TooLarge": "the request body is larger than the server accepts",
        "UnsupportedMediaType": "the request body is not of a media type this resource takes (CWL packages "
                                "among them)",
        "Gone": "the job was dismissed; it has no results",
        "Unauthorized": "this needs credentials (Authorization: Bearer <token or API key>)",
        "Forbidden": "not allowed to this identity: deployment disabled or an immutable process, a used-up "
                     "quota, or an operators' resource",
        "Conflict": "a process with this id exists already",
        "ServerError": "the job failed, or the server did",
        "TooManyRequests": "the client has as many jobs, tasks or waiting synchronous requests as it may; "
                           "retry after the time the Retry-After header gives",
        "Unavailable": "the job store cannot be reached right now; retry after the time Retry-After gives",
    }.items()}


RESULTS = {"description": "results (response=document), or raw (response=raw): one output's content, or "
                          "several as multipart/related", "content": {
                              "application/json": {"schema": _ref("results")},
                              "multipart/related": {"schema": {"type": "string", "format": "binary"}},
                              "text/html": {"schema": {"type": "string"}},
                              "*/*": {"schema": {"type": "string", "format": "binary"}}}}


RESPONSES["NoContent"] = {"description": "response=raw: one output by reference (the Link header points at it), "
                                         "or no output produced",
                          "headers": {"Link": {"description": "<the output>; rel=the output's id",
                                               "schema": {"type": "string"}}}}


def _json(schema: str, description: str, html: bool = True) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _ref(schema)}}
    if html:
        content["text/html"] = {"schema": {"type": "string"}}
    return {"description": description, "content": content}


def _errors(*codes: int) -> dict[str, Any]:
    names = {204: "NoContent", 400: "InvalidParameter", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
             405: "NotAllowed",
             409: "Conflict", 410: "Gone", 413: "TooLarge", 415: "UnsupportedMediaType", 429: "TooManyRequests",
             500: "ServerError", 503: "Unavailable"}
    return {str(code): _ref(names[code], "responses") for code in codes}


def _get(operation_id: str, summary: str, ok: dict[str, Any], params: list[str], errors: tuple[int, ...] = (400,),
         tag: str = "Processes") -> dict[str, Any]:
    return {"get": {"operationId": operation_id, "summary": summary, "tags": [tag],
                    "parameters": [_ref(p, "parameters") for p in params],
                    "responses": {"200": ok, **_errors(*errors)}}}


def _paths() -> dict[str, Any]:
    status_headers = {"Location": {"description": "URL of the job's status", "schema": {"type": "string"}},
                      "Preference-Applied": {"description": "respond-async when honoured",
                                             "schema": {"type": "string"}}}
    paths: dict[str, Any] = {
        "/": _get("getLandingPage", "landing page", _json("landingPage", "links to the API"), ["f"],
                  tag="Capabilities"),
        "/conformance": _get("getConformanceClasses", "conformance classes implemented",
                             _json("confClasses", "conformance declaration"), ["f"], tag="Capabilities"),
        "/api": _get("getAPI", "this API definition", {"description": "OpenAPI 3.0 definition", "content": {
            OPENAPI_MEDIA_TYPE: {"schema": {"type": "object"}}, "text/html": {"schema": {"type": "string"}}}},
            ["f"], tag="Capabilities"),
        "/processes": _get("getProcesses", "list of processes", _json("processList", "process summaries"),
                           ["limit", "offset", "f"]),
        "/processes/{processId}": _get("getProcessDescription", "process description",
                                       _json("process", "OGC process description"), ["processId", "f"],
                                       (400, 404)),
        "/jobs": _get("getJobs", "list of jobs", _json("jobList", "statusInfo of each job"),
                      ["limit", "offset", "status", "processID", "type", "datetime", "minDuration", "maxDuration",
                       "f"], (400, 401), tag="Jobs"),
        "/jobs/{jobId}": _get("getStatus", "status of a job", _json("statusInfo", "statusInfo"),
                              ["jobId", "f"], (400, 401, 404), tag="Jobs"),
        "/accounting": _get("getAccounting", "usage and cost of jobs: by user, group, process, backend, period",
                            {"description": "the report", "content": {
                                "application/json": {"schema": _ref("accountingReport")},
                                "text/csv": {"schema": {"type": "string"}},
                                "text/html": {"schema": {"type": "string"}}}},
                            [f"accounting_{name}" for name in ("from", "to", "user", "group", "process", "backend")]
                            + ["status", "accounting_job", "accounting_group_by", "accounting_f"], tag="Accounting"),
        "/jobs/{jobId}/results": _get("getResult", "results of a job", RESULTS, ["jobId", "f"],
                                      (204, 400, 401, 404, 410, 500), tag="Jobs"),
        "/processes/{processId}/package": _get(
            "getPackage", "the application package of a process (OGC API - Processes Part 2)",
            {"description": "an OGC application package that deploys the process as it is",
             "content": {"application/ogcapppkg+json": {"schema": PACKAGE}}}, ["processId"], (404,), tag="DRU"),
    }
    paths["/jobs/{jobId}"]["delete"] = {
        "operationId": "dismiss", "summary": "dismiss a job", "tags": ["Jobs"],
        "parameters": [_ref("jobId", "parameters")],
        "responses": {"200": _json("statusInfo", "statusInfo of the dismissed job", html=False),
                      **_errors(401, 404)}}
    paths["/processes/{processId}/execution"] = {"post": {
        "operationId": "execute", "summary": "execute a process (create a job)", "tags": ["Processes"],
        "parameters": [_ref("processId", "parameters"), _ref("Prefer", "parameters")],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("execute")}}},
        "responses": {
            "200": {**RESULTS, "headers": {"Link": {"description": "<the job>; rel=monitor",
                                                    "schema": {"type": "string"}}}},
            "201": {"description": "job created; asynchronous execution", "headers": status_headers,
                    "content": {"application/json": {"schema": _ref("statusInfo")}}},
            **_errors(204, 400, 401, 403, 404, 410, 413, 415, 429, 500, 503)}}}
    package = {"required": True, "content": {media: {"schema": PACKAGE} for media in PACKAGE_TYPES}}
    deployer = [{"deployer": []}]
    paths["/processes"]["post"] = {
        "operationId": "deploy", "summary": "deploy a processor (OGC API - Processes Part 2)", "tags": ["DRU"],
        "security": deployer, "requestBody": package,
        "responses": {"201": {"description": "deployed", "headers": {"Location": {
            "description": "the new process", "schema": {"type": "string"}}},
            "content": {"application/json": {"schema": _ref("processSummary")}}},
            **_errors(400, 401, 403, 409, 413, 415)}}
    paths["/processes/{processId}"]["put"] = {
        "operationId": "replace", "summary": "replace a deployed processor with a new version", "tags": ["DRU"],
        "security": deployer, "parameters": [_ref("processId", "parameters")], "requestBody": package,
        "responses": {"204": {"description": "replaced"}, **_errors(400, 401, 403, 404, 413, 415)}}
    paths["/processes/{processId}"]["put"]["responses"]["415"] = _ref("UnsupportedMediaType", "responses")
    paths["/processes/{processId}"]["delete"] = {
        "operationId": "undeploy", "summary": "undeploy a deployed processor", "tags": ["DRU"],
        "security": deployer, "parameters": [_ref("processId", "parameters")],
        "responses": {"204": {"description": "undeployed"}, **_errors(401, 403, 404)}}
    quota = {"type": "object", "additionalProperties": False, "properties": {
        "cpuHours": {"type": "number", "nullable": True, "minimum": 0, "maximum": 1e12},
        "period": {"type": "string", "pattern": "^(month|[1-9][0-9]{0,3}d)$"},
        "maxRunning": {"type": "integer", "nullable": True, "minimum": 0, "maximum": 1000000}},
        "anyOf": [{"required": ["cpuHours"], "properties": {"cpuHours": {"type": "number"}}},
                  {"required": ["maxRunning"], "properties": {"maxRunning": {"type": "integer"}}}]}
    quota_params = [{"name": "scope", "in": "path", "required": True, "schema": {"type": "string",
                                                                                   "enum": ["user", "group"]}},
                    {"name": "name", "in": "path", "required": True, "schema": NAME}]
    quota_state = {"description": "the quota and the usage it counts now", "content": {"application/json": {
        "schema": {"type": "object"}}}}
    paths["/admin/api/quotas"] = {"get": {
        "operationId": "getQuotas", "summary": "quotas per user and group, with their usage (operators)",
        "tags": ["Admin"], "responses": {"200": quota_state, **_errors(401, 403)}}}
    paths["/admin/api/quotas/{scope}/{name}"] = {
        "put": {"operationId": "setQuota", "summary": "set a user's or a group's quota (operators)",
                "tags": ["Admin"], "parameters": quota_params,
                "requestBody": {"required": True, "content": {"application/json": {"schema": quota}}},
                "responses": {"200": quota_state, **_errors(400, 401, 403, 404, 413, 415)}},
        "delete": {"operationId": "removeQuota", "summary": "remove a quota (operators)", "tags": ["Admin"],
                   "parameters": quota_params,
                   "responses": {"204": {"description": "removed"}, **_errors(401, 403, 404)}}}
    paths.update(schedule_paths(_errors))
    from ..admin.openapi import admin_paths  # here: the operators' module builds on this one's components

    paths.update(admin_paths())
    return paths


def openapi_document(base: str, title: str, description: str) -> dict[str, Any]:
    """The definition of the OGC API paths served under ``base`` (and of the STAC API under ``/stac``)."""
    from ..stac import openapi as stac
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "description": description, "version": "1.0.0",
                 "license": {"name": "see the gateway's distribution"}},
        "servers": [{"url": base}],
        "tags": [{"name": "Capabilities"}, {"name": "Processes"}, {"name": "Jobs"}, {"name": "DRU"},
                 {"name": "Admin"}, {"name": "Console"}, {"name": "Metrics"}, {"name": "Accounting"},
                 {"name": "STAC"}],
        "paths": {**_paths(), **stac.paths()},
        "components": {"schemas": {**SCHEMAS, **stac.SCHEMAS}, "parameters": {**PARAMETERS, **stac.PARAMETERS},
                       "responses": RESPONSES,
                       "securitySchemes": {"deployer": {"type": "http", "scheme": "bearer",
                                                        "description": "a token of [gateway] deploy_tokens"}}},
    }
