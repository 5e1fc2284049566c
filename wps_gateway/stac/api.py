"""The STAC API read path under ``/stac``: landing page, collections (one per process), items, search.

Items are a job's; the caller sees them as it sees ``/jobs`` (the same
visibility condition), so another user's item is *not found* and a search
returns only what the caller may see. The landing page, conformance and the
collections are public like the process list (unless ``protect_catalogue``);
a collection's extent counts only the items the caller may see.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote, urlencode

import shapely
from shapely.errors import GEOSException, ShapelyError
from shapely.geometry import MultiPolygon, box, shape
from shapely.geometry.base import BaseGeometry
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..auth.identity import identity_of, require
from ..context import GatewayContext
from ..jobs import PageKey
from ..ogcapi import paging
from ..ogcapi.execute import read_json_body
from ..ogcapi.openapi import OPENAPI_MEDIA_TYPE
from ..ogcapi.problems import Problem, invalid_parameter
from ..ogcapi.routes import MAX_OFFSET, datetime_interval, int_param, list_param
from . import records
from .items import GEOJSON, collection_document, item_url
from .records import Extent, ItemQuery, Page

JSON = "application/json"
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
MAX_LIMIT = 1000
DEFAULT_LIMIT = 10
SEARCH_KEYS = {"bbox": list, "datetime": str, "collections": list, "ids": list, "limit": int, "offset": int,
               "intersects": dict, "token": str}
GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                  "GeometryCollection"}


class StacApi:
    def __init__(self, context: GatewayContext) -> None:
        self.context = context

    @property
    def root(self) -> str:
        return f"{self.context.settings.base_url}/stac"

    def rules(self) -> list[Rule]:
        return [
            Rule("/stac", endpoint=self.on_landing, methods=["GET"]),
            Rule("/stac/conformance", endpoint=self.on_conformance, methods=["GET"]),
            Rule("/stac/collections", endpoint=self.on_collections, methods=["GET"]),
            Rule("/stac/collections/<collection_id>", endpoint=self.on_collection, methods=["GET"]),
            Rule("/stac/collections/<collection_id>/items", endpoint=self.on_items, methods=["GET"]),
            Rule("/stac/collections/<collection_id>/items/<item_id>", endpoint=self.on_item, methods=["GET"]),
            Rule("/stac/search", endpoint=self.on_search, methods=["GET", "POST"]),
        ]

    # -- catalogue -----------------------------------------------------------

    def on_landing(self, request: Request) -> Response:
        self._catalogue(request)
        root = self.root
        links = [_link(root, "self", JSON, "STAC API of the gateway's results"), _link(root, "root", JSON),
                 _link(f"{root}/conformance", "conformance", JSON, "conformance classes"),
                 _link(f"{root}/collections", "data", JSON, "collections: one per process"),
                 {**_link(f"{root}/search", "search", GEOJSON, "item search"), "method": "GET"},
                 {**_link(f"{root}/search", "search", GEOJSON, "item search"), "method": "POST"},
                 _link(f"{self.context.settings.base_url}/api", "service-desc", OPENAPI_MEDIA_TYPE,
                       "API definition (OpenAPI 3.0)")]
        extents = records.extents(self.context.store, self.context.visible_jobs(identity_of(request)))
        links += [_link(self._collection_url(c), "child", JSON, c) for c in self._collection_ids(extents)]
        return _json({"type": "Catalog", "id": "wps-gateway", "stac_version": "1.1.0", "title": "Job results",
                      "description": "STAC Items of the products of the gateway's successful jobs, one collection "
                                     "per process", "conformsTo": CONFORMANCE, "links": links})

    def on_conformance(self, request: Request) -> Response:
        self._catalogue(request)
        return _json({"conformsTo": CONFORMANCE})

    def on_collections(self, request: Request) -> Response:
        self._catalogue(request)
        extents = records.extents(self.context.store, self.context.visible_jobs(identity_of(request)))
        collections = [self._collection(c, extents.get(c)) for c in self._collection_ids(extents)]
        return _json({"collections": collections, "links": [
            _link(f"{self.root}/collections", "self", JSON), _link(self.root, "root", JSON),
            _link(self.root, "parent", JSON)]})

    def on_collection(self, request: Request, collection_id: str) -> Response:
        self._catalogue(request)
        extent = records.extents(self.context.store, self.context.visible_jobs(identity_of(request)),
                                 collection_id).get(collection_id)
        if extent is None and collection_id not in self.context.processors():
            raise _no_collection(collection_id)
        return _json(self._collection(collection_id, extent))

    # -- items ---------------------------------------------------------------

    def on_items(self, request: Request, collection_id: str) -> Response:
        visible = self._visible(request)
        if collection_id not in self.context.processors() and not records.has_items(
                self.context.store, collection_id, visible):
            raise _no_collection(collection_id)
        query, page = self._query_args(request, visible)
        query = ItemQuery(**{**query.__dict__, "collections": (collection_id,)})
        return self._page(request, query, page, f"{self._collection_url(collection_id)}/items")

    def on_item(self, request: Request, collection_id: str, item_id: str) -> Response:
        found = records.find_item(self.context.store, collection_id, item_id, self._visible(request))
        if found is None:
            raise Problem(404, "Not found", f"collection {collection_id} has no item {item_id}")
        return _json(self._served(found), GEOJSON)

    def on_search(self, request: Request) -> Response:
        visible = self._visible(request)
        if request.method == "POST":
            body = read_json_body(request, self.context.settings.max_request_bytes)
            query, page = self._query_body(body, visible)
            return self._page(request, query, page, f"{self.root}/search", body=body)
        query, page = self._query_args(request, visible)
        return self._page(request, query, page, f"{self.root}/search")

    # -- helpers -------------------------------------------------------------

    def _page(self, request: Request, query: ItemQuery, page: Page, href: str,
              body: dict[str, Any] | None = None) -> Response:
        """A page of matches; its next link goes on after its last item (``token``)."""
        found, following = records.search(self.context.store, query, page)
        links = [_link(self.root, "root", JSON)]
        if body is None:
            args = list(request.args.items(multi=True))
            links.append(_link(_with_query(href, args), "self", GEOJSON))
            if following is not None:
                args = [(k, v) for k, v in args if k not in ("offset", "token")]
                links.append(_link(_with_query(href, args + [("token", _token(following))]), "next", GEOJSON))
        elif following is not None:
            rest = {k: v for k, v in body.items() if k != "offset"}
            links.append({**_link(href, "next", GEOJSON), "method": "POST", "merge": False,
                          "body": {**rest, "token": _token(following)}})
        return _json({"type": "FeatureCollection", "features": [self._served(d) for d in found],
                      "numberReturned": len(found), "links": links}, GEOJSON)

    def _served(self, document: dict[str, Any]) -> dict[str, Any]:
        """An item as served here: its stored document and the links that say where it is."""
        collection = document["collection"]
        return {**document, "links": [*document.get("links", []),
                                      _link(item_url(self.context.settings.base_url, collection, document["id"]),
                                            "self", GEOJSON),
                                      _link(self._collection_url(collection), "parent", JSON),
                                      _link(self._collection_url(collection), "collection", JSON),
                                      _link(self.root, "root", JSON)]}

    def _collection(self, collection_id: str, extent: Extent | None) -> dict[str, Any]:
        """The collection's document; ``extent``: of the items the caller may see (None: none)."""
        processor = self.context.processors().get(collection_id)
        document = collection_document(collection_id, processor, extent.bbox if extent else None,
                                       extent.interval if extent else [None, None])
        href = self._collection_url(collection_id)
        document["links"] = [_link(href, "self", JSON), _link(self.root, "root", JSON),
                             _link(self.root, "parent", JSON), _link(f"{href}/items", "items", GEOJSON, "its items")]
        if processor is not None:
            document["links"].append(_link(f"{self.context.settings.base_url}/processes/{quote(collection_id)}",
                                           "related", JSON, "the process that makes them"))
        return document

    def _collection_ids(self, extents: dict[str, Extent]) -> list[str]:
        """One collection per process, and per process gone that left items the caller may see."""
        return sorted(set(self.context.processors()) | set(extents))

    def _collection_url(self, collection_id: str) -> str:
        return f"{self.root}/collections/{quote(collection_id, safe='')}"

    def _visible(self, request: Request):
        """The caller's visibility condition; items need an identity, as jobs do."""
        return self.context.visible_jobs(require(request))

    def _catalogue(self, request: Request) -> None:
        if self.context.settings.auth.protect_catalogue:
            require(request)

    def _query_args(self, request: Request, visible: Any) -> tuple[ItemQuery, Page]:
        start, end = datetime_interval(request.args.get("datetime"))
        bbox = list_param(request, "bbox")
        query = ItemQuery(collections=tuple(list_param(request, "collections")), ids=tuple(list_param(request, "ids")),
                          geometry=bbox_geometry(_numbers(bbox)) if bbox else None, start=start, end=end,
                          visible=visible)
        return query, Page(int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
                           int_param(request, "offset", 0, 0, MAX_OFFSET), _after(request.args.get("token")))

    def _query_body(self, body: Any, visible: Any) -> tuple[ItemQuery, Page]:
        if not isinstance(body, dict):
            raise invalid_parameter("a search is a JSON object", "body")
        for key, kind in SEARCH_KEYS.items():
            value = body.get(key)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise invalid_parameter(f"{key} must be a JSON {kind.__name__.replace('dict', 'object')}", key)
        for key in ("collections", "ids"):
            if not all(isinstance(v, str) for v in body.get(key) or []):
                raise invalid_parameter(f"{key} must be a list of strings", key)
        if body.get("bbox") is not None and body.get("intersects") is not None:
            raise invalid_parameter("bbox and intersects exclude each other", "intersects")
        geometry = None
        if body.get("bbox") is not None:
            geometry = bbox_geometry(_numbers(body["bbox"]))
        elif body.get("intersects") is not None:
            geometry = geojson_geometry(body["intersects"])
        start, end = datetime_interval(body.get("datetime"))
        limit, offset = body.get("limit", DEFAULT_LIMIT), body.get("offset", 0)
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid_parameter(f"limit must be from 1 to {MAX_LIMIT}, not {limit}", "limit")
        if not 0 <= offset <= MAX_OFFSET:
            raise invalid_parameter(f"offset must be from 0 to {MAX_OFFSET}, not {offset}", "offset")
        return (ItemQuery(collections=tuple(body.get("collections") or ()), ids=tuple(body.get("ids") or ()),
                          geometry=geometry, start=start, end=end, visible=visible),
                Page(limit, offset, _after(body.get("token"))))


def _token(key: PageKey) -> str:
    """A next link's ``token``: the key of the page's last item, as ``/jobs`` cursors carry theirs."""
    return paging.cursor(paging.NEXT, key)


def _after(token: Any) -> PageKey | None:
    """The key a next link's ``token`` names (None: from the first match); a 400 for a token it never gave."""
    if token is None:
        return None
    try:
        if not isinstance(token, str):
            raise ValueError(token)
        direction, key = paging.read_cursor(token)
        if direction != paging.NEXT:
            raise ValueError(token)
    except ValueError:
        raise invalid_parameter(f"token {token!r} is not one a next link gave", "token") from None
    return key


def _no_collection(collection_id: str) -> Problem:
    return Problem(404, "Not found", f"no collection {collection_id}")


def bbox_geometry(values: list[float]) -> BaseGeometry:
    """``west, south, east, north`` (or with heights: 6 numbers) in WGS84; west > east crosses the antimeridian."""
    if len(values) not in (4, 6):
        raise invalid_parameter(f"bbox has 4 numbers (or 6 with heights), not {len(values)}", "bbox")
    west, south, east, north = values[:2] + values[3:5] if len(values) == 6 else values
    if not all(-180 <= v <= 180 for v in (west, east)) or not all(-90 <= v <= 90 for v in (south, north)):
        raise invalid_parameter("bbox longitudes are from -180 to 180 and latitudes from -90 to 90", "bbox")
    if south > north:
        raise invalid_parameter("bbox: its south edge is north of its north edge", "bbox")
    if west <= east:
        return box(west, south, east, north)
    return MultiPolygon([box(west, south, 180, north), box(-180, south, east, north)])


def geojson_geometry(value: dict[str, Any]) -> BaseGeometry:
    """``intersects``: a GeoJSON geometry in WGS84."""
    if value.get("type") not in GEOMETRY_TYPES:
        raise invalid_parameter(f"intersects must be a GeoJSON geometry ({', '.join(sorted(GEOMETRY_TYPES))})",
                                "intersects")
    try:
        geometry = shape(value)
        shapely.prepare(geometry)
        if geometry.is_empty or not geometry.is_valid:
            raise ValueError("empty or not valid (self-intersecting?)")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, GEOSException, ShapelyError) as exc:
        raise invalid_parameter(f"intersects is not a usable GeoJSON geometry: {exc}", "intersects") from None
    return geometry


def _numbers(values: list[Any]) -> list[float]:
    try:
        numbers = [float(v) for v in values if not isinstance(v, bool)]
    except (TypeError, ValueError):
        raise invalid_parameter("bbox must be numbers: west,south,east,north", "bbox") from None
    if len(numbers) != len(values) or not all(math.isfinite(n) for n in numbers):
        raise invalid_parameter("bbox must be finite numbers: west,south,east,north", "bbox")
    return numbers


def _link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    link = {"href": href, "rel": rel, "type": type_}
    if title:
        link["title"] = title
    return link


def _with_query(href: str, args: list[tuple[str, str]]) -> str:
    return f"{href}?{urlencode(args)}" if args else href


def _json(doc: Any, content_type: str = JSON) -> Response:
    return Response(json.dumps(doc, indent=2), 200, content_type=content_type)
