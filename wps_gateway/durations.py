"""Durations as people write them: ``90``, ``30s``, ``5m``, ``2h``, ``1d``, and stout's ``10secs``, ``2mins``.

mesos-batch's ``--kill_after`` takes stout durations (``ns``, ``us``, ``ms``, ``secs``, ``mins``, ``hrs``,
``days``, ``weeks``); the gateway's own options take the short units too. A bare number is seconds.
"""

from __future__ import annotations

import math
import re

UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0, "m": 60.0, "min": 60.0, "mins": 60.0, "h": 3600.0,
         "hr": 3600.0, "hrs": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0, "w": 604800.0,
         "week": 604800.0, "weeks": 604800.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_DURATION = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?|[+-]?\.\d+)\s*([a-z]*)\s*$")


class DurationError(ValueError):
    """Not a duration, or not a positive one."""


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds; DurationError (naming ``what``) unless ``text`` is a positive, finite duration."""
    match = _DURATION.match(str(text).lower())
    if match is None or match[2] not in UNITS:
        raise DurationError(f"{what}: {text!r} is not a duration such as 90, 30s, 5m, 2h, 1d or 10secs")
    seconds = float(match[1]) * UNITS[match[2]]
    if not (seconds > 0 and math.isfinite(seconds)):
        raise DurationError(f"{what}: {text!r} must be more than zero")
    return seconds
