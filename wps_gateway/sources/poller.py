"""Pulling work units from order systems: polled while there is capacity, never run twice nor lost.

The active dispatcher runs this loop beside it (``runner.py``); a standby
does not. For each source, every ``poll_interval`` seconds:

1. its switch is read: while the order system says not to run, nothing is
   asked for (jobs already made go on);
2. if fewer than ``max_jobs`` of its jobs are accepted or running, it is
   asked for at most that many units of the next product type in the
   weighted rotation (``landsat:3, modis:2, viirs:1``: three landsat
   requests, two modis, one viirs, again);
3. each unit becomes a job of ``process``, its inputs taken from unit fields
   (``inputs``), through the one submission path (limits, quotas). The
   job's id is derived from the unit's key, and the unit is recorded with
   it (``source_units``), so a unit handed out again is never run twice; a
   unit handed out and not yet recorded when the gateway stops is still
   unclaimed in the order system, which hands it out again: none is lost.

The order system is told what became of each unit (``scheduled`` once its
job is accepted, then ``complete`` or the error) from ``source_units``, an
outbox kept across restarts; each report is retried with backoff until the
API takes it. A source that cannot be reached or answers garbage is logged
and asked again later, its delay doubling up to 16 poll intervals; nothing
it answers stops this loop or the dispatcher.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..auth.identity import USER, Identity, IdentityRequired
from ..context import GatewayContext
from ..inputs import InputError, RawInput, check_inputs
from ..jobs import ResponseForm
from ..limits import LimitExceeded
from ..store.db import Store
from ..store.models import Job, JobStatus, SourceUnit, utcnow
from .client import OrderSystem, OrderSystemError, field_of
from .settings import SourceSettings

LOG = logging.getLogger(__name__)
SOURCE_JOBS = uuid.UUID("0b6f3f4e-2f0e-4c52-8d0a-7a3f6f2b9c11")  # namespace of the units' job ids
MAX_BACKOFF_INTERVALS = 16
REPORTS_PER_TURN = 100
ACCEPTED, SCHEDULED, ENDED, REPORTED = "accepted", "scheduled", "ended", "reported"


def unit_job_id(source: str, key: str) -> str:
    return str(uuid.uuid5(SOURCE_JOBS, f"{source}\0{key}"))


@dataclass
class _Progress:
    """What the loop remembers of a source between turns (nothing of it needs to survive a restart)."""

    rotation: list[str]
    turn: int = 0
    next_poll: float = 0.0
    failures: int = 0
    paused: bool = False


class SourcePoller:
    def __init__(self, store: Store, context: Callable[[], GatewayContext], sources: list[SourceSettings]) -> None:
        self.store = store
        self._context = context
        self.sources = sources
        self._progress = {s.name: _Progress(s.rotation()) for s in sources}
        self.turns = 0  # tests wait for turns, not for time
        self.tick = max(0.05, min([1.0, *(s.poll_interval for s in sources)]))

    def run(self, stop: threading.Event) -> None:
        with httpx.Client(follow_redirects=False) as http:
            while not stop.is_set():
                for source in self.sources:
                    try:
                        self.turn(source, http)
                    except Exception:  # the store is down, say: the next turn tries again
                        LOG.exception("source %s: turn failed", source.name)
                self.turns += 1
                stop.wait(self.tick)

    def turn(self, source: SourceSettings, http: httpx.Client) -> None:
        order = OrderSystem(source, http)
        self._report(source, order)
        progress = self._progress[source.name]
        if time.monotonic() >= progress.next_poll:
            self._pull(source, order, progress)

    # -- pulling ------------------------------------------------------------------

    def _pull(self, source: SourceSettings, order: OrderSystem, progress: _Progress) -> None:
        now = time.monotonic()
        try:
            running = order.running()
            if running != (not progress.paused):
                LOG.info("source %s: the order system says to %s", source.name, "run" if running else "stop")
                progress.paused = not running
            capacity = source.max_jobs - self._active(source) if running else 0
            units: list[dict[str, Any]] = []
            kind = ""
            if capacity > 0:
                kind = progress.rotation[progress.turn % len(progress.rotation)]
                progress.turn += 1
                units = order.units(kind, min(capacity, source.request_count))
        except OrderSystemError as exc:
            progress.failures += 1
            delay = source.poll_interval * min(2 ** progress.failures, MAX_BACKOFF_INTERVALS)
            LOG.warning("source %s: %s; asking again in %g s", source.name, exc, delay)
            progress.next_poll = now + delay
            return
        progress.failures = 0
        progress.next_poll = now + source.poll_interval
        for unit in units[:capacity]:
            if not self._take(source, unit, kind):
                break

    def _active(self, source: SourceSettings) -> int:
        with self.store.sessions() as session:
            return session.scalar(select(func.count()).select_from(SourceUnit).join(Job, Job.id == SourceUnit.job_id)
                                  .where(SourceUnit.source == source.name, Job.status.in_(JobStatus.ACTIVE))) or 0

    def _take(self, source: SourceSettings, unit: dict[str, Any], kind: str) -> bool:
        """Make a unit a job (or a refusal to report); False: take no more now (limits, a missing process)."""
        values = [field_of(unit, name) for name in source.key]
        if any(value is None or isinstance(value, dict | list) for value in values):
            LOG.warning("source %s: a unit without its key fields (%s) is skipped", source.name, ", ".join(source.key))
            return True
        key = "/".join(str(value) for value in values)[:255]
        with self.store.sessions() as session:
            if session.get(SourceUnit, (source.name, key)) is not None:
                return True  # ours already: its report tells the order system again
        context = self._context()
        processor = context.processors().get(source.process)
        if processor is None:
            LOG.error("source %s: there is no process %r; no unit is taken", source.name, source.process)
            return False
        job_id: str | None = unit_job_id(source.name, key)
        state, outcome, message = ACCEPTED, "", ""
        identity = Identity(user=source.user, roles=frozenset({USER}), authenticated=True)
        try:
            checked = check_inputs(processor, self._inputs(source, unit, processor), context.address_policy)
            context.submit(None, processor, checked, ResponseForm(asynchronous=True), "source", identity=identity,
                           job_id=job_id)
        except IntegrityError:
            pass  # submitted before a restart, recorded now
        except InputError as exc:
            job_id, state, outcome, message = None, ENDED, "error", f"refused: {exc.message}"
            LOG.warning("source %s: unit %s refused: %s", source.name, key, exc.message)
        except (LimitExceeded, IdentityRequired) as exc:
            LOG.warning("source %s: no more units now: %s", source.name, exc)
            return False
        try:
            with self.store.session() as session:
                session.add(SourceUnit(source=source.name, key=key, job_id=job_id, unit=unit, product_type=kind,
                                       state=state, outcome=outcome, message=message, attempts=0,
                                       next_attempt=utcnow()))
        except IntegrityError:
            pass
        LOG.info("source %s: unit %s %s", source.name, key, f"is job {job_id}" if job_id else "refused")
        return True

    @staticmethod
    def _inputs(source: SourceSettings, unit: dict[str, Any], processor) -> dict[str, list[RawInput]]:
        """A job's inputs from unit fields: references for complex inputs (inline JSON for objects), values for
        literals; a list is one value per item."""
        complex_inputs = {spec.id for spec in processor.inputs if spec.is_complex}
        raw: dict[str, list[RawInput]] = {}
        for name, path in source.inputs.items():
            value = field_of(unit, path)
            if value is None:
                continue
            items = value if isinstance(value, list) else [value]
            if name in complex_inputs:
                raw[name] = [RawInput(value=json.dumps(item)) if isinstance(item, dict) else RawInput(href=str(item))
                             for item in items]
            else:
                raw[name] = [RawInput(value=item) for item in items]
        return raw

    # -- telling the order system -----------------------------------------------------

    def _report(self, source: SourceSettings, order: OrderSystem) -> None:
        now = utcnow()
        with self.store.session() as session:
            ended = session.execute(select(SourceUnit.key, Job.status, Job.message)
                                    .join(Job, Job.id == SourceUnit.job_id)
                                    .where(SourceUnit.source == source.name,
                                           SourceUnit.state.in_((ACCEPTED, SCHEDULED)),
                                           Job.status.in_(JobStatus.FINAL))).all()
            for key, status, message in ended:
                session.execute(update(SourceUnit).where(SourceUnit.source == source.name, SourceUnit.key == key)
                                .values(state=ENDED, attempts=0, next_attempt=now,
                                        outcome="complete" if status == JobStatus.SUCCESSFUL else "error",
                                        message="" if status == JobStatus.SUCCESSFUL else f"{status}: {message}"))
            due = session.execute(select(SourceUnit.key, SourceUnit.state, SourceUnit.unit, SourceUnit.outcome,
                                         SourceUnit.message, SourceUnit.attempts)
                                  .where(SourceUnit.source == source.name, SourceUnit.state.in_((ACCEPTED, ENDED)),
                                         SourceUnit.next_attempt <= now)
                                  .order_by(SourceUnit.next_attempt).limit(REPORTS_PER_TURN)).all()
        for row in due:
            try:
                if row.state == ACCEPTED:
                    order.tell(row.unit, "scheduled")
                else:
                    order.tell(row.unit, row.outcome, row.message)
                values: dict[str, Any] = {"state": SCHEDULED if row.state == ACCEPTED else REPORTED, "attempts": 0}
            except OrderSystemError as exc:
                attempts = row.attempts + 1
                delay = source.poll_interval * min(2 ** attempts, MAX_BACKOFF_INTERVALS)
                LOG.warning("source %s: telling it about unit %s failed (%s); again in %g s", source.name, row.key,
                            exc, delay)
                values = {"attempts": attempts, "next_attempt": utcnow() + timedelta(seconds=delay)}
            with self.store.session() as session:
                session.execute(update(SourceUnit).where(SourceUnit.source == source.name, SourceUnit.key == row.key,
                                                         SourceUnit.state == row.state).values(**values))
