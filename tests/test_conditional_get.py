"""Documents with ETags: catalogue documents rendered once per catalogue version (and again after a deploy or
an undeploy, here or by another gateway process on the same store), status documents that answer a poller 304
until the job changes, never an ETag of a job the caller may not see; PyWPS's request log."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
from lxml import etree
from sqlalchemy import create_engine, event, inspect, select, text, update

from wps_gateway.stac.records import item_ids
from wps_gateway.store.models import Job, JobUsage
from wps_gateway.wps1.service import Capabilities100

from .conftest import as_user, assert_valid, build_gateway, close_gateway
from .gateway_process import GatewayProcess
from .jobs_support import job_id_of, wait_for
from .ogcapi_support import poll_job, validate_official
from .test_deploy import AUTH, PACKAGE_TYPE, TOKEN, package, wps1_ids

WPS1_CAPS = "/wps?service=WPS&request=GetCapabilities"
WPS1_DESCRIBE = "/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier={}"
WPS2_CAPS = "/wps?service=WPS&version=2.0.0&request=GetCapabilities&AcceptVersions=2.0.0"
WPS2_DESCRIBE = "/wps?service=WPS&version=2.0.0&request=DescribeProcess&identifier={}"
CATALOGUE = (WPS1_CAPS, WPS1_DESCRIBE.format("sleepy-squares"), WPS2_CAPS, WPS2_DESCRIBE.format("sleepy-squares"),
             "/processes", "/processes?limit=1", "/processes/sleepy-squares", "/processes?f=html", "/api")


@pytest.fixture
def deployable(tmp_path, sample_data) -> Iterator:
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, GATEWAY_DEPLOY_TOKENS=f"portal:{TOKEN}")
    yield gateway
    close_gateway(gateway)


def etags(client, paths=CATALOGUE) -> dict[str, str]:
    return {path: client.get(path).headers["ETag"] for path in paths}


def revalidated(client, path: str, etag: str, **kw):
    return client.get(path, headers={**kw.pop("headers", {}), "If-None-Match": etag}, **kw)


def test_catalogue_documents_are_rendered_once_and_answer_304(deployable, wps100_schema, wps200_schema, monkeypatch):
    client = deployable.client
    rendered: list[int] = []
    construct = Capabilities100._construct_doc
    monkeypatch.setattr(Capabilities100, "_construct_doc", lambda self: rendered.append(1) or construct(self))
    first = client.get(WPS1_CAPS)
    assert_valid(wps100_schema, first.body)
    assert client.get(WPS1_CAPS).body == first.body and len(rendered) == 1, "rendered again"
    assert first.headers["ETag"].startswith('"') and first.headers["Vary"] == "Accept"
    assert_valid(wps100_schema, client.get(WPS1_DESCRIBE.format("sleepy-squares")).body)
    assert_valid(wps200_schema, client.get(WPS2_CAPS).body)
    assert_valid(wps200_schema, client.get(WPS2_DESCRIBE.format("sleepy-squares")).body)

    for path, etag in etags(client).items():
        again = revalidated(client, path, etag, status=304)
        assert again.body == b"" and again.headers["ETag"] == etag, path
        assert revalidated(client, path, '"something-else"').status_int == 200, path
        assert revalidated(client, path, "*", status=304).headers["ETag"] == etag, path
    # what the document depends on is in its key: JSON or XML, the identifiers, the language
    as_json = client.get(WPS1_CAPS, headers={"Accept": "application/json"})
    assert as_json.content_type == "application/json" and as_json.headers["ETag"] != first.headers["ETag"]
    assert client.get(WPS1_CAPS).body == first.body
    both = client.get(WPS1_DESCRIBE.format("sleepy-squares,echo")).xml
    assert len(both.findall("ProcessDescription")) == 2
    assert client.get(WPS1_CAPS + "&language=en-US").headers["ETag"] == first.headers["ETag"]
    unknown = client.get(WPS1_CAPS + "&language=xx-XX", expect_errors=True)
    assert unknown.status_int == 400 and "ETag" not in unknown.headers
    missing = client.get(WPS1_DESCRIBE.format("no-such-process"), expect_errors=True)
    assert missing.status_int == 400 and b"no-such-process" in missing.body
    assert len(rendered) == 2  # the 1.0.0 capabilities: as XML once, as JSON once


def test_deploy_and_undeploy_change_every_catalogue_document(deployable):
    client = deployable.client
    before = etags(client)
    created = client.post("/processes", json.dumps(package()), headers=AUTH, content_type=PACKAGE_TYPE)
    assert created.status_int == 201
    deployed = etags(client)
    changed = [path for path in CATALOGUE if deployed[path] != before[path]]
    assert set(changed) >= {WPS1_CAPS, WPS2_CAPS, "/processes", "/processes?f=html"}, changed
    caps = revalidated(client, WPS1_CAPS, before[WPS1_CAPS])
    assert caps.status_int == 200 and b"sleepy-cubes" in caps.body
    assert b"sleepy-cubes" in revalidated(client, WPS2_CAPS, before[WPS2_CAPS]).body
    listed = revalidated(client, "/processes", before["/processes"]).json["processes"]
    assert "sleepy-cubes" in {p["id"] for p in listed}
    assert client.get(WPS1_DESCRIBE.format("sleepy-cubes")).status_int == 200
    cubes = client.get("/processes/sleepy-cubes")

    replaced = client.put("/processes/sleepy-cubes", json.dumps(package(version="2.0.0", power=4)), headers=AUTH,
                          content_type=PACKAGE_TYPE)
    assert replaced.status_int == 204
    again = revalidated(client, "/processes/sleepy-cubes", cubes.headers["ETag"])
    assert again.status_int == 200 and again.json["version"] == "2.0.0"

    assert client.delete("/processes/sleepy-cubes", headers=AUTH).status_int == 204
    after = etags(client)
    assert after[WPS1_CAPS] not in (deployed[WPS1_CAPS],) and b"sleepy-cubes" not in client.get(WPS1_CAPS).body
    assert "sleepy-cubes" not in {p["id"] for p in revalidated(client, "/processes", deployed["/processes"])
                                  .json["processes"]}
    assert client.get(WPS1_DESCRIBE.format("sleepy-cubes"), expect_errors=True).status_int == 400
    assert client.get("/processes/sleepy-cubes", expect_errors=True).status_int == 404
    assert after[WPS1_CAPS] == before[WPS1_CAPS], "the same catalogue is the same document"


def test_a_deploy_by_another_gateway_process_on_the_store_changes_the_documents(tmp_path, sample_data, deployable):
    """Replicas share the store, not memory: this one notices the other's deploy by the catalogue's
    fingerprint in the store (re-read at most every second) and renders its documents again."""
    client = deployable.client
    cached = etags(client, (WPS1_CAPS, WPS2_CAPS, "/processes"))
    other = GatewayProcess(tmp_path / "var", sample_data, GATEWAY_DEPLOY_TOKENS=f"portal:{TOKEN}").start()
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{other.port}/processes", json.dumps(package()).encode(),
                                         {**AUTH, "Content-Type": PACKAGE_TYPE}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 201
        wait_for(lambda: revalidated(client, WPS1_CAPS, cached[WPS1_CAPS]).status_int == 200, 10,
                 "a new capabilities document")
        assert "sleepy-cubes" in wps1_ids(deployable)
        for path in (WPS2_CAPS, "/processes"):
            assert b"sleepy-cubes" in revalidated(client, path, cached[path]).body
        request = urllib.request.Request(f"http://127.0.0.1:{other.port}/processes/sleepy-cubes", headers=AUTH,
                                         method="DELETE")
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 204
        wait_for(lambda: "sleepy-cubes" not in wps1_ids(deployable), 10, "the undeploy seen")
        assert revalidated(client, WPS1_CAPS, cached[WPS1_CAPS], status=304)  # the catalogue it had before
    finally:
        other.stop()


# -- job status ------------------------------------------------------------------------------------------


STATUS_READS = {
    "wps1": lambda job_id: f"/wps/status/{job_id}.xml",
    "wps2": lambda job_id: f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}",
    "ogcapi": lambda job_id: f"/jobs/{job_id}",
}


def submit(client, seconds: float = 0.0, numbers=(1, 2), **kw) -> str:
    response = client.post_json("/processes/sleepy-squares/execution",
                                {"inputs": {"numbers": list(numbers), "seconds": seconds}},
                                headers={**kw.pop("headers", {}), "Prefer": "respond-async"}, status=201, **kw)
    return response.json["jobID"]


@pytest.mark.parametrize("protocol", STATUS_READS)
def test_a_poller_gets_304_until_anything_shown_changes(tmp_path, sample_data, protocol, wps100_schema,
                                                        wps200_schema):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        client, store = gateway.client, gateway.store
        job_id = submit(client)
        path = STATUS_READS[protocol](job_id)
        first = client.get(path)
        etag = first.headers["ETag"]
        assert etag.startswith('W/"') and first.headers["Cache-Control"] == "no-cache"
        for _ in range(3):
            unchanged = revalidated(client, path, etag, status=304)
            assert unchanged.body == b"" and unchanged.headers["ETag"] == etag
            assert unchanged.headers["Cache-Control"] == "no-cache"

        def changed(**values) -> str:
            nonlocal etag
            with store.session() as session:
                session.execute(update(Job).where(Job.id == job_id).values(**values))
            answer = revalidated(client, path, etag)
            assert answer.status_int == 200 and answer.headers["ETag"] != etag, values
            etag = answer.headers["ETag"]
            return answer.body.decode()

        if protocol == "wps2":  # StatusInfo has the time of the next poll: 200s of one state differ, not their ETag
            assert client.get(path).headers["ETag"] == etag
        running = {"wps1": "ProcessStarted", "wps2": "Running", "ogcapi": '"running"'}[protocol]
        assert running in changed(status="running", started=first_start(store, job_id), progress=10)
        assert "40" in changed(progress=40)
        if protocol != "wps2":  # WPS 2.0 StatusInfo shows no message
            assert "half way there" in changed(message="half way there")
        if protocol == "ogcapi":  # the job's usage, as attempts end
            with store.session() as session:
                session.add(JobUsage(job_id=job_id, backend="local", attempts=1, wall_seconds=3.0))
            answer = revalidated(client, path, etag)
            assert answer.status_int == 200 and answer.json["usage"]["attempts"] == 1
            etag = answer.headers["ETag"]
        body = changed(status="successful", progress=100, finished=first_start(store, job_id),
                       outputs={"total": {"value": 5, "file": "total.txt"}})
        assert ("ProcessSucceeded" if protocol == "wps1" else "Succeeded" if protocol == "wps2" else "successful") \
            in body
        final = client.get(path)
        assert final.headers["ETag"] == etag
        if protocol == "wps1":
            assert final.headers["Cache-Control"] == "max-age=60"
            assert_valid(wps100_schema, final.body)
        elif protocol == "wps2":
            assert_valid(wps200_schema, final.body)
        else:
            validate_official("statusInfo", final.json)
        assert revalidated(client, path, etag).status_int == 304
        client.delete(f"/jobs/{job_id}")  # dismissed: its results withdrawn
        assert revalidated(client, path, etag).status_int == 200
    finally:
        close_gateway(gateway)


def wait_for_items(gateway, job_id: str) -> None:
    wait_for(lambda: item_ids(gateway.store, job_id), 60, f"the STAC Items of job {job_id}")


def first_start(store, job_id: str):
    with store.session() as session:
        return session.scalar(select(Job.created).where(Job.id == job_id))


def test_a_real_run_changes_the_etag_and_its_stac_items_do_too(gateway):
    """Through the dispatcher: accepted, then successful; then the job's STAC Item appears and is linked."""
    client = gateway.client
    job_id = submit(client, numbers=(3,))
    accepted = client.get(f"/jobs/{job_id}").headers["ETag"]
    info, _ = poll_job(client, job_id)
    assert info["status"] == "successful"
    wait_for_items(gateway, job_id)
    done = client.get(f"/jobs/{job_id}")
    assert done.headers["ETag"] != accepted and any(link["rel"] == "alternate" and "/stac/" in link["href"]
                                                    for link in done.json["links"])
    assert revalidated(client, f"/jobs/{job_id}", done.headers["ETag"], status=304)
    html = client.get(f"/jobs/{job_id}", headers={"Accept": "text/html"})
    assert html.headers["ETag"] != done.headers["ETag"] and html.headers["Vary"] == "Accept"


def statements(store) -> list[str]:
    """The SQL statements the store's engine runs from now on."""
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


def test_nobody_learns_the_etag_of_a_job_they_may_not_see(tmp_path, sample_data):
    """Not even from the job's view kept for its owner's polls (``job_views.StatusViews``): who may see it is
    checked on every request."""
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, AUTH_MODE="header",
                            AUTH_TRUSTED_PROXIES="127.0.0.0/8", AUTH_PROTECT_STATUS="true")
    try:
        client, alice, bob = gateway.client, as_user("alice", "urban"), as_user("bob", "forest")
        job_id = submit(client, **alice)
        for protocol, path in ((p, read(job_id)) for p, read in STATUS_READS.items()):
            etag = client.get(path, **alice).headers["ETag"]
            seen = statements(gateway.store)
            assert revalidated(client, path, etag, status=304, **alice)
            for who in (bob, {}):
                for headers in ({}, {"If-None-Match": etag}, {"If-None-Match": "*"}):
                    answer = client.get(path, headers={**who.get("headers", {}), **headers},
                                        extra_environ=who.get("extra_environ", {}), expect_errors=True)
                    assert answer.status_int in (401, 404) or b"NoSuchJob" in answer.body, (protocol, answer.status)
                    assert "ETag" not in answer.headers and answer.status_int != 304, (protocol, who, headers)
            assert revalidated(client, path, etag, status=304, **alice)
            assert seen == [], f"{protocol}: the kept view was not what these reads were answered from"
    finally:
        close_gateway(gateway)


# -- PyWPS's request log ------------------------------------------------------------------------------------


def test_pywps_request_log_is_off_by_default(gateway):
    gateway.client.get(WPS1_CAPS)
    gateway.client.get(WPS1_DESCRIBE.format("sleepy-squares"))
    assert not any(path.name.startswith("pywps") for path in gateway.settings.data_dir.iterdir())


def test_pywps_request_log_when_set_is_one_row_per_request(tmp_path, sample_data):
    log = tmp_path / "requests.sqlite"
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, LOGGING_DATABASE=f"sqlite:///{log}")
    try:
        client = gateway.client
        client.get(WPS1_CAPS)
        client.get(WPS1_CAPS)
        client.get(WPS1_DESCRIBE.format("sleepy-squares"))
        client.get(WPS1_DESCRIBE.format("no-such-process"), expect_errors=True)
        client.get("/wps", {"service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "sleepy-squares",
                            "DataInputs": "numbers=1", "storeExecuteResponse": "true", "status": "true"})
        client.get(WPS2_CAPS)  # WPS 2.0 is not PyWPS's: not in its log
    finally:
        close_gateway(gateway)
    engine = create_engine(f"sqlite:///{log}")
    try:
        assert inspect(engine).get_table_names() == ["pywps_requests"]
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT operation, identifier, status, percent_done, time_end "
                                           "FROM pywps_requests ORDER BY time_start")).all()
    finally:
        engine.dispose()
    assert [(r.operation, r.identifier, r.status) for r in rows] == [
        ("getcapabilities", None, 4), ("getcapabilities", None, 4), ("describeprocess", "sleepy-squares", 4),
        ("describeprocess", "no-such-process", 5), ("execute", "sleepy-squares", 4)]
    assert all(r.percent_done == 100 and r.time_end is not None for r in rows)


def test_a_status_document_of_a_wps_job_still_validates_after_a_304(gateway, wps100_schema):
    status = gateway.client.get("/wps", {"service": "WPS", "request": "Execute", "version": "1.0.0",
                                         "identifier": "sleepy-squares", "DataInputs": "numbers=4;seconds=0",
                                         "storeExecuteResponse": "true", "status": "true"}).xml.get("statusLocation")
    path = status.split("localhost", 1)[1]
    first = gateway.client.get(path)
    doc = assert_valid(wps100_schema, first.body)
    assert etree.QName(doc).localname == "ExecuteResponse"
    wait_for(lambda: b"ProcessSucceeded" in gateway.client.get(path).body, 60, "the job's success")
    wait_for_items(gateway, job_id_of(path))
    done = gateway.client.get(path)
    assert done.headers["ETag"] != first.headers["ETag"] and b"STAC Item" in done.body
    assert_valid(wps100_schema, done.body)
    assert revalidated(gateway.client, path, done.headers["ETag"], status=304).body == b""
