"""Scalar resources as a Mesos master counts them: by name and by the role they are reserved for.

``cpus:4;mem:8192;cpus(wps):2`` is an agent with 6 cpus, two of them statically
reserved for the role ``wps``. Unreserved resources belong to ``*``. A framework
of role ``wps`` is offered both kinds; a task must name exactly the kind it was
offered (``"role": "wps"``), or the master refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

SCALARS = ("cpus", "mem", "disk", "gpus")
UNRESERVED = "*"
_ITEM = re.compile(r"^\s*([a-z_]+)(?:\(([^()]+)\))?\s*:\s*([0-9.]+)\s*$")
_EPS = 1e-6


class ResourceError(ValueError):
    """A resource description the master refuses."""


class Bag:
    """Scalar amounts keyed by (name, role); immutable. Amounts keep 3 decimals, as Mesos's fixed point."""

    __slots__ = ("_amounts",)

    def __init__(self, amounts: dict[tuple[str, str], float] | None = None) -> None:
        self._amounts = {key: round(value, 3) for key, value in (amounts or {}).items() if value > _EPS}

    @classmethod
    def parse(cls, text: str) -> Bag:
        """Mesos's ``--resources`` syntax for scalars: ``name[(role)]:value;...``."""
        amounts: dict[tuple[str, str], float] = {}
        for item in filter(str.strip, text.split(";")):
            match = _ITEM.match(item)
            if match is None:
                raise ResourceError(f"expected name[(role)]:value, got {item.strip()!r}")
            name, role, value = match.group(1), match.group(2) or UNRESERVED, float(match.group(3))
            amounts[(name, role)] = amounts.get((name, role), 0.0) + value
        return cls(amounts)

    @classmethod
    def of(cls, cpus: float = 0.0, mem: float = 0.0, disk: float = 0.0, gpus: float = 0.0,
           role: str = UNRESERVED) -> Bag:
        return cls({(name, role): value for name, value in zip(SCALARS, (cpus, mem, disk, gpus), strict=True)})

    def items(self) -> Iterator[tuple[tuple[str, str], float]]:
        return iter(sorted(self._amounts.items()))

    def total(self, name: str) -> float:
        return sum(value for (key, _), value in self._amounts.items() if key == name)

    def roles(self) -> set[str]:
        return {role for _, role in self._amounts}

    def for_roles(self, roles: Iterable[str]) -> Bag:
        """What a framework of these roles may be offered: unreserved plus reserved for them."""
        allowed = {UNRESERVED, *roles}
        return Bag({key: value for key, value in self._amounts.items() if key[1] in allowed})

    def contains(self, other: Bag) -> bool:
        return all(self._amounts.get(key, 0.0) + _EPS >= value for key, value in other._amounts.items())

    def __add__(self, other: Bag) -> Bag:
        amounts = dict(self._amounts)
        for key, value in other._amounts.items():
            amounts[key] = amounts.get(key, 0.0) + value
        return Bag(amounts)

    def __sub__(self, other: Bag) -> Bag:
        amounts = dict(self._amounts)
        for key, value in other._amounts.items():
            amounts[key] = amounts.get(key, 0.0) - value
        return Bag(amounts)

    def __bool__(self) -> bool:
        return bool(self._amounts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bag) and self._amounts == other._amounts

    def __hash__(self) -> int:
        return hash(frozenset(self._amounts.items()))

    def __repr__(self) -> str:
        return f"Bag({describe(self)!r})"


def describe(bag: Bag) -> str:
    """``cpus:2; cpus(wps):1; mem:512``, as Mesos writes resources in its messages."""
    return "; ".join(f"{name}{'' if role == UNRESERVED else f'({role})'}:{value:g}" for (name, role), value in
                     bag.items()) or "{}"


def to_json(bag: Bag, refinement: bool, allocation_role: str | None) -> list[dict[str, Any]]:
    """An offer's resource list: ``role`` (pre-refinement) or ``reservations`` (RESERVATION_REFINEMENT),
    ``allocation_info`` for MULTI_ROLE frameworks only."""
    items = []
    for (name, role), value in bag.items():
        item: dict[str, Any] = {"name": name, "type": "SCALAR", "scalar": {"value": value}}
        if refinement:
            if role != UNRESERVED:
                item["reservations"] = [{"type": "STATIC", "role": role}]
        else:
            item["role"] = role
        if allocation_role is not None:
            item["allocation_info"] = {"role": allocation_role}
        items.append(item)
    return items


def from_json(items: list[dict[str, Any]], refinement: bool) -> Bag:
    """A task's resource list; ResourceError for what the master refuses (shape, type, negative values)."""
    amounts: dict[tuple[str, str], float] = {}
    for item in items:
        name = item.get("name", "")
        if item.get("type") != "SCALAR":
            if name in SCALARS:
                raise ResourceError(f"Invalid resource '{name}': expecting a SCALAR")
            raise ResourceError(f"Resource '{name}' of type {item.get('type')} is not offered by this master")
        value = float((item.get("scalar") or {}).get("value", 0.0))
        if value < 0 or value != value:
            raise ResourceError(f"Invalid resource '{name}': negative or NaN value")
        if name not in SCALARS:
            raise ResourceError(f"Resource '{name}' is not offered by this master")
        role = _role_of(item, refinement)
        amounts[(name, role)] = amounts.get((name, role), 0.0) + value
    return Bag(amounts)


def _role_of(item: dict[str, Any], refinement: bool) -> str:
    reservations = item.get("reservations") or []
    if refinement:
        if "role" in item or "reservation" in item:
            raise ResourceError("Resources must use 'reservations', not 'role' or 'reservation', "
                                "when the framework is RESERVATION_REFINEMENT capable")
        return reservations[-1].get("role", UNRESERVED) if reservations else UNRESERVED
    if reservations:
        raise ResourceError("Resources with refined reservations require the RESERVATION_REFINEMENT capability")
    return item.get("role") or UNRESERVED
