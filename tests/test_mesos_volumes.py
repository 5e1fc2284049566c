"""Dynamic reservations and persistent volumes on the Mesos test master, driven by a bare HTTP client.

RESERVE, CREATE, DESTROY and UNRESERVE as a real master handles them (the
reference, Mesos's reservation and persistent-volume documents and its
operation validation): applied in order within one ACCEPT, refused ones
dropped (OPERATION_ERROR when they carry an id), valid ones confirmed by the
agent with a reliable OPERATION_FINISHED, and the agent's resources changed
for good (later offers show the reservation and the volume, a task that uses
the volume finds what an earlier one left there).
"""

from __future__ import annotations

import getpass

import pytest

from mesos_backend.testing import proto

from .conftest import require
from .mesos_support import RawFramework, check_master, start_master

ROLE, PRINCIPAL = "wps", "alice"


@pytest.fixture(autouse=True)
def _protos():
    require(proto.available(), "protoc and the Mesos protos (golang-github-mesos-mesos-go-dev) are not installed")


@pytest.fixture
def master(tmp_path):
    master = start_master(tmp_path / "mesos", agents=1)
    yield master
    master.stop()
    check_master(master)


@pytest.fixture
def framework(master):
    info = {"user": getpass.getuser(), "name": "raw-volumes", "failover_timeout": 30.0, "principal": PRINCIPAL,
            "roles": [ROLE], "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}]}
    raw = RawFramework(master.leader.url, info)
    assert raw.subscribe()["type"] == "SUBSCRIBED"
    yield raw
    raw.close()


def scalar(name: str, value: float, *, reserved: bool = True, principal: str | None = PRINCIPAL,
           role: str = ROLE, volume: str | None = None) -> dict:
    item: dict = {"name": name, "type": "SCALAR", "scalar": {"value": value}, "allocation_info": {"role": ROLE}}
    if reserved:
        item["role"] = role
        item["reservation"] = {"principal": principal} if principal else {}
    else:
        item["role"] = "*"
    if volume:
        item["disk"] = {"persistence": {"id": volume, "principal": PRINCIPAL},
                        "volume": {"container_path": "data", "mode": "RW"}}
    return item


def accept(offer: dict, *operations: dict, refuse: float = 0.0) -> dict:
    return {"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": list(operations),
                                         "filters": {"refuse_seconds": refuse}}}


def operation(kind: str, resources: list[dict], op_id: str | None = None) -> dict:
    field, key = {"RESERVE": ("reserve", "resources"), "UNRESERVE": ("unreserve", "resources"),
                  "CREATE": ("create", "volumes"), "DESTROY": ("destroy", "volumes")}[kind]
    body = {"type": kind, field: {key: resources}}
    return {**body, "id": {"value": op_id}} if op_id else body


def shell_task(offer: dict, task_id: str, command: str, *extra: dict) -> dict:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "resources": [scalar("cpus", 0.5), scalar("mem", 32), *extra],
            "command": {"value": command}}


def reservation(disk: float = 64) -> list[dict]:
    """What a task on the volume needs reserved: its cpus and mem, and the volume's disk."""
    return [scalar("disk", disk), scalar("cpus", 0.5), scalar("mem", 32)]


def launch(*tasks: dict) -> dict:
    return {"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}


def operation_status(framework: RawFramework, op_id: str, ack: bool = True) -> dict:
    while True:
        status = framework.next("UPDATE_OPERATION_STATUS")["update_operation_status"]["status"]
        if status["operation_id"]["value"] != op_id:
            continue
        if ack and "uuid" in status:
            answer = framework.call({"type": "ACKNOWLEDGE_OPERATION_STATUS", "acknowledge_operation_status": {
                "agent_id": status["agent_id"], "operation_id": status["operation_id"],
                "uuid": status["uuid"]["value"]}})
            assert answer.status_code == 202
        return status


def offer_with(framework: RawFramework, predicate, declined: float = 0.0) -> dict:
    """The next offer that satisfies ``predicate``; others are declined at once."""
    while True:
        for offer in framework.offers():
            if predicate(offer):
                return offer
            framework.call({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]],
                                                           "filters": {"refuse_seconds": declined}}})


def has_volume(offer: dict, volume: str = "v1") -> bool:
    return any(((r.get("disk") or {}).get("persistence") or {}).get("id") == volume for r in offer["resources"])


def reserved(offer: dict) -> list[dict]:
    return [r for r in offer["resources"] if "reservation" in r]


def test_reserve_create_run_on_the_volume_then_destroy_and_unreserve(master, framework):
    offer = framework.offers()[0]
    assert not reserved(offer)
    disk = reservation()
    volume = scalar("disk", 64, volume="v1")
    writes = shell_task(offer, "writes", "echo mapped > data/part.txt", volume)
    answer = framework.call(accept(offer, operation("RESERVE", disk, "reserve-1"),
                                   operation("CREATE", [volume], "create-1"), launch(writes)))
    assert answer.status_code == 202
    for op_id in ("reserve-1", "create-1"):  # the agent confirms each, reliably (with a uuid to acknowledge)
        status = operation_status(framework, op_id)
        assert status["state"] == "OPERATION_FINISHED" and status["uuid"]["value"]
        assert status["agent_id"] == offer["agent_id"] and status["converted_resources"]
    assert framework.update("writes", "TASK_FINISHED")["state"] == "TASK_FINISHED"

    # Later offers carry the reservation and the volume, in the pre-refinement shape.
    again = offer_with(framework, has_volume)
    kept = {r["name"]: r for r in reserved(again)}
    assert kept["disk"]["reservation"] == {"principal": PRINCIPAL} and kept["disk"]["role"] == ROLE
    assert kept["disk"]["disk"]["volume"] == {"container_path": "data", "mode": "RW"}
    assert {r["name"] for r in reserved(again)} == {"cpus", "mem", "disk"}
    reads = shell_task(again, "reads", "test \"$(cat data/part.txt)\" = mapped", volume)
    framework.call(accept(again, launch(reads)))
    assert framework.update("reads", "TASK_FINISHED")["state"] == "TASK_FINISHED"
    agent = master.cluster.agents[offer["agent_id"]["value"]].agent
    assert (agent.volume_path(ROLE, "v1") / "part.txt").read_text() == "mapped\n"

    last = offer_with(framework, has_volume)
    answer = framework.call(accept(last, operation("DESTROY", [volume], "destroy-1"),
                                   operation("UNRESERVE", disk, "unreserve-1")))
    assert answer.status_code == 202
    assert operation_status(framework, "destroy-1")["state"] == "OPERATION_FINISHED"
    assert operation_status(framework, "unreserve-1")["state"] == "OPERATION_FINISHED"
    free = offer_with(framework, lambda o: not reserved(o))
    assert sum(r["scalar"]["value"] for r in free["resources"] if r["name"] == "disk") == 10000
    assert not agent.volume_path(ROLE, "v1").exists()
    assert "(" not in master.cluster.snapshot()["agents"][0]["resources"], "nothing stays reserved"


def test_a_volume_in_use_is_not_offered_and_cannot_be_destroyed(master, framework):
    offer = framework.offers()[0]
    volume = scalar("disk", 64, volume="v1")
    sleeper = shell_task(offer, "sleeper", "sleep 30", volume)
    framework.call(accept(offer, operation("RESERVE", reservation()), operation("CREATE", [volume]),
                          launch(sleeper)))
    framework.update("sleeper", "TASK_RUNNING")
    seen = []
    for _ in range(3):  # three allocation rounds with the task running
        seen.append(framework.offers()[0])
        if len(seen) < 3:
            framework.call({"type": "DECLINE", "decline": {"offer_ids": [seen[-1]["id"]],
                                                           "filters": {"refuse_seconds": 0}}})
    assert not any(has_volume(o) for o in seen)
    later = seen[-1]
    framework.call(accept(later, operation("DESTROY", [volume], "destroy-early")))
    status = operation_status(framework, "destroy-early")
    assert status["state"] == "OPERATION_ERROR" and "uuid" not in status
    assert status["message"] == "Persistent volumes in use"
    framework.call({"type": "KILL", "kill": {"task_id": {"value": "sleeper"}, "agent_id": offer["agent_id"]}})
    framework.update("sleeper", "TASK_KILLED")
    assert has_volume(offer_with(framework, has_volume))


@pytest.mark.parametrize(("kind", "resources", "message"), [
    ("RESERVE", [scalar("disk", 8, principal="mallory")], "attempted by principal 'alice'"),
    ("RESERVE", [scalar("disk", 8, principal=None)], "no principal set in `ReservationInfo`"),
    ("RESERVE", [scalar("disk", 8, reserved=False)], "is not dynamically reserved"),
    ("RESERVE", [scalar("disk", 8, role="eo")], "is not the role 'wps'"),
    ("RESERVE", [scalar("disk", 100000)], "does not contain"),
    ("CREATE", [scalar("disk", 8, volume="v9")], "does not contain"),
    ("CREATE", [{**scalar("disk", 8, reserved=False), "disk": {"persistence": {"id": "v9"},
                                                               "volume": {"container_path": "d", "mode": "RW"}}}],
     "cannot be created from unreserved resources"),
    ("UNRESERVE", [scalar("disk", 8, reserved=False)], "is not dynamically reserved"),
    ("UNRESERVE", [scalar("disk", 8, volume="v9")], "cannot be unreserved directly"),
    ("DESTROY", [scalar("disk", 8, volume="v9")], "Persistent volumes not found"),
    ("DESTROY", [scalar("disk", 8)], "does not have DiskInfo"),
])
def test_invalid_operations_are_dropped_with_an_operation_error(framework, kind, resources, message):
    offer = framework.offers()[0]
    framework.call(accept(offer, operation(kind, resources, "bad")))
    status = operation_status(framework, "bad")
    assert status["state"] == "OPERATION_ERROR", status
    assert message in status["message"]
    assert "uuid" not in status, "the master's own word: nothing to acknowledge"


def test_a_dropped_operation_without_an_id_is_silent_and_the_launch_that_needed_it_fails(framework):
    offer = framework.offers()[0]
    volume = scalar("disk", 64, volume="v1")
    task = shell_task(offer, "needs-volume", "true", volume)
    framework.call(accept(offer, operation("RESERVE", [{**item, "reservation": {"principal": "mallory"}}
                                                       for item in reservation()]),
                          operation("CREATE", [volume]), launch(task)))
    kinds = []
    while True:  # the operations come before the launch: any word about them would come before its update
        event = framework.next("UPDATE", "UPDATE_OPERATION_STATUS")
        kinds.append(event["type"])
        if event["type"] == "UPDATE" and event["update"]["status"]["task_id"]["value"] == "needs-volume":
            status = event["update"]["status"]
            break
    assert status["state"] == "TASK_ERROR" and status["reason"] == "REASON_TASK_INVALID"
    assert "UPDATE_OPERATION_STATUS" not in kinds


def test_persistence_ids_are_unique_per_role_on_an_agent(framework):
    offer = framework.offers()[0]
    volume = scalar("disk", 16, volume="v1")
    framework.call(accept(offer, operation("RESERVE", [scalar("disk", 32)]), operation("CREATE", [volume], "first")))
    assert operation_status(framework, "first")["state"] == "OPERATION_FINISHED"
    again = offer_with(framework, has_volume)
    framework.call(accept(again, operation("CREATE", [scalar("disk", 16, volume="v1")], "second")))
    status = operation_status(framework, "second")
    assert status["state"] == "OPERATION_ERROR" and "Persistence ID 'v1' is not unique" in status["message"]


def test_an_unacknowledged_operation_status_is_resent_and_reconciled(master, framework):
    offer = framework.offers()[0]
    framework.call(accept(offer, operation("RESERVE", [scalar("disk", 8)], "keep-telling")))
    first = operation_status(framework, "keep-telling", ack=False)
    resent = operation_status(framework, "keep-telling", ack=True)  # the agent's retry (FAST: after 1 s)
    assert resent["uuid"] == first["uuid"] and resent["state"] == "OPERATION_FINISHED"
    framework.call({"type": "RECONCILE_OPERATIONS", "reconcile_operations": {"operations": [
        {"operation_id": {"value": "keep-telling"}, "agent_id": offer["agent_id"]},
        {"operation_id": {"value": "never-sent"}}]}})
    answers = {s["operation_id"]["value"]: s for s in (operation_status(framework, name, ack=False)
                                                        for name in ("keep-telling", "never-sent"))}
    assert answers["keep-telling"]["state"] == "OPERATION_FINISHED" and "uuid" not in answers["keep-telling"]
    assert answers["never-sent"]["state"] == "OPERATION_UNKNOWN"


def test_reservations_and_volumes_survive_an_agent_restart_and_a_master_failover(tmp_path):
    master = start_master(tmp_path / "mesos", agents=1, standby=True)
    info = {"user": getpass.getuser(), "name": "raw-volumes", "failover_timeout": 30.0, "principal": PRINCIPAL,
            "roles": [ROLE], "capabilities": [{"type": "MULTI_ROLE"}]}
    raw = RawFramework(master.leader.url, info)
    try:
        raw.subscribe()
        offer = raw.offers()[0]
        raw.call(accept(offer, operation("RESERVE", [scalar("disk", 16)]),
                        operation("CREATE", [scalar("disk", 16, volume="v1")], "made")))
        operation_status(raw, "made")
        agent_id = offer["agent_id"]["value"]
        master.cluster.stop_agent(agent_id)
        master.cluster.start_agent(agent_id)
        new_leader = master.fail_over()
        raw.close()
        again = RawFramework(new_leader.url, info)
        again.subscribe(raw.framework_id)
        assert has_volume(offer_with(again, has_volume))
        again.close()
    finally:
        master.stop()
    check_master(master)
