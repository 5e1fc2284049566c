"""The operators' REST control (``/admin/api``): jobs, actions, logs, cluster, limits, the pause switch.

Operators only: with ``[auth] mode = none`` that is a request from loopback;
with a trusted proxy, the users and groups of ``[auth] operators``. Changes
come as JSON and never from another site's page.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wps_gateway import control
from wps_gateway.store.models import Job, JobStatus

from .conftest import build_gateway, close_gateway
from .jobs_support import final, submit_sleepy, wait_for

LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
ELSEWHERE = {"REMOTE_ADDR": "192.0.2.7"}


def api(gateway, method: str, path: str, body=None, status: int | str = "2*", **kw):
    call = getattr(gateway.client, f"{method}_json" if body is not None else method)
    args = (path, body) if body is not None else (path,)
    return call(*args, status=status, extra_environ={**LOOPBACK, **kw.pop("extra_environ", {})}, **kw)


@pytest.fixture
def front(tmp_path, sample_data):
    """A gateway without a dispatcher: requests are recorded and wait."""
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    yield gateway
    close_gateway(gateway)


def test_a_page_of_jobs_filtered_sorted_and_counted(front):
    ids = [submit_sleepy(front, [n]) for n in range(5)]
    page = api(front, "get", "/admin/api/jobs?limit=2").json
    assert page["total"] == 5 and page["totalAtLeast"] is None
    assert [j["jobID"] for j in page["jobs"]] == ids[::-1][:2]  # newest first
    second = api(front, "get", "/admin/api/jobs?limit=2&offset=2&order=asc").json
    assert [j["jobID"] for j in second["jobs"]] == ids[2:4]
    assert api(front, "get", "/admin/api/jobs?status=running").json == {
        "jobs": [], "total": 0, "totalAtLeast": None, "offset": 0, "limit": 50}
    by_user = api(front, "get", "/admin/api/jobs?user=anonymous&from=2000-01&sort=process").json
    assert by_user["total"] == 5 and {j["status"] for j in by_user["jobs"]} == {"accepted"}
    assert api(front, "get", "/admin/api/jobs?from=2100-01-01").json["total"] == 0
    for query, parameter in (("status=lost", "status"), ("sort=message", "sort"), ("limit=0", "limit"),
                             ("from=yesterday", "from"), ("order=up", "order")):
        problem = api(front, "get", f"/admin/api/jobs?{query}", status=400).json
        assert problem["parameter"] == parameter, query


def test_a_status_filter_counts_the_jobs_it_lists(front):
    """A job reads as accepted until its first task starts, also while its stored status is already running:
    the total counts the jobs the filter lists, and each shows the status it was listed under."""
    accepted, planned, started = (submit_sleepy(front, [n]) for n in range(3))
    with front.store.session() as session:
        session.get(Job, planned).status = JobStatus.RUNNING  # planned by a dispatcher, no task started yet
        session.get(Job, started).status = JobStatus.RUNNING
        session.get(Job, started).started = datetime.now(UTC)
    for status, expected in (("accepted", [planned, accepted]), ("running", [started]),
                             ("accepted,running", [started, planned, accepted])):
        page = api(front, "get", f"/admin/api/jobs?status={status}&limit=1").json
        assert page["total"] == len(expected), status
        everything = api(front, "get", f"/admin/api/jobs?status={status}").json["jobs"]
        assert [j["jobID"] for j in everything] == expected, status
        assert {j["status"] for j in everything} <= set(status.split(",")), status
    assert api(front, "get", f"/admin/api/jobs/{planned}").json["status"] == "accepted"
    assert api(front, "get", "/admin/api/cluster").json["jobs"] == {"accepted": 2, "running": 1}  # as listed


def test_only_operators_see_and_steer(front):
    job_id = submit_sleepy(front, [1])
    front.client.get("/admin/api/jobs", extra_environ=ELSEWHERE, status=403)
    front.client.get(f"/admin/jobs/{job_id}", extra_environ=ELSEWHERE, status=403)
    front.client.post_json(f"/admin/api/jobs/{job_id}/retry", {}, extra_environ=ELSEWHERE, status=403)
    # a change from another site's page, or not sent as JSON, is refused even from loopback
    api(front, "post", f"/admin/api/jobs/{job_id}/dismiss", {}, status=403,
        headers={"Sec-Fetch-Site": "cross-site"})
    front.client.post(f"/admin/api/jobs/{job_id}/dismiss", "tasks=all", extra_environ=LOOPBACK, status=415)
    front.client.put("/admin/api/dispatching", '{"paused": true}', extra_environ=LOOPBACK, status=415,
                     content_type="text/plain")
    assert api(front, "get", "/admin/api/dispatching").json == {"paused": False, "reason": None}


def test_operators_by_role_behind_a_trusted_proxy(tmp_path, sample_data):
    proxied = build_gateway(tmp_path / "var", sample_data, dispatcher=False, AUTH_MODE="header",
                            AUTH_TRUSTED_PROXIES="127.0.0.1", AUTH_OPERATORS="group:ops")
    try:
        def as_user(user: str, groups: str = "") -> dict:
            return {"extra_environ": LOOPBACK, "headers": {"X-Forwarded-User": user, "X-Forwarded-Groups": groups}}

        proxied.client.get("/admin/api/cluster", status=401, extra_environ=LOOPBACK)
        proxied.client.get("/admin/api/cluster", status=403, **as_user("bob"))
        assert "dispatcher" in proxied.client.get("/admin/api/cluster", **as_user("olga", "ops")).json
        proxied.client.get("/admin", status=403, **as_user("bob"))
        assert "Jobs" in proxied.client.get("/admin", **as_user("olga", "ops")).text
    finally:
        close_gateway(proxied)


def test_dismiss_retry_and_priority_through_the_api(gateway):
    running = submit_sleepy(gateway, [1, 2], seconds=20)
    wait_for(lambda: api(gateway, "get", f"/admin/api/jobs/{running}").json["status"] == "running", 30, "running")
    refused = api(gateway, "post", f"/admin/api/jobs/{running}/retry", {}, status=409).json
    assert "only a failed job" in refused["detail"]
    moved = api(gateway, "put", f"/admin/api/jobs/{running}/priority", {"priority": 9}, status=202)
    assert moved.headers["Location"].endswith(f"/admin/api/requests/{moved.json['id']}")
    wait_for(lambda: api(gateway, "get", f"/admin/api/requests/{moved.json['id']}").json["state"] == "done", 30,
             "the priority change")
    detail = api(gateway, "post", f"/admin/api/jobs/{running}/dismiss", {}).json
    assert detail["dismissRequested"] and detail["priority"] == 9
    assert final(gateway, running).status == JobStatus.DISMISSED

    failed = submit_sleepy(gateway, [3], fail_step="total")
    assert final(gateway, failed).status == JobStatus.FAILED
    api(gateway, "post", f"/admin/api/jobs/{failed}/retry", {"tasks": "some"}, status=400)
    asked = api(gateway, "post", f"/admin/api/jobs/{failed}/retry", {"tasks": "all"}, status=202).json
    assert asked["action"] == control.RETRY_JOB and asked["requestedBy"] == "anonymous"
    wait_for(lambda: api(gateway, "get", f"/admin/api/requests/{asked['id']}").json["state"] == "done", 30, "retry")
    assert final(gateway, failed).status == JobStatus.FAILED  # it was told to fail: it did, again
    detail = api(gateway, "get", f"/admin/api/jobs/{failed}").json
    assert [r["id"] for r in detail["requests"]] == [asked["id"]]
    total = next(t for t in detail["tasks"] if t["step"] == "total")
    assert [run["number"] for run in total["runs"]] == [1, 2]
    history = total["runs"][0]["history"]
    assert [e["state"] for e in history][-1] == "finished" and history[0]["time"]
    api(gateway, "get", "/admin/api/requests/999999", status=404)
    api(gateway, "get", "/admin/api/jobs/no-such-job", status=404)


def test_a_local_attempt_log_is_its_sandbox_tail(gateway):
    job_id = submit_sleepy(gateway, [5], fail_step="square")
    assert final(gateway, job_id).status == JobStatus.FAILED
    detail = api(gateway, "get", f"/admin/api/jobs/{job_id}").json
    attempt = detail["tasks"][0]["runs"][0]["attempt"]
    log = api(gateway, "get", f"/admin/api/attempts/{attempt}/log").json
    stderr = next(f for f in log["files"] if f["name"] == "stderr")
    assert stderr["tail"] == "the square step was told to fail\n" and stderr["size"] == len(stderr["tail"])
    assert log["backend"] == "local" and log["errors"] == []
    short = api(gateway, "get", f"/admin/api/attempts/{attempt}/log?size=6").json
    assert next(f for f in short["files"] if f["name"] == "stderr")["tail"] == stderr["tail"][-6:]
    api(gateway, "get", f"/admin/api/attempts/{attempt}/log?size=0", status=400)
    api(gateway, "get", "/admin/api/attempts/nothing.1/log", status=404)


def test_limits_and_the_pause_switch_through_the_api(front):
    assert api(front, "put", "/admin/api/limits/max_cpu", {"value": 8}).json["value"] == 8
    api(front, "put", "/admin/api/limits/user_weight/alice", {"value": 2})
    api(front, "put", "/admin/api/limits/user_weight/alice", {"value": 0}, status=400)
    api(front, "put", "/admin/api/limits/max_cpu", {"value": -1}, status=400)
    api(front, "put", "/admin/api/limits/speed", {"value": 1}, status=404)
    limits = api(front, "get", "/admin/api/limits").json
    assert {(limit["kind"], limit["name"]) for limit in limits["live"]} == {("max_cpu", None), ("user_weight",
                                                                                                  "alice")}
    api(front, "delete", "/admin/api/limits/max_cpu", status=204)
    api(front, "delete", "/admin/api/limits/max_cpu", status=404)
    paused = api(front, "put", "/admin/api/dispatching", {"paused": True, "reason": "maintenance"}).json
    assert paused == {"paused": True, "reason": "maintenance"}
    cluster = api(front, "get", "/admin/api/cluster").json
    assert cluster["paused"] == "maintenance" and cluster["dispatcher"]["status"] == "never started"
    assert api(front, "put", "/admin/api/dispatching", {"paused": False}).json["paused"] is False
