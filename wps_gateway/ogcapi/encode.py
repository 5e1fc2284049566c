"""JSON encodings of OGC API - Processes: process summaries and descriptions, statusInfo, results.

Everything is rendered from a ``Processor`` or a ``Job`` row on request, like
the WPS 1.0.0 status documents, so the two protocols always agree.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from processes.bbox import BBOX_FORMAT
from processes.descriptor import UNBOUNDED, IOSpec, Processor

from ..jobs import ResponseForm, processor_of, shown_status
from ..outputs import inline_kind
from ..results import output_bytes
from ..store.models import Job, JobStatus
from ..wps1.render import output_url, status_url

JSON = "application/json"
HTML = "text/html"
REL_PROCESSES = "http://www.opengis.net/def/rel/ogc/1.0/processes"
REL_JOB_LIST = "http://www.opengis.net/def/rel/ogc/1.0/job-list"
REL_EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"
REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
REL_CONFORMANCE = "http://www.opengis.net/def/rel/ogc/1.0/conformance"
PACKAGE_MEDIA_TYPE = "application/ogcapppkg+json"
JOB_CONTROL_OPTIONS = ["sync-execute", "async-execute", "dismiss"]
OUTPUT_TRANSMISSION = ["value", "reference"]
# The store already keeps OGC API status codes (see JobStatus); the table guards against new store states.
OGC_STATUS = {s: s for s in (JobStatus.ACCEPTED, JobStatus.RUNNING, JobStatus.SUCCESSFUL, JobStatus.FAILED,
                             JobStatus.DISMISSED)}


def link(href: str, rel: str, type_: str = JSON, title: str | None = None) -> dict[str, str]:
    entry = {"href": href, "rel": rel, "type": type_}
    if title:
        entry["title"] = title
    return entry


def self_links(href: str, title: str | None = None) -> list[dict[str, str]]:
    """The JSON self link and its HTML alternate (the HTML conformance class asks for both)."""
    sep = "&" if "?" in href else "?"
    return [link(href, "self", JSON, title), link(f"{href}{sep}f=html", "alternate", HTML, title)]


def isotime(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ogc_status(job: Job) -> str:
    """The job's status in OGC API words; an unknown store state reads as still running."""
    return OGC_STATUS.get(shown_status(job), JobStatus.RUNNING)


# -- processes ---------------------------------------------------------------

def process_summary(processor: Processor, base: str, mutable: bool) -> dict[str, Any]:
    """A process list entry: identification, control options, whether it may be replaced or undeployed
    (``mutable``, Part 2), and links to the full description."""
    href = f"{base}/processes/{processor.id}"
    summary: dict[str, Any] = {"id": processor.id, "title": processor.title, "version": processor.version,
                               "mutable": mutable}
    if processor.description:
        summary["description"] = processor.description
    if processor.keywords:
        summary["keywords"] = list(processor.keywords)
    summary["jobControlOptions"] = list(JOB_CONTROL_OPTIONS)
    summary["outputTransmission"] = list(OUTPUT_TRANSMISSION)
    summary["links"] = [
        link(href, "self", JSON, "process description"),
        link(f"{href}?f=html", "alternate", HTML, "process description"),
        link(f"{href}/execution", REL_EXECUTE, JSON, "execute the process"),
    ]
    return summary


def process_description(processor: Processor, base: str, wps_url: str, mutable: bool) -> dict[str, Any]:
    """The OGC Process Description: the summary plus inputs and outputs with their schemas."""
    description = process_summary(processor, base, mutable)
    links = description.pop("links")
    description["inputs"] = {spec.id: _input(spec) for spec in processor.inputs}
    description["outputs"] = {spec.id: _described(spec) for spec in processor.outputs}
    links.append(link(f"{wps_url}?service=WPS&version=1.0.0&request=DescribeProcess&identifier={processor.id}",
                      "alternate", "text/xml", "WPS 1.0.0 DescribeProcess"))
    links.append(link(f"{base}/processes/{processor.id}/package", "alternate", PACKAGE_MEDIA_TYPE,
                      "application package (OGC API - Processes Part 2)"))
    description["links"] = links
    return description


def _described(spec: IOSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"title": spec.title}
    if spec.description:
        entry["description"] = spec.description
    entry["schema"] = bbox_schema(spec.crs) if spec.is_bbox else dict(spec.schema)
    return entry


def bbox_schema(crs: tuple[str, ...]) -> dict[str, Any]:
    """The OGC API bounding box schema (``format: ogc-bbox`` with the ``bbox.yaml`` object), inline, its
    ``crs`` enumerating what the process accepts."""
    return {"allOf": [{"format": BBOX_FORMAT}, {
        "type": "object", "required": ["bbox"], "properties": {
            "bbox": {"type": "array", "oneOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}],
                     "items": {"type": "number"}},
            "crs": {"type": "string", "format": "uri", "enum": list(crs), "default": crs[0]}}}]}


def _input(spec: IOSpec) -> dict[str, Any]:
    entry = _described(spec)
    entry["minOccurs"] = spec.min_occurs
    entry["maxOccurs"] = "unbounded" if spec.max_occurs >= UNBOUNDED else spec.max_occurs
    return entry


# -- jobs --------------------------------------------------------------------

def status_info(job: Job, base: str, wps_url: str, status: str | None = None) -> dict[str, Any]:
    """statusInfo of ``job``; ``status`` overrides the stored one (a dismissal just asked for)."""
    href = f"{base}/jobs/{job.id}"
    info: dict[str, Any] = {
        "jobID": job.id,
        "processID": job.process_id,
        "type": "process",
        "status": status or ogc_status(job),
        "message": job.message or "",
        "created": isotime(job.created),
        "started": isotime(job.started),
        "finished": isotime(job.finished),
        "updated": isotime(job.updated or job.created),
        "progress": max(0, min(100, int(job.progress or 0))),
    }
    info = {k: v for k, v in info.items() if v is not None}
    links = self_links(href, "job status")
    links.append(link(f"{base}/jobs", "up", JSON, "job list"))
    links.append(link(status_url(base, job.id), "alternate", "text/xml", "WPS 1.0.0 status document"))
    if job.status in JobStatus.ACTIVE and (status or ogc_status(job)) in JobStatus.ACTIVE:
        links.append(link(href, "monitor", JSON, "poll this job's status until it ends"))
    if job.status == JobStatus.SUCCESSFUL:
        links.append(link(f"{href}/results", REL_RESULTS, JSON, "job results"))
    info["links"] = links
    return info


def results_document(job: Job, base: str, jobs_dir: Path) -> dict[str, Any]:
    """Results of a successful job: literals inline, files as links to /outputs (or inline if asked)."""
    processor = processor_of(job)
    form = ResponseForm.from_dict(job.response_form)
    results: dict[str, Any] = {}
    for spec in form.requested(processor):
        produced = job.outputs.get(spec.id)
        if produced is not None:
            results[spec.id] = _result(job, spec, produced, form.by_reference(spec), base, jobs_dir)
    return results


def _result(job: Job, spec: IOSpec, produced: dict[str, Any], by_reference: bool, base: str,
            jobs_dir: Path) -> Any:
    media_type = output_media_type(spec)
    if by_reference:
        return {"href": output_url(base, job.id, produced["file"]), "type": media_type, "title": spec.title}
    if not spec.is_complex:
        return produced["value"]
    return inline_value(output_bytes(jobs_dir, job.id, produced), media_type)


def output_media_type(spec: IOSpec) -> str:
    """How an output's value is typed when it travels alone (raw, by reference)."""
    return spec.media_type or ("application/json" if spec.is_bbox else "text/plain")


def inline_value(content: bytes, media_type: str) -> dict[str, Any]:
    """A file's bytes as a qualified value: JSON parsed, text and XML as text, anything else base64."""
    kind = inline_kind(media_type)
    if kind == "json":
        return {"value": json.loads(content), "mediaType": media_type}
    if kind in ("text", "xml"):
        return {"value": content.decode("utf-8"), "mediaType": media_type}
    return {"value": base64.b64encode(content).decode("ascii"), "mediaType": media_type, "encoding": "base64"}
