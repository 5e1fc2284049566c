"""OGC API - Processes - Part 2 (Deploy, Replace, Undeploy) as its test suite (ets-ogcapi-processes10-part2)
tests a server: one test per suite test (``dru.Default``, ``docker.Default``, ``cwl.Default``,
``ogcapppkg.Default``), with the suite's own application package (``testdata/ogcapppkg.json``, a container
execution unit without a workflow). The suite sends no credentials; where a test needs a deployer here, the
request carries a deploy token and says so.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .conftest import SCHEMAS, build_gateway, close_gateway
from .ogcapi_support import poll_job, problem, validate_official

TOKEN = "s3cret-deploy"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PACKAGE_TYPE = "application/ogcapppkg+json"
DRU = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0/"
JSON = {"Accept": "application/json"}

# The suite's testdata/ogcapppkg.json: BandMath in an OTB container, one execution unit, no workflow.
BANDMATH: dict[str, Any] = {
    "processDescription": {
        "id": "BandMath", "title": "Outputs a monoband image which is the result of a mathematical operation on "
                                   "several multi-band images.",
        "version": "1.0.0", "jobControlOptions": ["sync-execute", "async-execute", "dismiss"],
        "outputTransmission": ["value", "reference"], "links": [],
        "additionalParameters": [{"name": "entry-point",
                                  "value": "singularity exec otbtf_4.1.0-cpu.sif /opt/otbtf/bin/otbcli_BandMath"}],
        "inputs": {
            "il": {"title": "Image-list of operands to the mathematical expression.", "maxOccurs": 1024,
                   "schema": {"oneOf": [{"type": "string", "contentEncoding": "base64", "contentMediaType": m}
                                        for m in ("image/tiff", "image/jpeg", "image/png")]}},
            "out": {"title": "Output pixel type", "schema": {"type": "string", "default": "float", "enum": [
                "uint8", "uint16", "int16", "int32", "int32", "float", "double"]}},
            "ram": {"title": "Available memory for processing (in MB)",
                    "schema": {"type": "integer", "default": 128, "nullable": True}},
            "exp": {"title": "The muParser mathematical expression to apply on input images.",
                    "schema": {"type": "string"}}},
        "outputs": {"out": {"title": "Output image", "schema": {"oneOf": [
            {"type": "string", "contentEncoding": "base64", "contentMediaType": m}
            for m in ("image/tiff", "image/jpeg", "image/png")]}}}},
    "executionUnit": {"type": "docker", "image": "docker://otbtf/4.1.0-cpu"},
}


@pytest.fixture
def gateway(tmp_path, sample_data):
    gw = build_gateway(tmp_path / "var", sample_data, GATEWAY_DEPLOY_TOKENS=f"portal:{TOKEN}")
    yield gw
    close_gateway(gw)


def send(gateway, method: str, path: str, body: Any = None, content_type: str = PACKAGE_TYPE,
         headers: dict[str, str] | None = None):
    data = body if isinstance(body, bytes | str) else json.dumps(body) if body is not None else ""
    return getattr(gateway.client, method)(path, data, headers={**JSON, **(headers or {})},
                                           content_type=content_type, expect_errors=True)


# -- dru.Default --------------------------------------------------------------------------------------


def test_testProcessesImmutable(gateway):
    """Every process, in /processes and at the landing page's processes link, has a boolean mutable."""
    processes_link = next(link["href"] for link in gateway.client.get("/").json["links"]
                          if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/processes")
    for url in ("/processes", processes_link.replace("http://localhost", "")):
        listed = gateway.client.get(url, headers=JSON).json["processes"]
        assert all(isinstance(p["mutable"], bool) for p in listed)
        assert {p["id"]: p["mutable"] for p in listed}["echo"] is False
    assert send(gateway, "post", "/processes", BANDMATH, headers=AUTH).status_code == 201
    assert gateway.client.get("/processes/BandMath").json["mutable"] is True


@pytest.mark.parametrize("method, path", [("post", "/processes"), ("put", "/processes/null"),
                                          ("put", "/processes/echo")])
def test_testPostUnsupportedContentType_and_testPutUnsupportedContentType(gateway, method, path):
    """Issue 14, item 19: 415 with Part 2's type, before credentials or the process are looked at."""
    refused = send(gateway, method, path, "plain text", content_type="text/plain")
    assert refused.status_code == 415 and refused.json["type"] == DRU + "unsupported-media-type"
    validate_official("exception", refused.json)


def test_testUndeployResponse(gateway):
    send(gateway, "post", "/processes", BANDMATH, headers=AUTH)
    mutable = next(p["id"] for p in gateway.client.get("/processes").json["processes"] if p["mutable"])
    assert send(gateway, "delete", f"/processes/{mutable}", headers=AUTH).status_code == 204
    assert send(gateway, "delete", "/processes/BandMath", headers=AUTH).status_code == 404


def test_testUndeployResponseImmutable(gateway):
    """403 immutable-process, asked without credentials (the suite sends none); for the alias too."""
    for process_id in ("echo", "org.n52.javaps.test.EchoProcess"):
        refused = send(gateway, "delete", f"/processes/{process_id}")
        assert refused.status_code == 403 and refused.json["type"] == DRU + "immutable-process"
    over_shipped = copy.deepcopy(BANDMATH)
    over_shipped["processDescription"]["id"] = "echo"
    refused = send(gateway, "post", "/processes", over_shipped, headers=AUTH)
    assert refused.status_code == 403 and refused.json["type"] == DRU + "immutable-process"


# -- docker.Default (the suite's own package) ----------------------------------------------------------


def test_docker_testProcessDeploy_and_testProcessReplace(gateway):
    """Issue 14, item 21: the container form deploys (one step running its entry point in its image); a second
    deploy is 409 duplicated-process; a replace is 204; the package comes back (item 20)."""
    deployed = send(gateway, "post", "/processes", BANDMATH, headers=AUTH)
    assert deployed.status_code == 201 and deployed.headers["Location"].split("/processes/")[1] == "BandMath"
    validate_official("processSummary", deployed.json)
    again = send(gateway, "post", "/processes", BANDMATH, headers=AUTH)
    assert again.status_code == 409 and again.json["type"] == DRU + "duplicated-process"
    processor = gateway.context.processors()["BandMath"]
    assert processor.image == "otbtf/4.1.0-cpu" and not processor.append_step
    assert processor.command == ("singularity", "exec", "otbtf_4.1.0-cpu.sif", "/opt/otbtf/bin/otbcli_BandMath")
    assert processor.input("il").formats == ("image/tiff", "image/jpeg", "image/png")
    description = validate_official("process", gateway.client.get("/processes/BandMath").json)
    assert description["inputs"]["il"]["maxOccurs"] == 1024
    assert send(gateway, "put", "/processes/BandMath", BANDMATH, headers=AUTH).status_code == 204
    package = gateway.client.get("/processes/BandMath/package")
    assert package.content_type == PACKAGE_TYPE
    check_package(package.json)
    assert package.json["executionUnit"]["image"] == "otbtf/4.1.0-cpu"
    assert send(gateway, "delete", "/processes/BandMath", headers=AUTH).status_code == 204


def test_a_container_package_runs_its_command(gateway):
    """The container form end to end: its command runs as a task (the local backend runs it without the
    image), reads its task document and writes the output."""
    package = {
        "processDescription": {"id": "word-count", "version": "1.0.0", "title": "Words in a text",
                               "inputs": {"text": {"title": "Text", "schema": {"type": "string"}}},
                               "outputs": {"words": {"title": "Words", "schema": {"type": "integer"}}}},
        "executionUnit": {"type": "docker", "image": "python:3.11-slim", "config": {"cpuMin": 1, "memoryMin": 0.1},
                          "command": ["python", "-c", "import json, os, pathlib; t = json.loads(os.environ["
                                      "'WPS_TASK']); (pathlib.Path(t['outputs_dir']) / 'words').write_text("
                                      "str(len(t['inputs']['text'].split())))"]}}
    assert send(gateway, "post", "/processes", package, headers=AUTH).status_code == 201
    created = gateway.client.post_json("/processes/word-count/execution",
                                       {"inputs": {"text": "one two three"}, "response": "document"},
                                       headers={"Prefer": "respond-async"})
    info, _ = poll_job(gateway.client, created.json["jobID"])
    assert info["status"] == "successful", info
    assert gateway.client.get(f"/jobs/{created.json['jobID']}/results").json == {"words": 3}
    no_command = copy.deepcopy(package)
    no_command["processDescription"]["id"] = "no-command"
    del no_command["executionUnit"]["command"]
    refused = send(gateway, "post", "/processes", no_command, headers=AUTH, content_type="application/json")
    assert refused.status_code == 400 and "names no command" in validate_official("exception", refused.json)["detail"]


# -- cwl.Default and ogcapppkg.Default ------------------------------------------------------------------

CWL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
requirements:
  DockerRequirement: {dockerPull: alpine:3.20}
inputs: {message: {type: string, inputBinding: {position: 1}}}
outputs: {}
"""


@pytest.mark.parametrize("media_type", ["application/cwl", "application/cwl+yaml", "application/cwl+json"])
def test_cwl_testProcessDeploy(gateway, media_type):
    """Issue 14, item 21: CWL is refused with 415 and the reason (and its conformance class is not declared)."""
    refused = send(gateway, "post", "/processes", CWL, content_type=media_type, headers=AUTH)
    assert refused.status_code == 415 and refused.json["type"] == DRU + "unsupported-media-type"
    assert "CWL application packages are not supported" in refused.json["detail"]
    conforms = gateway.client.get("/conformance").json["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/cwl" not in conforms
    assert "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/docker" in conforms


def test_ogcapppkg_testProcessDeploy_with_a_cwl_reference(gateway):
    body = {"executionUnit": {"href": "https://example.org/app.cwl", "type": "application/cwl"}}
    refused = send(gateway, "post", "/processes", body, headers=AUTH)
    assert refused.status_code == 415 and "CWL" in refused.json["detail"]


# -- the package of a process (item 20) -----------------------------------------------------------------


@cache
def _ogcapppkg() -> Draft202012Validator:
    root = SCHEMAS / "ogcapi-processes" / "2.0-draft" / "schemas"
    resources = []
    for path in root.rglob("*.yaml"):
        try:
            contents = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        resources.append((path.as_uri(), Resource(contents=contents, specification=DRAFT202012)))
    uri = (root / "processes-dru" / "ogcapppkg.yaml").as_uri()
    return Draft202012Validator({"$ref": uri}, registry=Registry().with_resources(resources))


def check_package(package: dict[str, Any]) -> None:
    """The Part 2 envelope (2.0 draft ``ogcapppkg.yaml``, its process placeholder aside: README of the
    schemas) and the process itself against the 1.0 ``process.yaml``."""
    envelope = {**package, "processDescription": {"process": {"id": "x", "version": "1", "inputs": {},
                                                              "outputs": {}}}}
    errors = list(_ogcapppkg().iter_errors(envelope))
    assert not errors, errors[0].message
    validate_official("process", package["processDescription"]["process"])


def test_every_process_has_its_package_and_it_deploys_again(gateway):
    for process_id in ("echo", "urban-footprint"):
        package = gateway.client.get(f"/processes/{process_id}/package").json
        check_package(package)
        package["processDescription"]["process"]["id"] = f"{process_id}-again"
        assert send(gateway, "post", "/processes", package, headers=AUTH).status_code == 201
    problem(gateway.client.get("/processes/nothing/package", status=404), 404, "no-such-process")
    created = gateway.client.post_json("/processes/echo-again/execution",
                                       {"inputs": {"literalInput": "again"}, "response": "document"})
    assert created.json == {"literalOutput": "again"}
