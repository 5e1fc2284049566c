"""The WPS 1.0.0 test suite (OGC ets-wps10) as it tests a server, one test per suite test.

Each test is named after the suite test it mirrors: the Java tests of ``level1`` (``A.4.x``,
e.g. ``VersionNegotiationGetCapabilitiesValidation``) and the CTL tests of ``ctl/*.xml``
(e.g. ``WPS.DescribeProcess-POST-RequestInvalidIdentifier``, ``OWS.GetCapabilities-Exceptions``). They
send what the suite sends and check what it checks, and validate every answer against the official
WPS 1.0.0 schemas. Defects of issue 14 the suite (or a client) trips on are tested beside them.
"""

from __future__ import annotations

import base64
import json
import textwrap

import pytest
from lxml import etree

from processes.descriptor import same_media_type
from wps_gateway.store.models import Job

from .conftest import assert_valid
from .jobs_support import job_id_of, wait_for, wait_turns
from .test_wps1 import NS, poll_until_final

WPS_NS = NS["wps"]
OWS_NS = NS["ows"]
CAPS = {"service": "wps", "request": "GetCapabilities"}


def get(gateway, status: int | str = "*", **params):
    return gateway.client.get("/wps", params, status=status)


def post(gateway, body: str | bytes, status: int | str = "*", content_type: str = "text/xml"):
    body = body.encode() if isinstance(body, str) else body
    return gateway.client.post("/wps", body, content_type=content_type, status=status)


def exception_of(schema, response) -> tuple[str, str]:
    """The (exceptionCode, locator) of an OWS 1.1 ExceptionReport, checked against the schema."""
    assert response.status_int >= 400, response.status
    doc = assert_valid(schema, response.body)
    assert doc.tag == f"{{{OWS_NS}}}ExceptionReport"
    exception = doc.find("ows:Exception", NS)
    return exception.get("exceptionCode"), exception.get("locator") or ""


def execute_body(identifier: str, data_inputs: str = "", response_form: str = "", service: str = "WPS") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="{service}" version="1.0.0" xmlns:wps="{WPS_NS}" xmlns:ows="{OWS_NS}"
  xmlns:xlink="http://www.w3.org/1999/xlink">
  <ows:Identifier>{identifier}</ows:Identifier>
  <wps:DataInputs>{data_inputs}</wps:DataInputs>
  {response_form}
</wps:Execute>"""


def jobs_in_store(gateway) -> int:
    with gateway.store.sessions() as session:
        return session.query(Job).count()


# -- A.4.1 All operations implemented ---------------------------------------------------------------


def test_GetCapabilitiesHttpResponseStatusCodeValidation(gateway, wps100_schema):
    """A.4.1.2: a POST without a body (the KVP in the URL) is an error with an exception report."""
    response = gateway.client.post("/wps?service=wps&version=1.0.0&request=GetCapabilities", b"", status="*")
    exception_of(wps100_schema, response)


def test_DescribeProcessHttpResponseStatusCodeValidation(gateway, wps100_schema):
    for url in ("/wps?service=wps&request=DescribeProcess&Version=1.0.0",
                "/wps?service=wps&version=1.0.0&request=DescribeProcess&identifier=JTS:Invalid"):
        exception_of(wps100_schema, gateway.client.post(url, b"", status="*"))


def test_DescribeProcessHttpProtocolUsageValidation(gateway, wps100_schema):
    caps = assert_valid(wps100_schema, get(gateway, 200, **CAPS, language="en-US").body)
    first = caps.findtext(".//ows:Identifier", namespaces=NS)
    get(gateway, 200, service="wps", request="DescribeProcess", Version="1.0.0", identifier=first)


# -- A.4.2 GetCapabilities ---------------------------------------------------------------------------


def test_HTTPGETTransferredKVPGetCapabilitiesValidation(gateway):
    codes = {get(gateway, **CAPS).status_int, get(gateway, **CAPS, AcceptVersions="1.0.0").status_int,
             get(gateway, **CAPS, aCcepTVersioNS="1.0.0").status_int}
    assert codes == {200}


def test_HTTPPOSTTransferredXMLGetCapabilitiesValidation(gateway, wps100_schema):
    correct = (f'<?xml version="1.0" encoding="UTF-8"?><wps:GetCapabilities service="WPS" xmlns:wps="{WPS_NS}">'
               f'<wps:AcceptVersions><ows:Version xmlns:ows="{OWS_NS}">1.0.0</ows:Version></wps:AcceptVersions>'
               "</wps:GetCapabilities>")
    assert assert_valid(wps100_schema, post(gateway, correct, 200).body).tag == f"{{{WPS_NS}}}Capabilities"
    wrong = correct.replace("<wps:GetCapabilities", "<wps:getcapabilities", 1)  # not well-formed
    exception_of(wps100_schema, post(gateway, wrong))


def test_GetCapabilitiesResponseValidation(gateway, wps100_schema):
    for params in (CAPS, {**CAPS, "AcceptVersions": "1.0.0"}):
        assert_valid(wps100_schema, get(gateway, 200, **params).body)


def test_VersionNegotiationGetCapabilitiesValidation(gateway, wps100_schema):
    """A.4.2.4 (issue 14, item 1): the answer's version is the highest ServiceTypeVersion it lists; a 1.0.0
    document lists 1.0.0 only. Unsupported versions, higher or lower, fail negotiation."""
    doc = assert_valid(wps100_schema, get(gateway, 200, **CAPS, language="en-US").body)
    listed = [e.text for e in doc.iterfind(".//ows:ServiceTypeVersion", NS)]
    assert listed == ["1.0.0"] and doc.get("version") == max(listed)
    for version in ("3.0.0", "0.0.1"):
        assert exception_of(wps100_schema, get(gateway, **CAPS, language="en-US", AcceptVersions=version))[0] == \
            "VersionNegotiationFailed"
    assert assert_valid(wps100_schema, get(gateway, 200, **CAPS, AcceptVersions="1.0.0").body).get("version") == \
        "1.0.0"


def test_version_negotiation_follows_the_clients_order(gateway, wps100_schema):
    """Issue 14, item 2 (OWS Common 1.1, 7.3.2): the first version listed that the server speaks wins."""
    doc = assert_valid(wps100_schema, get(gateway, 200, **CAPS, AcceptVersions="1.0.0,2.0.0").body)
    assert doc.get("version") == "1.0.0"
    post_body = (f'<wps:GetCapabilities service="WPS" xmlns:wps="{WPS_NS}" xmlns:ows="{OWS_NS}"><ows:AcceptVersions>'
                 "<ows:Version>1.0.0</ows:Version><ows:Version>2.0.0</ows:Version></ows:AcceptVersions>"
                 "</wps:GetCapabilities>")
    assert assert_valid(wps100_schema, post(gateway, post_body, 200).body).get("version") == "1.0.0"


def test_HandlingUpdateSequenceValidation(gateway, wps100_schema):
    for accept_formats in ("text/xml", "application/x-bxml"):
        assert_valid(wps100_schema, get(gateway, 200, **CAPS, AcceptVersions="1.0.0", AcceptFormats=accept_formats)
                     .body)


def test_LanguageSelectionGetCapabilitiesValidation(gateway, wps100_schema):
    doc = assert_valid(wps100_schema, get(gateway, 200, **CAPS, AcceptVersions="1.0.0").body)
    languages = [e.text for e in doc.iterfind("wps:Languages/wps:Supported/ows:Language", NS)]
    assert languages
    for language in languages:
        for params in (CAPS, {"service": "wps", "request": "DescribeProcess", "Version": "1.0.0",
                              "identifier": "ALL"}):
            answer = etree.fromstring(get(gateway, 200, **params, language=language).body)
            assert language in answer.get("{http://www.w3.org/XML/1998/namespace}lang")


def test_capabilities_provider_urls_follow_SERVER_URL(tmp_path, sample_data, wps100_schema):
    """Issue 14, item 23: a gateway served elsewhere names itself there, not 127.0.0.1:5000."""
    from .conftest import build_gateway, close_gateway

    gateway = build_gateway(tmp_path / "var", sample_data, url="https://wps.example.org/eo/wps", dispatcher=False)
    try:
        doc = assert_valid(wps100_schema, get(gateway, 200, **CAPS).body)
        site = doc.find(".//ows:ProviderSite", NS).get("{http://www.w3.org/1999/xlink}href")
        assert site == "https://wps.example.org/eo/"
        assert "127.0.0.1" not in get(gateway, 200, **CAPS).text
    finally:
        close_gateway(gateway)


# OWS Common tests the CTL suite runs on GetCapabilities (ctl/OWS.xml).

@pytest.mark.parametrize("params, code, locator", [
    ({"version": "1.0.0", "request": "GetCapabilities"}, "MissingParameterValue", "service"),  # Exceptions.1
    ({"service": "ASDF", "version": "1.0.0", "request": "GetCapabilities"}, "InvalidParameterValue", "service"),
    ({"service": "WPS", "request": "GetCapabilities", "acceptversions": "2000-01-01"},
     "VersionNegotiationFailed", None),  # Exceptions.3 and AcceptVersions.3
    ({"service": "WPS", "version": "1.0.0"}, "MissingParameterValue", "request"),
])
def test_OWS_GetCapabilities_Exceptions(gateway, wps100_schema, params, code, locator):
    got_code, got_locator = exception_of(wps100_schema, get(gateway, **params))
    assert got_code == code
    assert locator is None or got_locator.lower() == locator


def test_OWS_CaseInsensitiveKvpNames_and_ContentType(gateway, wps100_schema):
    for names in (("SERVICE", "VERSION", "REQUEST"), ("SeRvIcE", "vErSiOn", "RequesT"), ("service", "version",
                                                                                          "request")):
        response = get(gateway, 200, **dict(zip(names, ("WPS", "1.0.0", "GetCapabilities"), strict=True)))
        assert response.content_type == "text/xml"
        assert assert_valid(wps100_schema, response.body).tag == f"{{{WPS_NS}}}Capabilities"


# -- A.4.3 DescribeProcess ----------------------------------------------------------------------------


def test_HTTPGETTransferredKVPDescribeProcessValidation(gateway):
    get(gateway, 200, service="wps", version="1.0.0", request="DescribeProcess", Identifier="ALL")


def test_HTTPPOSTTransferredXMLDescribeProcessValidation(gateway, wps100_schema):
    body = (f'<wps:DescribeProcess service="WPS" version="1.0.0" xmlns:wps="{WPS_NS}" xmlns:ows="{OWS_NS}">'
            "<ows:Identifier>ALL</ows:Identifier></wps:DescribeProcess>")
    assert assert_valid(wps100_schema, post(gateway, body, 200).body).tag == f"{{{WPS_NS}}}ProcessDescriptions"


def test_DescribeProcessResponseValidation(gateway, wps100_schema):
    """A.4.3.3 (issue 14, item 3): every description validates, a literal without any allowed values too
    (``ows:AnyValue``), bounding boxes and several formats included."""
    doc = assert_valid(wps100_schema, get(gateway, 200, service="wps", version="1.0.0", request="DescribeProcess",
                                          Identifier="ALL").body)
    echo = next(p for p in doc.iterfind("ProcessDescription") if p.findtext("ows:Identifier", namespaces=NS) == "echo")
    literal = echo.find("DataInputs/Input[ows:Identifier='literalInput']/LiteralData", NS)
    assert literal.find("ows:AnyValue", NS) is not None
    bbox = echo.find("DataInputs/Input[ows:Identifier='boundingboxInput']/BoundingBoxData", NS)
    assert bbox.findtext("Default/CRS") == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert echo.find("ProcessOutputs/Output[ows:Identifier='boundingboxOutput']/BoundingBoxOutput", NS) is not None


def test_geotiff_inputs_offer_image_tiff_too(gateway, wps100_schema):
    """Issue 14, item 22: birdy calls a .tif image/tiff; both spellings of GeoTIFF are offered."""
    doc = assert_valid(wps100_schema, get(gateway, 200, service="wps", version="1.0.0", request="DescribeProcess",
                                          Identifier="urban-footprint").body)
    tiles = doc.find(".//Input[ows:Identifier='tiles']/ComplexData", NS)
    assert tiles.findtext("Default/Format/MimeType") == "image/tiff; application=geotiff"
    assert [m.text for m in tiles.iterfind("Supported/Format/MimeType")] == [
        "image/tiff; application=geotiff", "image/tiff"]


@pytest.mark.parametrize("via", ["GET", "POST"])
def test_WPS_DescribeProcess_RequestInvalidLanguage(gateway, wps100_schema, via):
    if via == "GET":
        response = get(gateway, service="WPS", version="1.0.0", request="DescribeProcess", language="xx-XX",
                       identifier="echo")
    else:
        response = post(gateway, f'<DescribeProcess service="WPS" version="1.0.0" language="xx-XX" '
                                 f'xmlns="{WPS_NS}" xmlns:ows="{OWS_NS}"><ows:Identifier>echo</ows:Identifier>'
                                 "</DescribeProcess>")
    code, locator = exception_of(wps100_schema, response)
    assert code == "InvalidParameterValue" and "language" in locator.lower()


@pytest.mark.parametrize("via", ["GET", "POST"])
def test_WPS_DescribeProcess_RequestInvalidIdentifier(gateway, wps100_schema, via):
    """No identifier: MissingParameterValue; one not offered: InvalidParameterValue; both located at identifier."""
    if via == "GET":
        missing = get(gateway, service="WPS", version="1.0.0", request="DescribeProcess")
        unknown = get(gateway, service="WPS", version="1.0.0", request="DescribeProcess",
                      identifier="urn:ogc:object:process:CITE:NFL:AstroDome")
    else:
        missing = post(gateway, f'<DescribeProcess service="WPS" version="1.0.0" xmlns="{WPS_NS}"/>')
        unknown = post(gateway, f'<DescribeProcess service="WPS" version="1.0.0" xmlns="{WPS_NS}" xmlns:ows='
                                f'"{OWS_NS}"><ows:Identifier>urn:ogc:object:process:CITE:NFL:AstroDome'
                                "</ows:Identifier></DescribeProcess>")
    for response, expected in ((missing, "MissingParameterValue"), (unknown, "InvalidParameterValue")):
        code, locator = exception_of(wps100_schema, response)
        assert code == expected and "identifier" in locator.lower()


def test_describe_process_needs_its_version(gateway, wps100_schema):
    """Issue 14, item 7: version is mandatory on DescribeProcess and Execute (OGC 05-007r7, Table 38/49)."""
    assert exception_of(wps100_schema, get(gateway, service="WPS", request="DescribeProcess", identifier="echo")) \
        == ("MissingParameterValue", "version")
    body = f'<DescribeProcess service="WPS" xmlns="{WPS_NS}" xmlns:ows="{OWS_NS}"><ows:Identifier>echo' \
           "</ows:Identifier></DescribeProcess>"
    assert exception_of(wps100_schema, post(gateway, body)) == ("MissingParameterValue", "version")


# -- A.4.4 Execute ------------------------------------------------------------------------------------


def test_WPS_Execute_POST_RequestInvalidIdentifier(gateway, wps100_schema):
    """No identifier: MissingParameterValue (not "Unknown process 'None'"); an unknown one: InvalidParameterValue."""
    missing = post(gateway, f'<Execute service="WPS" version="1.0.0" xmlns="{WPS_NS}"></Execute>')
    unknown = post(gateway, f'<Execute service="WPS" version="1.0.0" xmlns:ows="{OWS_NS}" xmlns="{WPS_NS}">'
                            "<ows:Identifier>invalidProcessIdentifier</ows:Identifier></Execute>")
    kvp = get(gateway, service="WPS", version="1.0.0", request="Execute", DataInputs="literalInput=x")
    for response, expected in ((missing, "MissingParameterValue"), (unknown, "InvalidParameterValue"),
                               (kvp, "MissingParameterValue")):
        code, locator = exception_of(wps100_schema, response)
        assert code == expected and "identifier" in locator.lower()
        assert "None" not in response.text


def test_execute_for_another_service_runs_nothing(gateway, wps100_schema):
    """Issue 14, item 7: a POST Execute with service="WMS" is refused, and no job is written."""
    before = jobs_in_store(gateway)
    body = execute_body("echo", _literal("literalInput", "x"), service="WMS")
    assert exception_of(wps100_schema, post(gateway, body)) == ("InvalidParameterValue", "service")
    assert exception_of(wps100_schema, post(gateway, body.replace(' service="WMS"', ""))) == (
        "MissingParameterValue", "service")
    assert jobs_in_store(gateway) == before


def _literal(name: str, value: str) -> str:
    return (f"<wps:Input><ows:Identifier>{name}</ows:Identifier><wps:Data><wps:LiteralData>{value}"
            "</wps:LiteralData></wps:Data></wps:Input>")


def _bbox(name: str, lower: str, upper: str, crs: str) -> str:
    return (f"<wps:Input><ows:Identifier>{name}</ows:Identifier><wps:Data><wps:BoundingBoxData crs=\"{crs}\" "
            f'dimensions="2"><ows:LowerCorner>{lower}</ows:LowerCorner><ows:UpperCorner>{upper}</ows:UpperCorner>'
            "</wps:BoundingBoxData></wps:Data></wps:Input>")


def test_HTTPGETTransferredExecuteValidation(gateway, wps100_schema):
    """A.4.4.1: the Execute GET URL the tester gives answers a valid ExecuteResponse (here with every kind
    of input: literal, XML and bounding box, the last in the KVP encoding minx,miny,maxx,maxy,crs)."""
    response = get(gateway, 200, service="WPS", version="1.0.0", request="Execute", identifier="echo",
                   DataInputs="literalInput=hello;boundingboxInput=5,45,6,46,urn:ogc:def:crs:EPSG::4326",
                   ResponseDocument="literalOutput;boundingboxOutput", Language="en-US")
    doc = assert_valid(wps100_schema, response.body)
    outputs = {o.findtext("ows:Identifier", namespaces=NS): o for o in doc.iterfind(".//wps:Output", NS)}
    assert outputs["literalOutput"].findtext("wps:Data/wps:LiteralData", namespaces=NS) == "hello"
    bbox = outputs["boundingboxOutput"].find("wps:Data/wps:BoundingBoxData", NS)
    assert bbox.get("crs") == "http://www.opengis.net/def/crs/EPSG/0/4326"
    assert bbox.findtext("ows:LowerCorner", namespaces=NS) == "5 45"


def test_ResponseDocumentExecuteValidation(gateway, wps100_schema):
    """A.4.4.4: a POST Execute with a ResponseDocument answers a valid ExecuteResponse; every kind of data
    travels (an inline XML document, a bounding box in XML)."""
    inputs = (_literal("literalInput", "hello") + _bbox("boundingboxInput", "1 2", "3 4", "EPSG:4326")
              + "<wps:Input><ows:Identifier>complexInput</ows:Identifier><wps:Data><wps:ComplexData "
                "mimeType=\"text/xml\"><doc><item>1</item></doc></wps:ComplexData></wps:Data></wps:Input>")
    form = ("<wps:ResponseForm><wps:ResponseDocument><wps:Output asReference=\"false\"><ows:Identifier>"
            "complexOutput</ows:Identifier></wps:Output><wps:Output><ows:Identifier>boundingboxOutput"
            "</ows:Identifier></wps:Output></wps:ResponseDocument></wps:ResponseForm>")
    doc = assert_valid(wps100_schema, post(gateway, execute_body("echo", inputs, form), 200).body)
    outputs = {o.findtext("ows:Identifier", namespaces=NS): o for o in doc.iterfind(".//wps:Output", NS)}
    assert set(outputs) == {"complexOutput", "boundingboxOutput"}
    assert outputs["complexOutput"].findtext("wps:Data/wps:ComplexData/doc/item", namespaces=NS) == "1"
    assert outputs["boundingboxOutput"].findtext("wps:Data/wps:BoundingBoxData/ows:UpperCorner",
                                                 namespaces=NS) == "3 4"


def test_UpdatingResponseDocumentExecuteValidation(gateway, wps100_schema):
    """A.4.4.5: stored and with status, the answer is valid and so is the document at its statusLocation."""
    form = '<wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" status="true"/></wps:ResponseForm>'
    doc = assert_valid(wps100_schema, post(gateway, execute_body("echo", _literal("literalInput", "x"), form),
                                           200).body)
    final, _ = poll_until_final(gateway.client, doc.get("statusLocation"), wps100_schema)
    assert final.findtext(".//wps:Output/wps:Data/wps:LiteralData", namespaces=NS) == "x"


def test_RawDataOutputExecuteValidation(gateway, wps100_schema):
    """A.4.4.3 (issue 14, item 6): RawDataOutput and ResponseDocument in KVP carry attributes after '@'."""
    raw = get(gateway, 200, service="WPS", version="1.0.0", request="Execute", identifier="echo",
              DataInputs="literalInput=raw value", RawDataOutput="literalOutput@mimeType=text/plain")
    assert raw.text == "raw value" and raw.content_type == "text/plain"
    document = get(gateway, 200, service="WPS", version="1.0.0", request="Execute", identifier="echo",
                   DataInputs="complexInput=@xlink:href=" + _uploaded(gateway, "a.xml", b"<a>1</a>"),
                   ResponseDocument="complexOutput@asReference=true")
    outputs = assert_valid(wps100_schema, document.body).findall(".//wps:Output", NS)
    href = outputs[0].find("wps:Reference", NS).get("href")
    assert gateway.client.get(href.replace("http://localhost", "")).body == b"<a>1</a>"
    inline = get(gateway, 200, service="WPS", version="1.0.0", request="Execute", identifier="echo",
                 DataInputs="literalInput=y", ResponseDocument="complexOutput@asReference=false;literalOutput")
    assert [o.findtext("ows:Identifier", namespaces=NS)
            for o in assert_valid(wps100_schema, inline.body).iterfind(".//wps:Output", NS)] == ["literalOutput"]
    assert exception_of(wps100_schema, get(gateway, service="WPS", version="1.0.0", request="Execute",
                                           identifier="echo", DataInputs="literalInput=y",
                                           RawDataOutput="literalOutput@mimeType=image/png"))[0] == \
        "InvalidParameterValue"


def _uploaded(gateway, name: str, content: bytes) -> str:
    folder = gateway.settings.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return (folder / name).as_uri()


# -- inline data, lineage and status (issue 14, items 4, 5, 8) ---------------------------------------


@pytest.mark.parametrize("wrap", [False, True], ids=["one-line", "line-breaks"])
def test_inline_base64_is_decoded_once(gateway, scenes, wps100_schema, wrap):
    """Items 4 and 5: base64 ComplexData is decoded exactly once, line breaks (xs:base64Binary) or not; the job
    runs on the real raster."""
    tile = [p for p in scenes if "20240720" in p.name][0]
    encoded = base64.b64encode(tile.read_bytes()).decode()
    if wrap:
        encoded = "\n".join(textwrap.wrap(encoded, 76))
    inputs = ('<wps:Input><ows:Identifier>tiles</ows:Identifier><wps:Data><wps:ComplexData mimeType="image/tiff" '
              f'encoding="base64">{encoded}</wps:ComplexData></wps:Data></wps:Input>')
    form = ('<wps:ResponseForm><wps:RawDataOutput mimeType="application/json"><ows:Identifier>statistics'
            "</ows:Identifier></wps:RawDataOutput></wps:ResponseForm>")
    stats = json.loads(post(gateway, execute_body("urban-footprint", inputs, form), 200).body)
    assert len(stats["tiles"]) == 1 and stats["total"]["valid_area_m2"] > 0
    broken = inputs.replace(encoded, encoded[:-3], 1)  # cut short: its padding is wrong
    response = post(gateway, execute_body("urban-footprint", broken))
    assert exception_of(wps100_schema, response) == ("InvalidParameterValue", "tiles")
    assert "invalid base64" in response.text


def test_literal_output_data_type_matches_the_description(gateway, wps100_schema):
    """Item 8: the ExecuteResponse names a literal's dataType as DescribeProcess does (float, not number)."""
    described = assert_valid(wps100_schema, get(gateway, 200, service="WPS", version="1.0.0",
                                                request="DescribeProcess", identifier="urban-footprint").body)
    declared = described.findtext(".//Output[ows:Identifier='total_area_km2']/LiteralOutput/ows:DataType",
                                  namespaces=NS)
    response = get(gateway, 200, service="WPS", version="1.0.0", request="Execute", identifier="sleepy-squares",
                   DataInputs="numbers=2;seconds=0", ResponseDocument="total")
    total = assert_valid(wps100_schema, response.body).find(".//wps:Output/wps:Data/wps:LiteralData", NS)
    assert declared == "float" and total.get("dataType") == "integer" and total.text == "4"


def test_lineage_shows_the_inputs_the_request_gave(gateway, wps100_schema):
    """Item 8: lineage echoes DataInputs as sent: defaulted inputs (seconds, fail_step, ...) are not in it."""
    response = get(gateway, 200, service="WPS", version="1.0.0", request="Execute", identifier="sleepy-squares",
                   DataInputs="numbers=3;numbers=4", lineage="true")
    doc = assert_valid(wps100_schema, response.body)
    names = [i.findtext("ows:Identifier", namespaces=NS) for i in doc.iterfind("wps:DataInputs/wps:Input", NS)]
    assert names == ["numbers", "numbers"]
    assert [o.findtext("ows:Identifier", namespaces=NS) for o in doc.iterfind("wps:OutputDefinitions/wps:Output",
                                                                               NS)] == ["total"]


def test_a_job_is_accepted_until_a_task_starts(gateway, wps100_schema):
    """Item 8: a job planned but waiting for capacity has not started: ProcessAccepted in WPS 1.0.0, Accepted in
    WPS 2.0, accepted (without a start time) in OGC API; it starts with its first task."""
    gateway.runner.dispatcher.paused = True  # plans, launches nothing
    response = gateway.client.get("/wps", {"service": "WPS", "version": "1.0.0", "request": "Execute",
                                           "identifier": "sleepy-squares", "DataInputs": "numbers=5;seconds=0",
                                           "storeExecuteResponse": "true", "status": "true"})
    job_id = job_id_of(etree.fromstring(response.body).get("statusLocation"))

    def stored_status() -> str:
        with gateway.store.sessions() as session:
            return session.get(Job, job_id).status

    wait_for(lambda: stored_status() == "running", what="the job planned")
    wait_turns(gateway)
    status = assert_valid(wps100_schema, gateway.client.get(f"/wps/status/{job_id}.xml").body)
    assert status.find("wps:Status/wps:ProcessAccepted", NS) is not None
    wps2 = etree.fromstring(get(gateway, 200, service="WPS", version="2.0.0", request="GetStatus", jobId=job_id).body)
    assert wps2.findtext("{http://www.opengis.net/wps/2.0}Status") == "Accepted"
    info = gateway.client.get(f"/jobs/{job_id}").json
    assert info["status"] == "accepted" and "started" not in info
    assert job_id in [j["jobID"] for j in gateway.client.get("/jobs", {"status": "accepted"}).json["jobs"]]
    assert job_id not in [j["jobID"] for j in gateway.client.get("/jobs", {"status": "running"}).json["jobs"]]
    gateway.runner.dispatcher.paused = False
    gateway.runner.wake()
    final, seen = poll_until_final(gateway.client, f"http://localhost/wps/status/{job_id}.xml", wps100_schema)
    assert seen[-1] == "ProcessSucceeded" and "started" in gateway.client.get(f"/jobs/{job_id}").json


def test_a_json_body_is_refused_with_a_clear_exception(gateway, wps100_schema):
    """Item 9: /wps does not read PyWPS's own undocumented JSON dialect; the exception says where JSON goes."""
    before = jobs_in_store(gateway)
    response = gateway.client.post_json("/wps", {"identifier": "echo", "operation": "execute",
                                                  "inputs": {"literalInput": "x"}}, status="*")
    code, locator = exception_of(wps100_schema, response)
    assert (code, locator) == ("InvalidParameterValue", "request") and "/processes/" in response.text
    assert jobs_in_store(gateway) == before


# -- clients: birdy and OWSLib -----------------------------------------------------------------------


def test_birdy_sends_a_local_geotiff_and_gets_real_results(live_gateway, scenes):
    """Items 4 and 22 as a new user meets them: birdy embeds a local GeoTIFF (base64) and the job runs on it.
    (Given a path, birdy 0.10 takes a .tif for plain image/tiff, which the gateway now offers, but then reads the
    file as text, a bug of its own; an open file goes as the default format, GeoTIFF.)"""
    from birdy import WPSClient

    client = WPSClient(live_gateway.url, progress=False)
    assert "image/tiff" in [f.mimeType for f in client._processes["urban-footprint"].dataInputs[0].supportedValues]
    tile = [p for p in scenes if "20240720" in p.name][0]
    with open(tile, "rb") as local_file:
        result = client.urban_footprint(tiles=local_file)
    total, statistics = result.get(asobj=False)[2], result.get(asobj=False)[1]
    assert float(total) > 0
    stats = json.loads(live_gateway.gateway.client.get(statistics.replace(live_gateway.url.removesuffix("/wps"),
                                                                          "")).body)
    assert len(stats["tiles"]) == 1
    # birdy lower-cases argument names; (it cannot call a process with a bounding box input: it takes the
    # default CRS for a value, a limit of birdy 0.10)
    assert client.text_length(texts=["birdy", "calls"]).get(asobj=False)[0] == 10


def test_owslib_executes_with_a_bounding_box(live_gateway):
    """OWSLib sends a BoundingBoxData input and reads the echoed box back."""
    from owslib.ows import BoundingBox
    from owslib.wps import BoundingBoxDataInput, WebProcessingService, monitorExecution

    wps = WebProcessingService(live_gateway.url, version="1.0.0")
    description = wps.describeprocess("echo")
    kinds = {i.identifier: i.dataType for i in description.dataInputs}
    assert kinds["boundingboxInput"] == "BoundingBoxData" and kinds["literalInput"].endswith("string")
    execution = wps.execute("echo", [("boundingboxInput", BoundingBoxDataInput([5, 45, 6, 46], crs="EPSG:4326")),
                                     ("literalInput", "box")], output=[("boundingboxOutput", False)])
    monitorExecution(execution, sleepSecs=0.2)
    assert execution.isSucceded(), execution.errors
    box = execution.processOutputs[0].data[0]
    assert isinstance(box, BoundingBox) or "45" in str(box)


def test_media_types_compare_without_parameters():
    assert same_media_type("image/tiff; application=geotiff", "image/tiff")
