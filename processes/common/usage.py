"""The usage report a task leaves for the gateway: what it used, measured from inside.

Engines that do not measure a task's CPU time and peak memory (Mesos without
polling its agents, YARN) leave those figures to the task itself: the runner
writes this report just before the task exits, into the job's folder, which
the machines that run tasks share with the gateway. The gateway reads it once
the engine says the task ended (``wps_gateway.accounting.usage``).

The figures are the task process's own ``getrusage`` plus its children's
(those it waited for): CPU time is user + system, summed; peak memory is the
largest resident set of the process or of any one child (the kernel keeps the
maximum per process, not the peak of their sum). The format is one small JSON
object, written atomically::

    {"attempt": "<attempt id>", "cpu_seconds": 12.5, "mem_peak_mb": 311.2, "wall_seconds": 40.1}
"""

from __future__ import annotations

import json
import math
import os
import resource
import stat
import time
from pathlib import Path
from typing import Any

from .atomic import write_text

FIELDS = ("cpu_seconds", "mem_peak_mb", "wall_seconds")
MAX_REPORT_BYTES = 4096
MAX_FIGURE = 1e9  # seconds or MiB; anything larger is not a measurement
_STARTED = time.time()  # fallback start time where /proc cannot tell when this process began


def measure() -> dict[str, float]:
    """This process's usage so far, children it waited for included."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    peak_kib = max(own.ru_maxrss, children.ru_maxrss)  # Linux reports KiB
    return {"cpu_seconds": round(cpu, 3), "mem_peak_mb": round(peak_kib / 1024, 3),
            "wall_seconds": round(max(0.0, time.time() - _process_start()), 3)}


def write_report(path: Path, attempt: str) -> None:
    """Write this process's usage for ``attempt`` to ``path`` (atomically; the folder is made if need be)."""
    write_text(path, json.dumps({"attempt": attempt, **measure()}) + "\n")


def read_report(path: Path, attempt: str) -> dict[str, float] | None:
    """The figures a task reported for ``attempt``, or None if there is no sound report.

    Sound means: a regular file (a link is not followed), small, a JSON object
    naming this very attempt, each figure a number from 0 to ``MAX_FIGURE``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            text = handle.read(MAX_REPORT_BYTES + 1)
        if len(text) > MAX_REPORT_BYTES:
            return None
        data: Any = json.loads(text)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("attempt") != attempt:
        return None
    figures: dict[str, float] = {}
    for name in FIELDS:
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value) and 0 <= value <= MAX_FIGURE:
            figures[name] = float(value)
    return figures


def _process_start() -> float:
    """When this process started (epoch seconds), from /proc; the runner's import time elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 (starttime), counted after the command name
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _STARTED
