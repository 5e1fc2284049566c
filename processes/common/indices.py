"""Normalised-difference spectral indices computed the same way by every processor."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)`` as float32, NaN where an input is NaN or the sum is zero."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = (a64 - b64) / (a64 + b64)
    result[~np.isfinite(result)] = np.nan
    return result.astype(np.float32)


def ndvi(bands: Mapping[str, np.ndarray]) -> np.ndarray:
    """Normalised Difference Vegetation Index, (B08 - B04) / (B08 + B04)."""
    return normalized_difference(bands["B08"], bands["B04"])


def ndbi(bands: Mapping[str, np.ndarray]) -> np.ndarray:
    """Normalised Difference Built-up Index, (B11 - B08) / (B11 + B08)."""
    return normalized_difference(bands["B11"], bands["B08"])
