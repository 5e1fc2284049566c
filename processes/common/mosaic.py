"""Mosaic single-band rasters over the union of their extents."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.merge import merge

from .errors import InputError
from .raster import single_band_profile, write_geotiff


def mosaic(paths: Sequence[Path], out_path: Path, method: str, tags: dict[str, Any] | None = None,
           description: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Merge ``paths`` with rasterio's ``method`` ('max', 'first', ...) and write ``out_path``.

    All inputs must share one CRS: merging across CRSs would need a resampling choice the
    user should make. Returns the mosaic array and its profile.
    """
    if not paths:
        raise InputError("nothing to mosaic: no input rasters")
    with rasterio.open(paths[0]) as first:
        crs, dtype, nodata, like = first.crs, first.dtypes[0], first.nodata, first.profile
    for path in paths[1:]:
        with rasterio.open(path) as src:
            if src.crs != crs:
                raise InputError(f"inputs are in different CRSs ({crs} and {src.crs}); reproject them first")
    array, transform = merge([str(p) for p in paths], method=method, nodata=nodata)
    band = array[0].astype(dtype, copy=False)
    profile = single_band_profile(dict(like, transform=transform, width=band.shape[1], height=band.shape[0]),
                                  dtype, nodata)
    write_geotiff(out_path, band, profile, descriptions=[description] if description else None, tags=tags)
    return band, profile
