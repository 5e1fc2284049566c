"""The console's routes: pages to read (GET) and forms that act (POST, with a CSRF token), operators only.

Every form posts to its own URL and is answered with a redirect (303) to the
page it came from, with a line saying what was done: the back button and a
reload never repeat an action. Everything a form does goes through the same
functions as ``/admin/api`` and ``wps-gateway``.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote, urlencode

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from .. import control, scheduling
from ..admin.http import operator
from ..admin.views import QueryError, attempt_row, cluster_view, job_detail, job_page, parse_job_query
from ..auth.identity import IdentityRequired
from ..context import GatewayContext
from ..jobs import JobNotFound
from ..ogcapi.problems import Problem
from ..switches import DispatchSwitch
from ..tasklogs import attempt_log
from . import render
from .csrf import FIELD, CsrfTokens

HTML = "text/html; charset=utf-8"


class Console:
    def __init__(self, context: GatewayContext) -> None:
        self.context = context
        self.tokens = CsrfTokens(context.store)

    def rules(self) -> list[Rule]:
        return [
            Rule("/admin", endpoint=self.on_jobs, methods=["GET"]),
            Rule("/admin/jobs/<job_id>", endpoint=self.on_job, methods=["GET"]),
            *(Rule(f"/admin/jobs/<job_id>/{action}", endpoint=self.on_job_action, methods=["POST"],
                   defaults={"action": action}) for action in ("dismiss", "retry", "priority")),
            Rule("/admin/attempts/<attempt_id>/log", endpoint=self.on_log, methods=["GET"]),
            Rule("/admin/cluster", endpoint=self.on_cluster, methods=["GET"]),
            *(Rule(f"/admin/cluster/{part}", endpoint=self.on_cluster_action, methods=["POST"],
                   defaults={"part": part}) for part in ("limits", "dispatching")),
        ]

    @property
    def base(self) -> str:
        return self.context.settings.base_url

    @property
    def refresh(self) -> float:
        return self.context.settings.console.refresh

    # -- pages ------------------------------------------------------------------

    def on_jobs(self, request: Request) -> Response:
        def build(user: str) -> str:
            query = parse_job_query(request.args.getlist)
            page = job_page(self.context.store, query)
            return render.jobs_page(self.base, page, query.given, sorted(self.context.processors()), user,
                                    self.refresh)
        return self._page(request, build)

    def on_job(self, request: Request, job_id: str) -> Response:
        def build(user: str) -> str:
            settings = self.context.settings
            job = job_detail(self.context.store, job_id, self.base, settings.billing_weights)
            return render.job_page(self.base, job, self.tokens.issue(user), user, self.refresh,
                                   request.args.get("done", "")[:300])
        return self._page(request, build)

    def on_log(self, request: Request, attempt_id: str) -> Response:
        def build(user: str) -> str:
            attempt = attempt_row(self.context.store, attempt_id)
            settings = self.context.settings
            log = attempt_log(settings, self.context.store, attempt, settings.console.log_tail)
            return render.log_page(self.base, log.as_json(), attempt.task_id.split(".", 1)[0], user)  # <job>.<step>.<i>
        return self._page(request, build)

    def on_cluster(self, request: Request) -> Response:
        def build(user: str) -> str:
            return render.cluster_page(self.base, cluster_view(self.context.store), self.tokens.issue(user), user,
                                       self.refresh, request.args.get("done", "")[:300])
        return self._page(request, build)

    # -- forms ------------------------------------------------------------------

    def on_job_action(self, request: Request, job_id: str, action: str) -> Response:
        def act(user: str) -> str:
            if action == "dismiss":
                self.context.dismiss_for(request, job_id)
                return "Dismissal requested: the dispatcher kills the job's tasks"
            if action == "retry":
                which = request.form.get("tasks", "failed")
                kind = control.RETRY_JOB if which == "all" else control.RETRY_FAILED
                document = control.request_action(self.context.store, job_id, kind, by=user)
            else:
                document = control.request_action(self.context.store, job_id, control.PRIORITY,
                                                  _integer(request.form.get("priority", "")), by=user)
            return f"Request {document['id']} ({document['action']}) is with the dispatcher"
        return self._form(request, act, f"/admin/jobs/{quote(job_id)}")

    def on_cluster_action(self, request: Request, part: str) -> Response:
        def act(user: str) -> str:
            form = request.form
            if part == "dispatching":
                switch = DispatchSwitch(self.context.store)
                if form.get("action") == "resume":
                    switch.resume()
                    return "Dispatching resumed"
                switch.pause((form.get("reason") or f"paused by {user} in the console")[:500])
                return "Dispatching paused: queued tasks wait, running ones carry on"
            kind, name = form.get("kind", ""), form.get("name", "").strip() or None
            if form.get("op") == "unset":
                scheduling.remove_limit(self.context.store, kind, name)
                return f"{kind}{' of ' + name if name else ''} is as configured again"
            limit = scheduling.set_limit(self.context.store, kind, name, _number(form.get("value", "")), by=user)
            return f"{kind}{' of ' + name if name else ''} set to {limit.value:g}"
        return self._form(request, act, "/admin/cluster")

    # -- the common parts ----------------------------------------------------------

    def _page(self, request: Request, build: Callable[[str], str]) -> Response:
        try:
            user = operator(request).user
            response = Response(build(user), content_type=HTML)
            response.headers["Cache-Control"] = "no-store"
            return response
        except (IdentityRequired, Problem, QueryError, LookupError) as exc:
            return self._error(exc)

    def _form(self, request: Request, act: Callable[[str], str], back: str) -> Response:
        """Check the role and the token, act, and send the browser back where it came from with what was done."""
        try:
            user = operator(request).user
            if not self.tokens.valid(user, request.form.get(FIELD)):
                raise Problem(403, "Forbidden", "the form is stale or was not sent from the console: reload the page "
                                                "and try again")
            done = act(user)
        except (IdentityRequired, Problem, LookupError, ValueError) as exc:
            return self._error(exc)
        self.context.notify_dispatcher()
        return Response(status=303, headers={"Location": f"{self.base}{back}?{urlencode({'done': done})}"})

    def _error(self, exc: Exception) -> Response:
        """The error as an HTML page with its status (and a 401's challenge)."""
        headers: dict[str, str] = {}
        if isinstance(exc, IdentityRequired):
            status, title = exc.status, "Unauthorized" if exc.status == 401 else "Forbidden"
            if exc.status == 401 and self.context.authenticator is not None:
                headers["WWW-Authenticate"] = self.context.authenticator.challenge
        elif isinstance(exc, HTTPException):
            status, title = exc.code or 500, getattr(exc, "title", exc.name)
            headers.update(getattr(exc, "extra_headers", {}))
        elif isinstance(exc, control.RequestRefused):
            status, title = 409, "Conflict"
        elif isinstance(exc, JobNotFound):
            status, title, exc = 404, "Not found", LookupError(f"no job {exc}")
        elif isinstance(exc, LookupError):
            status, title = 404, "Not found"
        else:  # a value a form or a query parameter cannot take
            status, title = 400, "Bad request"
        detail = getattr(exc, "detail", None) or getattr(exc, "description", None) or str(exc)
        return self.error(status, title, detail, headers)

    @staticmethod
    def owns(path: str) -> bool:
        """Whether ``path`` is one of the console's pages (its errors are pages too)."""
        return path == "/admin" or path.startswith("/admin/") and not path.startswith("/admin/api/")

    def error(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
        """An error as an HTML page with its status."""
        return Response(render.error_page(self.base, status, title, detail), status, headers=headers or {},
                        content_type=HTML)


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"a priority is a whole number, not {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"a limit's value is a number, not {text!r}") from None
