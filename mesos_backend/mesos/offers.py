"""Mesos resource lists and offers (JSON) in the shapes placement works with, and back.

Placement counts totals (``Resources``); a task's resource list must name
the kinds it was offered exactly (unreserved ``"role": "*"``, or reserved for
the framework's role), so ``OfferedResources`` carves each task's share out of
the offer's own items, reserved ones first.
"""

from __future__ import annotations

import copy
from typing import Any

from ..base import Resources
from .placement import Offer

SCALARS = ("cpus", "mem", "disk", "gpus")


def resources_of(items: list[dict[str, Any]]) -> Resources:
    """Sum of the scalar resources (cpus, mem, disk, gpus) in a Mesos resource list; persistent volumes are
    not counted (they go whole to the tasks that name them)."""
    values = dict.fromkeys(SCALARS, 0.0)
    for item in items:
        if item.get("name") in values and not is_volume(item):
            values[item["name"]] += float((item.get("scalar") or {}).get("value", 0.0))
    return Resources(values["cpus"], values["mem"], values["disk"], int(values["gpus"]))


class OfferedResources:
    """What is left of one offer's scalar resources, item by item as the master offered them."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        scalars = [copy.deepcopy(item) for item in items
                   if item.get("name") in SCALARS and item.get("scalar") and not is_volume(item)]
        # Reserved resources first: a framework should use what is set aside for its role before the rest.
        self._items = sorted(scalars, key=lambda item: not _reserved(item))

    def take(self, wanted: Resources) -> list[dict[str, Any]]:
        """The resource list of a task needing ``wanted`` (which placement checked fits the offer)."""
        taken: list[dict[str, Any]] = []
        for name, amount in zip(SCALARS, (wanted.cpus, wanted.mem, wanted.disk, wanted.gpus), strict=True):
            for item in (i for i in self._items if i["name"] == name):
                if amount <= 1e-9:
                    break
                available = float(item["scalar"]["value"])
                share = round(min(amount, available), 3) if name != "gpus" else min(amount, available)
                if share <= 0:
                    continue
                piece = {k: v for k, v in item.items() if k != "scalar"}
                piece["scalar"] = {"value": share}
                taken.append(piece)
                item["scalar"]["value"] = available - share
                amount -= share
        return taken


def is_volume(item: dict[str, Any]) -> bool:
    """A persistent volume (disk with ``disk.persistence``)."""
    return bool((item.get("disk") or {}).get("persistence"))


def _reserved(item: dict[str, Any]) -> bool:
    return item.get("role", "*") != "*" or bool(item.get("reservations"))


def attribute_text(attribute: dict[str, Any]) -> str:
    """An agent attribute's value as text: TEXT and SCALAR as is, SET comma-joined, RANGES as a-b."""
    kind = attribute.get("type")
    if kind == "SCALAR":
        return f"{float(attribute['scalar']['value']):g}"
    if kind == "SET":
        return ",".join(attribute.get("set", {}).get("item", []))
    if kind == "RANGES":
        return ",".join(f"{r['begin']}-{r['end']}" for r in attribute.get("ranges", {}).get("range", []))
    return str(attribute.get("text", {}).get("value", ""))


def parse_offer(offer: dict[str, Any]) -> Offer:
    return Offer(offer_id=offer["id"]["value"], agent_id=offer["agent_id"]["value"], hostname=offer["hostname"],
                 resources=resources_of(offer.get("resources", [])),
                 attributes={a["name"]: attribute_text(a) for a in offer.get("attributes", [])})
