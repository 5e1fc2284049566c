"""``wps-gateway serve`` (or ``dispatch``) as its own process, the way an operator runs it: for tests
that kill it, signal it, or take its store away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from lxml import etree

from .conftest import free_port, gateway_environ

NS = {"wps": "http://www.opengis.net/wps/1.0.0", "ows": "http://www.opengis.net/ows/1.1"}


class GatewayProcess:
    """One gateway process on 127.0.0.1; ``restarted()`` is the next one on the same port and store."""

    def __init__(self, data_dir: Path, sample_data: Path, command: str = "serve", port: int | None = None,
                 env: dict[str, str] | None = None, **extra: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/wps"
        self.command = command
        self.env = env or {**os.environ, **gateway_environ(data_dir, sample_data, self.url, **extra)}
        self.data_dir, self.sample_data = data_dir, sample_data
        self.log = data_dir.parent / f"gateway-{self.port}-{command}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> GatewayProcess:
        args = [sys.executable, "-m", "wps_gateway.cli", self.command]
        if self.command == "serve":
            args += ["--port", str(self.port)]
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        if wait and self.command == "serve":
            self.wait_until(self.healthy, 60, "the gateway answering /health")
        return self

    def restarted(self, **extra: str) -> GatewayProcess:
        """Another process with the same settings (plus ``extra``), port and store."""
        return GatewayProcess(self.data_dir, self.sample_data, self.command, self.port, {**self.env, **extra})

    def healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5):
                return True
        except urllib.error.HTTPError:
            return True  # it answers (perhaps 503: the store is down)
        except OSError:
            return False

    def wait_until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached in {timeout:g} s:\n{self.tail()}")
            time.sleep(0.1)

    def logged(self, text: str) -> bool:
        return self.log.exists() and text in self.log.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def get(self, url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    def submit(self, data_inputs: str) -> str:
        """An asynchronous Execute of the test processor; its status location."""
        query = urllib.parse.urlencode({
            "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "sleepy-squares",
            "DataInputs": data_inputs, "storeExecuteResponse": "true", "status": "true"})
        return etree.fromstring(self.get(f"{self.url}?{query}")).get("statusLocation")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)

    def exited(self, timeout: float) -> int:
        """Wait for the process to end by itself; its exit code."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the gateway did not exit in {timeout:g} s:\n{self.tail()}") from None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_final(gateway: GatewayProcess, status_location: str, timeout: float = 90) -> etree._Element:
    """Poll a WPS 1.0.0 status document until the job succeeded or failed."""
    path = status_location.split("/wps/status/", 1)[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = etree.fromstring(gateway.get(f"http://127.0.0.1:{gateway.port}/wps/status/{path}"))
        if doc.find("wps:Status/wps:ProcessSucceeded", NS) is not None or \
                doc.find("wps:Status/wps:ProcessFailed", NS) is not None:
            return doc
        time.sleep(0.2)
    raise AssertionError(f"job not final after {timeout} s:\n{gateway.tail()}")


def active_and_standby(data_dir: Path, sample_data: Path) -> tuple[GatewayProcess, GatewayProcess]:
    """Two ``wps-gateway dispatch`` processes on one store: the first active, the second standing by."""
    first = GatewayProcess(data_dir, sample_data, command="dispatch").start()
    second = GatewayProcess(data_dir, sample_data, command="dispatch", env=first.env)
    try:
        first.wait_until(lambda: first.logged("dispatcher active"), 60, "the first dispatcher active")
        second.start()
        second.wait_until(lambda: second.logged("standing by"), 60, "the second one standing by")
    except BaseException:
        second.stop()
        first.stop()
        raise
    return first, second
