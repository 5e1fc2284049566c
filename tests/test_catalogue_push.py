"""Pushing STAC items to the portal's catalogue: a real STAC API (stac-fastapi-pgstac on PostgreSQL with
PostGIS) receives them through the outbox, and is searched for them with pystac-client; refusals are
recorded, outages survive restarts, credentials go only where they belong and never into a log."""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pystac_client import Client

from wps_gateway.config import ConfigError, load_settings
from wps_gateway.stac.publish import publisher_for
from wps_gateway.stac.settings import parse_catalogue
from wps_gateway.store.models import Job, JobStatus, Notification, StacItem

from .conftest import REPO, build_gateway, close_gateway
from .jobs_support import job_of, wait_for

pytestmark = pytest.mark.postgres
JUNE = datetime(2024, 6, 10, tzinfo=UTC)


def run_job(gateway, process: str, inputs: dict[str, Any]) -> str:
    response = gateway.client.post_json(f"/processes/{process}/execution", {"inputs": inputs},
                                        headers={"Prefer": "respond-async"})
    job_id = response.json["jobID"]
    wait_for(lambda: job_of(gateway, job_id).status in JobStatus.FINAL, 120, f"job {job_id}")
    assert job_of(gateway, job_id).status == JobStatus.SUCCESSFUL, job_of(gateway, job_id).message
    return job_id


def push_entry(gateway, job_id: str) -> Notification:
    with gateway.store.session() as session:
        rows = session.query(Notification).filter_by(job_id=job_id, event="catalogue").order_by(Notification.id).all()
        session.expunge_all()
    return rows[-1] if rows else None


def wait_pushed(gateway, job_id: str, timeout: float = 60) -> Notification:
    wait_for(lambda: (push_entry(gateway, job_id) or Notification(status="pending")).status != "pending", timeout,
             f"the push of job {job_id}")
    entry = push_entry(gateway, job_id)
    assert entry.status == "delivered", entry.last_error
    return entry


def catalogue_env(url: str, host: str, **extra: str) -> dict[str, str]:
    return {"CATALOGUE_URL": url, "GATEWAY_ALLOWED_CALLBACK_HOSTS": host, "CATALOGUE_RETRY_BACKOFF": "0.2",
            "CATALOGUE_RETRY_BACKOFF_MAX": "1", **extra}


def test_items_are_pushed_to_the_portals_catalogue_and_found_there(tmp_path, sample_data, stac_api):
    gateway = build_gateway(tmp_path / "var", sample_data, **catalogue_env(stac_api.url, stac_api.host))
    try:
        tiles = [{"href": (sample_data / "s2" / f"{t}_20240610.tif").as_uri()} for t in ("T33UUQ", "T33UVQ")]
        job_id = run_job(gateway, "urban-footprint", {"tiles": tiles})
        wait_pushed(gateway, job_id)
        with gateway.store.session() as session:
            ours = {i.id: i.document for i in session.query(StacItem).filter_by(job_id=job_id)}
        assert set(ours) == {job_id, f"{job_id}-footprint"}
        catalogue = Client.open(stac_api.url)  # the portal's side, with a client we did not write
        west, south, east, north = ours[f"{job_id}-footprint"]["bbox"]
        found = {item.id: item for item in catalogue.search(
            collections=["urban-footprint"], bbox=[west, south, (west + east) / 2, (south + north) / 2],
            datetime="2024-06-10T00:00:00Z/2024-06-10T23:59:59Z").items()}
        assert set(ours) <= set(found)
        pushed = found[f"{job_id}-footprint"].to_dict()
        for key in ("processing:lineage", "processing:software", "proj:code", "proj:transform", "start_datetime"):
            assert pushed["properties"][key] == ours[f"{job_id}-footprint"]["properties"][key]
        assert pushed["assets"]["footprint"]["href"] == ours[f"{job_id}-footprint"]["assets"]["footprint"]["href"]
        assert catalogue.get_collection("urban-footprint").title == "Urban footprint"

        # Describing it anew (an edited item) pushes again: the catalogue has it (409), so it is replaced (PUT)
        with gateway.store.session() as session:
            item = session.get(StacItem, job_id)
            item.document = {**item.document, "properties": {**item.document["properties"], "title": "replaced"}}
            session.add(Notification(job_id=job_id, event="catalogue", url=stac_api.url))
        wait_pushed(gateway, job_id)
        again = httpx.get(f"{stac_api.url}/collections/urban-footprint/items/{job_id}").json()
        assert again["properties"]["title"] == "replaced"
    finally:
        close_gateway(gateway)


def test_a_job_without_geometry_is_refused_by_pgstac_and_recorded(tmp_path, sample_data, stac_api):
    """pgstac wants a geometry on every item; a job with no raster product has none: a refusal on record."""
    gateway = build_gateway(tmp_path / "var", sample_data, **catalogue_env(stac_api.url, stac_api.host))
    try:
        job_id = run_job(gateway, "sleepy-squares", {"numbers": [5], "seconds": 0})
        wait_for(lambda: (push_entry(gateway, job_id) or Notification(status="pending")).status != "pending", 60,
                 "the push to be settled")
        entry = push_entry(gateway, job_id)
        assert (entry.status, entry.attempts) == ("failed", 1)
        assert "HTTP 400" in entry.last_error and "geometry" in entry.last_error.lower()
        assert job_of(gateway, job_id).status == JobStatus.SUCCESSFUL
        assert gateway.client.get(f"/stac/collections/sleepy-squares/items/{job_id}").status_code == 200
    finally:
        close_gateway(gateway)


def test_a_refused_item_is_recorded_with_the_answer_and_not_retried(tmp_path, sample_data, stac_api):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False,
                            **catalogue_env(stac_api.url, stac_api.host))
    try:
        descriptor = gateway.context.processors()["sleepy-squares"].raw
        with gateway.store.session() as session:
            session.add(Job(id="refused-1", process_id="sleepy-squares", process_version="1.0.0",
                            status=JobStatus.SUCCESSFUL, descriptor=descriptor))
            session.flush()
            session.add(StacItem(id="refused-1", job_id="refused-1", collection="sleepy-squares",
                                 start=JUNE, end=JUNE,
                                 document={"type": "Feature", "stac_version": "1.1.0", "id": "refused-1",
                                           "collection": "sleepy-squares", "geometry": {"type": "Polygon",
                                                                                         "coordinates": "nope"},
                                           "properties": {"datetime": "2024-06-10T00:00:00Z"}, "links": [],
                                           "assets": {}}))
            session.add(Notification(job_id="refused-1", event="catalogue", url=stac_api.url))
        publisher = publisher_for(gateway.settings, gateway.store)
        publisher.run_once()
        entry = push_entry(gateway, "refused-1")
        assert (entry.status, entry.attempts) == ("failed", 1)
        assert "POST item refused-1: HTTP 400" in entry.last_error and "coordinates" in entry.last_error
        publisher.run_once()
        assert push_entry(gateway, "refused-1").attempts == 1, "a refusal is not tried again"
    finally:
        close_gateway(gateway)


def test_a_catalogue_outage_loses_nothing_across_a_restart(tmp_path, sample_data, private_stac_api):
    private_stac_api.stop()
    env = catalogue_env(private_stac_api.url, private_stac_api.host)
    gateway = build_gateway(tmp_path / "var", sample_data, **env)
    try:
        tile = (sample_data / "s2" / "T33UVP_20240720.tif").as_uri()
        job_id = run_job(gateway, "urban-footprint", {"tiles": [{"href": tile}]})
        wait_for(lambda: (push_entry(gateway, job_id) or Notification(attempts=0)).attempts >= 2, 60,
                 "two failed attempts while the catalogue is down")
        entry = push_entry(gateway, job_id)
        assert entry.status == "pending" and "Connect" in entry.last_error
    finally:
        close_gateway(gateway)
    private_stac_api.start()
    gateway = build_gateway(tmp_path / "var", sample_data, **env)  # the same store: a restarted gateway
    try:
        wait_pushed(gateway, job_id)
        found = Client.open(private_stac_api.url).search(ids=[job_id, f"{job_id}-footprint"])
        assert {item.id for item in found.items()} == {job_id, f"{job_id}-footprint"}
    finally:
        close_gateway(gateway)


class Catalogue:
    """A catalogue endpoint on loopback that wants a bearer token; records what it is sent."""

    def __init__(self, token: str) -> None:
        self.requests: queue.Queue[tuple[str, str, dict[str, str], Any]] = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.put((self.command, self.path, dict(self.headers), body))
                allowed = self.headers.get("Authorization") == f"Bearer {token}"
                answer = b"" if allowed else b'{"code": "Unauthorized", "description": "token wanted"}'
                self.send_response(201 if allowed else 401)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}/stac/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_catalogue():
    catalogue = Catalogue("s3cret-push-token")
    yield catalogue
    catalogue.close()


def test_credentials_go_only_to_the_catalogue_and_never_into_a_log(tmp_path, sample_data, token_catalogue, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = build_gateway(tmp_path / "var", sample_data, CATALOGUE_TOKEN="s3cret-push-token",
                            **catalogue_env(token_catalogue.url, token_catalogue.host))
    try:
        job_id = run_job(gateway, "sleepy-squares", {"numbers": [2], "seconds": 0})
        wait_pushed(gateway, job_id)
        sent = [token_catalogue.requests.get(timeout=5) for _ in range(2)]
        assert [(method, path) for method, path, _, _ in sent] == [
            ("POST", "/stac/v1/collections"), ("POST", "/stac/v1/collections/sleepy-squares/items")]
        assert all(headers["Authorization"] == "Bearer s3cret-push-token" for _, _, headers, _ in sent)
        assert sent[1][3]["id"] == job_id
        with gateway.store.session() as session:
            stored = " ".join(f"{n.url} {n.last_error}" for n in session.query(Notification))
        assert "s3cret" not in stored and "s3cret" not in caplog.text and "s3cret" not in repr(gateway.settings)
        # a row queued for another catalogue (the setting changed since) is sent without these credentials
        with gateway.store.session() as session:
            session.add(Notification(job_id=job_id, event="catalogue", url=token_catalogue.url + "/old"))
        wait_for(lambda: push_entry(gateway, job_id).status != "pending", 30, "the push to the old catalogue")
        entry = push_entry(gateway, job_id)
        assert entry.status == "failed" and "HTTP 401" in entry.last_error and "token wanted" in entry.last_error
        _, _, headers, _ = token_catalogue.requests.get(timeout=5)
        assert "Authorization" not in headers
    finally:
        close_gateway(gateway)


def test_a_catalogue_at_a_refused_address_is_not_contacted(tmp_path, sample_data, token_catalogue):
    gateway = build_gateway(tmp_path / "var", sample_data, CATALOGUE_URL=token_catalogue.url,
                            CATALOGUE_TOKEN="s3cret-push-token")  # loopback, and not among the allowed hosts
    try:
        job_id = run_job(gateway, "sleepy-squares", {"numbers": [2], "seconds": 0})
        wait_for(lambda: (push_entry(gateway, job_id) or Notification(status="pending")).status != "pending", 60,
                 "the push to be given up")
        entry = push_entry(gateway, job_id)
        assert entry.status == "failed" and entry.attempts == 1 and entry.last_error.startswith("refused")
        assert token_catalogue.requests.empty()
    finally:
        close_gateway(gateway)


@pytest.mark.parametrize("environ, complaint", [
    ({"CATALOGUE_URL": "https://portal:pw@catalogue.example.org/stac"}, "no credentials"),
    ({"CATALOGUE_URL": "ftp://catalogue.example.org/stac"}, "http or https URL"),
    ({"CATALOGUE_TOKEN": "t", "CATALOGUE_USERNAME": "u"}, "exclude each other"),
    ({"CATALOGUE_ASSET_BASE": "/srv/wps/var/jobs/"}, "STORAGE_PREFIX PUBLIC_URL"),
    ({"CATALOGUE_ATTEMPTS": "0"}, "attempts"),
])
def test_a_bad_catalogue_setting_is_one_clear_line_and_exit_2(environ, complaint, tmp_path):
    with pytest.raises(ConfigError, match=complaint):
        load_settings(environ=environ)
    result = subprocess.run([sys.executable, "-m", "wps_gateway.cli", "db", "upgrade"], cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "PYWPS_CFG": str(REPO / "pywps.cfg"),
                                 "GATEWAY_DATA_DIR": str(tmp_path / "var"), **environ},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert complaint in result.stderr and "pw@" not in result.stderr


def test_credentials_become_one_authorization_header():
    assert parse_catalogue({"url": "https://c.example.org/stac", "token": "abc"}).headers() == {
        "Authorization": "Bearer abc"}
    assert parse_catalogue({"url": "https://c.example.org/stac", "username": "portal", "password": "pw"}).headers() \
        == {"Authorization": "Basic cG9ydGFsOnB3"}
    assert "pw" not in repr(parse_catalogue({"username": "portal", "password": "pw"}))
