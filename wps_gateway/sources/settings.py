"""``[sources]``: order systems the gateway pulls work units from, and how a unit becomes a job.

Each line of ``[sources]`` names one, ``NAME = base URL of its API``; its
other settings are in ``[source:NAME]`` (defaults below, shaped like the ESPA
order system's production API that espa-scheduler pulls from), and each can
be overridden by the environment variable ``SOURCE_<NAME>_<KEY>``.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ..setting_numbers import above_zero

SOURCE_DEFAULTS: dict[str, str] = {
    "process": "",  # the process each unit runs as (required)
    "inputs": "",  # INPUT=FIELD, ...: a job input from a unit field (dotted: options.include_sr)
    "key": "orderid, scene",  # the unit fields that identify it: a unit is never run twice
    "product_types": "",  # TYPE:WEIGHT, ...: asked for in turn by weight (landsat:3, modis:2, viirs:1)
    "request_count": "50",  # units asked for per request, at most (espa PRODUCT_REQUEST_COUNT)
    "max_jobs": "200",  # its jobs accepted or running at once, at most (espa PRODUCT_SCHEDULED_MAX)
    "poll_interval": "60",  # seconds between requests while there is capacity
    "units": "/products?record_limit={count}&product_types={product_type}",  # GET: a JSON array of units
    "switch": "/configuration/run_mesos_tasks",  # GET: {"run_mesos_tasks": "True"} runs; else paused; empty: none
    "status": "/update_status",  # POST: a unit's status (scheduled, complete)
    "error": "/set_product_error",  # POST: a unit's failure; empty: a status "error" instead
    "status_fields": "name=scene, orderid=orderid",  # BODY_FIELD=UNIT_FIELD in every post
    "location": "wps-gateway",  # processing_loc in every post
    "user": "",  # whom its jobs are for (quotas, accounting); empty: source:NAME
    "timeout": "10",  # seconds per request
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class SourceSettings:
    name: str
    url: str
    process: str
    inputs: dict[str, str] = field(default_factory=dict)  # input id -> unit field
    key: tuple[str, ...] = ("orderid", "scene")
    product_types: tuple[tuple[str, int], ...] = ()
    request_count: int = 50
    max_jobs: int = 200
    poll_interval: float = 60.0
    units: str = SOURCE_DEFAULTS["units"]
    switch: str = SOURCE_DEFAULTS["switch"]
    status: str = SOURCE_DEFAULTS["status"]
    error: str = SOURCE_DEFAULTS["error"]
    status_fields: dict[str, str] = field(default_factory=lambda: {"name": "scene", "orderid": "orderid"})
    location: str = "wps-gateway"
    user: str = ""
    timeout: float = 10.0

    def rotation(self) -> list[str]:
        """Product types in the order they are asked for: each as often as its weight (espa's frequencies)."""
        return [kind for kind, weight in self.product_types for _ in range(weight)] or [""]


def parse_sources(parser: configparser.ConfigParser, environ: dict[str, str] | os._Environ) -> list[SourceSettings]:
    """Every source the configuration names; ValueError for the first bad setting."""
    if not parser.has_section("sources"):
        return []
    sources = []
    for name, url in parser["sources"].items():
        if not _NAME.match(name):
            raise ValueError(f"[sources] {name}: a source name is letters, digits, '-' and '_'")
        section = f"source:{name}"
        raw = dict(SOURCE_DEFAULTS)
        if parser.has_section(section):
            raw.update(parser[section])
        prefix = f"SOURCE_{name.upper().replace('-', '_')}_"
        raw.update({key: environ[prefix + key.upper()] for key in SOURCE_DEFAULTS if prefix + key.upper() in environ})
        sources.append(_source(name, url.strip(), raw))
    return sources


def _source(name: str, url: str, raw: dict[str, str]) -> SourceSettings:
    where = f"[source:{name}]"
    if urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
        raise ValueError(f"[sources] {name}: {url!r} is not an http(s) URL")
    process = raw["process"].strip()
    if not process:
        raise ValueError(f"{where} process: the process each unit runs as is required")
    if process == "batch":
        raise ValueError(f"{where} process: a source cannot run task lists (their commands would come from the "
                         "order system)")
    key = tuple(k.strip() for k in raw["key"].split(",") if k.strip())
    if not key:
        raise ValueError(f"{where} key: name the unit fields that identify a unit")
    types = []
    for item in (i.strip() for i in raw["product_types"].split(",") if i.strip()):
        kind, _, weight = item.partition(":")
        if not kind.strip() or not weight.strip().isdigit() or int(weight) < 1:
            raise ValueError(f"{where} product_types: {item!r} is not TYPE:WEIGHT with a whole weight of 1 or more")
        types.append((kind.strip(), int(weight)))
    return SourceSettings(
        name=name, url=url.rstrip("/"), process=process, inputs=_pairs(raw["inputs"], f"{where} inputs"), key=key,
        product_types=tuple(types), request_count=_whole(raw["request_count"], f"{where} request_count"),
        max_jobs=_whole(raw["max_jobs"], f"{where} max_jobs"),
        poll_interval=_seconds(raw["poll_interval"], f"{where} poll_interval"), units=raw["units"].strip(),
        switch=raw["switch"].strip(), status=raw["status"].strip(), error=raw["error"].strip(),
        status_fields=_pairs(raw["status_fields"], f"{where} status_fields"), location=raw["location"].strip(),
        user=raw["user"].strip() or f"source:{name}", timeout=_seconds(raw["timeout"], f"{where} timeout"))


def _pairs(text: str, where: str) -> dict[str, str]:
    pairs = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise ValueError(f"{where}: {item!r} is not NAME=FIELD")
        pairs[name] = value
    return pairs


def _whole(text: str, where: str) -> int:
    return int(above_zero(text, int, where, "a whole number of 1 or more"))


def _seconds(text: str, where: str) -> float:
    return above_zero(text, float, where, "a positive number of seconds")
