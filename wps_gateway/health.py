"""``/health``: whether the job store answers and when the active dispatcher was last heard from.

The dispatcher renews its lease in the store at least every few seconds
(``Dispatcher.HEARTBEAT_SECONDS``), so any replica can tell whether some
dispatcher, here or in another process, is at work.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from .outages import store_unavailable
from .store.db import Store
from .store.models import DispatcherLease, utcnow

DISPATCHER_SILENT_AFTER = 30.0  # seconds without a lease renewal before the dispatcher counts as gone


def health_report(store: Store) -> dict[str, Any]:
    """``status`` is ``ok``, ``degraded`` (no dispatcher at work: jobs are accepted but do not run) or
    ``unavailable`` (the store cannot be reached: nothing can be accepted)."""
    began = time.monotonic()
    try:
        with store.sessions() as session:
            lease = session.scalar(select(DispatcherLease))
    except Exception as exc:
        if not store_unavailable(exc):
            raise
        return {"status": "unavailable", "store": {"status": "unreachable", "error": type(exc).__name__},
                "dispatcher": {"status": "unknown"}}
    store_part = {"status": "ok", "latency_ms": round((time.monotonic() - began) * 1000, 1)}
    if lease is None:
        dispatcher: dict[str, Any] = {"status": "never started"}
    else:
        age = max(0.0, (utcnow() - lease.renewed).total_seconds())
        dispatcher = {"status": "active" if age <= DISPATCHER_SILENT_AFTER else "silent", "holder": lease.holder,
                      "epoch": lease.epoch, "last_seen": lease.renewed.isoformat(), "seconds_since": round(age, 1)}
    status = "ok" if dispatcher["status"] == "active" else "degraded"
    return {"status": status, "store": store_part, "dispatcher": dispatcher}
