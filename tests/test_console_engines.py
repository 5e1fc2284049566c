"""The console on Mesos, YARN and Slurm: the cluster as the framework sees it, task logs through the engines'
own endpoints (Slurm's: the shared sandbox), caps changed while tasks wait; and the test doubles' endpoints
checked on their own.

The Mesos agent's files API is asked with plain HTTP as the reference gives
it; the YARN NodeManager and ResourceManager with ``yarn-api-client``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from yarn_api_client.node_manager import NodeManager
from yarn_api_client.resource_manager import ResourceManager

from wps_gateway import scheduling
from wps_gateway.store.models import JobStatus, TaskAttempt

from .conftest import close_gateway
from .jobs_support import attempts_of, final, running, submit_sleepy, wait_for
from .mesos_support import mesos_gateway
from .slurm_support import slurm_gateway
from .test_admin_api import api
from .test_metrics import samples, scrape
from .yarn_support import yarn_gateway

pytestmark = pytest.mark.slow


def published(gateway, check) -> dict:
    """The cluster view once the dispatcher's published status satisfies ``check``."""
    found: dict = {}

    def ready() -> bool:
        found.update(api(gateway, "get", "/admin/api/cluster").json)
        return bool(found.get("engine")) and check(found)

    wait_for(ready, 60, "the dispatcher's status")
    return found


def files_read(agent: str, **query) -> tuple[int, object]:
    url = f"{agent}/files/read?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# -- Mesos ---------------------------------------------------------------------------

def test_mesos_cluster_logs_and_a_cap_changed_while_tasks_wait(tmp_path, sample_data, mesos_master):
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.masters[0].address, MESOS_CONTAINERIZER="none")
    try:
        failed = submit_sleepy(gateway, [2], fail_step="square")
        assert final(gateway, failed).status == JobStatus.FAILED
        view = published(gateway, lambda v: len(v["engine"].get("agents") or []) == 3)
        engine = view["engine"]
        assert view["backend"] == "mesos" and engine["subscribed"] and engine["framework_id"]
        assert engine["master"].endswith(mesos_master.masters[0].address)
        assert {a["attributes"]["rack"] for a in engine["agents"]} == {"r0", "r1", "r2"}
        assert all(a["url"].startswith("http://127.0.0.1:") for a in engine["agents"])

        attempt = attempts_of(gateway, failed)[0]
        assert attempt.sandbox == f"/frameworks/{engine['framework_id']}/executors/{attempt.backend_task_id}" \
                                  "/runs/latest"
        log = api(gateway, "get", f"/admin/api/attempts/{attempt.backend_task_id}/log").json
        assert log["errors"] == [] and log["backend"] == "mesos"
        stderr = next(f for f in log["files"] if f["name"] == "stderr")
        assert "the square step was told to fail" in stderr["tail"]
        page = gateway.client.get(f"/admin/attempts/{attempt.backend_task_id}/log",
                                  extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        assert "the square step was told to fail" in page.text

        # a cap of half a cpu, set while the gateway runs: the 0.5-cpu tasks run one at a time, and say why they wait
        scheduling.set_limit(gateway.store, "max_cpu", None, 0.5, by="test")
        published(gateway, lambda v: v["engine"]["caps"]["max_cpu"] == 0.5)
        capped = submit_sleepy(gateway, [1, 2, 3], seconds=3)  # long enough for waiting tasks to say why
        assert final(gateway, capped).status == JobStatus.SUCCESSFUL
        squares = sorted((a for a in attempts_of(gateway, capped) if ".square." in a.task_id),
                         key=lambda a: a.started)
        for earlier, later in zip(squares, squares[1:], strict=False):
            assert later.started >= earlier.finished, "two tasks ran at once under a cap of one"
        history = api(gateway, "get", f"/admin/api/jobs/{capped}").json["tasks"]
        notices = [e["message"] for t in history for run in t["runs"] for e in run["history"]]
        assert any("max_cpu (0.5 cpus) is in use" in message for message in notices)
        scheduling.remove_limit(gateway.store, "max_cpu", None)
        published(gateway, lambda v: v["engine"]["caps"]["max_cpu"] is None)
    finally:
        close_gateway(gateway)


def test_the_test_agents_files_api_answers_as_an_agent_does(tmp_path, sample_data, mesos_master):
    gateway = mesos_gateway(tmp_path / "var", sample_data, mesos_master.masters[0].address, MESOS_CONTAINERIZER="none")
    try:
        job_id = submit_sleepy(gateway, [7])
        assert final(gateway, job_id).status == JobStatus.SUCCESSFUL
        attempt = next(a for a in attempts_of(gateway, job_id) if ".square." in a.task_id)
        agents = {a["id"]: a["url"] for a in published(gateway, lambda v: v["engine"].get("agents"))["engine"]
                  ["agents"]}
        agent, stdout = agents[attempt.agent], f"{attempt.sandbox}/stdout"
        status, size = files_read(agent, path=stdout, offset=-1)
        assert status == 200 and size == {"data": "", "offset": len("squaring 7\n")}
        assert files_read(agent, path=stdout, offset=0) == (200, {"data": "squaring 7\n", "offset": 0})
        assert files_read(agent, path=stdout, offset=9, length=1) == (200, {"data": "7", "offset": 9})
        assert files_read(agent, path=stdout, offset=100) == (200, {"data": "", "offset": 100})
        assert files_read(agent, path=stdout)[1] == {"data": "", "offset": 11}  # no offset: -1, the size
        assert files_read(agent, offset=0) == (400, "Expecting 'path=value' in query.\n")
        assert files_read(agent, path=stdout, offset=-2)[0] == 400
        assert files_read(agent, path=stdout, offset="x")[0] == 400
        assert files_read(agent, path=attempt.sandbox, offset=0) == (400, "Cannot read a directory.\n")
        assert files_read(agent, path=f"{attempt.sandbox}/nothing")[0] == 404
        assert files_read(agent, path="/frameworks/nobody/executors/x/runs/latest/stdout")[0] == 404
        assert files_read(agent, path=f"{attempt.sandbox}/../../../../../etc/passwd")[0] in (400, 404)
        record = next(r for r in mesos_master.cluster.agents.values() if r.agent.agent_id == attempt.agent)
        mesos_master.cluster.stop_agent(attempt.agent)  # the agent process is down: its endpoints too
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{agent}/files/read?path={stdout}", timeout=5)
        mesos_master.cluster.start_agent(attempt.agent)
        assert files_read(agent, path=stdout, offset=0)[1]["data"] == "squaring 7\n"
        assert record.agent.files.port == int(agent.rsplit(":", 1)[1])
    finally:
        close_gateway(gateway)


# -- Slurm ---------------------------------------------------------------------------

def test_slurm_backend_in_the_cluster_view_metrics_and_task_logs(tmp_path, sample_data, slurm_cluster):
    gateway = slurm_gateway(tmp_path / "var", sample_data, slurm_cluster)
    try:
        failed = submit_sleepy(gateway, [2], fail_step="square")
        assert final(gateway, failed).status == JobStatus.FAILED
        attempt = attempts_of(gateway, failed)[0]
        log = api(gateway, "get", f"/admin/api/attempts/{attempt.backend_task_id}/log").json
        assert log["backend"] == "slurm" and log["errors"] == [], log
        stderr = next(f for f in log["files"] if f["name"] == "stderr")
        assert "the square step was told to fail" in stderr["tail"]

        view = published(gateway, lambda v: v["engine"].get("slurm_reachable")
                         and v["engine"]["running"] == v["engine"]["queued"] == 0)  # the failed job's attempts ended
        engine = view["engine"]
        assert view["backend"] == "slurm" and engine["paused"] is False
        assert engine["partition"] == "(the cluster's default)" and engine["accounting"] == "sacct"
        page = gateway.client.get("/admin/cluster", extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        assert "slurm reachable" in page.text
        assert samples(scrape(gateway)["wps_gateway_backend_up"]) == {(("backend", "slurm"),): 1.0}
    finally:
        close_gateway(gateway)


# -- YARN ----------------------------------------------------------------------------

def running_task(gateway, number: int) -> tuple[str, TaskAttempt]:
    """A job of one task that squares ``number`` for 30 s, once it runs: the job's id and the attempt."""
    job_id = submit_sleepy(gateway, [number], seconds=30)
    wait_for(lambda: running(gateway, job_id), 60, "a running task")
    return job_id, running(gateway, job_id)[0]


def dismiss(gateway, job_id: str) -> None:
    api(gateway, "post", f"/admin/api/jobs/{job_id}/dismiss", {})
    assert final(gateway, job_id).status == JobStatus.DISMISSED


def test_yarn_cluster_and_the_logs_of_running_and_ended_tasks(tmp_path, sample_data, yarn_rm):
    gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm)
    try:
        busy, attempt = running_task(gateway, 6)

        def task_log() -> dict:
            return api(gateway, "get", f"/admin/api/attempts/{attempt.backend_task_id}/log").json

        wait_for(lambda: "squaring 6" in next((f["tail"] for f in task_log()["files"] if f["name"] == "stdout"), ""),
                 60, "the task container's stdout")
        log = task_log()
        assert log["link"].startswith("http://127.0.0.1:") and "/node/containerlogs/container_" in log["link"]
        assert "ApplicationMaster" not in log["source"], log["source"]
        with urllib.request.urlopen(log["link"], timeout=10) as page:  # the link opens the NodeManager's page
            assert b"stdout" in page.read()
        dismiss(gateway, busy)

        failed = submit_sleepy(gateway, [2], fail_step="square")
        assert final(gateway, failed).status == JobStatus.FAILED
        ended = attempts_of(gateway, failed)[0]
        log = api(gateway, "get", f"/admin/api/attempts/{ended.backend_task_id}/log").json
        assert "ApplicationMaster container" in log["source"] and log["link"]
        assert any(f["name"].startswith("AppMaster") for f in log["files"]), log

        view = published(gateway, lambda v: v["engine"].get("rm_reachable") and len(v["engine"].get("nodes")) == 3)
        engine = view["engine"]
        assert engine["queue"] == "default" and engine["capacity"]["cpus"] == 24
        assert {n["state"] for n in engine["nodes"]} == {"RUNNING"}
        assert view["limits"]["kinds"]["max_cpu"]["applied"] and not view["limits"]["kinds"]["user_cpu"]["applied"]
    finally:
        close_gateway(gateway)


def test_the_test_nodemanager_and_rm_list_containers_as_yarn_does(tmp_path, sample_data, yarn_rm):
    gateway = yarn_gateway(tmp_path / "var", sample_data, yarn_rm)
    try:
        job_id, started = running_task(gateway, 4)
        app_id = started.sandbox
        rm = ResourceManager(service_endpoints=[yarn_rm.servers[0].url], timeout=10)
        (attempt,) = rm.cluster_application_attempts(app_id).data["appAttempts"]["appAttempt"]

        def live() -> list[dict]:
            return rm.cluster_application_attempt_containers(app_id, attempt["appAttemptId"]).data["container"]

        wait_for(lambda: len(live()) == 2, 60, "the AM's and the task's containers")
        task = next(c for c in live() if c["containerId"] != attempt["containerId"])
        node = NodeManager(service_endpoint=task["nodeHttpAddress"], timeout=10)
        info = node.node_container(task["containerId"]).data["container"]
        assert info["id"] == task["containerId"] and info["state"] == "RUNNING"
        wait_for(lambda: "stdout" in node.node_container(task["containerId"]).data["container"]["containerLogFiles"],
                 30, "the container's stdout")
        logs = f"{task['nodeHttpAddress']}/ws/v1/node/containerlogs/{task['containerId']}"
        wait_for(lambda: urllib.request.urlopen(f"{logs}/stdout", timeout=10).read() == b"squaring 4\n", 30,
                 "the task's line in its stdout")
        assert urllib.request.urlopen(f"{logs}/stdout?size=-6", timeout=10).read() == b"ing 4\n"
        assert urllib.request.urlopen(f"{logs}/stdout?size=3", timeout=10).read() == b"squ"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{logs}/nothing", timeout=10)
        assert missing.value.code == 404
        dismiss(gateway, job_id)
        wait_for(lambda: live() == [], 60, "the RM to list no container of the ended attempt")
    finally:
        close_gateway(gateway)
