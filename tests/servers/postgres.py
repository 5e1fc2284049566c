"""A real PostgreSQL server for the tests, on 127.0.0.1, in a temporary folder.

Started once per test session from Debian's ``postgresql`` binaries; each test
gets a fresh database. ``initdb`` refuses to run as root, so as root the
server runs as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, require

USER = "gateway"
PASSWORD = "s3cret-pw"


def _bin_dir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    run_as: str | None
    durable: bool = False  # commits survive the server being killed (fault tests stop it with -m immediate)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD)
        if self.run_as:
            os.chown(pwfile, pwd.getpwnam(self.run_as).pw_uid, -1)
        self._run("initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile), "-A", "scram-sha-256",
                  "-E", "UTF8", "--no-sync")
        self.resume()

    def resume(self) -> None:
        """Start the server on its existing data (after ``stop``: a database outage ends)."""
        # Fast by default: nothing here survives a machine crash. A process crash (stop -m immediate) keeps what
        # was committed only with synchronous_commit on: the fault tests' own servers are durable that way.
        commit = "on" if self.durable else "off"
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                   f"-c fsync=off -c synchronous_commit={commit} -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "-t", "60",
                  "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser (e.g. ``pg_terminate_backend``); its rows, if any."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname=database,
                             autocommit=True) as connection:
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    yield from _server()


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, which it may stop, restart and disturb (durable across those)."""
    yield from _server(durable=True)


def _server(durable: bool = False) -> Iterator[PostgresServer]:
    bin_dir = _bin_dir()
    require(bin_dir is not None, "PostgreSQL server binaries not found (Debian package postgresql)")
    run_as = "postgres" if os.geteuid() == 0 else None
    if run_as:
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            require(False, "running as root and there is no postgres user to run the server as")
    root = Path(tempfile.mkdtemp(prefix="wps-pg-"))
    server = PostgresServer(bin_dir, root, free_port(), run_as, durable)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        log = root / "log"
        detail = log.read_text() if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr.decode()} {detail}") from exc
    yield server
    try:
        server.stop()
    except subprocess.CalledProcessError:
        pass  # stopped by the test already
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.url(postgres_server.create_database())
