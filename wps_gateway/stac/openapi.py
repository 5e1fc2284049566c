"""The ``/stac`` paths of the served OpenAPI document (merged into ``/api`` by ``ogcapi.openapi``)."""

from __future__ import annotations

from typing import Any

from ..ogcapi.openapi import LINKS, _array, _errors, _ref
from ..ogcapi.routes import MAX_OFFSET
from .api import MAX_LIMIT

GEOJSON = "application/geo+json"
NULLABLE_TIME = {"type": "string", "format": "date-time", "nullable": True}
LONGITUDES = {"type": "number", "minimum": -180, "maximum": 180}
BBOX = {**_array(LONGITUDES), "minItems": 4, "maxItems": 4,
        "description": "west,south,east,north in WGS84 (latitudes from -90 to 90; west > east crosses the "
                       "antimeridian); six numbers, with heights, are accepted too"}

SCHEMAS: dict[str, Any] = {
    "stacCatalog": {"type": "object", "required": ["type", "id", "stac_version", "description", "links",
                                                   "conformsTo"], "properties": {
        "type": {"type": "string", "enum": ["Catalog"]}, "id": {"type": "string"},
        "stac_version": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
        "conformsTo": _array({"type": "string"}), "links": LINKS}},
    "stacCollection": {"type": "object", "required": ["type", "id", "stac_version", "description", "license",
                                                      "extent", "links"], "properties": {
        "type": {"type": "string", "enum": ["Collection"]}, "id": {"type": "string"},
        "stac_version": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
        "license": {"type": "string"}, "keywords": _array({"type": "string"}), "links": LINKS,
        "extent": {"type": "object", "required": ["spatial", "temporal"], "properties": {
            "spatial": {"type": "object", "properties": {"bbox": _array(_array({"type": "number"}))}},
            "temporal": {"type": "object", "properties": {"interval": _array(_array(NULLABLE_TIME))}}}}}},
    "stacCollections": {"type": "object", "required": ["collections", "links"], "properties": {
        "collections": _array(_ref("stacCollection")), "links": LINKS}},
    "stacItem": {"type": "object", "required": ["type", "stac_version", "id", "geometry", "properties", "links",
                                                "assets"], "properties": {
        "type": {"type": "string", "enum": ["Feature"]}, "stac_version": {"type": "string"},
        "stac_extensions": _array({"type": "string"}), "id": {"type": "string"},
        "geometry": {"type": "object", "nullable": True}, "bbox": _array({"type": "number"}),
        "properties": {"type": "object"}, "assets": {"type": "object"}, "collection": {"type": "string"},
        "links": LINKS}},
    "stacItemCollection": {"type": "object", "required": ["type", "features", "links"], "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]}, "features": _array(_ref("stacItem")),
        "numberReturned": {"type": "integer", "minimum": 0}, "links": LINKS}},
    "stacSearch": {"type": "object", "properties": {
        "bbox": BBOX, "intersects": {"type": "object", "description": "a GeoJSON geometry (instead of bbox)"},
        "datetime": {"type": "string", "format": "date-time",
                     "description": "an RFC 3339 instant; an interval start/end (either end '..') is accepted too"},
        "collections": _array({"type": "string"}), "ids": _array({"type": "string"}),
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
        "token": {"type": "string", "description": "where the next page starts (as a next link gives it)"}}},
}

PARAMETERS: dict[str, Any] = {
    "collectionId": {"name": "collectionId", "in": "path", "required": True, "schema": {"type": "string"},
                     "example": "ndvi-mosaic"},
    "itemId": {"name": "itemId", "in": "path", "required": True, "schema": {"type": "string"}},
    "stac_bbox": {"name": "bbox", "in": "query", "required": False, "style": "form", "explode": False,
                  "schema": BBOX},
    "stac_datetime": {"name": "datetime", "in": "query", "required": False, "schema": {
        "type": "string", "format": "date-time"}, "description": "an RFC 3339 instant or an interval start/end "
                                                                "(either end '..'): items whose time meets it"},
    "stac_limit": {"name": "limit", "in": "query", "required": False,
                   "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10}},
    "stac_offset": {"name": "offset", "in": "query", "required": False, "description": "items to skip (paging)",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}},
    "stac_token": {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
                   "description": "where the next page starts: the next link's (opaque)"},
    **{f"stac_{name}": {"name": name, "in": "query", "required": False, "style": "form", "explode": False,
                        "description": text, "schema": _array({"type": "string"})}
       for name, text in (("collections", "only items of these collections (processes)"),
                          ("ids", "only these items"))},
}


def _ok(schema: str, description: str, media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": _ref(schema)}}}


def _get(operation_id: str, summary: str, ok: dict[str, Any], params: list[str], errors: tuple[int, ...]
         ) -> dict[str, Any]:
    return {"operationId": operation_id, "summary": summary, "tags": ["STAC"],
            "parameters": [_ref(p, "parameters") for p in params], "responses": {"200": ok, **_errors(*errors)}}


def paths() -> dict[str, Any]:
    search_params = ["stac_bbox", "stac_datetime", "stac_collections", "stac_ids", "stac_limit", "stac_offset",
                     "stac_token"]
    items = _ok("stacItemCollection", "the items the caller may see", GEOJSON)
    return {
        "/stac": {"get": _get("getStacLanding", "STAC API landing page (a Catalog)",
                              _ok("stacCatalog", "the catalog, its conformance and links"), [], (401,))},
        "/stac/conformance": {"get": _get("getStacConformance", "STAC API conformance classes",
                                          _ok("confClasses", "conformance declaration"), [], (401,))},
        "/stac/collections": {"get": _get("getStacCollections", "collections: one per process",
                                          _ok("stacCollections", "the collections"), [], (401,))},
        "/stac/collections/{collectionId}": {"get": _get(
            "getStacCollection", "a process's collection", _ok("stacCollection", "the collection"),
            ["collectionId"], (401, 404))},
        "/stac/collections/{collectionId}/items": {"get": _get(
            "getStacItems", "items of a collection", items,
            ["collectionId", "stac_bbox", "stac_datetime", "stac_limit", "stac_offset", "stac_token"],
            (400, 401, 404))},
        "/stac/collections/{collectionId}/items/{itemId}": {"get": _get(
            "getStacItem", "one item", _ok("stacItem", "the item", GEOJSON), ["collectionId", "itemId"],
            (401, 404))},
        "/stac/search": {
            "get": _get("searchStacGet", "search items by bbox, datetime, collection (process) and id", items,
                        search_params, (400, 401)),
            "post": {"operationId": "searchStacPost", "summary": "search items (JSON body)", "tags": ["STAC"],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("stacSearch")}}},
                     "responses": {"200": items, **_errors(400, 401, 413, 415)}}},
    }
