"""The operators' paths in the served OpenAPI document (``/api``): the REST control, the console's pages and
forms, and ``/metrics``. Every one needs the operator role (``/metrics`` unless ``[console] public_metrics``)."""

from __future__ import annotations

from typing import Any

from ..control import PRIORITY_RANGE
from ..ogcapi.openapi import NAME
from ..scheduling import KINDS

STATUSES = ["accepted", "running", "successful", "failed", "dismissed"]
SCALAR_LIMITS = [kind for kind, (_, names, _) in KINDS.items() if not names]
NAMED_LIMITS = [kind for kind, (_, names, _) in KINDS.items() if names]
NULLABLE_TIME = {"type": "string", "format": "date-time", "nullable": True}
TEXT = {"type": "string"}
HTML_PAGE = {"text/html": {"schema": TEXT}}
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/exception"}}}


def _ok(description: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {"application/json": {"schema": schema}}}}


def _problems(*codes: int) -> dict[str, Any]:
    return {str(code): {"description": "see the problem document", "content": PROBLEM} for code in codes}


def _html_errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"description": "an error page", "content": HTML_PAGE} for code in codes}


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string", "minLength": 1}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    explode = {"style": "form", "explode": False} if schema.get("type") == "array" else {}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema, **explode}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _form(fields: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"csrf_token": TEXT, **fields},
              "required": ["csrf_token", *(required or [])]}
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


JOB_ID = _path("jobId", "the job's id")
ATTEMPT_ID = _path("attemptId", "a task attempt's id: <job id>.<step>.<task index>.<attempt number>")
PERIOD = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
                    {"type": "string", "pattern": "^[1-9][0-9]{3}-(0[1-9]|1[0-2])$"}]}
LISTING = [
    _query("status", "only jobs with these statuses", {"type": "array", "items": {"type": "string",
                                                                                  "enum": STATUSES}}),
    _query("process", "only jobs of these processes", {"type": "array", "items": TEXT}),
    _query("user", "only jobs of these users", {"type": "array", "items": TEXT}),
    _query("from", "jobs created from this instant, day or month on", PERIOD),
    _query("to", "jobs created until this instant, or to the end of this day or month", PERIOD),
    _query("sort", "the order (each with the creation time second)", {"type": "string", "enum": [
        "created", "status", "process", "user"], "default": "created"}),
    _query("order", "descending (the default: newest first) or ascending", {"type": "string",
                                                                             "enum": ["desc", "asc"]}),
    _query("limit", "jobs per page", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
    _query("offset", "jobs skipped", {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0}),
]
JOB_ROW = {"type": "object", "required": ["jobID", "process", "status", "progress", "user", "created"],
           "properties": {"jobID": TEXT, "process": TEXT, "status": {"type": "string", "enum": STATUSES},
                          "progress": {"type": "integer"}, "user": TEXT, "group": TEXT, "priority": {"type": "integer"},
                          "created": {"type": "string", "format": "date-time"}, "started": NULLABLE_TIME,
                          "finished": NULLABLE_TIME, "message": TEXT, "tasks": {"type": "integer"},
                          "dismissRequested": {"type": "boolean"}}}
JOB_PAGE = {"type": "object", "required": ["jobs", "offset", "limit"], "properties": {
    "jobs": {"type": "array", "items": JOB_ROW}, "total": {"type": "integer", "nullable": True},
    "totalAtLeast": {"type": "integer", "nullable": True}, "offset": {"type": "integer"},
    "limit": {"type": "integer"}}}
REQUEST = {"type": "object", "required": ["id", "jobID", "action", "state"], "properties": {
    "id": {"type": "integer"}, "jobID": TEXT, "action": {"type": "string", "enum": [
        "retry_failed", "retry_job", "priority"]}, "value": {"type": "integer", "nullable": True},
    "requestedBy": TEXT, "created": NULLABLE_TIME, "handled": NULLABLE_TIME,
    "state": {"type": "string", "enum": ["pending", "done", "refused"]}, "outcome": TEXT}}
JOB_DETAIL = {"type": "object", "required": ["jobID", "status", "steps", "tasks", "requests"], "properties": {
    "jobID": TEXT, "status": {"type": "string", "enum": STATUSES}, "steps": {"type": "array", "items": {
        "type": "object"}}, "tasks": {"type": "array", "items": {"type": "object", "properties": {
            "runs": {"type": "array", "items": {"type": "object", "properties": {
                "attempt": TEXT, "history": {"type": "array", "items": {"type": "object"}}}}}}}},
    "inputs": {"type": "object"}, "outputs": {"type": "object"}, "usage": {"type": "object"},
    "requests": {"type": "array", "items": REQUEST}}}
LOG = {"type": "object", "required": ["attempt", "backend", "files", "errors"], "properties": {
    "attempt": TEXT, "backend": TEXT, "source": TEXT, "link": {"type": "string", "nullable": True},
    "files": {"type": "array", "items": {"type": "object", "required": ["name", "tail"], "properties": {
        "name": TEXT, "tail": TEXT, "size": {"type": "integer", "nullable": True}}}},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string", "nullable": True}, "error": TEXT}}}}}
LIMIT = {"type": "object", "required": ["kind", "value"], "properties": {
    "kind": {"type": "string", "enum": list(KINDS)}, "name": {"type": "string", "nullable": True},
    "value": {"type": "number"}, "updatedBy": TEXT, "updated": TEXT, "meaning": TEXT}}
LIMITS = {"type": "object", "required": ["live", "kinds"], "properties": {
    "live": {"type": "array", "items": LIMIT}, "kinds": {"type": "object"}}}
SWITCH = {"type": "object", "required": ["paused"], "properties": {
    "paused": {"type": "boolean"}, "reason": {"type": "string", "nullable": True, "maxLength": 500}}}
LIMIT_NAME = _path("name", "the user or the process", NAME)
VALUE = _body({"type": "object", "required": ["value"], "additionalProperties": False, "properties": {
    "value": {"type": "number", "minimum": 0, "maximum": 1e9,
              "description": "cpus (0: no cap) or a fair-share weight (above 0)"}}})


def _operation(operation_id: str, summary: str, responses: dict[str, Any], parameters: list | None = None,
               body: dict[str, Any] | None = None, tag: str = "Admin") -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary + " (operators)", "tags": [tag],
                                 "parameters": parameters or [], "responses": responses}
    if body is not None:
        operation["requestBody"] = body
    return operation


def admin_paths() -> dict[str, Any]:
    low, high = PRIORITY_RANGE
    accepted = {"202": {"description": "the request, for the dispatcher's next turn", "headers": {
        "Location": {"description": "where its outcome will be", "schema": TEXT}},
        "content": {"application/json": {"schema": REQUEST}}}}
    moved = {"303": {"description": "done: back to the page, with what was done", "headers": {
        "Location": {"description": "the page", "schema": TEXT}}}}
    return {
        "/admin/api/jobs": {"get": _operation(
            "adminListJobs", "a page of jobs, filtered and sorted, with how many match",
            {**_ok("the page", JOB_PAGE), **_problems(400, 401, 403)}, LISTING)},
        "/admin/api/jobs/{jobId}": {"get": _operation(
            "adminGetJob", "a job in full: steps, tasks, each attempt with its state history, inputs, outputs, "
            "cost, operators' requests", {**_ok("the job", JOB_DETAIL), **_problems(401, 403, 404)}, [JOB_ID])},
        "/admin/api/jobs/{jobId}/dismiss": {"post": _operation(
            "adminDismissJob", "dismiss a job (its tasks are killed)",
            {**_ok("the job", JOB_DETAIL), **_problems(401, 403, 404, 413, 415)}, [JOB_ID],
            _body({"type": "object", "additionalProperties": False}))},
        "/admin/api/jobs/{jobId}/retry": {"post": _operation(
            "adminRetryJob", "retry a failed job: its failed (and cancelled) tasks, or all of them",
            {**accepted, **_problems(400, 401, 403, 404, 409, 413, 415)}, [JOB_ID],
            _body({"type": "object", "additionalProperties": False, "properties": {
                "tasks": {"type": "string", "enum": ["failed", "all"], "default": "failed"}}}))},
        "/admin/api/jobs/{jobId}/priority": {"put": _operation(
            "adminSetPriority", "change a job's priority (its waiting tasks move too)",
            {**accepted, **_problems(400, 401, 403, 404, 413, 415)}, [JOB_ID],
            _body({"type": "object", "required": ["priority"], "additionalProperties": False, "properties": {
                "priority": {"type": "integer", "minimum": low, "maximum": high}}}))},
        "/admin/api/requests/{requestId}": {"get": _operation(
            "adminGetRequest", "an operator's request and its outcome",
            {**_ok("the request", REQUEST), **_problems(401, 403, 404)},
            [_path("requestId", "the request's number", {"type": "string", "pattern": "^[0-9]{1,18}$"})])},
        "/admin/api/attempts/{attemptId}/log": {"get": _operation(
            "adminGetAttemptLog", "the tail of a task attempt's stdout and stderr, wherever it ran",
            {**_ok("the tail", LOG), **_problems(400, 401, 403, 404)},
            [ATTEMPT_ID, _query("size", "bytes from the end of each file", {
                "type": "integer", "minimum": 1, "maximum": 1024 * 1024, "default": 65536})])},
        "/admin/api/cluster": {"get": _operation(
            "adminGetCluster", "the backend as the dispatcher last saw it, the queue, caps and the pause switch",
            {**_ok("the cluster", {"type": "object", "required": ["dispatcher", "limits", "tasks"]}),
             **_problems(401, 403)})},
        "/admin/api/limits": {"get": _operation(
            "adminGetLimits", "the caps and fair-share weights set live, and whether the backend applies each",
            {**_ok("the limits", LIMITS), **_problems(401, 403)})},
        "/admin/api/limits/{kind}": _limit_operations("", _path("kind", "a cap for everybody", {
            "type": "string", "enum": SCALAR_LIMITS})),
        "/admin/api/limits/{kind}/{name}": _limit_operations("Named", _path("kind", "a cap or weight of one user "
                                                                                    "or process", {
            "type": "string", "enum": NAMED_LIMITS}), LIMIT_NAME),
        "/admin/api/dispatching": {
            "get": _operation("adminGetDispatching", "whether dispatching is paused, and why",
                              {**_ok("the switch", SWITCH), **_problems(401, 403)}),
            "put": _operation("adminSetDispatching", "pause or resume launching tasks (queued work is kept)",
                              {**_ok("the switch", SWITCH), **_problems(400, 401, 403, 413, 415)},
                              body=_body({**SWITCH, "additionalProperties": False}))},
        "/metrics": {"get": _operation(
            "getMetrics", "Prometheus metrics: jobs, queues, durations, backend health",
            {"200": {"description": "the Prometheus text format", "content": {"text/plain": {"schema": TEXT}}},
             "401": {"description": "credentials needed", "content": {"application/json": {"schema": {}}}},
             "403": {"description": "the operator role needed", "content": {"application/json": {"schema": {}}}}},
            tag="Metrics")},
        **_console_paths(moved),
    }


def _limit_operations(suffix: str, *parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "put": _operation(f"adminSet{suffix}Limit", "set a cap or a weight, applied without a restart",
                          {**_ok("the limit", LIMIT), **_problems(400, 401, 403, 404, 413, 415)}, list(parameters),
                          VALUE),
        "delete": _operation(f"adminRemove{suffix}Limit", "give a cap or a weight its configured value back",
                             {"204": {"description": "removed"}, **_problems(401, 403, 404)}, list(parameters)),
    }


def _console_paths(moved: dict[str, Any]) -> dict[str, Any]:
    def page(operation_id: str, summary: str, parameters: list | None = None) -> dict[str, Any]:
        return {"get": _operation(operation_id, summary, {"200": {"description": "the page", "content": HTML_PAGE},
                                                          **_html_errors(400, 401, 403, 404)}, parameters,
                                  tag="Console")}

    def form(operation_id: str, summary: str, fields: dict[str, Any], parameters: list | None = None,
             required: list[str] | None = None) -> dict[str, Any]:
        return {"post": _operation(operation_id, summary, {**moved, **_html_errors(400, 401, 403, 404, 409)},
                                   parameters, _form(fields, required), tag="Console")}

    return {
        "/admin": page("consoleJobs", "the console: jobs, filtered, sorted and paged", LISTING),
        "/admin/jobs/{jobId}": page("consoleJob", "the console: one job, its workflow and attempts", [JOB_ID]),
        "/admin/jobs/{jobId}/dismiss": form("consoleDismiss", "the console's dismiss button", {}, [JOB_ID]),
        "/admin/jobs/{jobId}/retry": form("consoleRetry", "the console's retry buttons", {
            "tasks": {"type": "string", "enum": ["failed", "all"]}}, [JOB_ID]),
        "/admin/jobs/{jobId}/priority": form("consolePriority", "the console's priority form", {
            "priority": {"type": "integer"}}, [JOB_ID], ["priority"]),
        "/admin/attempts/{attemptId}/log": page("consoleLog", "the console: a task attempt's stdout and stderr",
                                                [ATTEMPT_ID]),
        "/admin/cluster": page("consoleCluster", "the console: backend, queue, caps and weights, the pause switch"),
        "/admin/cluster/limits": form("consoleLimits", "the console's caps and weights forms", {
            "op": {"type": "string", "enum": ["set", "unset"]}, "kind": {"type": "string", "enum": list(KINDS)},
            "name": TEXT, "value": TEXT}, required=["kind"]),
        "/admin/cluster/dispatching": form("consoleDispatching", "the console's pause and resume buttons", {
            "action": {"type": "string", "enum": ["pause", "resume"]}, "reason": TEXT}),
    }
