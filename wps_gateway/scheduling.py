"""Caps and fair-share weights an operator changes while the gateway runs, kept in the job store.

The settings (``[mesos] max_cpu``, ``user_max_cpu``, ``process_weights``,
``user_weights``, ``[yarn] max_cpu``) are what a backend starts with; a value
set here (console, ``/admin/api/limits``, ``wps-gateway caps set``) wins over
it until it is removed. The active dispatcher reads this table now and then
(``LiveLimits``) and pushes the whole set to its backend through
``Backend.set_limits`` whenever it changed: no restart, and every replica's
change reaches the one dispatcher that applies it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from sqlalchemy import delete, select

from mesos_backend import Backend, SchedulingLimits

from .store.db import Store
from .store.models import SchedulingLimit

# kind -> (what it limits, whether it names a user or a process, a cap (0 = none) or a weight (> 0))
KINDS: dict[str, tuple[str, str, str]] = {
    "max_cpu": ("cpus of all tasks together", "", "cap"),
    "user_max_cpu": ("cpus of one user's tasks, for every user", "", "cap"),
    "user_cpu": ("cpus of this user's tasks (over user_max_cpu)", "user", "cap"),
    "process_weight": ("fair-share weight of this process", "process", "weight"),
    "user_weight": ("fair-share weight of this user", "user", "weight"),
}
# The SchedulingLimits field each kind feeds (what Backend.limits_supported names).
FIELDS = {"max_cpu": "max_cpu", "user_max_cpu": "user_max_cpu", "user_cpu": "user_cpus",
          "process_weight": "process_weights", "user_weight": "user_weights"}
LOG = logging.getLogger(__name__)
MAX_VALUE = 1e9
CHECK_SECONDS = 1.0  # how often the dispatcher looks for changes


class LimitError(ValueError):
    """A limit that cannot be set: unknown kind, missing or superfluous name, value out of range."""


@dataclass(frozen=True)
class Limit:
    kind: str
    name: str
    value: float
    updated_by: str = ""
    updated: str = ""

    def as_json(self) -> dict:
        return {"kind": self.kind, "name": self.name or None, "value": self.value, "updatedBy": self.updated_by,
                "updated": self.updated, "meaning": KINDS[self.kind][0]}


def check(kind: str, name: str | None, value: object) -> tuple[str, float]:
    """The name and the value as stored, or LimitError saying what is wrong."""
    if kind not in KINDS:
        raise LimitError(f"unknown limit {kind!r}; known: {', '.join(KINDS)}")
    _, names, nature = KINDS[kind]
    name = name or ""
    if name != name.strip():
        raise LimitError("a name has no spaces around it")
    if names and not name:
        raise LimitError(f"{kind} needs the name of a {names}")
    if not names and name:
        raise LimitError(f"{kind} is one value for everybody: it takes no name")
    if len(name) > 128:
        raise LimitError("a name has at most 128 characters")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LimitError(f"the value of {kind} must be a number")
    number = float(value)
    if nature == "cap" and not 0 <= number <= MAX_VALUE:
        raise LimitError(f"{kind} is a number of cpus from 0 (no cap) to {MAX_VALUE:g}")
    if nature == "weight" and not 0 < number <= MAX_VALUE:
        raise LimitError(f"{kind} is a weight above 0 (1 is everybody's default)")
    return name, number


def set_limit(store: Store, kind: str, name: str | None, value: object, by: str = "") -> Limit:
    name, number = check(kind, name, value)
    with store.session() as session:
        row = session.get(SchedulingLimit, (kind, name))
        if row is None:
            session.add(SchedulingLimit(kind=kind, name=name, value=number, updated_by=by[:128]))
        else:
            row.value, row.updated_by = number, by[:128]
    return next(limit for limit in list_limits(store) if (limit.kind, limit.name) == (kind, name))


def remove_limit(store: Store, kind: str, name: str | None) -> None:
    """Back to the configured value; LookupError if nothing was set."""
    if kind not in KINDS:
        raise LimitError(f"unknown limit {kind!r}; known: {', '.join(KINDS)}")
    with store.session() as session:
        done = session.execute(delete(SchedulingLimit).where(SchedulingLimit.kind == kind,
                                                             SchedulingLimit.name == (name or "").strip()))
    if not done.rowcount:
        raise LookupError(f"no live {kind}{' for ' + name if name else ''} is set")


def list_limits(store: Store) -> list[Limit]:
    with store.sessions() as session:
        rows = session.scalars(select(SchedulingLimit).order_by(SchedulingLimit.kind, SchedulingLimit.name)).all()
    return [Limit(r.kind, r.name, r.value, r.updated_by, r.updated.isoformat()) for r in rows]


def limits_of(limits: list[Limit]) -> SchedulingLimits:
    """What ``Backend.set_limits`` takes (a cap of 0 stays 0: "no cap", over a configured one)."""
    scalars = {limit.kind: limit.value for limit in limits if not KINDS[limit.kind][1]}
    named: dict[str, dict[str, float]] = {"user_cpu": {}, "process_weight": {}, "user_weight": {}}
    for limit in limits:
        if limit.kind in named:
            named[limit.kind][limit.name] = limit.value
    return SchedulingLimits(max_cpu=scalars.get("max_cpu"), user_max_cpu=scalars.get("user_max_cpu"),
                            user_cpus=named["user_cpu"], process_weights=named["process_weight"],
                            user_weights=named["user_weight"])


def applied_by(backend_supports: frozenset[str] | list[str], kind: str) -> bool:
    """Whether a backend that supports these ``SchedulingLimits`` fields applies a limit of this kind."""
    return FIELDS[kind] in backend_supports


class LiveLimits:
    """The dispatcher's side: now and then, read the limits and hand the backend any change."""

    def __init__(self, store: Store, check_seconds: float = CHECK_SECONDS) -> None:
        self.store = store
        self.check_seconds = check_seconds
        self._checked = -math.inf
        self._applied: SchedulingLimits | None = None

    def apply(self, backend: Backend) -> None:
        """Called every turn; reads the store at most every ``check_seconds`` (a store error fails the turn)."""
        now = time.monotonic()
        if now - self._checked < self.check_seconds:
            return
        self._checked = now
        limits = limits_of(list_limits(self.store))
        if limits != self._applied:
            backend.set_limits(limits)
            if self._applied is not None or limits != SchedulingLimits():
                LOG.info("scheduling limits set by operators now in effect on the %s backend: %s", backend.name,
                         limits)
            self._applied = limits
