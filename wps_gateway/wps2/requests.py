"""WPS 2.0 requests, XML (POST) and KVP (GET), parsed into small dataclasses.

Parsing only checks the request's shape (operation, version, required
parameters); whether a process, input or job exists is the handlers' business.
The XML parser resolves no entities and fetches nothing, like the one that
guards every POST body (``xml_guard.py``).
"""

from __future__ import annotations

import codecs
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from werkzeug.wrappers import Request

from ..inputs import RawInput
from ..wps1.requests import negotiate
from ..xml_body import body_root
from .errors import Wps2Error

WPS_NS = "http://www.opengis.net/wps/2.0"
WPS1_NS = "http://www.opengis.net/wps/1.0.0"
OWS_NS = "http://www.opengis.net/ows/2.0"
OWS_NAMESPACES = (OWS_NS, "http://www.opengis.net/ows/1.1")
XLINK_NS = "http://www.w3.org/1999/xlink"
VERSION = "2.0.0"
WPS1_VERSION = "1.0.0"

JOB_OPERATIONS = ("GetStatus", "GetResult", "Dismiss")  # exist in WPS 2.0 only
OPERATIONS = ("GetCapabilities", "DescribeProcess", "Execute", *JOB_OPERATIONS)
MODES = ("sync", "async", "auto")
RESPONSES = ("document", "raw")
TRANSMISSIONS = ("value", "reference")


@dataclass
class GetCapabilities:
    accept_versions: list[str] = field(default_factory=list)


@dataclass
class DescribeProcess:
    identifiers: list[str]


@dataclass
class OutputRequest:
    """One ``wps:Output`` of an Execute: which output, in which format, by value or by reference."""

    id: str
    mime_type: str | None = None
    transmission: str | None = None  # "value" | "reference" | None (the server's default)


@dataclass
class Execute:
    identifier: str
    mode: str  # sync | async | auto
    response: str  # document | raw
    inputs: dict[str, list[RawInput]] = field(default_factory=dict)
    outputs: list[OutputRequest] = field(default_factory=list)


@dataclass
class JobRequest:
    """GetStatus, GetResult or Dismiss of one job."""

    operation: str
    job_id: str


Wps2Request = GetCapabilities | DescribeProcess | Execute | JobRequest


# -- routing ------------------------------------------------------------------


def is_wps2_kvp(args: Mapping[str, str]) -> bool:
    """Whether a GET request is for WPS 2.0: a version other than 1.0.0 (2.0.0, or one this server does not
    speak: a client that new gets OWS 2.0 exceptions), an operation only 2.0 has, or a GetCapabilities whose
    ``AcceptVersions`` names 2.0.0 before 1.0.0. Without either, it stays WPS 1.0.0, so existing 1.0.0
    clients (OWSLib, the portal) see no change."""
    params = _lower(args)
    version = params.get("version", "").strip()
    if version:
        return version != WPS1_VERSION
    operation = params.get("request", "").strip().lower()
    if operation in (op.lower() for op in JOB_OPERATIONS):
        return True
    if operation == "getcapabilities":
        return negotiate(_versions(params.get("acceptversions", ""))) == VERSION
    return False


def is_wps2_posted(request: Request) -> bool:
    """Whether a POST is a WPS 2.0 request: its root is in the 2.0 namespace, or it is a 1.0.0
    GetCapabilities whose ``AcceptVersions`` names 2.0.0 before 1.0.0."""
    try:
        root = body_root(request)
    except etree.XMLSyntaxError:
        return names_wps2(request.get_data())
    name = etree.QName(root)
    if name.namespace == WPS_NS:
        return True
    return name.namespace == WPS1_NS and name.localname == "GetCapabilities" and \
        negotiate(_accept_versions(root)) == VERSION


def names_wps2(body: bytes) -> bool:
    """Whether a body that cannot be parsed (malformed, or too large to read) looks like a WPS 2.0
    request, so that its error is an OWS 2.0 report: it names the 2.0 namespace and not the 1.0.0 one
    (in whatever Unicode encoding its byte order mark or first bytes show)."""
    text = _sniffed_text(body)
    return WPS_NS in text and WPS1_NS not in text


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_FIRST_BYTES = ((b"<\0\0\0", "utf-32-le"), (b"\0\0\0<", "utf-32-be"), (b"<\0", "utf-16-le"), (b"\0<", "utf-16-be"))


def _sniffed_text(body: bytes) -> str:
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(encoding, "replace")
    encoding = next((enc for start, enc in _FIRST_BYTES if body.startswith(start)), "utf-8")
    return body.decode(encoding, "replace")


def _versions(accept_versions: str) -> list[str]:
    return [v.strip() for v in accept_versions.split(",") if v.strip()]


def _accept_versions(root: etree._Element) -> list[str]:
    """ows:AcceptVersions of a GetCapabilities, OWS 1.1 (WPS 1.0.0) or 2.0."""
    return [v.text.strip() for v in root.iterfind("{*}AcceptVersions/{*}Version") if v.text and v.text.strip()]


# -- KVP ----------------------------------------------------------------------


def parse_kvp(args: Mapping[str, str]) -> Wps2Request:
    """A WPS 2.0 GET request; parameter names are case-insensitive (OWS Common)."""
    params = _lower(args)
    _check_service(params.get("service"))
    operation = _operation(params.get("request"))
    if operation == "GetCapabilities":
        version = params.get("version", "").strip()
        if version and version != VERSION:
            raise Wps2Error("InvalidParameterValue", f"version {version!r} is not offered; this server speaks WPS "
                            f"{WPS1_VERSION} and {VERSION}", "version")
        versions = _versions(params.get("acceptversions", ""))
        if versions and VERSION not in versions:
            raise Wps2Error("VersionNegotiationFailed", f"this server speaks WPS 1.0.0 and {VERSION}, "
                            f"not {', '.join(versions)}")
        return GetCapabilities(versions)
    _check_version(params.get("version"), required=operation not in JOB_OPERATIONS)
    if operation == "DescribeProcess":
        identifiers = [i.strip() for i in params.get("identifier", "").split(",") if i.strip()]
        if not identifiers:
            raise Wps2Error("MissingParameterValue", "DescribeProcess needs an identifier", "identifier")
        return DescribeProcess(identifiers)
    if operation == "Execute":
        raise Wps2Error("OperationNotSupported", "WPS 2.0 Execute is encoded in XML only: POST a wps:Execute "
                        "document", "Execute")
    job_id = params.get("jobid", "").strip()
    if not job_id:
        raise Wps2Error("MissingParameterValue", f"{operation} needs a jobId", "jobId")
    return JobRequest(operation, job_id)


def _lower(args: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in args.items()}


def _check_service(service: str | None) -> None:
    if not service:
        raise Wps2Error("MissingParameterValue", "the service parameter is required", "service")
    if service.strip().upper() != "WPS":
        raise Wps2Error("InvalidParameterValue", f"service {service!r} is not offered here; use WPS", "service")


def _check_version(version: str | None, required: bool = True) -> None:
    if not version:
        if required:
            raise Wps2Error("MissingParameterValue", "the version parameter is required", "version")
        return
    if version.strip() != VERSION:
        raise Wps2Error("InvalidParameterValue", f"version {version!r} is not {VERSION}", "version")


def _operation(name: str | None) -> str:
    if not name:
        raise Wps2Error("MissingParameterValue", "the request parameter is required", "request")
    for operation in OPERATIONS:
        if operation.lower() == name.strip().lower():
            return operation
    raise Wps2Error("OperationNotSupported", f"WPS 2.0 has no operation {name!r}", name)


# -- XML ----------------------------------------------------------------------


def parse_posted(request: Request) -> Wps2Request:
    """A WPS 2.0 POST request document."""
    try:
        root = body_root(request)
    except etree.XMLSyntaxError as exc:
        raise Wps2Error("NoApplicableCode", f"the request is not well-formed XML: {exc}") from None
    name = etree.QName(root)
    capabilities = name.localname == "GetCapabilities" and name.namespace in (WPS_NS, WPS1_NS)
    if not capabilities and (name.namespace != WPS_NS or name.localname not in OPERATIONS):
        raise Wps2Error("OperationNotSupported", f"unknown WPS 2.0 request element {name.localname}",
                        name.localname)
    _check_service(root.get("service"))
    if capabilities:
        versions = _accept_versions(root)
        if versions and VERSION not in versions:
            raise Wps2Error("VersionNegotiationFailed", f"this server speaks WPS 1.0.0 and {VERSION}, "
                            f"not {', '.join(versions)}")
        return GetCapabilities(versions)
    _check_version(root.get("version"))
    if name.localname == "DescribeProcess":
        identifiers = [(e.text or "").strip() for e in root.iterfind(f"{{{OWS_NS}}}Identifier")]
        if not any(identifiers):
            raise Wps2Error("MissingParameterValue", "DescribeProcess needs an ows:Identifier", "Identifier")
        return DescribeProcess([i for i in identifiers if i])
    if name.localname == "Execute":
        return _execute(root)
    job_id = (root.findtext(f"{{{WPS_NS}}}JobID") or "").strip()
    if not job_id:
        raise Wps2Error("MissingParameterValue", f"{name.localname} needs a wps:JobID", "JobID")
    return JobRequest(name.localname, job_id)


def _execute(root: etree._Element) -> Execute:
    identifier = (root.findtext(f"{{{OWS_NS}}}Identifier") or "").strip()
    if not identifier:
        raise Wps2Error("MissingParameterValue", "Execute needs an ows:Identifier", "Identifier")
    mode = _required_attribute(root, "mode")
    if mode not in MODES:
        raise Wps2Error("NoSuchMode", f"mode {mode!r} is not one of {', '.join(MODES)}", "mode")
    response = _required_attribute(root, "response")
    if response not in RESPONSES:
        raise Wps2Error("InvalidParameterValue", f"response {response!r} is not one of {', '.join(RESPONSES)}",
                        "response")
    inputs: dict[str, list[RawInput]] = {}
    for element in root.iterfind(f"{{{WPS_NS}}}Input"):
        input_id = _required_attribute(element, "id", "Input")
        inputs.setdefault(input_id, []).append(_input(element, input_id))
    outputs = [_output(element) for element in root.iterfind(f"{{{WPS_NS}}}Output")]
    return Execute(identifier, mode, response, inputs, outputs)


def _required_attribute(element: etree._Element, name: str, locator: str | None = None) -> str:
    value = (element.get(name) or "").strip()
    if not value:
        where = etree.QName(element).localname
        raise Wps2Error("MissingParameterValue", f"wps:{where} needs the attribute {name}", locator or name)
    return value


def _input(element: etree._Element, input_id: str) -> RawInput:
    data = element.find(f"{{{WPS_NS}}}Data")
    reference = element.find(f"{{{WPS_NS}}}Reference")
    if element.find(f"{{{WPS_NS}}}Input") is not None:
        raise Wps2Error("WrongInputData", f"input {input_id!r}: nested inputs are not supported", input_id)
    if reference is not None:
        href = reference.get(f"{{{XLINK_NS}}}href") or reference.get("href")
        if not href:
            raise Wps2Error("MissingParameterValue", f"input {input_id!r}: wps:Reference needs xlink:href", input_id)
        if len(reference):
            raise Wps2Error("DataNotAccessible", f"input {input_id!r}: references with a request body are not "
                            "supported", input_id)
        return RawInput(href=href.strip(), media_type=reference.get("mimeType"), encoding=reference.get("encoding"))
    if data is None:
        raise Wps2Error("MissingParameterValue", f"input {input_id!r} has neither wps:Data nor wps:Reference",
                        input_id)
    return RawInput(value=_data_content(data), media_type=data.get("mimeType"), encoding=data.get("encoding"))


def _data_content(data: etree._Element) -> Any:
    """Text for literals and text formats, the serialized element for inline XML (a ``wps:ComplexData``
    wrapper, as some clients send, is unwrapped), or a bounding box for an ``ows:BoundingBox``."""
    children = [c for c in data if isinstance(c.tag, str)]
    if not children:
        return (data.text or "").strip()
    child = children[0]
    name = etree.QName(child)
    if name == etree.QName(WPS_NS, "LiteralValue"):
        return (child.text or "").strip()
    if name.localname == "BoundingBox" and name.namespace in OWS_NAMESPACES:
        return {"bbox": [*(child.findtext("{*}LowerCorner") or "").split(),
                         *(child.findtext("{*}UpperCorner") or "").split()],
                **({"crs": child.get("crs")} if child.get("crs") else {})}
    if name == etree.QName(WPS_NS, "ComplexData"):
        return _data_content(child)
    document = copy.deepcopy(child)  # alone, without the request's namespace declarations it does not use
    etree.cleanup_namespaces(document)
    return etree.tostring(document)


def _output(element: etree._Element) -> OutputRequest:
    output_id = _required_attribute(element, "id", "Output")
    if element.find(f"{{{WPS_NS}}}Output") is not None:
        raise Wps2Error("NoSuchOutput", f"output {output_id!r} has no nested outputs", output_id)
    transmission = element.get("transmission")
    if transmission is not None and transmission not in TRANSMISSIONS:
        raise Wps2Error("InvalidParameterValue", f"output {output_id!r}: transmission {transmission!r} is not "
                        f"one of {', '.join(TRANSMISSIONS)}", "transmission")
    return OutputRequest(output_id, element.get("mimeType"), transmission)
