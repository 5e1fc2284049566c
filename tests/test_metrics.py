"""``/metrics`` read by ``prometheus_client``'s own parser, the job counts the triggers keep, and JSON log lines.

The dispatcher's figures travel through the job store, so they reach the
scrape from a dispatcher in another process as well as from one in the
serving process; both are checked.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, update

from wps_gateway.metrics.job_counts import fold_changes, job_counts
from wps_gateway.store.db import Store
from wps_gateway.store.models import Job, Notification

from .conftest import REPO, build_gateway, close_gateway
from .gateway_process import GatewayProcess, wait_final
from .jobs_support import final, job_id_of, job_of, submit_sleepy, wait_for

LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


def families(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family, name: str | None = None) -> dict[tuple, float]:
    """{sorted label items: value} of a family's samples called ``name`` (default: the family's own)."""
    wanted = name or family.name
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == wanted}


def scrape(gateway) -> dict[str, object]:
    response = gateway.client.get("/metrics", extra_environ=LOOPBACK)
    assert response.content_type == "text/plain" and "version=0.0.4" in response.headers["Content-Type"]
    return families(response.text)


def test_metrics_follow_jobs_tasks_and_retries(gateway):
    job_id = submit_sleepy(gateway, [1, 2], fail_runs=1)  # task 0 fails once and is retried
    assert final(gateway, job_id).status == "successful"
    failed = submit_sleepy(gateway, [3], fail_step="total")
    assert final(gateway, failed).status == "failed"

    def published() -> bool:
        found = scrape(gateway)
        latency = found.get("wps_gateway_dispatch_latency_seconds")
        jobs = found.get("wps_gateway_job_duration_seconds")
        return bool(latency and jobs and sum(samples(jobs, f"{jobs.name}_count").values()) >= 2)

    wait_for(published, 60, "the dispatcher's figures in the scrape")
    found = scrape(gateway)
    jobs = samples(found["wps_gateway_jobs"])
    assert jobs[(("process", "sleepy-squares"), ("status", "successful"))] == 1
    assert jobs[(("process", "sleepy-squares"), ("status", "failed"))] == 1
    durations = samples(found["wps_gateway_job_duration_seconds"], "wps_gateway_job_duration_seconds_count")
    assert durations[(("process", "sleepy-squares"), ("status", "successful"))] == 1
    tasks = found["wps_gateway_task_duration_seconds"]
    counts = samples(tasks, "wps_gateway_task_duration_seconds_count")
    assert counts[(("backend", "local"), ("outcome", "failed"))] >= 2  # the retried run and the total step
    assert counts[(("backend", "local"), ("outcome", "succeeded"))] >= 3
    buckets = [s for s in tasks.samples if s.name.endswith("_bucket") and s.labels["outcome"] == "succeeded"]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == counts[(("backend", "local"),
                                                                              ("outcome", "succeeded"))]
    retries = samples(found["wps_gateway_task_retries"], "wps_gateway_task_retries_total")
    assert sum(retries.values()) == 1  # only task 0's first run was retried; "total" has no retries
    latency = samples(found["wps_gateway_dispatch_latency_seconds"], "wps_gateway_dispatch_latency_seconds_count")
    assert latency[(("process", "sleepy-squares"),)] == 2
    assert samples(found["wps_gateway_backend_up"]) == {(("backend", "local"),): 1.0}
    assert samples(found["wps_gateway_dispatcher_up"]) == {(): 1.0}
    assert samples(found["wps_gateway_queue_depth"]) == {(): 0.0}
    assert samples(found["wps_gateway_callbacks_pending"]) == {(): 0.0}
    capacity = samples(found["wps_gateway_backend_capacity"])
    assert capacity[(("backend", "local"), ("resource", "cpus"))] > 0


def test_metrics_need_an_operator_unless_made_public(tmp_path, sample_data):
    closed = build_gateway(tmp_path / "closed", sample_data, dispatcher=False)
    opened = build_gateway(tmp_path / "open", sample_data, dispatcher=False, CONSOLE_PUBLIC_METRICS="true")
    try:
        closed.client.get("/metrics", extra_environ={"REMOTE_ADDR": "10.1.2.3"}, status=403)
        text = opened.client.get("/metrics", extra_environ={"REMOTE_ADDR": "10.1.2.3"}).text
        assert "wps_gateway_jobs" in families(text) or "wps_gateway_tasks" in families(text)
    finally:
        close_gateway(closed)
        close_gateway(opened)


def test_the_outbox_is_counted_by_channel(tmp_path, sample_data):
    """Callbacks, STAC descriptions and catalogue pushes share the outbox; each is counted as what it is."""
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)  # nothing delivers the rows
    try:
        job_id = submit_sleepy(gateway, [1])
        with gateway.store.session() as session:
            for event, status in (("success", "pending"), ("inProgress", "pending"), ("stac", "pending"),
                                  ("catalogue", "delivered"), ("failed", "failed")):
                session.add(Notification(job_id=job_id, event=event, url="", status=status))
        found = scrape(gateway)
        assert samples(found["wps_gateway_callbacks_pending"]) == {(): 2.0}
        assert samples(found["wps_gateway_outbox_pending"]) == {
            (("channel", "callbacks"),): 2.0, (("channel", "stac"),): 1.0, (("channel", "catalogue"),): 0.0}
        cluster = gateway.client.get("/admin/api/cluster", extra_environ=LOOPBACK).json
        assert cluster["outboxPending"] == {"callbacks": 2, "stac": 1, "catalogue": 0}
        page = gateway.client.get("/admin/cluster", extra_environ=LOOPBACK).text
        assert "2 callbacks, 1 STAC descriptions, 0 catalogue pushes" in page
    finally:
        close_gateway(gateway)


def test_a_dispatcher_of_its_own_reaches_the_scrape_and_logs_json(tmp_path, sample_data):
    """``wps-gateway dispatch`` in another process, with JSON log lines: its metrics come through the store."""
    front = build_gateway(tmp_path / "var", sample_data, dispatcher=False, GATEWAY_DISPATCHER="external")
    dispatcher = GatewayProcess(tmp_path / "var", sample_data, command="dispatch", LOGGING_FORMAT="json").start()
    try:
        job_id = submit_sleepy(front, [2, 3])
        wait_for(lambda: job_of(front, job_id).status in ("successful", "failed"), 90, "the job to end")
        assert job_of(front, job_id).status == "successful"

        def counted() -> bool:
            found = scrape(front)
            jobs = found.get("wps_gateway_job_duration_seconds")
            return bool(jobs) and sum(samples(jobs, f"{jobs.name}_count").values()) == 1

        wait_for(counted, 60, "the other process's figures in the scrape")
        lines = [json.loads(line) for line in dispatcher.log.read_text().splitlines() if line.strip()]
        assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
        assert [line for line in lines if line.get("job_id") == job_id], dispatcher.tail()
    finally:
        dispatcher.stop()
        close_gateway(front)


def test_json_lines_carry_the_request_id_that_goes_back_in_a_header(tmp_path, sample_data):
    process = GatewayProcess(tmp_path / "var", sample_data, LOGGING_FORMAT="json").start()
    try:
        status_url = process.submit("numbers=4;seconds=0;fail_runs=1")  # a retry: a line about the task
        job_id = job_id_of(status_url)
        wait_final(process, status_url)
        request = urllib.request.Request(f"http://127.0.0.1:{process.port}/jobs/{job_id}",
                                         headers={"X-Request-Id": "trace-42"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["X-Request-Id"] == "trace-42"
        with urllib.request.urlopen(f"http://127.0.0.1:{process.port}/health", timeout=10) as response:
            generated = response.headers["X-Request-Id"]
        assert generated and generated != "trace-42"

        def logged() -> list[dict]:
            lines = [json.loads(line) for line in process.log.read_text().splitlines() if line.startswith("{")]
            return [line for line in lines if line.get("request_id") == "trace-42"]

        wait_for(logged, 30, "the request's log line")
        (line,) = logged()
        assert line["path"] == f"/jobs/{job_id}" and line["status"] == 200 and line["job_id"] == job_id
        tasks = [json.loads(text) for text in process.log.read_text().splitlines() if text.startswith("{")
                 and json.loads(text).get("task_id", "").startswith(f"{job_id}.square.0")]
        assert tasks, process.tail()  # the dispatcher's lines about a task name it
    finally:
        process.stop()


def count_changes(store: Store) -> None:
    """Inserts, status changes and deletes, as the gateway makes them; the counts follow, folded or not."""
    ids = [str(uuid.uuid4()) for _ in range(6)]
    with store.session() as session:
        for n, job_id in enumerate(ids):
            session.add(Job(id=job_id, process_id=f"p{n % 2}", process_version="1", status="accepted"))
    assert job_counts(store) == {("p0", "accepted"): 3, ("p1", "accepted"): 3}
    with store.session() as session:
        session.execute(update(Job).where(Job.id.in_(ids[:4])).values(status="running"))
        session.execute(update(Job).where(Job.id == ids[0]).values(message="no status change: no count change"))
    assert fold_changes(store) == 6 + 8
    with store.session() as session:
        session.execute(update(Job).where(Job.id == ids[0]).values(status="successful"))
        session.execute(delete(Job).where(Job.id == ids[5]))
    expected = {("p0", "running"): 1, ("p1", "running"): 2, ("p0", "successful"): 1, ("p0", "accepted"): 1}
    assert job_counts(store) == expected  # folded and pending changes together
    fold_changes(store, batch=2)
    assert job_counts(store) == expected and fold_changes(store) == 0


def test_job_counts_follow_every_change_on_sqlite(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'gateway.db'}")
    store.upgrade()
    count_changes(store)


@pytest.mark.postgres
def test_job_counts_follow_every_change_on_postgresql(postgres_url):
    store = Store(postgres_url)
    store.upgrade()
    count_changes(store)
    store.dispose()


def test_the_grafana_dashboard_uses_only_metrics_the_gateway_serves(gateway):
    """Every series the dashboard asks for is one /metrics has: here with the local backend, or, for the Mesos
    and YARN panels, in what a published Mesos or YARN status becomes."""
    from wps_gateway.metrics.exposition import _engine

    dashboard = json.loads((REPO / "contrib" / "grafana" / "wps-gateway.json").read_text())
    wanted = {name for panel in dashboard["panels"] for target in panel["targets"]
              for name in re.findall(r"\bwps_gateway_\w+", target["expr"])}
    wait_for(lambda: "wps_gateway_task_duration_seconds" in scrape(gateway), 60, "the dispatcher's status")
    served = set(scrape(gateway))  # family names: a histogram's, a counter's without _total
    for engine in ({"backend": "mesos", "engine": {"subscribed": True, "reconciliation_age": 3}},
                   {"backend": "yarn", "engine": {"rm_reachable": True, "nodes": [{"state": "RUNNING"}]}}):
        served |= {family.name for family in _engine(engine)}
    missing = {name for name in wanted
               if not ({name, re.sub(r"_(bucket|count|sum|total)$", "", name)} & served)}
    assert wanted and not missing, missing
