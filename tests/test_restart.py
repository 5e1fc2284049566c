"""Killing the gateway (SIGKILL) loses nothing: accepted and running jobs finish after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from wps_gateway.store.db import Store
from wps_gateway.store.models import Job, JobStatus, Task, TaskAttempt

from .conftest import free_port, gateway_environ

NS = {"wps": "http://www.opengis.net/wps/1.0.0", "ows": "http://www.opengis.net/ows/1.1"}
pytestmark = pytest.mark.slow


class GatewayProcess:
    """``wps-gateway serve`` as its own process, the way an operator runs it."""

    def __init__(self, data_dir: Path, sample_data: Path, **extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/wps"
        self.env = {**os.environ, **gateway_environ(data_dir, sample_data, self.url, **extra)}
        self.log = data_dir.parent / f"gateway-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wps_gateway.cli", "serve", "--port", str(self.port)],
            env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1).read()
                return self
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                time.sleep(0.1)
        raise AssertionError(f"gateway did not start:\n{self.log.read_text()}")

    def get(self, url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    def submit(self, data_inputs: str) -> str:
        query = urllib.parse.urlencode({
            "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "sleepy-squares",
            "DataInputs": data_inputs, "storeExecuteResponse": "true", "status": "true"})
        return etree.fromstring(self.get(f"{self.url}?{query}")).get("statusLocation")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_final(gateway: GatewayProcess, status_location: str, timeout: float = 90) -> etree._Element:
    location = status_location.replace("http://127.0.0.1:0", f"http://127.0.0.1:{gateway.port}")
    location = location.split("/wps/status/", 1)[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = etree.fromstring(gateway.get(f"http://127.0.0.1:{gateway.port}/wps/status/{location}"))
        if doc.find("wps:Status/wps:ProcessSucceeded", NS) is not None or \
                doc.find("wps:Status/wps:ProcessFailed", NS) is not None:
            return doc
        time.sleep(0.2)
    raise AssertionError(f"job not final after {timeout} s:\n{gateway.log.read_text()[-3000:]}")


def job_id_of(status_location: str) -> str:
    return status_location.rsplit("/", 1)[1].removesuffix(".xml")


def test_sigkill_while_tasks_run_then_restart_finishes_the_job(tmp_path, sample_data):
    data_dir = tmp_path / "var"
    first = GatewayProcess(data_dir, sample_data).start()
    store = Store(f"sqlite:///{data_dir / 'gateway.db'}")
    try:
        location = first.submit(";".join(f"numbers={n}" for n in range(1, 7)) + ";seconds=2")
        job_id = job_id_of(location)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with store.sessions() as s:
                running = s.scalars(select(TaskAttempt).where(TaskAttempt.status == "running")).all()
            if running:
                break
            time.sleep(0.05)
        assert running, "no task started"
        first.kill()

        second = GatewayProcess(data_dir, sample_data)
        second.port, second.url = first.port, first.url  # the same public URL as before
        second.env = first.env
        second.start()
        try:
            doc = wait_final(second, location)
        finally:
            second.stop()
        assert doc.find("wps:Status/wps:ProcessSucceeded", NS) is not None, etree.tostring(doc)
        total = doc.findtext(".//wps:Output/wps:Data/wps:LiteralData", namespaces=NS)
        assert int(total) == sum(n * n for n in range(1, 7))

        with store.sessions() as s:
            job = s.get(Job, job_id)
            assert job.status == JobStatus.SUCCESSFUL
            tasks = s.scalars(select(Task).where(Task.job_id == job_id)).all()
            lost = [a for t in tasks for a in t.attempt_rows if a.status == "lost"]
            assert lost and all(a.reason == "backend_restarted" for a in lost)
            for task in tasks:
                attempts = task.attempt_rows
                assert [a.status for a in attempts].count("succeeded") == 1, task.id
                assert not any(a.status in ("launched", "running") for a in attempts)
                for earlier, later in zip(attempts, attempts[1:], strict=False):
                    assert earlier.finished <= later.launched, f"{task.id} ran twice at once"
    finally:
        first.stop()
        store.dispose()


def test_accepted_jobs_survive_a_sigkill_of_the_gateway(tmp_path, sample_data):
    data_dir = tmp_path / "var"
    accepting = GatewayProcess(data_dir, sample_data, GATEWAY_DISPATCHER="external").start()
    try:
        location = accepting.submit("numbers=3;numbers=4;seconds=0")
        doc = etree.fromstring(accepting.get(location))
        assert doc.find("wps:Status/wps:ProcessAccepted", NS) is not None
        accepting.kill()
        restarted = GatewayProcess(data_dir, sample_data)
        restarted.port, restarted.url, restarted.env = accepting.port, accepting.url, \
            {**accepting.env, "GATEWAY_DISPATCHER": "embedded"}
        restarted.start()
        try:
            final = wait_final(restarted, location)
        finally:
            restarted.stop()
        assert final.findtext(".//wps:Output/wps:Data/wps:LiteralData", namespaces=NS) == "25"
    finally:
        accepting.stop()


def test_a_second_dispatcher_stands_by_while_one_is_active(tmp_path, sample_data):
    data_dir = tmp_path / "var"
    env = {**os.environ, **gateway_environ(data_dir, sample_data, "http://127.0.0.1:1/wps")}
    cmd = [sys.executable, "-m", "wps_gateway.cli", "dispatch"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.5)
        second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(1.5)
        finally:
            second.terminate()
            out, _ = second.communicate(10)
        assert "standing by" in out and "dispatcher active" not in out
    finally:
        first.terminate()
        first.communicate(10)
