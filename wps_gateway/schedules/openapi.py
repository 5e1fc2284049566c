"""The operators' schedule routes (``api.py``) in the served OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def schedule_paths(errors: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """These routes in the OpenAPI document (``errors`` gives the shared error responses)."""
    schedule = {"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "process": {"type": "string"},
        "inputs": {"type": "object"}, "parallel": {"type": "integer"}, "every": {"type": "number"},
        "rounds": {"type": "integer", "nullable": True}, "round": {"type": "integer"},
        "state": {"type": "string", "enum": ["active", "paused", "finished"]},
        "roundStarted": {"type": "string", "nullable": True}, "nextRound": {"type": "string", "nullable": True},
        "user": {"type": "string"}, "lastError": {"type": "string"}, "created": {"type": "string"}}}
    new = {"type": "object", "required": ["process", "every"], "additionalProperties": False, "properties": {
        "process": {"type": "string", "description": "the process each job runs (batch: a task list)"},
        "inputs": {"type": "object", "description": "its inputs, as in an OGC API execute request"},
        "parallel": {"type": "integer", "minimum": 1, "description": "jobs per round"},
        "every": {"oneOf": [{"type": "number"}, {"type": "string"}],
                  "description": "seconds, or a duration (30s, 5m, 2h), from the end of a round to the next"},
        "rounds": {"type": "integer", "minimum": 1, "nullable": True, "description": "rounds in all; null: for ever"},
        "name": {"type": "string", "maxLength": 128}}}
    one = {"description": "the schedule", "content": {"application/json": {"schema": schedule}}}
    param = [{"name": "scheduleId", "in": "path", "required": True, "schema": {"type": "string"},
              "description": "its id or name"}]
    return {
        "/admin/api/schedules": {
            "get": {"operationId": "getSchedules", "summary": "schedules of repeated runs (operators)",
                    "tags": ["Admin"], "responses": {"200": {"description": "every schedule", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "schedules": {"type": "array", "items": schedule}}}}}}, **errors(401, 403)}},
            "post": {"operationId": "addSchedule", "summary": "make a schedule (operators)", "tags": ["Admin"],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": new}}},
                     "responses": {"201": {**one, "headers": {"Location": {"description": "the schedule",
                                                                           "schema": {"type": "string"}}}},
                                   **errors(400, 401, 403, 413, 415)}}},
        "/admin/api/schedules/{scheduleId}": {
            "get": {"operationId": "getSchedule", "summary": "a schedule (operators)", "tags": ["Admin"],
                    "parameters": param, "responses": {"200": one, **errors(401, 403, 404)}},
            "delete": {"operationId": "removeSchedule", "summary": "remove a schedule; its jobs go on (operators)",
                       "tags": ["Admin"], "parameters": param,
                       "responses": {"204": {"description": "removed"}, **errors(401, 403, 404)}}},
        **{f"/admin/api/schedules/{{scheduleId}}/{action}": {"post": {
            "operationId": f"{action}Schedule", "summary": text, "tags": ["Admin"], "parameters": param,
            "responses": {"200": one, **errors(400, 401, 403, 404)}}}
           for action, text in (("pause", "start no new round of a schedule (operators)"),
                                ("resume", "start a schedule's rounds again (operators)"))},
    }
