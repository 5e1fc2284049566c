"""Summary statistics of raster values, ignoring NaN (nodata)."""

from __future__ import annotations

from typing import Any

import numpy as np


def summarize(values: np.ndarray) -> dict[str, Any]:
    """Mean, min, max, standard deviation and count of the finite values (None when there are none)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return {"valid_pixels": 0, "mean": None, "min": None, "max": None, "std": None}
    return {
        "valid_pixels": int(finite.size),
        "mean": float(finite.mean()),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "std": float(finite.std()),
    }
