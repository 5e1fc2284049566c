"""The active dispatcher's view, published in the job store for every replica's console and ``/metrics``.

Every ``PUBLISH_SECONDS`` a thread beside the dispatcher writes one row
(``backend_state``, ``console``/``status``): the backend's own status
(capacity and use, its health, its machines), the dispatcher's metrics and
when it was written; and it folds the job-count changes (see
``job_counts``). So the dispatcher's figures reach the scrape whether it runs
in the serving process or as ``wps-gateway dispatch`` on another machine,
and a reader can tell from the row's age whether a dispatcher is at work.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from typing import Any

from ..store.backend_state import StoreBackendState
from ..store.db import Store
from ..store.models import utcnow
from ..streaks import FailureStreak
from .job_counts import fold_changes

LOG = logging.getLogger(__name__)
NAMESPACE, KEY = "console", "status"
PUBLISH_SECONDS = 5.0
STALE_SECONDS = 30.0  # a status older than this is from a dispatcher that is no longer at work
MAX_MACHINES = 500  # agents or nodes kept in the published status (the count says how many there are)


def read_status(store: Store) -> dict[str, Any] | None:
    """The last published status with its ``age`` in seconds and ``stale``, or None if none was ever written."""
    text = StoreBackendState(store, NAMESPACE).get(KEY)
    if not text:
        return None
    try:
        status = json.loads(text)
        age = max(0.0, (utcnow() - datetime.fromisoformat(status["published"])).total_seconds())
    except (ValueError, KeyError, TypeError):
        return None
    status["age"] = round(age, 1)
    status["stale"] = age > STALE_SECONDS
    return status


class StatusPublisher:
    """Runs beside the active dispatcher (``DispatcherRunner``) until its term ends."""

    def __init__(self, store: Store, dispatcher: Any, interval: float = PUBLISH_SECONDS) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.interval = interval

    def run(self, stop: threading.Event) -> None:
        streak = FailureStreak(LOG, "publishing the dispatcher's status", self.interval, 60.0)
        restored = False
        wait = 0.0
        while not stop.wait(wait):
            try:
                if not restored:
                    previous = read_status(self.store)
                    self.dispatcher.metrics.restore((previous or {}).get("metrics"))
                    restored = True
                self.publish()
                streak.succeeded()
            except Exception as exc:  # the store is down or full: try again later, never stop
                streak.failed(exc)
            wait = streak.delay if streak.count else self.interval

    def publish(self) -> None:
        fold_changes(self.store)
        StoreBackendState(self.store, NAMESPACE).put(KEY, json.dumps(self.status(), separators=(",", ":")))

    def status(self) -> dict[str, Any]:
        dispatcher = self.dispatcher
        backend = dispatcher.backend
        try:
            engine = backend.status()
        except Exception as exc:  # an engine that cannot say how it is: say that
            LOG.warning("the %s backend could not report its status: %s", backend.name, exc)
            engine = {"backend": backend.name, "error": f"{type(exc).__name__}: {exc}"}
        for machines in ("agents", "nodes"):
            if len(engine.get(machines) or []) > MAX_MACHINES:
                engine[f"{machines}_total"] = len(engine[machines])
                engine[machines] = engine[machines][:MAX_MACHINES]
        last_turn = dispatcher.last_turn
        leadership = dispatcher.leadership
        return {
            "published": utcnow().isoformat(),
            "backend": backend.name,
            "limits_supported": sorted(backend.limits_supported),
            "engine": engine,
            "dispatcher": {"holder": leadership.holder if leadership is not None else "",
                           "turns": dispatcher.turns,
                           "last_turn_age": round(time.monotonic() - last_turn, 2) if last_turn else None},
            "metrics": dispatcher.metrics.snapshot(),
        }
