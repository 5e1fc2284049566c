"""Bad requests get an OGC ExceptionReport with the right code and a 4xx status; the server keeps serving."""

from __future__ import annotations

import codecs

import pytest
from lxml import etree

from wps_gateway.address_policy import AddressPolicy, ReferenceRefused, is_public_address
from wps_gateway.xml_guard import LibxmlTooOld, require_libxml2_limits

from .test_wps1 import execute_xml

OWS = {"ows": "http://www.opengis.net/ows/1.1"}
OWS2 = {"ows": "http://www.opengis.net/ows/2.0"}


def exception_of(response, ows: dict[str, str] = OWS) -> tuple[str, str, str]:
    doc = etree.fromstring(response.body)
    assert etree.QName(doc).localname == "ExceptionReport", response.body
    exc = doc.find("ows:Exception", ows)
    assert exc is not None, response.body
    return exc.get("exceptionCode"), exc.get("locator") or "", exc.findtext("ows:ExceptionText", namespaces=ows)


def post(gateway, body: bytes, status: int):
    return gateway.client.post("/wps", body, content_type="text/xml", status=status)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
  xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Identifier>&xxe;</ows:Identifier></wps:Execute>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0">&lol4;</wps:GetCapabilities>"""


NAMELESS_INPUT = b"""<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
  xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Identifier>echo</ows:Identifier><wps:DataInputs><wps:Input>
  <wps:Data><wps:LiteralData>x</wps:LiteralData></wps:Data></wps:Input></wps:DataInputs></wps:Execute>"""


@pytest.mark.parametrize("body, status, code, text", [
    (b"<wps:Execute this is not xml", 400, "NoApplicableCode", "not well-formed"),
    (XXE, 400, "NoApplicableCode", "DOCTYPE"),
    (BILLION_LAUGHS, 400, "NoApplicableCode", "DOCTYPE"),
    (b"<foo xmlns='urn:x'/>", 400, None, None),
    (NAMELESS_INPUT, 400, "MissingParameterValue", "input 1 of DataInputs needs an ows:Identifier"),
])
def test_malformed_and_hostile_xml_is_refused(gateway, body, status, code, text):
    got_code, _, got_text = exception_of(post(gateway, body, status))
    if code:
        assert got_code == code and text in got_text
    assert "root:" not in (got_text or "")  # nothing of /etc/passwd leaks


DESCRIBE_WITH_ENTITY = """<?xml version="1.0" encoding="{encoding}"?>
<!DOCTYPE d [<!ENTITY p "sleepy-squares">]>
<wps:DescribeProcess service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
  xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Identifier>&p;</ows:Identifier></wps:DescribeProcess>"""
DESCRIBE = """<?xml version="1.0" encoding="{encoding}"?>
<wps:DescribeProcess service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
  xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Identifier>sleepy-squares</ows:Identifier></wps:DescribeProcess>"""
WPS2_WITH_ENTITY = """<?xml version="1.0" encoding="{encoding}"?>
<!DOCTYPE d [<!ENTITY p "sleepy-squares">]>
<wps:DescribeProcess service="WPS" version="2.0.0" xmlns:wps="http://www.opengis.net/wps/2.0"
  xmlns:ows="http://www.opengis.net/ows/2.0"><ows:Identifier>&p;</ows:Identifier></wps:DescribeProcess>"""

# (name in the declaration, how the bytes are made): byte order marks of both orders, and none
ENCODINGS = {
    "utf-16 LE with BOM": ("UTF-16", lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le")),
    "utf-16 BE with BOM": ("UTF-16", lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be")),
    "utf-16 LE without BOM": ("UTF-16", lambda text: text.encode("utf-16-le")),
    "utf-32 LE with BOM": ("UTF-32", lambda text: codecs.BOM_UTF32_LE + text.encode("utf-32-le")),
    "utf-32 BE with BOM": ("UTF-32", lambda text: codecs.BOM_UTF32_BE + text.encode("utf-32-be")),
    "utf-8 with BOM": ("UTF-8", lambda text: codecs.BOM_UTF8 + text.encode("utf-8")),
}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("document", [DESCRIBE_WITH_ENTITY, WPS2_WITH_ENTITY,
                                      XXE.decode().replace('version="1.0"?>', 'version="1.0" encoding="{encoding}"?>'),
                                      BILLION_LAUGHS.decode().replace('version="1.0"?>',
                                                                      'version="1.0" encoding="{encoding}"?>')],
                         ids=["describe-1.0.0", "describe-2.0", "xxe", "billion-laughs"])
def test_a_doctype_is_refused_whatever_the_encoding(gateway, encoding, document):
    declared, encode = ENCODINGS[encoding]
    answer = post(gateway, encode(document.format(encoding=declared)), 400)
    ows = OWS2 if "wps/2.0" in document else OWS  # in the words of the version the request is for
    code, locator, text = exception_of(answer, ows)
    assert (code, locator) == ("NoApplicableCode", "request") and "DOCTYPE" in text


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_requests_in_any_unicode_encoding_are_served(gateway, encoding):
    """The other side of the guard above: the same request without a DOCTYPE is answered."""
    declared, encode = ENCODINGS[encoding]
    response = post(gateway, encode(DESCRIBE.format(encoding=declared)), 200)
    assert b"<ows:Identifier>sleepy-squares</ows:Identifier>" in response.body


@pytest.mark.parametrize("declared, encode", [
    ("UTF-8", lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le")),  # the byte order mark wins
    ("ISO-8859-1", lambda text: text.encode("utf-16-be")),  # UTF-16 is detected from the first bytes
    ("UTF-16", lambda text: text.encode("utf-8")),  # 8-bit bytes that claim UTF-16: not well-formed
    ("UTF-32", lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le")),
    ("x-no-such-encoding", lambda text: text.encode("utf-8")),
], ids=["utf-8-declared-bom-utf-16", "latin-1-declared-utf-16-be", "utf-16-declared-utf-8", "utf-32-declared-utf-16",
        "unknown-declared"])
def test_a_declaration_naming_another_encoding_than_the_bytes_never_lets_a_doctype_through(gateway, declared, encode):
    code, _, text = exception_of(post(gateway, encode(DESCRIBE_WITH_ENTITY.format(encoding=declared)), 400))
    assert code == "NoApplicableCode" and ("DOCTYPE" in text or "not well-formed" in text), text


def test_a_libxml2_without_amplification_limits_is_refused_at_start():
    with pytest.raises(LibxmlTooOld, match=r"libxml2 2\.10\.3; the gateway needs libxml2 2\.11\.0 or later"):
        require_libxml2_limits((2, 10, 3))
    require_libxml2_limits()  # the one this gateway runs with


def test_oversized_request_is_refused_with_413(gateway):
    body = execute_xml("ndvi-mosaic", [("scenes", "literal", "x" * (2 * 1024 * 1024))])
    code, _, text = exception_of(post(gateway, body, 413))
    assert code == "FileSizeExceeded" and "limit" in text


@pytest.mark.parametrize("params, code, locator", [
    ({"identifier": "no-such-process", "DataInputs": "a=1"}, "InvalidParameterValue", "Identifier"),
    ({"identifier": "urban-footprint", "DataInputs": "ndvi_max=0.2"}, "MissingParameterValue", "tiles"),
    ({"identifier": "sleepy-squares", "DataInputs": "numbers=abc"}, "InvalidParameterValue", "numbers"),
    ({"identifier": "sleepy-squares", "DataInputs": "numbers=1;seconds=99"}, "InvalidParameterValue", "seconds"),
    ({"identifier": "sleepy-squares", "DataInputs": "numbers=1;fail_step=maybe"}, "InvalidParameterValue",
     "fail_step"),
    ({"identifier": "sleepy-squares", "DataInputs": "numbers=1;colour=red"}, "InvalidParameterValue", "colour"),
    ({"identifier": "sleepy-squares", "DataInputs": "numbers=1", "ResponseDocument": "nothing"},
     "InvalidParameterValue", "nothing"),
    ({"identifier": "sleepy-squares", "DataInputs": "numbers=1", "status": "true"}, "InvalidParameterValue",
     "status"),
    # an input written without "=" (PyWPS hands it over in another shape)
    ({"identifier": "ndvi-mosaic", "DataInputs": "scenes"}, "MissingParameterValue", "scenes"),
    ({"identifier": "ndvi-mosaic", "DataInputs": "x"}, "InvalidParameterValue", "x"),
])
def test_invalid_execute_requests_name_the_input(gateway, params, code, locator):
    query = {"service": "WPS", "request": "Execute", "version": "1.0.0", **params}
    got_code, got_locator, text = exception_of(gateway.client.get("/wps", query, status=400))
    assert (got_code, got_locator) == (code, locator), text


@pytest.mark.parametrize("href, why", [
    ("file:///etc/passwd", "outside the folders"),
    ("http://127.0.0.1:8080/scene.tif", "loopback, private or link-local"),
    ("http://169.254.169.254/latest/meta-data/", "loopback, private or link-local"),
    ("http://[::1]/scene.tif", "loopback, private or link-local"),
    ("http://10.1.2.3/scene.tif", "loopback, private or link-local"),
    ("ftp://example.org/scene.tif", "scheme"),
])
def test_references_to_disallowed_locations_are_refused(gateway, href, why):
    body = execute_xml("ndvi-mosaic", [("scenes", "ref", href)])
    code, locator, text = exception_of(post(gateway, body, 400))
    assert (code, locator) == ("InvalidParameterValue", "scenes")
    assert why in text


def test_file_reference_escaping_the_allow_list_through_dotdot_is_refused(gateway, sample_data):
    sneaky = f"file://{sample_data}/../../../../etc/passwd"
    code, _, text = exception_of(post(gateway, execute_xml("ndvi-mosaic", [("scenes", "ref", sneaky)]), 400))
    assert code == "InvalidParameterValue" and "outside the folders" in text


@pytest.mark.parametrize("url, answer", [
    # a raw byte that is not UTF-8 in the query (WebTest sends the character as one latin-1 byte)
    ("/wps?service=WPS&request=GetCapabilities&version=\u00e9", OWS),
    ("/wps?service=WPS&version=2.0.0&request=GetStatus&jobId=\u00e9", OWS),  # unparsed: not known to be 2.0
    ("/jobs?limit=\u00e9", None),
    ("/stac/search?datetime=\u00e9", None),
    # a NUL, which no store column and no XML document takes
    ("/wps?service=WPS&version=2.0.0&request=GetStatus&jobId=%00", OWS2),
    ("/wps/status/a%00b.xml", OWS),
    ("/jobs/a%00b", None),
    ("/admin?user=a%00b", "html"),  # a console page: its errors are pages
])
def test_unreadable_urls_are_400_in_the_protocol_of_the_path(gateway, url, answer):
    response = gateway.client.get(url, status=400)
    if answer is None:
        assert response.content_type == "application/problem+json" and response.json["status"] == 400
    elif answer == "html":
        assert response.content_type == "text/html" and b"The URL holds a NUL character" in response.body
    else:
        assert exception_of(response, answer)[0] == "NoApplicableCode"


def test_characters_xml_has_no_place_for_do_not_break_the_exception_report(gateway):
    response = gateway.client.get("/wps", {"service": "WPS", "version": "2.0.0", "request": "GetStatus",
                                           "jobId": "a\x01b\x1fc"}, status=400)
    assert exception_of(response, OWS2)[:2] == ("NoSuchJob", "JobID")


def test_the_server_keeps_serving_after_bad_requests(gateway):
    post(gateway, XXE, 400)
    post(gateway, b"<<<", 400)
    response = gateway.client.get("/wps", {"service": "WPS", "request": "GetCapabilities"})
    assert b"ndvi-mosaic" in response.body


def test_no_job_is_written_for_a_refused_request(gateway):
    post(gateway, execute_xml("ndvi-mosaic", [("scenes", "ref", "file:///etc/passwd")]), 400)
    from wps_gateway.jobs import list_jobs

    assert list_jobs(gateway.store) == []


# -- the address policy itself: no request is ever sent to these addresses --

def fake_resolver(table: dict[str, list[str]]):
    return lambda host: table[host]


@pytest.mark.parametrize("address, public", [
    ("127.0.0.1", False), ("10.0.0.8", False), ("172.16.5.4", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("::1", False), ("fe80::1", False), ("fc00::1", False), ("0.0.0.0", False),
    ("224.0.0.1", False), ("::ffff:127.0.0.1", False), ("100.64.0.1", False),
    ("8.8.8.8", True), ("2001:4860:4860::8888", True),
    # IPv6 forms that stand for a private IPv4 address, or that are never public themselves
    ("::ffff:10.0.0.1", False), ("::ffff:169.254.169.254", False),  # IPv4-mapped
    ("64:ff9b::7f00:1", False), ("64:ff9b::10.1.2.3", False), ("64:ff9b::a9fe:a9fe", False),  # NAT64
    ("64:ff9b:1::a00:1", False), ("64:ff9b:1::808:808", False),  # NAT64 local-use (RFC 8215): never
    ("2002:7f00:1::", False), ("2002:a00:1::1", False), ("2002:c0a8:101::", False),  # 6to4
    ("::127.0.0.1", False), ("::10.0.0.1", False), ("::8.8.8.8", False),  # IPv4-compatible: deprecated
    ("::ffff:0:a00:1", False),  # IPv4-translated (SIIT)
    ("fec0::1", False), ("fec0:0:0:1::5", False),  # site-local: deprecated, private in practice
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False), ("2001::a00:1", False),  # Teredo
    ("fe80::1%eth0", False), ("ff02::1", False), ("2001:db8::1", False),
    # the same forms of a public IPv4 address are as public as it is (NAT64 is how IPv6-only hosts reach it)
    ("64:ff9b::808:808", True), ("2002:808:808::1", True), ("::ffff:8.8.8.8", True),
])
def test_address_classification(address, public):
    assert is_public_address(address) is public


def test_policy_checks_every_address_a_name_resolves_to():
    policy = AddressPolicy(resolver=fake_resolver({
        "data.example.org": ["93.184.216.34"],
        "rebind.example.org": ["93.184.216.34", "10.0.0.5"],
        "metadata.internal": ["169.254.169.254"],
        "nat64.example.org": ["64:ff9b::a9fe:a9fe"],
        "sixtofour.example.org": ["2002:a00:1::1"],
    }))
    assert policy.check("https://data.example.org/s2.tif") == "https://data.example.org/s2.tif"
    for host in ("rebind.example.org", "metadata.internal", "nat64.example.org", "sixtofour.example.org",
                 "[64:ff9b::7f00:1]", "[::127.0.0.1]", "[fec0::1]"):
        with pytest.raises(ReferenceRefused):
            policy.check(f"http://{host}/x.tif")


def test_file_references_naming_a_host_are_refused(tmp_path):
    policy = AddressPolicy(allowed_paths=[tmp_path])
    (tmp_path / "a.tif").write_bytes(b"x")
    assert policy.check(f"file://localhost{tmp_path / 'a.tif'}") == (tmp_path / "a.tif").as_uri()
    with pytest.raises(ReferenceRefused, match="must not name a host"):
        policy.check(f"file://fileserver.internal{tmp_path / 'a.tif'}")


def test_operator_can_allow_named_internal_hosts():
    policy = AddressPolicy(allowed_hosts=["archive.internal:8080"],
                           resolver=fake_resolver({"archive.internal": ["10.0.0.7"]}))
    assert policy.check("http://archive.internal:8080/a.tif")
    with pytest.raises(ReferenceRefused):
        policy.check("http://archive.internal:9090/a.tif")


def test_file_policy_follows_symlinks(tmp_path):
    allowed = tmp_path / "data"
    allowed.mkdir()
    (allowed / "escape").symlink_to("/etc")
    policy = AddressPolicy(allowed_paths=[allowed])
    (allowed / "ok.tif").write_bytes(b"x")
    assert policy.check((allowed / "ok.tif").as_uri()).endswith("ok.tif")
    with pytest.raises(ReferenceRefused):
        policy.check((allowed / "escape" / "passwd").as_uri())
