"""Per-client limits: nobody fills the queue for everyone (429 with Retry-After, in each protocol's words)."""

from __future__ import annotations

import threading

from lxml import etree

from .conftest import build_gateway, close_gateway
from .jobs_support import submit_sleepy, wait_for
from .ogcapi_support import problem
from .test_wps1 import NS

WPS2 = {"ows": "http://www.opengis.net/ows/2.0"}
WPS2_EXECUTE = """<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"
    service="WPS" version="2.0.0" response="document" mode="async"><ows:Identifier>sleepy-squares</ows:Identifier>
  <wps:Input id="numbers"><wps:Data>1</wps:Data></wps:Input><wps:Output id="total"/></wps:Execute>"""


def execute(client, numbers, status, prefer="respond-async", address="192.0.2.1"):
    return client.post_json("/processes/sleepy-squares/execution", {"inputs": {"numbers": numbers, "seconds": 30}},
                            headers={"Prefer": prefer} if prefer else {}, status=status,
                            extra_environ={"REMOTE_ADDR": address})


def test_jobs_and_tasks_per_client_are_limited(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False,
                            GATEWAY_CLIENT_MAX_JOBS="2", GATEWAY_CLIENT_MAX_TASKS="5")
    try:
        client = gateway.client
        execute(client, [1, 2], 201)  # 3 tasks
        over_tasks = problem(execute(client, [1, 2], 429), 429)  # 3 + 3 > 5
        assert "unfinished jobs 3" in over_tasks["detail"]
        execute(client, [1], 201)  # 2 more: 5, at the limit
        answer = execute(client, [1], 429)
        assert answer.headers["Retry-After"] and "2 jobs accepted or running" in problem(answer, 429)["detail"]
        # another client is not held back by this one
        execute(client, [1], 201, address="192.0.2.7")
        # WPS 1.0.0 and 2.0 say it in their words
        wps1 = client.get("/wps", {"service": "WPS", "request": "Execute", "version": "1.0.0",
                                   "identifier": "sleepy-squares", "DataInputs": "numbers=1",
                                   "storeExecuteResponse": "true", "status": "true"}, status=429,
                          extra_environ={"REMOTE_ADDR": "192.0.2.1"})
        assert etree.fromstring(wps1.body).find("ows:Exception", NS).get("exceptionCode") == "ServerBusy"
        wps2 = client.post("/wps", WPS2_EXECUTE, content_type="text/xml", status=429,
                           extra_environ={"REMOTE_ADDR": "192.0.2.1"})
        assert etree.fromstring(wps2.body).find("ows:Exception", WPS2).get("exceptionCode") == "NoApplicableCode"
        # once a job ends, there is room again
        first = client.get("/jobs").json["jobs"][-1]["jobID"]
        client.delete(f"/jobs/{first}")
        execute(client, [1], 201)
    finally:
        close_gateway(gateway)


def test_a_job_with_more_tasks_than_a_job_may_have_is_refused_before_it_is_accepted(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, GATEWAY_MAX_TASKS_PER_JOB="3")
    try:
        refused = problem(execute(gateway.client, [1, 2, 3], 400), 400)  # 3 squares and a sum
        assert refused["detail"].startswith("the job would need 4 tasks, more than the 3")
        assert refused["input"] == "numbers"
        assert gateway.client.get("/jobs").json["jobs"] == []
    finally:
        close_gateway(gateway)


def test_synchronous_requests_per_client_are_limited(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_CLIENT_MAX_SYNC="1")
    try:
        waiting = threading.Thread(target=lambda: execute(gateway.client, [1], [200, 410], prefer=None))
        waiting.start()
        wait_for(lambda: gateway.client.get("/jobs").json["jobs"], what="the first synchronous job accepted")
        wait_for(lambda: gateway.context._sync_waits._waiting, what="the first request waiting")
        answer = execute(gateway.client, [2], 429, prefer=None)
        assert "synchronous requests waiting" in problem(answer, 429)["detail"]
        submit_sleepy(gateway, [3], seconds=0)  # asynchronous requests are not held back
        for job in gateway.client.get("/jobs").json["jobs"]:
            gateway.client.delete(f"/jobs/{job['jobID']}")
        waiting.join(60)
    finally:
        close_gateway(gateway)
