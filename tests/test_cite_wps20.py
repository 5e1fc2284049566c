"""The WPS 2.0 test suite (OGC ets-wps20) as it tests a server, one test per suite test.

Named after the suite's tests (``basictests.BasicTests``, ``asynchronous.AsyncTests``: ``ValidEchoProcess``,
``A.5.1 ValidServiceName`` ... ``A.5.19 ValidGetResultViaGETKVP``), sending the suite's own request
templates (``examples/*.xml``): its echo process is the shipped ``echo``, under the id the fixed templates
name, ``org.n52.javaps.test.EchoProcess``, with inputs ``literalInput``, ``complexInput``, ``boundingboxInput``.
The suite finds the ids to use as the last input and output whose ``ows:DataType`` is ``string`` and the last
``ComplexData`` ones. Every answer is validated against the official WPS 2.0 schemas.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lxml import etree

from .conftest import assert_valid, build_gateway, close_gateway, free_port
from .test_wps2 import NS, WPS_NS, exception_of, outputs_of, poll_status, status_of

OWS_NS = NS["ows"]
ECHO = "org.n52.javaps.test.EchoProcess"
KVP = {"Service": "WPS", "Version": "2.0.0"}


def echo_template(kind: str, identifier: str = ECHO, input_id: str = "", output_id: str = "",
                  mode: str = "sync", response: str = "raw", transmission: str = "value") -> bytes:
    """The suite's Echo_Process_Literal.xml / Echo_Process_Complex.xml with the ids it would put in."""
    data = ("<wps:LiteralValue>hello_literal</wps:LiteralValue>" if kind == "literal" else
            "<wps:ComplexData><testElement>hello_complex</testElement></wps:ComplexData>")
    return f"""<wps:Execute xmlns:wps="{WPS_NS}" xmlns:ows="{OWS_NS}" xmlns:xlink="http://www.w3.org/1999/xlink"
 service="WPS" version="2.0.0" response="{response}" mode="{mode}">
  <ows:Identifier>{identifier}</ows:Identifier>
  <wps:Input id="{input_id}"><wps:Data>{data}</wps:Data></wps:Input>
  <wps:Output id="{output_id}" transmission="{transmission}"/>
</wps:Execute>""".encode()


def fixed_template(input_data: str, mode: str = "sync", transmission: str = "value") -> bytes:
    """ValidInputValue.xml, ValidInputReference.xml, ValidOutputReference.xml, ValidUniqueJobIds.xml."""
    return f"""<wps:Execute xmlns:wps="{WPS_NS}" xmlns:ows="{OWS_NS}" xmlns:xlink="http://www.w3.org/1999/xlink"
 service="WPS" version="2.0.0" response="document" mode="{mode}">
  <ows:Identifier>{ECHO}</ows:Identifier>
  <wps:Input id="literalInput">{input_data}</wps:Input>
  <wps:Output id="literalOutput" transmission="{transmission}"/>
</wps:Execute>""".encode()


VALUE = "<wps:Data><wps:LiteralValue>PASSED</wps:LiteralValue></wps:Data>"


def post(gateway, body: bytes, status: int | str = "*"):
    return gateway.client.post("/wps", body, content_type="application/xml", status=status)


def get(gateway, status: int | str = "*", **params):
    return gateway.client.get("/wps", params, status=status)


def echo_ids(gateway, schema, identifier: str = ECHO) -> dict[str, str]:
    """The ids the suite finds (its CommonFixture.GetEchoProcessInputIdAndOutputId)."""
    doc = assert_valid(schema, get(gateway, 200, **KVP, Request="DescribeProcess", Identifier=identifier).body)
    found: dict[str, str] = {}
    for kind in ("Input", "Output"):
        for element in doc.iter(f"{{{WPS_NS}}}{kind}"):
            ident = element.findtext(f"{{{OWS_NS}}}Identifier")
            data_type = element.find(f".//{{{OWS_NS}}}DataType")
            if element.find(f".//{{{WPS_NS}}}LiteralData") is not None and data_type is not None:
                if data_type.text.lower() == "string":
                    found[f"literal{kind}"] = ident
            elif element.find(f".//{{{WPS_NS}}}ComplexData") is not None:
                found[f"complex{kind}"] = ident
    return found


# -- A.4 process model encoding ------------------------------------------------------------------------


def test_VerifyProcessXMLEncoding(gateway, wps200_schema):
    for identifier in (ECHO, "echo"):
        assert_valid(wps200_schema, get(gateway, 200, **KVP, Request="DescribeProcess", Identifier=identifier).body)


def test_VerifyProcessDataTypeXMLEncoding(gateway, wps200_schema):
    """A.4.3: the echo process has literal, complex and bounding box data, all valid."""
    doc = assert_valid(wps200_schema, get(gateway, 200, **KVP, Request="DescribeProcess", Identifier=ECHO).body)
    for kind in ("LiteralData", "ComplexData", "BoundingBoxData"):
        assert list(doc.iter(f"{{{WPS_NS}}}{kind}")), kind
    crs = [c.text for c in doc.iter(f"{{{WPS_NS}}}SupportedCRS")]
    assert "http://www.opengis.net/def/crs/OGC/1.3/CRS84" in crs


# -- A.5 basic tests ------------------------------------------------------------------------------------


def test_ValidEchoProcess(gateway, wps200_schema):
    """Precondition: the literal echo answers exactly the value sent (raw); the complex echo the XML sent,
    inside the suite's wps:ComplexData wrapper."""
    ids = echo_ids(gateway, wps200_schema)
    assert ids == {"literalInput": "literalInput", "complexInput": "complexInput", "literalOutput": "literalOutput",
                   "complexOutput": "complexOutput"}
    literal = post(gateway, echo_template("literal", input_id=ids["literalInput"], output_id=ids["literalOutput"]),
                   200)
    assert literal.text == "hello_literal"
    complex_ = post(gateway, echo_template("complex", input_id=ids["complexInput"],
                                           output_id=ids["complexOutput"]), 200)
    assert [e.text for e in etree.fromstring(complex_.body).iter("testElement")] == ["hello_complex"]
    assert complex_.body == b"<testElement>hello_complex</testElement>"


def test_ValidServiceName(gateway):
    assert get(gateway, **KVP, Request="GetCapabilities").status_int == 200
    assert get(gateway, Service="WMS", Version="2.0.0", Request="GetCapabilities").status_int != 200


def test_ValidServiceVersion(gateway, wps200_schema):
    """A.5.2 (issue 14, item 11): version 3.0.0 is refused, in an OWS 2.0 report (not a 1.0.0 document)."""
    assert get(gateway, **KVP, Request="GetCapabilities").status_int == 200
    refused = get(gateway, Service="WPS", Version="3.0.0", Request="GetCapabilities")
    assert refused.status_int == 400
    assert exception_of(wps200_schema, refused) == ("InvalidParameterValue", "version")


def test_ValidInputDataTranmissionByValue(gateway, wps200_schema):
    doc = assert_valid(wps200_schema, post(gateway, fixed_template(VALUE), 200).body)
    assert outputs_of(doc)["literalOutput"].findtext("wps:Data/wps:LiteralValue", namespaces=NS) == "PASSED"


@pytest.fixture
def text_server(tmp_path) -> Iterator[str]:
    """A loopback web server holding vehicle.txt, as the suite fetches it from its repository."""
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "vehicle.txt").write_text("car\n")
    server = ThreadingHTTPServer(("127.0.0.1", free_port()),
                                 partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fetching_gateway(tmp_path, sample_data, text_server):
    """A gateway that may read references from the loopback text server (named in allowed_input_hosts)."""
    gw = build_gateway(tmp_path / "var", sample_data,
                       GATEWAY_ALLOWED_INPUT_HOSTS=text_server.removeprefix("http://"))
    yield gw
    close_gateway(gw)


def test_ValidInputDataTranmissionByReference(fetching_gateway, text_server, wps200_schema):
    """A.5.4: a literal input by reference: the gateway reads the text (through the address policy)."""
    reference = f'<wps:Reference mimeType="text/plain" xlink:href="{text_server}/vehicle.txt"/>'
    doc = assert_valid(wps200_schema, post(fetching_gateway, fixed_template(reference), 200).body)
    assert outputs_of(doc)["literalOutput"].findtext("wps:Data/wps:LiteralValue", namespaces=NS) == "car"
    missing = f'<wps:Reference mimeType="text/plain" xlink:href="{text_server}/none.txt"/>'
    assert exception_of(wps200_schema, post(fetching_gateway, fixed_template(missing)))[0] == "DataNotAccessible"
    private = '<wps:Reference mimeType="text/plain" xlink:href="http://10.0.0.1/vehicle.txt"/>'
    assert exception_of(wps200_schema, post(fetching_gateway, fixed_template(private)))[0] == "DataNotAccessible"


def test_ValidOutDataTranmissionByValue(gateway, wps200_schema):
    doc = assert_valid(wps200_schema, post(gateway, fixed_template(VALUE), 200).body)
    assert list(doc.iter(f"{{{WPS_NS}}}Data"))


def test_ValidOutDataTranmissionByReference(gateway, wps200_schema):
    doc = assert_valid(wps200_schema, post(gateway, fixed_template(VALUE, transmission="reference"), 200).body)
    reference = outputs_of(doc)["literalOutput"].find("wps:Reference", NS)
    href = reference.get("{http://www.w3.org/1999/xlink}href")
    assert gateway.client.get(href.replace("http://localhost", "")).text.strip() == "PASSED"


def test_ValidUniqueIdentifier(gateway, wps200_schema):
    doc = assert_valid(wps200_schema, get(gateway, 200, **KVP, Request="DescribeProcess", Identifier="ALL").body)
    ids = [p.findtext(f"{{{OWS_NS}}}Identifier") for p in doc.iter(f"{{{WPS_NS}}}Process")]
    assert len(ids) == len(set(ids)) and {"echo", ECHO} <= set(ids)


def test_ValidUniqueJobIdentifier(gateway, wps200_schema):
    ids = [assert_valid(wps200_schema, post(gateway, fixed_template(VALUE, mode="async"), 200).body)
           .findtext("wps:JobID", namespaces=NS) for _ in range(5)]
    assert len(set(ids)) == 5


def test_ValidGetCapabilitiesViaPOSTXML(gateway, wps200_schema):
    body = (f'<wps:GetCapabilities xmlns:wps="{WPS_NS}" xmlns:ows="{OWS_NS}" service="WPS"><ows:AcceptVersions>'
            "<ows:Version>2.0.0</ows:Version></ows:AcceptVersions></wps:GetCapabilities>").encode()
    assert assert_valid(wps200_schema, post(gateway, body, 200).body).tag == f"{{{WPS_NS}}}Capabilities"


def test_ValidDescribeProcessViaPOSTXML(gateway, wps200_schema):
    body = (f'<wps:DescribeProcess xmlns:wps="{WPS_NS}" xmlns:ows="{OWS_NS}" service="WPS" version="2.0.0">'
            f"<ows:Identifier>{ECHO}</ows:Identifier></wps:DescribeProcess>").encode()
    assert assert_valid(wps200_schema, post(gateway, body, 200).body).tag == f"{{{WPS_NS}}}ProcessOfferings"


def test_ValidSyncExcecuteViaPOSTXML(gateway, wps200_schema):
    """A.5.11: sync with a document answers a wps:Result (the literal as wps:LiteralValue, item 10); raw, the
    value itself."""
    document = post(gateway, echo_template("literal", input_id="literalInput", output_id="literalOutput",
                                           response="document"), 200)
    doc = assert_valid(wps200_schema, document.body)
    assert outputs_of(doc)["literalOutput"].findtext("wps:Data/wps:LiteralValue", namespaces=NS) == "hello_literal"
    raw = post(gateway, echo_template("literal", input_id="literalInput", output_id="literalOutput"), 200)
    assert raw.text == "hello_literal"


def test_ValidAsyncExcecuteViaPOSTXML(gateway, wps200_schema):
    doc = assert_valid(wps200_schema, post(gateway, echo_template(
        "literal", input_id="literalInput", output_id="literalOutput", mode="async", response="document"), 200).body)
    assert doc.find("wps:Status", NS) is not None


def test_ValidAutoExcecuteViaPOSTXML(gateway, wps200_schema):
    doc = assert_valid(wps200_schema, get(gateway, 200, **KVP, Request="DescribeProcess", Identifier=ECHO).body)
    offering = doc.find("wps:ProcessOffering", NS)
    assert "reference" in offering.get("outputTransmission") and "value" in offering.get("outputTransmission")
    for mode in ("sync", "async"):
        post(gateway, echo_template("literal", input_id="literalInput", output_id="literalOutput", mode=mode,
                                    response="document"), 200)
    assert "hello_literal" in post(gateway, echo_template("literal", input_id="literalInput",
                                                          output_id="literalOutput", mode="sync"), 200).text
    post(gateway, echo_template("literal", input_id="literalInput", output_id="literalOutput", mode="async"), 200)


def get_status_xml(job_id: str) -> bytes:  # the suite's ValidGetStatus.xml
    return (f'<wps:GetStatus service="WPS" version="2.0.0" xmlns:wps="{WPS_NS}"><wps:JobID>{job_id}</wps:JobID>'
            "</wps:GetStatus>").encode()


def get_result_xml(job_id: str) -> bytes:  # the suite's ValidGetResult.xml
    return get_status_xml(job_id).replace(b"GetStatus", b"GetResult")


def submit_async(gateway, schema, response: str) -> str:
    doc = assert_valid(schema, post(gateway, echo_template("literal", input_id="literalInput",
                                                           output_id="literalOutput", mode="async",
                                                           response=response), 200).body)
    assert etree.QName(doc).localname == "StatusInfo"
    return doc.findtext("wps:JobID", namespaces=NS)


def test_ValidGetStatusViaPOSTXML(gateway, wps200_schema):
    job_id = submit_async(gateway, wps200_schema, "document")
    doc = assert_valid(wps200_schema, post(gateway, get_status_xml(job_id), 200).body)
    assert doc.find("wps:Status", NS) is not None


@pytest.mark.parametrize("via", ["POSTXML", "GETKVP"])
def test_ValidGetResult(gateway, wps200_schema, via):
    """A.5.15 and A.5.19 (item 10): GetResult answers a wps:Result with a wps:LiteralValue, for a job executed
    with response=raw as well (raw is what a synchronous Execute answers, not what GetResult does)."""
    for response in ("raw", "document"):
        job_id = submit_async(gateway, wps200_schema, response)
        poll_status(gateway, job_id, wps200_schema)
        if via == "POSTXML":
            answer = post(gateway, get_result_xml(job_id), 200)
        else:
            answer = get(gateway, 200, **KVP, Request="GetResult", JobID=job_id)
        doc = assert_valid(wps200_schema, answer.body)
        assert doc.findtext("wps:Output/wps:Data/wps:LiteralValue", namespaces=NS) == "hello_literal"


def test_ValidGetCapabilitiesViaGETKVP(gateway, wps200_schema):
    for keys in (str.upper, str.lower):
        params = {keys(k): v for k, v in {**KVP, "Request": "GetCapabilities"}.items()}
        assert assert_valid(wps200_schema, get(gateway, 200, **params).body).tag == f"{{{WPS_NS}}}Capabilities"


def test_ValidDescribeProcessViaGETKVP(gateway, wps200_schema):
    caps = assert_valid(wps200_schema, get(gateway, 200, **KVP, Request="GetCapabilities").body)
    first = next(caps.iter(f"{{{OWS_NS}}}Identifier")).text
    for keys in (str.upper, str.lower):
        params = {keys(k): v for k, v in {**KVP, "Request": "DescribeProcess", "Identifier": first}.items()}
        assert assert_valid(wps200_schema, get(gateway, 200, **params).body).tag == f"{{{WPS_NS}}}ProcessOfferings"


def test_ValidGetStatusViaGETKVP(gateway, wps200_schema):
    job_id = submit_async(gateway, wps200_schema, "document")
    for keys in (str.upper, str.lower):
        params = {keys(k): v for k, v in {**KVP, "Request": "GetStatus", "JobID": job_id}.items()}
        assert assert_valid(wps200_schema, get(gateway, 200, **params).body).find("wps:Status", NS) is not None


# -- issue 14, items 10 to 12 ---------------------------------------------------------------------------


def test_a_wps2_client_gets_ows2_exceptions(gateway, wps200_schema):
    """Item 11: a job operation with an unknown version, and malformed or oversized 2.0 POSTs, are answered
    with OWS 2.0 reports."""
    assert exception_of(wps200_schema, get(gateway, Service="WPS", Version="3.0.0", Request="GetStatus",
                                           JobID="x"))[0] == "InvalidParameterValue"
    malformed = post(gateway, f'<wps:GetStatus xmlns:wps="{WPS_NS}" service="WPS" version="2.0.0">'.encode())
    assert malformed.status_int == 400 and exception_of(wps200_schema, malformed)[0] == "NoApplicableCode"
    limit = gateway.settings.max_request_bytes
    oversized = post(gateway, echo_template("literal", input_id="literalInput", output_id="literalOutput")
                     .replace(b"hello_literal", b"x" * limit))
    assert oversized.status_int == 413 and exception_of(wps200_schema, oversized)[0] == "SizeExceeded"


def test_dismiss_of_a_finished_job_dismisses_it(gateway, wps200_schema):
    """Item 12: Dismiss after the end: the job ends dismissed and has no results any more."""
    job_id = submit_async(gateway, wps200_schema, "document")
    poll_status(gateway, job_id, wps200_schema)
    doc = assert_valid(wps200_schema, get(gateway, 200, **KVP, Request="Dismiss", JobID=job_id).body)
    assert status_of(doc)[0] == "Dismissed"
    assert status_of(assert_valid(wps200_schema, get(gateway, 200, **KVP, Request="GetStatus",
                                                     JobID=job_id).body))[0] == "Dismissed"
    assert exception_of(wps200_schema, get(gateway, **KVP, Request="GetResult", JobID=job_id))[0] == "NoSuchJob"


def test_bounding_boxes_in_wps2(gateway, wps200_schema):
    """A bounding box as an ows:BoundingBox in wps:Data, echoed in the Result (its CRS in the canonical URI)."""
    body = f"""<wps:Execute xmlns:wps="{WPS_NS}" xmlns:ows="{OWS_NS}" service="WPS" version="2.0.0"
      response="document" mode="sync"><ows:Identifier>echo</ows:Identifier>
      <wps:Input id="boundingboxInput"><wps:Data><ows:BoundingBox crs="urn:ogc:def:crs:EPSG::4326">
        <ows:LowerCorner>51.9 7</ows:LowerCorner><ows:UpperCorner>52 7.1</ows:UpperCorner></ows:BoundingBox>
      </wps:Data></wps:Input><wps:Output id="boundingboxOutput"/></wps:Execute>""".encode()
    doc = assert_valid(wps200_schema, post(gateway, body, 200).body)
    box = outputs_of(doc)["boundingboxOutput"].find("wps:Data/ows:BoundingBox", NS)
    assert box.get("crs") == "http://www.opengis.net/def/crs/EPSG/0/4326"
    assert (box.findtext("ows:LowerCorner", namespaces=NS), box.findtext("ows:UpperCorner", namespaces=NS)) == (
        "51.9 7", "52 7.1")
    unknown_crs = body.replace(b"urn:ogc:def:crs:EPSG::4326", b"EPSG:32633")
    assert exception_of(wps200_schema, post(gateway, unknown_crs))[0] == "WrongInputData"
