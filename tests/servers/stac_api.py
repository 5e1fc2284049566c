"""A real STAC API for the catalogue-push tests: stac-fastapi-pgstac on PostgreSQL with PostGIS.

The portal's catalogue stand-in is the real thing: the PyPI packages
``stac-fastapi-pgstac`` (FastAPI, Transactions extension on) and
``pypgstac`` (``pypgstac migrate`` installs the pgstac schema) on the
tests' PostgreSQL server (Debian's ``postgresql`` with
``postgresql-15-postgis-3``), served by uvicorn on 127.0.0.1. One server per
test session; a test that takes it down and up again gets its own
(``private_stac_api``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, require
from tests.servers.postgres import PASSWORD, USER, PostgresServer

START_TIMEOUT = 60.0


def _postgis_available(server: PostgresServer) -> bool:
    version = server.bin_dir.parent.name  # /usr/lib/postgresql/<version>/bin
    return Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists()


@dataclass
class StacApiServer:
    postgres: PostgresServer
    database: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="stac-api-", suffix=".log")[1]))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def migrate(self) -> None:
        dsn = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.postgres.port}/{self.database}"
        subprocess.run([str(Path(sys.executable).parent / "pypgstac"), "migrate", "--dsn", dsn], check=True,
                       capture_output=True, timeout=300)

    def start(self) -> None:
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGUSER": USER, "PGPASSWORD": PASSWORD,
                       "PGHOST": "127.0.0.1", "PGPORT": str(self.postgres.port), "PGDATABASE": self.database,
                       "ENABLE_TRANSACTIONS_EXTENSIONS": "true", "DB_MIN_CONN_SIZE": "1", "DB_MAX_CONN_SIZE": "4"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "stac_fastapi.pgstac.app:create_app", "--factory",
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
                env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the STAC API exited at start: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/_mgmt/ping", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the STAC API did not answer in {START_TIMEOUT:g} s: "
                                   f"{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


def _stac_api(postgres: PostgresServer) -> Iterator[StacApiServer]:
    require(_postgis_available(postgres), "PostGIS not found (Debian package postgresql-15-postgis-3)")
    server = StacApiServer(postgres, postgres.create_database())
    server.migrate()
    server.start()
    yield server
    server.stop()
    server.log.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def stac_api(postgres_server: PostgresServer) -> Iterator[StacApiServer]:
    yield from _stac_api(postgres_server)


@pytest.fixture
def private_stac_api(postgres_server: PostgresServer) -> Iterator[StacApiServer]:
    """A STAC API of this test's own, which it may stop and start again."""
    yield from _stac_api(postgres_server)
