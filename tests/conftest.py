"""Shared fixtures: sample data, a gateway on a temporary store, a live server on loopback, schemas."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import waitress.server
import webtest
from lxml import etree

from processes.sampledata import generate
from wps_gateway.app import GatewayApp
from wps_gateway.config import Settings, load_settings
from wps_gateway.context import GatewayContext
from wps_gateway.runner import DispatcherRunner
from wps_gateway.store.db import Store

# Fixture modules for real servers; each adds itself here.
pytest_plugins: list[str] = ["tests.servers.postgres", "tests.servers.zookeeper", "tests.servers.slurm",
                             "tests.mesos_support", "tests.yarn_support", "tests.servers.stac_api",
                             "tests.browser_support"]

REPO = Path(__file__).resolve().parents[1]
TEST_PROCESSORS = Path(__file__).resolve().parent / "processors"
# The official OGC schemas, vendored from ../shared/schemas so a clean clone validates offline.
SCHEMAS = Path(os.environ.get("SCHEMAS_DIR", REPO / "tests" / "schemas"))
REQUIRE_REAL = os.environ.get("REQUIRE_REAL_SERVERS") == "1" or os.environ.get("CI") == "true"


def require(condition: bool, reason: str) -> None:
    """Skip on a developer machine that lacks something; fail in CI, where it must be there."""
    if not condition:
        if REQUIRE_REAL:
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample-data")
    generate(root)
    return root


@pytest.fixture(scope="session")
def scenes(sample_data) -> list[Path]:
    return sorted((sample_data / "s2").glob("*.tif"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_environ(data_dir: Path, sample_data: Path, url: str, **extra: str) -> dict[str, str]:
    env = {
        "GATEWAY_DATA_DIR": str(data_dir),
        "GATEWAY_ALLOWED_INPUT_PATHS": f"{sample_data}{os.pathsep}{data_dir / 'uploads'}",
        "GATEWAY_PROCESSORS_PATHS": str(TEST_PROCESSORS),
        "GATEWAY_POLL_INTERVAL": "0.05",
        "GATEWAY_RETRY_BACKOFF": "0.1",
        "GATEWAY_SYNC_TIMEOUT": "60",
        "GATEWAY_SHUTDOWN_GRACE": "0",  # tests that stop a gateway with tasks running want them stopped at once
        "SERVER_URL": url,
        "SERVER_MAXREQUESTSIZE": "1mb",
    }
    env.update(extra)
    return env


@dataclass
class Gateway:
    """A gateway wired together in this process: WSGI app, store, dispatcher thread."""

    settings: Settings
    context: GatewayContext
    app: GatewayApp
    runner: DispatcherRunner | None
    client: webtest.TestApp

    @property
    def store(self) -> Store:
        return self.context.store


def build_gateway(data_dir: Path, sample_data: Path, url: str = "http://localhost/wps", dispatcher: bool = True,
                  **extra: str) -> Gateway:
    settings = load_settings(environ=gateway_environ(data_dir, sample_data, url, **extra))
    store = Store(settings.database_url)
    store.upgrade()
    context = GatewayContext.create(settings, store)
    runner = None
    if dispatcher:
        runner = DispatcherRunner(settings, store)
        context.on_job_submitted = runner.wake
        runner.start_thread()
        assert runner.is_leader.wait(10), "dispatcher did not become active"
    app = GatewayApp(context)
    return Gateway(settings, context, app, runner, webtest.TestApp(app))


def close_gateway(gateway: Gateway) -> None:
    if gateway.runner is not None:
        gateway.runner.stop()
    gateway.store.dispose()


PROXY = {"REMOTE_ADDR": "127.0.0.1"}  # the trusted proxy of tests in ``[auth] mode = header``


def as_user(user: str, groups: str = "", **environ: str) -> dict[str, Any]:
    """webtest keyword arguments for a request a trusted proxy authenticated (``groups``: comma-separated)."""
    headers = {"X-Forwarded-User": user}
    if groups:
        headers["X-Forwarded-Groups"] = groups
    return {"headers": headers, "extra_environ": {**PROXY, **environ}}


@pytest.fixture
def gateway(tmp_path, sample_data) -> Iterator[Gateway]:
    gw = build_gateway(tmp_path / "var", sample_data)
    yield gw
    close_gateway(gw)


@dataclass
class LiveGateway:
    gateway: Gateway
    url: str  # the WPS endpoint


def serve_live(data_dir: Path, sample_data: Path, dispatcher: bool = True, **extra: str) -> Iterator[LiveGateway]:
    """A gateway served over HTTP on 127.0.0.1 by waitress, as an operator runs it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/wps"
    gw = build_gateway(data_dir, sample_data, url=url, dispatcher=dispatcher, **extra)
    server = waitress.server.create_server(gw.app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield LiveGateway(gw, url)
    server.close()
    close_gateway(gw)


@pytest.fixture
def live_gateway(tmp_path, sample_data) -> Iterator[LiveGateway]:
    """The gateway served over HTTP on 127.0.0.1, for OWSLib and other real clients."""
    yield from serve_live(tmp_path / "var", sample_data)


@pytest.fixture
def live_front_end(tmp_path, sample_data) -> Iterator[LiveGateway]:
    """The same without a dispatcher: requests are accepted and queued, nothing runs."""
    yield from serve_live(tmp_path / "var", sample_data, dispatcher=False)


@pytest.fixture(scope="session")
def wps100_schema() -> etree.XMLSchema:
    path = SCHEMAS / "wps" / "1.0.0" / "wpsAll.xsd"
    require(path.is_file(), f"WPS 1.0.0 schemas not found at {path}")
    return etree.XMLSchema(etree.parse(str(path)))


@pytest.fixture(scope="session")
def wps200_schema() -> etree.XMLSchema:
    path = SCHEMAS / "wps" / "2.0" / "wps.xsd"
    require(path.is_file(), f"WPS 2.0 schemas not found at {path}")
    return etree.XMLSchema(etree.parse(str(path)))


def assert_valid(schema: etree.XMLSchema, body: bytes) -> etree._Element:
    doc = etree.fromstring(body)
    if not schema.validate(doc):
        raise AssertionError(f"schema errors: {schema.error_log}\n{body[:2000]!r}")
    return doc
