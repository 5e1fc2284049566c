"""The test master as a cluster: offers shared between frameworks, filters, roles and reservations, agents that
stop, come back or die, masters that hand over to each other, authentication, and the standalone process.

Driven by a bare HTTP client (no code of ours), operated from outside over the master's HTTP endpoints.
"""

from __future__ import annotations

import getpass
import signal
import subprocess
import sys
import time

import httpx
import pytest

from mesos_backend.testing import proto
from mesos_backend.testing.cluster import MasterFlags

from .conftest import free_port, require
from .mesos_support import API, JSON, RawFramework, check_master, launch, start_master, task_info


@pytest.fixture(autouse=True)
def _protos():
    require(proto.available(), "protoc and the Mesos protos (golang-github-mesos-mesos-go-dev) are not installed")


def operate(master, path: str) -> dict:
    """An operator's action on a running master (``agents/<id>/stop`` ...)."""
    answer = httpx.post(f"{master.url}/testing/{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def agents_offered(raw: RawFramework, seconds: float, enough: int = 0) -> set[str]:
    """The agents offered to ``raw`` in its next offers and in those that follow within ``seconds``, or until
    ``enough`` agents were seen (each offer declined at once, without a filter)."""
    seen: set[str] = set()
    deadline = None
    while (deadline is None or time.monotonic() < deadline) and (not enough or len(seen) < enough):
        try:
            offers = raw.offers(timeout=10 if deadline is None else max(0.05, deadline - time.monotonic()))
        except AssertionError:
            break
        deadline = deadline or time.monotonic() + seconds
        seen |= {o["agent_id"]["value"] for o in offers}
        raw.call({"type": "DECLINE", "decline": {"offer_ids": [o["id"] for o in offers],
                                                 "filters": {"refuse_seconds": 0}}})
    return seen


# -- the allocator ------------------------------------------------------------------


def test_frameworks_share_the_agents(mesos_master):
    first = RawFramework(mesos_master.leader.url)
    first.subscribe()
    for offer in first.offers():  # one 1-cpu task per agent; the rest refused for an hour
        first.call(launch(offer, task_info(offer, f"a-{offer['agent_id']['value']}", cpus=1,
                                           argv=["sleep", "30"]), refuse=3600))
    second = RawFramework(mesos_master.leader.url, dict(first.info, name="second"))
    second.subscribe()
    offers = second.offers()
    assert len(offers) == 3 and all(
        sum(r["scalar"]["value"] for r in o["resources"] if r["name"] == "cpus") == 1 for o in offers)
    first.close()
    second.close()


def test_the_framework_holding_least_is_offered_first(mesos_master):
    greedy = RawFramework(mesos_master.leader.url)
    greedy.subscribe()
    modest = RawFramework(mesos_master.leader.url, dict(greedy.info, name="modest"))
    modest.subscribe()
    offered = {}
    deadline = time.monotonic() + 10
    while len(offered) < 3 and time.monotonic() < deadline:  # whoever gets an agent first runs a task on it
        for raw in (greedy, modest):
            try:
                offers = raw.offers(timeout=0.2)
            except AssertionError:
                continue
            for offer in offers:
                offered[offer["agent_id"]["value"]] = raw.info["name"]
                raw.call(launch(offer, task_info(offer, f"t-{offer['agent_id']['value']}", cpus=2,
                                                 argv=["sleep", "30"]), refuse=3600))
    assert sorted(offered.values()) in (["modest", "raw", "raw"], ["modest", "modest", "raw"]), offered
    greedy.close()
    modest.close()


def test_filters_hold_the_declined_resources_not_the_agent(mesos_master):
    raw = RawFramework(mesos_master.leader.url)
    raw.subscribe()
    offers = raw.offers()
    busy, others = offers[0], offers[1:]
    raw.call({"type": "DECLINE", "decline": {"offer_ids": [o["id"] for o in others],
                                             "filters": {"refuse_seconds": 3600}}})
    raw.call(launch(busy, task_info(busy, "short", cpus=1, argv=["sleep", "0.5"]), refuse=3600))
    raw.update("short", "TASK_FINISHED")
    again = raw.offers()  # what is free now (2 cpus) is more than what was refused (1 cpu)
    assert [o["agent_id"] for o in again] == [busy["agent_id"]]
    assert sum(r["scalar"]["value"] for r in again[0]["resources"] if r["name"] == "cpus") == 2
    raw.close()


def test_a_negative_refuse_seconds_is_the_default_filter(mesos_master):
    raw = RawFramework(mesos_master.leader.url)
    raw.subscribe()
    offers = raw.offers()
    held, rest = offers[0]["agent_id"]["value"], offers[1:]
    raw.call({"type": "DECLINE", "decline": {"offer_ids": [offers[0]["id"]], "filters": {"refuse_seconds": -1}}})
    raw.call({"type": "DECLINE", "decline": {"offer_ids": [o["id"] for o in rest], "filters": {"refuse_seconds": 0}}})
    soon = agents_offered(raw, 1.0)  # the other agents come back at every allocation
    assert soon == {o["agent_id"]["value"] for o in rest}, "a negative filter is not forever, nor nothing"
    deadline = time.monotonic() + 30  # after the default 5 s it comes back
    while held not in agents_offered(raw, 0.5):
        assert time.monotonic() < deadline, "the declined agent never came back"
    raw.close()


def test_suppressed_roles_get_no_offers_until_revived(mesos_master):
    quiet = RawFramework(mesos_master.leader.url, suppressed_roles=["*"])
    quiet.subscribe()
    busy = RawFramework(mesos_master.leader.url, dict(quiet.info, name="busy"))
    busy.subscribe()
    assert len(agents_offered(busy, 10.0, enough=3)) == 3  # allocation cycles ran
    seen = []
    while not quiet.events.empty():
        seen.append(quiet.events.get_nowait()["type"])
    assert "OFFERS" not in seen
    busy.close()
    quiet.call({"type": "REVIVE"})
    assert len(agents_offered(quiet, 10.0, enough=3)) == 3
    quiet.close()


def test_reserved_resources_go_to_their_role_in_its_shape(tmp_path):
    master = start_master(tmp_path / "mesos", agents=1,
                          agent_resources="cpus:1;cpus(wps):1;mem:1024;mem(wps):1024;disk:1000",
                          flags=MasterFlags(roles=frozenset({"wps", "eo"})))
    user = getpass.getuser()
    try:
        plain = RawFramework(master.leader.url, {"user": user, "name": "plain"})
        plain.subscribe()
        (offer,) = plain.offers()
        assert {(r["name"], r["role"]) for r in offer["resources"]} == {("cpus", "*"), ("mem", "*"), ("disk", "*")}
        plain.close()

        wps = RawFramework(master.leader.url, {"user": user, "name": "wps", "role": "wps"})
        wps.subscribe()
        (offer,) = wps.offers()
        assert ("cpus", "wps") in {(r["name"], r["role"]) for r in offer["resources"]}
        assert "allocation_info" not in offer
        wps.call(launch(offer, task_info(offer, "unreserved-shape", cpus=2)))  # 2 cpus only exist as 1 + 1(wps)
        assert wps.update("unreserved-shape")["state"] == "TASK_ERROR"
        wps.close()

        multi = RawFramework(master.leader.url, {"user": user, "name": "multi", "roles": ["wps"],
                                                 "capabilities": [{"type": "MULTI_ROLE"}]})
        multi.subscribe()
        (offer,) = multi.offers()
        assert offer["allocation_info"] == {"role": "wps"}
        assert all(r["allocation_info"] == {"role": "wps"} for r in offer["resources"])
        multi.call(launch(offer, task_info(offer, "reserved", cpus=1, argv=["true"], role="wps")))
        assert multi.update("reserved", "TASK_FINISHED", "TASK_FAILED", "TASK_ERROR")["state"] == "TASK_FINISHED"
        multi.close()

        refined = RawFramework(master.leader.url, {"user": user, "name": "refined", "roles": ["wps"],
                                                   "capabilities": [{"type": "MULTI_ROLE"},
                                                                    {"type": "RESERVATION_REFINEMENT"}]})
        refined.subscribe()
        (offer,) = refined.offers()
        assert all("role" not in r for r in offer["resources"])
        assert {"type": "STATIC", "role": "wps"} in [x for r in offer["resources"] for x in r.get("reservations", [])]
        refined.close()

        outsider = RawFramework(master.leader.url, {"user": user, "name": "outsider", "role": "ops"})
        assert "are not present in the master's --roles" in outsider.subscribe()["error"]["message"]
        outsider.close()
    finally:
        master.stop()
    check_master(master)


def test_the_1_9_to_1_11_fields_and_calls_are_understood(mesos_master):
    """offer_constraints (1.11), offer_filters (1.9), UPDATE_FRAMEWORK (1.9), RECONCILE_OPERATIONS (1.8)."""
    rack_one = {"*": {"groups": [{"attribute_constraints": [
        {"selector": {"attribute_name": "rack"}, "predicate": {"text_equals": {"value": "r1"}}}]}]}}
    constrained = RawFramework(mesos_master.leader.url, offer_constraints={"role_constraints": rack_one})
    constrained.subscribe()
    (only,) = agents_offered(constrained, 1.0)
    assert mesos_master.cluster.agents[only].agent.attributes["rack"] == "r1"
    info = dict(constrained.info, id={"value": constrained.framework_id})
    answer = constrained.call({"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": info}})
    assert answer.status_code == 200
    assert len(agents_offered(constrained, 10.0, enough=3)) == 3  # the constraints went with the update
    changed = constrained.call({"type": "UPDATE_FRAMEWORK", "update_framework": {
        "framework_info": dict(info, user="somebody-else")}})
    assert changed.status_code == 400 and "user" in changed.text

    picky = RawFramework(mesos_master.leader.url, dict(constrained.info, name="picky", offer_filters={
        "*": {"min_allocatable_resources": {"quantities": [{"quantities": {"cpus": {"value": 3.0}}}]}}}))
    picky.subscribe()
    assert len(agents_offered(constrained, 1.0)) == 3  # cycles ran; no agent has 3 cpus for the picky one
    assert all(picky.events.get_nowait()["type"] != "OFFERS" for _ in range(picky.events.qsize()))

    operation = {"operation_id": {"value": "op-1"}, "agent_id": {"value": only}}
    answer = picky.call({"type": "RECONCILE_OPERATIONS", "reconcile_operations": {"operations": [operation]}})
    assert answer.status_code == 202
    status = picky.next("UPDATE_OPERATION_STATUS")["update_operation_status"]["status"]
    assert status["state"] == "OPERATION_UNKNOWN" and status["operation_id"] == {"value": "op-1"}
    constrained.close()
    picky.close()


# -- agents, operated from outside ---------------------------------------------------


def running_task(master, task_id: str) -> tuple[RawFramework, str]:
    """A raw framework with one long task running; and the task's agent."""
    raw = RawFramework(master.leader.url)
    raw.subscribe()
    offer = raw.offers()[0]
    raw.call(launch(offer, task_info(offer, task_id, argv=["sleep", "30"])))
    raw.update(task_id, "TASK_RUNNING")
    return raw, offer["agent_id"]["value"]


def test_a_stopped_agent_becomes_unreachable_and_its_task_carries_on_when_it_returns(mesos_master):
    raw, agent_id = running_task(mesos_master, "survivor")
    assert operate(mesos_master.leader, f"agents/{agent_id}/stop")["state"] == "disconnected"
    unreachable = raw.update("survivor", "TASK_UNREACHABLE")
    assert unreachable["reason"] == "REASON_AGENT_REMOVED" and "unreachable_time" in unreachable
    assert raw.next("FAILURE")["failure"]["agent_id"]["value"] == agent_id
    raw.call({"type": "RECONCILE", "reconcile": {"tasks": []}})
    raw.call({"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": "survivor"}}]}})
    assert raw.update("survivor")["state"] == "TASK_UNREACHABLE", "implicit reconciliation skips it"
    assert operate(mesos_master.leader, f"agents/{agent_id}/start")["state"] == "active"
    raw.call({"type": "RECONCILE", "reconcile": {"tasks": []}})
    assert raw.update("survivor")["state"] == "TASK_RUNNING"
    raw.call({"type": "KILL", "kill": {"task_id": {"value": "survivor"}}})
    assert raw.update("survivor", "TASK_KILLED")["source"] == "SOURCE_EXECUTOR"
    raw.close()


def test_a_lost_agent_takes_its_tasks_and_reboots_as_a_new_agent(mesos_master):
    raw, agent_id = running_task(mesos_master, "doomed")
    operate(mesos_master.leader, f"agents/{agent_id}/lose")
    assert raw.update("doomed", "TASK_UNREACHABLE")["agent_id"]["value"] == agent_id
    rebooted = operate(mesos_master.leader, f"agents/{agent_id}/start")["agent_id"]
    assert rebooted != agent_id
    deadline = time.monotonic() + 30
    while rebooted not in agents_offered(raw, 0.5):
        assert time.monotonic() < deadline, "the rebooted agent is never offered"
    raw.call({"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": "doomed"},
                                                            "agent_id": {"value": agent_id}}]}})
    assert raw.update("doomed")["state"] == "TASK_UNREACHABLE"
    raw.close()


def test_unknown_agents_and_actions_are_404(mesos_master):
    assert httpx.post(f"{mesos_master.leader.url}/testing/agents/nope/stop").status_code == 404
    assert httpx.post(f"{mesos_master.leader.url}/testing/agents/nope/fly").status_code == 404


# -- masters -------------------------------------------------------------------------


def test_a_standby_redirects_to_the_leader(tmp_path):
    master = start_master(tmp_path / "mesos", agents=1, standby=True)
    try:
        answer = httpx.post(master.standby.url + API, headers=JSON, json={
            "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "", "name": "x"}}})
        assert answer.status_code == 307
        assert answer.headers["Location"] == f"//{master.leader.address}{API}"
        for who in (master.standby, master.leader):
            redirect = httpx.get(f"{who.url}/master/redirect")
            assert redirect.status_code == 307 and redirect.headers["Location"] == f"//{master.leader.address}"
    finally:
        master.stop()
    check_master(master)


def test_a_leader_change_in_zookeeper_keeps_the_running_tasks(tmp_path, zookeeper_server):
    zk = f"zk://{zookeeper_server.hosts}/mesos-{tmp_path.name}"
    master = start_master(tmp_path / "mesos", agents=2, masters=2, zk=zk)
    try:
        first, second = master.leader, master.standby
        raw = RawFramework(first.url)
        raw.subscribe()
        offer = raw.offers()[0]
        raw.call(launch(offer, task_info(offer, "kept", argv=["sleep", "3"])))
        raw.update("kept", "TASK_RUNNING")
        operate(second, f"masters/{first.port}/stop")  # told to the standby, as an operator would
        assert raw.closed.wait(10), "the old leader's stream ends"
        deadline = time.monotonic() + 15
        while not second.leading and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.leading
        again = RawFramework(second.url, raw.info)
        assert again.subscribe(raw.framework_id)["type"] == "SUBSCRIBED"
        again.call({"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": "kept"}}]}})
        assert again.update("kept")["state"] == "TASK_RUNNING"
        assert again.update("kept", "TASK_FINISHED")["source"] == "SOURCE_EXECUTOR"
        operate(second, f"masters/{first.port}/start")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            answer = httpx.get(f"{first.url}/master/redirect")
            if answer.status_code == 307:
                break
            time.sleep(0.05)
        assert answer.headers["Location"] == f"//{second.address}"
        again.close()
    finally:
        master.stop()
    check_master(master)


def test_authentication_comes_first_and_the_principal_must_match(tmp_path):
    master = start_master(tmp_path / "mesos", agents=1, credentials={"gateway": "s3cret-value"})
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "", "name": "x"}}}
    try:
        answer = httpx.post(master.leader.url + API, headers=JSON, json=subscribe)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic")
        assert httpx.get(master.leader.url + API).status_code == 401  # before the method is looked at
        impostor = dict(subscribe, subscribe={"framework_info": {"user": "", "name": "x", "principal": "root"}})
        answer = httpx.post(master.leader.url + API, headers=JSON, auth=("gateway", "s3cret-value"), json=impostor)
        assert answer.status_code == 400 and "does not match principal" in answer.text
        raw = RawFramework(master.leader.url, auth=("gateway", "s3cret-value"))
        assert raw.subscribe()["type"] == "SUBSCRIBED"
        raw.close()
    finally:
        master.stop()
    check_master(master)


def test_the_test_master_runs_on_its_own_for_any_framework(tmp_path):
    port = free_port()
    log = tmp_path / "master.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "mesos_backend.testing.master", "--host", "127.0.0.1", "--port", str(port),
         "--agents", "2", "--agent-resources", "cpus:2;mem:2048;disk:1000;cpus(eo):1", "--agent-attributes",
         "rack:r{i}", "--heartbeat-interval", "0.5", "--work-dir", str(tmp_path / "work")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        raw = RawFramework(f"http://127.0.0.1:{port}")
        raw.subscribe()
        offers = raw.offers()
        assert sorted(a["attributes"][0]["text"]["value"] for a in offers) == ["r0", "r1"]
        offer = offers[0]
        raw.call(launch(offer, task_info(offer, "hello", argv=[sys.executable, "-c", "print('hello')"])))
        assert raw.update("hello", "TASK_FINISHED", "TASK_FAILED")["state"] == "TASK_FINISHED"
        sandboxes = list((tmp_path / "work").rglob("hello/stdout"))
        assert sandboxes and sandboxes[0].read_text().strip() == "hello"
        process.send_signal(signal.SIGUSR1)  # the leader fails over (and comes back): the stream ends
        assert raw.closed.wait(10)
        deadline = time.monotonic() + 20
        while True:  # the port is closed while the master restarts
            again = RawFramework(f"http://127.0.0.1:{port}", raw.info)
            try:
                assert again.subscribe(raw.framework_id)["type"] == "SUBSCRIBED"
                break
            except AssertionError:
                again.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert again.framework_id == raw.framework_id
        again.close()
        raw.close()
    finally:
        process.terminate()
        process.wait(10)
