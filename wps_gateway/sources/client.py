"""Talking to an order system's HTTP API: its run switch, the work units it hands out, the statuses it is told.

Every request has the source's timeout; every answer that is not what the
API should give (not 2xx, not JSON, not the expected shape) is an
``OrderSystemError`` whose text names the URL (redacted) and what was wrong,
never the whole answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from ..redaction import redact
from .settings import SourceSettings

TRUE = ("true", "yes", "on", "1")


class OrderSystemError(Exception):
    """The order system could not be asked, or answered something unusable."""


class OrderSystem:
    def __init__(self, source: SourceSettings, http: httpx.Client) -> None:
        self.source = source
        self.http = http

    def running(self) -> bool:
        """The order system's own switch (espa's ``run_mesos_tasks``): True unless it says to stop."""
        if not self.source.switch:
            return True
        answer = self._json("GET", self.source.switch)
        if not isinstance(answer, dict) or not answer:
            raise OrderSystemError(f"{self._url(self.source.switch)} answered no object with the switch")
        name = self.source.switch.rstrip("/").rsplit("/", 1)[-1]
        value = answer.get(name, next(iter(answer.values())) if len(answer) == 1 else None)
        return value is True or str(value).strip().lower() in TRUE

    def units(self, product_type: str, count: int) -> list[dict[str, Any]]:
        path = self.source.units.format(count=count, product_type=quote(product_type, safe=""))
        answer = self._json("GET", path)
        if not isinstance(answer, list) or not all(isinstance(unit, dict) for unit in answer):
            raise OrderSystemError(f"{self._url(path)} answered {_kind(answer)}, not a JSON array of work units")
        return answer

    def tell(self, unit: dict[str, Any], status: str, error: str = "") -> None:
        """A unit's status (``scheduled``, ``complete``) or failure (``error``, with why)."""
        body: dict[str, Any] = {name: field_of(unit, path) for name, path in self.source.status_fields.items()}
        body["processing_loc"] = self.source.location
        if status == "error" and self.source.error:
            self._json("POST", self.source.error, {**body, "error": error})
            return
        body["status"] = status
        if status == "error":
            body["error"] = error
        self._json("POST", self.source.status, body)

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        url = self._url(path)
        try:
            response = self.http.request(method, url, json=body, timeout=self.source.timeout)
        except httpx.HTTPError as exc:
            raise OrderSystemError(f"{method} {redact(url)}: {type(exc).__name__}: {redact(str(exc))}") from None
        if not response.is_success:
            raise OrderSystemError(f"{method} {redact(url)} answered {response.status_code}")
        if method == "POST" and not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise OrderSystemError(f"{method} {redact(url)} answered what is not JSON "
                                   f"({response.headers.get('content-type', 'no type')})") from None

    def _url(self, path: str) -> str:
        return self.source.url + (path if path.startswith("/") else "/" + path)


def field_of(unit: Any, path: str) -> Any:
    """A unit's field by dotted path (``options.include_sr``); None when it has none."""
    for part in path.split("."):
        if not isinstance(unit, dict):
            return None
        unit = unit.get(part)
    return unit


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array with items that are not objects"
    return {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
