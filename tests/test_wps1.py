"""WPS 1.0.0 end to end in one process: capabilities, descriptions, sync and async Execute, outputs."""

from __future__ import annotations

import json
import time

import numpy as np
import rasterio
from lxml import etree

from .conftest import assert_valid

NS = {"wps": "http://www.opengis.net/wps/1.0.0", "ows": "http://www.opengis.net/ows/1.1",
      "xlink": "http://www.w3.org/1999/xlink"}
GEOTIFF = "image/tiff; application=geotiff"


def kvp_refs(name: str, paths) -> str:
    return ";".join(f"{name}=@xlink:href={p.as_uri()}" for p in paths)


def execute_xml(identifier: str, inputs: list[tuple[str, str, str]], response_form: str = "") -> bytes:
    """An Execute request; inputs are (id, 'ref'|'literal', value)."""
    parts = []
    for name, kind, value in inputs:
        if kind == "ref":
            data = f'<wps:Reference xlink:href="{value}" mimeType="{GEOTIFF}"/>'
        else:
            data = f"<wps:Data><wps:LiteralData>{value}</wps:LiteralData></wps:Data>"
        parts.append(f"<wps:Input><ows:Identifier>{name}</ows:Identifier>{data}</wps:Input>")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
  xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
  <ows:Identifier>{identifier}</ows:Identifier>
  <wps:DataInputs>{''.join(parts)}</wps:DataInputs>
  {response_form}
</wps:Execute>""".encode()


def poll_until_final(client, status_url: str, schema, timeout: float = 60) -> tuple[etree._Element, list[str]]:
    """Fetch the status document until it is final; return it and the states seen."""
    path = status_url.replace("http://localhost", "")
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = assert_valid(schema, client.get(path).body)
        state = etree.QName(doc.find("wps:Status", NS)[0]).localname
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in ("ProcessSucceeded", "ProcessFailed"):
            return doc, seen
        time.sleep(0.05)
    raise AssertionError(f"job not final after {timeout} s; states seen: {seen}")


def test_capabilities_list_the_shipped_processors(gateway, wps100_schema):
    for response in (
        gateway.client.get("/wps", {"service": "WPS", "request": "GetCapabilities"}),
        gateway.client.post("/wps", b"""<wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0"
            xmlns:ows="http://www.opengis.net/ows/1.1"><ows:AcceptVersions><ows:Version>1.0.0</ows:Version>
            </ows:AcceptVersions></wps:GetCapabilities>""", content_type="text/xml"),
    ):
        doc = assert_valid(wps100_schema, response.body)
        ids = {e.text for e in doc.iterfind(".//wps:Process/ows:Identifier", NS)}
        assert {"ndvi-mosaic", "urban-footprint"} <= ids


def test_describe_process_gives_full_inputs_and_outputs(gateway, wps100_schema):
    kvp = gateway.client.get("/wps", {"service": "WPS", "version": "1.0.0", "request": "DescribeProcess",
                                      "identifier": "urban-footprint"})
    post = gateway.client.post("/wps", b"""<wps:DescribeProcess service="WPS" version="1.0.0"
        xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">
        <ows:Identifier>urban-footprint</ows:Identifier></wps:DescribeProcess>""", content_type="text/xml")
    for response in (kvp, post):
        doc = assert_valid(wps100_schema, response.body)
        inputs = {i.findtext("ows:Identifier", namespaces=NS): i for i in doc.iterfind(".//DataInputs/Input", NS)}
        assert set(inputs) == {"tiles", "ndbi_threshold", "ndvi_max"}
        tiles = inputs["tiles"]
        assert tiles.get("maxOccurs") == "64"
        assert tiles.find(".//ComplexData/Default/Format/MimeType").text == GEOTIFF
        threshold = inputs["ndbi_threshold"]
        assert threshold.get("minOccurs") == "0"
        assert threshold.find(".//LiteralData/ows:DataType", NS).text == "float"
        outputs = {o.findtext("ows:Identifier", namespaces=NS) for o in doc.iterfind(".//ProcessOutputs/Output", NS)}
        assert outputs == {"footprint", "statistics", "total_area_km2"}


def test_async_execute_is_accepted_at_once_then_progresses_to_real_outputs(gateway, scenes, wps100_schema):
    june = [p for p in scenes if "20240610" in p.name]
    response = gateway.client.get("/wps", {
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "ndvi-mosaic",
        "DataInputs": kvp_refs("scenes", june), "storeExecuteResponse": "true", "status": "true"})
    doc = assert_valid(wps100_schema, response.body)
    assert doc.find("wps:Status/wps:ProcessAccepted", NS) is not None
    final, seen = poll_until_final(gateway.client, doc.get("statusLocation"), wps100_schema)
    assert seen[-1] == "ProcessSucceeded", etree.tostring(final)
    assert "ProcessStarted" in seen

    outputs = {o.findtext("ows:Identifier", namespaces=NS): o for o in final.iterfind(".//wps:Output", NS)}
    assert set(outputs) == {"mosaic", "statistics", "mean_ndvi"}
    mosaic_url = outputs["mosaic"].find("wps:Reference", NS).get("href")
    mosaic = gateway.client.get(mosaic_url.replace("http://localhost", ""))
    (gateway.settings.data_dir / "mosaic.tif").write_bytes(mosaic.body)
    with rasterio.open(gateway.settings.data_dir / "mosaic.tif") as ds:
        ndvi = ds.read(1)
        union = [rasterio.open(p).bounds for p in june]
        assert ds.bounds.left == min(b.left for b in union) and ds.bounds.top == max(b.top for b in union)
    valid = ndvi[np.isfinite(ndvi)]
    assert valid.size > 0 and valid.min() >= -1 and valid.max() <= 1
    mean = float(outputs["mean_ndvi"].findtext("wps:Data/wps:LiteralData", namespaces=NS))
    assert abs(mean - float(valid.mean())) < 1e-3
    stats_url = outputs["statistics"].find("wps:Reference", NS).get("href")
    stats = json.loads(gateway.client.get(stats_url.replace("http://localhost", "")).body)
    assert len(stats["scenes"]) == len(june)


def test_progress_follows_finished_tasks(gateway, wps100_schema):
    numbers = ";".join(f"numbers={n}" for n in range(1, 7))
    response = gateway.client.get("/wps", {
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "sleepy-squares",
        "DataInputs": f"{numbers};seconds=0.4", "storeExecuteResponse": "true", "status": "true"})
    status_path = etree.fromstring(response.body).get("statusLocation").replace("http://localhost", "")
    percents = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = assert_valid(wps100_schema, gateway.client.get(status_path).body)
        started = doc.find("wps:Status/wps:ProcessStarted", NS)
        if started is not None:
            percents.append(int(started.get("percentCompleted")))
        if doc.find("wps:Status/wps:ProcessSucceeded", NS) is not None:
            break
        time.sleep(0.05)
    assert percents == sorted(percents), "progress went backwards"
    assert any(0 < p < 100 for p in percents), percents
    total = doc.findtext(".//wps:Output/wps:Data/wps:LiteralData", namespaces=NS)
    assert int(total) == sum(n * n for n in range(1, 7))


def test_sync_execute_raw_data_output_returns_the_file(gateway, scenes, sample_data):
    tiles = [p for p in scenes if "20240720" in p.name]
    response = gateway.client.get("/wps", {
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "urban-footprint",
        "DataInputs": kvp_refs("tiles", tiles), "RawDataOutput": "statistics"})
    assert response.content_type == "application/json"
    stats = response.json
    truth = json.loads((sample_data / "manifest.json").read_text())
    assert stats["total"]["built_up_area_m2"] > 0
    assert truth  # the per-tile comparison lives in test_processors


def test_sync_execute_inline_outputs_in_the_response_document(gateway, scenes, wps100_schema):
    tiles = [p for p in scenes if "20240720" in p.name][:2]
    body = execute_xml("urban-footprint", [("tiles", "ref", p.as_uri()) for p in tiles], """
      <wps:ResponseForm><wps:ResponseDocument>
        <wps:Output asReference="false"><ows:Identifier>statistics</ows:Identifier></wps:Output>
        <wps:Output><ows:Identifier>total_area_km2</ows:Identifier></wps:Output>
      </wps:ResponseDocument></wps:ResponseForm>""")
    doc = assert_valid(wps100_schema, gateway.client.post("/wps", body, content_type="text/xml").body)
    assert doc.find("wps:Status/wps:ProcessSucceeded", NS) is not None
    outputs = {o.findtext("ows:Identifier", namespaces=NS): o for o in doc.iterfind(".//wps:Output", NS)}
    assert set(outputs) == {"statistics", "total_area_km2"}
    stats = json.loads(outputs["statistics"].findtext("wps:Data/wps:ComplexData", namespaces=NS))
    total = float(outputs["total_area_km2"].findtext("wps:Data/wps:LiteralData", namespaces=NS))
    assert abs(stats["total"]["built_up_area_m2"] / 1e6 - total) < 1e-6


def failed_sleepy(gateway, wps100_schema, data_inputs: str) -> tuple[str, str]:
    """The job id and the ProcessFailed text of an async sleepy-squares Execute meant to fail."""
    response = gateway.client.get("/wps", {
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "sleepy-squares",
        "DataInputs": data_inputs, "storeExecuteResponse": "true", "status": "true"})
    location = etree.fromstring(response.body).get("statusLocation")
    doc, _ = poll_until_final(gateway.client, location, wps100_schema)
    return (location.rsplit("/", 1)[1].removesuffix(".xml"),
            doc.findtext(".//wps:ProcessFailed//ows:ExceptionText", namespaces=NS))


def test_a_failing_task_fails_the_job_with_its_reason(gateway, wps100_schema):
    _, text = failed_sleepy(gateway, wps100_schema, "numbers=1;numbers=2;seconds=0;fail_step=square")
    assert "the square step was told to fail" in text
    assert "after 2 attempts" in text  # retries: 1 in the descriptor


def test_control_characters_in_a_message_or_an_output_do_not_break_the_documents(gateway, wps100_schema):
    """XML has no place for them (lxml refuses them); a task's coloured stderr or a literal holding them is
    shown with U+FFFD in their place, by WPS 1.0.0 and 2.0 alike."""
    job_id, text = failed_sleepy(gateway, wps100_schema, "numbers=1;seconds=0;fail_step=total;coloured=true")
    assert "\ufffd[1;31mthe total step was told to fail\ufffd[0m" in text
    failed = gateway.client.get("/wps", {"service": "WPS", "version": "2.0.0", "request": "GetResult",
                                         "jobId": job_id}, status=500)
    assert b"the total step was told to fail\xef\xbf\xbd[0m" in failed.body  # U+FFFD in UTF-8

    echoed = gateway.client.post("/processes/echo/execution", json.dumps({"inputs": {"literalInput": "a\x01b"}}),
                                 content_type="application/json", headers={"Prefer": "respond-async"}, status=201)
    job_id = echoed.json["jobID"]
    status = f"/wps/status/{job_id}.xml"
    doc, _ = poll_until_final(gateway.client, status, wps100_schema)
    assert doc.findtext(".//wps:Output/wps:Data/wps:LiteralData", namespaces=NS) == "a\ufffdb"
    result = gateway.client.get("/wps", {"service": "WPS", "version": "2.0.0", "request": "GetResult",
                                         "jobId": job_id})
    assert etree.fromstring(result.body).findtext(".//{*}LiteralValue") == "a\ufffdb"
    assert gateway.client.get(f"/jobs/{job_id}/results").body == b"a\x01b"  # the one output, as it was given


def test_a_corrupt_input_raster_fails_the_job_clearly(gateway, wps100_schema):
    uploads = gateway.settings.data_dir / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "broken.tif").write_bytes(b"this is not a GeoTIFF")
    response = gateway.client.post("/wps", execute_xml(
        "ndvi-mosaic", [("scenes", "ref", (uploads / "broken.tif").as_uri())]), content_type="text/xml")
    doc = assert_valid(wps100_schema, response.body)
    text = doc.findtext(".//wps:ProcessFailed//ows:ExceptionText", namespaces=NS)
    assert "broken.tif" in text


def test_status_of_unknown_job_is_404(gateway):
    gateway.client.get("/wps/status/no-such-job.xml", status=404)
    gateway.client.get("/outputs/no-such-job/mosaic.tif", status=404)


def test_concurrent_async_executes_are_all_accepted(live_front_end, scenes):
    """Many portal users at once: every Execute is accepted (no 500 from a shared request log)."""
    import urllib.parse
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    query = urllib.parse.urlencode({
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "ndvi-mosaic",
        "DataInputs": kvp_refs("scenes", scenes[:1]), "storeExecuteResponse": "true", "status": "true"})

    def execute(_: int) -> int:
        with urllib.request.urlopen(f"{live_front_end.url}?{query}", timeout=30) as response:
            return response.status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(execute, range(240)))
    assert statuses == [200] * 240
