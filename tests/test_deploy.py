"""Deploying processors while the gateway runs (OGC API - Processes Part 2: Deploy, Replace, Undeploy)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from wps_gateway.config import ConfigError, load_settings
from wps_gateway.store.models import Job

from .conftest import TEST_PROCESSORS, build_gateway, close_gateway
from .jobs_support import attempts_of, wait_for
from .mesos_support import mesos_gateway
from .ogcapi_support import poll_job, problem, validate_official
from .test_wps1 import NS

TOKEN = "d3ploy-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PACKAGE_TYPE = "application/ogcapppkg+json"


def package(process_id: str = "sleepy-cubes", version: str = "1.0.0", power: int = 3) -> dict:
    """The test processor's descriptor under a new id, cubing instead of squaring."""
    descriptor = yaml.safe_load((TEST_PROCESSORS / "sleepy" / "descriptor.yaml").read_text())
    descriptor["processDescription"]["id"] = process_id
    descriptor["processDescription"]["version"] = version
    command = descriptor["executionUnit"]["command"]
    command[-1] = command[-1].replace("int(t[\"items\"][0]) ** 2", f"int(t[\"items\"][0]) ** {power}")
    assert f"** {power}" in command[-1]
    return descriptor


@pytest.fixture
def gateway(tmp_path, sample_data):
    gw = build_gateway(tmp_path / "var", sample_data, GATEWAY_DEPLOY_TOKENS=f"portal:{TOKEN}")
    yield gw
    close_gateway(gw)


def deploy(gateway, body, headers=AUTH, method="post", path="/processes", content_type=PACKAGE_TYPE):
    return getattr(gateway.client, method)(path, json.dumps(body), headers=headers, content_type=content_type,
                                           expect_errors=True)


def run(gateway, process_id: str, numbers: list[int]) -> tuple[dict, str]:
    response = gateway.client.post_json(f"/processes/{process_id}/execution",
                                        {"inputs": {"numbers": numbers, "seconds": 0}, "response": "document"},
                                        headers={"Prefer": "respond-async"})
    job_id = response.json["jobID"]
    status, _ = poll_job(gateway.client, job_id)
    assert status["status"] == "successful", status
    return gateway.client.get(f"/jobs/{job_id}/results").json, job_id


def wps1_ids(gateway) -> set[str]:
    doc = gateway.client.get("/wps", {"service": "WPS", "request": "GetCapabilities"}).xml
    return {e.text for e in doc.iterfind(".//wps:Process/ows:Identifier", NS)}


def wps2_ids(gateway) -> set[str]:
    doc = gateway.client.get("/wps", {"service": "WPS", "request": "GetCapabilities", "version": "2.0.0",
                                      "AcceptVersions": "2.0.0"}).xml
    return {e.text for e in doc.iter("{http://www.opengis.net/ows/2.0}Identifier")}


def test_a_deployed_processor_is_offered_everywhere_at_once_and_runs(gateway):
    response = deploy(gateway, package())
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == "http://localhost/processes/sleepy-cubes"
    validate_official("processSummary", response.json)
    assert "sleepy-cubes" in {p["id"] for p in gateway.client.get("/processes").json["processes"]}
    assert "sleepy-cubes" in wps1_ids(gateway) and "sleepy-cubes" in wps2_ids(gateway)
    describe = gateway.client.get("/wps", {"service": "WPS", "version": "1.0.0", "request": "DescribeProcess",
                                           "identifier": "sleepy-cubes"})
    assert describe.status_code == 200
    results, _ = run(gateway, "sleepy-cubes", [1, 2, 3])
    assert results["total"] == 1 + 8 + 27


def test_replacing_keeps_running_jobs_on_their_version_and_undeploying_removes_it(gateway):
    deploy(gateway, package())
    running = gateway.client.post_json("/processes/sleepy-cubes/execution",
                                       {"inputs": {"numbers": [2], "seconds": 2}, "response": "document"},
                                       headers={"Prefer": "respond-async"}).json["jobID"]
    response = deploy(gateway, package(version="2.0.0", power=4), method="put", path="/processes/sleepy-cubes")
    assert response.status_code == 204, response.text
    assert gateway.client.get("/processes/sleepy-cubes").json["version"] == "2.0.0"
    status, _ = poll_job(gateway.client, running)
    assert status["status"] == "successful"
    assert gateway.client.get(f"/jobs/{running}/results").json["total"] == 8, "the running job changed version"
    with gateway.store.session() as session:
        assert session.get(Job, running).process_version == "1.0.0"
    results, _ = run(gateway, "sleepy-cubes", [2])
    assert results["total"] == 16

    assert deploy(gateway, None, method="delete", path="/processes/sleepy-cubes").status_code == 204
    problem(gateway.client.get("/processes/sleepy-cubes", expect_errors=True), 404)
    assert "sleepy-cubes" not in wps1_ids(gateway)
    assert gateway.client.get(f"/jobs/{running}").json["status"] == "successful", "history stays"


def test_deployed_processors_survive_a_restart(tmp_path, sample_data, gateway):
    deploy(gateway, package())
    again = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        assert "sleepy-cubes" in again.context.processors()
        assert "sleepy-cubes" in wps1_ids(again)
    finally:
        close_gateway(again)


def test_a_shipped_processor_deploys_the_same_way(gateway, scenes):
    """The registry and Deploy share one code path: a shipped descriptor, renamed, deploys and runs on real data."""
    shipped = yaml.safe_load((Path(__file__).parents[1] / "processes/urban_footprint/descriptor.yaml").read_text())
    shipped["processDescription"]["id"] = "urban-footprint-copy"
    official = {"processDescription": {"process": shipped["processDescription"]},
                "executionUnit": [shipped["executionUnit"]], "workflow": shipped["workflow"]}
    assert deploy(gateway, official).status_code == 201
    tiles = [{"href": p.as_uri()} for p in scenes if "20240610" in p.name][:2]
    response = gateway.client.post_json("/processes/urban-footprint-copy/execution",
                                        {"inputs": {"tiles": tiles}, "response": "document"},
                                        headers={"Prefer": "respond-async"})
    status, _ = poll_job(gateway.client, response.json["jobID"], timeout=120)
    assert status["status"] == "successful", status
    results = gateway.client.get(f"/jobs/{response.json['jobID']}/results").json
    assert results["total_area_km2"] > 0


def test_only_deployers_may_deploy_and_bad_packages_say_what_is_wrong(gateway, tmp_path, sample_data):
    body = package()
    unauthenticated = deploy(gateway, body, headers={})
    assert problem(unauthenticated, 401) and unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")
    problem(deploy(gateway, body, headers={"Authorization": "Bearer wrong"}), 401)

    broken = copy.deepcopy(body)
    del broken["workflow"]["steps"][0]["resources"]["cpus"]
    broken["workflow"]["steps"][0]["depends_on"] = ["later"]
    doc = problem(deploy(gateway, broken), 400)
    assert doc["type"].endswith("invalid-package") and "depends_on" in doc["detail"]
    problem(deploy(gateway, [1, 2]), 400)
    problem(deploy(gateway, body, content_type="text/plain"), 415)

    assert deploy(gateway, body).status_code == 201
    assert problem(deploy(gateway, body), 409)["type"].endswith("duplicated-process")
    assert problem(deploy(gateway, package("ndvi-mosaic")), 403)["type"].endswith("immutable-process")
    immutable = deploy(gateway, package("ndvi-mosaic"), method="put", path="/processes/ndvi-mosaic")
    assert problem(immutable, 403)["type"].endswith("immutable-process")
    problem(deploy(gateway, None, method="delete", path="/processes/ndvi-mosaic"), 403)
    problem(deploy(gateway, package("other"), method="put", path="/processes/sleepy-cubes"), 400)
    problem(deploy(gateway, package("nobody"), method="put", path="/processes/nobody"), 404)

    closed = build_gateway(tmp_path / "closed", sample_data, dispatcher=False)
    try:
        assert problem(deploy(closed, package("x")), 403)["title"] == "Deployment disabled"
    finally:
        close_gateway(closed)


def test_a_deployed_processor_runs_on_mesos(tmp_path, sample_data, mesos_master):
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.leader.address,
                            GATEWAY_DEPLOY_TOKENS=f"portal:{TOKEN}")
    try:
        assert deploy(gateway, package()).status_code == 201
        results, job_id = run(gateway, "sleepy-cubes", [1, 2])
        assert results["total"] == 9
        assert {a.agent for a in attempts_of(gateway, job_id)} <= set(mesos_master.cluster.agents)
    finally:
        close_gateway(gateway)


def test_another_replica_offers_a_deployed_processor_within_a_second_or_so(tmp_path, sample_data, gateway):
    replica = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        assert "sleepy-cubes" not in wps1_ids(replica)
        deploy(gateway, package())
        wait_for(lambda: "sleepy-cubes" in wps1_ids(replica), timeout=5)
        assert "sleepy-cubes" in wps2_ids(replica)
        assert replica.client.get("/processes/sleepy-cubes").status_code == 200
    finally:
        close_gateway(replica)


def test_a_package_cannot_name_its_own_bundle(gateway):
    """The gateway names bundles; a package that tries is deployed without it and runs."""
    body = package()
    body["bundle"] = "x"
    assert deploy(gateway, body).status_code == 201
    results, _ = run(gateway, "sleepy-cubes", [2])
    assert results["total"] == 8


def test_a_bad_token_setting_is_refused_without_showing_the_token():
    with pytest.raises(ConfigError) as refused:
        load_settings(cfg_files=[], environ={"GATEWAY_DEPLOY_TOKENS": "s3cr3t-value"})
    assert "s3cr3t" not in str(refused.value) and "deploy_tokens" in str(refused.value)


def test_a_deployer_may_not_replace_or_undeploy_another_deployers_processor(tmp_path, sample_data):
    other = "0ther-t0ken"
    hashed = hashlib.sha256(other.encode()).hexdigest()  # the token itself need not be in the configuration
    gw = build_gateway(tmp_path / "var", sample_data, GATEWAY_DEPLOY_TOKENS=f"portal:{TOKEN}, lab:sha256:{hashed}")
    try:
        assert deploy(gw, package("mine")).status_code == 201
        theirs = {"Authorization": f"Bearer {other}"}
        forbidden = deploy(gw, package("mine", "2.0.0"), headers=theirs, method="put", path="/processes/mine")
        assert problem(forbidden, 403)["detail"].startswith("'mine' was deployed by another deployer")
        problem(deploy(gw, None, headers=theirs, method="delete", path="/processes/mine"), 403)
        assert deploy(gw, package("mine", "2.0.0"), method="put", path="/processes/mine").status_code == 204
        assert deploy(gw, package("lab-own"), headers=theirs).status_code == 201  # the hashed token works
        assert deploy(gw, None, method="delete", path="/processes/mine").status_code == 204
    finally:
        close_gateway(gw)


@pytest.mark.parametrize("authorization", [
    "Bearer tökén-ß",  # non-ASCII bearer token
    "Basic " + base64.b64encode("portal:pässwörd".encode()).decode(),  # non-ASCII Basic password
    "Basic " + base64.b64encode(b"portal:\xff\xfe").decode(),  # not UTF-8 at all
    "Basic ###",  # not base64
])
def test_odd_credentials_are_401_not_500(gateway, authorization):
    problem(deploy(gateway, package("odd"), headers={"Authorization": authorization}), 401)


def test_tokens_are_kept_only_as_hashes():
    settings = load_settings(environ={"GATEWAY_DEPLOY_TOKENS": f"portal:{TOKEN}"})
    assert TOKEN.encode() not in repr(settings.deployers).encode() and len(settings.deployers["portal"]) == 32
