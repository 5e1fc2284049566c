"""Scalar resources as a Mesos master counts them: by name, role, reservation and persistent volume.

``cpus:4;mem:8192;cpus(wps):2`` is an agent with 6 cpus, two of them statically
reserved for the role ``wps``. Unreserved resources belong to ``*``. A framework
of role ``wps`` is offered both kinds; a task must name exactly the kind it was
offered (``"role": "wps"``), or the master refuses it.

Frameworks change an agent's resources with offer operations (``operations.py``):
RESERVE makes unreserved resources *dynamically* reserved for a role (with the
reserving principal, ``"reservation": {"principal": ...}``), CREATE turns
reserved disk into a persistent volume (``"disk": {"persistence": ..., "volume":
...}``), DESTROY and UNRESERVE undo them. Each kind is kept apart (a key is
name, role, reservation, volume), and a persistent volume is all or nothing: it
is offered, used and destroyed whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

SCALARS = ("cpus", "mem", "disk", "gpus")
UNRESERVED = "*"
_ITEM = re.compile(r"^\s*([a-z_]+)(?:\(([^()]+)\))?\s*:\s*([0-9.]+)\s*$")
_EPS = 1e-6
DYNAMIC = "dynamic:"  # a key's reservation: "" (unreserved or static) or DYNAMIC + the reserving principal

# (name, role, reservation, volume): volume is "" or the JSON of a persistent volume's DiskInfo
Key = tuple[str, str, str, str]


class ResourceError(ValueError):
    """A resource description the master refuses."""


@dataclass(frozen=True)
class VolumeInfo:
    """A persistent volume's identity as its ``DiskInfo`` gives it."""

    persistence_id: str
    principal: str | None
    container_path: str
    mode: str

    def key(self) -> str:
        return json.dumps([self.persistence_id, self.principal, self.container_path, self.mode])

    @classmethod
    def of(cls, key: str) -> VolumeInfo | None:
        return cls(*json.loads(key)) if key else None

    def disk_json(self) -> dict[str, Any]:
        persistence: dict[str, Any] = {"id": self.persistence_id}
        if self.principal is not None:
            persistence["principal"] = self.principal
        return {"persistence": persistence, "volume": {"container_path": self.container_path, "mode": self.mode}}


def plain(name: str, role: str = UNRESERVED) -> Key:
    """The key of unreserved or statically reserved resources."""
    return (name, role, "", "")


def is_dynamic(key: Key) -> bool:
    return key[2].startswith(DYNAMIC)


def volume_of(key: Key) -> VolumeInfo | None:
    return VolumeInfo.of(key[3])


class Bag:
    """Scalar amounts by key (name, role, reservation, volume); immutable. Amounts keep 3 decimals, as
    Mesos's fixed point."""

    __slots__ = ("_amounts",)

    def __init__(self, amounts: dict[Key, float] | None = None) -> None:
        self._amounts = {key: round(value, 3) for key, value in (amounts or {}).items() if value > _EPS}

    @classmethod
    def parse(cls, text: str) -> Bag:
        """Mesos's ``--resources`` syntax for scalars: ``name[(role)]:value;...``."""
        amounts: dict[Key, float] = {}
        for item in filter(str.strip, text.split(";")):
            match = _ITEM.match(item)
            if match is None:
                raise ResourceError(f"expected name[(role)]:value, got {item.strip()!r}")
            key, value = plain(match.group(1), match.group(2) or UNRESERVED), float(match.group(3))
            amounts[key] = amounts.get(key, 0.0) + value
        return cls(amounts)

    @classmethod
    def of(cls, cpus: float = 0.0, mem: float = 0.0, disk: float = 0.0, gpus: float = 0.0,
           role: str = UNRESERVED) -> Bag:
        return cls({plain(name, role): value for name, value in zip(SCALARS, (cpus, mem, disk, gpus), strict=True)})

    @classmethod
    def one(cls, key: Key, value: float) -> Bag:
        return cls({key: value})

    def items(self) -> Iterator[tuple[Key, float]]:
        return iter(sorted(self._amounts.items()))

    def amount(self, key: Key) -> float:
        return self._amounts.get(key, 0.0)

    def total(self, name: str) -> float:
        return sum(value for key, value in self._amounts.items() if key[0] == name)

    def roles(self) -> set[str]:
        return {key[1] for key in self._amounts}

    def volumes(self) -> Bag:
        """The persistent volumes among these resources."""
        return Bag({key: value for key, value in self._amounts.items() if key[3]})

    def for_roles(self, roles: Iterable[str]) -> Bag:
        """What a framework of these roles may be offered: unreserved plus reserved for them."""
        allowed = {UNRESERVED, *roles}
        return Bag({key: value for key, value in self._amounts.items() if key[1] in allowed})

    def contains(self, other: Bag) -> bool:
        """Whether ``other`` can be taken from these; a persistent volume only whole."""
        for key, value in other._amounts.items():
            have = self._amounts.get(key, 0.0)
            if have + _EPS < value or (key[3] and abs(have - value) > _EPS):
                return False
        return True

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
    return "; ".join(f"{_label(key)}:{value:g}" for key, value in bag.items()) or "{}"


def _label(key: Key) -> str:
    """``disk(wps, alice)[v1:data]``: Mesos's way of writing a reserved resource and its volume."""
    name, role, reservation, volume = key
    if role == UNRESERVED:
        return name
    principal = reservation[len(DYNAMIC):] if reservation else ""
    text = f"{name}({role}{', ' + principal if principal else ''})"
    info = VolumeInfo.of(volume)
    return text + (f"[{info.persistence_id}:{info.container_path}]" if info else "")


def to_json(bag: Bag, refinement: bool, allocation_role: str | None) -> list[dict[str, Any]]:
    """An offer's resource list: ``role`` (pre-refinement) or ``reservations`` (RESERVATION_REFINEMENT),
    ``allocation_info`` for MULTI_ROLE frameworks only."""
    items = []
    for (name, role, reservation, volume), value in bag.items():
        item: dict[str, Any] = {"name": name, "type": "SCALAR", "scalar": {"value": value}}
        dynamic = reservation.startswith(DYNAMIC)
        principal = reservation[len(DYNAMIC):] if dynamic else ""
        if refinement:
            if role != UNRESERVED:
                entry = {"type": "DYNAMIC" if dynamic else "STATIC", "role": role}
                item["reservations"] = [{**entry, "principal": principal} if principal else entry]
        else:
            item["role"] = role
            if dynamic:
                item["reservation"] = {"principal": principal} if principal else {}
        info = VolumeInfo.of(volume)
        if info is not None:
            item["disk"] = info.disk_json()
        if allocation_role is not None:
            item["allocation_info"] = {"role": allocation_role}
        items.append(item)
    return items


def from_json(items: list[dict[str, Any]], refinement: bool) -> Bag:
    """A task's (or an operation's) resource list; ResourceError for what the master refuses (shape, type,
    negative values, a DiskInfo that is not a persistent volume's)."""
    amounts: dict[Key, float] = {}
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
        role, reservation = _reservation_of(item, refinement)
        key = (name, role, reservation, _volume_of(item, name, role))
        amounts[key] = amounts.get(key, 0.0) + value
    return Bag(amounts)


def _reservation_of(item: dict[str, Any], refinement: bool) -> tuple[str, str]:
    """(role, reservation) of a resource in either format; a dynamic reservation keeps its principal."""
    reservations = item.get("reservations") or []
    if refinement:
        if "role" in item or "reservation" in item:
            raise ResourceError("Resources must use 'reservations', not 'role' or 'reservation', "
                                "when the framework is RESERVATION_REFINEMENT capable")
        if not reservations:
            return UNRESERVED, ""
        last = reservations[-1]
        dynamic = last.get("type") == "DYNAMIC"
        return last.get("role", UNRESERVED), DYNAMIC + (last.get("principal") or "") if dynamic else ""
    if reservations:
        raise ResourceError("Resources with refined reservations require the RESERVATION_REFINEMENT capability")
    role = item.get("role") or UNRESERVED
    if "reservation" not in item:
        return role, ""
    if role == UNRESERVED:
        raise ResourceError("Invalid resources: a dynamically reserved resource must name its role")
    return role, DYNAMIC + ((item.get("reservation") or {}).get("principal") or "")


def _volume_of(item: dict[str, Any], name: str, role: str) -> str:
    """The persistent volume a resource carries ("" for none); DiskInfo checks as the master's."""
    disk = item.get("disk")
    if disk is None:
        return ""
    if name != "disk":
        raise ResourceError(f"Invalid DiskInfo: DiskInfo is set on a '{name}' resource")
    persistence, volume = disk.get("persistence"), disk.get("volume")
    if persistence is None:
        if volume is not None:
            raise ResourceError("Invalid DiskInfo: Non-persistent volume not supported")
        if disk.get("source") is None:
            raise ResourceError("Invalid DiskInfo: DiskInfo is set but empty")
        raise ResourceError("Invalid DiskInfo: disk sources (MOUNT, PATH) are not offered by this master")
    if role == UNRESERVED:
        raise ResourceError("Invalid DiskInfo: Persistent volumes cannot be created from unreserved resources")
    if volume is None:
        raise ResourceError("Invalid DiskInfo: Expecting 'volume' to be set for persistent volume")
    if volume.get("host_path"):
        raise ResourceError("Invalid DiskInfo: Expecting 'host_path' to be unset for persistent volume")
    identifier = persistence.get("id", "")
    if any(c in identifier for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in identifier):
        raise ResourceError(f"Invalid DiskInfo: Persistence ID '{identifier}' contains invalid characters")
    return VolumeInfo(identifier, persistence.get("principal"), volume.get("container_path", ""),
                      volume.get("mode", "RW")).key()
