"""A POSTed XML request, parsed once per request however many places read it.

The body is parsed without entities, DTDs or network access (the guard in
``xml_guard`` has already refused a document type declaration); the tree is
kept in the WSGI environ, so the protocol checks, the WPS 2.0 dispatch and the
bounding boxes of an Execute all read the same one. Nobody may change it.
"""

from __future__ import annotations

from lxml import etree
from werkzeug.wrappers import Request

SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_KEY = "wps_gateway.xml_body"


def body_root(request: Request) -> etree._Element:
    """The root element of the request's XML body; ``etree.XMLSyntaxError`` if it is not well-formed."""
    root = request.environ.get(_KEY)
    if root is None:
        root = request.environ[_KEY] = etree.fromstring(request.get_data(), SAFE_XML)
    return root
