"""``[logging] format = json``: one JSON object per log line, with the request, job and task it is about.

Every request gets an id (the client's ``X-Request-Id`` if it is a sane
token, else a new one) that goes back in the response's ``X-Request-Id`` and
into every line logged while the request is handled. Job, task and attempt
ids are taken from what a line says (they have one shape: a job's UUID, then
``.<step>.<index>``, then ``.<attempt>``), unless the code logging it gave
them (``extra={"job_id": ...}``), so every existing line of the dispatcher
and the backends carries them. The redaction filter stays on every handler:
it runs before this formatter, which uses what it left.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
_IDS = re.compile(r"\b(?P<job>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
                  r"(?:\.(?P<step>[A-Za-z0-9_-]+)\.(?P<index>\d+)(?:\.(?P<attempt>\d+))?)?")
ACCESS = logging.getLogger("wps_gateway.access")
_PROCESS_ID = uuid.uuid4().hex[:16]
_COUNT = itertools.count()


def _new_process_id() -> None:
    global _PROCESS_ID
    _PROCESS_ID = uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_process_id)  # a forking server's workers count apart


def request_id(header: str | None) -> str:
    """The id of a request: the client's, if it is a plain token, else a new one (32 hex digits: this
    process's random half, then a count; no system call per request)."""
    if header and _SANE_ID.match(header):
        return header
    return f"{_PROCESS_ID}{next(_COUNT):016x}"


def ids_in(text: str) -> dict[str, str]:
    """``job_id``, ``task_id`` and ``attempt_id`` named by a log line (the first job it names)."""
    match = _IDS.search(text)
    if match is None:
        return {}
    found = {"job_id": match["job"]}
    if match["step"]:
        found["task_id"] = f"{match['job']}.{match['step']}.{match['index']}"
        if match["attempt"]:
            found["attempt_id"] = f"{found['task_id']}.{match['attempt']}"
    return found


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON: time (UTC), level, logger, message, and the ids it is about."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": message, "thread": record.threadName}
        found = ids_in(message)
        for key in ("request_id", "job_id", "task_id", "attempt_id"):
            value = getattr(record, key, None) or (REQUEST_ID.get() if key == "request_id" else found.get(key))
            if value:
                document[key] = value
        for key in ("method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                document[key] = getattr(record, key)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        return json.dumps(document, ensure_ascii=False, default=str)


def use_json(logger: logging.Logger | None = None) -> None:
    """Every handler of ``logger`` (default: the root logger) writes JSON lines; their filters stay."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())
