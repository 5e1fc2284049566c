"""Repeated runs (mesos-http-scheduler): schedules kept in the job store, rounds of N jobs, the next round DURATION
after the previous one ended; neither a restart nor a dispatcher failover skips or doubles a round."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from wps_gateway.auth.identity import OPERATOR, USER, Identity
from wps_gateway.config import load_settings
from wps_gateway.context import GatewayContext
from wps_gateway.schedules.records import (
    NewSchedule,
    ScheduleError,
    add_schedule,
    find_schedule,
    list_schedules,
    new_schedule,
)
from wps_gateway.schedules.rounds import ScheduleRounds, round_job_ids
from wps_gateway.store.db import Store
from wps_gateway.store.models import Job, JobStatus, Schedule, utcnow

from .batch_support import task, task_list
from .conftest import PROXY, as_user, build_gateway, close_gateway, gateway_environ
from .gateway_process import active_and_standby
from .jobs_support import wait_for

OPERATOR_NAME = "olga"
ME = Identity(user="olga", roles=frozenset({USER, OPERATOR}), authenticated=True)
SQUARES = {"numbers": [2, 3], "seconds": 0.1}


def schedule_cli(data_dir, sample_data, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **gateway_environ(data_dir, sample_data, "http://localhost/wps")}
    return subprocess.run([sys.executable, "-m", "wps_gateway.cli", "--log-level", "WARNING", "schedule", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def rounds_of(store: Store, schedule: Schedule) -> list[list[Job]]:
    """The jobs of each round started, by their derived ids (a round missing a job shows it)."""
    with store.sessions() as session:
        current = session.get(Schedule, schedule.id)
        rounds = []
        for number in range(1, current.round + 1):
            ids = round_job_ids(schedule.id, number, schedule.parallel)
            rounds.append(list(session.scalars(select(Job).where(Job.id.in_(ids)))))
        return rounds


def run_together(*calls: Callable[[], object], timeout: float = 60.0) -> list[BaseException]:
    """Each call in a thread of its own, all let go at once (a barrier); what they raised."""
    barrier = threading.Barrier(len(calls))
    raised: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout)
            call()
        except BaseException as exc:  # whatever a thread raised, the test reports
            raised.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a call did not return"
    return raised


def all_jobs(store: Store) -> list[Job]:
    with store.sessions() as session:
        return list(session.scalars(select(Job)))


def finished_schedule(store: Store, schedule_id: str) -> bool:
    with store.sessions() as session:
        return session.get(Schedule, schedule_id).state == "finished"


def assert_rounds_in_order(store: Store, schedule: Schedule, rounds: int) -> None:
    """Every round has exactly its jobs, all successful, and starts ``every`` after the last one ended."""
    done = rounds_of(store, schedule)
    assert len(done) == rounds
    assert len(all_jobs(store)) == rounds * schedule.parallel, "no job outside the rounds"
    for earlier, later in zip(done, done[1:], strict=False):
        assert len(later) == schedule.parallel
        ended = max(job.finished for job in earlier)
        assert min(job.created for job in later) >= ended + timedelta(seconds=schedule.every)
    assert all(job.status == JobStatus.SUCCESSFUL and job.protocol == "schedule" for r in done for job in r)


def test_rounds_of_parallel_jobs_each_after_the_previous_ended(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data)
    try:
        schedule = add_schedule(gateway.context, NewSchedule("sleepy-squares", SQUARES, 2, 0.3, rounds=3), ME)
        wait_for(lambda: finished_schedule(gateway.store, schedule.id), 120, "three rounds")
        assert_rounds_in_order(gateway.store, schedule, 3)
        assert {job.user for job in all_jobs(gateway.store)} == {"olga"}
    finally:
        close_gateway(gateway)


def test_a_task_list_on_a_schedule(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data)
    inputs = {"tasks": {"value": task_list(task("etl", "echo extract-transform-load")),
                        "mediaType": "application/json"}}
    try:
        schedule = add_schedule(gateway.context, NewSchedule("batch", inputs, 3, 0.2, rounds=2), ME)
        wait_for(lambda: finished_schedule(gateway.store, schedule.id), 120, "two rounds of task lists")
        assert_rounds_in_order(gateway.store, schedule, 2)
    finally:
        close_gateway(gateway)


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_round_started_before_a_crash_gets_its_missing_jobs_and_no_more(tmp_path, sample_data, request, database):
    """The state a crash between starting a round and submitting its jobs leaves: the round is recorded, one of
    its jobs exists. Two loops working on it at once (an old leader's last turn and a new one's) make the
    missing jobs once."""
    extra = {"GATEWAY_DATABASE_URL": request.getfixturevalue("postgres_url")} if database == "postgresql" else {}
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, **extra)
    try:
        schedule = add_schedule(gateway.context, NewSchedule("sleepy-squares", SQUARES, 3, 60, rounds=1), ME)
        first = ScheduleRounds(gateway.store, lambda: gateway.context, 0.05)
        first.turn()
        assert [len(r) for r in rounds_of(gateway.store, schedule)] == [3]
        with gateway.store.session() as session:  # as if only the first job had been written before the crash
            for job_id in round_job_ids(schedule.id, 1, 3)[1:]:
                session.delete(session.get(Job, job_id))
        loops = [ScheduleRounds(gateway.store, lambda: gateway.context, 0.05) for _ in range(2)]
        assert run_together(*(loop.turn for loop in loops)) == []
        assert [len(r) for r in rounds_of(gateway.store, schedule)] == [3]
        assert len(all_jobs(gateway.store)) == 3
    finally:
        close_gateway(gateway)


def test_a_restart_between_rounds_neither_skips_nor_doubles_one(tmp_path, sample_data):
    data = tmp_path / "var"
    gateway = build_gateway(data, sample_data)
    schedule = add_schedule(gateway.context, NewSchedule("sleepy-squares", {**SQUARES, "seconds": 0.5}, 2, 0.2,
                                                         rounds=3), ME)
    try:
        wait_for(lambda: len(rounds_of(gateway.store, schedule)) == 2, 120, "the second round under way")
    finally:
        close_gateway(gateway)  # stops in the middle of round 2 (its tasks are stopped; they run again)
    again = build_gateway(data, sample_data)
    try:
        wait_for(lambda: finished_schedule(again.store, schedule.id), 120, "the rounds after the restart")
        assert_rounds_in_order(again.store, schedule, 3)
    finally:
        close_gateway(again)


@pytest.mark.slow
def test_a_dispatcher_failover_hands_the_schedule_over(tmp_path, sample_data):
    data = tmp_path / "var"
    added = schedule_cli(data, sample_data, "add", "--process", "sleepy-squares", "--inputs",
                         json.dumps({**SQUARES, "seconds": 0.5}), "--parallel", "2", "--every", "0.3s",
                         "--rounds", "4", "--name", "etl")
    assert added.returncode == 0, added.stderr
    store = Store(f"sqlite:///{data / 'gateway.db'}")
    schedule = find_schedule(store, "etl")
    first, second = active_and_standby(data, sample_data)
    try:
        first.wait_until(lambda: len(rounds_of(store, schedule)) >= 2, 120, "the second round")
        first.kill()
        second.wait_until(lambda: second.logged("dispatcher active"), 60, "the standby taking over")
        second.wait_until(lambda: finished_schedule(store, schedule.id), 180, "the rounds after the failover")
        assert_rounds_in_order(store, schedule, 4)
    finally:
        second.stop()
        first.stop()
        store.dispose()


def test_pause_holds_the_next_round_until_resumed(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data)
    try:
        schedule = add_schedule(gateway.context, NewSchedule("sleepy-squares", SQUARES, 1, 0.1), ME)
        wait_for(lambda: len(rounds_of(gateway.store, schedule)) >= 1, 60, "a first round")
        gateway.client.post(f"/admin/api/schedules/{schedule.id}/pause", status=200, extra_environ=PROXY)
        with gateway.store.sessions() as session:
            started = session.get(Schedule, schedule.id).round
        wait_for(lambda: all(j.status in JobStatus.FINAL for j in all_jobs(gateway.store)), 60, "its jobs ending")
        turns = gateway.runner.schedules.turns
        wait_for(lambda: gateway.runner.schedules.turns >= turns + 10, 60, "ten turns of the schedules loop")
        assert len(rounds_of(gateway.store, schedule)) == started, "no round started while paused"
        gateway.client.post(f"/admin/api/schedules/{schedule.id}/resume", status=200, extra_environ=PROXY)
        wait_for(lambda: len(rounds_of(gateway.store, schedule)) > started, 60, "a round after resuming")
    finally:
        close_gateway(gateway)


def test_the_command_line_adds_lists_pauses_resumes_and_removes(tmp_path, sample_data):
    data = tmp_path / "var"
    added = schedule_cli(data, sample_data, "add", "--process", "sleepy-squares", "--inputs", json.dumps(SQUARES),
                         "--parallel", "2", "--every", "5m", "--rounds", "3", "--name", "nightly")
    assert added.returncode == 0, added.stderr
    assert "nightly" in added.stdout and "x2 every 0:05:00  rounds 0/3" in added.stdout
    paused = schedule_cli(data, sample_data, "pause", "nightly")
    assert paused.returncode == 0 and " paused " in paused.stdout
    resumed = schedule_cli(data, sample_data, "resume", "nightly")
    assert resumed.returncode == 0 and " active " in resumed.stdout and resumed.stdout.count("nightly") == 1
    removed = schedule_cli(data, sample_data, "remove", "nightly")
    assert removed.returncode == 0 and removed.stdout.splitlines() == ["schedule nightly removed"]
    missing = schedule_cli(data, sample_data, "pause", "nightly")
    assert missing.returncode == 1 and "no schedule 'nightly'" in missing.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--every", "0s"], "every: '0s' must be more than zero"),
    (["--every=-5m"], "every: '-5m' must be more than zero"),
])
def test_a_zero_or_negative_interval_is_refused_and_nothing_kept(tmp_path, sample_data, args, message):
    done = schedule_cli(tmp_path / "var", sample_data, "add", "--process", "sleepy-squares", "--inputs",
                        json.dumps(SQUARES), *args)
    assert done.returncode == 2 and done.stderr.strip() == f"wps-gateway schedule: {message}"
    with Store(f"sqlite:///{tmp_path / 'var' / 'gateway.db'}").sessions() as session:
        assert session.scalars(select(Schedule)).all() == []


@pytest.mark.parametrize(("values", "message"), [
    ({"every": 0}, "every: '0' must be more than zero"),
    ({"every": -0.5}, "every: '-0.5' must be more than zero"),
    ({"every": "soon"}, "is not a duration"),
    ({"every": True}, "every: a duration"),
    ({"parallel": 0}, "parallel: jobs per round must be a whole number of 1 or more"),
    ({"rounds": 0}, "rounds: must be a whole number of 1 or more"),
    ({"inputs": {"numbers": ["two"]}}, "inputs: input 'numbers' must be a integer"),
    ({"inputs": {"colour": 1}}, "process 'sleepy-squares' has no input 'colour'"),
    ({"process": "nope"}, "process: no process 'nope'"),
])
def test_a_bad_schedule_is_refused_and_not_kept(tmp_path, sample_data, values, message):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        fields = {"process": "sleepy-squares", "inputs": SQUARES, "parallel": 1, "every": 60, "rounds": None,
                  **values}
        with pytest.raises(ScheduleError) as caught:
            add_schedule(gateway.context, new_schedule(**fields), ME)
        assert message in str(caught.value)
        assert list_schedules(gateway.store) == []
    finally:
        close_gateway(gateway)


@pytest.fixture
def proxied(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, AUTH_MODE="header",
                            AUTH_TRUSTED_PROXIES="127.0.0.1", AUTH_OPERATORS=f"user:{OPERATOR_NAME}")
    yield gateway
    close_gateway(gateway)


def test_operators_manage_schedules_over_rest(proxied):
    client = proxied.client
    body = {"process": "sleepy-squares", "inputs": SQUARES, "parallel": 2, "every": "90s", "rounds": 2,
            "name": "etl"}
    client.post_json("/admin/api/schedules", body, status=403, **as_user("alice"))
    client.get("/admin/api/schedules", status=401, extra_environ=PROXY)
    made = client.post_json("/admin/api/schedules", body, status=201, **as_user(OPERATOR_NAME))
    schedule = made.json
    assert made.headers["Location"].endswith(f"/admin/api/schedules/{schedule['id']}")
    assert schedule["every"] == 90 and schedule["state"] == "active" and schedule["user"] == OPERATOR_NAME
    assert client.get("/admin/api/schedules", **as_user(OPERATOR_NAME)).json["schedules"] == [schedule]
    assert client.post(f"/admin/api/schedules/{schedule['id']}/pause", **as_user(OPERATOR_NAME)).json["state"] == \
        "paused"
    assert client.post("/admin/api/schedules/etl/resume", **as_user(OPERATOR_NAME)).json["state"] == "active"
    for bad, why in [({**body, "every": 0}, "must be more than zero"), ({**body, "every": "-1h"}, "more than zero"),
                     ({**body, "process": "nope"}, "no process 'nope'"), ({**body, "color": "red"}, "an object with"),
                     ({**body, "parallel": 0}, "1 or more")]:
        refused = client.post_json("/admin/api/schedules", bad, status=400, **as_user(OPERATOR_NAME))
        assert why in refused.json["detail"], (bad, refused.json)
    secret = {"process": "batch", "every": 60, "inputs": {"tasks": {"value": task_list(task(
        "sync", "aws s3 sync s3://in s3://out", env={"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI"})),
        "mediaType": "application/json"}}}
    shown = client.post_json("/admin/api/schedules", secret, status=201, **as_user(OPERATOR_NAME)).json
    assert "wJalrXUtnFEMI" not in json.dumps(shown) and "AWS_SECRET_ACCESS_KEY" in json.dumps(shown)
    assert "wJalrXUtnFEMI" not in client.get("/admin/api/schedules", **as_user(OPERATOR_NAME)).text
    client.delete(f"/admin/api/schedules/{shown['id']}", status=204, **as_user(OPERATOR_NAME))
    client.delete(f"/admin/api/schedules/{schedule['id']}", status=204, **as_user(OPERATOR_NAME))
    client.get(f"/admin/api/schedules/{schedule['id']}", status=404, **as_user(OPERATOR_NAME))
    assert client.get("/admin/api/schedules", **as_user(OPERATOR_NAME)).json["schedules"] == []


def test_a_refused_job_is_noted_and_tried_again(tmp_path, sample_data):
    """One job at once per client: the round's second job is refused while the first runs, then made."""
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_CLIENT_MAX_JOBS="1")
    try:
        schedule = add_schedule(gateway.context, NewSchedule("sleepy-squares", {**SQUARES, "seconds": 1.0}, 2, 0.1,
                                                             rounds=1), ME)
        wait_for(lambda: "jobs accepted or running" in find_schedule(gateway.store, schedule.id).last_error, 60,
                 "the refusal noted")
        wait_for(lambda: finished_schedule(gateway.store, schedule.id), 120, "the round once allowed")
        assert find_schedule(gateway.store, schedule.id).last_error == ""
        assert_rounds_in_order(gateway.store, schedule, 1)
    finally:
        close_gateway(gateway)


def test_the_first_round_starts_at_once(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        schedule = add_schedule(gateway.context, NewSchedule("sleepy-squares", SQUARES, 1, 3600), ME)
        assert schedule.next_at <= utcnow()
        ScheduleRounds(gateway.store, lambda: gateway.context, 0.05).turn()
        assert [len(r) for r in rounds_of(gateway.store, schedule)] == [1]
    finally:
        close_gateway(gateway)


def test_a_pause_after_the_turn_read_the_schedule_still_holds_its_round(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        schedule = add_schedule(gateway.context, NewSchedule("sleepy-squares", SQUARES, 1, 3600), ME)
        loop = ScheduleRounds(gateway.store, lambda: gateway.context, 0.05)
        with gateway.store.sessions() as session:  # what a turn read, before the operator paused it
            as_read = session.get(Schedule, schedule.id)
        gateway.client.post(f"/admin/api/schedules/{schedule.id}/pause", status=200, extra_environ=PROXY)
        loop._advance(as_read)
        assert rounds_of(gateway.store, schedule) == [] and find_schedule(gateway.store, schedule.id).round == 0
    finally:
        close_gateway(gateway)


def test_settings_come_from_the_environment_for_schedules_made_outside(tmp_path, sample_data):
    """A schedule made through one process is run by another (the command line writes only the store)."""
    settings = load_settings(environ=gateway_environ(tmp_path / "var", sample_data, "http://localhost/wps"))
    store = Store(settings.database_url)
    store.upgrade()
    context = GatewayContext.create(settings, store)
    schedule = add_schedule(context, NewSchedule("sleepy-squares", SQUARES, 1, 0.1, rounds=1), ME)
    store.dispose()
    gateway = build_gateway(tmp_path / "var", sample_data)
    try:
        wait_for(lambda: finished_schedule(gateway.store, schedule.id), 120, "the round")
    finally:
        close_gateway(gateway)
