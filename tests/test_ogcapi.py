"""OGC API - Processes - Part 1: Core 1.0 end to end in one process, every JSON answer schema-checked."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio
from lxml import etree

from wps_gateway.jobs import list_jobs
from wps_gateway.ogcapi import CONFORMANCE, html

from .conftest import assert_valid, build_gateway, close_gateway
from .jobs_support import attempts_of, job_id_of, wait_for
from .ogcapi_support import by_rel, path_of, poll_job, problem, validate_api, validate_official
from .test_wps1 import NS, kvp_refs

GEOTIFF = "image/tiff; application=geotiff"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
PREFIX = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"


def refs(paths) -> list[dict[str, str]]:
    return [{"href": p.as_uri(), "type": GEOTIFF} for p in paths]


def execute(client, process_id: str, body, prefer: str | None = None, status: int | str = "*"):
    headers = {"Prefer": prefer} if prefer else {}
    return client.post(f"/processes/{process_id}/execution", json.dumps(body), headers=headers,
                       content_type="application/json", status=status)


def submit_async(client, process_id: str, body) -> str:
    response = execute(client, process_id, body, "respond-async", 201)
    info = validate_official("statusInfo", response.json)
    assert response.headers["Location"] == f"http://localhost/jobs/{info['jobID']}"
    return info["jobID"]


@pytest.fixture
def api(gateway) -> dict:
    return gateway.client.get("/api").json


# -- capabilities ------------------------------------------------------------

def test_landing_page_links_everything_a_client_needs(gateway, api):
    doc = validate_official("landingPage", gateway.client.get("/").json)
    validate_api(api, "landingPage", doc)
    links = doc["links"]
    assert by_rel(links, "self", "application/json")["href"] == "http://localhost/"
    assert by_rel(links, "service-desc", OPENAPI)["href"] == "http://localhost/api"
    assert by_rel(links, "service-doc", "text/html")
    assert by_rel(links, "conformance")["href"] == "http://localhost/conformance"
    assert by_rel(links, "http://www.opengis.net/def/rel/ogc/1.0/processes")["href"] == "http://localhost/processes"
    assert by_rel(links, "http://www.opengis.net/def/rel/ogc/1.0/job-list")["href"] == "http://localhost/jobs"
    assert "request=GetCapabilities" in by_rel(links, "service")["href"]
    assert by_rel(links, "status")["href"] == "http://localhost/health"
    assert {"ndvi-mosaic", "urban-footprint"} <= set(doc["processes"])  # what JSON clients had before
    for item in links:  # every link works
        href = path_of(item["href"])
        if href.startswith("/wps"):
            continue
        assert gateway.client.get(href).status_code == 200, href


def test_conformance_declares_the_classes_implemented(gateway, api):
    doc = validate_official("confClasses", gateway.client.get("/conformance").json)
    validate_api(api, "confClasses", doc)
    part2 = "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/"
    assert set(doc["conformsTo"]) == {PREFIX + c for c in ("core", "ogc-process-description", "json", "html",
                                                           "oas30", "job-list", "dismiss", "callback")} | {
        part2 + "deploy-replace-undeploy", part2 + "ogcapppkg", part2 + "docker"}
    assert set(CONFORMANCE) == set(doc["conformsTo"])


def test_api_document_describes_every_route(gateway, api):
    response = gateway.client.get("/api")
    assert response.content_type == "application/vnd.oai.openapi+json"
    assert api["openapi"].startswith("3.0.") and api["servers"][0]["url"] == "http://localhost"
    outside = {"/health", "/wps", "/wps/status/{}.xml", "/outputs/{}/{}"}  # WPS and plain HTTP, not the API
    served = {re.sub(r"<(\w+)>", "{}", rule.rule) for rule in gateway.app.url_map.iter_rules()} - outside
    described = {re.sub(r"\{\w+\}", "{}", path) for path in api["paths"]}
    assert served == described
    for path, item in api["paths"].items():
        for method, operation in item.items():
            assert operation["operationId"] and operation["responses"], (path, method)
            for name in re.findall(r"\{(\w+)\}", path):  # every path parameter is declared
                declared = [p["name"] if "name" in p else p["$ref"].rsplit("/", 1)[1] for p in operation["parameters"]]
                assert name in declared, (path, method, name)
    text = json.dumps(api)
    for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):  # every internal $ref resolves
        node = api
        for part in ref.split("/"):
            node = node[part]
    from jsonschema import Draft4Validator
    for name, schema in api["components"]["schemas"].items():
        Draft4Validator.check_schema(schema)
        assert name
    html_doc = gateway.client.get("/api?f=html")
    assert html_doc.content_type == "text/html" and "/processes/{processId}/execution" in html_doc.text


# -- processes -------------------------------------------------------------

def test_process_list_with_summaries_links_and_limit(gateway, api):
    doc = validate_official("processList", gateway.client.get("/processes").json)
    validate_api(api, "processList", doc)
    ids = [p["id"] for p in doc["processes"]]
    assert {"ndvi-mosaic", "urban-footprint", "sleepy-squares"} <= set(ids)
    for summary in doc["processes"]:
        assert summary["jobControlOptions"] == ["sync-execute", "async-execute", "dismiss"]
        assert by_rel(summary["links"], "self")["href"] == f"http://localhost/processes/{summary['id']}"
    first = validate_official("processList", gateway.client.get("/processes", {"limit": 1}).json)
    assert [p["id"] for p in first["processes"]] == ids[:1]
    second = validate_official("processList", gateway.client.get(path_of(by_rel(first["links"], "next")["href"])).json)
    assert [p["id"] for p in second["processes"]] == ids[1:2]
    for bad in ("0", "x", "1001"):
        assert problem(gateway.client.get("/processes", {"limit": bad}, status=400), 400,
                       "invalid-parameter")["parameter"] == "limit"


def test_process_description_in_the_ogc_encoding(gateway, api):
    doc = validate_official("process", gateway.client.get("/processes/urban-footprint").json)
    validate_api(api, "process", doc)
    assert doc["id"] == "urban-footprint" and doc["version"] == "1.0.0"
    assert doc["jobControlOptions"] == ["sync-execute", "async-execute", "dismiss"]
    assert doc["outputTransmission"] == ["value", "reference"]
    tiles = doc["inputs"]["tiles"]
    assert (tiles["minOccurs"], tiles["maxOccurs"]) == (1, 64)
    assert tiles["schema"] == {"oneOf": [{"type": "string", "contentMediaType": GEOTIFF},
                                         {"type": "string", "contentMediaType": "image/tiff"}]}
    threshold = doc["inputs"]["ndbi_threshold"]
    assert threshold["minOccurs"] == 0 and threshold["schema"]["type"] == "number"
    assert threshold["schema"]["default"] == 0.1 and threshold["schema"]["maximum"] == 1
    assert set(doc["outputs"]) == {"footprint", "statistics", "total_area_km2"}
    assert doc["outputs"]["footprint"]["schema"]["oneOf"][0]["contentMediaType"] == GEOTIFF
    assert doc["outputs"]["total_area_km2"]["schema"] == {"type": "number"}
    execute_link = by_rel(doc["links"], "http://www.opengis.net/def/rel/ogc/1.0/execute")
    assert execute_link["href"] == "http://localhost/processes/urban-footprint/execution"
    problem(gateway.client.get("/processes/no-such", status=404), 404, "no-such-process")


# -- execution -------------------------------------------------------------

def test_async_execute_then_poll_then_real_results(gateway, scenes, api):
    june = [p for p in scenes if "20240610" in p.name]
    response = execute(gateway.client, "ndvi-mosaic", {"inputs": {"scenes": refs(june)}, "response": "document"},
                       "respond-async", 201)
    assert response.headers["Preference-Applied"] == "respond-async"
    accepted = validate_official("statusInfo", response.json)
    validate_api(api, "statusInfo", accepted)
    assert accepted["status"] == "accepted" and accepted["processID"] == "ndvi-mosaic"
    assert accepted["type"] == "process" and accepted["progress"] == 0
    job_id = accepted["jobID"]
    assert response.headers["Location"] == f"http://localhost/jobs/{job_id}"

    info, seen = poll_job(gateway.client, job_id)
    assert seen[-1] == "successful", info
    assert "running" in seen and info["progress"] == 100
    assert info["created"] <= info["started"] <= info["finished"]
    results_link = by_rel(info["links"], "http://www.opengis.net/def/rel/ogc/1.0/results")
    results = validate_official("results", gateway.client.get(path_of(results_link["href"])).json)
    validate_api(api, "results", results)
    assert set(results) == {"mosaic", "statistics", "mean_ndvi"}
    assert results["mosaic"]["type"] == GEOTIFF
    assert results["statistics"]["type"] == "application/json"
    assert isinstance(results["mean_ndvi"], float)

    mosaic = gateway.client.get(path_of(results["mosaic"]["href"]))
    assert mosaic.content_type == "image/tiff"
    path = gateway.settings.data_dir / "mosaic.tif"
    path.write_bytes(mosaic.body)
    with rasterio.open(path) as ds:
        ndvi = ds.read(1)
        union = [rasterio.open(p).bounds for p in june]
        assert ds.bounds.left == min(b.left for b in union) and ds.bounds.top == max(b.top for b in union)
    valid = ndvi[np.isfinite(ndvi)]
    assert valid.size > 0 and abs(results["mean_ndvi"] - float(valid.mean())) < 1e-3
    stats = gateway.client.get(path_of(results["statistics"]["href"])).json
    assert len(stats["scenes"]) == len(june)


def test_sync_execute_document_with_chosen_outputs_and_transmission(gateway, scenes, api):
    tiles = [p for p in scenes if "20240720" in p.name][:2]
    response = execute(gateway.client, "urban-footprint", {
        "inputs": {"tiles": refs(tiles), "ndbi_threshold": 0.1, "ndvi_max": {"value": 0.3}},
        "outputs": {"statistics": {"transmissionMode": "value"}, "total_area_km2": {},
                    "footprint": {"transmissionMode": "reference", "format": {"mediaType": GEOTIFF}}},
        "response": "document"}, status=200)
    results = validate_official("results", response.json)
    validate_api(api, "results", results)
    assert set(results) == {"statistics", "total_area_km2", "footprint"}
    stats = results["statistics"]
    assert stats["mediaType"] == "application/json"
    assert abs(stats["value"]["total"]["built_up_area_m2"] / 1e6 - results["total_area_km2"]) < 1e-6
    assert results["total_area_km2"] > 0
    footprint = gateway.client.get(path_of(results["footprint"]["href"]))
    assert footprint.body[:4] in (b"II*\x00", b"MM\x00*")  # a TIFF
    job_id = response.headers["Link"].split(">")[0].rsplit("/", 1)[1]
    info = validate_official("statusInfo", gateway.client.get(f"/jobs/{job_id}").json)
    assert info["status"] == "successful"
    # The job keeps what was asked: /results answers the same outputs the same way.
    assert gateway.client.get(f"/jobs/{job_id}/results").json == results


def test_sync_execute_raw_answers_the_one_output_itself(gateway):
    body = {"inputs": {"numbers": [1, 2, 3, 4], "seconds": 0}, "outputs": {"total": {}}, "response": "raw"}
    response = execute(gateway.client, "sleepy-squares", body, status=200)
    assert response.content_type == "text/plain" and response.text == "30"
    default = execute(gateway.client, "sleepy-squares", {"inputs": {"numbers": [5], "seconds": 0}}, status=200)
    assert default.text == "25"  # response defaults to raw, and the process has one output
    integer = execute(gateway.client, "sleepy-squares", {"inputs": {"numbers": [{"value": 3}], "seconds": 0},
                                                          "response": "document"}, status=200)
    assert validate_official("results", integer.json) == {"total": 9}


def test_sync_execute_past_the_timeout_answers_like_async(tmp_path, sample_data):
    gw = build_gateway(tmp_path / "var", sample_data, GATEWAY_SYNC_TIMEOUT="0.5")
    try:
        response = execute(gw.client, "sleepy-squares", {"inputs": {"numbers": [1], "seconds": 3}}, status=201)
        assert "Preference-Applied" not in response.headers
        info = validate_official("statusInfo", response.json)
        assert info["status"] in ("accepted", "running")
        assert "answered asynchronously" in info["message"]
        assert response.headers["Location"] == f"http://localhost/jobs/{info['jobID']}"
        final, _ = poll_job(gw.client, info["jobID"])
        assert final["status"] == "successful"
        # The request asked for raw results (the default): the one output itself, even answered asynchronously.
        assert gw.client.get(f"/jobs/{info['jobID']}/results").text == "1"
        assert gw.client.get(f"/jobs/{info['jobID']}/results", {"f": "json"}).json == {"total": 1}
    finally:
        close_gateway(gw)


# -- jobs ------------------------------------------------------------------

def test_job_list_pages_and_filters(gateway, api):
    client = gateway.client
    ids = [submit_async(client, "sleepy-squares", {"inputs": {"numbers": [n], "seconds": 0}}) for n in range(5)]
    wps = client.get("/wps", {"service": "WPS", "request": "Execute", "version": "1.0.0",
                              "identifier": "sleepy-squares", "DataInputs": "numbers=7;seconds=0",
                              "storeExecuteResponse": "true", "status": "true"})
    ids.append(job_id_of(etree.fromstring(wps.body).get("statusLocation")))
    failing = submit_async(client, "sleepy-squares", {"inputs": {"numbers": [1], "seconds": 0,
                                                                 "fail_step": "total"}})
    for job_id in [*ids, failing]:
        poll_job(client, job_id)

    seen: list[str] = []
    page = validate_official("jobList", client.get("/jobs", {"limit": 3}).json)
    validate_api(api, "jobList", page)
    pages = 1
    while True:
        assert len(page["jobs"]) <= 3
        seen += [j["jobID"] for j in page["jobs"]]
        following = [link for link in page["links"] if link["rel"] == "next"]
        if not following:
            break
        page = validate_official("jobList", client.get(path_of(following[0]["href"])).json)
        pages += 1
    assert pages == 3 and len(seen) == len(set(seen)) == 7
    assert set(seen) == {*ids, failing}
    created = [client.get(f"/jobs/{j}").json["created"] for j in seen]
    assert created == sorted(created, reverse=True)  # newest first

    def listed(**params) -> set[str]:
        doc = validate_official("jobList", client.get("/jobs", params).json)
        return {j["jobID"] for j in doc["jobs"]}

    assert listed(status="failed") == {failing}
    assert listed(status="successful,failed") == {*ids, failing}
    assert listed(processID="sleepy-squares", limit=100) == {*ids, failing}
    assert listed(processID="ndvi-mosaic") == set()
    assert listed(type="process", limit=100) == {*ids, failing}
    assert listed(type="openeo") == set()
    first, last = created[-1], created[0]
    assert listed(datetime=f"{first}/{last}", limit=100) == {*ids, failing}
    assert listed(datetime=f"../{first}") == {seen[-1]}
    assert listed(datetime=f"{last}/..") == {seen[0]}
    assert listed(datetime="2000-01-01T00:00:00Z/2000-01-02T00:00:00Z") == set()
    assert listed(datetime=f"{last}/{first}") == set()  # an interval that ends before it starts holds nothing
    for params in ({"status": "done"}, {"datetime": "yesterday"}, {"datetime": ""}, {"datetime": ".."},
                   {"offset": "-1"}, {"offset": str(10**20)}, {"limit": "0"},
                   {"datetime": "9999-12-31T23:00:00-05:00"}, {"datetime": "0001-01-01T00:30:00+01:00"}):
        problem(client.get("/jobs", params, status=400), 400, "invalid-parameter")


def test_dismiss_a_running_job(gateway):
    client = gateway.client
    job_id = submit_async(client, "sleepy-squares", {"inputs": {"numbers": [1, 2], "seconds": 5}})
    poll_job(client, job_id, until={"running"}, timeout=30)
    response = client.delete(f"/jobs/{job_id}")
    info = validate_official("statusInfo", response.json)
    assert info["status"] == "dismissed" and info["jobID"] == job_id
    final, _ = poll_job(client, job_id, timeout=10)
    assert final["status"] == "dismissed" and "finished" in final

    def tasks_killed() -> bool:  # the dispatcher killed the running tasks, long before their 5 s were up
        return {a.status for a in attempts_of(gateway, job_id)} == {"killed"}

    wait_for(tasks_killed, timeout=10)
    # killed by a signal, not run to the end of their 5 s
    assert all(a.exit_code is not None and a.exit_code < 0 for a in attempts_of(gateway, job_id))
    problem(client.get(f"/jobs/{job_id}/results", status=410), 410)
    # Dismissing a final job changes nothing and says so.
    again = validate_official("statusInfo", client.delete(f"/jobs/{job_id}").json)
    assert again["status"] == "dismissed" and again["finished"] == final["finished"]
    # WPS 1.0.0 sees the same job dismissed.
    doc = etree.fromstring(client.get(f"/wps/status/{job_id}.xml").body)
    assert "dismissed" in doc.findtext(".//wps:ProcessFailed//ows:ExceptionText", namespaces=NS)
    problem(client.delete("/jobs/no-such-job", status=404), 404, "no-such-job")


def test_dismiss_a_finished_job_ends_it_dismissed_without_results(gateway):
    """Part 1, /req/dismiss/job-dismiss-success: a finished job is dismissed too, its results removed."""
    job_id = submit_async(gateway.client, "sleepy-squares", {"inputs": {"numbers": [2], "seconds": 0}})
    poll_job(gateway.client, job_id)
    assert gateway.client.get(f"/jobs/{job_id}/results", {"f": "json"}).json == {"total": 4}
    info = validate_official("statusInfo", gateway.client.delete(f"/jobs/{job_id}").json)
    assert info["status"] == "dismissed"
    assert validate_official("statusInfo", gateway.client.get(f"/jobs/{job_id}").json)["status"] == "dismissed"
    problem(gateway.client.get(f"/jobs/{job_id}/results", status=410), 410)
    gateway.client.get(f"/outputs/{job_id}/total.txt", status=404)


def test_results_before_the_end_and_of_a_failed_job(gateway):
    client = gateway.client
    slow = submit_async(client, "sleepy-squares", {"inputs": {"numbers": [1], "seconds": 2}})
    doc = problem(client.get(f"/jobs/{slow}/results", status=404), 404, "result-not-ready")
    assert doc["jobID"] == slow
    failing = submit_async(client, "sleepy-squares", {"inputs": {"numbers": [1], "seconds": 0,
                                                                 "fail_step": "square"}})
    info, _ = poll_job(client, failing)
    assert info["status"] == "failed" and "the square step was told to fail" in info["message"]
    assert not [link for link in info["links"] if link["rel"].endswith("/results")]
    doc = problem(client.get(f"/jobs/{failing}/results", status=500), 500)
    assert "the square step was told to fail" in doc["detail"]
    problem(client.get("/jobs/no-such-job", status=404), 404, "no-such-job")
    problem(client.get("/jobs/no-such-job/results", status=404), 404, "no-such-job")


# -- errors ----------------------------------------------------------------

@pytest.mark.parametrize(("body", "names"), [
    ({"inputs": {"tiles": "SAMPLE", "colour": "red"}}, "colour"),
    ({"inputs": {"tiles": [{"href": "file:///etc/passwd", "type": GEOTIFF}]}}, "tiles"),
    ({"inputs": {"tiles": [{"href": "http://127.0.0.1:9/t.tif"}]}}, "tiles"),
    ({"inputs": {"tiles": [{"href": "SAMPLE", "type": "image/png"}]}}, "tiles"),
    ({"inputs": {"tiles": "SAMPLE", "ndbi_threshold": 5}}, "ndbi_threshold"),
    ({"inputs": {"tiles": "SAMPLE", "ndbi_threshold": "high"}}, "ndbi_threshold"),
    ({"inputs": {"tiles": "SAMPLE", "ndbi_threshold": {"href": "file:///x"}}}, "ndbi_threshold"),
    ({"inputs": {"tiles": "SAMPLE", "ndvi_max": [[0.1]]}}, "ndvi_max"),
    ({"inputs": {"tiles": [7]}}, "tiles"),
    ({"inputs": {"tiles": {"bbox": [1, 2, 3, 4]}}}, "tiles"),  # a bounding box for a file
    ({"inputs": {"tiles": "SAMPLE", "ndvi_max": {"bbox": [1, 2, 3, 4]}}}, "ndvi_max"),
    ({"inputs": {"tiles": {"value": True}}}, "tiles"),
    ({"inputs": {"tiles": {"value": "aGVsbG8=!", "encoding": "base64"}}}, "tiles"),
    ({"inputs": {"tiles": "SAMPLE", "ndvi_max": {"value": True}}}, "ndvi_max"),
    ({"inputs": {}}, "tiles"),
    ({"inputs": {"tiles": "SAMPLE"}, "outputs": {"area": {}}}, "area"),
    ({"inputs": {"tiles": "SAMPLE"}, "outputs": {"footprint": {"transmissionMode": "telepathy"}}}, "footprint"),
    ({"inputs": {"tiles": "SAMPLE"}, "outputs": {"footprint": {"format": {"mediaType": "image/png"}}}},
     "footprint"),
    ({"inputs": {"tiles": "SAMPLE"}, "response": "poster"}, "response"),
    ({"inputs": ["SAMPLE"]}, "inputs"),
    ([1, 2], "body"),
])
def test_bad_execute_requests_are_400_naming_the_culprit(gateway, scenes, body, names):
    text = json.dumps(body).replace('"SAMPLE"', json.dumps(scenes[0].as_uri()))
    response = gateway.client.post("/processes/urban-footprint/execution", text, content_type="application/json",
                                   headers={"Prefer": "respond-async"}, status="*")
    doc = problem(response, 400, "invalid-parameter")
    assert doc["parameter"] == names
    assert names in doc["detail"] or names in ("body", "inputs")
    assert list_jobs(gateway.store) == []


def test_protocol_errors_are_problem_documents(gateway):
    client = gateway.client
    problem(execute(client, "no-such-process", {"inputs": {}}, status=404), 404, "no-such-process")
    problem(client.post("/processes/urban-footprint/execution", "{inputs: ", content_type="application/json",
                        status=400), 400)
    problem(client.post("/processes/urban-footprint/execution", b"\xff\xfe", content_type="application/json",
                        status=400), 400)
    problem(client.post("/processes/urban-footprint/execution", "[" * 100000 + "]" * 100000,
                        content_type="application/json", status=400), 400)
    problem(client.post("/processes/urban-footprint/execution", "<Execute/>", content_type="text/xml",
                        status=415), 415)
    big = json.dumps({"inputs": {"tiles": "x" * (gateway.settings.max_request_bytes + 1)}})
    problem(client.post("/processes/urban-footprint/execution", big, content_type="application/json",
                        status=413), 413)
    not_allowed = client.get("/processes/urban-footprint/execution", status=405)
    problem(not_allowed, 405)
    assert "POST" in not_allowed.headers["Allow"]
    problem(client.delete("/processes", status=405), 405)
    problem(client.post("/jobs", "{}", content_type="application/json", status=405), 405)
    problem(client.get("/jobs/a/b", status=404), 404)
    problem(client.get("/processes", {"f": "xml"}, status=400), 400, "invalid-parameter")
    assert list_jobs(gateway.store) == []


def test_a_doubled_slash_redirects_to_the_public_url_of_the_path(gateway):
    """As a routing library would, but to the gateway's public URL (not whatever Host was sent), query kept."""
    moved = gateway.client.get("/processes//ndvi-mosaic", {"f": "json"}, headers={"Host": "elsewhere.example:81"},
                               status=308)
    assert moved.headers["Location"] == "http://localhost/processes/ndvi-mosaic?f=json"
    assert moved.follow(status=200).json["id"] == "ndvi-mosaic"


# -- both protocols, one store ---------------------------------------------

def test_a_wps_job_is_an_ogc_api_job(gateway, scenes, wps100_schema):
    june = [p for p in scenes if "20240610" in p.name][:2]
    response = gateway.client.get("/wps", {
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "ndvi-mosaic",
        "DataInputs": kvp_refs("scenes", june), "storeExecuteResponse": "true", "status": "true"})
    job_id = job_id_of(etree.fromstring(response.body).get("statusLocation"))
    listed = validate_official("jobList", gateway.client.get("/jobs").json)
    assert job_id in [j["jobID"] for j in listed["jobs"]]
    info, _ = poll_job(gateway.client, job_id)
    assert info["status"] == "successful" and info["processID"] == "ndvi-mosaic"
    results = validate_official("results", gateway.client.get(f"/jobs/{job_id}/results").json)
    wps = assert_valid(wps100_schema, gateway.client.get(f"/wps/status/{job_id}.xml").body)
    wps_outputs = {o.findtext("ows:Identifier", namespaces=NS): o for o in wps.iterfind(".//wps:Output", NS)}
    assert results["mosaic"]["href"] == wps_outputs["mosaic"].find("wps:Reference", NS).get("href")
    assert results["mean_ndvi"] == pytest.approx(float(wps_outputs["mean_ndvi"].findtext(".//wps:LiteralData",
                                                                                          namespaces=NS)))


def test_an_ogc_api_job_has_a_wps_status_document(gateway, scenes, wps100_schema):
    tiles = [p for p in scenes if "20240720" in p.name][:1]
    job_id = submit_async(gateway.client, "urban-footprint", {"inputs": {"tiles": refs(tiles)}})
    info = validate_official("statusInfo", gateway.client.get(f"/jobs/{job_id}").json)
    wps_link = by_rel(info["links"], "alternate", "text/xml")["href"]
    assert wps_link == f"http://localhost/wps/status/{job_id}.xml"
    poll_job(gateway.client, job_id)
    doc = assert_valid(wps100_schema, gateway.client.get(path_of(wps_link)).body)
    assert doc.find("wps:Status/wps:ProcessSucceeded", NS) is not None
    assert doc.get("statusLocation") == wps_link
    outputs = {o.findtext("ows:Identifier", namespaces=NS) for o in doc.iterfind(".//wps:Output", NS)}
    assert outputs == {"footprint", "statistics", "total_area_km2"}


# -- HTML ------------------------------------------------------------------

def test_browsers_get_html_pages(gateway):
    client = gateway.client
    job_id = submit_async(client, "sleepy-squares", {"inputs": {"numbers": [3], "seconds": 0}})
    poll_job(client, job_id)
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    for path, needle in [("/", "WPS processing gateway"), ("/processes", "urban-footprint"),
                         ("/processes/urban-footprint", "ndbi_threshold"), ("/jobs", job_id),
                         (f"/jobs/{job_id}", "successful"), ("/conformance", "ogc-process-description"),
                         (f"/jobs/{job_id}/results", "total")]:
        response = client.get(path, headers=browser)
        assert response.content_type == "text/html", path
        assert response.text.startswith("<!DOCTYPE html>") and needle in response.text, path
        assert "<script" not in response.text
        assert client.get(path, {"f": "html"}).content_type == "text/html"
        assert client.get(path, {"f": "json"}, headers=browser).content_type == "application/json"
    assert client.get("/", headers={"Accept": "*/*"}).content_type == "application/json"


def test_html_escapes_what_it_shows():
    page = html.job({"jobID": "<b>1</b>", "status": "failed", "message": '<script>alert("x")</script>',
                     "links": [{"href": 'http://x/"onmouseover="y', "rel": "self", "type": "text/html"}]})
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>1</b>" not in page
    assert 'href="http://x/&quot;onmouseover=&quot;y"' in page
