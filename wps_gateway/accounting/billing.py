"""``[accounting] billing_weights``: what one unit of each resource costs, like Slurm's TRESBillingWeights.

A report's ``billing`` figure is the weighted sum of an attempt's resource
hours: ``cpu`` per cpu-hour allocated, ``mem`` per GB-hour allocated, ``gpu``
per GPU-hour, and, for platforms that charge what was used rather than what
was reserved, ``cpu_used`` per cpu-hour used, ``mem_peak`` per GB-hour of
peak memory and ``wall`` per hour of wall time. Unnamed resources weigh 0;
the default, ``cpu:1``, bills allocated cpu-hours (Slurm's default too).
"""

from __future__ import annotations

import math

DEFAULT_WEIGHTS = "cpu:1"
# Weight name -> the report figure (hours) it multiplies.
WEIGHTED = {"cpu": "cpu_hours_allocated", "mem": "mem_gb_hours_allocated", "gpu": "gpu_hours",
            "cpu_used": "cpu_hours_used", "mem_peak": "mem_gb_hours_peak", "wall": "wall_hours"}


def parse_weights(text: str) -> dict[str, float]:
    """``name:weight, ...`` -> {name: weight}; a clear ValueError for anything else."""
    weights: dict[str, float] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, colon, value = (part.strip() for part in entry.partition(":"))
        if name not in WEIGHTED:
            raise ValueError(f"[accounting] billing_weights: unknown resource {name!r} "
                             f"(known: {', '.join(WEIGHTED)})")
        try:
            weight = float(value) if colon else math.nan
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"[accounting] billing_weights: {entry!r} needs a weight of 0 or more, as in {name}:1.5")
        weights[name] = weight
    return weights
