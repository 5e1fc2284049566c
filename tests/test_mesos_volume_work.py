"""The framework's persistent-volume decisions, without a master: what it does with offers, operation
statuses and time (``mesos_backend/mesos/volumes.py``)."""

from __future__ import annotations

import json

from mesos_backend import MemoryState, PersistentVolume, Resources, TaskSpec, TaskState
from mesos_backend.mesos.volumes import STATE_PREFIX, VolumeWork, volume_resource

VOLUME = PersistentVolume("v1", "data", 64, Resources(0.5, 32, 0))


def offer(offer_id: str, agent: str = "A", *, unreserved: float = 1000, volume: bool = False) -> dict:
    resources = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "*"},
                 {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024.0}, "role": "*"},
                 {"name": "disk", "type": "SCALAR", "scalar": {"value": unreserved}, "role": "*"}]
    if volume:
        resources.append(volume_resource(VOLUME, "wps", "alice"))
    return {"id": {"value": offer_id}, "agent_id": {"value": agent}, "hostname": agent, "resources": resources,
            "allocation_info": {"role": "wps"}}


def operation(kind: str, timeout: float = 60) -> TaskSpec:
    return TaskSpec(f"job.{kind}.0.1", ["mesos-volume", kind, "v1"], Resources(0, 0), timeout=timeout,
                    volume=VOLUME, volume_operation=kind)


def work() -> tuple[VolumeWork, MemoryState]:
    state = MemoryState()
    return VolumeWork(state, "wps", "alice", notice_after=1.0), state


def test_create_reserves_and_creates_on_an_offer_with_room_and_ends_when_the_agent_confirms_both():
    volumes, state = work()
    volumes.add(operation("create"), Resources(0, 0), now=0)
    decision = volumes.decide([offer("small", unreserved=10), offer("roomy", "B")], now=1)
    [(task_id, chosen, operations)] = decision.accepts
    assert chosen["id"]["value"] == "roomy" and [op["type"] for op in operations] == ["RESERVE", "CREATE"]
    assert {r["name"]: r["scalar"]["value"] for r in operations[0]["reserve"]["resources"]} == {
        "disk": 64, "cpus": 0.5, "mem": 32}
    assert json.loads(state.get(STATE_PREFIX + "v1"))["state"] == "creating"
    assert volumes.decide([offer("again")], now=2).accepts == [], "one ACCEPT, then the agent's word"
    assert volumes.on_status({"operation_id": operations[0]["id"], "state": "OPERATION_FINISHED"}) == []
    [done] = volumes.on_status({"operation_id": operations[1]["id"], "state": "OPERATION_FINISHED"})
    assert done.task_id == task_id and done.state is TaskState.FINISHED and done.exit_code == 0
    assert json.loads(state.get(STATE_PREFIX + "v1")) | {"at": 0} == {"agent": "B", "state": "created", "at": 0}


def test_create_finds_a_volume_that_is_offered_and_waits_for_one_known_to_be_in_use():
    volumes, state = work()
    volumes.add(operation("create"), Resources(0, 0), now=0)
    [started, finished] = volumes.decide([offer("has-it", volume=True)], now=1).events
    assert (started.state, finished.state) == (TaskState.STARTED, TaskState.FINISHED)
    state.put(STATE_PREFIX + "v1", json.dumps({"agent": "A", "state": "created"}))
    volumes.add(operation("create"), Resources(0, 0), now=2)
    assert volumes.decide([offer("elsewhere", "B")], now=3).accepts == [], "never made twice"


def test_a_failed_operation_ends_the_attempt_with_the_masters_message():
    volumes, state = work()
    volumes.add(operation("create"), Resources(0, 0), now=0)
    [(_, _, operations)] = volumes.decide([offer("o")], now=1).accepts
    [failed] = volumes.on_status({"operation_id": operations[1]["id"], "state": "OPERATION_ERROR",
                                  "message": "Persistence ID 'v1' is not unique"})
    assert failed.state is TaskState.FAILED and "CREATE of volume v1: OPERATION_ERROR: Persistence ID" in \
        failed.message
    assert state.get(STATE_PREFIX + "v1") is None


def test_an_unconfirmed_creation_is_forgotten_when_the_operation_times_out():
    volumes, state = work()
    state.put(STATE_PREFIX + "v1", json.dumps({"agent": "A", "state": "creating"}))  # left by a crash
    volumes.add(operation("create", timeout=5), Resources(0, 0), now=0)
    assert volumes.decide([offer("o")], now=1).accepts == []
    [failed] = volumes.expired(now=6)
    assert failed.state is TaskState.FAILED and "no offer held room for it within 5 s" in failed.message
    assert state.get(STATE_PREFIX + "v1") is None
    volumes.add(operation("create"), Resources(0, 0), now=7)
    assert len(volumes.decide([offer("o")], now=8).accepts) == 1, "the next attempt makes it"


def test_destroy_waits_for_the_volume_and_unreserves_what_the_offer_holds_of_its_reservation():
    volumes, state = work()
    volumes.add(operation("destroy"), Resources(0, 0), now=0)
    assert volumes.decide([offer("without")], now=1).accepts == []
    with_volume = offer("with", volume=True)
    with_volume["resources"].append({"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.25}, "role": "wps",
                                     "reservation": {"principal": "alice"}})
    [(_, _, operations)] = volumes.decide([with_volume], now=2).accepts
    assert [op["type"] for op in operations] == ["DESTROY", "UNRESERVE"]
    assert {r["name"]: r["scalar"]["value"] for r in operations[1]["unreserve"]["resources"]} == {
        "disk": 64, "cpus": 0.25}
    for op in operations:
        events = volumes.on_status({"operation_id": op["id"], "state": "OPERATION_FINISHED"})
    assert events[0].state is TaskState.FINISHED
    volumes.add(operation("destroy"), Resources(0, 0), now=3)
    [_, again] = volumes.decide([], now=4).events
    assert again.state is TaskState.FINISHED and "removed already" in again.message


def test_tasks_on_a_volume_go_one_a_round_to_the_offer_that_carries_it():
    volumes, _ = work()
    for n in range(2):
        volumes.add(TaskSpec(f"t{n}", ["true"], Resources(0.5, 64), volume=VOLUME), Resources(0.5, 64), now=n)
    decision = volumes.decide([offer("plain", "B"), offer("with", volume=True)], now=2)
    [launch] = decision.launches
    assert launch.spec.task_id == "t0" and launch.offer["id"]["value"] == "with"
    assert launch.resources[-1]["disk"]["persistence"]["id"] == "v1"
    assert decision.used == {"with"}
    assert volumes.ids() == {"t1"}


def test_a_creation_killed_after_its_accept_was_sent_still_records_what_became_of_the_volume():
    volumes, state = work()
    volumes.add(operation("create"), Resources(0, 0), now=0)
    [(task_id, _, operations)] = volumes.decide([offer("o")], now=1).accepts
    assert volumes.remove(task_id) and volumes.ids() == set()  # killed: its attempt ends at once
    for op in operations:
        assert volumes.on_status({"operation_id": op["id"], "state": "OPERATION_FINISHED"}) == []
    assert json.loads(state.get(STATE_PREFIX + "v1"))["state"] == "created"  # known, so never made twice
    volumes.add(operation("create"), Resources(0, 0), now=2)
    [_, finished] = volumes.decide([offer("has-it", volume=True)], now=3).events
    assert finished.state is TaskState.FINISHED


def test_a_killed_creation_that_the_master_refused_leaves_the_volume_unknown_for_the_next_attempt():
    volumes, state = work()
    volumes.add(operation("create"), Resources(0, 0), now=0)
    [(task_id, _, operations)] = volumes.decide([offer("o")], now=1).accepts
    volumes.remove(task_id)
    assert volumes.on_status({"operation_id": operations[1]["id"], "state": "OPERATION_ERROR"}) == []
    assert state.get(STATE_PREFIX + "v1") is None
    volumes.add(operation("create"), Resources(0, 0), now=2)
    assert len(volumes.decide([offer("o")], now=3).accepts) == 1, "made by the next attempt, not waited for"


def test_a_task_waiting_for_its_volume_says_why_once_per_reason():
    volumes, state = work()
    volumes.add(TaskSpec("t0", ["true"], Resources(0.5, 64), volume=VOLUME), Resources(0.5, 64), now=0)
    assert volumes.decide([offer("plain")], now=0.5).events == [], "not at once: an offer may carry it soon"
    [notice] = volumes.decide([offer("plain")], now=2).events
    assert notice.state is TaskState.NOTICE and notice.task_id == "t0"
    assert "this framework has not created it" in notice.message
    assert volumes.decide([offer("plain")], now=3).events == [], "the same reason is not told again"
    state.put(STATE_PREFIX + "v1", json.dumps({"agent": "A", "state": "created"}))
    [moved] = volumes.decide([offer("plain", "B")], now=4).events
    assert "on agent A: another task uses it, or the agent is away" in moved.message
    assert volumes.decide([offer("with", volume=True)], now=5).launches
