"""Offer operations besides LAUNCH, as a Mesos master validates and applies them.

RESERVE makes unreserved resources of an offer dynamically reserved for the
offer's role, CREATE turns reserved disk into a persistent volume, DESTROY
and UNRESERVE undo them (``shared/reference/mesos-yarn-protocols.md`` §6.1,
Mesos's reservation and persistent-volume documentation). Each operation of
an ACCEPT is applied in order to what is left of its offers, so a RESERVE,
a CREATE and a LAUNCH that uses the new volume may come in one call.

A master drops an operation it finds invalid (the ones after it are still
applied; a task that needed its result then fails validation); when the
operation carries an ``id`` the framework is told with OPERATION_ERROR. A
valid one changes the agent's checkpointed resources, and with an ``id`` the
agent confirms it with a reliable OPERATION_FINISHED (carrying a uuid, resent
until ACKNOWLEDGE_OPERATION_STATUS).

Checked as the master checks (``src/master/validation.cpp``): RESERVE only
dynamically reserved resources, for the offer's role, by the framework's own
principal, never a volume; UNRESERVE only dynamic reservations, never a
volume (destroy it first); CREATE only persistent volumes (``persistence`` and
``volume``, read-write, no host path) on reserved disk, with an id unique per
role on the agent and the framework's principal; DESTROY only volumes the
agent has and no task uses. And each needs its resources in the offer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .resources import DYNAMIC, UNRESERVED, Bag, ResourceError, describe, from_json, is_dynamic, plain, volume_of

KINDS = ("RESERVE", "UNRESERVE", "CREATE", "DESTROY")
FIELDS = {"RESERVE": ("reserve", "resources"), "UNRESERVE": ("unreserve", "resources"),
          "CREATE": ("create", "volumes"), "DESTROY": ("destroy", "volumes")}


class OperationError(Exception):
    """The master drops the operation; the text is what OPERATION_ERROR says."""


@dataclass(frozen=True)
class Applied:
    """A valid operation: what the offer has left, what the agent now holds, what the operation made of its
    resources (``converted``), and the persistent volumes it made or removed."""

    available: Bag
    agent_total: Bag
    converted: Bag
    created: Bag  # persistent volumes made (CREATE) ...
    destroyed: Bag  # ... or removed (DESTROY)


def apply(operation: dict[str, Any], *, available: Bag, agent_total: Bag, agent_used: Bag, role: str,
          principal: str | None, refinement: bool) -> Applied:
    """Validate one operation against its offer and apply it; OperationError when the master drops it."""
    kind = operation.get("type", "")
    body_key, list_key = FIELDS[kind]
    try:
        resources = from_json((operation.get(body_key) or {}).get(list_key) or [], refinement)
    except ResourceError as exc:
        raise OperationError(f"Invalid resources: {exc}") from None
    if not resources:
        raise OperationError(f"Invalid {kind} Operation: no resources given")
    source, result = {"RESERVE": _reserve, "UNRESERVE": _unreserve, "CREATE": _create, "DESTROY": _destroy}[kind](
        resources, role=role, principal=principal, agent_total=agent_total, agent_used=agent_used)
    if not available.contains(source):
        raise OperationError(f"Invalid {kind} Operation: {describe(available)} does not contain {describe(source)}")
    return Applied(available - source + result, agent_total - source + result, result,
                   created=result.volumes() if kind == "CREATE" else Bag(),
                   destroyed=source.volumes() if kind == "DESTROY" else Bag())


def _reserve(resources: Bag, *, role: str, principal: str | None, **_: Any) -> tuple[Bag, Bag]:
    for key, _value in resources.items():
        if not is_dynamic(key):
            raise OperationError(f"Resource {describe(Bag.one(key, _value))} is not dynamically reserved")
        if principal is not None and key[2] != DYNAMIC + principal:
            given = key[2][len(DYNAMIC):]
            raise OperationError(
                f"A reserve operation was attempted by principal '{principal}', but there is a reserved resource "
                + (f"in the request with principal '{given}' set in `ReservationInfo`" if given else
                   "in the request with no principal set in `ReservationInfo`"))
        if volume_of(key) is not None:
            raise OperationError(f"A persistent volume {describe(Bag.one(key, _value))} must already be reserved")
        if key[1] != role:
            raise OperationError(f"Invalid RESERVE Operation: the reservation's role '{key[1]}' is not the role "
                                 f"'{role}' the offer was allocated to")
    return _unreserved(resources), resources


def _unreserve(resources: Bag, **_: Any) -> tuple[Bag, Bag]:
    for key, value in resources.items():
        if not is_dynamic(key):
            raise OperationError(f"Resource {describe(Bag.one(key, value))} is not dynamically reserved")
        if volume_of(key) is not None:
            raise OperationError(f"A dynamically reserved persistent volume {describe(Bag.one(key, value))} cannot "
                                 "be unreserved directly. Please destroy the persistent volume first then unreserve "
                                 "the resource")
    return resources, _unreserved(resources)


def _create(resources: Bag, *, principal: str | None, agent_total: Bag, **_: Any) -> tuple[Bag, Bag]:
    _persistent_volumes(resources)
    seen: set[tuple[str, str]] = set()
    for key, _value in [*agent_total.volumes().items(), *resources.items()]:
        info = volume_of(key)
        assert info is not None
        if (key[1], info.persistence_id) in seen:
            raise OperationError(f"Persistence ID '{info.persistence_id}' is not unique")
        seen.add((key[1], info.persistence_id))
    for key, _value in resources.items():
        info = volume_of(key)
        assert info is not None
        if principal is not None and info.principal != principal:
            raise OperationError(
                f"Create volume operation has been attempted by principal '{principal}', but there is a volume in "
                + (f"the operation with principal '{info.principal}' set in 'DiskInfo.Persistence'"
                   if info.principal else "the operation with no principal set in 'DiskInfo.Persistence'"))
    return _without_volumes(resources), resources


def _destroy(resources: Bag, *, agent_total: Bag, agent_used: Bag, **_: Any) -> tuple[Bag, Bag]:
    _persistent_volumes(resources)
    if not agent_total.contains(resources):
        raise OperationError("Persistent volumes not found")
    if any(agent_used.amount(key) for key, _value in resources.items()):
        raise OperationError("Persistent volumes in use")
    return resources, _without_volumes(resources)


def _persistent_volumes(resources: Bag) -> None:
    for key, value in resources.items():
        info = volume_of(key)
        if info is None:
            raise OperationError(f"Not a persistent volume: Resource {describe(Bag.one(key, value))} does not have "
                                 "DiskInfo")
        if info.mode == "RO":
            raise OperationError("Not a persistent volume: Read-only persistent volume not supported")


def _unreserved(resources: Bag) -> Bag:
    return sum((Bag.one(plain(key[0], UNRESERVED), value) for key, value in resources.items()), Bag())


def _without_volumes(resources: Bag) -> Bag:
    return sum((Bag.one((key[0], key[1], key[2], ""), value) for key, value in resources.items()), Bag())
