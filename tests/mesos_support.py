"""Shared pieces of the Mesos tests: a test master with three agents, a gateway on it, job helpers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import rasterio
from sqlalchemy import select

from mesos_backend import Resources
from mesos_backend.testing import proto
from mesos_backend.testing.cluster import MasterTimings
from mesos_backend.testing.master import TestMaster
from wps_gateway.store.models import Job, Task, TaskAttempt

from .conftest import Gateway, build_gateway, require
from .test_wps1 import NS, kvp_refs, poll_until_final

# Fast clocks: heartbeats every 0.3 s, offers every 0.1 s, unacknowledged updates again after 1 s.
FAST = MasterTimings(heartbeat_interval=0.3, allocation_interval=0.1, update_retry=1.0, update_retry_max=4.0)


def start_master(work_dir: Path, agents: int = 3, **options) -> TestMaster:
    options.setdefault("agent_resources", Resources(cpus=2, mem=4096, disk=10000))
    options.setdefault("agent_attributes", {"rack": "r{i}", "storage": "shared"})
    return TestMaster(work_dir, agents, timings=FAST, **options).start()


@pytest.fixture
def mesos_master(tmp_path):
    """A leading test master with three agents; no event it sent may break the Mesos protos."""
    require(proto.available(), "protoc and the Mesos protos (golang-github-mesos-mesos-go-dev) are not installed")
    master = start_master(tmp_path / "mesos")
    yield master
    master.stop()
    assert master.cluster.protocol_errors == []


def mesos_gateway(data_dir: Path, sample_data: Path, master: str, dispatcher: bool = True, **extra: str) -> Gateway:
    env = {"GATEWAY_BACKEND": "mesos", "MESOS_MASTER": master, "MESOS_OFFER_REFUSE_SECONDS": "0.2",
           "MESOS_UNREACHABLE_TIMEOUT": "1", "MESOS_FAILOVER_TIMEOUT": "60"}
    env.update(extra)
    return build_gateway(data_dir, sample_data, dispatcher=dispatcher, **env)


def submit(gateway: Gateway, identifier: str, name: str, paths: list[Path]) -> str:
    """An async Execute by KVP; returns the status location."""
    response = gateway.client.get("/wps", {
        "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": identifier,
        "DataInputs": kvp_refs(name, paths), "storeExecuteResponse": "true", "status": "true"})
    return response.xml.get("statusLocation")


def job_id_of(status_url: str) -> str:
    return status_url.rsplit("/", 1)[1].removesuffix(".xml")


def outputs_of(gateway: Gateway, status_url: str, schema, timeout: float = 120) -> dict[str, object]:
    """Wait for success and read every output: rasters as arrays, other references as bytes, literals as text."""
    doc, seen = poll_until_final(gateway.client, status_url, schema, timeout=timeout)
    assert seen[-1] == "ProcessSucceeded", (seen, doc.findtext(".//wps:ProcessFailed//ows:ExceptionText",
                                                                 namespaces=NS))
    result: dict[str, object] = {}
    for output in doc.iterfind(".//wps:Output", NS):
        name = output.findtext("ows:Identifier", namespaces=NS)
        reference = output.find("wps:Reference", NS)
        if reference is None:
            result[name] = output.findtext(".//wps:LiteralData", namespaces=NS)
            continue
        body = gateway.client.get(reference.get("href").replace("http://localhost", "")).body
        if "tiff" in (reference.get("mimeType") or ""):
            with rasterio.open(io.BytesIO(body)) as dataset:
                result[name] = dataset.read()
        else:
            result[name] = body
    return result


def assert_same_outputs(left: dict[str, object], right: dict[str, object]) -> None:
    assert left.keys() == right.keys()
    for name, value in left.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, right[name], err_msg=name)
        else:
            assert value == right[name], name


def attempts_of(gateway: Gateway, job_id: str) -> list[TaskAttempt]:
    with gateway.store.session() as session:
        rows = session.scalars(select(TaskAttempt).join(Task).where(Task.job_id == job_id)
                               .order_by(TaskAttempt.id)).all()
        session.expunge_all()
        return list(rows)


def job_of(gateway: Gateway, job_id: str) -> Job:
    with gateway.store.session() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
        return job
