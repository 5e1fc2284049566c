"""The test master driven by a framework we did not write: the Go library Debian ships (mesos-go, JSON).

``tests/mesos_go/framework.go`` is built with Debian's ``golang-go`` against
``golang-github-mesos-mesos-go-dev`` (GOPATH mode, offline). It sends what
that library sends (``null`` for empty fields, its own headers), follows a
standby's 307 itself, and decodes every event with the library's codec, so a
test master that answered in a way a real master would not breaks it.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from mesos_backend.testing import proto

from .conftest import require
from .mesos_support import check_master, start_master

SOURCE = Path(__file__).resolve().parent / "mesos_go" / "framework.go"
GOPATH = Path("/usr/share/gocode")
LIBRARY = GOPATH / "src/github.com/mesos/mesos-go/api/v1/lib"


@pytest.fixture(scope="session")
def go_framework(tmp_path_factory) -> Path:
    require(shutil.which("go") is not None and LIBRARY.is_dir(),
            "Debian's golang-go and golang-github-mesos-mesos-go-dev are not installed")
    require(proto.available(), "protoc and the Mesos protos are not installed")
    binary = tmp_path_factory.mktemp("go") / "framework"
    cache = Path(os.environ.get("GOCACHE") or Path(tempfile.gettempdir()) / "wps-gateway-go-build")
    env = dict(os.environ, GOPATH=str(GOPATH), GO111MODULE="off", GOFLAGS="", GOCACHE=str(cache),
               CGO_ENABLED="0")
    subprocess.run(["go", "build", "-o", str(binary), str(SOURCE)], env=env, check=True, capture_output=True,
                   timeout=600)
    return binary


def run(binary: Path, master_url: str, scenario: str) -> list[dict]:
    done = subprocess.run([str(binary), "-master", master_url, "-user", getpass.getuser(), "-scenario", scenario,
                           "-timeout", "60s"], capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, (lines, done.stderr[-2000:])
    return lines


def test_a_mesos_go_framework_runs_kills_reconciles_and_tears_down(tmp_path, go_framework):
    master = start_master(tmp_path / "mesos", standby=True)
    try:
        lines = run(go_framework, master.standby.url, "basic")  # the library follows the 307 to the leader
        events = [line.get("event") for line in lines]
        assert events[:2] == ["SUBSCRIBED", "HEARTBEAT"]
        assert lines[0]["master"] == master.leader.port
        # TEARDOWN makes the master close the stream, so the reader may report its end after "done".
        outcome = [line for line in lines if "stream_end" not in line][-1]
        assert outcome == {"done": True, "final": {"ok": "TASK_FINISHED", "fails": "TASK_FAILED",
                                                   "long": "TASK_KILLED"}}
        updates = [line for line in lines if line.get("event") == "UPDATE"]
        failed = next(u for u in updates if u["task"] == "fails" and u["state"] == "TASK_FAILED" and u["acked"])
        assert failed["message"] == "Command exited with status 3"
        assert any(u["task"] == "long" and u["state"] == "TASK_KILLING" for u in updates)
        reconciled = [u for u in updates if u["reason"] == "REASON_RECONCILIATION"]
        assert reconciled and not any(u["acked"] for u in reconciled)
        framework_id = lines[0]["framework_id"]
        assert framework_id in master.cluster.removed  # torn down
        assert not any(record.agent.tasks for record in master.cluster.agents.values())
    finally:
        master.stop()
    check_master(master)
    assert [note for name, note in master.cluster.call_notes if name == "mesos-go-test"] == []


def test_a_second_mesos_go_subscription_fails_the_first_over(tmp_path, go_framework):
    master = start_master(tmp_path / "mesos", agents=2)
    try:
        lines = run(go_framework, master.leader.url, "failover")
        assert {"event": "ERROR", "stream": "first", "message": "Framework failed over"} in lines
        second = [line for line in lines if line.get("stream") == "second"]
        assert [line["event"] for line in second] == ["SUBSCRIBED", "OFFERS"]
        assert second[0]["framework_id"] == lines[0]["framework_id"]
        assert second[1]["count"] == 2, "the old subscription's offers were rescinded and offered again"
    finally:
        master.stop()
    check_master(master)


def test_a_mesos_go_framework_reserves_creates_uses_destroys_and_unreserves_a_volume(tmp_path, go_framework):
    master = start_master(tmp_path / "mesos", agents=1)
    try:
        lines = run(go_framework, master.leader.url, "volume")
        assert lines[-1] == {"done": True}
        updates = [(line["task"], line["state"]) for line in lines if line.get("event") == "UPDATE"]
        assert ("writer", "TASK_FINISHED") in updates and ("reader", "TASK_FINISHED") in updates
        phases = [(line["phase"], line["holds"]) for line in lines if line.get("event") == "OFFER"]
        assert ("read", "volume") in phases and ("released", "unreserved") in phases
        agent = next(iter(master.cluster.agents.values())).agent
        assert not agent.volume_path("wps", "go-volume").exists()
        assert "(" not in master.cluster.snapshot()["agents"][0]["resources"], "nothing stays reserved"
    finally:
        master.stop()
    check_master(master)
    assert [note for name, note in master.cluster.call_notes if name == "mesos-go-test"] == []
