"""The Mesos test master speaks the v1 scheduler API as a real master does, to any client.

These tests use a bare HTTP client (no driver of ours), so they check the
master against the reference (``shared/reference/mesos-yarn-protocols.md``),
not against what our framework happens to send. Every event seen is validated
against the Mesos protos.
"""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from mesos_backend.testing import proto
from mesos_backend.testing.agent import TestAgent
from mesos_backend.testing.cluster import MasterTimings

from .conftest import require
from .mesos_support import API, JSON, RawFramework, check_master, launch, start_master, task_info


@pytest.fixture(autouse=True)
def _protos():
    require(proto.available(), "protoc and the Mesos protos (golang-github-mesos-mesos-go-dev) are not installed")


@pytest.fixture
def framework(mesos_master):
    raw = RawFramework(mesos_master.leader.url)
    subscribed = raw.subscribe()
    assert raw.status == 200 and raw.stream_id
    assert subscribed["subscribed"]["heartbeat_interval_seconds"] > 0
    yield raw
    raw.close()


def post(master, body: dict | bytes, without: tuple[str, ...] = (), **headers: str) -> httpx.Response:
    """A raw POST to the scheduler endpoint; ``without`` names headers not to send."""
    sent = {k: v for k, v in dict(JSON, **headers).items() if k not in without}
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    return httpx.post(master.leader.url + API, content=content, headers=sent, timeout=10)


# -- the stream -----------------------------------------------------------------


def test_with_the_default_heartbeat_the_first_one_comes_at_once(tmp_path):
    master = start_master(tmp_path / "mesos", agents=1, timings=MasterTimings())  # a real master's 15 s
    raw = RawFramework(master.leader.url)
    try:
        subscribed = raw.subscribe()
        assert subscribed["subscribed"]["heartbeat_interval_seconds"] == 15.0
        assert subscribed["subscribed"]["master_info"]["version"] == "1.11.0"
        assert raw.events.get(timeout=5)["type"] == "HEARTBEAT"  # the very next record, long before 15 s
    finally:
        raw.close()
        master.stop()
    check_master(master)


def test_the_stream_brings_offers_and_heartbeats(framework):
    offers = framework.offers()
    assert len(offers) == 3
    assert all(r["role"] == "*" and "allocation_info" not in r for r in offers[0]["resources"])
    assert "allocation_info" not in offers[0]
    assert {r["name"] for r in offers[0]["resources"]} == {"cpus", "mem", "disk"}
    assert {a["name"] for a in offers[0]["attributes"]} == {"rack", "storage"}
    framework.next("HEARTBEAT", timeout=2)


def test_a_closed_connection_is_noticed_at_once(tmp_path):
    master = start_master(tmp_path / "mesos", agents=1, timings=MasterTimings())  # 15 s heartbeats
    raw = RawFramework(master.leader.url)
    try:
        raw.subscribe()
        raw.offers()
        framework_id = raw.framework_id
        raw.close()
        deadline = time.monotonic() + 5  # a master that noticed only at its next write would take 15 s
        while master.cluster.stream_of(framework_id) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert master.cluster.stream_of(framework_id) is None
        assert master.cluster.offers == {}, "a disconnected framework's offers are rescinded"
        again = RawFramework(master.leader.url)
        again.framework_id, again.stream_id = framework_id, raw.stream_id
        answer = again.call({"type": "REVIVE"})
        assert answer.status_code == 403 and "not subscribed" in answer.text
        again.close()
    finally:
        master.stop()
    check_master(master)


# -- what the master refuses, and in which order ------------------------------------


def test_media_types_are_matched_exactly(mesos_master, framework):
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework.info}}
    assert post(mesos_master, subscribe, **{"Content-Type": "application/json; charset=utf-8"}).status_code == 415
    answer = post(mesos_master, subscribe, without=("Content-Type",))
    assert answer.status_code == 400 and "Content-Type" in answer.text
    assert framework.call({"type": "REVIVE"}, **{"Content-Type": "text/plain"}).status_code == 415
    assert post(mesos_master, subscribe, Accept="text/html").status_code == 406
    assert httpx.get(mesos_master.leader.url + API).status_code == 405


def test_stream_ids_and_framework_ids_are_checked(mesos_master, framework):
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework.info}}
    answer = post(mesos_master, subscribe, **{"Mesos-Stream-Id": framework.stream_id})
    assert answer.status_code == 400 and "should not include the 'Mesos-Stream-Id'" in answer.text
    answer = framework.call({"type": "REVIVE"}, stream_id=None)
    assert answer.status_code == 400 and "should include the 'Mesos-Stream-Id'" in answer.text
    answer = framework.call({"type": "REVIVE"}, stream_id="not-the-stream")
    assert answer.status_code == 400 and "didn't match" in answer.text
    answer = post(mesos_master, {"type": "REVIVE", "framework_id": {"value": "nobody"}},
                  **{"Mesos-Stream-Id": framework.stream_id})
    assert answer.status_code == 400 and answer.text == "Framework cannot be found"
    answer = post(mesos_master, {"type": "REVIVE"}, **{"Mesos-Stream-Id": framework.stream_id})
    assert answer.status_code == 400 and "'framework_id' to be present" in answer.text
    resubscribe = {"type": "SUBSCRIBE", "framework_id": {"value": framework.framework_id},
                   "subscribe": {"framework_info": framework.info}}
    answer = post(mesos_master, resubscribe)
    assert answer.status_code == 400 and "differs from 'subscribe.framework_info.id'" in answer.text
    assert framework.call({"type": "REVIVE"}).status_code == 202


@pytest.mark.parametrize("kind", ["KILL", "ACKNOWLEDGE", "ACCEPT", "DECLINE", "RECONCILE"])
def test_a_call_without_its_body_is_refused(framework, kind):
    answer = framework.call({"type": kind})
    assert answer.status_code == 400 and f"Expecting '{kind.lower()}' to be present" in answer.text


def test_a_subscribe_without_its_body_and_bodies_missing_required_fields_are_refused(mesos_master, framework):
    answer = post(mesos_master, {"type": "SUBSCRIBE"})
    assert answer.status_code == 400 and "Expecting 'subscribe' to be present" in answer.text
    answer = post(mesos_master, {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "no user"}}})
    assert answer.status_code == 400 and "Missing required fields: subscribe.framework_info.user" in answer.text
    answer = framework.call({"type": "KILL", "kill": {}})
    assert answer.status_code == 400 and "kill.task_id" in answer.text
    answer = framework.call({"type": "DECLINE", "decline": {"offer_ids": [{"value": 5}]}})
    assert answer.status_code == 400 and "number" in answer.text
    answer = framework.call({"type": "DECLINE", "decline": {"filters": {"refuse_seconds": [1]}}})
    assert answer.status_code == 400 and "array" in answer.text
    assert framework.call({"type": "NO_SUCH_CALL"}).status_code == 400  # an unknown name leaves no type
    assert framework.call({"type": "UNKNOWN"}).status_code == 501
    assert post(mesos_master, b"not json").status_code == 400


def test_what_the_master_ignores_is_ignored(mesos_master, framework):
    """Unknown keys, camelCase keys, unknown enum names of optional fields, numbers as strings, nulls."""
    offer = framework.offers()[0]
    assert framework.call({"type": "DECLINE", "decline": {"offer_idz": [], "offerIds": [offer["id"]]},
                           "extra": True}).status_code == 202
    assert offer["id"]["value"] in mesos_master.cluster.offers, "a camelCase key is not the field"
    answer = framework.call({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]],
                                                            "filters": {"refuse_seconds": "0.5"}}})
    assert answer.status_code == 202 and offer["id"]["value"] not in mesos_master.cluster.offers
    notes = [note for name, note in mesos_master.cluster.call_notes if name == "raw"]
    assert any("offer_idz" in note for note in notes) and any("'offer_ids'" in note for note in notes)
    sloppy = RawFramework(mesos_master.leader.url, {
        "user": framework.info["user"], "name": "sloppy", "frameworkId": "x", "webui_url": None,
        "capabilities": [{"type": "NOT_A_CAPABILITY"}, {"type": "PARTITION_AWARE"}], "labels": None})
    assert sloppy.subscribe()["type"] == "SUBSCRIBED"
    sloppy.close()


def test_nulls_are_absent_and_tasks_still_run(framework):
    """What other clients send for empty fields (mesos-go sends ``"uris": null`` and the like)."""
    offer = framework.offers()[0]
    task = task_info(offer, "nulls", argv=["true"])
    task["command"].update({"uris": None, "environment": {"variables": None}})
    task.update({"container": None, "labels": None, "kill_policy": None, "executor": None})
    call = launch(offer, task)
    call["accept"]["filters"] = None
    assert framework.call(call).status_code == 202
    assert framework.update("nulls", "TASK_FINISHED", "TASK_FAILED", "TASK_ERROR")["state"] == "TASK_FINISHED"
    answer = framework.call({"type": "ACCEPT", "accept": {"offer_ids": None, "operations": None}})
    assert answer.status_code == 202


def test_acknowledgement_uuids_must_be_16_bytes(framework):
    offer = framework.offers()[0]
    framework.call(launch(offer, task_info(offer, "t1", argv=["true"])))
    status = framework.update("t1", "TASK_STARTING", ack=False)
    short = dict(status, uuid=base64.b64encode(b"short").decode())
    answer = framework.acknowledge(short)
    assert answer.status_code == 400 and "16 bytes" in answer.text
    assert framework.acknowledge(status).status_code == 202


# -- launching ----------------------------------------------------------------------


def test_launches_beyond_the_offer_or_with_an_unknown_offer_come_back_as_errors(framework):
    offer = framework.offers()[0]
    assert framework.call(launch(offer, task_info(offer, "greedy", cpus=64))).status_code == 202
    error = framework.update("greedy")
    assert error["state"] == "TASK_ERROR" and error["reason"] == "REASON_TASK_INVALID"
    assert "more than available" in error["message"] and "uuid" not in error
    stale = dict(offer, id={"value": "no-such-offer"})
    assert framework.call(launch(stale, task_info(stale, "late"))).status_code == 202
    dropped = framework.update("late")
    assert dropped["state"] == "TASK_DROPPED" and dropped["reason"] == "REASON_INVALID_OFFERS"


@pytest.mark.parametrize("task_id", ["a/b", "..", ".", "x" * 256, "tab\there"])
def test_task_ids_that_break_the_rules_are_task_errors(framework, task_id):
    offer = framework.offers()[0]
    framework.call(launch(offer, task_info(offer, task_id)))
    error = framework.update(task_id)
    assert error["state"] == "TASK_ERROR" and error["reason"] == "REASON_TASK_INVALID"


def test_a_task_id_in_use_is_a_task_error_and_the_task_keeps_running(framework):
    offers = framework.offers()
    framework.call(launch(offers[0], task_info(offers[0], "twice", argv=["sleep", "30"])))
    framework.update("twice", "TASK_STARTING")
    framework.call(launch(offers[1], task_info(offers[1], "twice")))
    assert framework.update("twice", "TASK_ERROR")["message"].startswith("Task has duplicate ID")


def test_an_empty_user_cannot_run_tasks(mesos_master):
    """The HTTP API fills nothing in: a FrameworkInfo.user of "" is a user the agent cannot find."""
    raw = RawFramework(mesos_master.leader.url, {"user": "", "name": "nobody"})
    raw.subscribe()
    offer = raw.offers()[0]
    raw.call(launch(offer, task_info(offer, "who", argv=["true"])))
    failed = raw.update("who", "TASK_FAILED", "TASK_FINISHED")
    assert failed["state"] == "TASK_FAILED" and failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "user" in failed["message"]
    raw.close()


def test_whatever_fails_in_an_agent_the_task_ends_and_its_resources_come_back(framework, monkeypatch):
    def broken(container):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(TestAgent, "_check_volumes", staticmethod(broken))
    offer = framework.offers()[0]
    framework.call(launch(offer, task_info(offer, "unlucky", cpus=2)))
    failed = framework.update("unlucky", "TASK_FAILED")
    assert failed["source"] == "SOURCE_AGENT" and failed["reason"] == "REASON_EXECUTOR_TERMINATED"
    assert "disk on fire" in failed["message"]
    while True:  # the agent's two cpus are offered again
        again = [o for o in framework.offers() if o["agent_id"] == offer["agent_id"]]
        if again:
            break
    assert sum(r["scalar"]["value"] for r in again[0]["resources"] if r["name"] == "cpus") == 2


def test_a_bug_in_the_master_is_an_answer_not_a_hang(mesos_master, framework, monkeypatch):
    monkeypatch.setattr(mesos_master.cluster, "call", lambda *args: 1 / 0)
    answer = framework.call({"type": "REVIVE"})
    assert answer.status_code == 500 and "ZeroDivisionError" in answer.text
    assert mesos_master.cluster.internal_errors == ["ZeroDivisionError: division by zero"]
    mesos_master.cluster.internal_errors.clear()  # seen; the fixture checks for any other


# -- status updates ------------------------------------------------------------------


def test_updates_are_resent_until_acknowledged_and_held_back_in_order(framework):
    offer = framework.offers()[0]
    framework.call(launch(offer, task_info(offer, "t1", argv=["sleep", "0.1"])))
    seen = framework.updates("t1", 3.5)  # the test master resends after 1 s, then 2 s
    assert len(seen) >= 2 and [s["state"] for s in seen] == ["TASK_STARTING"] * len(seen)
    assert len({s["uuid"] for s in seen}) == 1, "a retransmission carries the same uuid"
    states = []
    for _ in range(3):
        framework.acknowledge(seen[-1])
        seen = framework.updates("t1", 1.2)
        states.append(seen[0]["state"] if seen else None)
    assert states == ["TASK_RUNNING", "TASK_FINISHED", None], "after the last acknowledgement nothing is resent"


# -- reconciliation and kills ------------------------------------------------------------


def reconciled(framework: RawFramework, count: int) -> dict[str, str]:
    answers: dict[str, str] = {}
    deadline = time.monotonic() + 5
    while len(answers) < count and time.monotonic() < deadline:
        status = framework.next("UPDATE")["update"]["status"]
        if status.get("reason") == "REASON_RECONCILIATION":
            assert "uuid" not in status and status["source"] == "SOURCE_MASTER"
            answers[status["task_id"]["value"]] = status["state"]
    return answers


def test_reconciliation_answers_for_known_and_unknown_tasks(framework):
    offer = framework.offers()[0]
    framework.call(launch(offer, task_info(offer, "long", argv=["sleep", "30"])))
    framework.update("long", "TASK_STARTING")
    framework.call({"type": "RECONCILE", "reconcile": {"tasks": [
        {"task_id": {"value": "long"}}, {"task_id": {"value": "ghost"}, "agent_id": offer["agent_id"]},
        {"task_id": {"value": "nowhere"}}]}})
    answers = reconciled(framework, 3)
    assert answers.pop("long") in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING")  # however far it got
    assert answers == {"ghost": "TASK_GONE", "nowhere": "TASK_UNKNOWN"}


def test_implicit_reconciliation_includes_terminal_tasks_until_acknowledged(framework):
    offer = framework.offers()[0]
    framework.call(launch(offer, task_info(offer, "quick", argv=["true"])))
    finished = framework.update("quick", "TASK_FINISHED", ack=False)
    framework.call({"type": "RECONCILE", "reconcile": {"tasks": []}})
    assert reconciled(framework, 1) == {"quick": "TASK_FINISHED"}
    framework.acknowledge(finished)  # applied before its 202
    framework.call({"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": "quick"},
                                                                  "agent_id": offer["agent_id"]}]}})
    assert reconciled(framework, 1) == {"quick": "TASK_GONE"}


def test_kills_follow_the_masters_rules(framework):
    offers = framework.offers()
    framework.call(launch(offers[0], task_info(offers[0], "victim", argv=["sleep", "30"])))
    running = framework.update("victim", "TASK_RUNNING")
    # A wrong agent id: ignored (no kill, no answer); a reconciliation round-trip proves it was processed.
    framework.call({"type": "KILL", "kill": {"task_id": {"value": "victim"}, "agent_id": {"value": "elsewhere"}}})
    framework.call({"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": "victim"}}]}})
    assert reconciled(framework, 1) == {"victim": "TASK_RUNNING"}
    # A task whose terminal update is not acknowledged yet: nothing to kill, no made-up TASK_GONE.
    framework.call(launch(offers[1], task_info(offers[1], "done", argv=["true"])))
    finished = framework.update("done", "TASK_FINISHED", ack=False)
    framework.call({"type": "KILL", "kill": {"task_id": {"value": "done"}}})
    framework.call({"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": "done"}}]}})
    assert reconciled(framework, 1) == {"done": "TASK_FINISHED"}
    framework.acknowledge(finished)
    # An unknown task: answered as explicit reconciliation.
    framework.call({"type": "KILL", "kill": {"task_id": {"value": "ghost"}, "agent_id": offers[0]["agent_id"]}})
    assert reconciled(framework, 1) == {"ghost": "TASK_GONE"}
    # The real kill: TASK_KILLING (the framework has the capability), then TASK_KILLED.
    framework.call({"type": "KILL", "kill": {"task_id": {"value": "victim"}, "agent_id": running["agent_id"]}})
    assert framework.update("victim", "TASK_KILLING", "TASK_KILLED")["state"] == "TASK_KILLING"
    assert framework.update("victim", "TASK_KILLED")["source"] == "SOURCE_EXECUTOR"


# -- subscriptions --------------------------------------------------------------------


def test_a_second_subscription_fails_the_first_over_and_voids_its_offers(mesos_master, framework):
    old_offer = framework.offers()[0]
    second = RawFramework(mesos_master.leader.url, framework.info)
    assert second.subscribe(framework.framework_id)["type"] == "SUBSCRIBED"
    error = framework.next("ERROR")
    assert error["error"]["message"] == "Framework failed over"
    assert framework.closed.wait(5), "the old stream ends after the ERROR"
    assert old_offer["id"]["value"] not in mesos_master.cluster.offers
    new_offers = second.offers()
    assert {o["agent_id"]["value"] for o in new_offers} == set(mesos_master.cluster.agents)
    second.call(launch(old_offer, task_info(old_offer, "with-old-offer")))
    assert second.update("with-old-offer")["state"] == "TASK_DROPPED"
    second.close()


def test_a_framework_past_its_failover_timeout_is_removed_and_told_so(mesos_master):
    info = {"user": "nobody", "name": "brief", "failover_timeout": 0.2}
    raw = RawFramework(mesos_master.leader.url, info)
    raw.subscribe()
    framework_id = raw.framework_id
    raw.close()  # the connection drops
    deadline = time.monotonic() + 10
    while framework_id not in mesos_master.cluster.removed and time.monotonic() < deadline:
        time.sleep(0.05)
    again = RawFramework(mesos_master.leader.url, info)
    event = again.subscribe(framework_id)
    assert again.status == 200 and event["error"]["message"] == "Framework has been removed"
    again.close()
    caller = RawFramework(mesos_master.leader.url, info)  # a connection of its own: the master closed the
    caller.framework_id, caller.stream_id = framework_id, "any"  # stream's, which a pool could hand out again
    answer = caller.call({"type": "REVIVE"})
    assert answer.status_code == 400 and answer.text == "Framework cannot be found"
    caller.close()


def test_teardown_removes_the_framework_and_kills_its_tasks(mesos_master, framework):
    offer = framework.offers()[0]
    framework.call(launch(offer, task_info(offer, "doomed", argv=["sleep", "30"])))
    framework.update("doomed", "TASK_RUNNING")
    assert framework.call({"type": "TEARDOWN"}).status_code == 202
    assert framework.closed.wait(5)
    assert not any(r.agent.tasks for r in mesos_master.cluster.agents.values())
    assert framework.framework_id in mesos_master.cluster.removed


@pytest.mark.parametrize(("info", "message"), [
    ({"role": "wps", "capabilities": [{"type": "MULTI_ROLE"}]}, "'FrameworkInfo.role' must not be set"),
    ({"roles": ["wps"]}, "'FrameworkInfo.roles' must not be set"),
    ({"failover_timeout": -1.0}, "failover_timeout"),
])
def test_refused_subscriptions_are_an_error_event_on_a_200_stream(mesos_master, info, message):
    raw = RawFramework(mesos_master.leader.url, {"user": "nobody", "name": "refused", **info})
    event = raw.subscribe()
    assert raw.status == 200 and raw.stream_id
    assert event["type"] == "ERROR" and message in event["error"]["message"]
    assert raw.closed.wait(5)
    raw.close()
