"""What a raster product says about itself: grid, CRS, footprint in WGS84, bands, time range.

Read from the file's header (no pixels) with rasterio, the way the
processors wrote it. A product that cannot be read, or has no coordinate
reference system, raises ``ProductUnreadable``: its catalogue entry fails,
the job does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rasterio
from rasterio.errors import RasterioError
from rasterio.warp import transform as transform_points

from processes.common.items import DATETIME_TAG, END_DATETIME_TAG, START_DATETIME_TAG

WGS84 = "EPSG:4326"
EDGE_POINTS = 16  # points per edge of the grid's outline, so that a reprojected footprint follows its curves
PRECISION = 7  # decimals of longitude and latitude (about 1 cm)


class ProductUnreadable(ValueError):
    """A product the gateway cannot describe (not a raster, no CRS, a broken header)."""


@dataclass(frozen=True)
class Band:
    data_type: str
    nodata: float | None


@dataclass(frozen=True)
class RasterFacts:
    crs_code: str | None  # "EPSG:32633"; None when the CRS has no authority code
    crs_wkt2: str
    bbox: tuple[float, float, float, float]  # in the raster's CRS
    shape: tuple[int, int]  # rows, columns
    transform: tuple[float, ...]  # affine coefficients a, b, c, d, e, f
    resolution: float | None  # pixel size in CRS units, when pixels are square
    footprint: dict[str, Any]  # GeoJSON Polygon in WGS84 longitude/latitude
    wgs84_bbox: tuple[float, float, float, float]
    bands: tuple[Band, ...]
    start: datetime | None  # the time range the product covers, as its producer tagged it
    end: datetime | None


def raster_facts(path: Path, label: str) -> RasterFacts:
    """Describe the raster at ``path``; ``label`` names it in errors."""
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ProductUnreadable(f"{label}: the raster has no coordinate reference system")
            if not src.width or not src.height:
                raise ProductUnreadable(f"{label}: the raster has no pixels")
            authority = src.crs.to_authority()
            bounds = tuple(float(v) for v in src.bounds)
            footprint, box = _footprint(src.crs, bounds)
            pixel = src.transform
            return RasterFacts(
                crs_code=f"{authority[0]}:{authority[1]}" if authority else None,
                crs_wkt2=src.crs.to_wkt(version="WKT2_2019"),
                bbox=bounds,  # type: ignore[arg-type]
                shape=(src.height, src.width),
                transform=tuple(float(v) for v in tuple(pixel)[:6]),
                resolution=abs(pixel.a) if pixel.b == 0 and pixel.d == 0 and abs(pixel.a) == abs(pixel.e) else None,
                footprint=footprint, wgs84_bbox=box,
                bands=tuple(Band(dtype, nodata) for dtype, nodata in zip(src.dtypes, src.nodatavals, strict=True)),
                start=_time(src.tags(), START_DATETIME_TAG) or _time(src.tags(), DATETIME_TAG),
                end=_time(src.tags(), END_DATETIME_TAG) or _time(src.tags(), DATETIME_TAG))
    except ProductUnreadable:
        raise
    except (RasterioError, OSError, ValueError) as exc:
        raise ProductUnreadable(f"{label}: not a readable raster ({type(exc).__name__}: {exc})") from None


def _footprint(crs: Any, bounds: tuple[float, ...]) -> tuple[dict[str, Any], tuple[float, float, float, float]]:
    """The grid's outline in WGS84, densified along each edge, closed, counter-clockwise."""
    west, south, east, north = bounds
    steps = [i / EDGE_POINTS for i in range(EDGE_POINTS)]
    ring = ([(west + (east - west) * t, south) for t in steps] + [(east, south + (north - south) * t) for t in steps]
            + [(east - (east - west) * t, north) for t in steps] + [(west, north - (north - south) * t) for t in steps])
    xs, ys = transform_points(crs, WGS84, [p[0] for p in ring], [p[1] for p in ring])
    if not all(math.isfinite(v) for v in (*xs, *ys)):
        raise ProductUnreadable("the raster's extent has no place on the globe (its CRS cannot be transformed)")
    coords = [[round(x, PRECISION), round(y, PRECISION)] for x, y in zip(xs, ys, strict=True)]
    coords.append(coords[0])
    box = (min(xs), min(ys), max(xs), max(ys))
    return {"type": "Polygon", "coordinates": [coords]}, tuple(round(v, PRECISION) for v in box)  # type: ignore


def _time(tags: dict[str, str], name: str) -> datetime | None:
    text = tags.get(name, "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None  # a producer's odd tag is not worth failing the description for
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
