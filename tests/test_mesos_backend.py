"""The Mesos backend on the faithful test master: what it does when the master removes, refuses or hands over
its framework, what it sends (user, roles), why a task waits, and the fair share it achieves over time."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator

import httpx
import pytest

from mesos_backend import Resources, SchedulingLimits, TaskEvent, TaskSpec, TaskState
from mesos_backend.base import MemoryState
from mesos_backend.mesos.backend import FrameworkOptions, MesosBackend, SchedulingOptions
from mesos_backend.mesos.driver import DriverTimeouts
from mesos_backend.testing import proto
from mesos_backend.testing.cluster import MasterFlags

from .conftest import require
from .jobs_support import wait_for
from .mesos_support import check_master, start_master
from .test_local_backend import Recorder

pytestmark = pytest.mark.slow
TIMEOUTS = DriverTimeouts(backoff_initial=0.1)


@pytest.fixture(autouse=True)
def _protos():
    require(proto.available(), "protoc and the Mesos protos (golang-github-mesos-mesos-go-dev) are not installed")


def backend_on(master, state: MemoryState | None = None, **scheduling) -> tuple[MesosBackend, Recorder]:
    scheduling.setdefault("offer_refuse_seconds", 0.2)
    framework = scheduling.pop("framework", None)
    backend = MesosBackend(master.leader.address, state=state or MemoryState(), framework=framework,
                           scheduling=SchedulingOptions(**scheduling), timeouts=TIMEOUTS)
    events = Recorder()
    backend.start(events)
    return backend, events


def of(events: Recorder, task_id: str, state: TaskState) -> list[TaskEvent]:
    return [e for e in events.of(task_id) if e.state is state]


def sleeper(task_id: str, seconds: float = 30, cpus: float = 1, **fields) -> TaskSpec:
    return TaskSpec(task_id, ["sleep", str(seconds)], resources=Resources(cpus=cpus, mem=64), **fields)


@contextlib.contextmanager
def own_master(tmp_path, **options) -> Iterator:
    """A test master of this test's own, checked when it stops."""
    master = start_master(tmp_path / "mesos", **options)
    try:
        yield master
    finally:
        master.stop()
    check_master(master)


def test_the_framework_runs_as_the_gateways_user_and_takes_its_roles_reserved_resources_first(tmp_path):
    with own_master(tmp_path, agents=1,
                    agent_resources="cpus:1;cpus(eo):2;mem:1024;mem(eo):2048;disk:1000") as master:
        backend, events = backend_on(master, framework=FrameworkOptions(role="eo"))
        try:
            backend.launch(sleeper("reserved", 30, cpus=2))
            events.wait("reserved", TaskState.STARTED, 30)
            (task,) = master.cluster.tasks.values()
            assert task.resources.roles() == {"eo"}
            (framework,) = master.cluster.frameworks.values()
            assert framework.info["user"] == getpass.getuser() and framework.roles == ["eo"]
            backend.launch(sleeper("small", 0.2, cpus=0.5))
            assert events.wait("small", TaskState.FINISHED, 30).succeeded
        finally:
            backend.stop()


def test_a_framework_the_master_removed_reports_its_tasks_lost_and_registers_anew(mesos_master):
    state = MemoryState()
    backend, events = backend_on(mesos_master, state)
    try:
        backend.launch(sleeper("before", 30))
        events.wait("before", TaskState.STARTED, 30)
        old_id = state.get("framework_id")
        answer = httpx.post(f"{mesos_master.leader.url}/master/teardown", data={"frameworkId": old_id})
        assert answer.status_code == 200
        assert events.wait("before", TaskState.LOST, 30).reason == "framework_removed"
        wait_for(lambda: state.get("framework_id") not in (None, old_id), 30)
        backend.launch(sleeper("after", 0.1))
        events.wait("after", TaskState.FINISHED, 30)
        assert list(mesos_master.cluster.frameworks) == [state.get("framework_id")]
    finally:
        backend.stop()


class CountingState(MemoryState):
    """A backend state that counts its reads (a store read per status update would be a query per event)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, key: str) -> str | None:
        self.reads += 1
        return super().get(key)


def test_status_updates_and_the_status_read_no_stored_state(mesos_master):
    state = CountingState()
    backend, events = backend_on(mesos_master, state=state)
    try:
        wait_for(lambda: state.get("framework_id") is not None, 30, "the framework to register")
        framework_id, reads = state.get("framework_id"), state.reads
        for n in range(3):
            backend.launch(TaskSpec(f"quick-{n}", ["true"], resources=Resources(cpus=0.1, mem=16)))
        wait_for(lambda: all(of(events, f"quick-{n}", TaskState.FINISHED) for n in range(3)), 60)
        started = [e for n in range(3) for e in of(events, f"quick-{n}", TaskState.STARTED)]
        assert len(started) == 3 and all(framework_id in e.sandbox for e in started)
        assert backend.status()["framework_id"] == framework_id
        assert state.reads == reads  # three tasks' updates (sandbox paths) and a status: no read of the state
    finally:
        backend.stop()


def test_a_framework_the_master_refuses_says_so_and_does_not_retry(tmp_path):
    with own_master(tmp_path, agents=1, flags=MasterFlags(roles=frozenset({"eo"}))) as master:
        backend, events = backend_on(master, framework=FrameworkOptions(role="wps"))
        try:
            backend.launch(sleeper("waits", 0.1))
            notice = events.wait("waits", TaskState.NOTICE, 30)
            assert "Mesos refused the framework" in notice.message and "--roles" in notice.message
            assert master.cluster.subscriptions == 1
            assert backend.active_tasks() == {"waits"}
        finally:
            backend.stop()


def test_a_backend_that_lost_leadership_leaves_the_framework_to_the_next_leader(mesos_master):
    state = MemoryState()
    old, old_events = backend_on(mesos_master, state)
    new = None
    try:
        old.launch(sleeper("kept", 3))
        old_events.wait("kept", TaskState.STARTED, 30)
        framework_id = state.get("framework_id")
        old.leadership_lost()
        assert old.active_tasks() is None
        wait_for(lambda: mesos_master.cluster.stream_of(framework_id) is None, 10)
        old.launch(sleeper("stale", 0.1))
        new, new_events = backend_on(mesos_master, state)
        new.recover(["kept"], {"kept": {"agent": old_events.wait("kept", TaskState.STARTED).agent, "cpus": 1}})
        assert new_events.wait("kept", TaskState.FINISHED, 30).succeeded
        assert list(mesos_master.cluster.frameworks) == [framework_id]
        assert mesos_master.cluster.subscriptions == 2 and "stale" not in mesos_master.cluster.launched
    finally:
        old.stop()
        if new is not None:
            new.stop()


def test_recovered_tasks_mesos_never_heard_of_cost_no_retry(mesos_master):
    backend, events = backend_on(mesos_master)
    try:
        agent = next(iter(mesos_master.cluster.agents))
        backend.recover(["never.1", "ran.1"], {"never.1": {"cpus": 1}, "ran.1": {"agent": agent, "cpus": 1}})
        assert events.wait("never.1", TaskState.LOST, 30).reason == "backend_restarted"
        assert events.wait("ran.1", TaskState.LOST, 30).reason == "REASON_RECONCILIATION"
    finally:
        backend.stop()


def test_a_task_bigger_than_any_agent_says_why_then_fails(mesos_master):
    backend, events = backend_on(mesos_master, oversize_grace=4)
    try:
        backend.launch(sleeper("huge", 1, cpus=64))
        events.wait("huge", TaskState.FAILED, 30)
        (notice,) = of(events, "huge", TaskState.NOTICE)
        (failed,) = of(events, "huge", TaskState.FAILED)
        assert notice.reason == failed.reason == "insufficient_resources"
        assert "needs cpus:64" in failed.message and "at most cpus:2" in failed.message
        assert backend.active_tasks() == set() and "huge" not in mesos_master.cluster.launched
    finally:
        backend.stop()


def test_a_capped_task_says_why_it_waits(mesos_master):
    backend, events = backend_on(mesos_master, max_cpu=1)
    try:
        backend.launch(sleeper("first", 30))
        backend.launch(sleeper("second", 30))
        events.wait("second", TaskState.NOTICE, 30)
        (notice,) = of(events, "second", TaskState.NOTICE)
        assert notice.reason == "cap" and "max_cpu (1 cpus)" in notice.message
        assert not of(events, "second", TaskState.STARTED)
    finally:
        backend.stop()


def test_a_task_held_by_its_users_own_cap_says_so(mesos_master):
    backend, events = backend_on(mesos_master)
    try:
        backend.set_limits(SchedulingLimits(user_cpus={"alice": 1}))  # set live, over no user_max_cpu
        backend.launch(sleeper("first", 30, user="alice"))
        backend.launch(sleeper("second", 30, user="alice"))
        events.wait("second", TaskState.NOTICE, 30)
        (notice,) = of(events, "second", TaskState.NOTICE)
        assert notice.reason == "cap" and "user 'alice' (1 cpus)" in notice.message, notice
        assert not of(events, "second", TaskState.STARTED)
    finally:
        backend.stop()


def test_the_fair_share_achieved_over_time_follows_the_weights(tmp_path):
    """Weights 3:1 under MAX_CPU=6: the cpu time each process gets while both wait is about 3:1 (counting
    running tasks would settle on 4:2), and freed cpus are offered again, so all six slots are used."""
    tasks = 40
    with own_master(tmp_path, agents=3) as master:  # 2 cpus each
        backend, events = backend_on(master, max_cpu=6, process_weights={"a": 3.0, "b": 1.0})
        try:
            for index in range(tasks):
                for process in "ab":
                    backend.launch(sleeper(f"{process}{index}", 0.6, process=process))
            for index in range(tasks):
                events.wait(f"a{index}", TaskState.FINISHED, 120)
            started = {e.task_id: e.timestamp for e in events.events if e.state is TaskState.STARTED}
            ended = {e.task_id: e.timestamp for e in events.events if e.state is TaskState.FINISHED}
            window = max(started[f"a{i}"] for i in range(tasks))  # until "a" has no task left waiting
            begin = min(started.values())
            busy = {"a": 0.0, "b": 0.0}
            for task_id, start in started.items():
                busy[task_id[0]] += max(0.0, min(ended.get(task_id, window), window) - max(start, begin))
            assert 2.4 <= busy["a"] / busy["b"] <= 3.6, busy
            later = sorted(started.values())[12:]  # after the first two waves, freed cpus are offered again
            assert max(sum(1 for t, s in started.items() if s <= moment < ended.get(t, float("inf")))
                       for moment in later) == 6
        finally:
            backend.stop()
