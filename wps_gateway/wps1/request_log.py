"""PyWPS's request log (``[logging] database``), off unless set, and then written once per request.

Stock PyWPS writes a row in its ``requests`` table when a request arrives
and updates it as the answer is made: three statements and commits per
GetCapabilities. Here the job store is the record of what was run, so the log
is off by default; when ``[logging] database`` names a database, each WPS
1.0.0 GetCapabilities, DescribeProcess and Execute is one row in PyWPS's
table (same columns), inserted once with its outcome.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import datetime
from typing import Any

from pywps.dblog import ProcessInstance
from pywps.response.status import WPS_STATUS
from sqlalchemy import Engine, insert

from ..redaction import redact
from ..store.db import make_engine

LOG = logging.getLogger(__name__)


class RequestLog:
    """One row per request in PyWPS's request table at ``url`` (the table is made if it is missing)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def _ready(self) -> Engine:
        with self._lock:
            if self._engine is None:
                engine = make_engine(self.url)
                ProcessInstance.__table__.create(engine, checkfirst=True)
                self._engine = engine
            return self._engine

    def record(self, wps_request: Any, started: datetime, succeeded: bool, message: str = "") -> None:
        """Write the request's row; a log that cannot be written costs a warning, never the answer."""
        identifiers = getattr(wps_request, "identifiers", None)
        identifier = wps_request.identifier if wps_request.operation == "execute" else \
            ",".join(identifiers) if identifiers else None
        row = {"uuid": str(uuid.uuid1()), "pid": os.getpid(), "operation": wps_request.operation,
               "version": wps_request.version or "1.0.0", "time_start": started, "time_end": datetime.now(),
               "identifier": identifier, "message": message, "percent_done": 100,
               "status": WPS_STATUS.SUCCEEDED if succeeded else WPS_STATUS.FAILED}
        try:
            with self._ready().begin() as connection:
                connection.execute(insert(ProcessInstance.__table__), row)
        except Exception as exc:  # noqa: BLE001 - the log is a side record
            LOG.warning("PyWPS request log at %s not written: %s", redact(self.url), type(exc).__name__)
