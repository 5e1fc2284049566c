"""A real ZooKeeper server for the tests, standalone on 127.0.0.1, in a temporary folder.

Started once per test session from the jars of Debian's ``zookeeperd``. Debian's ``zookeeper.jar`` names
all its dependencies (zookeeper-jute, netty, jetty, jackson, slf4j-api, commons-*, metrics-core, ...) in
its manifest ``Class-Path``, which is why ``/etc/zookeeper/conf/environment`` puts only that jar on the
class path; we do the same and add an SLF4J binding so the server log lands in the temporary folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port, require

JAVA_DIR = Path(os.environ.get("ZOOKEEPER_JAVA_DIR", "/usr/share/java"))
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
START_TIMEOUT = 60.0


def four_letter_word(port: int, word: str, timeout: float = 2.0) -> str:
    """Send a ZooKeeper four-letter command (``ruok``, ``srvr``) and return the answer, "" if none."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
            connection.sendall(word.encode())
            chunks = []
            while chunk := connection.recv(4096):
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


@dataclass
class ZooKeeperServer:
    java: str
    root: Path
    port: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def hosts(self) -> str:
        """The connection string for kazoo or a ``zk://`` URL."""
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "zookeeper.log"

    def _write_config(self) -> Path:
        config = self.root / "zoo.cfg"
        config.write_text("\n".join([
            "tickTime=500",  # short session timeouts allowed (from 2 ticks), so expiry tests are quick
            "maxSessionTimeout=60000",  # and long ones, for sessions that must outlive a restart on a busy machine
            f"dataDir={self.root / 'data'}",
            f"clientPort={self.port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,stat,mntr",
            "maxClientCnxns=0",
            "",
        ]))
        return config

    def start(self) -> None:
        classpath = os.pathsep.join(str(jar) for jar in (JAVA_DIR / "zookeeper.jar", JAVA_DIR / "slf4j-simple.jar")
                                    if jar.exists())
        command = [self.java, "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                   "-Dzookeeper.admin.enableServer=false", "-cp", classpath, MAIN_CLASS, str(self._write_config())]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while "Mode: standalone" not in four_letter_word(self.port, "srvr"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ZooKeeper did not start on port {self.port}:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server; its data (and so the sessions and ephemeral nodes) stay for a restart."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port and data, as a ZooKeeper outage does."""
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def zookeeper_server() -> Iterator[ZooKeeperServer]:
    java = shutil.which("java")
    require(java is not None, "java not found (Debian package default-jre-headless)")
    require((JAVA_DIR / "zookeeper.jar").is_file(), f"{JAVA_DIR}/zookeeper.jar not found (Debian package zookeeper)")
    root = Path(tempfile.mkdtemp(prefix="wps-zk-"))
    server = ZooKeeperServer(java, root, free_port())
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)
