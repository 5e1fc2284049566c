"""Jobs for operators: ``/admin/api/jobs`` (a page, filtered and sorted), one job in full, a task attempt's
log, and the actions: dismiss, retry (the failed tasks or the whole job), change the priority.

Retries and priorities are requests the dispatcher carries out on its next
turn (``wps_gateway.control``): they answer 202 with the request, whose
outcome ``/admin/api/requests/{id}`` tells.
"""

from __future__ import annotations

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from .. import control
from ..jobs import JobNotFound
from ..ogcapi.problems import Problem, invalid_parameter, no_such_job
from ..tasklogs import DEFAULT_TAIL, attempt_log
from .http import Endpoints, json_body, json_response, not_found, operator
from .views import QueryError, attempt_row, job_detail, job_page, parse_job_query

MAX_TAIL = 1024 * 1024


class JobsApi(Endpoints):
    def rules(self) -> list[Rule]:
        return [
            Rule("/admin/api/jobs", endpoint=self.on_jobs, methods=["GET"]),
            Rule("/admin/api/jobs/<job_id>", endpoint=self.on_job, methods=["GET"]),
            Rule("/admin/api/jobs/<job_id>/dismiss", endpoint=self.on_dismiss, methods=["POST"]),
            Rule("/admin/api/jobs/<job_id>/retry", endpoint=self.on_retry, methods=["POST"]),
            Rule("/admin/api/jobs/<job_id>/priority", endpoint=self.on_priority, methods=["PUT"]),
            Rule("/admin/api/requests/<request_id>", endpoint=self.on_request, methods=["GET"]),
            Rule("/admin/api/attempts/<attempt_id>/log", endpoint=self.on_log, methods=["GET"]),
        ]

    def on_jobs(self, request: Request) -> Response:
        operator(request)
        try:
            query = parse_job_query(request.args.getlist)
        except QueryError as exc:
            raise invalid_parameter(str(exc), exc.parameter) from None
        return json_response(job_page(self.context.store, query))

    def on_job(self, request: Request, job_id: str) -> Response:
        operator(request)
        return json_response(self._detail(job_id))

    def _detail(self, job_id: str) -> dict:
        settings = self.context.settings
        try:
            return job_detail(self.context.store, job_id, settings.base_url, settings.billing_weights)
        except JobNotFound:
            raise no_such_job(job_id) from None

    def on_dismiss(self, request: Request, job_id: str) -> Response:
        operator(request)
        if json_body(request, self.context.settings.max_request_bytes) != {}:
            raise invalid_parameter("a dismissal says nothing more: its body is {}")
        try:
            self.context.dismiss_for(request, job_id)
        except JobNotFound:
            raise no_such_job(job_id) from None
        return json_response(self._detail(job_id))

    def on_retry(self, request: Request, job_id: str) -> Response:
        identity = operator(request)
        body = json_body(request, self.context.settings.max_request_bytes)
        which = body.get("tasks", "failed") if isinstance(body, dict) and not set(body) - {"tasks"} else None
        if which not in ("failed", "all"):
            raise invalid_parameter('a retry is {"tasks": "failed"} (the failed tasks, the default) or '
                                    '{"tasks": "all"} (the whole job)', "tasks")
        action = control.RETRY_FAILED if which == "failed" else control.RETRY_JOB
        return self._request(job_id, action, None, identity.user)

    def on_priority(self, request: Request, job_id: str) -> Response:
        identity = operator(request)
        body = json_body(request, self.context.settings.max_request_bytes)
        if not isinstance(body, dict) or set(body) != {"priority"}:
            raise invalid_parameter('a priority change is {"priority": <integer>}', "priority")
        return self._request(job_id, control.PRIORITY, body["priority"], identity.user)

    def _request(self, job_id: str, action: str, value: object, user: str) -> Response:
        try:
            document = control.request_action(self.context.store, job_id, action, value, by=user)
        except JobNotFound:
            raise no_such_job(job_id) from None
        except control.RequestRefused as exc:
            raise Problem(409, "Conflict", str(exc)) from None
        except ValueError as exc:
            raise invalid_parameter(str(exc)) from None
        self.context.notify_dispatcher()
        location = f"{self.context.settings.base_url}/admin/api/requests/{document['id']}"
        return json_response(document, 202, {"Location": location})

    def on_request(self, request: Request, request_id: str) -> Response:
        operator(request)
        try:
            if not request_id.isdigit() or len(request_id) > 18:
                raise LookupError(request_id)
            return json_response(control.get_request(self.context.store, int(request_id)))
        except LookupError:
            raise not_found(f"no request {request_id}") from None

    def on_log(self, request: Request, attempt_id: str) -> Response:
        operator(request)
        size = request.args.get("size", str(DEFAULT_TAIL))
        if not size.isdigit() or not 0 < int(size) <= MAX_TAIL:
            raise invalid_parameter(f"size is a number of bytes from 1 to {MAX_TAIL}", "size")
        try:
            attempt = attempt_row(self.context.store, attempt_id)
        except LookupError as exc:
            raise not_found(str(exc)) from None
        return json_response(attempt_log(self.context.settings, self.context.store, attempt, int(size)).as_json())
