"""STAC items in the job store: written once a job is described, read by the STAC API.

Every read joins the item's job and applies the caller's visibility (the
same condition as ``/jobs``), so another user's items are never found.
Spatial filters are a bounding-box query on indexed columns followed by an
exact intersection of the item's geometry (shapely); time filters compare
intervals. Items come newest first, then by id; a page goes on after the last
item of the one before (its key, ``jobs.PageKey`` as for ``/jobs``; a next link's ``token``), so every page
costs the same and an item added meanwhile shifts none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import ColumnElement, Row, Select, and_, bindparam, delete, func, or_, select
from sqlalchemy.orm import Session

from ..jobs import PageKey
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


@dataclass(frozen=True)
class Page:
    """Which matches a search returns: ``limit`` of them, after ``after`` (a next link's), ``offset`` more in."""

    limit: int
    offset: int = 0
    after: PageKey | None = None


@dataclass(frozen=True)
class Extent:
    """The bounding box (None: no geometry) and the time interval of a collection's items."""

    bbox: list[float] | None
    interval: list[datetime | None]


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


def search(store: Store, query: ItemQuery, page: Page) -> tuple[list[dict[str, Any]], PageKey | None]:
    """Up to ``page.limit`` item documents, and the key to go on after (None: nothing more matches).

    Without a geometry the database pages (offset and limit); a geometry's exact test reads on in chunks,
    each after the last.
    """
    statement = _statement(query)
    if page.after is not None:
        statement = statement.where(_after(page.after))
    if query.geometry is None:
        with store.sessions() as session:
            rows = session.execute(statement.offset(page.offset).limit(page.limit + 1)).all()
        more = len(rows) > page.limit
        rows = rows[:page.limit]
        return [row.document for row in rows], _key(rows[-1]) if more else None
    found: list[Row[Any]] = []
    skipped = 0
    for row in _scan(store, statement):
        if not _meets(row.document, query.geometry):
            continue
        if skipped < page.offset:
            skipped += 1
        elif len(found) == page.limit:
            return [row.document for row in found], _key(found[-1])
        else:
            found.append(row)
    return [row.document for row in found], None


def find_item(store: Store, collection: str, item_id: str, visible: ColumnElement[bool] | None) -> dict | None:
    found, _ = search(store, ItemQuery(collections=(collection,), ids=(item_id,), visible=visible), Page(1))
    return found[0] if found else None


def extents(store: Store, visible: ColumnElement[bool] | None, collection: str | None = None) -> dict[str, Extent]:
    """The extent of each collection's items the caller may see (or of ``collection``'s), in one grouped query;
    a collection without such items is not there."""
    statement = _visible(select(StacItem.collection, func.min(StacItem.west), func.min(StacItem.south),
                                func.max(StacItem.east), func.max(StacItem.north), func.min(StacItem.start),
                                func.max(StacItem.end)), visible).group_by(StacItem.collection)
    if collection is not None:
        statement = statement.where(StacItem.collection == collection)
    with store.sessions() as session:
        rows = session.execute(statement).all()
    return {row[0]: Extent(list(row[1:5]) if row[1] is not None else None, [row[5], row[6]]) for row in rows}


def has_items(store: Store, collection: str, visible: ColumnElement[bool] | None) -> bool:
    """Whether the caller may see an item of ``collection`` (the first one the index finds)."""
    with store.sessions() as session:
        return session.scalar(_visible(select(StacItem.id), visible)
                              .where(StacItem.collection == collection).limit(1)) is not None


def _statement(query: ItemQuery) -> Select:
    statement = _visible(select(StacItem.document, StacItem.created, StacItem.id), query.visible)
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
    return statement.order_by(StacItem.created.desc(), StacItem.id)


def _scan(store: Store, statement: Select) -> Iterator[Row[Any]]:
    """The rows of ``statement``, read ``SCAN_CHUNK`` at a time, each chunk after the last one's key."""
    chunk_statement = statement
    while True:
        with store.sessions() as session:
            chunk = session.execute(chunk_statement.limit(SCAN_CHUNK)).all()
        yield from chunk
        if len(chunk) < SCAN_CHUNK:
            return
        chunk_statement = statement.where(_after(_key(chunk[-1])))


def _after(key: PageKey) -> ColumnElement[bool]:
    """The items after ``key`` in the search order: older, or as old with a greater id."""
    return or_(StacItem.created < key.created, and_(StacItem.created == key.created, StacItem.id > key.id))


def _key(row: Row[Any]) -> PageKey:
    return PageKey(row.created, row.id)


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

