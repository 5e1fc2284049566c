"""WPS 2.0 exceptions: OWS 2.0 ExceptionReports with the codes and HTTP statuses the standards give.

The status of each code comes from the WPS 2.0 standard (OGC 14-065, the
exception tables of each operation) and OWS Common 2.0 (OGC 06-121r9,
Table 28). Every client error is a 4xx; only the server's own failures (and
operations the server does not implement, 501 in OWS Common) are 5xx.
"""

from __future__ import annotations

from lxml import etree
from werkzeug.wrappers import Response

from ..xml_text import xml_text

OWS_NS = "http://www.opengis.net/ows/2.0"
XML_NS = "http://www.w3.org/XML/1998/namespace"

HTTP_STATUS = {
    # OWS Common 2.0, Table 28
    "OperationNotSupported": 501,
    "OptionNotSupported": 501,
    "MissingParameterValue": 400,
    "InvalidParameterValue": 400,
    "VersionNegotiationFailed": 400,
    "NoApplicableCode": 500,
    # WPS 2.0
    "NoSuchProcess": 400,
    "NoSuchMode": 400,
    "NoSuchInput": 400,
    "NoSuchOutput": 400,
    "DataNotAccessible": 400,
    "SizeExceeded": 400,
    "TooManyInputs": 400,
    "TooManyOutputs": 400,
    "NoSuchFormat": 400,
    "WrongInputData": 400,
    "InternalServerError": 500,
    "NoSuchJob": 400,
    "ResultNotReady": 400,
}


class Wps2Error(Exception):
    """A WPS 2.0 request failed; rendered as an OWS 2.0 ExceptionReport."""

    def __init__(self, code: str, text: str, locator: str | None = None, status: int | None = None) -> None:
        super().__init__(text)
        if code not in HTTP_STATUS:
            raise ValueError(f"unknown WPS 2.0 exception code {code!r}")
        self.code = code
        self.text = text
        self.locator = locator
        self._status = status  # e.g. 503 for NoApplicableCode while the store is unreachable

    @property
    def status(self) -> int:
        return self._status or HTTP_STATUS[self.code]

    def to_xml(self) -> bytes:
        ows = f"{{{OWS_NS}}}"
        root = etree.Element(f"{ows}ExceptionReport", {"version": "2.0.0", f"{{{XML_NS}}}lang": "en-US"},
                             nsmap={"ows": OWS_NS})
        attrs = {"exceptionCode": self.code}
        if self.locator:
            attrs["locator"] = xml_text(self.locator)
        exception = etree.SubElement(root, f"{ows}Exception", attrs)
        etree.SubElement(exception, f"{ows}ExceptionText").text = xml_text(self.text)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def response(self) -> Response:
        return Response(self.to_xml(), self.status, mimetype="text/xml")
