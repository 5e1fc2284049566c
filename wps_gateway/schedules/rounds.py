"""Running schedules: rounds that neither a restart nor a dispatcher failover skips or doubles.

The active dispatcher runs this loop beside it (``runner.py``); a standby
does not. Each turn, for every schedule:

- a round under way (``round_started`` set) gets the jobs it should have and
  does not (ids derived from schedule, round and k: a job made before a
  crash is found, never made twice), and ends once all of them are final:
  ``next_at`` becomes the latest one's end plus ``every``;
- otherwise, if the schedule is active and ``next_at`` has come, the next
  round starts: ``round`` is raised by one conditional UPDATE (two loops
  cannot both start it), then its jobs are submitted as above.

Whatever the store says is the whole state: a new leader picks the
schedules up where the old one left them. A submission that is refused
(limits, quotas, inputs no longer valid) is noted in ``last_error`` and
tried again later; it never stops the loop or the dispatcher.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..auth.identity import OPERATOR, USER, Identity, IdentityRequired
from ..context import GatewayContext
from ..inputs import InputError
from ..limits import LimitExceeded
from ..store.db import Store
from ..store.models import Job, JobStatus, Schedule, utcnow
from ..streaks import FailureStreak
from .records import ACTIVE, FINISHED, ScheduleError, job_inputs

LOG = logging.getLogger(__name__)
ROUND_JOBS = uuid.UUID("5f1c0c2e-6a53-4c1e-9b8e-2f4a1d3c7e90")  # namespace of the jobs' ids
TURN_BACKOFF_MAX = 30.0  # between turns while the store keeps failing
IDLE_SECONDS = 1.0  # between turns while there is no schedule to run (a new one starts within this)


def round_job_ids(schedule_id: str, round_number: int, parallel: int) -> list[str]:
    """The ids of a round's jobs: the same for whoever computes them, whenever."""
    return [str(uuid.uuid5(ROUND_JOBS, f"{schedule_id}/{round_number}/{k}")) for k in range(parallel)]


class ScheduleRounds:
    """The loop; ``context`` gives the gateway context jobs are submitted through (made on first need)."""

    def __init__(self, store: Store, context: Callable[[], GatewayContext], interval: float,
                 retry: float = 2.0) -> None:
        self.store = store
        self._context = context
        self.interval = interval
        self.retry = retry  # seconds before a refused submission is tried again
        self.turns = 0  # tests wait for turns, not for time
        self._idle = True  # no schedule to run at the last turn: the next one may wait longer
        self._retry_at: dict[str, float] = {}  # schedule id -> monotonic time its refused submission is retried

    def run(self, stop: threading.Event) -> None:
        streak = FailureStreak(LOG, "schedules turn", self.interval, TURN_BACKOFF_MAX)
        while not stop.is_set():
            try:
                self.turn()
                streak.succeeded()
            except Exception as exc:  # the store is down, say: try again, never stop
                streak.failed(exc)
            self.turns += 1
            stop.wait(max(streak.delay, IDLE_SECONDS) if self._idle else streak.delay)

    def turn(self) -> None:
        """One read of every schedule not finished (not one per schedule), then each advanced as it was read:
        the writes are guarded, so a change made meanwhile (a pause, a deletion) is never overwritten."""
        with self.store.sessions() as session:
            schedules = list(session.scalars(select(Schedule).where(Schedule.state != FINISHED)))
        self._idle = not schedules
        for schedule in schedules:
            if self._retry_at.get(schedule.id, 0.0) <= time.monotonic():
                self._advance(schedule)

    def _advance(self, schedule: Schedule) -> None:
        if schedule.round_started is not None:
            self._round_under_way(schedule)
            return
        if schedule.state != ACTIVE or schedule.next_at is None or schedule.next_at > utcnow():
            return
        if schedule.rounds is not None and schedule.round >= schedule.rounds:
            self._update(schedule, state=FINISHED)
            return
        started = self._update(schedule, round=schedule.round + 1, round_started=utcnow(), next_at=None)
        if started:
            LOG.info("schedule %s: round %d starts (%d jobs of %s)", schedule.name or schedule.id, schedule.round + 1,
                     schedule.parallel, schedule.process_id)
            schedule.round, schedule.round_started = schedule.round + 1, utcnow()
            self._round_under_way(schedule)

    def _round_under_way(self, schedule: Schedule) -> None:
        ids = round_job_ids(schedule.id, schedule.round, schedule.parallel)
        with self.store.sessions() as session:
            jobs = {row.id: row for row in session.execute(select(Job.id, Job.status, Job.finished)
                                                           .where(Job.id.in_(ids)))}
        missing = [job_id for job_id in ids if job_id not in jobs]
        if missing:
            self._submit(schedule, missing)
            return
        if all(row.status in JobStatus.FINAL for row in jobs.values()):
            ended = max(row.finished or utcnow() for row in jobs.values())
            done = schedule.rounds is not None and schedule.round >= schedule.rounds
            self._update(schedule, round_started=None, next_at=ended + timedelta(seconds=schedule.every),
                         **({"state": FINISHED} if done else {}))
            LOG.info("schedule %s: round %d ended", schedule.name or schedule.id, schedule.round)

    def _submit(self, schedule: Schedule, job_ids: list[str]) -> None:
        identity = Identity(user=schedule.user or "schedule", group=schedule.group,
                            roles=frozenset({USER, OPERATOR}), authenticated=True)
        try:
            context = self._context()
            processor = context.processors().get(schedule.process_id)
            if processor is None:
                raise ScheduleError(f"no process {schedule.process_id!r} any more")
            for job_id in job_ids:
                checked, form = job_inputs(context, processor, schedule.inputs, identity)
                try:
                    context.submit(None, processor, checked, form, "schedule", identity=identity, job_id=job_id)
                except IntegrityError:
                    pass  # made already (a turn before a crash, or another loop a moment ago)
        except (ScheduleError, InputError, LimitExceeded, IdentityRequired) as exc:
            why = getattr(exc, "message", None) or str(exc)
            LOG.warning("schedule %s: round %d: a job was refused (%s); trying again in %g s",
                        schedule.name or schedule.id, schedule.round, why, self.retry)
            self._retry_at[schedule.id] = time.monotonic() + self.retry
            self._update(schedule, last_error=why[:2000], guard_round=False)
            return
        self._retry_at.pop(schedule.id, None)
        if schedule.last_error:
            self._update(schedule, last_error="", guard_round=False)

    def _update(self, schedule: Schedule, guard_round: bool = True, **values) -> bool:
        """Change a schedule only if it is as this turn read it (its state, its round, and whether one is under
        way)."""
        query = update(Schedule).where(Schedule.id == schedule.id)
        if guard_round:
            query = query.where(Schedule.state == schedule.state, Schedule.round == schedule.round,
                                Schedule.round_started.is_(None) if schedule.round_started is None
                                else Schedule.round_started.is_not(None))
        with self.store.session() as session:
            done = session.execute(query.values(**values).execution_options(synchronize_session=False))
        return bool(done.rowcount)
