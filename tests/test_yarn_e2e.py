"""The shipped processors through the YARN backend and the test ResourceManager: same outputs as locally."""

from __future__ import annotations

import io

import numpy as np
import pytest
import rasterio

from mesos_backend.testing.yarn.distshell import read_utf

from .conftest import build_gateway, close_gateway
from .jobs_support import attempts_of, job_id_of, job_of
from .mesos_support import assert_same_outputs, outputs_of, submit
from .ogcapi_support import path_of, poll_job
from .test_ogcapi import GEOTIFF, refs, submit_async
from .yarn_support import yarn_gateway

pytestmark = pytest.mark.slow
CASES = [("ndvi-mosaic", "scenes", "20240610"), ("urban-footprint", "tiles", "20240610")]


@pytest.mark.parametrize(("identifier", "name", "date"), CASES)
def test_each_processor_gives_the_same_outputs_on_yarn_as_locally_through_wps_1(
        tmp_path, sample_data, scenes, wps100_schema, yarn_rm, identifier, name, date):
    inputs = [s for s in scenes if date in s.name]
    local = build_gateway(tmp_path / "local", sample_data)
    yarn = yarn_gateway(tmp_path / "yarn-gw", sample_data, yarn_rm)
    try:
        expected = outputs_of(local, submit(local, identifier, name, inputs), wps100_schema)
        status_url = submit(yarn, identifier, name, inputs)
        assert_same_outputs(outputs_of(yarn, status_url, wps100_schema), expected)

        attempts = attempts_of(yarn, job_id_of(status_url))
        assert attempts and all(a.status == "succeeded" and a.exit_code == 0 for a in attempts)
        apps = {a.app_id: a for a in yarn_rm.cluster.list_apps()}
        assert {a.sandbox for a in attempts} <= set(apps)  # each attempt names its application
        assert sorted(apps[a.sandbox].name for a in attempts) == sorted(a.backend_task_id for a in attempts)
        assert all(apps[a.sandbox].state == "FINISHED" and apps[a.sandbox].final_status == "SUCCEEDED"
                   for a in attempts)
        nodes = {n.node_id for n in yarn_rm.cluster.nodes}
        assert {a.agent for a in attempts} <= nodes
        assert all(a.wall_seconds is not None and a.wall_seconds > 0 for a in attempts)
        bundle = job_of(yarn, job_id_of(status_url)).descriptor["bundle"]["uri"].removeprefix("file://")
        for attempt in attempts:  # each task unpacked the job's bundle (a failed tar would have failed it)
            (commands,) = [r for r in apps[attempt.sandbox].am_context.resources if r.key == "shellCommands"]
            command = read_utf(yarn_rm.hdfs.namespace.read(yarn_rm.hdfs.path_of(commands.url)))
            assert command.startswith(f"tar -xf {bundle} && exec python -m processes.")
    finally:
        close_gateway(local)
        close_gateway(yarn)


def _ogc_outputs(gateway, process_id: str, body: dict) -> dict[str, object]:
    job_id = submit_async(gateway.client, process_id, body)
    info, seen = poll_job(gateway.client, job_id, timeout=120)
    assert seen[-1] == "successful", info
    results = gateway.client.get(f"/jobs/{job_id}/results").json
    out: dict[str, object] = {}
    for name, value in results.items():
        if isinstance(value, dict) and "href" in value:
            body_bytes = gateway.client.get(path_of(value["href"])).body
            if value.get("type") == GEOTIFF:
                with rasterio.open(io.BytesIO(body_bytes)) as dataset:
                    out[name] = dataset.read()
            else:
                out[name] = body_bytes
        else:
            out[name] = value
    return out


@pytest.mark.parametrize(("identifier", "name", "date"), CASES)
def test_each_processor_gives_the_same_outputs_on_yarn_as_locally_through_ogc_api(
        tmp_path, sample_data, scenes, yarn_rm, identifier, name, date):
    body = {"inputs": {name: refs([s for s in scenes if date in s.name])}, "response": "document"}
    local = build_gateway(tmp_path / "local", sample_data)
    yarn = yarn_gateway(tmp_path / "yarn-gw", sample_data, yarn_rm)
    try:
        expected = _ogc_outputs(local, identifier, body)
        got = _ogc_outputs(yarn, identifier, body)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(got[key], value, err_msg=key)
            else:
                assert got[key] == value, key
        assert any(a.app_type == "WPS" for a in yarn_rm.cluster.list_apps())
    finally:
        close_gateway(local)
        close_gateway(yarn)
