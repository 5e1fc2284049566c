"""The protobuf validator accepts what a Mesos master accepts and refuses what it refuses."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from mesos_backend.testing import proto
from tests.conftest import require


@pytest.fixture(autouse=True)
def _needs_protoc() -> None:
    require(proto.available(), "protoc or the mesos-go proto files are missing (Debian packages protobuf-compiler, "
                               "golang-github-mesos-mesos-go-dev, golang-github-gogo-protobuf-dev)")


FRAMEWORK_INFO = {
    "user": "wps",
    "name": "wps-gateway",
    "failover_timeout": 604800.0,
    "checkpoint": True,
    "capabilities": [{"type": "PARTITION_AWARE"}],
}
SUBSCRIBE = {"type": "SUBSCRIBE", "subscribe": {"framework_info": FRAMEWORK_INFO}}
TASK_INFO: dict[str, Any] = {
    "name": "ndvi-42",
    "task_id": {"value": "job-42"},
    "agent_id": {"value": "agent-1"},
    "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.5}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}},
    ],
    "command": {
        "shell": False,
        "value": "/opt/processors/ndvi",
        "arguments": ["ndvi", "--input", "/data/in.tif"],
        "environment": {"variables": [{"name": "JOB_ID", "value": "42"}]},
    },
    "container": {
        "type": "MESOS",
        "mesos": {"image": {"type": "DOCKER", "docker": {"name": "repo/ndvi:1.0"}, "cached": True}},
        "volumes": [{"container_path": "/aux", "host_path": "/data/aux", "mode": "RO"}],
    },
    "kill_policy": {"grace_period": {"nanoseconds": 30_000_000_000}},
    "labels": {"labels": [{"key": "job", "value": "42"}]},
}
ACCEPT = {
    "framework_id": {"value": "fw-1"},
    "type": "ACCEPT",
    "accept": {
        "offer_ids": [{"value": "offer-1"}],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [TASK_INFO]}}],
        "filters": {"refuse_seconds": 5.0},
    },
}
MASTER_INFO = {"id": "master-1", "ip": 16777343, "port": 5050, "pid": "master@127.0.0.1:5050",
               "hostname": "localhost", "version": "1.11.0",
               "address": {"hostname": "localhost", "ip": "127.0.0.1", "port": 5050}}
SUBSCRIBED = {"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "fw-1"},
                                                   "heartbeat_interval_seconds": 15.0, "master_info": MASTER_INFO}}
OFFERS = {"type": "OFFERS", "offers": {"offers": [{
    "id": {"value": "offer-1"},
    "framework_id": {"value": "fw-1"},
    "agent_id": {"value": "agent-1"},
    "hostname": "agent1.example.org",
    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 8}},
                  {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 32000}]}}],
    "attributes": [{"name": "storage", "type": "TEXT", "text": {"value": "geofarm-xfs"}}],
}]}}
UPDATE = {"type": "UPDATE", "update": {"status": {
    "task_id": {"value": "job-42"},
    "state": "TASK_RUNNING",
    "source": "SOURCE_EXECUTOR",
    "agent_id": {"value": "agent-1"},
    "timestamp": 1700000000.5,
    "uuid": base64.b64encode(bytes(range(16))).decode(),
}}}


def changed(document: dict[str, Any], path: tuple[str | int, ...], value: Any = None, delete: bool = False) -> dict:
    """A deep copy of ``document`` with one nested item replaced or deleted."""
    result = copy.deepcopy(document)
    parent = result
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return result


@pytest.mark.parametrize("call", [SUBSCRIBE, ACCEPT], ids=["subscribe", "accept-launch"])
def test_valid_calls_pass(call: dict) -> None:
    proto.validate_call(call)


@pytest.mark.parametrize("event", [SUBSCRIBED, OFFERS, UPDATE], ids=["subscribed", "offers", "update"])
def test_valid_events_pass(event: dict) -> None:
    proto.validate_event(event)


def test_text_and_bytes_bodies_are_accepted() -> None:
    proto.validate_call(json.dumps(SUBSCRIBE))
    proto.validate_event(json.dumps(UPDATE).encode())


def test_any_message_by_name() -> None:
    proto.validate_message("mesos.TaskInfo", TASK_INFO)
    proto.validate_message("mesos.MasterInfo", MASTER_INFO)
    assert proto.parse_message("mesos.MasterInfo", MASTER_INFO).address.port == 5050


TASK = ("accept", "operations", 0, "launch", "task_infos", 0)
BAD_CALLS = {  # name: (call, what the error must mention)
    "unknown-field": (changed(SUBSCRIBE, ("subscribe", "framework_infos"), FRAMEWORK_INFO), "framework_infos"),
    "wrong-type": (changed(ACCEPT, (*TASK, "resources", 0, "scalar", "value"), "lots"), "lots"),
    "bad-enum": (changed(ACCEPT, ("accept", "operations", 0, "type"), "LAUNCHH"), "LAUNCHH"),
    "enum-as-number": (changed(ACCEPT, ("type",), 3), "must be a name"),
    "camel-case-name": (changed(ACCEPT, ("accept", "offerIds"), [{"value": "o"}]), "offer_ids"),
    "task-without-name": (changed(ACCEPT, (*TASK, "name"), delete=True), r"task_infos\[0\]\.name"),
    "framework-without-user": (changed(SUBSCRIBE, ("subscribe", "framework_info", "user"), delete=True),
                               "subscribe.framework_info.user"),
}


@pytest.mark.parametrize(("call", "match"), BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_invalid_calls_are_refused(call: dict, match: str) -> None:
    with pytest.raises(proto.ProtocolError, match=match):
        proto.validate_call(call)


def test_bad_task_state_is_refused() -> None:
    with pytest.raises(proto.ProtocolError, match="TASK_RUNNIN"):
        proto.validate_event(changed(UPDATE, ("update", "status", "state"), "TASK_RUNNIN"))


def test_master_info_without_ip_is_refused() -> None:
    with pytest.raises(proto.ProtocolError, match="required fields missing: ip"):
        proto.validate_message("mesos.MasterInfo", changed(MASTER_INFO, ("ip",), delete=True))


@pytest.mark.parametrize("body", ["not json", "[1, 2]", b"\xff", '{"type": "SUBSCRIBE", "type": "TEARDOWN"}'])
def test_malformed_bodies_are_refused(body: str | bytes) -> None:
    with pytest.raises(proto.ProtocolError):
        proto.validate_call(body)


def test_the_master_reads_calls_leniently_where_stout_is_lenient() -> None:
    from mesos_backend.testing.codec import read_message

    sloppy = changed(ACCEPT, ("accept", "offerIds"), [{"value": "o"}])
    sloppy = changed(sloppy, ("accept", "filters"), {"refuse_seconds": "2.5", "extra": None})
    sloppy = changed(sloppy, (*TASK, "command", "uris"), None)
    sloppy = changed(sloppy, (*TASK, "labels"), None)
    call, notes = read_message(proto.CALL, sloppy)
    assert call["accept"]["filters"] == {"refuse_seconds": 2.5}
    assert "uris" not in call["accept"]["operations"][0]["launch"]["task_infos"][0]["command"]
    assert any("offerIds" in note and "'offer_ids'" in note for note in notes)
    capability = changed(SUBSCRIBE, ("subscribe", "framework_info", "capabilities"), [{"type": "FUTURE_THING"}])
    call, notes = read_message(proto.CALL, capability)
    assert call["subscribe"]["framework_info"]["capabilities"] == [{}] and "FUTURE_THING" in notes[0]


@pytest.mark.parametrize(("call", "match"), [
    (changed(ACCEPT, (*TASK, "resources", 0, "type"), "SCALARR"), "Failed to find enum"),
    (changed(ACCEPT, (*TASK, "name"), 5), "number"),
    (changed(SUBSCRIBE, ("subscribe", "framework_info", "user"), delete=True), "subscribe.framework_info.user"),
    (changed(ACCEPT, ("accept", "filters"), [{"refuse_seconds": 1.0}]), "array"),
])
def test_the_master_refuses_what_stout_refuses(call: dict, match: str) -> None:
    from mesos_backend.testing.codec import CodecError, read_message

    with pytest.raises(CodecError, match=match):
        read_message(proto.CALL, call)
