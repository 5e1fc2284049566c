"""STAC Items of successful jobs: valid (stac-validator), faithful to the files, served under /stac with
per-user visibility, searched by a client we did not write (pystac-client), linked from OGC API and WPS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from lxml import etree
from pystac.extensions.projection import ProjectionExtension
from pystac_client import Client
from rasterio.warp import transform as transform_points
from rasterio.warp import transform_bounds
from shapely.geometry import Point, shape
from sqlalchemy import delete

from wps_gateway.planner import job_paths
from wps_gateway.stac.items import Where, job_items
from wps_gateway.stac.publish import publisher_for
from wps_gateway.store.models import Job, JobStatus, Notification, StacItem

from .conftest import LiveGateway, assert_valid, serve_live
from .jobs_support import job_of, wait_for
from .stac_support import assert_valid_stac

PROXY = {"REMOTE_ADDR": "127.0.0.1"}
ALICE = {"X-Forwarded-User": "alice"}
BOB = {"X-Forwarded-User": "bob"}
OWS = {"ows": "http://www.opengis.net/ows/1.1", "wps": "http://www.opengis.net/wps/1.0.0",
       "xlink": "http://www.w3.org/1999/xlink"}


def get(live: LiveGateway, path: str, who: dict[str, str] | None = ALICE, **kw: Any):
    return live.gateway.client.get(path, headers=who or {}, extra_environ=PROXY, **kw)


def run(live: LiveGateway, process: str, inputs: dict[str, Any], who: dict[str, str]) -> str:
    response = live.gateway.client.post_json(f"/processes/{process}/execution", {"inputs": inputs},
                                             headers={**who, "Prefer": "respond-async"}, extra_environ=PROXY)
    job_id = response.json["jobID"]
    wait_for(lambda: job_of(live.gateway, job_id).status in JobStatus.FINAL, 120, f"job {job_id} to end")
    assert job_of(live.gateway, job_id).status == JobStatus.SUCCESSFUL, job_of(live.gateway, job_id).message
    return job_id


@pytest.fixture(scope="module")
def results(tmp_path_factory, sample_data) -> Iterator[tuple[LiveGateway, dict[str, str]]]:
    """Alice's NDVI mosaic of one tile on two dates and her squares; Bob's urban footprint of two tiles."""
    scenes = sample_data / "s2"
    live_gateway = serve_live(tmp_path_factory.mktemp("stac") / "var", sample_data, AUTH_MODE="header",
                              AUTH_TRUSTED_PROXIES="127.0.0.0/8")
    live = next(live_gateway)
    jobs = {
        "ndvi": run(live, "ndvi-mosaic", {"scenes": [{"href": (scenes / f"T33UUQ_{d}.tif").as_uri()}
                                                     for d in ("20240415", "20240610")]}, ALICE),
        "squares": run(live, "sleepy-squares", {"numbers": [3, 4], "seconds": 0}, ALICE),
        "urban": run(live, "urban-footprint", {"tiles": [{"href": (scenes / f"{t}_20240610.tif").as_uri()}
                                                         for t in ("T33UVQ", "T33UVP")]}, BOB),
    }
    yield live, jobs
    next(live_gateway, None)


def served(live: LiveGateway, job_id: str, who: dict[str, str] = ALICE) -> dict[str, dict[str, Any]]:
    """The job's Items by id, once described."""
    wait_for(lambda: get(live, "/stac/search", who, params={"ids": job_id}).json["features"], 60,
             f"the items of job {job_id}")
    with live.gateway.store.session() as session:
        ids = [i for (i,) in session.query(StacItem.id).filter(StacItem.job_id == job_id)]
    found = get(live, "/stac/search", who, params={"ids": ",".join(ids), "limit": 100}).json["features"]
    return {item["id"]: item for item in found}


def test_a_raster_output_is_an_item_read_from_its_file(results):
    live, jobs = results
    items = served(live, jobs["ndvi"])
    job_id = jobs["ndvi"]
    assert set(items) == {job_id, f"{job_id}-mosaic"}
    mosaic = items[f"{job_id}-mosaic"]
    for item in items.values():
        assert_valid_stac(item)
    path = job_paths(live.gateway.settings.jobs_dir, job_id)["outputs"] / "mosaic.tif"
    with rasterio.open(path) as src:  # the file's own grid, read independently of the gateway
        bounds, crs, shape_, transform = src.bounds, src.crs, (src.height, src.width), src.transform
        expected_box = transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)
        centre = transform_points(crs, "EPSG:4326", [(bounds.left + bounds.right) / 2],
                                  [(bounds.bottom + bounds.top) / 2])
    item = pystac.Item.from_dict(mosaic)
    projection = ProjectionExtension.ext(item)
    assert projection.code == "EPSG:32633" and projection.shape == list(shape_)
    assert projection.bbox == list(bounds) and projection.transform == list(transform)[:6]
    assert np.allclose(mosaic["bbox"], expected_box, atol=1e-5)
    assert shape(mosaic["geometry"]).contains(Point(centre[0][0], centre[1][0]))
    band = mosaic["assets"]["mosaic"]["raster:bands"][0]
    assert band["data_type"] == "float32" and band["nodata"] == "nan" and band["spatial_resolution"] == 10.0
    # The inputs' time range (two dates of one tile), as the processor tagged its product
    assert (mosaic["properties"]["start_datetime"], mosaic["properties"]["end_datetime"]) == (
        "2024-04-15T00:00:00Z", "2024-06-10T23:59:59Z")
    assert mosaic["properties"]["datetime"] is None


def test_the_jobs_item_holds_its_other_outputs_and_says_how_they_were_made(results):
    live, jobs = results
    job_id = jobs["ndvi"]
    job = job_of(live.gateway, job_id)
    item = served(live, job_id)[job_id]
    assert set(item["assets"]) == {"statistics", "mean_ndvi"}
    assert item["assets"]["statistics"]["type"] == "application/json"
    for asset in item["assets"].values():  # hrefs a client can fetch: the gateway's output URLs
        fetched = get(live, asset["href"].removeprefix(live.url.removesuffix("/wps")))
        name = asset["href"].rsplit("/", 1)[1]
        assert fetched.body == (job_paths(live.gateway.settings.jobs_dir, job_id)["outputs"] / name).read_bytes()
    properties = item["properties"]
    digest = job.descriptor["bundle"]["digest"]
    assert properties["processing:software"]["ndvi-mosaic"] == "1.0.0"
    assert properties["processing:software"]["ndvi-mosaic bundle"] == f"sha256:{digest}"
    assert job_id in properties["processing:lineage"] and digest in properties["processing:lineage"]
    assert properties["processing:version"] == "1.0.0" and properties["processing:datetime"].endswith("Z")
    links = {(link["rel"], link["href"]) for link in item["links"]}
    base = live.url.removesuffix("/wps")
    assert ("processing-execution", f"{base}/jobs/{job_id}") in links
    assert ("related", f"{base}/wps/status/{job_id}.xml") in links
    assert {href for rel, href in links if rel == "derived_from"} == set(job.inputs["scenes"])
    assert ("related", f"{base}/stac/collections/ndvi-mosaic/items/{job_id}-mosaic") in links
    # the job's item covers its rasters
    assert shape(item["geometry"]).equals(shape(served(live, job_id)[f"{job_id}-mosaic"]["geometry"]))


def test_a_job_without_rasters_has_one_item_timed_by_its_end(results):
    live, jobs = results
    job = job_of(live.gateway, jobs["squares"])
    (item,) = served(live, job.id).values()
    assert_valid_stac(item)
    assert item["geometry"] is None and "bbox" not in item
    assert pystac.Item.from_dict(item).datetime == job.finished
    assert item["assets"]["total"]["type"] == "text/plain"


def test_the_stac_api_serves_collections_per_process_and_searches_them(results):
    live, jobs = results
    served(live, jobs["ndvi"])
    landing = get(live, "/stac").json
    assert_valid_stac(landing)
    assert "https://api.stacspec.org/v1.0.0/item-search" in landing["conformsTo"]
    collections = {c["id"]: c for c in get(live, "/stac/collections").json["collections"]}
    assert {"ndvi-mosaic", "urban-footprint", "sleepy-squares"} <= set(collections)
    for collection in collections.values():
        assert_valid_stac(collection)
    mosaic = served(live, jobs["ndvi"])[f"{jobs['ndvi']}-mosaic"]
    west, south, east, north = collections["ndvi-mosaic"]["extent"]["spatial"]["bbox"][0]
    assert west <= mosaic["bbox"][0] and east >= mosaic["bbox"][2] and south <= mosaic["bbox"][1]
    assert collections["ndvi-mosaic"]["extent"]["temporal"]["interval"][0][0] == "2024-04-15T00:00:00Z"
    # A client we did not write: pystac-client, with Alice's identity from the trusted proxy
    client = Client.open(f"{live.url.removesuffix('/wps')}/stac", headers=ALICE)
    boxes = [i.bbox for i in client.search(collections=["ndvi-mosaic"]).items() if i.bbox]
    assert [west, south, east, north] == pytest.approx([min(b[0] for b in boxes), min(b[1] for b in boxes),
                                                        max(b[2] for b in boxes), max(b[3] for b in boxes)])
    assert {c.id for c in client.get_collections()} >= {"ndvi-mosaic", "sleepy-squares"}
    x, y = mosaic["geometry"]["coordinates"][0][0]
    inside = [x - 0.001, y - 0.001, x + 0.01, y + 0.01]
    found = {i.id for i in client.search(bbox=inside, collections=["ndvi-mosaic"]).items()}
    assert found == {jobs["ndvi"], f"{jobs['ndvi']}-mosaic"}
    assert not list(client.search(bbox=[0, 0, 1, 1]).items())  # the Gulf of Guinea: nothing there
    assert {i.id for i in client.search(datetime="2024-04-01/2024-04-30", collections=["ndvi-mosaic"]).items()} \
        == found, "the mosaic covers April 15"
    assert not list(client.search(datetime="2024-07-01/2024-07-31", collections=["ndvi-mosaic"]).items())
    by_post = client.search(intersects={"type": "Point", "coordinates": [x + 0.005, y + 0.005]}, method="POST")
    assert {i.id for i in by_post.items()} == found
    one_a_page = list(client.search(collections=["ndvi-mosaic"], limit=1).items())  # paging by its next links
    assert {i.id for i in one_a_page} == found and len(one_a_page) == 2
    item = get(live, f"/stac/collections/ndvi-mosaic/items/{jobs['ndvi']}").json
    assert {link["rel"] for link in item["links"]} >= {"self", "parent", "collection", "root"}


def test_another_users_items_are_not_found(results):
    live, jobs = results
    served(live, jobs["urban"], BOB)
    urban_items = set(served(live, jobs["urban"], BOB))
    assert len(urban_items) == 2
    assert get(live, f"/stac/collections/urban-footprint/items/{jobs['urban']}", status=404).json["status"] == 404
    everything = get(live, "/stac/search", params={"limit": 1000}).json["features"]
    assert not urban_items & {i["id"] for i in everything}
    posted = live.gateway.client.post_json("/stac/search", {"collections": ["urban-footprint"]}, headers=ALICE,
                                           extra_environ=PROXY).json
    assert posted["features"] == []
    own = get(live, "/stac/collections/urban-footprint/items", BOB).json["features"]
    assert {i["id"] for i in own} == urban_items
    assert get(live, "/stac/collections/urban-footprint").json["extent"]["temporal"]["interval"] == [[None, None]]
    assert get(live, "/stac/search", None, status=401).status_code == 401  # items need an identity


def test_job_status_results_and_wps_documents_link_to_the_items(results, wps100_schema):
    live, jobs = results
    job_id = jobs["ndvi"]
    items = served(live, job_id)
    status = get(live, f"/jobs/{job_id}").json
    alternates = {link["href"] for link in status["links"] if link["type"] == "application/geo+json"}
    base = live.url.removesuffix("/wps")
    assert alternates == {f"{base}/stac/collections/ndvi-mosaic/items/{i}" for i in items}
    results_response = get(live, f"/jobs/{job_id}/results")
    assert {link.split(">")[0][1:] for link in results_response.headers.getall("Link")} == alternates
    document = assert_valid(wps100_schema, get(live, f"/wps/status/{job_id}.xml").body)
    metadata = {output.findtext("ows:Identifier", namespaces=OWS):
                output.find("ows:Metadata", OWS).get(f"{{{OWS['xlink']}}}href")
                for output in document.iterfind(".//wps:ProcessOutputs/wps:Output", OWS)}
    assert metadata == {"mosaic": f"{base}/stac/collections/ndvi-mosaic/items/{job_id}-mosaic",
                        "statistics": f"{base}/stac/collections/ndvi-mosaic/items/{job_id}",
                        "mean_ndvi": f"{base}/stac/collections/ndvi-mosaic/items/{job_id}"}


def test_asset_base_maps_storage_to_public_urls(results, sample_data):
    live, jobs = results
    job = job_of(live.gateway, jobs["ndvi"])
    settings = live.gateway.settings
    rules = ((f"{settings.jobs_dir.resolve().as_uri()}/", "https://data.example.org/wps/jobs/"),
             (f"{sample_data.resolve().as_uri()}/", "https://data.example.org/eo/"))
    items = {i["id"]: i for i in job_items(job, Where(settings.base_url, settings.jobs_dir, rules))}
    assert items[f"{job.id}-mosaic"]["assets"]["mosaic"]["href"] == \
        f"https://data.example.org/wps/jobs/{job.id}/outputs/mosaic.tif"
    inputs = {link["href"] for link in items[job.id]["links"] if link["rel"] == "derived_from"}
    assert inputs == {"https://data.example.org/eo/s2/T33UUQ_20240415.tif",
                      "https://data.example.org/eo/s2/T33UUQ_20240610.tif"}


@pytest.mark.parametrize("content, reason", [
    (b"II*\x00 this is not a GeoTIFF", "not a readable raster"),
    (None, "has no coordinate reference system"),
])
def test_a_malformed_raster_fails_the_catalogue_entry_never_the_job(results, tmp_path, content, reason):
    live, jobs = results
    gateway = live.gateway
    source = job_of(gateway, jobs["ndvi"])
    with gateway.store.session() as session:  # a copy of the job whose mosaic is broken
        copy = Job(id=f"broken-{len(reason)}", process_id=source.process_id, process_version="1.0.0",
                   status=JobStatus.SUCCESSFUL, descriptor=source.descriptor, inputs=source.inputs,
                   outputs=source.outputs, user="alice", finished=source.finished,
                   response_form=source.response_form)
        session.add(copy)
        session.add(Notification(job_id=copy.id, event="stac", url=""))
    outputs = job_paths(gateway.settings.jobs_dir, copy.id)["outputs"]
    outputs.mkdir(parents=True)
    for name in ("statistics.json", "mean_ndvi.txt"):
        (outputs / name).write_bytes((job_paths(gateway.settings.jobs_dir, source.id)["outputs"] / name).read_bytes())
    if content is None:  # a real GeoTIFF, but without a CRS
        with rasterio.open(outputs / "mosaic.tif", "w", driver="GTiff", width=4, height=4, count=1,
                           dtype="uint8") as dst:
            dst.write(np.ones((1, 4, 4), dtype="uint8"))
    else:
        (outputs / "mosaic.tif").write_bytes(content)
    publisher = publisher_for(gateway.settings, gateway.store)

    def settled() -> bool:
        publisher.run_once()
        with gateway.store.session() as session:
            return session.query(Notification).filter_by(job_id=copy.id, event="stac").one().status != "pending"

    wait_for(settled, 30, "the description of the broken job")
    with gateway.store.session() as session:
        entry = session.query(Notification).filter_by(job_id=copy.id, event="stac").one()
        assert entry.status == "failed" and entry.attempts == 1, "a malformed product is not retried"
        assert reason in entry.last_error and "mosaic" in entry.last_error
        assert session.query(StacItem).filter_by(job_id=copy.id).count() == 0
        assert session.get(Job, copy.id).status == JobStatus.SUCCESSFUL
    assert get(live, f"/jobs/{copy.id}").json["status"] == "successful"
    assert not [link for link in get(live, f"/jobs/{copy.id}").json["links"]
                if link["type"] == "application/geo+json"]
    status = etree.fromstring(get(live, f"/wps/status/{copy.id}.xml").body)
    assert status.find(".//wps:ProcessSucceeded", OWS) is not None and status.find(".//ows:Metadata", OWS) is None


def test_bad_searches_are_clear_400s(results):
    live, _ = results
    for params in ({"bbox": "1,2,3"}, {"bbox": "0,10,1,5"}, {"bbox": "a,b,c,d"}, {"datetime": "yesterday"},
                   {"limit": "0"}, {"bbox": "0,0,200,1"}):
        answer = get(live, "/stac/search", params=params, status=400).json
        assert answer["status"] == 400 and answer["detail"], params
    for body in ([], {"bbox": [0, 0, 1, 1], "intersects": {"type": "Point", "coordinates": [0, 0]}},
                 {"intersects": {"type": "Polygon", "coordinates": "nope"}}, {"ids": [1]}, {"limit": "5"}):
        answer = live.gateway.client.post("/stac/search", json.dumps(body), headers={
            **ALICE, "Content-Type": "application/json"}, extra_environ=PROXY, status=400).json
        assert answer["status"] == 400, body
    assert get(live, "/stac/collections/no-such-process", status=404).json["status"] == 404


def test_a_deleted_job_takes_its_items_along(results):
    """Retention deletes job rows; their items go with them (as their callbacks do)."""
    live, _ = results
    when = datetime(2024, 1, 1, tzinfo=UTC)
    with live.gateway.store.session() as session:
        session.add(Job(id="gone", process_id="sleepy-squares", process_version="1", status=JobStatus.SUCCESSFUL))
        session.flush()
        session.add(StacItem(id="gone", job_id="gone", collection="sleepy-squares", start=when, end=when,
                             document={"id": "gone"}))
    with live.gateway.store.session() as session:
        session.execute(delete(Job).where(Job.id == "gone"))
    with live.gateway.store.session() as session:
        assert session.get(StacItem, "gone") is None


def test_processors_tag_the_time_their_products_cover(results):
    live, jobs = results
    outputs: Path = job_paths(live.gateway.settings.jobs_dir, jobs["urban"])["outputs"]
    with rasterio.open(outputs / "footprint.tif") as src:
        assert src.tags()["START_DATETIME"] == "2024-06-10T00:00:00Z"
        assert src.tags()["END_DATETIME"] == "2024-06-10T23:59:59Z"
