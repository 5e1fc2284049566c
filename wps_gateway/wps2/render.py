"""WPS 2.0 documents: Capabilities, ProcessOfferings from descriptors; StatusInfo, Result from jobs.

Rendered with lxml rather than PyWPS: PyWPS 4.8's 2.0 capabilities template
does not validate (lower-case contact elements, a namespaced processVersion,
literal ``process.title``) and it has no 2.0 DescribeProcess, StatusInfo or
Result at all. Like the 1.0.0 status document, nothing here is stored: each
document is built from the job store when asked for.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pywps.configuration as pywps_config
from lxml import etree
from lxml.builder import ElementMaker

from processes.descriptor import UNBOUNDED, IOSpec, Processor

from ..jobs import ResponseForm, processor_of, shown_status
from ..outputs import literal_text, xml_inline
from ..results import output_bytes
from ..store.models import Job, JobStatus
from ..wps1.render import bounding_box, output_url
from ..xml_text import SAFE_TEXT
from .requests import OWS_NS, VERSION, WPS_NS, XLINK_NS

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XML_NS = "http://www.w3.org/XML/1998/namespace"
NSMAP = {"wps": WPS_NS, "ows": OWS_NS, "xlink": XLINK_NS, "xsi": XSI_NS}
SCHEMA_LOCATION = f"{WPS_NS} http://schemas.opengis.net/wps/2.0/wps.xsd"
WPS = ElementMaker(namespace=WPS_NS, nsmap=NSMAP, typemap=SAFE_TEXT)
OWS = ElementMaker(namespace=OWS_NS, nsmap=NSMAP, typemap=SAFE_TEXT)
PLAIN = ElementMaker(typemap=SAFE_TEXT)  # dataTypes.xsd has no elementFormDefault: LiteralDataDomain is unqualified

JOB_CONTROL = "sync-execute async-execute dismiss"
OUTPUT_TRANSMISSION = "value reference"
OPERATIONS = ("GetCapabilities", "DescribeProcess", "Execute", "GetStatus", "GetResult", "Dismiss")
XSD_TYPES = {"number": "double", "integer": "integer", "string": "string", "boolean": "boolean"}
STATUS_WORDS = {JobStatus.ACCEPTED: "Accepted", JobStatus.RUNNING: "Running", JobStatus.SUCCESSFUL: "Succeeded",
                JobStatus.FAILED: "Failed", JobStatus.DISMISSED: "Dismissed"}
NEXT_POLL_SECONDS = 2
_CLOCK = b"  <wps:Clock/>\n"  # where status_info writes the elements that move with the clock


def _document(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _href(url: str) -> dict[str, str]:
    return {f"{{{XLINK_NS}}}href": url}


# -- Capabilities -------------------------------------------------------------


def capabilities(processors: list[Processor], service_url: str) -> bytes:
    """The WPS 2.0 Capabilities: service metadata from ``[metadata:main]``, one summary per processor."""
    root = WPS.Capabilities({"service": "WPS", "version": VERSION, f"{{{XSI_NS}}}schemaLocation": SCHEMA_LOCATION},
                            _service_identification(), _service_provider(), _operations(service_url))
    root.append(WPS.Contents(*(_process_summary(p) for p in processors)))
    return _document(root)


def _meta(key: str) -> str:
    return (pywps_config.get_config_value("metadata:main", key) or "").strip()


def _keywords(words: list[str] | tuple[str, ...], kind: str = "") -> list[etree._Element]:
    words = [w.strip() for w in words if w.strip()]
    if not words:
        return []
    element = OWS.Keywords(*(OWS.Keyword(w) for w in words))
    if kind:
        element.append(OWS.Type(kind))
    return [element]


def _service_identification() -> etree._Element:
    element = OWS.ServiceIdentification(OWS.Title(_meta("identification_title") or "WPS"))
    if _meta("identification_abstract"):
        element.append(OWS.Abstract(_meta("identification_abstract")))
    element.extend(_keywords(_meta("identification_keywords").split(","), _meta("identification_keywords_type")))
    element.extend([OWS.ServiceType("WPS"), OWS.ServiceTypeVersion(VERSION)])
    element.append(OWS.Fees(_meta("identification_fees") or "NONE"))
    element.append(OWS.AccessConstraints(_meta("identification_accessconstraints") or "NONE"))
    return element


def _service_provider() -> etree._Element:
    element = OWS.ServiceProvider(OWS.ProviderName(_meta("provider_name") or "unknown"))
    if _meta("provider_url"):
        element.append(OWS.ProviderSite(_href(_meta("provider_url"))))
    contact = OWS.ServiceContact()
    if _meta("contact_name"):
        contact.append(OWS.IndividualName(_meta("contact_name")))
    if _meta("contact_position"):
        contact.append(OWS.PositionName(_meta("contact_position")))
    info = OWS.ContactInfo()
    if _meta("contact_email"):
        info.append(OWS.Address(OWS.ElectronicMailAddress(_meta("contact_email"))))
    if _meta("contact_url"):
        info.append(OWS.OnlineResource(_href(_meta("contact_url"))))
    if len(info):
        contact.append(info)
    if _meta("contact_role"):
        contact.append(OWS.Role(_meta("contact_role")))
    element.append(contact)
    return element


def _operations(service_url: str) -> etree._Element:
    def operation(name: str) -> etree._Element:
        methods = [OWS.Post(_href(service_url))] if name == "Execute" else [OWS.Get(_href(service_url)),
                                                                            OWS.Post(_href(service_url))]
        return OWS.Operation({"name": name}, OWS.DCP(OWS.HTTP(*methods)))

    return OWS.OperationsMetadata(*(operation(name) for name in OPERATIONS))


def _process_attributes(processor: Processor) -> dict[str, str]:
    return {"jobControlOptions": JOB_CONTROL, "outputTransmission": OUTPUT_TRANSMISSION,
            "processVersion": processor.version}


def _description(title: str, identifier: str, abstract: str = "", keywords: tuple[str, ...] = ()) -> list:
    """Title, Abstract, Keywords, Identifier: the order of wps:DescriptionType."""
    parts: list = [OWS.Title(title)]
    if abstract:
        parts.append(OWS.Abstract(abstract))
    parts.extend(_keywords(keywords))
    parts.append(OWS.Identifier(identifier))
    return parts


def _process_summary(processor: Processor) -> etree._Element:
    return WPS.ProcessSummary(_process_attributes(processor),
                              *_description(processor.title, processor.id, processor.description,
                                            processor.keywords))


# -- ProcessOfferings ---------------------------------------------------------


def process_offerings(processors: list[Processor]) -> bytes:
    """The DescribeProcess answer: full inputs and outputs, in the order asked for."""
    root = WPS.ProcessOfferings({f"{{{XSI_NS}}}schemaLocation": SCHEMA_LOCATION})
    for processor in processors:
        process = WPS.Process({f"{{{XML_NS}}}lang": "en-US"},
                              *_description(processor.title, processor.id, processor.description,
                                            processor.keywords))
        for spec in processor.inputs:
            occurs = {"minOccurs": str(spec.min_occurs),
                      "maxOccurs": "unbounded" if spec.max_occurs >= UNBOUNDED else str(spec.max_occurs)}
            process.append(WPS.Input(occurs, *_description(spec.title, spec.id, spec.description),
                                     _data_description(spec)))
        for spec in processor.outputs:
            process.append(WPS.Output(*_description(spec.title, spec.id, spec.description),
                                      _data_description(spec)))
        root.append(WPS.ProcessOffering(_process_attributes(processor), process))
    return _document(root)


def _data_description(spec: IOSpec) -> etree._Element:
    if spec.is_complex:
        return WPS.ComplexData(*_formats(spec.formats))
    if spec.is_bbox:
        return WPS.BoundingBoxData(*_formats(["text/xml"]),
                                   *(WPS.SupportedCRS({"default": "true"} if n == 0 else {}, crs)
                                     for n, crs in enumerate(spec.crs)))
    domain = PLAIN.LiteralDataDomain({"default": "true"}, _allowed_values(spec))
    xsd_type = XSD_TYPES[spec.literal_type]
    domain.append(OWS.DataType({f"{{{OWS_NS}}}reference": f"http://www.w3.org/2001/XMLSchema#{xsd_type}"},
                               xsd_type))
    if spec.default is not None:
        domain.append(OWS.DefaultValue(literal_text(spec.default)))
    return WPS.LiteralData(WPS.Format({"mimeType": "text/plain", "default": "true"}), domain)


def _formats(media_types) -> list[etree._Element]:
    return [WPS.Format({"mimeType": media_type, **({"default": "true"} if n == 0 else {})})
            for n, media_type in enumerate(media_types)]


def _allowed_values(spec: IOSpec) -> etree._Element:
    schema = spec.schema
    if "enum" in schema:
        return OWS.AllowedValues(*(OWS.Value(literal_text(v)) for v in schema["enum"]))
    if "minimum" in schema or "maximum" in schema:
        bounds = []
        if "minimum" in schema:
            bounds.append(OWS.MinimumValue(literal_text(schema["minimum"])))
        if "maximum" in schema:
            bounds.append(OWS.MaximumValue(literal_text(schema["maximum"])))
        return OWS.AllowedValues(OWS.Range({f"{{{OWS_NS}}}rangeClosure": "closed"}, *bounds))
    return OWS.AnyValue()


# -- StatusInfo and Result ----------------------------------------------------


def status_word(job: Job) -> str:
    """The WPS 2.0 status of a job; a job whose dismissal is under way already counts as dismissed."""
    if job.cancel_requested and job.status in JobStatus.ACTIVE:
        return "Dismissed"
    return STATUS_WORDS[shown_status(job)]


def status_info(job: Job, now: datetime | None = None, parts: tuple[bytes, bytes] | None = None) -> bytes:
    """StatusInfo: status, progress, and for active jobs an estimate and a suggested next poll; ``parts``: what
    ``status_parts`` made of this job before (pollers' reads keep them, and only the clock's elements change)."""
    head, tail = parts or status_parts(job)
    if status_word(job) not in ("Accepted", "Running"):
        return head + tail
    now = now or datetime.now(UTC)
    clock = (("EstimatedCompletion", _estimated_completion(job, now)),
             ("NextPoll", now + timedelta(seconds=NEXT_POLL_SECONDS)))
    return head + b"".join(f"  <wps:{name}>{value.isoformat()}</wps:{name}>\n".encode()
                           for name, value in clock if value is not None) + tail


def status_parts(job: Job) -> tuple[bytes, bytes]:
    """The StatusInfo document of ``job`` before and after the elements that move with the clock (a date-time
    each, written in between as lxml writes the rest: one a line, indented by two spaces)."""
    percent = 100 if job.status == JobStatus.SUCCESSFUL else max(0, min(100, job.progress or 0))
    root = WPS.StatusInfo(WPS.JobID(job.id), WPS.Status(status_word(job)), WPS.Clock(),
                          WPS.PercentCompleted(str(percent)))
    head, tail = _document(root).split(_CLOCK)
    return head, tail


def _estimated_completion(job: Job, now: datetime) -> datetime | None:
    """Linear extrapolation from the time spent so far and the share of tasks done."""
    if job.status != JobStatus.RUNNING or not job.started or not 0 < (job.progress or 0) < 100:
        return None
    elapsed = now - job.started
    return job.started + elapsed * (100 / job.progress)


def result(job: Job, base_url: str, jobs_dir: Path) -> bytes:
    """The Result of a succeeded job: literals and ``transmission=value`` inline, files by reference."""
    processor = processor_of(job)
    form = ResponseForm.from_dict(job.response_form)
    root = WPS.Result(WPS.JobID(job.id))
    for spec in form.requested(processor):
        produced = job.outputs.get(spec.id)
        if produced is None:
            continue
        output = WPS.Output({"id": spec.id})
        if form.by_reference(spec):
            output.append(WPS.Reference({**_href(output_url(base_url, job.id, produced["file"])),
                                         "mimeType": spec.media_type or "text/plain"}))
        elif spec.is_bbox:
            output.append(WPS.Data(bounding_box(OWS.BoundingBox, OWS, produced["value"])))
        elif not spec.is_complex:
            xsd_type = XSD_TYPES[spec.literal_type]
            output.append(WPS.Data({"mimeType": "text/plain"}, WPS.LiteralValue(
                {"dataType": f"http://www.w3.org/2001/XMLSchema#{xsd_type}"}, literal_text(produced["value"]))))
        else:
            output.append(_inline_complex(spec.media_type or "", output_bytes(jobs_dir, job.id, produced)))
        root.append(output)
    return _document(root)


def _inline_complex(media_type: str, content: bytes) -> etree._Element:
    return xml_inline(WPS.Data, media_type, content)
