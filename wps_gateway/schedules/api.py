"""Operators' REST for schedules, under ``/admin/api/schedules`` (operator role), the same as ``wps-gateway schedule``.

``GET`` lists them, ``POST`` makes one (``{"process", "inputs", "parallel",
"every", "rounds", "name"}``: 201 with ``Location``), ``GET`` and ``DELETE
/admin/api/schedules/{scheduleId}`` read and remove one, ``POST .../pause`` and
``.../resume`` stop and restart its rounds. A refused schedule is a 400
problem document saying why; the jobs are submitted for the operator who
made the schedule.
"""

from __future__ import annotations

import json

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..auth.identity import OPERATOR, require
from ..context import GatewayContext
from ..ogcapi.execute import read_json_body
from ..ogcapi.problems import Problem, invalid_parameter
from .records import (
    ACTIVE,
    PAUSED,
    ScheduleError,
    ScheduleNotFound,
    add_schedule,
    as_json,
    find_schedule,
    list_schedules,
    new_schedule,
    remove_schedule,
    set_state,
)

FIELDS = {"process", "inputs", "parallel", "every", "rounds", "name"}


class ScheduleApi:
    def __init__(self, context: GatewayContext) -> None:
        self.context = context

    def rules(self) -> list[Rule]:
        return [
            Rule("/admin/api/schedules", endpoint=self.on_schedules, methods=["GET", "POST"]),
            Rule("/admin/api/schedules/<schedule_id>", endpoint=self.on_schedule, methods=["GET", "DELETE"]),
            Rule("/admin/api/schedules/<schedule_id>/pause", endpoint=self.on_pause, methods=["POST"]),
            Rule("/admin/api/schedules/<schedule_id>/resume", endpoint=self.on_resume, methods=["POST"]),
        ]

    def on_schedules(self, request: Request) -> Response:
        identity = require(request, OPERATOR)
        if request.method == "GET":
            return _json({"schedules": [as_json(s) for s in list_schedules(self.context.store)]})
        body = read_json_body(request, self.context.settings.max_request_bytes)
        if not isinstance(body, dict) or set(body) - FIELDS:
            raise invalid_parameter(f"a schedule is an object with {', '.join(sorted(FIELDS))}")
        try:
            new = new_schedule(body.get("process"), body.get("inputs", {}), body.get("parallel", 1),
                               body.get("every"), body.get("rounds"), body.get("name", ""))
            schedule = add_schedule(self.context, new, identity)
        except ScheduleError as exc:
            raise invalid_parameter(str(exc), str(exc).split(":", 1)[0]) from None
        response = _json(as_json(schedule), 201)
        response.headers["Location"] = f"{self.context.settings.base_url}/admin/api/schedules/{schedule.id}"
        return response

    def on_schedule(self, request: Request, schedule_id: str) -> Response:
        require(request, OPERATOR)
        try:
            if request.method == "DELETE":
                remove_schedule(self.context.store, schedule_id)
                return Response(status=204)
            return _json(as_json(find_schedule(self.context.store, schedule_id)))
        except ScheduleNotFound as exc:
            raise Problem(404, "Not found", str(exc)) from None

    def on_pause(self, request: Request, schedule_id: str) -> Response:
        return self._set_state(request, schedule_id, PAUSED)

    def on_resume(self, request: Request, schedule_id: str) -> Response:
        return self._set_state(request, schedule_id, ACTIVE)

    def _set_state(self, request: Request, schedule_id: str, state: str) -> Response:
        require(request, OPERATOR)
        try:
            schedule = set_state(self.context.store, schedule_id, state)
        except ScheduleNotFound as exc:
            raise Problem(404, "Not found", str(exc)) from None
        except ScheduleError as exc:
            raise invalid_parameter(str(exc), "scheduleId") from None
        return _json(as_json(schedule))


def _json(doc: dict, status: int = 200) -> Response:
    return Response(json.dumps(doc, indent=2), status, content_type="application/json")
