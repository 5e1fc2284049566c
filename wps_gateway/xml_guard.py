"""What every XML request body passes before anything reads it for its meaning.

A body is refused when it is too large, not well-formed, not a WPS request,
or carries a document type declaration (the way to entity expansion and
external entities). The declaration is found by libxml2 itself while it
parses, after decoding the bytes as the document says (byte order mark,
XML declaration, UTF-16 or UTF-32 detection), exactly as the parsers that
read the request afterwards (PyWPS's, WPS 2.0's) will decode them; a search of
the raw bytes misses ``<!DOCTYPE`` in UTF-16. Parsing stops at the
declaration, before its internal subset: no entity is ever declared.

A refusal (``BodyRefused``) is answered in the words of the version the
request is for: an OWS 2.0 report for what names the WPS 2.0 namespace and
not the 1.0.0 one, an OWS 1.1 report otherwise.
"""

from __future__ import annotations

from lxml import etree
from pywps.exceptions import FileSizeExceeded, InvalidParameterValue, NoApplicableCode
from werkzeug.wrappers import Request, Response

from .wps2.errors import Wps2Error
from .wps2.requests import names_wps2

WPS_NAMESPACES = ("http://www.opengis.net/wps/1.0.0", "http://www.opengis.net/wps/2.0")
# libxml2 2.11.0 reworked its entity amplification checks ("billion laughs" is detected reliably,
# for documents that get past this guard into other parsers); older ones must not parse requests.
LIBXML2_FLOOR = (2, 11, 0)


class LibxmlTooOld(RuntimeError):
    """lxml is linked with a libxml2 older than :data:`LIBXML2_FLOOR`."""


def require_libxml2_limits(version: tuple[int, ...] = etree.LIBXML_VERSION) -> None:
    """Refuse to run on a libxml2 without the entity amplification limits (a distribution's lxml may
    be linked with an old system libxml2, whatever version of lxml pip would have installed)."""
    if tuple(version) < LIBXML2_FLOOR:
        raise LibxmlTooOld(
            f"lxml {etree.__version__} is linked with libxml2 {'.'.join(map(str, version))}; the gateway needs "
            f"libxml2 {'.'.join(map(str, LIBXML2_FLOOR))} or later (entity amplification limits): "
            "install lxml from PyPI (its wheels carry a recent libxml2) or upgrade the system libxml2")


def request_too_large(limit: int) -> FileSizeExceeded:
    """An OWS FileSizeExceeded exception answered with HTTP 413."""
    return FileSizeExceeded(f"Request body exceeds the limit of {limit} bytes", "request", code=413)


class BodyRefused(Exception):
    """A POST body refused before any parsing: answered as an OWS exception of the version it is for."""

    def __init__(self, code: str, text: str, status: int = 400, wps2: bool = False) -> None:
        super().__init__(text)
        self.code, self.text, self.status, self.wps2 = code, text, status, wps2

    def response(self, environ) -> Response:
        if self.wps2:
            return Wps2Error(self.code, self.text, "request", status=self.status).response()
        ows1 = {"FileSizeExceeded": FileSizeExceeded, "InvalidParameterValue": InvalidParameterValue}
        return ows1.get(self.code, NoApplicableCode)(self.text, "request", code=self.status).get_response(environ)


class _DoctypeFound(Exception):
    """Raised from the parser target; lxml stops the parser and passes it on."""


class _RootAndDoctype:
    """Parser target: remembers the root element's name, stops at a document type declaration.

    libxml2 reports the declaration as soon as its name is read, before the internal subset.
    """

    def __init__(self) -> None:
        self.root: str | None = None

    def doctype(self, name: str, public_id: str | None, system_url: str | None) -> None:
        raise _DoctypeFound(name)

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if self.root is None:
            self.root = tag

    def close(self) -> str | None:
        return self.root


def root_of_safe_xml(body: bytes) -> str:
    """The ``{namespace}name`` of the document's root; BodyRefused (400) for a document with a DOCTYPE or one
    that is not well-formed."""
    wps2 = names_wps2(body)
    parser = etree.XMLParser(target=_RootAndDoctype(), resolve_entities=False, no_network=True,
                             load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(body, parser)
    except _DoctypeFound:
        raise BodyRefused("NoApplicableCode", "DOCTYPE and ENTITY declarations are not allowed in requests",
                          wps2=wps2) from None
    except etree.XMLSyntaxError as exc:
        raise BodyRefused("NoApplicableCode", f"The request is not well-formed XML: {exc}", wps2=wps2) from None
    if root is None:
        raise BodyRefused("NoApplicableCode", "The request is not well-formed XML: it has no root element", wps2=wps2)
    return root


def guard_xml_body(request: Request, limit: int) -> None:
    """Refuse oversized bodies, DTDs (entity expansion, external entities) and malformed XML (BodyRefused)."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(request.stream.read(4096), limit)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise _too_large(body, limit)
    request._cached_data = body  # PyWPS reads the body through get_data()
    if "json" in (request.content_type or ""):
        return
    root = root_of_safe_xml(body)
    if etree.QName(root).namespace not in WPS_NAMESPACES:
        raise BodyRefused("InvalidParameterValue", f"Unknown request element {root}; expected a WPS 1.0.0 or 2.0 "
                          "request")


def _too_large(start: bytes, limit: int) -> BodyRefused:
    """The size refusal; OWS 2.0 when the part read shows a WPS 2.0 request (WPS 2.0 calls it SizeExceeded)."""
    text = f"Request body exceeds the limit of {limit} bytes"
    if names_wps2(start):
        return BodyRefused("SizeExceeded", text, status=413, wps2=True)
    return BodyRefused("FileSizeExceeded", text, status=413)
