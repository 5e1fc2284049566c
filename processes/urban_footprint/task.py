"""Tasks of the urban-footprint processor; run as ``python -m processes.urban_footprint.task STEP``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from processes.common.atomic import format_number, write_json, write_text
from processes.common.indices import ndbi, ndvi
from processes.common.items import identity, identity_tags, step_rasters, task_items, time_range_tags
from processes.common.mosaic import mosaic
from processes.common.raster import pixel_area_m2, read_bands, single_band_profile, write_geotiff
from processes.common.runner import main
from processes.common.taskenv import Task

DESCRIPTOR = Path(__file__).with_name("descriptor.yaml")
SUFFIX = "builtup"
BUILT_UP, NOT_BUILT_UP, NODATA = 1, 0, 255


def classify(bands: dict[str, np.ndarray], ndbi_threshold: float, ndvi_max: float) -> np.ndarray:
    """uint8 built-up mask: 1 where NDBI > threshold and NDVI < ndvi_max, 255 where an index is NaN."""
    built_index, veg_index = ndbi(bands), ndvi(bands)
    mask = np.where((built_index > ndbi_threshold) & (veg_index < ndvi_max), BUILT_UP, NOT_BUILT_UP)
    mask[np.isnan(built_index) | np.isnan(veg_index)] = NODATA
    return mask.astype(np.uint8)


def classify_step(task: Task) -> None:
    """One built-up mask GeoTIFF per tile of this task's chunk."""
    ndbi_threshold, ndvi_max = task.number("ndbi_threshold"), task.number("ndvi_max")
    for item in task_items(task):
        scene = read_bands(item.path, ("B04", "B08", "B11"), label=item.url)
        pixel_area_m2(scene.transform, scene.crs)  # fail now, not after every tile was classified
        write_geotiff(item.output(task.step_dir, SUFFIX), classify(scene.bands, ndbi_threshold, ndvi_max),
                      single_band_profile(scene.profile, "uint8", NODATA),
                      descriptions=["built-up"], tags=identity_tags(item, scene.tags))


def statistics_step(task: Task) -> None:
    """Footprint mosaic, built-up area per tile and in total, and the total area literal."""
    masks = step_rasters(task, "classify", SUFFIX, "tiles")
    tiles = [_tile_statistics(path) for path in masks]
    footprint, profile = mosaic(masks, task.outputs_dir / "footprint.tif", method="max",
                                tags=time_range_tags([t["date"] for t in tiles]), description="built-up")
    built_m2 = sum(t["built_up_area_m2"] for t in tiles)
    valid_m2 = sum(t["valid_area_m2"] for t in tiles)
    union_pixel = pixel_area_m2(profile["transform"], profile["crs"])
    total = {
        "built_up_area_m2": built_m2,
        "built_up_area_km2": built_m2 / 1e6,
        "valid_area_m2": valid_m2,
        "built_up_fraction": built_m2 / valid_m2 if valid_m2 else None,
    }
    statistics = {
        "parameters": {"ndbi_threshold": task.number("ndbi_threshold"), "ndvi_max": task.number("ndvi_max")},
        "tiles": tiles,
        "total": total,
        # the union counts overlapping tiles once; equal to the total when tiles do not overlap
        "mosaic": {"built_up_area_m2": float((footprint == BUILT_UP).sum()) * union_pixel,
                   "valid_area_m2": float((footprint != NODATA).sum()) * union_pixel},
    }
    write_json(task.outputs_dir / "statistics.json", statistics)
    write_text(task.outputs_dir / "total_area_km2.txt", format_number(total["built_up_area_km2"]))


def _tile_statistics(path: Path) -> dict[str, Any]:
    with rasterio.open(path) as src:
        tags, mask = src.tags(), src.read(1)
        area = pixel_area_m2(src.transform, src.crs)
    built, valid = int((mask == BUILT_UP).sum()), int((mask != NODATA).sum())
    return {
        **identity(tags),
        "pixel_area_m2": area, "valid_pixels": valid, "built_up_pixels": built,
        "valid_area_m2": valid * area, "built_up_area_m2": built * area,
        "built_up_fraction": built / valid if valid else None,
    }


STEPS = {"classify": classify_step, "statistics": statistics_step}

if __name__ == "__main__":
    main(STEPS, DESCRIPTOR)
