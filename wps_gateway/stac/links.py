"""Where a job's STAC Items are served, for the links of the other protocols (OGC API, WPS 1.0.0).

Only Items that exist are linked: they appear once the outbox has described
the job (a moment after it succeeded), never for a job whose products could
not be described.
"""

from __future__ import annotations

from urllib.parse import quote

from processes.descriptor import IOSpec

from ..jobs import processor_of
from ..store.db import Store
from ..store.models import Job, JobStatus
from .records import item_ids

GEOJSON = "application/geo+json"
RASTER_MEDIA_TYPES = ("image/tiff", "image/geotiff")


def is_raster(spec: IOSpec) -> bool:
    """A raster product: an Item of its own (a GeoTIFF output)."""
    return (spec.media_type or "").split(";", 1)[0].strip().lower() in RASTER_MEDIA_TYPES


def item_url(base_url: str, collection: str, item_id: str) -> str:
    return f"{base_url}/stac/collections/{quote(collection, safe='')}/items/{quote(item_id, safe='')}"


def output_items(job: Job) -> dict[str, str]:
    """Output id -> the id of the Item that describes it (its own for a raster, else the job's)."""
    return {spec.id: (f"{job.id}-{spec.id}" if is_raster(spec) else job.id)
            for spec in processor_of(job).outputs if spec.id in (job.outputs or {})}


def output_item_urls(store: Store, base_url: str, job: Job) -> dict[str, str]:
    """Output id -> the URL of its Item, for the Items that exist."""
    if job.status != JobStatus.SUCCESSFUL:
        return {}
    stored = set(item_ids(store, job.id))
    return {output: item_url(base_url, job.process_id, item) for output, item in output_items(job).items()
            if item in stored}


def item_links(store: Store, base_url: str, job: Job) -> list[dict[str, str]]:
    """OGC API links (rel ``alternate``) from a job to its Items, the job's own first."""
    if job.status != JobStatus.SUCCESSFUL:
        return []
    return [{"href": item_url(base_url, job.process_id, item), "rel": "alternate", "type": GEOJSON,
             "title": "STAC Item of the job's results" if item == job.id else f"STAC Item of output "
                                                                             f"{item[len(job.id) + 1:]}"}
            for item in sorted(item_ids(store, job.id), key=lambda i: (i != job.id, i))]
