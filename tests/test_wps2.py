"""WPS 2.0 end to end in one process, on the same job store as WPS 1.0.0; every response schema-validated."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import rasterio
from lxml import etree

from wps_gateway.jobs import get_job
from wps_gateway.store.models import JobStatus

from .conftest import assert_valid
from .jobs_support import attempts_of, job_id_of, wait_for
from .test_wps1 import NS as NS1
from .test_wps1 import kvp_refs, poll_until_final

WPS_NS = "http://www.opengis.net/wps/2.0"
NS = {"wps": WPS_NS, "ows": "http://www.opengis.net/ows/2.0", "xlink": "http://www.w3.org/1999/xlink"}
GEOTIFF = "image/tiff; application=geotiff"
KVP = {"service": "WPS", "version": "2.0.0"}


# -- request builders ------------------------------------------------------------


def execute_xml(identifier: str, inputs: list[tuple[str, str, str]], outputs: list[dict[str, str]] | None = None,
                mode: str = "async", response: str = "document", version: str = "2.0.0") -> bytes:
    """A WPS 2.0 Execute; inputs are (id, 'ref'|'literal', value), outputs the attributes of each wps:Output."""
    parts = []
    for name, kind, value in inputs:
        if kind == "ref":
            data = f'<wps:Reference xlink:href="{value}" mimeType="{GEOTIFF}"/>'
        else:
            data = f"<wps:Data>{value}</wps:Data>"
        parts.append(f'<wps:Input id="{name}">{data}</wps:Input>')
    for attrs in outputs or []:
        parts.append("<wps:Output " + " ".join(f'{k}="{v}"' for k, v in attrs.items()) + "/>")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="{version}" mode="{mode}" response="{response}"
  xmlns:wps="{WPS_NS}" xmlns:ows="http://www.opengis.net/ows/2.0" xmlns:xlink="http://www.w3.org/1999/xlink">
  <ows:Identifier>{identifier}</ows:Identifier>
  {''.join(parts)}
</wps:Execute>""".encode()


def job_xml(operation: str, job_id: str) -> bytes:
    return (f'<wps:{operation} service="WPS" version="2.0.0" xmlns:wps="{WPS_NS}">'
            f"<wps:JobID>{job_id}</wps:JobID></wps:{operation}>").encode()


def post(gateway, body: bytes, status: int | str = 200):
    return gateway.client.post("/wps", body, content_type="text/xml", status=status)


def job_op(gateway, operation: str, job_id: str, via: str = "kvp", status: int | str = 200):
    if via == "xml":
        return post(gateway, job_xml(operation, job_id), status)
    return gateway.client.get("/wps", {**KVP, "request": operation, "jobId": job_id}, status=status)


def status_of(doc: etree._Element) -> tuple[str, int | None]:
    assert etree.QName(doc).localname == "StatusInfo", etree.tostring(doc)
    percent = doc.findtext("wps:PercentCompleted", namespaces=NS)
    return doc.findtext("wps:Status", namespaces=NS), None if percent is None else int(percent)


def poll_status(gateway, job_id: str, schema, timeout: float = 60) -> tuple[etree._Element, list[tuple[str, int]]]:
    """GetStatus (KVP and XML in turn) until the job is final; return the last StatusInfo and what was seen."""
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        doc = assert_valid(schema, job_op(gateway, "GetStatus", job_id, via=("kvp", "xml")[n % 2]).body)
        n += 1
        assert doc.findtext("wps:JobID", namespaces=NS) == job_id
        state = status_of(doc)
        if not seen or seen[-1] != state:
            seen.append(state)
        if state[0] in ("Succeeded", "Failed", "Dismissed"):
            return doc, seen
        time.sleep(0.05)
    raise AssertionError(f"job not final after {timeout} s; seen {seen}")


def outputs_of(result: etree._Element) -> dict[str, etree._Element]:
    assert etree.QName(result).localname == "Result", etree.tostring(result)
    return {o.get("id"): o for o in result.iterfind("wps:Output", NS)}


def exception_of(schema, response) -> tuple[str, str]:
    doc = assert_valid(schema, response.body)
    assert etree.QName(doc) == etree.QName(NS["ows"], "ExceptionReport"), response.body
    exc = doc.find("ows:Exception", NS)
    return exc.get("exceptionCode"), exc.get("locator") or ""


# -- GetCapabilities and DescribeProcess ----------------------------------------------


def test_capabilities_in_kvp_and_xml(gateway, wps200_schema):
    for response in (
        gateway.client.get("/wps", {"service": "WPS", "request": "GetCapabilities", "AcceptVersions": "2.0.0"}),
        gateway.client.get("/wps", {"SERVICE": "WPS", "REQUEST": "GetCapabilities", "ACCEPTVERSIONS": "2.0.0,1.0.0"}),
        post(gateway, f"""<wps:GetCapabilities service="WPS" xmlns:wps="{WPS_NS}"
            xmlns:ows="http://www.opengis.net/ows/2.0"><ows:AcceptVersions><ows:Version>2.0.0</ows:Version>
            </ows:AcceptVersions></wps:GetCapabilities>""".encode()),
    ):
        doc = assert_valid(wps200_schema, response.body)
        assert doc.get("version") == "2.0.0"
        summaries = {e.findtext("ows:Identifier", namespaces=NS): e for e in doc.iterfind(".//wps:ProcessSummary", NS)}
        assert {"ndvi-mosaic", "urban-footprint", "sleepy-squares"} <= set(summaries)
        assert "dismiss" in summaries["ndvi-mosaic"].get("jobControlOptions").split()
        operations = {e.get("name") for e in doc.iterfind(".//ows:Operation", NS)}
        assert {"GetStatus", "GetResult", "Dismiss", "Execute"} <= operations


def test_capabilities_version_negotiation(gateway, wps100_schema, wps200_schema):
    """No AcceptVersions: WPS 1.0.0 as before. Otherwise the first version the client lists that the server
    speaks (OWS Common 1.1, 7.3.2): 1.0.0 for "1.0.0,2.0.0", our valid 2.0 document for "2.0.0,1.0.0"."""
    for query in ({"service": "WPS", "request": "GetCapabilities"},
                  {"service": "WPS", "request": "GetCapabilities", "AcceptVersions": "1.0.0"},
                  {"service": "WPS", "request": "GetCapabilities", "AcceptVersions": "1.0.0,2.0.0"},
                  {"service": "WPS", "request": "GetCapabilities", "AcceptVersions": "0.9,1.0.0,2.0.0"}):
        assert assert_valid(wps100_schema, gateway.client.get("/wps", query).body).get("version") == "1.0.0"
    for accept in ("2.0.0,1.0.0", "2.0.0", "3.0.0,2.0.0,1.0.0"):
        both = gateway.client.get("/wps", {"service": "WPS", "request": "GetCapabilities", "AcceptVersions": accept})
        assert assert_valid(wps200_schema, both.body).get("version") == "2.0.0"
    wps1_post = post(gateway, b"""<wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0"
        xmlns:ows="http://www.opengis.net/ows/1.1"><ows:AcceptVersions><ows:Version>2.0.0</ows:Version>
        </ows:AcceptVersions></wps:GetCapabilities>""")
    assert assert_valid(wps200_schema, wps1_post.body).get("version") == "2.0.0"


def test_describe_process_gives_full_inputs_and_outputs(gateway, wps200_schema):
    kvp = gateway.client.get("/wps", {**KVP, "request": "DescribeProcess",
                                      "identifier": "urban-footprint,sleepy-squares"})
    xml = post(gateway, f"""<wps:DescribeProcess service="WPS" version="2.0.0" xmlns:wps="{WPS_NS}"
        xmlns:ows="http://www.opengis.net/ows/2.0"><ows:Identifier>urban-footprint</ows:Identifier>
        <ows:Identifier>sleepy-squares</ows:Identifier></wps:DescribeProcess>""".encode())
    for response in (kvp, xml):
        doc = assert_valid(wps200_schema, response.body)
        processes = [p.findtext("ows:Identifier", namespaces=NS) for p in doc.iterfind(".//wps:Process", NS)]
        assert processes == ["urban-footprint", "sleepy-squares"]  # in the order asked for
        urban = doc.find("wps:ProcessOffering/wps:Process", NS)
        inputs = {i.findtext("ows:Identifier", namespaces=NS): i for i in urban.iterfind("wps:Input", NS)}
        assert set(inputs) == {"tiles", "ndbi_threshold", "ndvi_max"}
        assert (inputs["tiles"].get("minOccurs"), inputs["tiles"].get("maxOccurs")) == ("1", "64")
        assert inputs["tiles"].find("wps:ComplexData/wps:Format", NS).get("mimeType") == GEOTIFF
        domain = inputs["ndbi_threshold"].find("wps:LiteralData/LiteralDataDomain", NS)
        assert domain.findtext("ows:DataType", namespaces=NS) == "double"
        assert domain.findtext("ows:DefaultValue", namespaces=NS) == "0.1"
        assert domain.findtext("ows:AllowedValues/ows:Range/ows:MaximumValue", namespaces=NS) == "1"
        outputs = {o.findtext("ows:Identifier", namespaces=NS) for o in urban.iterfind("wps:Output", NS)}
        assert outputs == {"footprint", "statistics", "total_area_km2"}
        sleepy = doc.findall("wps:ProcessOffering/wps:Process", NS)[1]
        enum = sleepy.findall(".//ows:AllowedValues/ows:Value", NS)
        assert [v.text for v in enum] == ["none", "square", "total"]


# -- Execute ---------------------------------------------------------------------


def test_async_execute_then_get_status_and_get_result_with_real_outputs(gateway, scenes, wps200_schema):
    june = [p for p in scenes if "20240610" in p.name]
    response = post(gateway, execute_xml("ndvi-mosaic", [("scenes", "ref", p.as_uri()) for p in june]))
    accepted = assert_valid(wps200_schema, response.body)
    assert status_of(accepted) == ("Accepted", 0)
    assert accepted.find("wps:NextPoll", NS) is not None
    job_id = accepted.findtext("wps:JobID", namespaces=NS)

    final, seen = poll_status(gateway, job_id, wps200_schema)
    assert seen[-1] == ("Succeeded", 100), seen
    assert any(state == "Running" for state, _ in seen), seen
    percents = [p for _, p in seen]
    assert percents == sorted(percents), "progress went backwards"

    for via in ("kvp", "xml"):
        outputs = outputs_of(assert_valid(wps200_schema, job_op(gateway, "GetResult", job_id, via).body))
        assert set(outputs) == {"mosaic", "statistics", "mean_ndvi"}
    reference = outputs["mosaic"].find("wps:Reference", NS)
    assert reference.get("mimeType") == GEOTIFF
    href = reference.get(f"{{{NS['xlink']}}}href")
    assert href == f"http://localhost/outputs/{job_id}/mosaic.tif"
    mosaic = gateway.client.get(href.replace("http://localhost", ""))
    (gateway.settings.data_dir / "mosaic.tif").write_bytes(mosaic.body)
    with rasterio.open(gateway.settings.data_dir / "mosaic.tif") as ds:
        assert ds.driver == "GTiff"
        ndvi = ds.read(1)
    valid = ndvi[np.isfinite(ndvi)]
    assert valid.size > 0 and -1 <= valid.min() <= valid.max() <= 1
    mean = float(outputs["mean_ndvi"].findtext("wps:Data/wps:LiteralValue", namespaces=NS))
    assert abs(mean - float(valid.mean())) < 1e-3
    stats_href = outputs["statistics"].find("wps:Reference", NS).get(f"{{{NS['xlink']}}}href")
    stats = json.loads(gateway.client.get(stats_href.replace("http://localhost", "")).body)
    assert len(stats["scenes"]) == len(june)


def test_sync_execute_document_with_inline_and_referenced_outputs(gateway, scenes, wps200_schema):
    tiles = [p for p in scenes if "20240720" in p.name][:2]
    inputs = [("tiles", "ref", p.as_uri()) for p in tiles] + [("ndvi_max", "literal", "0.3")]
    body = execute_xml("urban-footprint", inputs,
                       [{"id": "statistics", "transmission": "value"}, {"id": "total_area_km2"},
                        {"id": "footprint", "mimeType": "image/tiff; application=geotiff"}], mode="sync")
    doc = assert_valid(wps200_schema, post(gateway, body).body)
    assert doc.findtext("wps:JobID", namespaces=NS)
    outputs = outputs_of(doc)
    assert set(outputs) == {"statistics", "total_area_km2", "footprint"}
    stats_data = outputs["statistics"].find("wps:Data", NS)
    assert stats_data.get("mimeType") == "application/json"
    stats = json.loads(stats_data.text)
    total = float(outputs["total_area_km2"].findtext("wps:Data/wps:LiteralValue", namespaces=NS))
    assert stats["total"]["built_up_area_m2"] > 0
    assert abs(stats["total"]["built_up_area_m2"] / 1e6 - total) < 1e-6
    assert outputs["footprint"].find("wps:Reference", NS) is not None


def test_sync_execute_raw_returns_the_output_itself(gateway, scenes):
    tiles = [p for p in scenes if "20240720" in p.name][:2]
    response = post(gateway, execute_xml("urban-footprint", [("tiles", "ref", p.as_uri()) for p in tiles],
                                         [{"id": "statistics"}], mode="sync", response="raw"))
    assert response.content_type == "application/json"
    assert response.json["total"]["built_up_area_m2"] > 0
    literal = post(gateway, execute_xml("sleepy-squares", [("numbers", "literal", "3"), ("seconds", "literal", "0")],
                                        mode="auto", response="raw"))  # one output: no wps:Output needed
    assert literal.content_type == "text/plain" and literal.text == "9"


def test_literal_by_reference_and_auto_document_is_asynchronous(gateway, wps200_schema):
    body = execute_xml("sleepy-squares", [("numbers", "literal", "2"), ("numbers", "literal", "4"),
                                          ("seconds", "literal", "<wps:LiteralValue>0</wps:LiteralValue>")],
                       [{"id": "total", "transmission": "reference"}], mode="auto")
    accepted = assert_valid(wps200_schema, post(gateway, body).body)
    job_id = accepted.findtext("wps:JobID", namespaces=NS)
    poll_status(gateway, job_id, wps200_schema)
    outputs = outputs_of(assert_valid(wps200_schema, job_op(gateway, "GetResult", job_id).body))
    href = outputs["total"].find("wps:Reference", NS).get(f"{{{NS['xlink']}}}href")
    assert gateway.client.get(href.replace("http://localhost", "")).text.strip() == "20"


def test_failed_job_reports_its_reason(gateway, wps200_schema):
    inputs = [("numbers", "literal", "1"), ("seconds", "literal", "0"), ("fail_step", "literal", "square")]
    response = post(gateway, execute_xml("sleepy-squares", inputs, mode="sync"), status=500)
    assert exception_of(wps200_schema, response)[0] == "InternalServerError"
    assert b"the square step was told to fail" in response.body
    job_id = assert_valid(wps200_schema, post(gateway, execute_xml("sleepy-squares", inputs)).body).findtext(
        "wps:JobID", namespaces=NS)
    final, _ = poll_status(gateway, job_id, wps200_schema)
    assert status_of(final)[0] == "Failed"
    assert exception_of(wps200_schema, job_op(gateway, "GetResult", job_id, status=500))[0] == "InternalServerError"


# -- Dismiss -------------------------------------------------------------------------


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("via", ["kvp", "xml"])
def test_dismiss_of_a_running_job_stops_its_tasks(gateway, wps200_schema, via):
    body = execute_xml("sleepy-squares", [("numbers", "literal", "1"), ("numbers", "literal", "2"),
                                          ("seconds", "literal", "5")])
    job_id = assert_valid(wps200_schema, post(gateway, body).body).findtext("wps:JobID", namespaces=NS)
    wait_for(lambda: len([a for a in attempts_of(gateway, job_id) if alive(a.pid)]) == 2, 20)
    pids = [a.pid for a in attempts_of(gateway, job_id)]

    dismissed = assert_valid(wps200_schema, job_op(gateway, "Dismiss", job_id, via).body)
    assert status_of(dismissed)[0] == "Dismissed"
    wait_for(lambda: get_job(gateway.store, job_id).status == JobStatus.DISMISSED, 10)
    wait_for(lambda: not any(alive(pid) for pid in pids), 15)
    # the kills are recorded once their events are applied: wait for that, not just for the processes
    wait_for(lambda: all(a.status == "killed" for a in attempts_of(gateway, job_id)), 15)
    assert status_of(assert_valid(wps200_schema, job_op(gateway, "GetStatus", job_id).body))[0] == "Dismissed"
    assert exception_of(wps200_schema, job_op(gateway, "GetResult", job_id, status=400)) == ("NoSuchJob", "JobID")


def test_dismiss_of_an_accepted_job_is_immediate(tmp_path, sample_data, wps200_schema):
    from .conftest import build_gateway, close_gateway

    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        body = execute_xml("sleepy-squares", [("numbers", "literal", "1")])
        job_id = assert_valid(wps200_schema, post(gateway, body).body).findtext("wps:JobID", namespaces=NS)
        doc = assert_valid(wps200_schema, job_op(gateway, "Dismiss", job_id).body)
        assert status_of(doc)[0] == "Dismissed"
        assert get_job(gateway.store, job_id).status == JobStatus.DISMISSED
    finally:
        close_gateway(gateway)


# -- one job store, two protocol versions ------------------------------------------------


def test_a_wps2_job_is_visible_at_its_wps1_status_location(gateway, wps100_schema, wps200_schema):
    body = execute_xml("sleepy-squares", [("numbers", "literal", "3"), ("numbers", "literal", "4"),
                                          ("seconds", "literal", "0.1")])
    job_id = assert_valid(wps200_schema, post(gateway, body).body).findtext("wps:JobID", namespaces=NS)
    final, seen = poll_until_final(gateway.client, f"http://localhost/wps/status/{job_id}.xml", wps100_schema)
    assert seen[-1] == "ProcessSucceeded"
    assert final.findtext(".//wps:Output/wps:Data/wps:LiteralData", namespaces=NS1) == "25"
    outputs = outputs_of(assert_valid(wps200_schema, job_op(gateway, "GetResult", job_id).body))
    assert outputs["total"].findtext("wps:Data/wps:LiteralValue", namespaces=NS) == "25"


def test_a_wps1_async_job_is_reachable_with_wps2(gateway, scenes, wps100_schema, wps200_schema):
    tiles = [p for p in scenes if "20240720" in p.name][:2]
    response = gateway.client.get("/wps", {
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "urban-footprint",
        "DataInputs": kvp_refs("tiles", tiles), "storeExecuteResponse": "true", "status": "true"})
    doc = assert_valid(wps100_schema, response.body)
    job_id = job_id_of(doc.get("statusLocation"))
    final, seen = poll_status(gateway, job_id, wps200_schema)
    assert seen[-1] == ("Succeeded", 100)
    outputs = outputs_of(assert_valid(wps200_schema, job_op(gateway, "GetResult", job_id, "xml").body))
    assert set(outputs) == {"footprint", "statistics", "total_area_km2"}
    assert float(outputs["total_area_km2"].findtext("wps:Data/wps:LiteralValue", namespaces=NS)) > 0
    href = outputs["footprint"].find("wps:Reference", NS).get(f"{{{NS['xlink']}}}href")
    assert gateway.client.get(href.replace("http://localhost", "")).body[:4] in (b"II*\x00", b"MM\x00*")


# -- errors --------------------------------------------------------------------------------


def test_get_result_of_an_unfinished_job_is_not_ready(gateway, wps200_schema):
    body = execute_xml("sleepy-squares", [("numbers", "literal", "1"), ("seconds", "literal", "3")])
    job_id = assert_valid(wps200_schema, post(gateway, body).body).findtext("wps:JobID", namespaces=NS)
    for via in ("kvp", "xml"):
        assert exception_of(wps200_schema, job_op(gateway, "GetResult", job_id, via, status=400)) == (
            "ResultNotReady", "JobID")
    job_op(gateway, "Dismiss", job_id)


@pytest.mark.parametrize("query, status, code, locator", [
    ({**KVP, "request": "GetStatus", "jobId": "no-such-job"}, 400, "NoSuchJob", "JobID"),
    ({**KVP, "request": "GetResult", "jobId": "no-such-job"}, 400, "NoSuchJob", "JobID"),
    ({**KVP, "request": "Dismiss", "jobId": "no-such-job"}, 400, "NoSuchJob", "JobID"),
    ({"service": "WPS", "request": "GetStatus", "JOBID": "no-such-job"}, 400, "NoSuchJob", "JobID"),
    ({**KVP, "request": "GetStatus"}, 400, "MissingParameterValue", "jobId"),
    ({"version": "2.0.0", "request": "GetStatus", "jobId": "x"}, 400, "MissingParameterValue", "service"),
    ({"service": "WFS", "version": "2.0.0", "request": "GetStatus", "jobId": "x"}, 400, "InvalidParameterValue",
     "service"),
    ({"service": "WPS", "version": "2.0.0"}, 400, "MissingParameterValue", "request"),
    ({**KVP, "request": "DescribeProcess", "identifier": "no-such-process"}, 400, "NoSuchProcess", "no-such-process"),
    ({**KVP, "request": "DescribeProcess"}, 400, "MissingParameterValue", "identifier"),
    ({**KVP, "request": "Frobnicate"}, 501, "OperationNotSupported", "Frobnicate"),
    ({**KVP, "request": "Execute", "identifier": "sleepy-squares"}, 501, "OperationNotSupported", "Execute"),
    ({**KVP, "request": "GetCapabilities", "AcceptVersions": "3.0.0"}, 400, "VersionNegotiationFailed", ""),
])
def test_kvp_errors(gateway, wps200_schema, query, status, code, locator):
    response = gateway.client.get("/wps", query, status=status)
    assert exception_of(wps200_schema, response) == (code, locator)


SLEEPY = [("numbers", "literal", "1"), ("seconds", "literal", "0")]


@pytest.mark.parametrize("body, status, code, locator", [
    (execute_xml("no-such-process", SLEEPY), 400, "NoSuchProcess", "no-such-process"),
    (execute_xml("sleepy-squares", SLEEPY, mode="eventually"), 400, "NoSuchMode", "mode"),
    (execute_xml("sleepy-squares", SLEEPY, mode=""), 400, "MissingParameterValue", "mode"),
    (execute_xml("sleepy-squares", SLEEPY, response="pdf"), 400, "InvalidParameterValue", "response"),
    (execute_xml("sleepy-squares", SLEEPY, version="1.0.0"), 400, "InvalidParameterValue", "version"),
    (execute_xml("sleepy-squares", [*SLEEPY, ("colour", "literal", "red")]), 400, "NoSuchInput", "colour"),
    (execute_xml("sleepy-squares", [("numbers", "literal", "1")] * 51), 400, "TooManyInputs", "numbers"),
    (execute_xml("sleepy-squares", [*SLEEPY, ("seconds", "literal", "1")]), 400, "TooManyInputs", "seconds"),
    (execute_xml("sleepy-squares", [("seconds", "literal", "1")]), 400, "MissingParameterValue", "numbers"),
    (execute_xml("sleepy-squares", [("numbers", "literal", "abc")]), 400, "WrongInputData", "numbers"),
    (execute_xml("sleepy-squares", [("numbers", "literal", "1"), ("seconds", "literal", "99")]), 400,
     "WrongInputData", "seconds"),
    (execute_xml("sleepy-squares", [*SLEEPY, ("fail_step", "literal", "maybe")]), 400, "WrongInputData",
     "fail_step"),
    (execute_xml("sleepy-squares", [("numbers", "ref", "file:///tmp/x.tif")]), 400, "NoSuchFormat", "numbers"),
    (execute_xml("urban-footprint", [("tiles", "ref", "file:///etc/passwd")]), 400, "DataNotAccessible", "tiles"),
    (execute_xml("urban-footprint", [("tiles", "ref", "http://169.254.169.254/latest/meta-data/")]), 400,
     "DataNotAccessible", "tiles"),
    (execute_xml("sleepy-squares", SLEEPY, [{"id": "nothing"}]), 400, "NoSuchOutput", "nothing"),
    (execute_xml("sleepy-squares", SLEEPY, [{"id": "total", "mimeType": "image/png"}]), 400, "NoSuchFormat",
     "total"),
    (execute_xml("sleepy-squares", SLEEPY, [{"id": "total", "transmission": "carrier-pigeon"}]), 400,
     "InvalidParameterValue", "transmission"),
    (execute_xml("urban-footprint", [("tiles", "ref", "file:///tmp/x.tif")], mode="sync", response="raw"), 400,
     "TooManyOutputs", "Output"),
    (execute_xml("urban-footprint", [("tiles", "ref", "file:///tmp/x.tif")],
                 [{"id": "statistics"}, {"id": "footprint"}], mode="sync", response="raw"), 400,
     "TooManyOutputs", "Output"),
    (f'<wps:GetStatus service="WPS" version="2.0.0" xmlns:wps="{WPS_NS}"/>'.encode(), 400,
     "MissingParameterValue", "JobID"),
    (f'<wps:GetStatus version="2.0.0" xmlns:wps="{WPS_NS}"><wps:JobID>x</wps:JobID></wps:GetStatus>'.encode(),
     400, "MissingParameterValue", "service"),
    (f'<wps:Frobnicate service="WPS" version="2.0.0" xmlns:wps="{WPS_NS}"/>'.encode(), 501,
     "OperationNotSupported", "Frobnicate"),
    (f"""<wps:GetCapabilities service="WPS" xmlns:wps="{WPS_NS}" xmlns:ows="http://www.opengis.net/ows/2.0">
     <ows:AcceptVersions><ows:Version>3.0.0</ows:Version></ows:AcceptVersions></wps:GetCapabilities>""".encode(),
     400, "VersionNegotiationFailed", ""),
    (f'<wps:DescribeProcess service="WPS" version="2.0.0" xmlns:wps="{WPS_NS}"/>'.encode(), 400,
     "MissingParameterValue", "Identifier"),
])
def test_xml_errors(gateway, wps200_schema, body, status, code, locator):
    assert exception_of(wps200_schema, post(gateway, body, status)) == (code, locator)


def test_no_job_is_written_for_a_refused_execute(gateway):
    from wps_gateway.jobs import list_jobs

    post(gateway, execute_xml("sleepy-squares", [("numbers", "literal", "abc")]), status=400)
    assert list_jobs(gateway.store) == []


def test_sync_execute_past_the_sync_timeout_answers_with_status_info(tmp_path, sample_data, wps200_schema):
    from .conftest import build_gateway, close_gateway

    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_SYNC_TIMEOUT="0.3")
    try:
        body = execute_xml("sleepy-squares", [("numbers", "literal", "5"), ("seconds", "literal", "1")], mode="sync")
        doc = assert_valid(wps200_schema, post(gateway, body).body)
        assert status_of(doc)[0] in ("Accepted", "Running")
        job_id = doc.findtext("wps:JobID", namespaces=NS)
        final, _ = poll_status(gateway, job_id, wps200_schema)
        assert status_of(final) == ("Succeeded", 100)
        assert outputs_of(assert_valid(wps200_schema, job_op(gateway, "GetResult", job_id).body))["total"].findtext(
            "wps:Data/wps:LiteralValue", namespaces=NS) == "25"
    finally:
        close_gateway(gateway)
