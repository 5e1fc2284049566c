"""``[console]``: the operators' console and ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

DEFAULTS: dict[str, str] = {
    "refresh": "5",  # seconds between the pages' refreshes of jobs and figures (0: never; the page still works)
    "log_tail": "64kb",  # how much of a task's stdout and stderr the console shows (from the end)
    "public_metrics": "false",  # /metrics without credentials (a Prometheus on a private network)
}


@dataclass(frozen=True)
class ConsoleSettings:
    refresh: float = 5.0
    log_tail: int = 64 * 1024
    public_metrics: bool = False


def parse_console(section: Mapping[str, str], size: Callable[[str, str], int]) -> ConsoleSettings:
    """The section, typed (``size`` reads ``64kb``); ValueError naming the setting."""
    refresh = float(section.get("refresh") or 5)
    if not 0 <= refresh <= 3600:
        raise ValueError(f"[console] refresh must be from 0 to 3600 seconds, not {section.get('refresh')!r}")
    flag = (section.get("public_metrics") or "false").strip().lower()
    if flag not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        raise ValueError(f"[console] public_metrics must be true or false, not {flag!r}")
    tail = size(section.get("log_tail") or "64kb", "[console] log_tail")
    if tail > 16 * 1024 * 1024:
        raise ValueError("[console] log_tail is at most 16mb")
    return ConsoleSettings(refresh=refresh, log_tail=tail, public_metrics=flag in ("true", "yes", "1", "on"))
