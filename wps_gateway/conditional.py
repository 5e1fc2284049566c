"""Conditional GET: documents with an ETag, answered ``304 Not Modified`` when the client has them already.

Two kinds of ETag. A document rendered once and kept (capabilities, process
descriptions, the OpenAPI document) gets a strong ETag, the hash of its
bytes, so every replica serving the same catalogue gives the same one. A
job's status is rendered on each request from the job's state, and some of
it is a function of the clock (WPS 2.0's ``NextPoll``): it gets a weak ETag,
the hash of everything the document shows of the job (``state_etag``), which
changes exactly when the job does and can be checked before anything is
rendered.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from werkzeug.http import unquote_etag
from werkzeug.wrappers import Request, Response

from . import __version__

T = TypeVar("T")
Version = int | tuple[int, ...]  # grows with every change: a catalogue's, a store's data version

# Headers a 304 repeats from the 200 it stands for (RFC 9110, 15.4.5).
KEPT_ON_304 = ("Cache-Control", "Vary", "Content-Location", "Expires")


@dataclass(frozen=True)
class Document:
    """A rendered document, its media type and its ETag (quoted, as the header carries it)."""

    body: bytes
    content_type: str
    etag: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, body: bytes | str, content_type: str, headers: Mapping[str, str] | None = None) -> Document:
        """A document whose strong ETag is the hash of its bytes."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        return cls(data, content_type, f'"{_digest(data)}"', dict(headers or {}))


def state_etag(*state: Any) -> str:
    """A weak ETag of what a document shows (JSON-able values; dates as text), with the gateway's version,
    so that a new rendering of the same state after an upgrade is not mistaken for the old one."""
    text = json.dumps([__version__, *state], sort_keys=True, default=str, separators=(",", ":"))
    return f'W/"{_digest(text.encode("utf-8"))}"'


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def not_modified(request: Request | None, etag: str) -> bool:
    """Whether a GET (or HEAD) says, with ``If-None-Match``, that the client holds ``etag`` (weak comparison)."""
    if request is None or request.method not in ("GET", "HEAD") or "HTTP_IF_NONE_MATCH" not in request.environ:
        return False
    return request.if_none_match.contains_weak(unquote_etag(etag)[0])


def not_modified_response(etag: str, headers: Mapping[str, str] | None = None) -> Response:
    """``304 Not Modified``: no body, the ETag and the caching headers the full answer would carry."""
    response = Response(status=304)
    response.headers["ETag"] = etag
    for name, value in (headers or {}).items():
        if name in KEPT_ON_304:
            response.headers[name] = value
    return response


def respond(request: Request | None, document: Document, status: int = 200) -> Response:
    """The document, or a 304 when the request's ``If-None-Match`` names its ETag."""
    if status == 200 and not_modified(request, document.etag):
        return not_modified_response(document.etag, document.headers)
    response = Response(document.body, status, content_type=document.content_type)
    response.headers.update(document.headers)
    response.headers["ETag"] = document.etag
    return response


def conditional(request: Request | None, etag: str, render: Callable[[], Response],
                headers: Mapping[str, str] | None = None) -> Response:
    """A 304 when the client holds ``etag`` (nothing rendered), else what ``render`` makes, with the ETag;
    ``headers`` (Cache-Control, Vary) go on either answer."""
    headers = headers or {}
    if not_modified(request, etag):
        return not_modified_response(etag, headers)
    response = render()
    if response.status_code == 200:
        response.headers.update(headers)
        response.headers["ETag"] = etag
    return response


class DocumentCache(Generic[T]):
    """Documents rendered once per catalogue version, the least recently used dropped beyond ``size``.

    ``version`` is the catalogue's (``GatewayContext.catalogue``, growing by
    one with every change): a document asked for under a newer version is
    rendered again, and everything kept for older versions is dropped at
    once; a request still holding an older version gets its document
    rendered, not kept. The key says what else the document depends on
    (operation, identifiers, language, format, query). The job views that
    pollers read are kept the same way, per data version of the store
    (``job_views.StatusViews``).
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._version: Version | None = None
        self._documents: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: Version, key: Hashable, render: Callable[[], T]) -> T:
        with self._lock:
            if self._version is None or version > self._version:
                self._documents.clear()
                self._version = version
            document = self._documents.get(key) if version == self._version else None
            if document is not None:
                self._documents.move_to_end(key)
                return document
        document = render()  # outside the lock: a slow rendering holds up no other request
        with self._lock:
            if version == self._version:
                self._documents[key] = document
                while len(self._documents) > self.size:
                    self._documents.popitem(last=False)
        return document
