"""The STAC Items of a successful job's products, built with ``pystac``.

One Item per raster output (a GeoTIFF: footprint, CRS, grid and bands read
from the file, ``proj`` and ``raster`` extensions), and one Item for the job
itself (id: the job id) whose assets are the other outputs (JSON, text,
literals) and whose geometry covers the rasters'. Every Item carries the
``processing`` extension (lineage, the processor and its version, the
bundle digest, when), links to the job, its status document and its inputs,
and the time the products cover: the inputs' time range as the processor
tagged its rasters, else the job's end.

Asset hrefs are what a client can fetch: the gateway's own output URLs, or
where ``[catalogue] asset_base`` says the storage is published.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pystac
import shapely
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension
from shapely.geometry import mapping, shape

from processes.descriptor import IOSpec, Processor

from .. import __version__
from ..jobs import processor_of
from ..planner import job_paths
from ..redaction import redact
from ..results import copy_output
from ..store.models import Job
from ..wps1.render import output_url, status_url
from .links import GEOJSON, is_raster, item_url
from .raster import RasterFacts, raster_facts
from .settings import public_url

PROCESSING = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"


@dataclass(frozen=True)
class Where:
    """Where the gateway is served and where products are published: what links and asset hrefs name."""

    base_url: str
    jobs_dir: Path
    asset_base: tuple[tuple[str, str], ...] = ()


def job_items(job: Job, where: Where) -> list[dict[str, Any]]:
    """The Items of a successful job, the job's own first; ``ProductUnreadable`` if a raster cannot be read."""
    processor = processor_of(job)
    produced = [(spec, job.outputs[spec.id]) for spec in processor.outputs if spec.id in (job.outputs or {})]
    rasters = {spec.id: _raster_facts(job, spec, entry, where) for spec, entry in produced if is_raster(spec)}
    start, end = _time_range(job, rasters.values())
    shared = _shared_links(job, processor, where)
    job_item = _item(job.id, job, processor, _union([f.footprint for f in rasters.values()]), start, end,
                     f"{processor.title}: job {job.id}", where)
    items = [job_item]
    for spec, entry in produced:
        facts = rasters.get(spec.id)
        if facts is None:
            job_item.add_asset(spec.id, _asset(job, spec, entry, where))
            continue
        item = _item(f"{job.id}-{spec.id}", job, processor, facts.footprint, facts.start or start,
                     facts.end or end, f"{processor.title}: {spec.title}", where)
        _describe_grid(item, facts)
        asset = _asset(job, spec, entry, where)
        item.add_asset(spec.id, asset)
        RasterExtension.ext(asset, add_if_missing=True).apply(bands=[
            RasterBand.create(nodata=_nodata(band.nodata), data_type=band.data_type,  # type: ignore[arg-type]
                              spatial_resolution=facts.resolution) for band in facts.bands])
        item.add_link(pystac.Link("related", item_url(where.base_url, job.process_id, job.id), GEOJSON,
                                  "all products of the job"))
        job_item.add_link(pystac.Link("related", item_url(where.base_url, job.process_id, item.id), GEOJSON,
                                      spec.title))
        items.append(item)
    documents = []
    for item in items:
        for link in shared:
            item.add_link(link.clone())
        documents.append(json.loads(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False))))
    return documents


def _raster_facts(job: Job, spec: IOSpec, entry: dict[str, Any], where: Where) -> RasterFacts:
    """A raster output described from its file: in the outputs folder, or fetched from HDFS for the while."""
    label = f"output {spec.id} ({entry['file']})"
    if not entry.get("location"):
        return raster_facts(job_paths(where.jobs_dir, job.id)["outputs"] / entry["file"], label)
    with tempfile.TemporaryDirectory(prefix="stac-") as scratch:
        path = Path(scratch) / entry["file"]
        copy_output(entry["location"], path)
        return raster_facts(path, label)


def _item(item_id: str, job: Job, processor: Processor, geometry: dict[str, Any] | None, start: datetime,
          end: datetime, title: str, where: Where) -> pystac.Item:
    bbox = list(shapely.bounds(shape(geometry))) if geometry else None
    properties = {"title": title, "created": _iso(job.finished or job.created), **_processing(job, processor, where)}
    if start == end:
        item = pystac.Item(item_id, geometry, bbox, start, properties, collection=job.process_id)
    else:
        item = pystac.Item(item_id, geometry, bbox, None, properties, start_datetime=start, end_datetime=end,
                           collection=job.process_id)
    item.stac_extensions.append(PROCESSING)
    return item


def _processing(job: Job, processor: Processor, where: Where) -> dict[str, Any]:
    """The processing extension's fields: what made the products, in which job, from what."""
    software = {processor.id: processor.version, "wps-gateway": __version__}
    digest = (job.descriptor or {}).get("bundle", {}).get("digest")
    bundle = f" (bundle sha256:{digest})" if digest else ""
    if digest:
        software[f"{processor.id} bundle"] = f"sha256:{digest}"
    return {
        "processing:lineage": (f"Computed by the processor '{processor.id}' version {processor.version}{bundle} "
                               f"in job {job.id} of the WPS gateway at {where.base_url}, from "
                               f"{_inputs_text(job, processor)}."),
        "processing:software": software,
        "processing:version": processor.version,
        "processing:datetime": _iso(job.finished or job.created),
    }


def _inputs_text(job: Job, processor: Processor) -> str:
    parts = []
    for spec in processor.inputs:
        values = (job.inputs or {}).get(spec.id, [])
        if not values:
            continue
        if spec.is_complex:
            parts.append(f"{len(values)} {spec.id}")
        else:
            parts.append(f"{spec.id} = {', '.join(str(v) for v in values)}")
    return "; ".join(parts) or "no inputs"


def _shared_links(job: Job, processor: Processor, where: Where) -> list[pystac.Link]:
    """Links every Item of the job has: the job (OGC API and WPS 1.0.0) and each input by reference."""
    links = [pystac.Link("processing-execution", f"{where.base_url}/jobs/{job.id}", "application/json",
                         "the job that made it (OGC API - Processes)"),
             pystac.Link("related", status_url(where.base_url, job.id), "text/xml",
                         "the job's WPS 1.0.0 status document")]
    for spec in processor.inputs:
        if not spec.is_complex:
            continue
        for value in (job.inputs or {}).get(spec.id, []):
            href = str(value)
            links.append(pystac.Link("derived_from", redact(public_url(href, where.asset_base) or href),
                                     spec.media_type, f"input {spec.id}"))
    return links


def _asset(job: Job, spec: IOSpec, entry: dict[str, Any], where: Where) -> pystac.Asset:
    location = entry.get("location") or (job_paths(where.jobs_dir, job.id)["outputs"]
                                         / entry["file"]).resolve().as_uri()
    href = public_url(location, where.asset_base) or output_url(where.base_url, job.id, entry["file"])
    return pystac.Asset(href, title=spec.title, media_type=spec.media_type or "text/plain", roles=["data"])


def _describe_grid(item: pystac.Item, facts: RasterFacts) -> None:
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        code=facts.crs_code, wkt2=None if facts.crs_code else facts.crs_wkt2, bbox=list(facts.bbox),
        shape=list(facts.shape), transform=list(facts.transform))


def _time_range(job: Job, rasters: Any) -> tuple[datetime, datetime]:
    """The time the job's products cover: from their tags, else the job's end."""
    starts = [f.start for f in rasters if f.start]
    ends = [f.end for f in rasters if f.end]
    ended = job.finished or job.created
    return (min(starts) if starts else ended), (max(ends) if ends else ended)


def _union(footprints: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not footprints:
        return None
    return json.loads(json.dumps(mapping(shapely.union_all([shape(f) for f in footprints]))))


def _nodata(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: the raster extension spells them ``nan``, ``inf``, ``-inf``."""
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _iso(value: datetime) -> str:
    return pystac.utils.datetime_to_str(value)


def collection_document(collection_id: str, processor: Processor | None, box: list[float] | None,
                        interval: list[datetime | None]) -> dict[str, Any]:
    """The Collection of one process's products (its Items' extent, or the whole globe while it has none)."""
    title = processor.title if processor else collection_id
    description = (processor.description or processor.title) if processor else f"Products of {collection_id}"
    extent = pystac.Extent(pystac.SpatialExtent([box or [-180.0, -90.0, 180.0, 90.0]]),
                           pystac.TemporalExtent([list(interval)]))
    collection = pystac.Collection(collection_id, description, extent, title=title, license="other",
                                   keywords=list(processor.keywords) if processor and processor.keywords else None)
    return json.loads(json.dumps(collection.to_dict(include_self_link=False, transform_hrefs=False)))
