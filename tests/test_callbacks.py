"""Subscriber callbacks: called on progress, success and failure; bounded; never to refused addresses."""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from wps_gateway.address_policy import AddressPolicy, ReferenceRefused
from wps_gateway.notify import (
    Notifier,
    NotifierOptions,
    SubscriberRefused,
    callback_policy,
    check_subscriber,
    pinned_request,
)
from wps_gateway.store.models import Job, JobStatus, Notification

from .conftest import build_gateway, close_gateway
from .jobs_support import wait_for


class Receiver:
    """A portal's callback endpoint on loopback: records every POST, answers ``status``."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.calls: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.calls.put((self.path, body))
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def received(self, count: int, timeout: float = 60) -> list[tuple[str, dict[str, Any]]]:
        return [self.calls.get(timeout=timeout) for _ in range(count)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    listening = Receiver()
    yield listening
    listening.close()


def execute(gateway, process: str, inputs: dict[str, Any], subscriber: dict[str, str]):
    return gateway.client.post_json(f"/processes/{process}/execution",
                                    {"inputs": inputs, "subscriber": subscriber},
                                    headers={"Prefer": "respond-async"}, expect_errors=True)


def test_the_portal_is_called_back_when_the_job_runs_and_when_it_succeeds(tmp_path, sample_data, scenes, receiver):
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_ALLOWED_CALLBACK_HOSTS=receiver.host)
    try:
        june = [{"href": p.as_uri()} for p in scenes if "20240610" in p.name][:2]
        response = execute(gateway, "ndvi-mosaic", {"scenes": june},
                           {"successUri": receiver.url("/done"), "inProgressUri": receiver.url("/progress"),
                            "failedUri": receiver.url("/failed")})
        assert response.status_code == 201, response.text
        calls = dict(receiver.received(2))
        assert calls["/progress"]["status"] == "running" and calls["/progress"]["jobID"] == response.json["jobID"]
        assert set(calls["/done"]) >= {"mosaic", "statistics", "mean_ndvi"}
        assert calls["/done"]["mosaic"]["href"].endswith(".tif")
        assert receiver.calls.empty()
    finally:
        close_gateway(gateway)


def test_a_failed_job_calls_the_failure_uri(tmp_path, sample_data, receiver):
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_ALLOWED_CALLBACK_HOSTS=receiver.host)
    try:
        response = execute(gateway, "sleepy-squares", {"numbers": [2], "fail_step": "square"},
                           {"successUri": receiver.url("/done"), "failedUri": receiver.url("/failed")})
        assert response.status_code == 201, response.text
        ((path, body),) = receiver.received(1)
        assert path == "/failed" and body["status"] == "failed" and "exited with code 3" in body["message"]
    finally:
        close_gateway(gateway)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook",  # loopback, not allow-listed
    "http://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
    "http://10.1.2.3/hook",  # private
    "file:///etc/passwd",
    "ftp://example.org/hook",
    "http://portal.example.org:99999/hook",  # malformed: port out of range
    "http://[::1/hook",  # malformed IPv6 literal
])
def test_callbacks_to_refused_addresses_are_refused_at_submission(gateway, url):
    response = execute(gateway, "sleepy-squares", {"numbers": [2]}, {"successUri": url})
    assert response.status_code == 400
    assert response.json["type"].endswith("invalid-parameter") and "subscriber" in response.json["detail"]
    with gateway.store.session() as session:
        assert session.query(Job).count() == 0, "a refused request must not leave a job"


def test_the_policy_checks_each_subscriber_url():
    policy = callback_policy(["portal.internal:8443"])
    assert check_subscriber({"successUri": "http://portal.internal:8443/cb"}, policy)
    with pytest.raises(SubscriberRefused):
        check_subscriber({"successUri": "http://portal.internal:8080/cb"}, policy)
    with pytest.raises(SubscriberRefused):
        check_subscriber({"wrongUri": "http://portal.internal:8443/cb"}, policy)


def test_delivery_is_retried_a_bounded_number_of_times_then_given_up(tmp_path, sample_data):
    failing = Receiver(status=503)
    slow = Receiver(delay=2.0)
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        with gateway.store.session() as session:
            session.add(Job(id="j-1", process_id="sleepy-squares", process_version="1", status=JobStatus.FAILED))
            session.add(Notification(job_id="j-1", event="failed", url=failing.url("/hook")))
            session.add(Notification(job_id="j-1", event="failed", url=slow.url("/hook")))
        notifier = Notifier(gateway.store, callback_policy([failing.host, slow.host]), lambda job, event: {"x": 1},
                            NotifierOptions(timeout=0.5, max_attempts=3, backoff=0.05))

        def settled() -> bool:
            notifier.run_once()
            with gateway.store.session() as session:
                return all(n.status != "pending" for n in session.query(Notification))

        wait_for(settled, 30)
        with gateway.store.session() as session:
            rows = session.query(Notification).order_by(Notification.id).all()
            assert [(n.status, n.attempts) for n in rows] == [("failed", 3), ("failed", 3)]
            assert rows[0].last_error == "HTTP 503" and "Timeout" in rows[1].last_error
        assert failing.calls.qsize() == 3
    finally:
        failing.close()
        slow.close()
        close_gateway(gateway)


def test_a_callback_whose_body_cannot_be_made_does_not_hold_up_the_others(tmp_path, sample_data, receiver):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        with gateway.store.session() as session:
            for job_id in ("broken", "fine"):
                session.add(Job(id=job_id, process_id="sleepy-squares", process_version="1",
                                status=JobStatus.FAILED))
            session.add(Notification(job_id="broken", event="failed", url=receiver.url("/broken")))
            session.add(Notification(job_id="fine", event="failed", url=receiver.url("/fine")))

        def payload(job, event):
            if job.id == "broken":
                raise FileNotFoundError("output gone")
            return {"jobID": job.id}

        notifier = Notifier(gateway.store, callback_policy([receiver.host]), payload,
                            NotifierOptions(max_attempts=1))
        assert notifier.run_once() == 1
        assert receiver.received(1) == [("/fine", {"jobID": "fine"})]
        with gateway.store.session() as session:
            broken = session.query(Notification).filter_by(job_id="broken").one()
            assert broken.status == "failed" and "output gone" in broken.last_error
    finally:
        close_gateway(gateway)


def test_a_callback_connects_to_the_address_that_was_checked():
    """DNS rebinding: the name is resolved once, checked, and the request goes to that address."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # a second lookup would point inside
    policy = AddressPolicy(resolver=lambda host: next(answers))
    address = policy.pinned_address("https://hooks.example.org:8443/cb")
    assert address == "93.184.216.34"
    url, headers, extensions = pinned_request("https://hooks.example.org:8443/cb?job=1", address)
    assert url == "https://93.184.216.34:8443/cb?job=1"
    assert headers == {"Host": "hooks.example.org:8443"} and extensions == {"sni_hostname": "hooks.example.org"}
    with pytest.raises(ReferenceRefused):  # the rebinding answer itself is refused
        policy.pinned_address("https://hooks.example.org:8443/cb")
    assert callback_policy(["portal.internal"]).pinned_address("http://portal.internal/cb") is None
    assert pinned_request("http://127.0.0.1:9/cb", None) == ("http://127.0.0.1:9/cb", {}, {})
