"""Schedules in the job store: made, listed, paused, resumed, removed (by the command line and operators' REST).

A schedule is checked when it is made as a job would be when submitted
(the process, its inputs, a task list), so that a schedule that could never
run is refused at once; ``every`` must be more than zero, ``parallel`` and
``rounds`` at least one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from processes.descriptor import Processor

from ..auth.identity import Identity, IdentityRequired
from ..batch import BATCH_PROCESS
from ..batch.submission import check_batch
from ..context import GatewayContext
from ..durations import DurationError, parse_duration
from ..inputs import CheckedInputs, InputError, check_inputs
from ..jobs import ResponseForm
from ..ogcapi.execute import parse_execute
from ..ogcapi.problems import Problem
from ..store.db import Store
from ..store.models import Schedule, utcnow

ACTIVE, PAUSED, FINISHED = "active", "paused", "finished"


class ScheduleError(ValueError):
    """A schedule the gateway refuses; the text says why."""


class ScheduleNotFound(LookupError):
    """No schedule has that id (or name)."""


@dataclass(frozen=True)
class NewSchedule:
    process: str
    inputs: dict[str, Any]
    parallel: int
    every: float  # seconds
    rounds: int | None = None
    name: str = ""


def new_schedule(process: Any, inputs: Any, parallel: Any, every: Any, rounds: Any = None,
                 name: Any = "") -> NewSchedule:
    """The values of a schedule, typed and checked; ScheduleError naming the first one wrong."""
    if not isinstance(process, str) or not process:
        raise ScheduleError("process: the id of a process is required")
    if not isinstance(inputs, dict):
        raise ScheduleError("inputs: an object of the process's inputs (as in an OGC API execute request) is "
                            "required")
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ScheduleError(f"parallel: jobs per round must be a whole number of 1 or more, not {parallel!r}")
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1):
        raise ScheduleError(f"rounds: must be a whole number of 1 or more (or left out: for ever), not {rounds!r}")
    if isinstance(every, bool) or not isinstance(every, int | float | str):
        raise ScheduleError(f"every: a duration (90, 30s, 5m, 2h) is required, not {every!r}")
    try:
        seconds = parse_duration(str(every), "every")
    except DurationError as exc:
        raise ScheduleError(str(exc)) from None
    if not isinstance(name, str) or len(name) > 128:
        raise ScheduleError("name: a string of at most 128 characters")
    return NewSchedule(process, inputs, parallel, seconds, rounds, name)


def job_inputs(context: GatewayContext, processor: Processor, inputs: dict[str, Any],
               identity: Identity) -> tuple[CheckedInputs, ResponseForm]:
    """A job's inputs from a schedule's, checked as an OGC API execution's; ScheduleError if refused."""
    try:
        request = parse_execute({"inputs": inputs}, processor, asynchronous=True)
        checked = check_inputs(processor, request.inputs, context.address_policy)
        if processor.id == BATCH_PROCESS:
            check_batch(identity, checked, context.settings)
    except Problem as exc:
        raise ScheduleError(f"inputs: {exc.detail}") from None
    except InputError as exc:
        raise ScheduleError(f"inputs: {exc.message}") from None
    except IdentityRequired as exc:
        raise ScheduleError(str(exc)) from None
    return checked, request.form


def add_schedule(context: GatewayContext, new: NewSchedule, identity: Identity) -> Schedule:
    processor = context.processors().get(new.process)
    if processor is None:
        raise ScheduleError(f"process: no process {new.process!r}; offered: {', '.join(sorted(context.processors()))}")
    job_inputs(context, processor, new.inputs, identity)
    schedule = Schedule(id=str(uuid.uuid4()), name=new.name, process_id=new.process, inputs=new.inputs,
                        parallel=new.parallel, every=new.every, rounds=new.rounds, round=0, state=ACTIVE,
                        next_at=utcnow(), user=identity.user, group=identity.group, last_error="")
    with context.store.session() as session:
        session.add(schedule)
    return schedule


def list_schedules(store: Store) -> list[Schedule]:
    with store.sessions() as session:
        return list(session.scalars(select(Schedule).order_by(Schedule.created)))


def find_schedule(store: Store, ref: str) -> Schedule:
    """By id, or by a name no other schedule has."""
    with store.sessions() as session:
        schedule = session.get(Schedule, ref)
        if schedule is None:
            named = list(session.scalars(select(Schedule).where(Schedule.name == ref)))
            if len(named) != 1:
                raise ScheduleNotFound(f"no schedule {ref!r}" if not named else
                                       f"{len(named)} schedules are named {ref!r}: give the id")
            schedule = named[0]
        return schedule


def set_state(store: Store, ref: str, state: str) -> Schedule:
    """Pause (no new round starts; the jobs of a round under way go on) or resume (the next round starts as
    soon as it is due)."""
    schedule_id = find_schedule(store, ref).id
    with store.session() as session:
        schedule = session.get(Schedule, schedule_id)
        if schedule is None:
            raise ScheduleNotFound(f"no schedule {ref!r}")
        if schedule.state == FINISHED:
            raise ScheduleError(f"schedule {ref!r} has run all its {schedule.rounds} rounds")
        schedule.state = state
        schedule.last_error = ""
    return schedule


def remove_schedule(store: Store, ref: str) -> None:
    """No round starts any more; jobs already submitted go on."""
    schedule_id = find_schedule(store, ref).id
    with store.session() as session:
        schedule = session.get(Schedule, schedule_id)
        if schedule is not None:
            session.delete(schedule)


def as_json(schedule: Schedule) -> dict[str, Any]:
    def when(value):
        return value.isoformat() if value is not None else None

    return {"id": schedule.id, "name": schedule.name, "process": schedule.process_id,
            "inputs": masked(schedule.inputs),
            "parallel": schedule.parallel, "every": schedule.every, "rounds": schedule.rounds,
            "round": schedule.round, "state": schedule.state, "roundStarted": when(schedule.round_started),
            "nextRound": when(schedule.next_at) if schedule.round_started is None else None,
            "user": schedule.user, "lastError": schedule.last_error, "created": when(schedule.created)}


def masked(value: Any) -> Any:
    """Inputs as operators are shown them: the values of a task list's environment variables (credentials,
    often) are not."""
    if isinstance(value, list):
        return [masked(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: masked(item) for key, item in value.items()}
    if isinstance(out.get("environment"), dict) and isinstance(out["environment"].get("variables"), list):
        out["environment"] = {**out["environment"], "variables": [
            {**v, "value": "***"} if isinstance(v, dict) and "value" in v else v
            for v in out["environment"]["variables"]]}
    return out


def describe(schedule: Schedule) -> str:
    """One line for ``wps-gateway schedule list``."""
    rounds = f"{schedule.round}/{schedule.rounds}" if schedule.rounds else f"{schedule.round}/-"
    if schedule.round_started is not None:
        when = f"round {schedule.round} under way since {schedule.round_started:%Y-%m-%d %H:%M:%S} UTC"
    elif schedule.state == ACTIVE and schedule.next_at is not None:
        when = f"next round at {schedule.next_at:%Y-%m-%d %H:%M:%S} UTC"
    else:
        when = ""
    every = timedelta(seconds=schedule.every)
    text = (f"{schedule.id}  {schedule.name or '-':<16} {schedule.state:<8} {schedule.process_id:<18} "
            f"x{schedule.parallel} every {every}  rounds {rounds}  {when}")
    return text + (f"  last error: {schedule.last_error}" if schedule.last_error else "")
