"""STAC items in the job store: written once a job is described, read by the STAC API.

Every read joins the item's job and applies the caller's visibility (the
same condition as ``/jobs``), so another user's items are never found.
Spatial filters are a bounding-box query on indexed columns followed by an
exact intersection of the item's geometry (shapely); time filters compare
intervals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import ColumnElement, Select, and_, bindparam, delete, func, select
from sqlalchemy.orm import Session

from ..store.db import Store
from ..store.models import Job, StacItem

SCAN_CHUNK = 500  # rows read at a time while exact spatial tests filter them


@dataclass(frozen=True)
class ItemQuery:
    """What a search asks for; empty fields do not filter."""

    collections: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    geometry: BaseGeometry | None = None  # bbox or intersects, in WGS84 longitude/latitude
    start: datetime | None = None
    end: datetime | None = None
    visible: ColumnElement[bool] | None = None  # the caller's jobs (None: every job)
    job_id: str | None = None


def save_items(session: Session, job_id: str, documents: list[dict[str, Any]]) -> None:
    """Replace the items of ``job_id`` by ``documents`` (describing a job again changes nothing else)."""
    session.execute(delete(StacItem).where(StacItem.job_id == job_id))
    for document in documents:
        west, south, east, north = _edges(document.get("bbox"))
        start, end = _interval(document["properties"])
        session.add(StacItem(id=document["id"], job_id=job_id, collection=document["collection"], start=start,
                             end=end, west=west, south=south, east=east, north=north, document=document))


def _edges(box: list[float] | None) -> tuple[float | None, ...]:
    """West, south, east, north of a STAC bbox: ``[w, s, e, n]``, or ``[w, s, low, e, n, high]`` in 3D."""
    if not box:
        return None, None, None, None
    half = len(box) // 2
    return box[0], box[1], box[half], box[half + 1]


_ITEM_IDS = select(StacItem.id).where(StacItem.job_id == bindparam("job_id")).order_by(StacItem.id)


def item_ids(store: Store, job_id: str) -> list[str]:
    """The ids of a job's Items (a job's status links them: one statement, built once)."""
    with store.engine.connect() as connection:
        return list(connection.scalars(_ITEM_IDS, {"job_id": job_id}))


def job_documents(session: Session, job_id: str) -> list[dict[str, Any]]:
    return list(session.scalars(select(StacItem.document).where(StacItem.job_id == job_id).order_by(StacItem.id)))


def search(store: Store, query: ItemQuery, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` item documents after ``offset`` matches, newest first, and whether more match."""
    found: list[dict[str, Any]] = []
    skipped = 0
    for document in _matches(store, query):
        if skipped < offset:
            skipped += 1
            continue
        if len(found) == limit:
            return found, True
        found.append(document)
    return found, False


def find_item(store: Store, collection: str, item_id: str, visible: ColumnElement[bool] | None) -> dict | None:
    found, _ = search(store, ItemQuery(collections=(collection,), ids=(item_id,), visible=visible), 1)
    return found[0] if found else None


def extent(store: Store, collection: str, visible: ColumnElement[bool] | None) -> tuple[list[float] | None,
                                                                                         list[datetime | None]]:
    """The bounding box and time interval of the collection's items the caller may see (None: no items)."""
    with store.sessions() as session:
        row = session.execute(_visible(select(func.min(StacItem.west), func.min(StacItem.south),
                                              func.max(StacItem.east), func.max(StacItem.north),
                                              func.min(StacItem.start), func.max(StacItem.end))
                                       .where(StacItem.collection == collection), visible)).one()
    box = list(row[:4]) if row[0] is not None else None
    return box, [row[4], row[5]]


def collections_with_items(store: Store, visible: ColumnElement[bool] | None) -> set[str]:
    with store.sessions() as session:
        return set(session.scalars(_visible(select(StacItem.collection).distinct(), visible)))


def _matches(store: Store, query: ItemQuery) -> Iterator[dict[str, Any]]:
    statement = _visible(select(StacItem.document), query.visible)
    if query.collections:
        statement = statement.where(StacItem.collection.in_(query.collections))
    if query.ids:
        statement = statement.where(StacItem.id.in_(query.ids))
    if query.job_id:
        statement = statement.where(StacItem.job_id == query.job_id)
    if query.start is not None:
        statement = statement.where(StacItem.end >= query.start)
    if query.end is not None:
        statement = statement.where(StacItem.start <= query.end)
    if query.geometry is not None:
        statement = statement.where(_boxes_meet(query.geometry))
    statement = statement.order_by(StacItem.created.desc(), StacItem.id)
    position = 0
    while True:
        with store.sessions() as session:
            chunk = list(session.scalars(statement.offset(position).limit(SCAN_CHUNK)))
        for document in chunk:
            if query.geometry is None or _meets(document, query.geometry):
                yield document
        if len(chunk) < SCAN_CHUNK:
            return
        position += SCAN_CHUNK


def _visible(statement: Select, visible: ColumnElement[bool] | None) -> Select:
    statement = statement.join(Job, Job.id == StacItem.job_id)
    return statement if visible is None else statement.where(visible)


def _boxes_meet(geometry: BaseGeometry) -> ColumnElement[bool]:
    west, south, east, north = shapely.bounds(geometry)
    return and_(StacItem.west.is_not(None), StacItem.west <= east, StacItem.east >= west,
                StacItem.south <= north, StacItem.north >= south)


def _meets(document: dict[str, Any], geometry: BaseGeometry) -> bool:
    own = document.get("geometry")
    return own is not None and shape(own).intersects(geometry)


def _interval(properties: dict[str, Any]) -> tuple[datetime, datetime]:
    when = properties.get("datetime")
    start = properties.get("start_datetime") or when
    end = properties.get("end_datetime") or when
    return _parse(start), _parse(end)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))

