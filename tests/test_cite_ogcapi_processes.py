"""OGC API - Processes - Part 1: Core as its test suite (OGC ets-ogcapi-processes10) tests a server.

One test per suite test, named after it (``jobs.Jobs.testJobCreationInputValidation`` and so on), building the
requests as the suite does from the echo process's description (``Jobs.parseEchoProcess``): a string input gets
``"teststring"``, a bounding box input (an ``allOf`` whose first member is ``format: ogc-bbox``) gets a box, an
input of another type nothing; every output is asked ``transmissionMode: value``. Answers are checked as the suite
checks them, and against the official 1.0 schemas. Defects of issue 14 the suite trips on are tested beside them.
"""

from __future__ import annotations

import email.parser
import email.policy
import uuid
from typing import Any

import pytest
from sqlalchemy import update

from wps_gateway.jobs import JobFilter, list_jobs
from wps_gateway.store.models import Job, utcnow

from .conftest import build_gateway, close_gateway
from .ogcapi_support import by_rel, path_of, poll_job, problem, validate_official

ECHO = "/processes/echo"
TEST_STRING = "teststring"
JSON = {"Accept": "application/json"}


class Echo:
    """What the suite learns from GET /processes/echo, and the execute requests it builds from it."""

    def __init__(self, client) -> None:
        description = validate_official("process", client.get(ECHO, headers=JSON).json)
        self.inputs = description["inputs"]
        self.outputs = description["outputs"]
        self.control = description["jobControlOptions"]

    @staticmethod
    def is_bbox(schema: dict[str, Any]) -> bool:  # CommonFixture.checkAllOfForBbox
        return "type" not in schema and schema.get("allOf", [{}])[0].get("format") == "ogc-bbox"

    def value(self, name: str) -> Any:  # Jobs.addInput
        schema = self.inputs[name]["schema"]
        if schema.get("type") == "string":
            return TEST_STRING
        return None

    def execute(self, response: str | None = None, outputs: bool = True) -> dict[str, Any]:
        """Jobs.createExecuteJsonNode (and ...NoOutputs): every input it can fill, every output by value."""
        body: dict[str, Any] = {"inputs": {n: v for n in self.inputs if (v := self.value(n)) is not None}}
        if outputs:
            body["outputs"] = {n: {"transmissionMode": "value"} for n in self.outputs}
        if response:
            body["response"] = response
        return body


@pytest.fixture
def echo(gateway) -> Echo:
    return Echo(gateway.client)


def execute(client, body, prefer: str | None = None, status: int | str = "*", accept: str = "application/json"):
    headers = {"Accept": accept, **({"Prefer": prefer} if prefer else {})}
    return client.post_json(f"{ECHO}/execution", body, headers=headers, status=status)


def parts_of(response) -> list:
    """The parts of a multipart/related answer (javax.mail.MimeMultipart in the suite)."""
    head = f"Content-Type: {response.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + response.body)
    assert message.is_multipart()
    return list(message.iter_parts())


# -- the echo process as the suite reads it -------------------------------------------------------------


def test_the_echo_process_is_what_the_suite_expects(echo):
    """Its first input is a string (testJobCreationSyncRawValueOne executes inputs.get(0)), the others it
    cannot fill are optional, the bounding box is recognised, ``pause`` is an integer; it runs both ways."""
    assert list(echo.inputs)[0] == "literalInput" and echo.value("literalInput") == TEST_STRING
    assert all(spec["minOccurs"] == 0 for spec in echo.inputs.values())
    assert Echo.is_bbox(echo.inputs["boundingboxInput"]["schema"])
    assert Echo.is_bbox(echo.outputs["boundingboxOutput"]["schema"])
    assert echo.inputs["pause"]["schema"]["type"] == "integer"
    assert {"sync-execute", "async-execute"} <= set(echo.control)


# -- jobs.Jobs ------------------------------------------------------------------------------------------


def test_testJobCreationAutoExecutionMode(gateway, echo):
    execute(gateway.client, echo.execute(), prefer="respond-async", status=201)


def test_testJobCreationDefaultExecutionMode(gateway, echo):
    execute(gateway.client, echo.execute(), status=200)


def test_testJobCreationDefaultOutputs(gateway, echo):
    assert execute(gateway.client, echo.execute(outputs=False)).status_int in (200, 201)


@pytest.mark.parametrize("name", ["testJobCreationInputInline", "testJobCreationInputInlineBinary",
                                  "testJobCreationInputInlineMixed", "testJobCreationInputInlineObject",
                                  "testJobCreationInputs", "testJobOp"])
def test_the_plain_execute_requests_succeed(gateway, echo, name):
    """The echo process has no object or binary input: these build the plain request, and expect 200 or 201."""
    assert execute(gateway.client, echo.execute()).status_int in (200, 201)


def test_testJobCreationInputInlineBbox(gateway, echo):
    body = {"inputs": {"boundingboxInput": {"bbox": [51.9, 7, 52, 7.1],
                                            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "outputs": {"boundingboxOutput": {"transmissionMode": "value"}}, "response": "document"}
    results = validate_official("results", execute(gateway.client, body, status=200).json)
    assert results == {"boundingboxOutput": {"bbox": [51.9, 7, 52, 7.1],
                                             "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}
    problem(gateway.client.post_json(f"{ECHO}/execution", {"inputs": {"boundingboxInput": {"bbox": [1, 2, 3]}}},
                                     status=400), 400, "invalid-parameter")


def test_testJobCreationInputRef(gateway, echo):
    """Raw (the default) with several outputs: multipart/related, each part holding the value sent."""
    response = execute(gateway.client, echo.execute(), status=200)
    assert response.content_type == "multipart/related"
    parts = parts_of(response)
    assert [p["Content-ID"] for p in parts] == ["<literalOutput>", "<complexOutput>"]
    assert all(TEST_STRING in p.get_content() for p in parts)


def test_testJobCreationInputValidation(gateway, echo):
    """Issue 14, item 17: a valid request succeeds; an input in a wrong format is 400 with an exception.yaml
    document. OGC 18-062r2 declares exceptions as application/json and the suite (asking for it with Accept)
    requires exactly that media type; RFC 7807's application/problem+json is the answer otherwise."""
    assert execute(gateway.client, echo.execute()).status_int == 200
    wrong = echo.execute()
    for name, spec in echo.inputs.items():  # Jobs.addInputWithWrongFormat
        if spec["schema"].get("contentMediaType"):
            wrong["inputs"][name] = {"type": f"wrong/type_{uuid.uuid4()}"}
    refused = execute(gateway.client, wrong, status=400)
    assert refused.headers["Content-Type"] == "application/json"
    validate_official("exception", refused.json)
    plain = gateway.client.post_json(f"{ECHO}/execution", wrong, status=400)
    assert plain.headers["Content-Type"] == "application/problem+json"
    assert plain.json == refused.json
    preferred = execute(gateway.client, wrong, status=400, accept="application/problem+json, application/json;q=0.5")
    assert preferred.headers["Content-Type"] == "application/problem+json"


def test_testJobCreationRequest_and_testJobCreationSuccessAsync(gateway, echo):
    response = execute(gateway.client, echo.execute(), prefer="respond-async", status=201)
    info = validate_official("statusInfo", gateway.client.get(path_of(response.headers["Location"]),
                                                              headers=JSON).json)
    assert info["jobID"] == response.json["jobID"]


def test_testJobCreationSyncDocument(gateway, echo):
    results = validate_official("results", execute(gateway.client, echo.execute("document"), status=200).json)
    assert results["literalOutput"] == TEST_STRING
    assert results["complexOutput"] == {"value": TEST_STRING, "mediaType": "text/xml"}


@pytest.mark.parametrize("name", ["testJobCreationSyncRawMixedMulti", "testJobCreationSyncRawRef",
                                  "testJobCreationSyncRawValueMulti"])
def test_sync_raw_requests_answer_200(gateway, echo, name):
    assert execute(gateway.client, echo.execute("raw"), status=200).content_type == "multipart/related"


def test_raw_results_as_part1_7_11_4_2_asks(gateway):
    """Issue 14, item 15: raw with one output by reference is 204 with a Link to it; a mix of value and
    reference is multipart, the referenced part empty with a Content-Location."""
    inputs = {"literalInput": "a", "complexInput": "<b/>"}
    one = execute(gateway.client, {"inputs": inputs, "outputs": {"complexOutput": {"transmissionMode": "reference"}},
                                   "response": "raw"}, status=204)
    output_link, monitor = one.headers.getall("Link")
    target, rel = output_link.split(";")
    assert rel.strip() == 'rel="complexOutput"' and monitor.endswith("; rel=monitor")
    assert gateway.client.get(path_of(target.strip("<> "))).text == "<b/>"
    mixed = execute(gateway.client, {"inputs": inputs, "response": "raw", "outputs": {
        "literalOutput": {"transmissionMode": "value"}, "complexOutput": {"transmissionMode": "reference"}}},
        status=200)
    literal, reference = parts_of(mixed)
    assert literal.get_content() == "a" and reference.get_content() == ""
    assert gateway.client.get(path_of(reference["Content-Location"])).text == "<b/>"


def test_testJobCreationSyncRawValueOne(gateway, echo):
    body = {"inputs": {"literalInput": TEST_STRING}, "outputs": {}, "response": "raw"}  # ...OneInput
    response = execute(gateway.client, body, status=200)
    assert response.text == TEST_STRING and response.content_type == "text/plain"


def test_testJobExceptionNoSuchJob_and_testJobResultsNoSuchJob(gateway):
    # The suite asks /processes/invalid-job-{uuid} (sic) and /processes/invalid-job-{uuid}/results.
    for path, exception in ((f"/processes/invalid-job-{uuid.uuid4()}", "no-such-process"),
                            (f"/jobs/invalid-job-{uuid.uuid4()}", "no-such-job"),
                            (f"/jobs/invalid-job-{uuid.uuid4()}/results", "no-such-job")):
        answer = gateway.client.get(path, headers=JSON, status=404)
        assert answer.content_type == "application/json" and answer.json["type"].endswith(exception)
        problem(gateway.client.get(path, status=404), 404, exception)


def test_testJobResultsExceptionResultsNotReady(gateway):
    body = {"inputs": {"literalInput": TEST_STRING, "pause": 5}, "outputs": {}, "response": "raw"}
    location = path_of(execute(gateway.client, body, prefer="respond-async", status=201).headers["Location"])
    results = gateway.client.get(f"{location}/results", headers=JSON, status=404)
    assert results.json["type"] == "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/result-not-ready"
    validate_official("exception", results.json)
    gateway.client.delete(location)


def test_testJobResultsFailed(gateway):
    """An execute request with a member the standard does not know is refused, naming it."""
    refused = execute(gateway.client, {"invalid-execute-request": "true)"}, status=400)
    assert refused.status_int > 200 and "invalid-execute-request" in refused.json["detail"]
    validate_official("exception", refused.json)


@pytest.mark.parametrize("response_type", ["document", "raw"])
def test_testJobResults_and_the_async_variants(gateway, echo, response_type):
    """testJobResults, testJobResultsAsyncDocument, ...AsyncRawMixedMulti, ...AsyncRawRef, ...AsyncRawValueMulti:
    201, then a valid statusInfo; the results as the request asked."""
    created = execute(gateway.client, echo.execute(response_type), prefer="respond-async", status=201)
    info, _ = poll_job(gateway.client, created.json["jobID"])
    assert info["status"] == "successful"
    results = gateway.client.get(path_of(by_rel(info["links"], "http://www.opengis.net/def/rel/ogc/1.0/results")
                                         ["href"]))
    if response_type == "document":
        assert validate_official("results", results.json)["literalOutput"] == TEST_STRING
    else:
        assert [p.get_content() for p in parts_of(results)] == [TEST_STRING, TEST_STRING]


def test_testJobResultsAsyncRawValueOne(gateway):
    """Item 14: while the job runs, its status links rel=monitor (the suite's loopOverStatus follows it); then
    the results link gives the raw value (item 15)."""
    body = {"inputs": {"literalInput": TEST_STRING, "pause": 1}, "outputs": {}, "response": "raw"}
    created = execute(gateway.client, body, prefer="respond-async", status=201)
    monitor = by_rel(created.json["links"], "monitor")
    assert path_of(monitor["href"]) == path_of(created.headers["Location"])
    info, _ = poll_job(gateway.client, created.json["jobID"])
    assert "monitor" not in {link["rel"] for link in info["links"]}
    results = by_rel(info["links"], "http://www.opengis.net/def/rel/ogc/1.0/results")
    assert gateway.client.get(path_of(results["href"])).text == TEST_STRING


def test_testJobResultsSync(gateway, echo):
    """A synchronous execution that made a job says so: Link rel=monitor (RFC 8288; the suite's own parser keeps
    the angle brackets of the URI it splits off, so it cannot follow any RFC-conform link)."""
    response = execute(gateway.client, echo.execute(), status=200)
    target, rel = response.headers["Link"].split(";")
    assert "rel=monitor" in response.headers["Link"] and rel.strip() == "rel=monitor"
    info = validate_official("statusInfo", gateway.client.get(path_of(target.strip("<> ")), headers=JSON).json)
    assert info["status"] == "successful"


def test_testJobSuccess(gateway, echo):
    created = execute(gateway.client, echo.execute(), prefer="respond-async ", status=201)
    validate_official("statusInfo", gateway.client.get(path_of(created.headers["Location"])).json)


# -- joblist.JobList ------------------------------------------------------------------------------------


def test_testJobList_and_testJobListSuccess(gateway, echo):
    execute(gateway.client, echo.execute(), status=200)
    doc = validate_official("jobList", gateway.client.get("/jobs", headers=JSON).json)
    assert len(doc["jobs"]) > 0


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_job_list_by_duration(tmp_path, sample_data, request, database):
    """Issue 14, item 16: minDuration and maxDuration (seconds from the first task's start to the end, or to now
    for a running job); jobs that never started have no duration. Start times are set in the store, so that no
    test depends on how fast this machine is."""
    extra = {"GATEWAY_DATABASE_URL": request.getfixturevalue("postgres_url")} if database == "postgresql" else {}
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, **extra)
    try:
        ids = [execute(gateway.client, {"inputs": {"literalInput": str(n)}}, prefer="respond-async",
                       status=201).json["jobID"] for n in range(4)]
        now = utcnow()
        spans = {ids[0]: (30, 20), ids[1]: (300, 100), ids[2]: (50, None)}  # seconds ago: started, finished
        with gateway.store.session() as session:
            for job_id, (started, finished) in spans.items():
                session.execute(update(Job).where(Job.id == job_id).values(
                    status="successful" if finished else "running", started=now - _seconds(started),
                    finished=None if finished is None else now - _seconds(finished)))

        def listed(**params) -> set[str]:
            return {j["jobID"] for j in validate_official("jobList", gateway.client.get(
                "/jobs", {**params, "limit": 100}).json)["jobs"]}

        assert listed(minDuration=15) == {ids[1], ids[2]}  # 10 s, 200 s, 50 s and counting
        assert listed(maxDuration=60) == {ids[0], ids[2]}
        assert listed(minDuration=100, maxDuration=1000) == {ids[1]}
        assert ids[3] not in listed(minDuration=0)  # accepted, never started
        assert list_jobs(gateway.store, filters=JobFilter(min_duration=199, max_duration=201))[0].id == ids[1]
        for bad in ({"minDuration": "-1"}, {"maxDuration": "soon"}, {"minDuration": str(2**31)}):
            problem(gateway.client.get("/jobs", bad, status=400), 400, "invalid-parameter")
    finally:
        close_gateway(gateway)


def _seconds(n: float):
    from datetime import timedelta

    return timedelta(seconds=n)


# -- process descriptions and pages (issue 14, items 18 and 23) -----------------------------------------


def test_browser_pages(gateway, echo):
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    client = gateway.client
    job_id = execute(client, echo.execute(), status=200).headers["Link"].split(">")[0].rsplit("/", 1)[1]
    results = client.get(f"/jobs/{job_id}/results", headers=browser).text
    assert TEST_STRING in results
    referenced = execute(client, {"inputs": {"complexInput": "<x/>"}, "response": "document"}, status=200)
    ref_job = referenced.headers["Link"].split(">")[0].rsplit("/", 1)[1]
    page = client.get(f"/jobs/{ref_job}/results", headers=browser).text
    assert f'<a href="http://localhost/outputs/{ref_job}/complexOutput.xml">' in page
    job_page = client.get(f"/jobs/{job_id}", headers=browser).text
    assert "<th></th>" not in job_page and "<thead>" not in job_page
    api = client.get("/api", {"f": "html"}).text
    assert api.startswith("<!DOCTYPE html>") and "POST <code>/processes/{processId}/execution</code>" in api
    assert "minDuration" in api and "<script" not in api and "<link" not in api and '"openapi"' not in api
    missing = client.get("/processes/nothing-here", headers=browser, status=404)
    assert missing.content_type == "text/html" and "No such process" in missing.text
    assert client.get("/processes/nothing-here", status=404).content_type == "application/problem+json"
    landing = client.get("/", headers=browser).text
    assert "Part 2" in landing and "WPS 2.0" in landing


def test_a_result_of_a_dismissed_job_is_gone(gateway, echo):
    """Issue 14, item 12 (OGC API DELETE): the results go with the dismissal."""
    response = execute(gateway.client, echo.execute("document"), status=200)
    job_id = response.headers["Link"].split(">")[0].rsplit("/", 1)[1]
    assert validate_official("statusInfo", gateway.client.delete(f"/jobs/{job_id}").json)["status"] == "dismissed"
    problem(gateway.client.get(f"/jobs/{job_id}/results", status=410), 410)
