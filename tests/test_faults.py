"""Faults a bad day in production brings, and the invariant that must hold after each, with no restart:
every job ends, no task succeeds twice, no dismissed job is published.

In one process: the store locked and its disk full under running tasks, a dismissal racing the last
task, drift between the store and the engine, slow synchronous requests. As processes, on loopback:
PostgreSQL stopped and restarted, the dispatcher's lock session killed, SIGTERM and SIGINT, the wall
clock stepped back (libfaketime).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from mesos_backend import TaskEvent, TaskSpec
from mesos_backend.local import LocalBackend
from wps_gateway.dispatcher import Dispatcher
from wps_gateway.jobs import request_dismiss
from wps_gateway.leader_lock import ADVISORY_KEY, AdvisoryLock, Leadership, LeadershipLost
from wps_gateway.runner import DispatcherRunner, backend_for, dispatcher_options
from wps_gateway.store.db import Store
from wps_gateway.store.models import DispatcherLease, Job, JobStatus, Notification, Task, TaskAttempt

from .conftest import build_gateway, close_gateway, require
from .gateway_process import GatewayProcess, wait_final
from .jobs_support import (
    attempts_of,
    final,
    finished_ok,
    job_id_of,
    job_of,
    runs_per_task,
    submit_sleepy,
    wait_for,
    wait_turns,
)
from .ogcapi_support import validate_official

FAKETIME_LIBS = [Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
                 Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
                 Path("/usr/lib/faketime/libfaketime.so.1")]


def assert_invariants(store: Store) -> None:
    """Every job ended; no task succeeded twice; no dismissed job has outputs or a success callback."""
    with store.sessions() as s:
        for job in s.scalars(select(Job)):
            assert job.status in JobStatus.FINAL, f"job {job.id} is still {job.status}: {job.message}"
            if job.status == JobStatus.DISMISSED:
                assert not job.outputs, f"dismissed job {job.id} was published"
                assert not s.scalars(select(Notification).where(Notification.job_id == job.id,
                                                                Notification.event == "success")).first()
        for task in s.scalars(select(Task)):
            succeeded = [a for a in task.attempt_rows if a.status == "succeeded"]
            assert len(succeeded) <= 1, f"task {task.id} succeeded {len(succeeded)} times"
            assert not [a for a in task.attempt_rows if a.status in ("launched", "running")], task.id


def assert_succeeds_once(gateway, job_id: str) -> None:
    """The job ends successful with each of its two tasks run exactly once, and the store is consistent."""
    finished_ok(gateway, job_id)
    assert runs_per_task(gateway.settings.jobs_dir, job_id) == {"0": 1, "1": 1}
    assert_invariants(gateway.store)


def sandboxes_of(store: Store, job_id: str, status: str = "running") -> list[Path]:
    with store.sessions() as s:
        rows = s.scalars(select(TaskAttempt).join(Task).where(Task.job_id == job_id, TaskAttempt.status == status))
        return [Path(a.sandbox) for a in rows if a.sandbox]


def ended(sandboxes: list[Path]) -> bool:
    """Whether every one of these tasks has ended (its wrapper recorded how)."""
    return all((s / "exit_status").exists() for s in sandboxes)


# -- in one process -------------------------------------------------------------------------------------


def test_events_survive_turns_the_locked_store_fails(tmp_path, sample_data):
    database = tmp_path / "var" / "gateway.db"
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_DATABASE_URL=f"sqlite:///{database}?timeout=0.2")
    try:
        job_id = submit_sleepy(gateway, [2, 3], seconds=2)
        wait_for(lambda: len(sandboxes_of(gateway.store, job_id)) == 2, what="both squares running")
        sandboxes = sandboxes_of(gateway.store, job_id)
        locker = sqlite3.connect(database, timeout=5, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # as a long migration or a stuck writer would
        try:
            wait_for(lambda: ended(sandboxes), what="the squares ending while the store is locked")
            dispatcher = gateway.runner.dispatcher
            wait_for(lambda: len(dispatcher._pending) >= 2, what="the dispatcher holding events it cannot write")
            # A submission cannot be written either: 503, with Retry-After, in the protocol's words.
            busy = gateway.client.get("/wps", {"service": "WPS", "request": "Execute", "version": "1.0.0",
                                               "identifier": "sleepy-squares", "DataInputs": "numbers=1",
                                               "storeExecuteResponse": "true", "status": "true"}, status=503)
            assert b'exceptionCode="ServerBusy"' in busy.body and busy.headers["Retry-After"]
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert_succeeds_once(gateway, job_id)
    finally:
        close_gateway(gateway)


def test_events_survive_a_full_disk(tmp_path, sample_data):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        database = mount / "gateway.db"
        gateway = build_gateway(tmp_path / "var", sample_data,
                                GATEWAY_DATABASE_URL=f"sqlite:///{database}?timeout=0.2")
        try:
            job_id = submit_sleepy(gateway, [2, 3], seconds=2)
            wait_for(lambda: len(sandboxes_of(gateway.store, job_id)) == 2, what="both squares running")
            sandboxes = sandboxes_of(gateway.store, job_id)
            filler = mount / "filler"
            with filler.open("wb", buffering=0) as out:  # fill the disk to the last byte (unbuffered: no
                try:                                      # failing flush when it closes)
                    while out.write(b"\0" * 65536):
                        pass
                except OSError:
                    pass
            wait_for(lambda: ended(sandboxes), what="the squares ending on a full disk")
            dispatcher = gateway.runner.dispatcher
            wait_for(lambda: len(dispatcher._pending) >= 2, what="the dispatcher holding events it cannot write")
            filler.unlink()
            assert_succeeds_once(gateway, job_id)
        finally:
            close_gateway(gateway)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_dismissal_that_was_answered_wins_over_the_end_being_recorded(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    dispatcher = Dispatcher(gateway.store, backend_for(gateway.settings), dispatcher_options(gateway.settings))
    dispatcher.start()
    try:
        job_id = submit_sleepy(gateway, [3], seconds=0)

        def sum_launched() -> bool:  # turn until the last task (the sum) is handed to the backend, no further
            dispatcher.run_once()
            return len(attempts_of(gateway, job_id)) == 2

        wait_for(sum_launched, what="the last task launched")
        wait_for(lambda: dispatcher.backend.active_tasks() == set() and not dispatcher._events.empty(),
                 what="the last task ending, its end not yet recorded")
        answered = gateway.client.delete(f"/jobs/{job_id}")
        assert validate_official("statusInfo", answered.json)["status"] == "dismissed"
        dispatcher.run_once()  # records the last task's success: that must not publish the job
        job = job_of(gateway, job_id)
        assert job.status == JobStatus.DISMISSED and not job.outputs
        assert_invariants(gateway.store)
    finally:
        dispatcher.backend.stop()
        close_gateway(gateway)


def test_a_job_that_ended_first_is_dismissed_and_loses_its_results(gateway):
    """A dismissal that comes after the end still dismisses (OGC API - Processes /req/dismiss, WPS 2.0
    Dismiss): the job ends dismissed and its results are withdrawn at once."""
    job_id = submit_sleepy(gateway, [2], seconds=0)
    assert final(gateway, job_id).outputs
    dismissed = request_dismiss(gateway.store, job_id)
    assert dismissed.status == JobStatus.DISMISSED and dismissed.outputs == {}
    assert job_of(gateway, job_id).status == JobStatus.DISMISSED


class LossyBackend(LocalBackend):
    """A local backend whose engine loses the first terminal event it reports (a dropped message)."""

    def start(self, on_event) -> None:
        dropped: list[TaskEvent] = []

        def lossy(event: TaskEvent) -> None:
            if event.state.is_terminal and not dropped:
                dropped.append(event)
                return
            on_event(event)

        super().start(lossy)


def test_tasks_whose_keeper_was_killed_run_again_at_no_cost_to_their_retries(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data)
    try:
        job_id = submit_sleepy(gateway, [2, 3], seconds=5)
        wait_for(lambda: len([a for a in attempts_of(gateway, job_id) if a.pid]) == 2, what="both squares running")
        keepers = {int(Path(f"/proc/{a.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
                   for a in attempts_of(gateway, job_id)}
        assert len(keepers) == 1
        os.kill(keepers.pop(), signal.SIGKILL)  # the OOM killer's choice, say
        finished_ok(gateway, job_id)
        squares = [a for a in attempts_of(gateway, job_id) if ".square." in a.backend_task_id]
        assert sorted((a.status, a.reason) for a in squares) == [("lost", "keeper_lost")] * 2 + [
            ("succeeded", None)] * 2
        with gateway.store.session() as session:  # the step allows one retry: the lost attempts did not use it
            assert {t.max_attempts for t in session.scalars(select(Task).where(Task.step == "square"))} == {3}
        assert_invariants(gateway.store)
    finally:
        close_gateway(gateway)


def test_drift_an_attempt_the_engine_forgot_is_recovered(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, GATEWAY_RECONCILE_INTERVAL="0.2")
    backend = LossyBackend(gateway.settings.sandbox_dir, cpus=2, mem=1024)
    runner = DispatcherRunner(gateway.settings, gateway.store, backend=backend)
    runner.start_thread()
    try:
        job_id = submit_sleepy(gateway, [2, 3], seconds=0)
        runner.wake()
        finished_ok(gateway, job_id)
        healed = [a for a in attempts_of(gateway, job_id) if "read from its sandbox" in a.message]
        assert len(healed) == 1 and healed[0].status == "succeeded"  # its end was read, it did not run again
        assert runs_per_task(gateway.settings.jobs_dir, job_id) == {"0": 1, "1": 1}
        assert_invariants(gateway.store)
    finally:
        runner.stop()
        close_gateway(gateway)


def test_drift_a_task_the_store_does_not_want_is_killed(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_RECONCILE_INTERVAL="0.2")
    try:
        backend = gateway.runner.dispatcher.backend
        wait_turns(gateway, 1)  # the backend has started
        backend.launch(TaskSpec("stray.1", ["sleep", "60"]))
        wait_for(lambda: "stray.1" in backend.active_tasks(), what="the stray task held")
        wait_for(lambda: "stray.1" not in backend.active_tasks(), what="the stray task killed")
    finally:
        close_gateway(gateway)


def test_slow_synchronous_executes_cannot_hold_every_thread(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_SYNC_MAX_WAITING="1")
    try:
        body = {"inputs": {"numbers": [4], "seconds": 3}}
        first: dict = {}
        waiting = threading.Thread(target=lambda: first.update(
            response=gateway.client.post_json("/processes/sleepy-squares/execution", body)))
        waiting.start()
        wait_for(lambda: gateway.store.sessions().scalar(select(Task).where(Task.status == "running")),
                 what="the first synchronous job running")
        second = gateway.client.post_json("/processes/sleepy-squares/execution", body, status=201)
        assert waiting.is_alive(), "the first request should still be waiting for its job"
        info = validate_official("statusInfo", second.json)
        assert info["status"] in ("accepted", "running") and "answered asynchronously" in info["message"]
        health = gateway.client.get("/health").json
        assert health["status"] == "ok" and health["dispatcher"]["status"] == "active"
        waiting.join(60)
        assert first["response"].status_int == 200 and first["response"].text == "16"
    finally:
        close_gateway(gateway)


def test_health_says_when_no_dispatcher_is_at_work(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        health = gateway.client.get("/health").json
        assert health["status"] == "degraded" and health["store"]["status"] == "ok"
        assert health["dispatcher"]["status"] == "never started"
    finally:
        close_gateway(gateway)


# -- as processes, with real servers --------------------------------------------------------------------


@contextmanager
def gateway_with_store(data_dir: Path, sample_data: Path, url: str | None = None,
                       **env: str) -> Iterator[tuple[GatewayProcess, Store]]:
    """A gateway process (on ``url``, or SQLite in ``data_dir``) and a store to look into; both closed after."""
    if url:
        env["GATEWAY_DATABASE_URL"] = url
    gateway = GatewayProcess(data_dir, sample_data, **env).start()
    store = Store(url or f"sqlite:///{data_dir / 'gateway.db'}")
    try:
        yield gateway, store
    finally:
        gateway.stop()
        store.dispose()


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.slow
def test_sigterm_lets_running_tasks_finish_then_exits(tmp_path, sample_data):
    data_dir = tmp_path / "var"
    with gateway_with_store(data_dir, sample_data, GATEWAY_SHUTDOWN_GRACE="120", LOCAL_CPUS="1") as (gateway, store):
        location = gateway.submit("numbers=1;numbers=2;numbers=3;numbers=4;seconds=2")
        job_id = job_id_of(location)
        gateway.wait_until(lambda: len(sandboxes_of(store, job_id)) == 2, 30, "two squares running")
        running = sandboxes_of(store, job_id)
        gateway.signal(signal.SIGTERM)
        assert gateway.exited(90) == 0
        assert gateway.logged("shutting down gracefully")
        with store.sessions() as s:
            done = s.scalars(select(TaskAttempt).where(TaskAttempt.status == "succeeded")).all()
            assert {Path(a.sandbox) for a in done} >= set(running), "the running tasks were not let finish"
        assert_no_active_attempt(store)
        restarted = gateway.restarted().start()
        try:
            assert wait_final(restarted, location) is not None
        finally:
            restarted.stop()
        assert job_status(store, job_id) == JobStatus.SUCCESSFUL
        assert runs_per_task(data_dir / "jobs", job_id) == {"0": 1, "1": 1, "2": 1, "3": 1}
        assert_invariants(store)


@pytest.mark.slow
def test_sigint_then_a_second_signal_stops_the_tasks_and_records_it(tmp_path, sample_data):
    data_dir = tmp_path / "var"
    with gateway_with_store(data_dir, sample_data, GATEWAY_SHUTDOWN_GRACE="120") as (gateway, store):
        job_id = job_id_of(gateway.submit("numbers=1;numbers=2;seconds=30"))
        gateway.wait_until(lambda: len(sandboxes_of(store, job_id)) == 2, 30, "both squares running")
        gateway.signal(signal.SIGINT)
        gateway.wait_until(lambda: gateway.logged("shutting down gracefully"), 30, "the graceful shutdown")
        gateway.signal(signal.SIGINT)
        assert gateway.exited(60) == 0
        with store.sessions() as s:
            attempts = s.scalars(select(TaskAttempt)).all()
            assert {(a.status, a.reason) for a in attempts} == {("lost", "backend_stopped")}
            tasks = s.scalars(select(Task).where(Task.job_id == job_id, Task.step == "square")).all()
            assert {t.status for t in tasks} == {"queued"}  # to run again, without spending a retry
        assert_no_active_attempt(store)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_database_outage_mid_job_heals_without_a_restart(tmp_path, sample_data, private_postgres):
    url = private_postgres.url()
    with gateway_with_store(tmp_path / "var", sample_data, url=url) as (gateway, store):
        location = gateway.submit("numbers=2;numbers=3;seconds=2")
        job_id = job_id_of(location)
        gateway.wait_until(lambda: len(sandboxes_of(store, job_id)) == 2, 30, "both squares running")
        sandboxes = sandboxes_of(store, job_id)
        store.dispose()
        private_postgres.stop()
        try:
            base = f"http://127.0.0.1:{gateway.port}"
            status, headers, body = fetch(f"{base}/health")
            assert status == 503 and headers["Retry-After"] and b'"unavailable"' in body
            status, headers, body = fetch(f"{base}/jobs/{job_id}")
            assert status == 503 and headers["Content-Type"] == "application/problem+json" and headers["Retry-After"]
            status, headers, body = fetch(location)
            assert status == 503 and b'exceptionCode="ServerBusy"' in body and headers["Retry-After"]
            gateway.wait_until(lambda: ended(sandboxes), 60, "the squares ending during the outage")
        finally:
            private_postgres.resume()
        status = wait_final(gateway, location)
        assert status is not None and job_status(store, job_id) == JobStatus.SUCCESSFUL
        assert runs_per_task(tmp_path / "var" / "jobs", job_id) == {"0": 1, "1": 1}
        assert not gateway.logged("stepping down")
        assert_invariants(store)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_dispatcher_whose_lock_session_is_killed_is_fenced_off(tmp_path, sample_data, private_postgres):
    url = private_postgres.url()
    gateway = GatewayProcess(tmp_path / "var", sample_data, GATEWAY_DATABASE_URL=url).start()
    store = Store(url)
    rival = Leadership(store, AdvisoryLock(store.engine))
    try:
        location = gateway.submit(";".join(f"numbers={n}" for n in range(1, 5)) + ";seconds=2")
        job_id = job_id_of(location)
        gateway.wait_until(lambda: sandboxes_of(store, job_id), 30, "a square running")
        with store.sessions() as s:
            epoch = s.get(DispatcherLease, 1).epoch
        # The lock holder's session dies (an administrator's pg_terminate_backend, a proxy cutting it),
        # and another dispatcher takes the lock before the first one takes it again.
        gateway.wait_until(lambda: take_lock(private_postgres, rival), 60, "the rival taking the lock")
        assert rival.epoch > epoch
        gateway.wait_until(lambda: gateway.logged("dispatcher stepping down"), 30, "the old dispatcher fenced off")
        with pytest.raises(LeadershipLost), store.session() as s:  # a write at the old epoch fails
            _at_epoch(store, epoch).fence(s)
        rival.release()  # the fenced dispatcher stands by again and takes over
        status = wait_final(gateway, location)
        assert status is not None and job_status(store, job_id) == JobStatus.SUCCESSFUL
        assert not gateway.logged("UniqueViolation")
        assert_invariants(store)
    finally:
        rival.release()
        gateway.stop()
        store.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_standby_rides_out_a_database_restart(tmp_path, sample_data, private_postgres):
    url = private_postgres.url()
    store = Store(url)
    store.upgrade()
    holder = Leadership(store, AdvisoryLock(store.engine))
    assert holder.acquire()
    standby = GatewayProcess(tmp_path / "var", sample_data, command="dispatch", GATEWAY_DATABASE_URL=url).start()
    try:
        standby.wait_until(lambda: standby.logged("standing by"), 60, "the standby waiting")
        store.dispose()
        private_postgres.stop()
        private_postgres.resume()  # the holder's session died with the server
        standby.wait_until(lambda: standby.logged("dispatcher active"), 60, "the standby taking over")
        assert standby.proc.poll() is None
    finally:
        holder.release()
        standby.stop()
        store.dispose()


@pytest.mark.slow
def test_stepping_the_wall_clock_back_does_not_hold_a_retry(tmp_path, sample_data):
    library = next((lib for lib in FAKETIME_LIBS if lib.exists()), None)
    require(library is not None, "libfaketime not found (Debian package faketime)")
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    data_dir = tmp_path / "var"
    with gateway_with_store(data_dir, sample_data, GATEWAY_RETRY_BACKOFF="5", LD_PRELOAD=str(library),
                            FAKETIME_TIMESTAMP_FILE=str(clock), FAKETIME_NO_CACHE="1",
                            FAKETIME_DONT_FAKE_MONOTONIC="1") as (gateway, store):
        location = gateway.submit("numbers=7;seconds=0;fail_first=true")
        job_id = job_id_of(location)
        gateway.wait_until(lambda: sandboxes_of(store, job_id, "failed"), 30, "the first attempt failing")
        clock.write_text("-600\n")  # an NTP step back by ten minutes, while the retry waits its 5 s
        wait_final(gateway, location, timeout=60)
        assert job_status(store, job_id) == JobStatus.SUCCESSFUL
        with store.sessions() as s:
            first, second = s.scalars(select(TaskAttempt).join(Task).where(Task.step == "square")
                                      .order_by(TaskAttempt.number)).all()
            assert second.launched < first.finished, "the clock was not stepped between the attempts"
        assert_invariants(store)


def take_lock(postgres, rival: Leadership) -> bool:
    """Kill whichever session holds the dispatcher lock, then try to take it."""
    postgres.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                     f"AND objid = {ADVISORY_KEY} AND granted")
    return rival.acquire()


def _at_epoch(store: Store, epoch: int) -> Leadership:
    stale = Leadership(store, AdvisoryLock(store.engine))
    stale.epoch = epoch
    return stale


def job_status(store: Store, job_id: str) -> str:
    with store.sessions() as s:
        return s.get(Job, job_id).status


def assert_no_active_attempt(store: Store) -> None:
    with store.sessions() as s:
        active = s.scalars(select(TaskAttempt).where(TaskAttempt.status.in_(("launched", "running")))).all()
        assert not active, [(a.backend_task_id, a.status) for a in active]
