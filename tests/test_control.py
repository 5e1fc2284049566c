"""Operators steer jobs through the store: retries and priorities carried out by the dispatcher, live caps.

The console, the REST control and the CLI only write a request (or a limit);
the dispatcher, the only writer of task state, carries it out on its next
turn. These tests drive the real dispatcher with the local backend and the
test processor, whose first square task can be told to fail a number of runs.
"""

from __future__ import annotations

import pytest

from mesos_backend import SchedulingLimits
from wps_gateway import control, scheduling
from wps_gateway.jobs import JobNotFound
from wps_gateway.store.models import JobStatus

from .jobs_support import attempts_of, final, job_of, runs_per_task, submit_sleepy, wait_for, wait_turns

pytestmark = pytest.mark.slow


def test_retrying_the_failed_tasks_keeps_what_succeeded(gateway):
    job_id = submit_sleepy(gateway, [1, 2, 3], fail_runs=2)  # task 0 fails both its attempts (retries: 1)
    failed = final(gateway, job_id)
    assert failed.status == JobStatus.FAILED
    runs_before = (gateway.settings.jobs_dir / job_id / "steps" / "square" / "runs.log").read_text().split()
    succeeded_before = {a.task_id for a in attempts_of(gateway, job_id) if a.status == "succeeded"}

    request = control.request_action(gateway.store, job_id, control.RETRY_FAILED, by="ops")
    assert request["state"] == "pending"
    done = control.wait_handled(gateway.store, request["id"], 30)
    assert done["state"] == "done" and "queued again" in done["outcome"], done
    job = final(gateway, job_id)
    assert job.status == JobStatus.SUCCESSFUL, job.message
    assert job.outputs["total"]["value"] == 1 + 4 + 9
    runs = (gateway.settings.jobs_dir / job_id / "steps" / "square" / "runs.log").read_text().split()
    assert runs.count("0") == 3  # two failed runs, then the retry
    for task_id in succeeded_before:  # tasks that had succeeded did not run again
        index = task_id.rsplit(".", 1)[1]
        assert runs.count(index) == runs_before.count(index)
    attempts = attempts_of(gateway, job_id)
    assert [a.number for a in attempts if a.task_id.endswith("square.0")] == [1, 2, 3]


def test_retrying_the_whole_job_runs_every_task_again(gateway):
    job_id = submit_sleepy(gateway, [2, 3], fail_step="total")
    assert final(gateway, job_id).status == JobStatus.FAILED
    request = control.request_action(gateway.store, job_id, control.RETRY_JOB, by="ops")
    assert control.wait_handled(gateway.store, request["id"], 30)["state"] == "done"
    job = final(gateway, job_id)
    assert job.status == JobStatus.FAILED  # told to fail again: it does, after running every task again
    assert runs_per_task(gateway.settings.jobs_dir, job_id) == {"0": 1, "1": 1}  # the old runs.log went with the retry
    totals = [a for a in attempts_of(gateway, job_id) if ".total." in a.task_id]
    assert [a.number for a in totals] == [1, 2] and all(a.status == "failed" for a in totals)


def test_only_a_failed_job_is_retried_and_the_dispatcher_checks_again(gateway):
    job_id = submit_sleepy(gateway, [4])
    assert final(gateway, job_id).status == JobStatus.SUCCESSFUL
    with pytest.raises(control.RequestRefused, match="only a failed job"):
        control.request_action(gateway.store, job_id, control.RETRY_FAILED)
    with pytest.raises(JobNotFound):
        control.request_action(gateway.store, "no-such-job", control.RETRY_JOB)
    with pytest.raises(ValueError, match="priority"):
        control.request_action(gateway.store, job_id, control.PRIORITY, 10**6)


def test_a_priority_change_reaches_the_job_and_is_recorded(gateway):
    job_id = submit_sleepy(gateway, [1])
    request = control.request_action(gateway.store, job_id, control.PRIORITY, 7, by="ops")
    done = control.wait_handled(gateway.store, request["id"], 30)
    assert done["state"] == "done" and done["outcome"].startswith("priority 0 -> 7"), done
    assert job_of(gateway, job_id).priority == 7
    assert control.requests_of(gateway.store, job_id)[0]["id"] == request["id"]


def test_live_limits_reach_the_backend_without_a_restart(gateway):
    backend = gateway.runner.dispatcher.backend
    pushed: list[SchedulingLimits] = []
    backend.set_limits = pushed.append
    scheduling.set_limit(gateway.store, "max_cpu", None, 3, by="ops")
    scheduling.set_limit(gateway.store, "user_weight", "alice", 2.5)
    wait_for(lambda: pushed and pushed[-1].max_cpu == 3 and pushed[-1].user_weights == {"alice": 2.5}, 30,
             "the limits to reach the backend")
    scheduling.remove_limit(gateway.store, "max_cpu", None)
    wait_for(lambda: pushed[-1].max_cpu is None, 30, "the removal to reach the backend")
    with pytest.raises(scheduling.LimitError, match="needs the name"):
        scheduling.set_limit(gateway.store, "user_cpu", "", 2)
    with pytest.raises(scheduling.LimitError, match="above 0"):
        scheduling.set_limit(gateway.store, "process_weight", "p", 0)
    with pytest.raises(LookupError):
        scheduling.remove_limit(gateway.store, "max_cpu", None)
    wait_turns(gateway)
