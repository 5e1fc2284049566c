"""Real clients against the gateway served over HTTP: OWSLib's OGC API - Processes client, and plain requests."""

from __future__ import annotations

import time

import owslib.ogcapi
import pytest
import requests
from owslib.ogcapi.processes import Processes

from .ogcapi_support import FINAL, validate_official

GEOTIFF = "image/tiff; application=geotiff"


@pytest.fixture
def base(live_gateway) -> str:
    return live_gateway.url.removesuffix("/wps")


@pytest.fixture
def owslib_headers():
    """OWSLib keeps the Prefer header of the last execute in a module-level dict: put it back afterwards."""
    saved = dict(owslib.ogcapi.REQUEST_HEADERS)
    yield
    owslib.ogcapi.REQUEST_HEADERS.clear()
    owslib.ogcapi.REQUEST_HEADERS.update(saved)


def poll(url: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = validate_official("statusInfo", requests.get(url, timeout=10).json())
        if info["status"] in FINAL:
            return info
        time.sleep(0.1)
    raise AssertionError(f"{url} not final after {timeout} s")


def test_owslib_lists_describes_and_executes(base, scenes, owslib_headers, tmp_path):
    client = Processes(base)
    validate_official("landingPage", client.response)
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core" in client.conformance()["conformsTo"]
    assert client.api()["openapi"].startswith("3.0.")  # found through the service-desc link
    processes = client.processes()
    assert {"ndvi-mosaic", "urban-footprint"} <= {p["id"] for p in processes}
    description = validate_official("process", client.process("urban-footprint"))
    assert description["inputs"]["tiles"]["maxOccurs"] == 64

    tiles = [p for p in scenes if "20240720" in p.name][:2]
    inputs = {"tiles": [{"href": p.as_uri(), "type": GEOTIFF} for p in tiles], "ndbi_threshold": 0.1}
    accepted = validate_official("statusInfo", client.execute("urban-footprint", inputs, async_=True))
    assert accepted["status"] == "accepted"
    location = client.response_headers["Location"]
    assert location == f"{base}/jobs/{accepted['jobID']}"
    info = poll(location)
    assert info["status"] == "successful"
    results_url = next(link["href"] for link in info["links"] if link["rel"].endswith("/results"))
    results = validate_official("results", requests.get(results_url, timeout=10).json())
    assert results["total_area_km2"] > 0
    footprint = requests.get(results["footprint"]["href"], timeout=10)
    assert footprint.status_code == 200 and footprint.headers["Content-Type"] == "image/tiff"
    (tmp_path / "footprint.tif").write_bytes(footprint.content)
    import rasterio

    with rasterio.open(tmp_path / "footprint.tif") as ds:
        assert ds.count == 1 and ds.crs is not None and set(ds.read(1).ravel()) <= {0, 1, 255}

    # Synchronous, as OWSLib sends it by default (Prefer: respond-sync, response=document).
    sync = validate_official("results", client.execute("sleepy-squares", {"numbers": [2, 3], "seconds": 0}))
    assert sync == {"total": 13}


def test_http_errors_over_the_wire(base, live_gateway):
    limit = live_gateway.gateway.settings.max_request_bytes
    response = requests.post(f"{base}/processes/urban-footprint/execution", data=b"{" + b" " * limit + b"}",
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    validate_official("exception", response.json())
    chunked = requests.post(f"{base}/processes/urban-footprint/execution", data=iter([b"{", b" " * limit, b"}"]),
                            headers={"Content-Type": "application/json"}, timeout=30)
    assert chunked.status_code == 413
    missing = requests.get(f"{base}/jobs/0d9c3c57-0000-0000-0000-000000000000", timeout=10)
    assert missing.status_code == 404
    assert validate_official("exception", missing.json())["type"].endswith("/no-such-job")
