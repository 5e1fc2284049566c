"""STAC search paging and collections on a store of hand-made items (no jobs run), on SQLite and PostgreSQL:
next links go on after the page's last item, and the collections cost one query whatever their number."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from shapely.geometry import box
from sqlalchemy import event

from wps_gateway.jobs import PageKey
from wps_gateway.ogcapi import paging
from wps_gateway.stac import records
from wps_gateway.store.models import Job, JobStatus, StacItem

from .conftest import Gateway, build_gateway, close_gateway

START = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def front(request, tmp_path, sample_data) -> Iterator[Gateway]:
    """A gateway without a dispatcher, in auth mode none (every item is visible)."""
    extra = {} if request.param == "sqlite" else {"GATEWAY_DATABASE_URL": request.getfixturevalue("postgres_url")}
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, **extra)
    yield gateway
    close_gateway(gateway)


def add_items(gateway: Gateway, collection: str, count: int, first: int = 0, west: float = 10.0) -> list[str]:
    """``count`` items of one job, a minute apart (the newest last), each a 1-degree square from ``west``."""
    job_id = f"job-{collection}-{first}"
    ids = [f"{collection}-{n:03d}" for n in range(first, first + count)]
    with gateway.store.session() as session:
        session.add(Job(id=job_id, process_id=collection, process_version="1", status=JobStatus.SUCCESSFUL))
        session.flush()
        for n, item_id in enumerate(ids, start=first):
            when = START + timedelta(days=n)
            edge = west + n
            square = [[edge, 50.0], [edge + 1, 50.0], [edge + 1, 51.0], [edge, 51.0], [edge, 50.0]]
            session.add(StacItem(id=item_id, job_id=job_id, collection=collection, start=when, end=when,
                                 west=edge, south=50.0, east=edge + 1, north=51.0,
                                 created=START + timedelta(minutes=n),
                                 document={"type": "Feature", "stac_version": "1.1.0", "id": item_id,
                                           "collection": collection, "bbox": [edge, 50.0, edge + 1, 51.0],
                                           "geometry": {"type": "Polygon", "coordinates": [square]},
                                           "properties": {"datetime": when.isoformat()}, "assets": {},
                                           "links": []}))
    return ids


def follow(gateway: Gateway, first: Any, between=lambda: None) -> list[list[str]]:
    """The item ids of each page, from the first answer along its next links (``between``: after each page)."""
    pages, answer = [], first
    while True:
        pages.append([item["id"] for item in answer.json["features"]])
        between()
        following = [link for link in answer.json["links"] if link["rel"] == "next"]
        if not following:
            return pages
        link = following[0]
        if link.get("method") == "POST":
            answer = gateway.client.post_json(urlsplit(link["href"]).path, link["body"])
        else:
            parts = urlsplit(link["href"])
            answer = gateway.client.get(f"{parts.path}?{parts.query}")


def test_next_links_go_on_after_the_last_item_even_as_items_are_added(front):
    ids = add_items(front, "sleepy-squares", 5)
    newest_first = ids[::-1]
    added = itertools.count(100)

    def a_new_item() -> None:  # the newest of all: with offsets it would push an item seen onto the next page
        add_items(front, "sleepy-squares", 1, first=next(added))

    pages = follow(front, front.client.get("/stac/search", {"collections": "sleepy-squares", "limit": 2}),
                   a_new_item)
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    # a geometry's exact test reads the store in chunks, each after the last: the same pages
    pages = follow(front, front.client.post_json("/stac/search", {"bbox": [10.5, 50.2, 13.5, 50.8], "limit": 2}))
    assert pages == [["sleepy-squares-003", "sleepy-squares-002"], ["sleepy-squares-001", "sleepy-squares-000"]]
    answer = front.client.get("/stac/search", {"ids": ",".join(ids), "limit": 2, "offset": 3}).json
    assert [item["id"] for item in answer["features"]] == newest_first[3:5]


def test_a_geometry_search_scans_in_chunks_after_the_last(front, monkeypatch):
    monkeypatch.setattr(records, "SCAN_CHUNK", 2)
    ids = add_items(front, "sleepy-squares", 7)
    everything = records.ItemQuery(geometry=box(0, 0, 90, 89))  # every square, by exact test
    found, following = records.search(front.store, everything, records.Page(3))
    assert found == _documents(front, ids[::-1][:3]) and following is not None
    rest, last = records.search(front.store, everything, records.Page(10, offset=1, after=following))
    assert [d["id"] for d in rest] == ids[::-1][4:] and last is None


def _documents(gateway: Gateway, ids: list[str]) -> list[dict[str, Any]]:
    with gateway.store.sessions() as session:
        return [session.get(StacItem, item_id).document for item_id in ids]


def test_a_token_no_next_link_gave_is_a_400(front):
    for token in ("nonsense", "W10", paging.cursor(paging.NEXT, PageKey(START, "x"))[:-3],
                  paging.cursor(paging.PREV, PageKey(START, "x"))):
        problem = front.client.get("/stac/search", {"token": token}, status=400).json
        assert problem["status"] == 400 and "token" in problem["detail"], token
    problem = front.client.post_json("/stac/search", {"token": 5}, status=400).json
    assert "token" in problem["detail"]


def test_the_collections_and_their_extents_are_one_query(front):
    add_items(front, "sleepy-squares", 2)
    add_items(front, "retired", 3, west=-20.0)  # a process no longer deployed: its items stay listed
    statements: list[str] = []
    event.listen(front.store.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *rest: statements.append(sql) if "stac_items" in sql else None)
    collections = {c["id"]: c for c in front.client.get("/stac/collections").json["collections"]}
    assert len(statements) == 1
    assert collections["retired"]["extent"]["spatial"]["bbox"] == [[-20.0, 50.0, -17.0, 51.0]]
    assert collections["retired"]["extent"]["temporal"]["interval"] == [["2024-06-01T00:00:00Z",
                                                                        "2024-06-03T00:00:00Z"]]
    assert collections["sleepy-squares"]["extent"]["spatial"]["bbox"] == [[10.0, 50.0, 12.0, 51.0]]
    assert collections["ndvi-mosaic"]["extent"]["temporal"]["interval"] == [[None, None]]  # no items yet
    one = front.client.get("/stac/collections/retired").json
    assert one["extent"] == collections["retired"]["extent"]
    assert [i["id"] for i in front.client.get("/stac/collections/retired/items").json["features"]] == [
        "retired-002", "retired-001", "retired-000"]
    front.client.get("/stac/collections/never-was/items", status=404)
    front.client.get("/stac/collections/never-was", status=404)
