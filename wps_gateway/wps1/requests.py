"""WPS 1.0.0 request checks PyWPS does not make, and the KVP output list it misreads.

PyWPS 4.8 serves a DescribeProcess without ``version`` (it assumes 1.0.0),
says "Unknown process 'None'" for an Execute without identifier, runs a POST
Execute whose ``service`` is not WPS, and reads ``ResponseDocument=id@asReference=true``
as an output named ``id@asReference=true``. The checks here run first, with
the exception codes and locators of OWS Common 1.1 (OGC 06-121r3, Table 25)
and WPS 1.0.0 (OGC 05-007r7, Table 62).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree
from pywps.exceptions import InvalidParameterValue, MissingParameterValue, OperationNotSupported

WPS_NS = "http://www.opengis.net/wps/1.0.0"
OWS_NS = "http://www.opengis.net/ows/1.1"
VERSION = "1.0.0"
SUPPORTED_VERSIONS = ("1.0.0", "2.0.0")
OPERATIONS = {"getcapabilities": "GetCapabilities", "describeprocess": "DescribeProcess", "execute": "Execute"}


def negotiate(accept_versions: list[str]) -> str | None:
    """The version to answer GetCapabilities in: the first one the client lists that is supported
    (OWS Common 1.1, 7.3.2); ``1.0.0`` when it lists none; None when it lists only unsupported ones."""
    if not accept_versions:
        return VERSION
    return next((v for v in accept_versions if v in SUPPORTED_VERSIONS), None)


def kvp_versions(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def xml_versions(root: etree._Element) -> list[str]:
    """ows:AcceptVersions of a GetCapabilities, OWS 1.1 (WPS 1.0.0) or 2.0."""
    return [v.text.strip() for v in root.iterfind("{*}AcceptVersions/{*}Version") if v.text and v.text.strip()]


def check_kvp(args: Mapping[str, str]) -> None:
    """A WPS 1.0.0 GET request: service, request, version and identifier as the standard asks."""
    params = {k.lower(): v for k, v in args.items()}
    _service(params.get("service"))
    operation = _operation(params.get("request"))
    if operation != "GetCapabilities":
        _version(params.get("version"))
        if not (params.get("identifier") or "").strip():
            raise MissingParameterValue(f"{operation} needs an identifier", "identifier")


def check_xml(root: etree._Element) -> None:
    """A WPS 1.0.0 POST request document."""
    name = etree.QName(root)
    if name.namespace != WPS_NS or name.localname not in OPERATIONS.values():
        raise OperationNotSupported(f"unknown WPS 1.0.0 request element {name.localname}", "request")
    _service(root.get("service"))
    if name.localname == "GetCapabilities":
        return
    _version(root.get("version"))
    if not (root.findtext(f"{{{OWS_NS}}}Identifier") or "").strip():
        raise MissingParameterValue(f"{name.localname} needs an ows:Identifier", "identifier")
    for number, element in enumerate(root.iterfind(f"{{{WPS_NS}}}DataInputs/{{{WPS_NS}}}Input"), 1):
        if not (element.findtext(f"{{{OWS_NS}}}Identifier") or "").strip():  # PyWPS fails on it
            raise MissingParameterValue(f"input {number} of DataInputs needs an ows:Identifier", "Input")


def _service(value: str | None) -> None:
    if not value or not value.strip():
        raise MissingParameterValue("the service parameter is required", "service")
    if value.strip().upper() != "WPS":
        raise InvalidParameterValue(f"service {value!r} is not offered here; use WPS", "service")


def _operation(value: str | None) -> str:
    if not value or not value.strip():
        raise MissingParameterValue("the request parameter is required", "request")
    operation = OPERATIONS.get(value.strip().lower())
    if operation is None:
        raise OperationNotSupported(f"WPS 1.0.0 has no operation {value!r}", "request")
    return operation


def _version(value: str | None) -> None:
    if not value or not value.strip():
        raise MissingParameterValue("the version parameter is required", "version")
    if value.strip() != VERSION:
        raise InvalidParameterValue(f"version {value!r} is not {VERSION}", "version")


@dataclass
class OutputRequest:
    """One output of ``ResponseDocument`` or ``RawDataOutput``, in KVP: ``id@attribute=value@...``."""

    id: str
    attributes: dict[str, str] = field(default_factory=dict)


def kvp_outputs(text: str) -> list[OutputRequest]:
    """``ResponseDocument=a@asReference=true;b`` or ``RawDataOutput=a@mimeType=image/tiff`` (OGC 05-007r7,
    Table 51): outputs separated by ``;``, each an identifier with ``@name=value`` attributes."""
    outputs = []
    for part in (p for p in text.split(";") if p.strip()):
        identifier, *attributes = part.split("@")
        parsed: dict[str, str] = {}
        for attribute in attributes:
            key, sep, value = attribute.partition("=")
            if not sep or not key.strip():
                raise InvalidParameterValue(f"output attribute {attribute!r} is not name=value", identifier)
            parsed[key.strip()] = unquote(value)
        if not identifier.strip() or "=" in identifier:
            raise InvalidParameterValue(f"output {part!r} must start with an output identifier", "ResponseDocument")
        outputs.append(OutputRequest(unquote(identifier.strip()), parsed))
    return outputs
