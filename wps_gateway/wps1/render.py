"""WPS 1.0.0 ExecuteResponse documents, rendered from a job row on request.

Nothing here is stored: the status document at ``statusLocation`` is built
from the job store each time it is fetched, so it is never stale and a
restart loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

from processes.bbox import corners
from processes.descriptor import Processor
from processes.registry import PYWPS_LITERAL_TYPES

from ..jobs import ResponseForm, processor_of, shown_status
from ..outputs import literal_text, xml_inline
from ..redaction import redact
from ..results import output_bytes
from ..store.models import Job, JobStatus
from ..xml_text import SAFE_TEXT

WPS_NS = "http://www.opengis.net/wps/1.0.0"
OWS_NS = "http://www.opengis.net/ows/1.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XML_NS = "http://www.w3.org/XML/1998/namespace"
SCHEMA_LOCATION = f"{WPS_NS} http://schemas.opengis.net/wps/1.0.0/wpsExecute_response.xsd"
NSMAP = {"wps": WPS_NS, "ows": OWS_NS, "xlink": XLINK_NS, "xsi": XSI_NS}

WPS = ElementMaker(namespace=WPS_NS, nsmap=NSMAP, typemap=SAFE_TEXT)
OWS = ElementMaker(namespace=OWS_NS, nsmap=NSMAP, typemap=SAFE_TEXT)


def status_url(base_url: str, job_id: str) -> str:
    return f"{base_url}/wps/status/{job_id}.xml"


def output_url(base_url: str, job_id: str, filename: str) -> str:
    return f"{base_url}/outputs/{job_id}/{filename}"


def execute_response(job: Job, base_url: str, service_url: str, jobs_dir: Path,
                     items: Mapping[str, str] | None = None) -> bytes:
    """The ExecuteResponse for ``job`` as it stands now; ``items``: output id -> the URL of the STAC Item that
    describes it, given to each output as ``ows:Metadata`` (the schema's place for links about an output)."""
    processor = processor_of(job)
    form = ResponseForm.from_dict(job.response_form)
    root = WPS.ExecuteResponse(
        {
            "service": "WPS",
            "version": "1.0.0",
            f"{{{XML_NS}}}lang": "en-US",
            "serviceInstance": f"{service_url}?service=WPS&request=GetCapabilities",
            f"{{{XSI_NS}}}schemaLocation": SCHEMA_LOCATION,
        },
    )
    if form.asynchronous or job.status not in JobStatus.FINAL:
        root.set("statusLocation", status_url(base_url, job.id))
    root.append(WPS.Process(
        {f"{{{WPS_NS}}}processVersion": processor.version},
        OWS.Identifier(processor.id),
        OWS.Title(processor.title),
    ))
    root.append(_status(job))
    if form.lineage:
        root.append(_data_inputs(job, processor, form.given))
        root.append(_output_definitions(form, processor))
    if job.status == JobStatus.SUCCESSFUL:
        root.append(_process_outputs(job, processor, form, base_url, jobs_dir, items or {}))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _status(job: Job) -> etree._Element:
    created = (job.updated or job.created).isoformat()
    status = WPS.Status({"creationTime": created})
    shown = shown_status(job)
    if shown == JobStatus.ACCEPTED:
        status.append(WPS.ProcessAccepted(job.message or "Process accepted"))
    elif shown == JobStatus.RUNNING:
        status.append(WPS.ProcessStarted({"percentCompleted": str(job.progress)}, job.message or "Running"))
    elif job.status == JobStatus.SUCCESSFUL:
        status.append(WPS.ProcessSucceeded(job.message or "Process succeeded"))
    else:
        text = job.message or ("Job dismissed" if job.status == JobStatus.DISMISSED else "Process failed")
        status.append(WPS.ProcessFailed(OWS.ExceptionReport(
            {"version": "1.0.0"},
            OWS.Exception({"exceptionCode": "NoApplicableCode"}, OWS.ExceptionText(text)),
        )))
    return status


def _data_inputs(job: Job, processor: Processor, given: list[str] | None) -> etree._Element:
    """The inputs the request gave (defaults it left out are not lineage)."""
    element = WPS.DataInputs()
    for spec in processor.inputs:
        if given is not None and spec.id not in given:
            continue
        for value in job.inputs.get(spec.id, []):
            if spec.is_complex:
                data: Any = WPS.Reference({f"{{{XLINK_NS}}}href": redact(str(value)), "mimeType": spec.media_type})
            elif spec.is_bbox:
                data = WPS.Data(bounding_box(WPS.BoundingBoxData, OWS, value))
            else:
                data = WPS.Data(WPS.LiteralData(literal_text(value)))
            element.append(WPS.Input(OWS.Identifier(spec.id), OWS.Title(spec.title), data))
    return element


def _output_definitions(form: ResponseForm, processor: Processor) -> etree._Element:
    element = WPS.OutputDefinitions()
    for spec in form.requested(processor):
        attrs = {"asReference": "true" if form.by_reference(spec) else "false"} if spec.is_complex else {}
        element.append(WPS.Output(attrs, OWS.Identifier(spec.id)))
    return element


def _process_outputs(job: Job, processor: Processor, form: ResponseForm, base_url: str,
                     jobs_dir: Path, items: Mapping[str, str]) -> etree._Element:
    element = WPS.ProcessOutputs()
    for spec in form.requested(processor):
        produced = job.outputs.get(spec.id)
        if produced is None:
            continue
        output = WPS.Output(OWS.Identifier(spec.id), OWS.Title(spec.title))
        if spec.id in items:
            output.append(OWS.Metadata({f"{{{XLINK_NS}}}href": items[spec.id],
                                        f"{{{XLINK_NS}}}title": "STAC Item describing this output"}))
        if spec.is_bbox:
            output.append(WPS.Data(bounding_box(WPS.BoundingBoxData, OWS, produced["value"])))
        elif not spec.is_complex:
            output.append(WPS.Data(WPS.LiteralData({"dataType": PYWPS_LITERAL_TYPES[spec.literal_type]},
                                                   literal_text(produced["value"]))))
        elif form.by_reference(spec):
            output.append(WPS.Reference({"href": output_url(base_url, job.id, produced["file"]),
                                         "mimeType": spec.media_type}))
        else:
            output.append(WPS.Data(_inline_complex(job, spec.media_type or "", produced, jobs_dir)))
        element.append(output)
    return element


def _inline_complex(job: Job, media_type: str, produced: dict[str, Any], jobs_dir: Path) -> etree._Element:
    content = output_bytes(jobs_dir, job.id, produced)
    return xml_inline(WPS.ComplexData, media_type, content)


def bounding_box(outer: Any, ows: ElementMaker, value: dict[str, Any]) -> etree._Element:
    """A bounding box as OWS writes it: ``outer`` makes the element (``ows:BoundingBox``, or WPS 1.0.0's
    ``wps:BoundingBoxData`` of the same type), ``ows`` its corners."""
    lower, upper, dimensions = corners(value)
    return outer({"crs": value["crs"], "dimensions": str(dimensions)}, ows.LowerCorner(lower), ows.UpperCorner(upper))
