"""The per-item loop of split steps: fetch each item, name its output, remember where it came from."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import TaskError
from .fetch import local_input, reference_name
from .taskenv import Task

#: Sentinel-2 tile ids (``T33UUP``) and dates (``20240601``) as they appear in file names.
_TILE = re.compile(r"(?<![A-Z0-9])(T\d{2}[A-Z]{3})(?![A-Z0-9])")
_DATE = re.compile(r"(?<!\d)(20\d{2})(\d{2})(\d{2})(?!\d)")

#: GeoTIFF tags that carry an item's identity from step to step.
SOURCE_TAG, TILE_TAG, DATE_TAG = "SOURCE", "TILE", "DATE"
#: GeoTIFF tags of a product: the time it covers (RFC 3339, UTC), read by the gateway for its STAC items.
DATETIME_TAG, START_DATETIME_TAG, END_DATETIME_TAG = "DATETIME", "START_DATETIME", "END_DATETIME"


@dataclass(frozen=True)
class Item:
    """One split item, fetched: its URL, local path and the stem its outputs are named after."""

    url: str
    path: Path
    stem: str

    def output(self, directory: Path, suffix: str) -> Path:
        """Output file for this item, e.g. ``0003-00_T33UUP_20240601_ndvi.tif``."""
        return directory / f"{self.stem}_{suffix}.tif"


def task_items(task: Task) -> Iterator[Item]:
    """Fetch this task's items in order, each under the task's fetch policy; an item's path is valid
    until the next item is asked for. Names are prefixed with task index and position so two inputs
    with the same file name never overwrite each other's outputs."""
    downloads = Path.cwd() / "downloads"
    for position, url in enumerate(task.items):
        with local_input(url, downloads, task.fetch) as path:
            stem = Path(reference_name(url)).stem
            yield Item(url, path, f"{task.index:04d}-{position:02d}_{stem}")


def identity_tags(item: Item, tags: Mapping[str, str]) -> dict[str, str]:
    """Tile and date of an item from its tags, else from its file name (S2 naming)."""
    name = Path(item.url).name
    tile = tags.get(TILE_TAG) or _search(_TILE, name)
    date = tags.get(DATE_TAG)
    if not date:
        match = _DATE.search(name)
        date = f"{match.group(1)}-{match.group(2)}-{match.group(3)}" if match else None
    return {SOURCE_TAG: item.url, TILE_TAG: tile or "", DATE_TAG: date or ""}


def identity(tags: Mapping[str, str]) -> dict[str, str | None]:
    """``source``, ``tile`` and ``date`` a step output carries in its tags (see :func:`identity_tags`)."""
    return {"source": tags.get(SOURCE_TAG) or None, "tile": tags.get(TILE_TAG) or None,
            "date": tags.get(DATE_TAG) or None}


def time_range_tags(dates: list[str | None]) -> dict[str, str]:
    """The time a product made of items of these days (``YYYY-MM-DD``) covers: from the first day's start
    to the last day's end; no tags when no item has a date."""
    days = sorted(d for d in dates if d)
    if not days:
        return {}
    return {START_DATETIME_TAG: f"{days[0]}T00:00:00Z", END_DATETIME_TAG: f"{days[-1]}T23:59:59Z"}


def _search(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


def step_rasters(task: Task, step: str, suffix: str, input_id: str) -> list[Path]:
    """Rasters the upstream split ``step`` left, in task order: one per item of ``input_id``.

    A missing raster means an upstream task lost its output; say so instead of
    computing statistics over part of the request.
    """
    rasters = sorted(Path(task.dep_dir(step)).glob(f"*_{suffix}.tif"))
    expected = len(task.urls(input_id))
    if len(rasters) != expected:
        raise TaskError(f"step {step} produced {len(rasters)} rasters for {expected} {input_id}")
    return rasters
