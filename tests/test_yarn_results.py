"""Results of YARN jobs kept on HDFS (``[yarn] results_dir``), on the test ResourceManager and its WebHDFS.

The files are checked on the double's HDFS with a WebHDFS client we did not write (``hdfs`` from PyPI).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import timedelta

import pytest
from hdfs import InsecureClient
from lxml import etree
from sqlalchemy import select, update

from mesos_backend.yarn.results import HdfsResults
from wps_gateway.jobs import request_dismiss
from wps_gateway.planner import job_paths
from wps_gateway.runner import retention_for
from wps_gateway.store.models import Job, JobStatus, StacItem, utcnow

from .conftest import build_gateway, close_gateway, gateway_environ
from .jobs_support import job_id_of, job_of, running, submit_sleepy, wait_for
from .mesos_support import NS, assert_same_outputs, outputs_of, submit
from .ogcapi_support import poll_job
from .test_ogcapi import refs, submit_async
from .yarn_support import yarn_environ, yarn_gateway

pytestmark = pytest.mark.slow
RESULTS = "/user/wps/results"


def results_env(rm, **extra: str) -> dict[str, str]:
    return {"YARN_RESULTS_DIR": rm.hdfs.default_fs + RESULTS, "GATEWAY_RETENTION": "successful:1d", **extra}


def hdfs_client(rm) -> InsecureClient:
    return InsecureClient(rm.hdfs.webhdfs_url, user="wps")


def test_outputs_of_a_yarn_job_are_served_from_hdfs_and_retention_deletes_them(tmp_path, sample_data, scenes,
                                                                                   wps100_schema, yarn_rm):
    inputs = [s for s in scenes if "20240610" in s.name]
    local = build_gateway(tmp_path / "local", sample_data)
    yarn = yarn_gateway(tmp_path / "yarn-gw", sample_data, yarn_rm, **results_env(yarn_rm))
    hdfs = hdfs_client(yarn_rm)
    try:
        local_status = submit(local, "ndvi-mosaic", "scenes", inputs)
        expected = outputs_of(local, local_status, wps100_schema)
        status_url = submit(yarn, "ndvi-mosaic", "scenes", inputs)
        assert_same_outputs(outputs_of(yarn, status_url, wps100_schema), expected)
        job_id = job_id_of(status_url)
        job = job_of(yarn, job_id)
        files = sorted(entry["file"] for entry in job.outputs.values() if "file" in entry)
        assert files and sorted(hdfs.list(f"{RESULTS}/{job_id}")) == files
        outputs_dir = job_paths(yarn.settings.jobs_dir, job_id)["outputs"]
        assert not any((outputs_dir / name).exists() for name in files)

        status = yarn.client.get(status_url.replace("http://localhost", "")).body
        assert b"hdfs://" not in status and yarn_rm.hdfs.namenode.address.encode() not in status
        references = etree.fromstring(status).findall(".//wps:Reference", NS)
        assert references
        for reference in references:
            href = reference.get("href")
            assert href.startswith(f"http://localhost/outputs/{job_id}/"), href
            response = yarn.client.get(href.replace("http://localhost", ""))
            name = href.rsplit("/", 1)[1]
            with hdfs.read(f"{RESULTS}/{job_id}/{name}") as reader:
                assert response.body == reader.read()
            assert response.content_length == len(response.body)
            here = local.client.get(f"/outputs/{job_id_of(local_status)}/{name}")
            assert response.content_type == here.content_type and response.body == here.body, name

        # The STAC items were built from the rasters on HDFS.
        wait_for(lambda: _items(yarn, job_id), 60, f"the STAC items of job {job_id}")
        rasters = [i for i in _items(yarn, job_id) if i.id != job_id]
        assert rasters and all(i.document["properties"].get("proj:shape") for i in rasters)
        assert all(a["href"].startswith("http://localhost/outputs/") for i in rasters
                   for a in i.document["assets"].values())

        # A file gone from HDFS is a 404.
        gone = references[0].get("href").rsplit("/", 1)[1]
        hdfs.delete(f"{RESULTS}/{job_id}/{gone}")
        yarn.client.get(f"/outputs/{job_id}/{gone}", status=404)

        # A file sent inline is read from HDFS too: the same value as locally; 503 while HDFS is away.
        body = {"inputs": {"scenes": refs(inputs)}, "response": "document",
                "outputs": {"statistics": {"transmissionMode": "value"}}}
        inline = {}
        for gateway in (local, yarn):
            ogc_job = submit_async(gateway.client, "ndvi-mosaic", body)
            assert poll_job(gateway.client, ogc_job, timeout=120)[1][-1] == "successful"
            inline[gateway is yarn] = gateway.client.get(f"/jobs/{ogc_job}/results").json["statistics"]
        assert inline[True] == inline[False] and inline[True]["value"]
        yarn_rm.hdfs.namenode.close()
        try:
            problem = yarn.client.get(f"/jobs/{ogc_job}/results", status=503).json
            assert "HDFS" in problem["detail"]
        finally:
            yarn_rm.hdfs.namenode.open()

        # Retention deletes the job's folder on HDFS.
        with yarn.store.session() as session:
            session.execute(update(Job).where(Job.id == job_id).values(finished=utcnow() - timedelta(days=2)))
        collected = retention_for(yarn.settings, yarn.store).collect()
        assert collected.jobs == [job_id]
        assert hdfs.status(f"{RESULTS}/{job_id}", strict=False) is None
        assert hdfs.status(f"{RESULTS}/{ogc_job}", strict=False) is not None  # within its retention
        assert hdfs.status(RESULTS, strict=False) is not None
    finally:
        close_gateway(local)
        close_gateway(yarn)


def _items(gateway, job_id: str) -> list[StacItem]:
    with gateway.store.session() as session:
        items = session.scalars(select(StacItem).where(StacItem.job_id == job_id)).all()
        session.expunge_all()
        return list(items)


def test_outputs_wait_for_an_unreachable_namenode_and_its_outputs_are_503_meanwhile(tmp_path, sample_data, yarn_rm):
    """The job stays running with its files while HDFS is away (across a restart); they go there once it is
    back."""
    staging = (tmp_path / "staging").as_uri()  # task commands on a shared folder: only the results need HDFS
    gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm, **results_env(yarn_rm, YARN_STAGING_DIR=staging))
    hdfs = hdfs_client(yarn_rm)
    try:
        first = submit_sleepy(gateway, [3], seconds=0)
        wait_for(lambda: job_of(gateway, first).status == JobStatus.SUCCESSFUL, 120, "the first job to succeed")
        job_id = submit_sleepy(gateway, [1, 2], seconds=2)
        wait_for(lambda: len(running(gateway, job_id)) == 2, 60, "both squares to run")
        yarn_rm.hdfs.namenode.close()
        total = job_paths(gateway.settings.jobs_dir, job_id)["outputs"] / "total.txt"
        wait_for(lambda: "waiting for HDFS" in (job_of(gateway, job_id).message or ""), 120,
                 "the job to wait for HDFS")
        assert job_of(gateway, job_id).status == JobStatus.RUNNING and total.read_text() == "5"

        response = gateway.client.get(f"/outputs/{first}/total.txt", status=503)
        assert "HDFS" in response.text and "Retry-After" in response.headers

        close_gateway(gateway)  # a gateway that starts again while HDFS is away takes the waiting job up
        gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm,
                               **results_env(yarn_rm, YARN_STAGING_DIR=staging))
        yarn_rm.hdfs.namenode.open()
        wait_for(lambda: job_of(gateway, job_id).status in JobStatus.FINAL, 60, "the job to end")
        job = job_of(gateway, job_id)
        assert job.status == JobStatus.SUCCESSFUL and job.outputs["total"]["value"] == 5, job.message
        assert not total.exists()
        with hdfs.read(f"{RESULTS}/{job_id}/total.txt") as reader:
            assert reader.read() == b"5"
        response = gateway.client.get(f"/outputs/{job_id}/total.txt")
        assert response.body == b"5" and response.content_length == 1
    finally:
        close_gateway(gateway)


def test_a_job_dismissed_while_it_waits_for_hdfs_is_not_collected_again(tmp_path, sample_data, yarn_rm):
    staging = (tmp_path / "staging").as_uri()
    gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm, **results_env(yarn_rm, YARN_STAGING_DIR=staging))
    try:
        job_id = submit_sleepy(gateway, [1], seconds=2)
        wait_for(lambda: len(running(gateway, job_id)) == 1, 60, "the square to run")
        yarn_rm.hdfs.namenode.close()
        wait_for(lambda: "waiting for HDFS" in (job_of(gateway, job_id).message or ""), 120,
                 "the job to wait for HDFS")
        request_dismiss(gateway.store, job_id)
        gateway.runner.wake()
        wait_for(lambda: job_of(gateway, job_id).status == JobStatus.DISMISSED, 60, "the dismissal")
        dispatcher = gateway.runner.dispatcher
        wait_for(lambda: job_id not in dispatcher._outputs_due, 60, "the dispatcher to let the job go")
    finally:
        yarn_rm.hdfs.namenode.open()
        close_gateway(gateway)


def test_hdfs_refusing_the_outputs_fails_the_job_with_the_reason(tmp_path, sample_data, yarn_rm):
    gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm, **results_env(yarn_rm))
    try:
        job_id = submit_sleepy(gateway, [1, 2], seconds=1)
        yarn_rm.hdfs.namespace.create(f"{RESULTS}/{job_id}", b"in the way", "wps", overwrite=False)
        wait_for(lambda: job_of(gateway, job_id).status in JobStatus.FINAL, 120, "the job to end")
        job = job_of(gateway, job_id)
        assert job.status == JobStatus.FAILED, job.message
        assert job.message.startswith("The outputs could not be stored on HDFS:") and "Parent" in job.message
    finally:
        close_gateway(gateway)


def test_outputs_go_to_hdfs_while_the_store_is_free_for_writers(tmp_path, sample_data, yarn_rm, monkeypatch):
    """An upload holds no write transaction: a large product must not block every writer of the store."""
    gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm, **results_env(yarn_rm))
    database = gateway.store.engine.url.database
    writable: list[bool] = []
    put = HdfsResults.put

    def put_and_probe(self, job_id, source):
        probe = sqlite3.connect(database, timeout=0)  # no waiting: a held write lock fails at once
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            writable.append(True)
        except sqlite3.OperationalError:
            writable.append(False)
        finally:
            probe.close()
        return put(self, job_id, source)

    monkeypatch.setattr(HdfsResults, "put", put_and_probe)
    try:
        job_id = submit_sleepy(gateway, [1, 2], seconds=0)
        wait_for(lambda: job_of(gateway, job_id).status in JobStatus.FINAL, 120, "the job to end")
        assert job_of(gateway, job_id).status == JobStatus.SUCCESSFUL, job_of(gateway, job_id).message
        assert writable and all(writable), writable
    finally:
        close_gateway(gateway)


@pytest.mark.parametrize("command", ["dispatch", "gc"])
@pytest.mark.parametrize(("value", "says"), [
    ("/data/results", "results_dir must be an hdfs:// directory"),
    ("hdfs://nn:8020/", "results_dir must be an hdfs:// directory"),
])
def test_a_bad_results_dir_is_one_clear_line_and_exit_2(tmp_path, sample_data, yarn_rm, value, says, command):
    env = {**gateway_environ(tmp_path / "var", sample_data, "http://127.0.0.1:1/wps"), **yarn_environ(yarn_rm),
           "YARN_RESULTS_DIR": value, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "wps_gateway.cli", "--log-level", "ERROR", command], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wps-gateway: yarn backend: ") and says in lines[0], lines


def test_results_dir_needs_webhdfs(tmp_path, sample_data, yarn_rm):
    env = {**gateway_environ(tmp_path / "var", sample_data, "http://127.0.0.1:1/wps"), **yarn_environ(yarn_rm),
           "YARN_RESULTS_DIR": "hdfs://nn:8020/results", "YARN_WEBHDFS": "", "PATH": "/usr/bin:/bin",
           "YARN_STAGING_DIR": (tmp_path / "staging").as_uri(), "YARN_AM_JAR": (tmp_path / "ds.jar").as_uri()}
    result = subprocess.run([sys.executable, "-m", "wps_gateway.cli", "--log-level", "ERROR", "dispatch"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "webhdfs" in result.stderr and "results_dir" in result.stderr, result.stderr
