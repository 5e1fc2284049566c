"""GeoTIFF reading by band name and atomic GeoTIFF writing."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError

from .atomic import atomic_target
from .errors import InputError

#: Band order of the Sentinel-2 inputs the processors accept when bands carry no description.
S2_BANDS = ("B02", "B03", "B04", "B08", "B11")

#: Creation options of every GeoTIFF the processors write.
GTIFF_OPTIONS: dict[str, Any] = {"driver": "GTiff", "compress": "deflate", "tiled": True,
                                 "blockxsize": 256, "blockysize": 256}


@dataclass
class Scene:
    """Bands of one input raster as float32 arrays with NaN where the input has nodata."""

    path: Path
    bands: dict[str, np.ndarray]
    profile: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def transform(self) -> Affine:
        return self.profile["transform"]

    @property
    def crs(self) -> CRS:
        return self.profile["crs"]


def band_name(description: str | None) -> str | None:
    """Normalise band descriptions such as ``B8``, ``b08`` or ``B08 (NIR)`` to ``B08``."""
    if not description:
        return None
    match = re.match(r"\s*B0*(\d{1,2})(A?)\b", description, re.IGNORECASE)
    return f"B{int(match.group(1)):02d}{match.group(2).upper()}" if match else description.strip()


def read_bands(path: Path, names: Sequence[str], label: str | None = None) -> Scene:
    """Read the bands called ``names`` (by band description) from a GeoTIFF.

    Files without any band description are taken to be in :data:`S2_BANDS` order when they
    have exactly that many bands. A pixel that is nodata in any requested band is NaN in all.
    """
    label = label or Path(path).name
    try:
        src = rasterio.open(path)
    except RasterioIOError:
        raise InputError(f"{label}: not a readable GeoTIFF") from None
    with src:
        if src.driver != "GTiff":
            raise InputError(f"{label}: not a GeoTIFF (format {src.driver})")
        if src.crs is None:
            raise InputError(f"{label}: GeoTIFF has no coordinate reference system")
        found = [band_name(d) for d in src.descriptions]
        if not any(found) and src.count == len(S2_BANDS):
            found = list(S2_BANDS)
        missing = [name for name in names if name not in found]
        if missing:
            listed = ", ".join(f or "?" for f in found)
            raise InputError(f"{label}: missing band(s) {', '.join(missing)} (bands found: {listed})")
        try:
            arrays = {name: src.read(found.index(name) + 1, masked=True) for name in names}
        except RasterioIOError as exc:
            raise InputError(f"{label}: cannot read pixels ({exc})") from None
        invalid = np.zeros((src.height, src.width), dtype=bool)
        for array in arrays.values():
            invalid |= np.ma.getmaskarray(array)
        bands = {}
        for name, array in arrays.items():
            values = np.ma.getdata(array).astype(np.float32)
            values[invalid] = np.nan
            bands[name] = values
        return Scene(Path(path), bands, dict(src.profile), dict(src.tags()))


def single_band_profile(like: Mapping[str, Any], dtype: str, nodata: float | int) -> dict[str, Any]:
    """Profile of a one-band output on the grid of ``like`` (crs, transform, size)."""
    profile = {key: like[key] for key in ("crs", "transform", "width", "height")}
    profile.update(GTIFF_OPTIONS, count=1, dtype=dtype, nodata=nodata,
                   predictor=3 if np.dtype(dtype).kind == "f" else 2)
    return profile


def write_geotiff(path: Path, data: np.ndarray, profile: Mapping[str, Any],
                  descriptions: Sequence[str] | None = None, tags: Mapping[str, Any] | None = None) -> None:
    """Write a 2-D (one band) or 3-D (bands first) array as a GeoTIFF, atomically."""
    array = data[np.newaxis] if data.ndim == 2 else data
    profile = dict(profile, count=array.shape[0])
    with atomic_target(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array)
            if descriptions:
                dst.descriptions = tuple(descriptions)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items() if v is not None})


def pixel_area_m2(transform: Affine, crs: CRS) -> float:
    """Area of one pixel; only meaningful for projected CRSs in metres, hence the check."""
    if crs is None or not crs.is_projected:
        raise InputError("areas need a projected CRS in metres (e.g. UTM); reproject the input first")
    unit = (crs.linear_units or "").lower()
    if unit not in ("metre", "meter", "m"):
        raise InputError(f"areas need a CRS in metres, this one is in {crs.linear_units!r}")
    return abs(transform.a * transform.e - transform.b * transform.d)
