"""Mesos resource lists and offers (JSON) in the shapes placement works with."""

from __future__ import annotations

from typing import Any

from ..base import Resources
from .placement import Offer
from .taskinfo import scalar

SCALARS = ("cpus", "mem", "disk", "gpus")


def resources_of(items: list[dict[str, Any]]) -> Resources:
    """Sum of the scalar resources (cpus, mem, disk, gpus) in a Mesos resource list."""
    values = dict.fromkeys(SCALARS, 0.0)
    for item in items:
        if item.get("name") in values:
            values[item["name"]] += float((item.get("scalar") or {}).get("value", 0.0))
    return Resources(values["cpus"], values["mem"], values["disk"], int(values["gpus"]))


def resource_list(resources: Resources) -> list[dict[str, Any]]:
    """A Mesos resource list for the non-zero scalars of ``resources``."""
    values = (resources.cpus, resources.mem, resources.disk, resources.gpus)
    return [scalar(name, value) for name, value in zip(SCALARS, values, strict=True) if value > 0]


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
