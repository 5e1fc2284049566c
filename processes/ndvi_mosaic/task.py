"""Tasks of the ndvi-mosaic processor; run as ``python -m processes.ndvi_mosaic.task STEP``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import array_bounds

from processes.common.atomic import format_number, write_json, write_text
from processes.common.errors import TaskError
from processes.common.indices import ndvi
from processes.common.items import identity, identity_tags, step_rasters, task_items, time_range_tags
from processes.common.mosaic import mosaic
from processes.common.raster import read_bands, single_band_profile, write_geotiff
from processes.common.runner import main
from processes.common.stats import summarize
from processes.common.taskenv import Task

DESCRIPTOR = Path(__file__).with_name("descriptor.yaml")
SUFFIX = "ndvi"


def ndvi_step(task: Task) -> None:
    """One float32 NDVI GeoTIFF (nodata NaN) per scene of this task's chunk."""
    for item in task_items(task):
        scene = read_bands(item.path, ("B04", "B08"), label=item.url)
        profile = single_band_profile(scene.profile, "float32", np.nan)
        write_geotiff(item.output(task.step_dir, SUFFIX), ndvi(scene.bands), profile,
                      descriptions=["NDVI"], tags=identity_tags(item, scene.tags))


def mosaic_step(task: Task) -> None:
    """Max-NDVI composite of all NDVI rasters, statistics, and the mean NDVI literal."""
    rasters = step_rasters(task, "ndvi", SUFFIX, "scenes")
    scenes = [_scene_statistics(path) for path in rasters]
    composite, profile = mosaic(rasters, task.outputs_dir / "mosaic.tif", method="max",
                                tags=time_range_tags([s["date"] for s in scenes]), description="NDVI max")
    overall = summarize(composite)
    if not overall["valid_pixels"]:
        raise TaskError("no valid NDVI pixel in any scene (all nodata)")
    overall.update(bounds=list(array_bounds(profile["height"], profile["width"], profile["transform"])),
                   crs=str(profile["crs"]), width=profile["width"], height=profile["height"])
    write_json(task.outputs_dir / "statistics.json", {"scenes": scenes, "mosaic": overall})
    write_text(task.outputs_dir / "mean_ndvi.txt", format_number(overall["mean"]))


def _scene_statistics(path: Path) -> dict[str, object]:
    with rasterio.open(path) as src:
        tags = src.tags()
        stats = summarize(src.read(1))
    return {**identity(tags), **stats}


STEPS = {"ndvi": ndvi_step, "mosaic": mosaic_step}

if __name__ == "__main__":
    main(STEPS, DESCRIPTOR)
