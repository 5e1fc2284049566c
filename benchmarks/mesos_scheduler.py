"""How fast the Mesos framework's scheduler side places queued tasks, and what a queued task costs it in memory.

Unlike ``mesos_placement.py``, which times ``Placer.place`` alone, this drives
the backend's real offer path: ``MesosBackend.launch`` queues ``TaskSpec``s
as the dispatcher builds them, and ``MesosBackend.resourceOffers`` receives
offers exactly as the test master (``mesos_backend.testing.cluster.Cluster._offer_json``)
builds them and answers with ACCEPT/LAUNCH calls whose TaskInfo JSON comes from
``taskinfo.task_info``. Only HTTP is left out: the backend's driver is a
recording stand-in (no ``backend.start()``, no master process, no agents run),
so the figures are the scheduler's own CPU and memory.

Scenario (issue: 1,000 agents, 50,000 queued one-cpu tasks): agents offering
8 cpus / 32 GiB, tasks of 1 cpu / 1 GiB from 10 users x 5 processes. Each round
offers every agent's full resources (the previous round's tasks have finished),
then reports TASK_FINISHED for every launched task through
``MesosBackend.statusUpdate``, shaped as the test master sends an agent's update
(with a uuid), which frees the resources and exercises the update path. Rounds
repeat until the queue is empty.

Measured: placements per second of process CPU inside ``resourceOffers``;
status updates per CPU second inside ``statusUpdate``; bytes per queued task
(tracemalloc, backend structures alone and including the ``TaskSpec`` objects the
backend keeps); the RSS growth (VmRSS) while queueing. The garbage collector
runs as it would in the gateway, and the share of ``resourceOffers`` CPU it
takes is reported (gc callbacks): nothing of a round outlives it here, so the
live heap it scans is the queue, as in the gateway. Targets: 5,000
placements/s or more and a few KB (here: at most 4 KB) per queued task.
The ACCEPTs are also checked as the test master checks them (offer, agent,
resources, duplicates), and a sample against the real Mesos protos when
``protoc`` and the proto files are installed. Standard library only besides the
project; ``--quick`` runs 100 agents and 5,000 tasks.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesos_backend.base import Resources, TaskEvent, TaskSpec, TaskState
from mesos_backend.mesos.backend import EXPLAIN_BATCH, MesosBackend
from mesos_backend.testing import proto
from mesos_backend.testing.cluster import Cluster, Framework, Offer, make_agents, status_json
from mesos_backend.testing.resources import Bag, ResourceError

AGENT_RESOURCES = Bag.of(cpus=8, mem=32768, disk=100000)
TASK_RESOURCES = Resources(cpus=1, mem=1024)
USERS = 10
PROCESSES = 5
TASKS_PER_JOB = 50
TARGET_PER_S = 5000.0
TARGET_BYTES = 4096.0  # "a few KB per queued task"
VALIDATE_CALLS = 20  # ACCEPTs checked against the real protos
MAX_ROUNDS = 1000


# ------------------------------------------------------------------ the driver


@dataclass
class RecordingDriver:
    """Stands in for ``MesosSchedulerDriver``: records the calls the backend makes instead of POSTing them.

    Recording is one append per call, so it adds next to nothing to the time measured in ``resourceOffers``.
    """

    framework_id: str
    connected: bool = True
    accepts: list[tuple[list[dict[str, str]], list[dict[str, Any]], dict[str, Any] | None]] = field(
        default_factory=list)
    declines: list[tuple[list[dict[str, str]], dict[str, Any] | None]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    launched: int = 0

    def _count(self, kind: str) -> bool:
        self.calls[kind] = self.calls.get(kind, 0) + 1
        return True

    def launchTasks(self, offer_ids: list[dict[str, str]], tasks: list[dict[str, Any]],  # noqa: N802
                    filters: dict[str, Any] | None = None) -> bool:
        self.accepts.append((offer_ids, tasks, filters))
        self.launched += len(tasks)
        return self._count("ACCEPT")

    def declineOffer(self, offer_ids: list[dict[str, str]], filters: dict[str, Any] | None = None) -> bool:  # noqa: N802
        self.declines.append((offer_ids, filters))
        return self._count("DECLINE")

    def suppressOffers(self) -> bool:  # noqa: N802
        return self._count("SUPPRESS")

    def reviveOffers(self) -> bool:  # noqa: N802
        return self._count("REVIVE")

    def killTask(self, task_id: dict[str, str], agent_id: dict[str, str] | None = None,  # noqa: N802
                 kill_policy: dict[str, Any] | None = None) -> bool:
        return self._count("KILL")

    def reconcileTasks(self, tasks: list[dict[str, Any]]) -> bool:  # noqa: N802
        return self._count("RECONCILE")

    def acknowledgeStatusUpdate(self, status: dict[str, Any]) -> bool:  # noqa: N802
        return self._count("ACKNOWLEDGE")

    def stop(self, failover: bool = True) -> None:
        self.connected = False

    def take_round(self) -> tuple[list, list]:
        """The ACCEPTs and DECLINEs since the last call, forgotten here so memory stays flat across rounds."""
        accepts, declines = self.accepts, self.declines
        self.accepts, self.declines = [], []
        return accepts, declines


# ------------------------------------------------------------------ the cluster


def make_cluster(agents: int, work_dir: Path) -> tuple[Cluster, Framework]:
    """The test master's state with ``agents`` agents and our framework subscribed (no HTTP, nothing started)."""
    cluster = Cluster(make_agents(agents, work_dir, AGENT_RESOURCES, {"rack": "r{i}"}))
    info = MesosBackend("127.0.0.1:5050").framework.framework_info(None)
    stream, _ = cluster.subscribe({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}, None)
    return cluster, cluster.frameworks[stream.framework_id]


OfferIndex = dict[str, tuple[str, Bag]]  # offer id -> (agent id, resources offered)


def offers_json(cluster: Cluster, framework: Framework) -> tuple[list[dict[str, Any]], OfferIndex]:
    """One offer per agent with all its resources, built by the test master; and offer id -> (agent, resources)."""
    offers, known = [], {}
    role = framework.roles[0]
    for record in cluster.agents.values():
        agent = record.agent
        offer = Offer(str(uuid.uuid4()), framework.framework_id, agent.agent_id, role, agent.resources)
        offers.append(cluster._offer_json(offer, framework))
        known[offer.offer_id] = (agent.agent_id, agent.resources)
    return offers, known


def finished_status(task_id: str, agent_id: str) -> dict[str, Any]:
    """TASK_FINISHED as the test master relays an agent's update (``Cluster._agent_update``)."""
    status = status_json(task_id, agent_id, "TASK_FINISHED", "Command exited with status 0", None,
                         "SOURCE_EXECUTOR")
    status["uuid"] = base64.b64encode(uuid.uuid4().bytes).decode()
    status["executor_id"] = {"value": task_id}
    return status


# ------------------------------------------------------------------ the tasks


def make_specs(n: int) -> list[TaskSpec]:
    """What the dispatcher hands the backend: one spec per attempt, labelled with job, task and step."""
    specs = []
    job_id = ""
    for i in range(n):
        if i % TASKS_PER_JOB == 0:
            job_id = str(uuid.uuid4())
        job = i // TASKS_PER_JOB
        process = f"proc{job % PROCESSES}"
        task_id = f"{job_id}.{process}-step.{i % TASKS_PER_JOB}"
        specs.append(TaskSpec(task_id=f"{task_id}.1", command=["true"], resources=TASK_RESOURCES,
                              labels={"job_id": job_id, "task_id": task_id, "step": f"{process}-step"},
                              user=f"user{job % USERS}", process=process, priority=job % 3))
    return specs


@dataclass
class FinishedCounter:
    """The backend's event callback: counts FINISHED events and keeps none, as the dispatcher keeps none."""

    count: int = 0

    def __call__(self, event: TaskEvent) -> None:
        self.count += event.state is TaskState.FINISHED


def make_backend() -> tuple[MesosBackend, FinishedCounter]:
    """A backend that was never started: no driver thread, no ticker."""
    backend = MesosBackend("127.0.0.1:5050")
    finished = FinishedCounter()
    backend._on_event = finished
    return backend, finished


def rss_kb() -> int:
    """This process's resident set (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def traced_per_task(n: int) -> tuple[float, float]:
    """Bytes per queued task that tracemalloc sees: (backend structures alone, including the TaskSpecs)."""
    backend, _ = make_backend()
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    specs = make_specs(n)
    built = tracemalloc.get_traced_memory()[0]
    queue_all(backend, specs)
    del specs  # the backend keeps each spec: still traced
    gc.collect()
    queued = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    if backend.queued() != n:
        raise AssertionError(f"{n} tasks launched, {backend.queued()} queued")
    return (queued - built) / n, (queued - start) / n


def queue_all(backend: MesosBackend, specs: list[TaskSpec]) -> None:
    for spec in specs:
        backend.launch(spec)


# ------------------------------------------------------------------ checks


def check_accepts(accepts: list, known: OfferIndex, cluster: Cluster, framework: Framework,
                  seen: set[str]) -> None:
    """Refuse what the test master refuses: unknown or reused offers, mixed agents, invalid or oversized tasks."""
    for offer_ids, infos, _ in accepts:
        pairs = [known.pop(o["value"]) for o in offer_ids]  # KeyError: unknown or already used offer
        agents = {agent_id for agent_id, _ in pairs}
        if len(agents) != 1:
            raise AssertionError(f"ACCEPT spans agents {agents}")
        record = cluster.agents[agents.pop()]
        available = sum((resources for _, resources in pairs), Bag())
        for info in infos:
            try:
                used = cluster._task_resources(framework, record, framework.roles[0], info, available)
            except ResourceError as problem:
                raise AssertionError(f"the test master would refuse task {info['task_id']['value']}: {problem}") \
                    from None
            if info["task_id"]["value"] in seen:
                raise AssertionError(f"task {info['task_id']['value']} launched twice")
            seen.add(info["task_id"]["value"])
            available = available - used


def accept_call(framework_id: str, offer_ids: list, infos: list, filters: dict[str, Any] | None) -> dict[str, Any]:
    """The Call the real driver would POST for ``launchTasks``."""
    body: dict[str, Any] = {"offer_ids": offer_ids,
                            "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}]}
    if filters:
        body["filters"] = filters
    return {"framework_id": {"value": framework_id}, "type": "ACCEPT", "accept": body}


def validate_sample(framework_id: str, accepts: list, declines: list, offers: list[dict[str, Any]]) -> str:
    """Check some calls (and the offers they answer) against the real Mesos protos, if they are installed."""
    if not proto.available():
        return "skipped (protoc or the Mesos proto files are missing)"
    proto.validate_event({"type": "OFFERS", "offers": {"offers": offers[:VALIDATE_CALLS]}})
    for offer_ids, infos, filters in accepts[:VALIDATE_CALLS]:
        proto.validate_call(accept_call(framework_id, offer_ids, infos, filters))
    for offer_ids, filters in declines[:VALIDATE_CALLS]:
        proto.validate_call({"framework_id": {"value": framework_id}, "type": "DECLINE",
                             "decline": {"offer_ids": offer_ids, **({"filters": filters} if filters else {})}})
    return f"{min(len(accepts), VALIDATE_CALLS)} ACCEPT and {min(len(declines), VALIDATE_CALLS)} DECLINE calls valid"


# ------------------------------------------------------------------ the run


@dataclass
class Run:
    agents: int
    tasks: int
    rounds: int = 0
    placements: int = 0
    offer_cpu: float = 0.0  # inside resourceOffers
    offer_gc_cpu: float = 0.0  # of which the cyclic garbage collector
    offer_full_gcs: int = 0  # full (generation 2) collections inside resourceOffers
    updates: int = 0
    update_cpu: float = 0.0  # inside statusUpdate
    encode_cpu: float = 0.0  # json.dumps of the ACCEPT calls, which the real driver does before POSTing
    rss_delta_kb: int = 0
    backend_bytes: float = 0.0
    total_bytes: float = 0.0
    proto_check: str = ""
    calls: dict[str, int] = field(default_factory=dict)
    explain_cpu: float = 0.0  # one pass telling why queued tasks wait, nothing to send
    explain_notice_cpu: float = 0.0  # the pass that sends a NOTICE for every task
    explain_bytes: float = 0.0  # per queued task, what the backend keeps to send a reason only when it changes


@dataclass
class GcClock:
    """CPU the cyclic garbage collector takes while ``active``: a gc callback, so the collector is left as it is."""

    active: bool = False
    seconds: float = 0.0
    full: int = 0
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.active:
            return
        if phase == "start":
            self._started = time.process_time()
            return
        self.seconds += time.process_time() - self._started
        self.full += info["generation"] == 2


@dataclass
class Samples:
    """The first calls and offers, kept for the check against the real protos; everything else is dropped."""

    accepts: list = field(default_factory=list)
    declines: list = field(default_factory=list)
    offers: list[dict[str, Any]] = field(default_factory=list)

    def keep(self, accepts: list, declines: list, offers: list[dict[str, Any]]) -> None:
        self.accepts += accepts[:VALIDATE_CALLS - len(self.accepts)]
        self.declines += declines[:VALIDATE_CALLS - len(self.declines)]
        self.offers = self.offers or offers[:VALIDATE_CALLS]


def timed(action: Callable[..., object], *args: Any) -> float:
    """Process CPU seconds of ``action(*args)``: this process runs no other thread, so it is the action's own."""
    start = time.process_time()
    action(*args)
    return time.process_time() - start


def encode_accepts(framework_id: str, accepts: list) -> None:
    for offer_ids, infos, filters in accepts:
        json.dumps(accept_call(framework_id, offer_ids, infos, filters))


def finish_all(backend: MesosBackend, accepts: list) -> tuple[int, float]:
    """TASK_FINISHED for every task of this round's ACCEPTs; (updates, CPU inside statusUpdate)."""
    statuses = [finished_status(info["task_id"]["value"], info["agent_id"]["value"])
                for _, infos, _ in accepts for info in infos]
    driver = backend._driver
    update = backend.statusUpdate
    start = time.process_time()
    for status in statuses:
        update(driver, status)
    return len(statuses), time.process_time() - start


@dataclass
class Rig:
    """What one run plays with: the test master's state, the backend and its stand-in driver."""

    cluster: Cluster
    framework: Framework
    backend: MesosBackend
    driver: RecordingDriver
    clock: GcClock
    seen: set[str] = field(default_factory=set)  # task ids launched
    samples: Samples = field(default_factory=Samples)


def play_round(rig: Rig, result: Run) -> None:
    """Offer every agent, check and finish what was launched; nothing of the round outlives it (as in the gateway)."""
    offers, known = offers_json(rig.cluster, rig.framework)
    gc_before, full_before = rig.clock.seconds, rig.clock.full
    rig.clock.active = True
    result.offer_cpu += timed(rig.backend.resourceOffers, rig.driver, offers)
    rig.clock.active = False
    result.offer_gc_cpu += rig.clock.seconds - gc_before
    result.offer_full_gcs += rig.clock.full - full_before
    accepts, declines = rig.driver.take_round()
    rig.samples.keep(accepts, declines, offers)
    check_accepts(accepts, known, rig.cluster, rig.framework, rig.seen)
    result.encode_cpu += timed(encode_accepts, rig.framework.framework_id, accepts)
    updates, cpu = finish_all(rig.backend, accepts)
    result.updates += updates
    result.update_cpu += cpu
    result.rounds += 1


def play_rounds(rig: Rig, result: Run) -> None:
    """Rounds until the queue is empty, then the sample checked against the real protos."""
    gc.callbacks.append(rig.clock)
    try:
        while rig.backend.queued():
            play_round(rig, result)
            if result.rounds > MAX_ROUNDS:
                raise RuntimeError(f"stuck with {rig.backend.queued()} tasks queued")
    finally:
        gc.callbacks.remove(rig.clock)
    s = rig.samples
    result.proto_check = validate_sample(rig.framework.framework_id, s.accepts, s.declines, s.offers)


def run(agents: int, n: int) -> Run:
    """Queue ``n`` tasks, then offer every agent each round until all are placed; see the module docstring."""
    result = Run(agents, n)
    with tempfile.TemporaryDirectory(prefix="bench-mesos-scheduler-") as tmp:
        cluster, framework = make_cluster(agents, Path(tmp))
        backend, finished = make_backend()
        driver = RecordingDriver(framework.framework_id)
        backend._driver = driver  # type: ignore[assignment]
        gc.collect()
        before = rss_kb()
        queue_all(backend, make_specs(n))
        gc.collect()
        result.rss_delta_kb = rss_kb() - before
        rig = Rig(cluster, framework, backend, driver, GcClock())
        play_rounds(rig, result)
        result.placements = driver.launched
        result.calls = dict(driver.calls)
        if result.placements != n or len(rig.seen) != n or finished.count != n or backend._active:
            raise AssertionError(f"{n} tasks queued, {result.placements} launched, {finished.count} finished, "
                                 f"{len(backend._active)} still active")
        del rig, cluster, backend, driver
    result.backend_bytes, result.total_bytes = traced_per_task(n)
    result.explain_cpu, result.explain_notice_cpu, result.explain_bytes = explain_cost(agents, n)
    return result


def explain_cost(agents: int, n: int) -> tuple[float, float, float]:
    """The backend's ticker telling why ``n`` queued tasks wait (``_explain``), with ``agents`` agents seen: the
    most CPU one tick takes (the lock is held that long) in a sweep that finds every task's reason, and in the
    sweep that sends them (a NOTICE per task); bytes per task kept."""
    backend, _ = make_backend()
    backend._driver = RecordingDriver("bench")  # type: ignore[assignment]
    backend._capacity = {f"agent-{i}": Resources(AGENT_RESOURCES.total("cpus"), AGENT_RESOURCES.total("mem"),
                                                 AGENT_RESOURCES.total("disk")) for i in range(agents)}
    queue_all(backend, make_specs(n))
    later = time.monotonic() + 10
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    sweeps = []
    for sweep in range(2):
        ticks = [timed(backend._explain, later + sweep)]
        while backend._sweep_at < len(backend._sweep):
            ticks.append(timed(backend._explain, later + sweep))
        sweeps.append(max(ticks))
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return sweeps[0], sweeps[1], kept / n


def print_table(r: Run) -> None:
    per_s = r.placements / r.offer_cpu
    per_s_encoded = r.placements / (r.offer_cpu + r.encode_cpu)
    updates_per_s = r.updates / r.update_cpu
    print("| agents | queued tasks | rounds | placements | resourceOffers CPU s | placements/CPU s "
          "| status updates/CPU s | bytes/queued task (tracemalloc: backend; with TaskSpecs) | RSS delta MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {r.agents:,} | {r.tasks:,} | {r.rounds} | {r.placements:,} | {r.offer_cpu:.3f} | {per_s:,.0f} "
          f"| {updates_per_s:,.0f} | {r.backend_bytes:,.0f}; {r.total_bytes:,.0f} | {r.rss_delta_kb / 1024:.1f} |")
    print()
    print(f"- placements per CPU second >= {TARGET_PER_S:,.0f}: {'met' if per_s >= TARGET_PER_S else 'NOT met'} "
          f"({per_s:,.0f}/s; {per_s_encoded:,.0f}/s counting the JSON encoding of the ACCEPT calls, "
          f"{r.encode_cpu:.3f} CPU s, that the real driver adds before HTTP)")
    worst = max(r.total_bytes, r.rss_delta_kb * 1024 / r.tasks)
    print(f"- memory per queued task <= {TARGET_BYTES / 1024:.0f} KB: {'met' if worst <= TARGET_BYTES else 'NOT met'} "
          f"({r.total_bytes:,.0f} B traced with the TaskSpec, {r.rss_delta_kb * 1024 / r.tasks:,.0f} B of RSS)")
    print(f"- of the resourceOffers CPU, the cyclic garbage collector took {r.offer_gc_cpu:.3f} s "
          f"({100 * r.offer_gc_cpu / r.offer_cpu:.0f} %, {r.offer_full_gcs} full collection(s)); without it "
          f"{r.placements / max(r.offer_cpu - r.offer_gc_cpu, 1e-9):,.0f} placements/s")
    print(f"- status updates: {r.updates:,} in {r.update_cpu:.3f} CPU s "
          f"({1e6 * r.update_cpu / r.updates:.1f} us each)")
    print(f"- calls: {', '.join(f'{k} {v:,}' for k, v in sorted(r.calls.items()))}; "
          "every ACCEPT passes the test master's task checks")
    print(f"- real Mesos protos: {r.proto_check}")
    print(f"- why queued tasks wait (the ticker, {EXPLAIN_BATCH:,} tasks a tick): with {r.tasks:,} queued, a tick "
          f"holds the lock for {1000 * r.explain_cpu:.0f} ms of CPU at most, {1000 * r.explain_notice_cpu:.0f} ms "
          f"when it sends each of its tasks a NOTICE; {r.explain_bytes:,.0f} B per queued task kept")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 agents and 5,000 tasks")
    args = parser.parse_args()
    agents, n = (100, 5000) if args.quick else (1000, 50000)
    print_table(run(agents, n))


if __name__ == "__main__":
    main()
